"""The states and the transition table, as data.

One table drives the machine (``machine.py``), the guards, the refusals, the
diagrams and the rules reference. Effects (what a transition does to
credits and periods) live in ``subscription.py``, not here: this module says
only what may happen.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from lifecycle.rules import (
    ADDON_ENTERPRISE_ONLY,
    SUBSCRIBE_ALREADY_ACTIVE,
    TRANSITION_NOT_ALLOWED,
    TRIAL_NO_DISCOUNT,
    TRIAL_ONCE_PER_MONTH,
    UNSUBSCRIBE_ENTERPRISE_ONLY,
    Rule,
)


class State(enum.StrEnum):
    """Where a customer's subscription stands."""

    NONE = "none"
    TRIAL = "trial"
    TRIAL_EXHAUSTED = "trial-exhausted"
    ENTERPRISE_ACTIVE = "enterprise-active"
    QUOTA_EXHAUSTED_PAYG = "quota-exhausted-payg"
    UNSUBSCRIBED = "unsubscribed"
    EXPIRED = "expired"


NONE = State.NONE
TRIAL = State.TRIAL
TRIAL_EXHAUSTED = State.TRIAL_EXHAUSTED
ENTERPRISE_ACTIVE = State.ENTERPRISE_ACTIVE
QUOTA_EXHAUSTED_PAYG = State.QUOTA_EXHAUSTED_PAYG
UNSUBSCRIBED = State.UNSUBSCRIBED
EXPIRED = State.EXPIRED

ENTERPRISE = frozenset({ENTERPRISE_ACTIVE, QUOTA_EXHAUSTED_PAYG})
"""States with an Enterprise Edition subscription inside its validity period."""

UNAVAILABLE = frozenset({NONE, TRIAL_EXHAUSTED, UNSUBSCRIBED, EXPIRED})
"""States in which no IMS feature is usable (``service.unavailable``)."""

NOT_ENTERPRISE = (NONE, TRIAL, TRIAL_EXHAUSTED, UNSUBSCRIBED, EXPIRED)

STATES: Mapping[str, State] = {state.value: state for state in State}
"""Each state by its value: a dict lookup, where ``State(value)`` costs an enum
call (the machine's model holds the value, a plain string)."""


@attrs.frozen
class Edge:
    """A transition: ``trigger`` takes any of ``sources`` to ``dest``.

    A caller operation has no ``cause``; a transition the library makes by
    itself (time passing, credits used up) names its cause.
    """

    trigger: str
    sources: tuple[State, ...]
    dest: State
    guards: tuple[Rule, ...] = ()
    cause: str | None = None

    @property
    def automatic(self) -> bool:
        return self.cause is not None


@attrs.frozen
class Refusal:
    """An operation that ``rule`` refuses in each of ``sources`` (no transition)."""

    trigger: str
    sources: tuple[State, ...]
    rule: Rule


OPERATIONS = ("purchase_trial", "subscribe", "buy_addon", "unsubscribe")
"""The caller operations that change state, in the SPEC's order."""

EDGES: tuple[Edge, ...] = (
    Edge(
        "purchase_trial",
        (NONE, TRIAL_EXHAUSTED, UNSUBSCRIBED, EXPIRED),
        TRIAL,
        guards=(TRIAL_ONCE_PER_MONTH, TRIAL_NO_DISCOUNT),
    ),
    Edge(
        "subscribe",
        (NONE, TRIAL, TRIAL_EXHAUSTED, QUOTA_EXHAUSTED_PAYG, UNSUBSCRIBED, EXPIRED),
        ENTERPRISE_ACTIVE,
    ),
    Edge("buy_addon", (ENTERPRISE_ACTIVE, QUOTA_EXHAUSTED_PAYG), ENTERPRISE_ACTIVE),
    Edge("unsubscribe", (ENTERPRISE_ACTIVE, QUOTA_EXHAUSTED_PAYG), UNSUBSCRIBED),
    Edge("trial_used_up", (TRIAL,), TRIAL_EXHAUSTED, cause="trial credits reach zero"),
    Edge("trial_ended", (TRIAL,), TRIAL_EXHAUSTED, cause="trial validity ends"),
    Edge(
        "quota_used_up",
        (ENTERPRISE_ACTIVE,),
        QUOTA_EXHAUSTED_PAYG,
        cause="base quota and add-ons reach zero",
    ),
    Edge(
        "period_ended",
        (ENTERPRISE_ACTIVE, QUOTA_EXHAUSTED_PAYG),
        EXPIRED,
        cause="validity period ends",
    ),
)

REFUSALS: tuple[Refusal, ...] = (
    Refusal("subscribe", (ENTERPRISE_ACTIVE,), SUBSCRIBE_ALREADY_ACTIVE),
    Refusal("buy_addon", NOT_ENTERPRISE, ADDON_ENTERPRISE_ONLY),
    Refusal("unsubscribe", NOT_ENTERPRISE, UNSUBSCRIBE_ENTERPRISE_ONLY),
)

_EDGE: Mapping[tuple[str, State], Edge] = {
    (edge.trigger, source): edge for edge in EDGES for source in edge.sources
}
_REFUSAL: Mapping[tuple[str, State], Rule] = {
    (refusal.trigger, source): refusal.rule for refusal in REFUSALS for source in refusal.sources
}


def edge(trigger: str, state: State) -> Edge | None:
    """The edge ``trigger`` takes from ``state``, or None when it has none."""
    return _EDGE.get((trigger, state))


def refusing_rule(trigger: str, state: State) -> Rule:
    """The rule that refuses ``trigger`` in ``state``, where no edge leaves it."""
    return _REFUSAL.get((trigger, state), TRANSITION_NOT_ALLOWED)


def sources(trigger: str) -> tuple[State, ...]:
    """Every state ``trigger`` has an edge from, in table order."""
    return tuple(state for state in State if (trigger, state) in _EDGE)
