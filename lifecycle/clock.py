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

from lifecycle.errors import InvalidInput

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock: the current instant, read at call time.

    It looks ``datetime`` up on every call, so freezegun moves it.
    """
    return datetime.now(UTC)


def aware(value: object, field: str) -> datetime:
    """Return ``value`` as a UTC datetime, or raise ``InvalidInput`` naming ``field``."""
    if not isinstance(value, datetime):
        raise InvalidInput(
            field,
            f"expected a timezone-aware datetime, got {type(value).__name__}",
            code="input.not_a_datetime",
        )
    offset = value.utcoffset()
    if offset is None:
        raise InvalidInput(
            field,
            f"{value.isoformat()} is naive; pass a timezone-aware datetime "
            "(for example datetime(..., tzinfo=timezone.utc))",
            code="input.naive_datetime",
        )
    if not 2 <= value.year <= 9997:
        # NOTE: zone conversions and month arithmetic near datetime.min/max overflow.
        raise InvalidInput(field, f"{value.isoformat()} is out of range", code="input.out_of_range")
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
    if not 2 <= year <= 9998:
        raise InvalidInput(
            "at",
            f"{at.isoformat()} plus {months} months is beyond the calendar",
            code="input.out_of_range",
        )
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
    return f"{local.day} {local:%B %Y %H:%M} ({zone.key})"
