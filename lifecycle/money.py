"""Money and credits: exact Decimal arithmetic, and the range of figures accepted."""

from __future__ import annotations

from decimal import MAX_EMAX, MIN_EMIN, ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal

ZERO = Decimal(0)

# NOTE: contexts fixed here, so that a caller who changes their thread's
# decimal context does not change what a customer is billed. Every figure that
# enters (quantities, prices, credits) is bounded by `in_range`, so sums,
# differences and products fit in MONEY's thousand digits and are exact. Only
# a division that does not terminate (credits over a credit rate such as 3) is
# rounded: to 28 digits, towards zero, so credits never cover more units than
# they pay for and no part of a split can go negative.
MONEY = Context(prec=1000, rounding=ROUND_HALF_EVEN, Emax=MAX_EMAX, Emin=MIN_EMIN)
DIVISION = Context(prec=28, rounding=ROUND_DOWN)

MAX_LENGTH, SMALLEST, LARGEST = 60, -50, 30


def in_range(number: Decimal) -> bool:
    """Whether a finite figure is one the library accepts: written in at most 60
    characters, and from 1E-50 to below 1E+31 in size (zero included).

    The bounds keep every sum and product the library makes exact in MONEY's
    precision; ``adjusted`` and ``str`` are used because ``as_tuple`` costs
    several times more, and this runs on every usage record.
    """
    return len(str(number)) <= MAX_LENGTH and SMALLEST <= number.adjusted() <= LARGEST
