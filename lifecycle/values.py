"""The value objects operations hand back; all frozen, money and credits Decimal."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Literal

import attrs

from lifecycle.states import State

Billing = Literal["credits", "payg", "included", "denied"]


def _read_only(details: Mapping[str, str]) -> Mapping[str, str]:
    """A read-only copy: history is a record of what happened, not a scratch pad."""
    return MappingProxyType(dict(details))


@attrs.frozen
class Transition:
    """One entry of a subscription's history.

    ``trigger`` is the caller operation's name (``"subscribe"``) or the cause
    the library acted on (``"trial_ended"``, ``"period_ended"``,
    ``"trial_used_up"``, ``"quota_used_up"``); ``key`` is the caller key that
    caused it, if any; ``details`` holds strings only (amounts, credits
    forfeited or lapsed, the operation's arguments), so it is JSON-safe.
    """

    seq: int
    at: datetime
    trigger: str
    source: State
    dest: State
    key: str | None
    details: Mapping[str, str] = attrs.field(factory=dict, hash=False, converter=_read_only)


@attrs.frozen
class Receipt:
    """What a purchase or an unsubscribe did: ``amount`` charged, ``state`` after."""

    operation: str
    key: str
    at: datetime
    amount: Decimal
    state: State
    forfeited: Decimal


@attrs.frozen
class Settlement:
    """How one usage record was paid: quota + addons + payg + denied == quantity.

    ``quota`` is base (or trial) credits' share, in the meter's units;
    ``amount`` is ``payg`` times the meter's pay-as-you-go price; ``rule`` is
    the code of the rule that decided the split, if one did; ``credits`` is
    how many credits the usage drew (units times the meter's credit rate).
    """

    quota: Decimal
    addons: Decimal
    payg: Decimal
    denied: Decimal
    amount: Decimal
    rule: str | None
    credits: Decimal
    meter: str
    quantity: Decimal
    usage_id: str
    at: datetime
    state: State


@attrs.frozen
class Decision:
    """Whether a feature may be used now, and how it would be paid."""

    allowed: bool
    billing: Billing
    rule: str | None
