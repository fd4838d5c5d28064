"""ManualClock: stands still until told, refuses what would make time run backwards,
and ignores freezegun and time-machine (the default clock follows both)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from freezegun import freeze_time

import lifecycle as lc
from lifecycle.clock import utc_now
from lifecycle.testing import ManualClock
from tests.conftest import sh


def test_it_stands_still_until_moved() -> None:
    """Reading it twice gives the same instant; advance moves it by a delta or to a time."""
    clock = ManualClock(sh(2026, 3, 31, 23))
    assert clock() == clock() == sh(2026, 3, 31, 23)
    assert sh(2026, 4, 1, 1) == clock.advance(timedelta(hours=2))
    assert sh(2027, 1, 1) == clock.advance(to=sh(2027, 1, 1))
    assert sh(2027, 1, 1) == clock.now


@pytest.mark.parametrize(
    "move",
    [
        lambda c: c.advance(timedelta(seconds=-1)),
        lambda c: c.advance(to=sh(2026, 3, 1)),
        lambda c: c.advance(to=datetime(2027, 1, 1)),
        lambda c: c.advance(),
        lambda c: c.advance(timedelta(1), to=sh(2027, 1, 1)),
        lambda c: c.advance(5),
    ],
)
def test_it_refuses_backwards_naive_and_unclear_moves(move) -> None:  # type: ignore[no-untyped-def]
    """Backwards, naive, neither or both, not a timedelta: ValueError, and the clock
    has not moved."""
    clock = ManualClock(sh(2026, 3, 2))
    with pytest.raises(ValueError, match=r"."):
        move(clock)
    assert sh(2026, 3, 2) == clock()


def test_it_refuses_a_naive_start() -> None:
    """The start must be aware too."""
    with pytest.raises(ValueError, match="naive"):
        ManualClock(datetime(2026, 3, 2))


def test_freezegun_and_time_machine_leave_it_alone_and_move_the_default_clock() -> None:
    """Under freezegun or time-machine a ManualClock keeps its own time, while the
    default clock (and a subscription using it) follows them."""
    clock = ManualClock(sh(2026, 3, 2))
    sub = lc.Subscription.new("c")
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 2))
    with freeze_time("2026-05-01T00:00:00Z"):
        assert (sh(2026, 3, 2), datetime(2026, 5, 1, tzinfo=UTC)) == (clock(), utc_now())
        assert lc.State.TRIAL_EXHAUSTED == sub.state
    with time_machine.travel(datetime(2026, 3, 10, tzinfo=UTC), tick=False):
        assert (sh(2026, 3, 2), datetime(2026, 3, 10, tzinfo=UTC)) == (clock(), utc_now())
        assert lc.State.TRIAL == sub.state


BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("start", "delta"),
    [
        # 02:30 the second time on the night clocks go back (01:30 UTC)
        (datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN), timedelta(minutes=10)),
        # 02:59 summer time, a minute before they go back (00:59 UTC)
        (datetime(2026, 10, 25, 2, 59, tzinfo=BERLIN), timedelta(minutes=1)),
        # 01:59 winter time, a minute before they go forward (00:59 UTC)
        (datetime(2026, 3, 29, 1, 59, tzinfo=BERLIN), timedelta(minutes=1)),
    ],
)
def test_it_moves_by_elapsed_time_across_daylight_saving(start: datetime, delta: timedelta) -> None:
    """advance(delta) moves the instant by delta, whatever the zone's clocks do that
    night, and keeps the start's zone."""
    clock = ManualClock(start)
    moved = clock.advance(delta)
    assert delta == moved.astimezone(UTC) - start.astimezone(UTC)
    assert (moved, BERLIN) == (clock(), moved.tzinfo)


def test_it_refuses_an_earlier_instant_of_the_same_wall_time_zone() -> None:
    """02:45 summer time is earlier than 02:30 winter time (the same night): refused,
    though the wall clock reads later; the clock stays where it was."""
    clock = ManualClock(datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN))
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(to=datetime(2026, 10, 25, 2, 45, tzinfo=BERLIN))
    assert datetime(2026, 10, 25, 1, 30, tzinfo=UTC) == clock().astimezone(UTC)
