"""``TestClock``: a whole store moved through time, the way Stripe's test clocks
move their customers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from lifecycle.errors import InvalidInput, shown
from lifecycle.store import OutboxMessage, SqlStore, SweepReport, sql
from lifecycle.testing.clock import ManualClock


class TestClockError(AssertionError):
    """Something due could not be done during an advance: a customer the sweep
    failed on, or a handler that raised."""

    __test__ = False  # a name pytest would otherwise collect


class TestClock:
    """Moves a store built with a ``ManualClock`` through time.

    ``advance`` moves the clock and, before it returns, applies every timed
    transition due in the whole store by the new time (the late-arrival
    allowance included: nothing due is left pending), commits them, drains the
    outbox and returns the messages delivered during that advance, in order.
    ``handler``, if given, receives each message too (as a ``lifecycle
    worker``'s handler would). A message it raises on is not delivered: the
    store treats it as in production (its customer's later messages held back,
    dead-lettered after ``max_attempts``), except that it is tried again at the
    next ``advance`` or ``drain``, not after a wait on the real clock; and
    ``advance`` raises after the drain, so a test sees its own notification
    code fail.
    """

    __test__ = False  # a name pytest would otherwise collect

    def __init__(
        self, store: SqlStore, *, handler: Callable[[OutboxMessage], object] | None = None
    ) -> None:
        if not isinstance(store, SqlStore):
            raise InvalidInput("store", f"expected a SqlStore, got {type(store).__name__}")
        if not isinstance(store.clock, ManualClock):
            raise InvalidInput(
                "store",
                "TestClock needs a store built with clock=ManualClock(...): "
                "SqlStore(url, clock=clock)",
            )
        self.store = store
        self.clock: ManualClock = store.clock
        self.handler = handler
        self.last_report = SweepReport()

    @property
    def now(self) -> datetime:
        return self.clock.now

    def advance(
        self, delta: timedelta | None = None, *, to: datetime | None = None
    ) -> list[OutboxMessage]:
        """Move to the new time and do everything due by it; return what was
        delivered, in the order the outbox holds it."""
        now = self.clock.advance(delta, to=to)
        report = SweepReport()
        while True:
            swept = self.store._sweep(now, grace=timedelta(0))
            report += swept
            if swept.failed:
                self.last_report = report
                listed = "; ".join(f"{f.customer_id}: {f.code}: {f.message}" for f in swept.failed)
                raise TestClockError(f"the sweep at {now.isoformat()} failed on {listed}")
            if not swept.applied:
                break
        self.last_report = report
        return self.drain()

    def drain(self) -> list[OutboxMessage]:
        """Deliver every pending message now; return them in order."""
        delivered: list[OutboxMessage] = []
        failures: list[BaseException] = []

        def handle(message: OutboxMessage) -> None:
            if self.handler is not None:
                try:
                    self.handler(message)
                except Exception as error:
                    failures.append(error)
                    raise  # the store records the failure, as in production
            delivered.append(message)

        with self.store._database("drain_outbox"), self.store._writing() as connection:
            connection.execute(sql.retry_now)  # what failed before is tried again now
        while self.store.drain_outbox(handle, limit=1000):
            pass
        if failures:
            raise TestClockError(
                f"the handler raised on {len(failures)} message(s); the first: {shown(failures[0])}"
            ) from failures[0]
        return sorted(delivered, key=_order)


def _order(message: OutboxMessage) -> Any:
    return message.id
