"""Time: aware datetimes only, calendar months in the catalog's zone."""

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

import lifecycle as lc
from lifecycle.clock import add_months, aware, month_of, next_month_start

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        ((2026, 1, 31), 1, (2026, 2, 28)),
        ((2028, 1, 31), 1, (2028, 2, 29)),
        ((2026, 1, 31), 3, (2026, 4, 30)),
        ((2026, 3, 31), 12, (2027, 3, 31)),
        ((2026, 11, 30), 3, (2027, 2, 28)),
        ((2026, 12, 15), 1, (2027, 1, 15)),
    ],
)
def test_add_months_clamps_the_day(
    start: tuple[int, int, int], months: int, end: tuple[int, int, int]
) -> None:
    """Calendar months keep the wall time and clamp the day at month end."""
    at = datetime(*start, 10, 0, tzinfo=SHANGHAI)
    assert datetime(*end, 10, 0, tzinfo=SHANGHAI) == add_months(at, months, SHANGHAI)


def test_add_months_counts_in_the_zone_not_utc() -> None:
    """00:30 on 31 January in Shanghai is 30 January in UTC; a month on is 28 February."""
    at = datetime(2026, 1, 31, 0, 30, tzinfo=SHANGHAI)
    assert datetime(2026, 2, 28, 0, 30, tzinfo=SHANGHAI) == add_months(at, 1, SHANGHAI)


def test_add_months_across_daylight_saving() -> None:
    """In Berlin a month from 10:00 in March (CET) is 10:00 in April (CEST)."""
    at = datetime(2026, 3, 10, 10, 0, tzinfo=BERLIN)
    end = add_months(at, 1, BERLIN)
    assert datetime(2026, 4, 10, 10, 0, tzinfo=BERLIN) == end
    assert timedelta(days=31) - timedelta(hours=1) == end - at


def test_month_of_uses_the_zone() -> None:
    """The calendar month is the zone's: UTC February evening is Shanghai March."""
    at = datetime(2026, 2, 28, 16, 30, tzinfo=UTC)
    assert ((2026, 3), (2026, 2)) == (month_of(at, SHANGHAI), month_of(at, ZoneInfo("UTC")))
    assert datetime(2026, 4, 1, tzinfo=SHANGHAI) == next_month_start(at, SHANGHAI)


def test_aware_normalises_to_utc() -> None:
    """Any aware datetime is accepted and kept as the same instant in UTC."""
    at = datetime(2026, 3, 1, 8, 0, tzinfo=timezone(timedelta(hours=8)))
    assert datetime(2026, 3, 1, 0, 0, tzinfo=UTC) == aware(at, "at")
    assert UTC is aware(at, "at").tzinfo


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (datetime(2026, 3, 1), "input.naive_datetime"),
        ("2026-03-01T00:00:00+00:00", "input.not_a_datetime"),
        (datetime.max.replace(tzinfo=UTC), "input.out_of_range"),
    ],
)
def test_aware_refuses_bad_times(value: object, code: str) -> None:
    """A naive datetime, a string or an out-of-range instant is InvalidInput naming the field."""
    with pytest.raises(lc.InvalidInput) as info:
        aware(value, "at")
    assert ("at", code) == (info.value.field, info.value.code)
