"""Checks for the fields of a record: each returns the value or names the field.

Field paths are only built on the way to an error, never on the success path:
loading a record is mostly these helpers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from lifecycle.clock import FIRST_YEAR, LAST_YEAR
from lifecycle.errors import InvalidInput, shown
from lifecycle.inputs import MAX_KEY_LENGTH, identifier
from lifecycle.money import parse
from lifecycle.rules import BY_CODE
from lifecycle.states import STATES as _STATES
from lifecycle.states import State


def bad(field: str, problem: str) -> InvalidInput:
    return InvalidInput(field, problem, code="record.invalid")


def path(where: str, name: str) -> str:
    return f"{where}.{name}" if where and name else where or name


def text(value: object, where: str, name: str = "", *, optional: bool = False) -> Any:
    if type(value) is str and value:
        return value
    if value is None and optional:
        return None
    raise bad(path(where, name), f"expected a non-empty string, got {shown(value)}")


def key(value: object, where: str, name: str = "", *, optional: bool = False) -> Any:
    """A caller key: the same rules as the operations apply to it."""
    if type(value) is str and value.isprintable() and value.strip() and len(value) <= 255:
        return value
    if value is None and optional:
        return None
    try:
        return identifier(value, path(where, name))
    except InvalidInput:
        raise bad(
            path(where, name),
            f"expected a key of 1 to {MAX_KEY_LENGTH} characters, got {shown(value)}",
        ) from None


KEPT = 4096
"""How many texts each memo below keeps checked (then it starts afresh)."""

KEPT_LENGTH = 450
"""The longest text a memo keeps: a record's own are far shorter, and a long one
(valid or not) is checked each time rather than held by the process."""

_INSTANTS: dict[str, datetime] = {}


def instant(value: object, where: str, name: str = "", *, optional: bool = False) -> Any:
    """``value`` as an aware UTC datetime.

    NOTE: kept by its exact text, as ``decimal`` keeps figures: a record
    repeats its timestamps (a purchase's, in its entry and in the ledger), and
    a store loads the same customer's over and over.
    """
    if type(value) is not str:
        if value is None and optional:
            return None
        raise bad(path(where, name), f"expected an ISO 8601 timestamp, got {shown(value)}")
    parsed = _INSTANTS.get(value)
    if parsed is not None:
        return parsed
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise bad(path(where, name), f"{shown(value)} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is not UTC and parsed.utcoffset() is None:
        raise bad(path(where, name), f"{shown(value)} is naive; records hold aware timestamps")
    if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
        raise bad(path(where, name), f"{shown(value)} is out of range")
    if parsed.tzinfo is not UTC:
        parsed = parsed.astimezone(UTC)
    _keep(_INSTANTS, value, parsed, len(value))
    return parsed


def _keep(memo: dict[Any, Any], text: Any, value: Any, length: int) -> None:
    if length > KEPT_LENGTH:
        return
    if len(memo) >= KEPT:
        memo.clear()
    memo[text] = value


_FIGURES: dict[str, Decimal] = {}


def decimal(value: object, where: str, name: str = "", *, positive: bool = False) -> Decimal:
    """``value`` as a finite, non-negative Decimal (positive if asked).

    NOTE: the checked figure is kept by its exact text, for every record this
    process reads: what a text means, and whether it passes, never changes,
    and records repeat a few texts ("0", prices, credits) over and over. Only
    a ``str`` is looked up, so nothing equal to a text but of another type is
    ever taken for it; the Decimals are immutable and shared.
    """
    if type(value) is not str:
        raise bad(path(where, name), f"expected a decimal string, got {shown(value)}")
    number = _FIGURES.get(value)
    if number is None:
        number = parse(value)
        if number is None:
            raise bad(path(where, name), f"{shown(value)} is not a decimal number")
        if not number.is_finite() or number.is_signed() or not _recordable(number, value):
            raise bad(path(where, name), f"{shown(value)} must be a finite non-negative number")
        _keep(_FIGURES, value, number, len(value))
    if positive and not number:
        raise bad(path(where, name), f"{shown(value)} must be a positive number")
    return number


def _recordable(number: Decimal, text: str) -> bool:
    # Looser than the bounds on input: a stored figure may carry the digits of
    # a division or of many sums, but nothing near the limits of arithmetic.
    return len(text) <= 450 and -450 <= number.adjusted() <= 100


def integer(value: object, where: str, name: str, *, lowest: int, highest: int) -> int:
    if type(value) is int and lowest <= value <= highest:
        return value
    raise bad(path(where, name), f"expected a whole number from {lowest} to {highest}")


def state(value: object, where: str, name: str = "") -> State:
    # NOTE: transitions would silently accept an unknown state; we never do.
    found = _STATES.get(value) if type(value) is str else None
    if found is None:
        known = ", ".join(_STATES)
        raise bad(path(where, name), f"{shown(value)} is not a state; known: {known}")
    return found


_NAMES: dict[tuple[str, ...], frozenset[str]] = {}


def names(value: object, where: str, name: str) -> frozenset[str]:
    """A sorted list of distinct catalog names (features): one way to write a set.

    Kept by its names, checked to be exactly strings first (a ``str``
    subclass equal to a name is no name of a record), like ``decimal``'s.
    """
    if type(value) is list and all(type(v) is str for v in value):
        kept = tuple(value)
        found = _NAMES.get(kept)
        if found is not None:
            return found
        if all(v and "," not in v for v in kept):
            found = frozenset(kept)
            if len(found) == len(kept) and value == sorted(value):
                _keep(_NAMES, kept, found, sum(map(len, kept)) + len(kept))
                return found
    raise bad(path(where, name), "expected a sorted list of distinct names")


def rule(value: object, where: str) -> str | None:
    if value is None or (type(value) is str and value in BY_CODE):
        return value
    raise bad(f"{where}.rule", f"{shown(value)} is not a rule code")


def listed(value: object, field: str) -> list[Any]:
    if type(value) is not list:
        raise bad(field, f"expected a list, got {type(value).__name__}")
    return value


def mapping(value: object, field: str, fields: frozenset[str]) -> Mapping[str, Any]:
    if type(value) is dict and value.keys() == fields:
        return value
    if not isinstance(value, Mapping):
        raise bad(field or "record", f"expected an object, got {type(value).__name__}")
    missing = sorted(name for name in fields if name not in value)
    if missing:
        raise bad(path(field, missing[0]), "is missing")
    extra = sorted(str(name) for name in value if name not in fields)
    if extra:
        raise bad(path(field, extra[0]), "is not a record field")
    return value
