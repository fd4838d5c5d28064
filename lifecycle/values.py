"""The value objects operations hand back; all frozen, money and credits Decimal."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal

import attrs

from lifecycle.states import State

Billing = Literal["credits", "payg", "included", "denied"]


class Details(Mapping[str, str]):
    """A history entry's details: a read-only mapping of strings, in the order given.

    A subscription holds a few of these for as long as it lives, so they are
    compact: the names are a tuple shared by every entry with the same names
    (and order), the values a tuple; a dict and a read-only proxy over it
    took three times the memory.
    """

    __slots__ = ("_names", "_values")

    _names: tuple[str, ...]
    _values: tuple[str, ...]

    def __init__(self, details: Mapping[str, str] = MappingProxyType({})) -> None:
        names = tuple(details)
        self._names = _LAYOUTS.get(names) or _layout(names)
        if type(details) is dict:  # its values are in its names' order
            self._values = tuple(details.values())
        else:
            self._values = tuple([details[name] for name in names])

    def __getitem__(self, name: str) -> str:
        try:
            return self._values[self._names.index(name)]
        except ValueError:
            raise KeyError(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __eq__(self, other: object) -> bool:
        if type(other) is Details and self._names is other._names:
            return self._values == other._values
        if isinstance(other, Mapping):  # in any order, as a dict compares
            return dict(zip(self._names, self._values, strict=True)) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Details({dict(zip(self._names, self._values, strict=True))!r})"


_LAYOUTS: dict[tuple[str, ...], tuple[str, ...]] = {}
"""The names of details met so far, one tuple each (a few: one per trigger)."""


def _layout(names: tuple[str, ...]) -> tuple[str, ...]:
    # NOTE: bounded, since a record may order its details any way it likes.
    if len(_LAYOUTS) < 256:
        _LAYOUTS[names] = names
    return names


def _read_only(details: Mapping[str, str]) -> Mapping[str, str]:
    """A read-only copy: history is a record of what happened, not a scratch pad."""
    return details if type(details) is Details else Details(details)


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
    requested_at: datetime = attrs.field(
        default=attrs.Factory(lambda self: self.at, takes_self=True)
    )
    """The caller's ``at``; later than ``at`` never, earlier for a late arrival."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: Decimals as strings, times ISO 8601 with their offset."""
        from lifecycle import views

        return views.transition(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transition:
        """Back from ``to_dict()``, validated (``InvalidInput`` names the field)."""
        from lifecycle import views

        return views.transition_from(data)


@attrs.frozen
class Receipt:
    """What a purchase or an unsubscribe did: ``amount`` charged, ``state`` after.

    ``replayed`` is True when this is the answer to a key seen before (the
    first result, returned again); it takes no part in equality.
    """

    operation: str
    key: str
    at: datetime
    amount: Decimal
    state: State
    forfeited: Decimal
    requested_at: datetime = attrs.field(
        default=attrs.Factory(lambda self: self.at, takes_self=True)
    )
    replayed: bool = attrs.field(default=False, eq=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: Decimals as strings, times ISO 8601 with their offset."""
        from lifecycle import views

        return views.receipt(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Receipt:
        """Back from ``to_dict()``, validated (``InvalidInput`` names the field)."""
        from lifecycle import views

        return views.receipt_from(data)


@attrs.frozen
class Settlement:
    """How one usage record was paid: quota + addons + payg + denied == quantity.

    ``quota`` is base (or trial) credits' share, in the meter's units;
    ``amount`` is ``payg`` times the meter's pay-as-you-go price; ``rule`` is
    the code of the rule that decided the split, if one did; ``credits`` is
    how many credits the usage drew (units times the meter's credit rate).
    ``replayed`` is True when this is the first settlement of a usage id seen
    before, returned again; it takes no part in equality.
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
    requested_at: datetime = attrs.field(
        default=attrs.Factory(lambda self: self.at, takes_self=True)
    )
    replayed: bool = attrs.field(default=False, eq=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: Decimals as strings, times ISO 8601 with their offset."""
        from lifecycle import views

        return views.settlement(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settlement:
        """Back from ``to_dict()``, validated (``InvalidInput`` names the field)."""
        from lifecycle import views

        return views.settlement_from(data)


@attrs.frozen
class Decision:
    """Whether a feature may be used now, and how it would be paid."""

    allowed: bool
    billing: Billing
    rule: str | None

    def to_dict(self) -> dict[str, Any]:
        from lifecycle import views

        return views.decision(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        from lifecycle import views

        return views.decision_from(data)
