"""Settling usage: which rule pays for a feature, and how a quantity splits.

``terms`` answers, for a state and a feature, how it is paid (credits,
pay-as-you-go, included, or denied) and by which rule; ``authorize`` reads it
as it is, ``split`` draws the credits it names. Keeping both on one function
means a usage is never settled differently from what ``authorize`` promised.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, Inexact

import attrs

from lifecycle.catalog import Catalog, Edition, Meter, TrialPackage
from lifecycle.money import DIVISION, MONEY, ZERO
from lifecycle.rules import (
    EDITION_FEATURE_EXCLUDED,
    QUOTA_PAYG_OVERAGE,
    RTC_AI_STANDARD_OR_HIGHER,
    SERVICE_UNAVAILABLE,
    TRIAL_FEATURE_EXCLUDED,
    TRIAL_NO_PAYG,
    Rule,
)
from lifecycle.states import (
    ENTERPRISE_ACTIVE,
    QUOTA_EXHAUSTED_PAYG,
    TRIAL,
    UNAVAILABLE,
    State,
)
from lifecycle.values import Billing


@attrs.frozen
class Terms:
    """How a feature is paid in a state.

    For ``billing == "credits"``, ``overflow`` is the rule for what the
    credits cannot cover: ``trial.no_payg`` (denied) in a trial,
    ``quota.payg_overage`` (pay-as-you-go) under Enterprise.
    """

    billing: Billing
    rule: Rule | None = None
    overflow: Rule | None = None


DECIDES: Mapping[Rule, tuple[State, ...]] = {
    TRIAL_FEATURE_EXCLUDED: (TRIAL,),
    TRIAL_NO_PAYG: (TRIAL,),
    SERVICE_UNAVAILABLE: tuple(state for state in State if state in UNAVAILABLE),
    QUOTA_PAYG_OVERAGE: (ENTERPRISE_ACTIVE, QUOTA_EXHAUSTED_PAYG),
    RTC_AI_STANDARD_OR_HIGHER: tuple(State),
    EDITION_FEATURE_EXCLUDED: (ENTERPRISE_ACTIVE, QUOTA_EXHAUSTED_PAYG),
}
"""The rules that decide how usage is paid, and the states they decide it in
(for the rules reference; a test holds ``terms`` to it)."""

_INCLUDED = Terms("included")
_UNAVAILABLE = Terms("denied", SERVICE_UNAVAILABLE)
_TRIAL_EXCLUDED = Terms("denied", TRIAL_FEATURE_EXCLUDED)
_EDITION_EXCLUDED = Terms("denied", EDITION_FEATURE_EXCLUDED)
_RTC_PAYG = Terms("payg", RTC_AI_STANDARD_OR_HIGHER)
_OVERAGE = Terms("payg", QUOTA_PAYG_OVERAGE)
_TRIAL_CREDITS = Terms("credits", overflow=TRIAL_NO_PAYG)
_TRIAL_NO_PAYG = Terms("denied", TRIAL_NO_PAYG)
_ENTERPRISE_CREDITS = Terms("credits", overflow=QUOTA_PAYG_OVERAGE)


def terms(
    state: State,
    feature: str,
    meter: Meter | None,
    edition: Edition | None,
    trial: TrialPackage | None,
    catalog: Catalog,
) -> Terms:
    """How ``feature`` (billed by ``meter``, if any) is paid in ``state``.

    ``edition`` is the terms of the Enterprise edition in force (None outside
    Enterprise) and ``trial`` those of the trial in force (None outside a
    trial): what the customer bought, pinned. ``catalog`` is the one in force
    now, which prices and ranks the meter.
    """
    if trial is not None and feature in trial.excluded_features:
        return _TRIAL_EXCLUDED
    enterprise = edition is not None
    if edition is not None and feature not in edition.features:
        # NOTE: a feature billed without any subscription (RTC AI, Q7) stays
        # pay-as-you-go for a subscriber whose edition does not include it.
        if meter is not None and meter.payg_without_subscription:
            return _RTC_PAYG
        return _EDITION_EXCLUDED
    edition_too_low = (
        meter is not None
        and meter.min_edition is not None
        and not (edition is not None and edition.rank >= catalog.rank(meter.min_edition))
    )
    if (
        meter is not None
        and meter.payg_without_subscription
        and (edition_too_low or not enterprise)
    ):
        return _RTC_PAYG
    if state in UNAVAILABLE:
        return _UNAVAILABLE
    if meter is None:
        return _INCLUDED
    if edition_too_low:
        return _RTC_PAYG if enterprise else _TRIAL_NO_PAYG
    if state is QUOTA_EXHAUSTED_PAYG:
        return _OVERAGE
    return _TRIAL_CREDITS if state is TRIAL else _ENTERPRISE_CREDITS


@attrs.frozen
class Split:
    """A quantity split over base credits, add-ons, pay-as-you-go and denied,
    with the credits left in each pool afterwards."""

    quota: Decimal
    addons: Decimal
    payg: Decimal
    denied: Decimal
    rule: Rule | None
    base_left: Decimal
    addons_left: tuple[Decimal, ...]


def split(
    how: Terms,
    quantity: Decimal,
    rate: Decimal,
    base: Decimal,
    addons: tuple[Decimal, ...],
) -> Split:
    """Split ``quantity`` units as ``how`` says, drawing ``rate`` credits per unit
    from ``base`` first, then from each add-on in purchase order."""
    if how.billing == "denied":
        return Split(ZERO, ZERO, ZERO, quantity, how.rule, base, addons)
    if how.billing != "credits":
        return Split(ZERO, ZERO, quantity, ZERO, how.rule, base, addons)
    quota, base_left, rest = _draw(quantity, rate, base)
    from_addons = ZERO
    addons_left = []
    for pool in addons:
        if rest:
            covered, pool, rest = _draw(rest, rate, pool)
            from_addons = MONEY.add(from_addons, covered)
        addons_left.append(pool)
    if not rest:
        return Split(quota, from_addons, ZERO, ZERO, None, base_left, tuple(addons_left))
    payg, denied = (ZERO, rest) if how.overflow is TRIAL_NO_PAYG else (rest, ZERO)
    return Split(quota, from_addons, payg, denied, how.overflow, base_left, tuple(addons_left))


def _draw(units: Decimal, rate: Decimal, pool: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """Cover ``units`` from ``pool`` credits: (units covered, credits left, units left)."""
    need = MONEY.multiply(units, rate)
    if need <= pool:
        return units, MONEY.subtract(pool, need), ZERO
    exact = MONEY.copy()
    exact.clear_flags()  # NOTE: a copy keeps MONEY's flags, set by any rounding before
    covered = exact.divide(pool, rate)
    if exact.flags[Inexact]:
        covered = DIVISION.divide(pool, rate)
    return covered, ZERO, MONEY.subtract(units, covered)
