"""TestClock: a whole store moved through time, everything due done when advance
returns, the messages delivered on the way handed back in order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

import lifecycle as lc
from lifecycle.store import OutboxMessage, SqlStore
from lifecycle.testing import ManualClock, TestClock, TestClockError
from tests.conftest import sh

D = Decimal


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(sh(2026, 3, 1, 9))


@pytest.fixture
def store(url: str, clock: ManualClock) -> Iterator[SqlStore]:
    store = SqlStore(url, clock=clock)
    store.create_schema()
    yield store
    store.close()


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'kit.db'}"


def test_a_trial_ends_at_a_shanghai_month_end(store: SqlStore, clock: ManualClock) -> None:
    """A trial bought on 1 March 09:00 Shanghai (still February in UTC) ends on
    1 April 09:00 Shanghai: advancing to a minute before delivers nothing, to it
    delivers the end."""
    test_clock = TestClock(store)
    assert (2026, 3, 1) == (clock().year, clock().month, clock().day)
    with store.edit("c") as sub:
        sub.purchase_trial(order_id="o-1")
    assert ["purchase_trial"] == [m.trigger for m in test_clock.advance(timedelta(0))]
    assert [] == test_clock.advance(to=sh(2026, 3, 31, 9, 59))
    [ended] = test_clock.advance(to=sh(2026, 4, 1, 9))
    assert ("trial_ended", sh(2026, 4, 1, 9)) == (ended.trigger, ended.at)
    snapshot = store.load("c")
    assert snapshot is not None
    assert lc.State.TRIAL_EXHAUSTED == snapshot.state


def test_nothing_due_is_left_pending_by_the_late_arrival_allowance(
    store: SqlStore,
) -> None:
    """advance applies a transition due at the new time at once: the allowance a real
    sweep waits out is not waited for."""
    test_clock = TestClock(store)
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", term_months=1)
    test_clock.advance(timedelta(0))
    [ended] = test_clock.advance(to=sh(2026, 4, 1, 9))
    assert "period_ended" == ended.trigger


def test_many_customers_through_a_year(store: SqlStore) -> None:
    """200 customers on trials and periods, moved a year in one advance: every end is
    applied and delivered, in the outbox's order."""
    test_clock = TestClock(store)
    for n in range(200):
        with store.edit(f"c-{n}") as sub:
            if n % 2:
                sub.purchase_trial(order_id="o-1")
            else:
                sub.subscribe("basic", order_id="o-1", term_months=n % 12 + 1)
    test_clock.advance(timedelta(0))
    delivered = test_clock.advance(timedelta(days=365))
    assert 200 == len(delivered)
    assert [m.id for m in delivered] == sorted(m.id for m in delivered)
    assert {"trial_ended", "period_ended"} == {m.trigger for m in delivered}


def test_a_failing_handler_fails_the_advance(store: SqlStore) -> None:
    """A handler that raises makes advance raise once the drain is done: a test sees its
    own notification code fail."""

    def handler(message: OutboxMessage) -> None:
        raise RuntimeError(f"no template for {message.trigger}")

    test_clock = TestClock(store, handler=handler)
    with store.edit("c") as sub:
        sub.purchase_trial(order_id="o-1")
    with pytest.raises(TestClockError, match="no template for purchase_trial"):
        test_clock.advance(timedelta(days=1))


def test_a_message_the_handler_raises_on_is_not_delivered(url: str) -> None:
    """As in production: the message the handler raised on is not among those
    delivered, holds back its customer's later ones, and with max_attempts=1 is a
    dead letter at once, after which the customer's later messages flow."""
    clock = ManualClock(sh(2026, 1, 1, 9))
    store = SqlStore(url, clock=clock, max_attempts=1)
    store.create_schema()
    calls: list[str] = []

    def handler(message: OutboxMessage) -> None:
        calls.append(message.trigger)
        if message.trigger == "subscribe":
            raise RuntimeError("mail server down")

    test_clock = TestClock(store, handler=handler)
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", term_months=1)
    with pytest.raises(TestClockError, match="mail server down"):
        test_clock.advance(timedelta(0))
    [dead] = store.dead_letters()
    assert ("subscribe", "RuntimeError: mail server down") == (
        dead.message.trigger,
        dead.last_error,
    )
    assert ["period_ended"] == [m.trigger for m in test_clock.advance(timedelta(days=40))]
    assert ["subscribe", "period_ended"] == calls
    store.close()


def test_a_failed_message_is_tried_again_at_the_next_advance(store: SqlStore) -> None:
    """A handler that failed once and works again: the next advance delivers the
    message it failed on and the customer's later ones, in order, without waiting
    on the real clock; with max_attempts advances failing, it is a dead letter."""
    failing = {"on": True}

    def handler(message: OutboxMessage) -> None:
        if failing["on"] and message.trigger == "subscribe":
            raise RuntimeError("mail server down")

    test_clock = TestClock(store, handler=handler)
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", term_months=1)
    with pytest.raises(TestClockError):
        test_clock.advance(timedelta(0))
    failing["on"] = False
    delivered = test_clock.advance(timedelta(days=40))
    assert ["subscribe", "period_ended"] == [m.trigger for m in delivered]
    assert [] == store.dead_letters()


def test_a_customer_the_sweep_fails_on_fails_the_advance(store: SqlStore) -> None:
    """A corrupt customer is not silently skipped by a TestClock: advance says who."""
    test_clock = TestClock(store)
    with store.edit("c") as sub:
        sub.purchase_trial(order_id="o-1")
    with store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE lifecycle_subscriptions SET record = '{}'")
    with pytest.raises(TestClockError, match=r"c: record\.invalid"):
        test_clock.advance(timedelta(days=40))


def test_it_needs_a_store_with_a_manual_clock(url: str) -> None:
    """A store on the system clock cannot be moved: InvalidInput says how to build one."""
    store = SqlStore(url)
    with pytest.raises(lc.InvalidInput, match="ManualClock"):
        TestClock(store)
    store.close()
