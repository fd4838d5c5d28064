"""Nothing grows with the age of the fleet: the tables hold the live customers and one
window of keys, a record holds a checkpoint, however long a customer has lived."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

import lifecycle as lc
from lifecycle.store import SqlStore
from tests.conftest import sh
from tests.store.conftest import count, row_of

D = Decimal


def test_a_year_of_hourly_usage_stays_within_bounds(stores: Callable[..., SqlStore]) -> None:
    """Three customers, usage every hour for a year (2000 credits last them 24 days), an
    add-on every month, a sweep and a drain every day: the usage keys never exceed a
    window's worth (plus a day), the outbox what the retention keeps, the record its
    first size; history keeps every transition."""
    today = [sh(2026, 1, 1, 0)]
    store = stores(clock=lambda: today[0], outbox_retention=timedelta(days=7))
    store.create_schema()
    customers = ["a", "b", "c"]
    for customer in customers:
        with store.edit(customer) as sub:
            sub.subscribe("basic", order_id="o-0", term_months=12, at=today[0])
    sizes: list[int] = []
    most_keys = most_messages = 0
    for day in range(365):
        start = sh(2026, 1, 1, 0) + timedelta(days=day)
        today[0] = start + timedelta(hours=23, minutes=30)
        for customer in customers:
            with store.edit(customer) as sub:
                if day % 30 == 29:
                    sub.buy_addon("boost-2000", order_id=f"o-{day}", at=start)
                for hour in range(24):
                    at = start + timedelta(hours=hour)
                    sub.record_usage("media_processing", D("3.5"), f"u-{day}-{hour}", at)
        report = store.sweep(today[0])
        assert not report.failed
        while store.drain_outbox(lambda message: None):
            pass
        most_keys = max(most_keys, count(store, "lifecycle_usage_keys"))
        most_messages = max(most_messages, count(store, "lifecycle_outbox"))
        if day % 30 == 0:
            sizes.append(len(row_of(store, "a")["record"]))
    assert most_keys <= len(customers) * 24 * (7 + 1 + 1)
    assert most_messages <= len(customers) * 4 * 2
    assert max(sizes) - min(sizes) <= 80  # one add-on grant held, or none
    transitions = count(store, "lifecycle_history")
    assert transitions == sum(len(store.history(c)) for c in customers)
    assert transitions >= len(customers) * 13
    sub = store.load("a")
    assert sub is not None
    assert lc.State.EXPIRED == sub.state_at(sh(2027, 1, 2))


def test_a_record_does_not_grow_with_transitions_or_purchases(store: SqlStore) -> None:
    """A customer with a thousand transitions has a record the size of one with ten;
    every transition is in its history, and an old order retried is still answered."""
    sizes = {}
    at = sh(2026, 1, 1)
    for cycle in range(500):
        with store.edit("c") as sub:
            sub.subscribe("basic", order_id=f"o-{cycle}", at=at)
            sub.unsubscribe(request_id=f"r-{cycle}", at=at + timedelta(minutes=1))
        at += timedelta(hours=1)
        if cycle + 1 in (5, 500):
            sizes[cycle + 1] = len(row_of(store, "c")["record"])
    assert sizes[500] <= sizes[5] + 16  # a few more digits in `seq` and the times
    assert 1000 == len(store.history("c"))
    with store.edit("c") as sub:
        first = sub.subscribe("basic", order_id="o-3")
    assert (True, datetime.fromisoformat("2026-01-01T07:00:00+00:00")) == (
        first.replayed,
        first.at,
    )
