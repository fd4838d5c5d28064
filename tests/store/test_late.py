"""Late arrivals in a store: the sweep waits out the allowance before it applies a
timed transition, so usage metered inside a period and delivered within the
allowance is settled inside it; reads show the transition at its own instant."""

from __future__ import annotations

from decimal import Decimal

import pytest

import lifecycle as lc
from lifecycle.store import OutboxMessage, SqlStore
from tests.conftest import sh

D = Decimal


def _period_ending_at_noon(store: SqlStore) -> None:
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", term_months=1, at=sh(2026, 3, 2, 12))
        sub.record_usage("media_processing", D(10), "u-1", sh(2026, 3, 2, 13))


def test_usage_from_inside_a_period_delivered_after_its_end_is_settled_inside_it(
    store: SqlStore,
) -> None:
    """The period ends at noon; a sweep at 12:30 leaves it (the allowance is 60
    minutes), reads already show it expired, and usage metered at 11:59 and
    delivered at 12:40 is settled on the period's credits. A sweep after 13:00
    expires it, and its notification goes out then."""
    _period_ending_at_noon(store)
    assert 0 == store.sweep(sh(2026, 4, 2, 12, 30)).applied
    snapshot = store.load("c")
    assert snapshot is not None
    assert lc.State.EXPIRED == snapshot.state_at(sh(2026, 4, 2, 12, 30))
    assert not snapshot.authorize("media_processing", sh(2026, 4, 2, 12, 30)).allowed
    with store.edit("c") as sub:
        late = sub.record_usage("media_processing", D(5), "u-2", sh(2026, 4, 2, 11, 59))
    assert (D(5), lc.State.ENTERPRISE_ACTIVE) == (late.quota, late.state)
    assert 1 == store.sweep(sh(2026, 4, 2, 13, 1)).applied
    messages: list[OutboxMessage] = []
    store.drain_outbox(messages.append)
    assert "period_ended" == messages[-1].trigger
    assert sh(2026, 4, 2, 12) == messages[-1].at


def test_usage_later_than_the_allowance_is_refused_once_the_end_is_applied(
    store: SqlStore,
) -> None:
    """Once the sweep has applied the period's end, usage metered more than the
    allowance before it is OutOfOrder: the books of that period are closed."""
    _period_ending_at_noon(store)
    store.sweep(sh(2026, 4, 2, 13, 1))
    with pytest.raises(lc.OutOfOrder), store.edit("c") as sub:
        sub.record_usage("media_processing", D(5), "u-2", sh(2026, 4, 2, 10, 59))
    with store.edit("c") as sub:
        after = sub.record_usage("media_processing", D(5), "u-3", sh(2026, 4, 2, 11, 30))
    # NOTE: the sweep also forgot March's usage keys, which moved the mark to 12:01
    assert ("service.unavailable", sh(2026, 4, 2, 12, 1)) == (after.rule, after.at)


def test_the_store_clock_is_what_operations_and_reads_use(store: SqlStore) -> None:
    """Subscriptions edited and loaded through a store with a clock read that clock
    for at=None and for reads."""
    now = [sh(2026, 3, 1, 9)]
    clocked = SqlStore(store.engine.url, clock=lambda: now[0])
    with clocked.edit("c") as sub:
        receipt = sub.purchase_trial(order_id="o-1")
    assert sh(2026, 3, 1, 9) == receipt.at
    now[0] = sh(2026, 4, 2)
    snapshot = clocked.load("c")
    assert snapshot is not None
    assert lc.State.TRIAL_EXHAUSTED == snapshot.state
    clocked.close()


def test_an_operation_dated_in_the_future_is_refused(stores) -> None:  # type: ignore[no-untyped-def]
    """A store's clock is the fleet's: an operation dated later than it by more than the
    allowance (a client clock gone wrong) is InvalidInput, and nothing changes; a sweep
    ahead of the clock likewise. Within the allowance a skewed clock is taken."""
    now = [sh(2026, 3, 1, 12)]
    store = stores(clock=lambda: now[0])
    store.create_schema()
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", term_months=12)
    with pytest.raises(lc.InvalidInput) as info, store.edit("c") as sub:
        sub.record_usage("media_processing", D(1), "u-1", at=sh(2027, 4, 1))
    assert ("at", "input.in_the_future") == (info.value.field, info.value.code)
    with pytest.raises(lc.InvalidInput) as info:
        store.sweep(sh(2026, 4, 10))
    assert ("now", "input.in_the_future") == (info.value.field, info.value.code)
    with store.edit("c") as sub:
        skewed = sub.record_usage("media_processing", D(1), "u-2", at=sh(2026, 3, 1, 12, 59))
    assert lc.State.ENTERPRISE_ACTIVE == skewed.state
    snapshot = store.load("c")
    assert snapshot is not None
    assert D(1999) == snapshot.remaining_credits(sh(2026, 3, 1, 13))
