"""Time: the default clock, aware-datetime checks, calendar months in a zone.

Calendar months are counted in the catalog's time zone, never in UTC: a trial
bought at 00:30 on 1 March in Shanghai is a March trial although UTC still
says February. Instants are kept in UTC inside the library.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from lifecycle.errors import InvalidInput, shown

Clock = Callable[[], datetime]

FIRST_YEAR, LAST_YEAR = 1000, 9000
"""Instants outside these years are refused. The margin keeps every sum the
library makes (a period of up to 100 years, an idempotency window, a zone's
offset) inside what ``datetime`` can hold, so none of them can overflow
halfway through an operation."""

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def utc_now() -> datetime:
    """The default clock: the current instant, read at call time.

    It looks ``datetime`` up on every call, so freezegun moves it.
    """
    return datetime.now(UTC)


def read_clock(clock: Clock) -> datetime:
    """The clock's reading as a UTC datetime; a clock that fails is reported as such."""
    try:
        reading = clock()
    except Exception as error:
        raise InvalidInput(
            "clock", f"raised {shown(error)}; a clock takes no arguments and returns a datetime"
        ) from error
    return aware(reading, "clock")


def aware(value: object, field: str) -> datetime:
    """Return ``value`` as a UTC datetime, or raise ``InvalidInput`` naming ``field``."""
    if type(value) is datetime and value.tzinfo is UTC and FIRST_YEAR <= value.year <= LAST_YEAR:
        return value  # the usual case: every check below passes, checked at once
    if not isinstance(value, datetime):
        raise InvalidInput(
            field,
            f"expected a timezone-aware datetime, got {type(value).__name__}",
            code="input.not_a_datetime",
        )
    try:
        offset = value.utcoffset()
    except (TypeError, ValueError) as error:
        raise InvalidInput(field, f"its tzinfo is broken: {error}") from None
    if offset is None:
        raise InvalidInput(
            field,
            f"{value.isoformat()} is naive; pass a timezone-aware datetime "
            "(for example datetime(..., tzinfo=timezone.utc))",
            code="input.naive_datetime",
        )
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise InvalidInput(
            field,
            f"{value.isoformat()} is out of range (years {FIRST_YEAR} to {LAST_YEAR})",
            code="input.out_of_range",
        )
    if value.tzinfo is UTC:
        return value
    return value.astimezone(UTC)


def add_months(at: datetime, months: int, zone: ZoneInfo) -> datetime:
    """``at`` plus ``months`` calendar months in ``zone``, the day clamped at month end.

    The local wall time is kept (31 January 10:00 + 1 month = 28 February
    10:00). A wall time that daylight saving skips or repeats is resolved the
    way ``zoneinfo`` resolves it (``fold=0``), so the result is deterministic.
    """
    local = at.astimezone(zone)
    index = local.month - 1 + months
    year, month = local.year + index // 12, index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day, fold=0).astimezone(UTC)


def month_of(at: datetime, zone: ZoneInfo) -> tuple[int, int]:
    """The (year, month) of ``at`` on the calendar of ``zone``."""
    local = at.astimezone(zone)
    return local.year, local.month


def next_month_start(at: datetime, zone: ZoneInfo) -> datetime:
    """The first instant of the calendar month after the one holding ``at``."""
    year, month = month_of(at, zone)
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return datetime(year, month, 1, tzinfo=zone).astimezone(UTC)


def describe(at: datetime, zone: ZoneInfo) -> str:
    """A human date-time in ``zone``, for messages: ``1 April 2026 00:00 (Asia/Shanghai)``."""
    local = at.astimezone(zone)
    # NOTE: month names spelt out here, not with %B, which follows the locale.
    return f"{local.day} {MONTHS[local.month - 1]} {local:%Y %H:%M} ({zone.key})"
