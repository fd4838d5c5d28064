"""Time: aware datetimes only, calendar months in the catalog's zone."""

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
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


class _BrokenZone(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta:
        return 8  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (datetime(2026, 3, 1), "is naive; pass a timezone-aware datetime (for example"),
        ("2026-03-01", "expected a timezone-aware datetime, got str"),
        (datetime(2026, 3, 1, tzinfo=_BrokenZone()), "its tzinfo is broken"),
        (datetime(9001, 1, 1, tzinfo=UTC), "out of range (years 1000 to 9000)"),
    ],
)
def test_time_errors_say_what_is_wrong(value: object, words: str) -> None:
    """Each refusal of a time names the field and says what was wrong with it."""
    with pytest.raises(lc.InvalidInput, match=re.escape(words)) as info:
        aware(value, "at")
    assert "at" == info.value.field


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        (datetime(1000, 1, 1, tzinfo=UTC), True),
        (datetime(999, 12, 31, tzinfo=UTC), False),
        (datetime(9000, 12, 31, tzinfo=UTC), True),
        (datetime(9001, 1, 1, tzinfo=UTC), False),
    ],
)
def test_years_1000_to_9000_inclusive(value: datetime, accepted: bool) -> None:
    """The accepted years are 1000 to 9000, both included."""
    try:
        aware(value, "at")
    except lc.InvalidInput:
        assert not accepted
    else:
        assert accepted


def test_month_arithmetic_returns_utc() -> None:
    """Computed ends are UTC instants, whatever the machine's local zone."""
    end = add_months(datetime(2026, 3, 10, 10, tzinfo=SHANGHAI), 1, SHANGHAI)
    assert UTC is end.tzinfo
    assert UTC is next_month_start(end, SHANGHAI).tzinfo


def test_a_month_landing_on_a_repeated_hour_takes_the_first() -> None:
    """A month that lands in the hour daylight saving repeats takes its first occurrence
    (fold=0), even from a start that was itself the second occurrence."""
    second = datetime(2025, 10, 26, 2, 30, fold=1, tzinfo=BERLIN)
    assert datetime(2025, 10, 26, 1, 30, tzinfo=UTC) == second.astimezone(UTC)
    landed = add_months(second, 72, BERLIN)  # 26 October 2031: daylight saving ends again
    assert datetime(2031, 10, 26, 0, 30, tzinfo=UTC) == landed
    first = add_months(datetime(2026, 9, 25, 2, 30, tzinfo=BERLIN), 1, BERLIN)
    assert datetime(2026, 10, 25, 0, 30, tzinfo=UTC) == first


def test_next_month_of_december_is_january() -> None:
    """The month after December is January of the next year."""
    december = datetime(2026, 12, 15, tzinfo=SHANGHAI)
    assert datetime(2027, 1, 1, tzinfo=SHANGHAI) == next_month_start(december, SHANGHAI)
    assert datetime(2026, 12, 1, tzinfo=SHANGHAI) == next_month_start(
        datetime(2026, 11, 30, 23, 59, tzinfo=SHANGHAI), SHANGHAI
    )
