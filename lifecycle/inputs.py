"""Arguments as the library accepts them: checked before anything is touched.

Every check here is the engine's, so a subscription kept in memory, in SQLite
or in PostgreSQL accepts and refuses exactly the same input, and a database
never sees a value it could reject.
"""

from __future__ import annotations

import math
import unicodedata
from decimal import Decimal

from lifecycle.errors import InvalidInput, shown
from lifecycle.money import in_range, parse, text

MAX_KEY_LENGTH = 255
MAX_TERM_MONTHS = 1200
MAX_DRAIN_LIMIT = 10000
"""The most messages one claim of ``drain_outbox`` takes (its ``limit``)."""


def identifier(value: object, field: str, code: str = "input.bad_key") -> str:
    """A customer id or a caller key: a non-blank string of at most 255 characters,
    with no control characters (NUL included) and no lone surrogates."""
    if type(value) is str and value.isprintable() and value.strip() and len(value) <= 255:
        return value  # the usual case, checked at once
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field, f"expected a non-blank string, got {shown(value)}", code=code)
    if len(value) > MAX_KEY_LENGTH:
        raise InvalidInput(
            field,
            f"is {len(value)} characters long; at most {MAX_KEY_LENGTH} are allowed",
            code=code,
        )
    for index, char in enumerate(value):
        kind = unicodedata.category(char)
        if kind in ("Cc", "Cs"):
            what = "control character" if kind == "Cc" else "unpaired surrogate"
            raise InvalidInput(
                field,
                f"holds the {what} {shown(char)} at position {index}; ids and keys hold text "
                "a database can store, with no control characters",
                code=code,
            )
    return str(value)  # printable or not, nothing a database refuses


def customer_id(value: object) -> str:
    return identifier(value, "customer_id", "input.bad_customer_id")


def number(value: object, field: str, code: str) -> Decimal:
    """``value`` as a Decimal: Decimal, int, a finite float or a numeric string."""
    parsed: Decimal | None
    if isinstance(value, Decimal):
        parsed = value
    elif isinstance(value, bool):
        raise InvalidInput(field, f"expected a number, got {shown(value)}", code=code)
    elif isinstance(value, int):
        parsed = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(field, f"{shown(value)} is not a finite number", code=code)
        # NOTE: the shortest repr, so 0.1 means Decimal("0.1"), not its binary value.
        parsed = Decimal(repr(value))
    elif isinstance(value, str):
        parsed = parse(value.strip())
    else:
        raise InvalidInput(field, f"expected a Decimal, got {type(value).__name__}", code=code)
    if parsed is None:
        raise InvalidInput(field, f"{shown(value)} is not a number", code=code)
    if not parsed.is_finite():
        raise InvalidInput(field, f"{shown(value)} is not a finite number", code=code)
    if not in_range(parsed):
        raise InvalidInput(
            field,
            f"{shown(value)} is out of range (at most 60 characters, from 1E-50 to below 1E+31)",
            code=code,
        )
    return parsed


def quantity(value: object) -> Decimal:
    if type(value) is Decimal and value.is_finite() and value > 0 and in_range(value):
        return value  # the hot path: a valid Decimal, checked without more ado
    parsed = number(value, "quantity", "input.bad_quantity")
    if parsed <= 0:
        raise InvalidInput(
            "quantity", f"must be positive, got {shown(value)}", code="input.bad_quantity"
        )
    return parsed


def discount(value: object) -> str | None:
    """None for no discount (None or zero); otherwise what was asked, as text."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip() and parse(value.strip()) is None:
        return value  # a coupon code: a discount all the same
    parsed = number(value, "discount", "input.bad_discount")
    if parsed < 0:
        raise InvalidInput(
            "discount", f"must not be negative, got {shown(value)}", code="input.bad_discount"
        )
    return None if parsed == 0 else text(parsed)


def term(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(
            "term_months",
            f"expected a whole number of months, got {shown(value)}",
            code="input.bad_term",
        )
    if not 1 <= value <= MAX_TERM_MONTHS:
        raise InvalidInput(
            "term_months",
            f"must be between 1 and {MAX_TERM_MONTHS}, got {shown(value)}",
            code="input.bad_term",
        )
    return value
