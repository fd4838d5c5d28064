"""``ManualClock``: a clock that moves only when told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lifecycle.clock import FIRST_YEAR, LAST_YEAR


class ManualClock:
    """A zero-argument callable returning an aware datetime, which stands still
    until ``advance`` moves it forward.

    It never reads the system clock, so freezegun and time-machine leave it
    alone; pass it as ``clock=`` to ``Subscription.new`` or ``SqlStore``.
    """

    __slots__ = ("_now",)

    def __init__(self, start: datetime) -> None:
        self._now = _aware(start, "start")

    def __call__(self) -> datetime:
        return self._now

    @property
    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | None = None, *, to: datetime | None = None) -> datetime:
        """Move forward by ``delta``, or to ``to``; return the new time.

        Moving backwards, a naive ``to``, or giving both or neither is a
        ``ValueError``.
        """
        if (delta is None) == (to is None):
            raise ValueError("advance(delta) or advance(to=datetime), one of the two")
        if delta is not None:
            if not isinstance(delta, timedelta):
                raise ValueError(f"delta: expected a timedelta, got {type(delta).__name__}")
            # NOTE: in UTC: in a zone's own time, across a change of daylight
            # saving, "10 minutes later" could be an hour off or earlier.
            target = (self._now.astimezone(UTC) + delta).astimezone(self._now.tzinfo)
        else:
            target = _aware(to, "to")
        # NOTE: in UTC too: two times of one zone compare by their wall clocks
        if target.astimezone(UTC) < self._now.astimezone(UTC):
            raise ValueError(
                f"a ManualClock only moves forward: {target.isoformat()} is before "
                f"{self._now.isoformat()}"
            )
        if target.year > LAST_YEAR:
            raise ValueError(f"{target.isoformat()} is after the year {LAST_YEAR}")
        self._now = target
        return target

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"


def _aware(value: object, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{name}: expected an aware datetime, got {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValueError(f"{name}: {value.isoformat()} is naive; pass datetime(..., tzinfo=...)")
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(
            f"{name}: {value.isoformat()} is outside the years {FIRST_YEAR}-{LAST_YEAR}"
        )
    return value
