"""The sweep: timed transitions for everyone due, keys and messages deleted when their
time is over, one broken customer never stopping the rest."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

import lifecycle as lc
from lifecycle.store import SqlStore, SweepReport
from lifecycle.store import sweep as sweeping
from tests.conftest import catalog_data, sh
from tests.store import workers
from tests.store.conftest import count, row_of

D = Decimal
SPAWN = multiprocessing.get_context("spawn")


def test_sweep_applies_due_transitions_at_their_own_instants(store: SqlStore) -> None:
    """Trial ends and period ends of customers who never come back are applied, each at
    its own instant (the mark moves there, not to `now`), once."""
    with store.edit("trial") as sub:
        sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    with store.edit("period") as sub:
        sub.subscribe("basic", order_id="o-1", term_months=1, at=sh(2026, 3, 5))
    with store.edit("later") as sub:
        sub.subscribe("basic", order_id="o-1", term_months=12, at=sh(2026, 3, 5))
    assert SweepReport() == store.sweep(sh(2026, 3, 31))
    assert 2 == store.sweep(sh(2026, 4, 10)).applied
    assert 0 == store.sweep(sh(2026, 4, 10)).applied
    trial, period = store.load("trial"), store.load("period")
    assert trial is not None
    assert period is not None
    assert (sh(2026, 4, 1), sh(2026, 4, 5)) == (trial.mark, period.mark)
    assert ["subscribe", "period_ended"] == [t.trigger for t in store.history("period")]
    assert 5 == count(store, "lifecycle_outbox")


def test_sweep_works_in_batches(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """More due customers than a batch are all swept, in several transactions."""
    monkeypatch.setattr(sweeping, "BATCH", 3)
    for n in range(8):
        with store.edit(f"c-{n}") as sub:
            sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1, 12, n))
    assert 8 == store.sweep(sh(2026, 5, 1)).applied
    assert 8 == count(store, "lifecycle_history", "trigger = 'trial_ended'")


def _poison(store: SqlStore, customer_id: str) -> str:
    saved = row_of(store, customer_id)["record"]
    with store.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE lifecycle_subscriptions SET record = '{\"broken\": true}' "
            f"WHERE customer_id = '{customer_id}'"
        )
    return str(saved)


def test_a_corrupt_customer_never_stops_the_sweep(store: SqlStore) -> None:
    """A corrupt record due first is reported and skipped; every customer after it is
    swept. Later sweeps leave it alone for a while (no hot loop), then try it again,
    and once it is repaired it is swept like the others."""
    for n, customer in enumerate(("broken", "a", "b")):
        with store.edit(customer) as sub:
            sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1, 12, n))
    saved = _poison(store, "broken")
    report = store.sweep(sh(2026, 4, 10))
    assert 2 == report.applied
    [failure] = report.failed
    assert ("broken", "record.invalid") == (failure.customer_id, failure.code)
    assert "customer 'broken'" in failure.message
    assert SweepReport() == store.sweep(sh(2026, 4, 10))  # not tried again at once
    assert 1 == store.sweep(sh(2026, 4, 10, 12, 2)).failed.__len__()  # after a minute
    assert 2 == row_of(store, "broken")["sweep_failures"]
    with store.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE lifecycle_subscriptions SET record = '"
            + saved.replace("'", "''")
            + "' WHERE customer_id = 'broken'"
        )
    assert SweepReport() == store.sweep(sh(2026, 4, 10, 12, 3))  # waits two minutes now
    assert SweepReport(applied=1) == store.sweep(sh(2026, 4, 10, 12, 5))
    assert (0, None) == (
        row_of(store, "broken")["sweep_failures"],
        row_of(store, "broken")["sweep_after"],
    )


def test_customers_of_an_edition_the_catalog_lost_still_sweep(
    store: SqlStore, stores: Callable[..., SqlStore]
) -> None:
    """A customer keeps the terms it bought: with the edition gone from the catalog, its
    period still ends, its usage is still settled, and every other customer is swept."""
    with store.edit("gold") as sub:
        sub.subscribe("professional", order_id="o-1", term_months=1, at=sh(2026, 3, 1))
    with store.edit("plain") as sub:
        sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    data = catalog_data()
    del data["editions"]["professional"]
    shrunk = stores(catalog=lc.Catalog.from_dict(data))
    with shrunk.edit("gold") as sub:
        settled = sub.record_usage("media_processing", D(5), "u-1", at=sh(2026, 3, 2))
        with pytest.raises(lc.InvalidInput) as info:
            sub.subscribe("professional", order_id="o-2", at=sh(2026, 3, 3))
    assert (D(5), "catalog.unknown_edition") == (settled.quota, info.value.code)
    report = shrunk.sweep(sh(2026, 4, 10))
    assert (2, ()) == (report.applied, report.failed)


def test_expired_usage_keys_are_deleted_for_active_and_idle_customers(store: SqlStore) -> None:
    """Keys older than the window are deleted by the sweep, an active customer's and an
    idle one's alike; an idle customer's mark moves just far enough for them to be
    forgotten (to `now` less the late-arrival allowance, so a late arrival is still
    taken), and a retry of one is refused, never applied twice."""
    for customer in ("active", "idle"):
        with store.edit(customer) as sub:
            sub.subscribe("professional", order_id="o-1", at=sh(2026, 3, 1))
            for hour in range(24):
                sub.record_usage("media_processing", D(1), f"u-{hour}", sh(2026, 3, 2, hour))
    with store.edit("active") as sub:
        sub.record_usage("media_processing", D(1), "u-late", sh(2026, 3, 10))
    assert 0 == store.sweep(sh(2026, 3, 9, 0)).keys_deleted  # inside the window
    report = store.sweep(sh(2026, 3, 12, 12))
    assert 48 == report.keys_deleted
    assert 1 == count(store, "lifecycle_usage_keys")
    idle = store.load("idle")
    assert idle is not None
    assert sh(2026, 3, 12, 11) == idle.mark  # now, less the late-arrival allowance
    with store.edit("idle") as sub, pytest.raises(lc.OutOfOrder):
        sub.record_usage("media_processing", D(1), "u-3", sh(2026, 3, 2, 3))
    assert D(29976) == store.load("idle").remaining_credits(sh(2026, 3, 13))  # type: ignore[union-attr]


def test_keys_inside_the_window_are_kept(store: SqlStore) -> None:
    """A sweep deletes no key its customer could still be asked to replay."""
    with store.edit("c") as sub:
        sub.subscribe("professional", order_id="o-1", at=sh(2026, 3, 1))
        first = sub.record_usage("media_processing", D(1), "u-1", sh(2026, 3, 5))
    assert 0 == store.sweep(sh(2026, 3, 12, 11)).keys_deleted
    with store.edit("c") as sub:
        assert first == sub.record_usage("media_processing", D(1), "u-1", sh(2026, 3, 5))


def test_sweepers_side_by_side_apply_each_transition_once(
    store: SqlStore, url: str, kind: str
) -> None:
    """Four sweeper processes over 120 due customers: each transition is applied once,
    none is refused or failed, and the outbox holds each exactly once."""
    for n in range(120):
        with store.edit(f"c-{n}") as sub:
            sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1) + timedelta(minutes=n))
    start = SPAWN.Manager().Barrier(4)
    now = sh(2026, 5, 1).isoformat()
    with SPAWN.Pool(4) as pool:
        applied = pool.starmap(workers.sweep_until_done, [(url, now, start, kind)] * 4)
    assert 120 == sum(sum(rounds) for rounds in applied)
    assert 120 == count(store, "lifecycle_history", "trigger = 'trial_ended'")
    assert 240 == count(store, "lifecycle_outbox")


def test_customers_that_keep_failing_are_listed(store: SqlStore) -> None:
    """failing_customers() lists who sweeps keep failing on, how often, the last error
    and when they are tried again; a repaired customer leaves the list."""
    for n, customer in enumerate(("broken", "fine")):
        with store.edit(customer) as sub:
            sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1, 12, n))
    saved = _poison(store, "broken")
    store.sweep(sh(2026, 4, 10))
    store.sweep(sh(2026, 4, 10, 12, 2))
    [stuck] = store.failing_customers()
    assert ("broken", 2) == (stuck.customer_id, stuck.failures)
    assert stuck.error is not None
    assert stuck.error.startswith("record.invalid: customer 'broken'")
    assert stuck.retry_after is not None
    with store.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE lifecycle_subscriptions SET record = :r WHERE customer_id = 'broken'"),
            {"r": saved},
        )
    store.sweep(sh(2026, 4, 10, 13))
    assert [] == store.failing_customers()
