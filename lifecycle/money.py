"""Money and credits: exact Decimal arithmetic, and the range of figures accepted.

Nothing here reads the caller's decimal context: sums, products, parsing and
the text of a figure all go through the contexts fixed below, so a caller who
changes their thread's context (precision, traps, capitals) changes nothing a
customer is billed or a record holds.
"""

from __future__ import annotations

from decimal import (
    MAX_EMAX,
    MIN_EMIN,
    ROUND_DOWN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    InvalidOperation,
)

ZERO = Decimal(0)

# NOTE: contexts fixed here, so that a caller who changes their thread's
# decimal context does not change what a customer is billed. Every figure that
# enters (quantities, prices, credits) is bounded by `in_range`, so sums,
# differences and products fit in MONEY's thousand digits and are exact. Only
# a division that does not terminate (credits over a credit rate such as 3) is
# rounded: to 28 digits, towards zero, so credits never cover more units than
# they pay for and no part of a split can go negative.
MONEY = Context(prec=1000, rounding=ROUND_HALF_EVEN, Emax=MAX_EMAX, Emin=MIN_EMIN, capitals=1)
DIVISION = Context(prec=28, rounding=ROUND_DOWN)

MAX_LENGTH, SMALLEST, LARGEST = 60, -50, 30


def in_range(number: Decimal) -> bool:
    """Whether a finite figure is one the library accepts: written in at most 60
    characters, and from 1E-50 to below 1E+31 in size (zero included).

    The bounds keep every sum and product the library makes exact in MONEY's
    precision; ``adjusted`` and the text's length are used because ``as_tuple``
    costs several times more, and this runs on every usage record.
    """
    return len(text(number)) <= MAX_LENGTH and SMALLEST <= number.adjusted() <= LARGEST


def text(number: Decimal) -> str:
    """A figure's text for records and details: ``str()``, but not the caller's
    (``str`` follows the thread's context in writing ``1E+5`` or ``1e+5``)."""
    return MONEY.to_sci_string(number)


def parse(value: str) -> Decimal | None:
    """``value`` (ASCII text) as a Decimal, or None when it is not a number.

    ``Decimal(value)`` answers NaN instead of raising when the caller's context
    does not trap InvalidOperation; MONEY always traps it.
    """
    if not value.isascii():
        return None
    try:
        return MONEY.create_decimal(value)
    except (InvalidOperation, ValueError):
        return None
