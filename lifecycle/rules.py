"""The rules of the billing FAQ, one object each.

A ``Rule`` carries its stable code, the FAQ question it comes from and a
one-line summary. The same objects guard the transitions (``check``), build
the refusal errors (``refuse``), and feed the generated rules table and the
diagram's edge labels, so none of them can drift from the others.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import datetime
from importlib import resources
from zoneinfo import ZoneInfo

import attrs

from lifecycle.clock import describe, month_of, next_month_start
from lifecycle.errors import RuleViolation


@attrs.frozen
class Attempt:
    """What a guard sees: an operation being tried, in a state, at a time, and
    what a refusal's advice may quote (the trial's price, the period's end)."""

    operation: str
    state: str
    at: datetime
    zone: ZoneInfo
    last_trial_at: datetime | None = None
    discount: object = None
    trial_price: str = ""
    period_end: datetime | None = None

    @property
    def facts(self) -> Mapping[str, str]:
        """The facts a refusal's advice quotes, written out only when one is made."""
        facts = {"trial_price": self.trial_price}
        if self.period_end is not None:
            facts["period_end"] = describe(self.period_end, self.zone)
        return facts


@attrs.frozen
class Rule:
    """One rule of the FAQ: ``code`` is stable, ``faq`` names the question (Q1..Q7)."""

    code: str
    faqs: tuple[str, ...]
    summary: str
    advice: str
    check: Callable[[Attempt], bool] | None = attrs.field(default=None, eq=False, repr=False)
    facts: Callable[[Attempt], Mapping[str, str]] | None = attrs.field(
        default=None, eq=False, repr=False
    )

    @property
    def faq(self) -> str | None:
        """The FAQ questions this rule comes from (``"Q2"``), or None for our own."""
        return ", ".join(self.faqs) or None

    @property
    def questions(self) -> tuple[str, ...]:
        """The FAQ questions this rule enforces, quoted verbatim from the seed."""
        return tuple(faq_questions()[faq] for faq in self.faqs)

    def refuse(self, *, state: str, operation: str, **facts: str) -> RuleViolation:
        """The error that refuses ``operation`` in ``state`` under this rule."""
        advice = self.advice.format(operation=operation, **facts)
        return RuleViolation(self, state=state, operation=operation, advice=advice)

    def guard(self, attempt: Attempt) -> bool:
        """Return True when ``attempt`` passes; otherwise raise the refusal.

        transitions compares a condition's result with ``== True`` and answers
        a failure with a bare False; raising from here gives the caller the
        rule instead, before anything has changed.
        """
        if self.check is None or self.check(attempt):
            return True
        facts = {**attempt.facts, **(self.facts(attempt) if self.facts else {})}
        raise self.refuse(state=attempt.state, operation=attempt.operation, **facts)


FAQ_FILE = "ims-billing-faq.txt"


@functools.cache
def faq_questions() -> Mapping[str, str]:
    """Q1..Q7 -> the question's text, read from the FAQ shipped in the package."""
    text = resources.files("lifecycle").joinpath(FAQ_FILE).read_text("utf-8")
    questions = [line for line in text.splitlines() if line.rstrip().endswith("?")]
    return {f"Q{number}": line for number, line in enumerate(questions, start=1)}


def _trial_not_this_month(attempt: Attempt) -> bool:
    last = attempt.last_trial_at
    return last is None or month_of(last, attempt.zone) != month_of(attempt.at, attempt.zone)


def _next_trial(attempt: Attempt) -> Mapping[str, str]:
    return {"next_trial": describe(next_month_start(attempt.at, attempt.zone), attempt.zone)}


ADDON_ENTERPRISE_ONLY = Rule(
    code="addon.enterprise_only",
    faqs=("Q1",),
    summary="only Enterprise Edition subscribers can buy add-on packages",
    advice="Subscribe to an Enterprise Edition first; add-ons then add to its quota.",
)
TRIAL_ONCE_PER_MONTH = Rule(
    code="trial.once_per_month",
    faqs=("Q2",),
    summary="a trial can be bought once per calendar month",
    advice=(
        "A trial was already bought this month: a new trial can be bought from "
        "{next_trial}, or subscribe to an Enterprise Edition now."
    ),
    check=_trial_not_this_month,
    facts=_next_trial,
)
TRIAL_NO_DISCOUNT = Rule(
    code="trial.no_discount",
    faqs=("Q2",),
    summary="the trial has a fixed price and takes no discount",
    advice="Buy the trial at its fixed price of {trial_price}, without a discount.",
    check=lambda attempt: attempt.discount is None,
)
TRIAL_FEATURE_EXCLUDED = Rule(
    code="trial.feature_excluded",
    faqs=("Q2",),
    summary=(
        "the trial excludes dedicated customer service and the advanced video "
        "clip effects package (advanced effects, custom effects tool)"
    ),
    advice="Subscribe to an Enterprise Edition to use this feature.",
)
TRIAL_NO_PAYG = Rule(
    code="trial.no_payg",
    faqs=("Q5",),
    summary="usage beyond the trial's credits is denied, not billed pay-as-you-go",
    advice="Subscribe to an Enterprise Edition to continue.",
)
SERVICE_UNAVAILABLE = Rule(
    code="service.unavailable",
    faqs=("Q2", "Q4", "Q5"),
    summary="no IMS feature is usable without a running trial or Enterprise subscription",
    advice="Buy a monthly feature trial package or subscribe to an Enterprise Edition.",
)
QUOTA_PAYG_OVERAGE = Rule(
    code="quota.payg_overage",
    faqs=("Q6",),
    summary="Enterprise usage beyond quota and add-ons is billed pay-as-you-go",
    advice="Buy an add-on package or subscribe again for a new quota.",
)
RTC_AI_STANDARD_OR_HIGHER = Rule(
    code="rtc_ai.standard_or_higher",
    faqs=("Q7",),
    summary=(
        "subscription credits pay for Real-time Conversational AI only from "
        "Standard Edition up; otherwise it is billed pay-as-you-go"
    ),
    advice="Subscribe to Standard Edition or higher for credits to pay for it.",
)
EDITION_FEATURE_EXCLUDED = Rule(
    code="edition.feature_excluded",
    faqs=("Q3",),
    summary="an Enterprise edition covers only the features its catalog entry lists",
    advice="Subscribe to an edition that includes this feature.",
)
SUBSCRIBE_ALREADY_ACTIVE = Rule(
    code="subscribe.already_active",
    faqs=(),
    summary="re-subscribing while quota is left is refused",
    advice=(
        "Buy an add-on package, unsubscribe (the unused quota is forfeited), or "
        "subscribe again once the quota is used up or the period ends on {period_end}."
    ),
)
UNSUBSCRIBE_ENTERPRISE_ONLY = Rule(
    code="unsubscribe.enterprise_only",
    faqs=("Q4",),
    summary="only an Enterprise subscription can be unsubscribed",
    advice="There is no Enterprise Edition subscription to unsubscribe from.",
)
TRANSITION_NOT_ALLOWED = Rule(
    code="transition.not_allowed",
    faqs=(),
    summary="the operation has no transition from the current state",
    advice="{operation} is possible only from: {allowed}.",
)

RULES: tuple[Rule, ...] = (
    ADDON_ENTERPRISE_ONLY,
    TRIAL_ONCE_PER_MONTH,
    TRIAL_NO_DISCOUNT,
    TRIAL_FEATURE_EXCLUDED,
    TRIAL_NO_PAYG,
    SERVICE_UNAVAILABLE,
    QUOTA_PAYG_OVERAGE,
    RTC_AI_STANDARD_OR_HIGHER,
    SUBSCRIBE_ALREADY_ACTIVE,
    UNSUBSCRIBE_ENTERPRISE_ONLY,
    TRANSITION_NOT_ALLOWED,
    EDITION_FEATURE_EXCLUDED,
)
"""Every rule, in the order of SPEC section 3; ``edition.feature_excluded``,
which the SPEC does not list (see the README's decisions), last."""

BY_CODE: Mapping[str, Rule] = {rule.code: rule for rule in RULES}
