"""SqlStore: edit, load, records, keys, outbox, sweep, schema; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

import lifecycle as lc
from lifecycle.store import (
    OutboxMessage,
    ReadOnly,
    SchemaMismatch,
    SqlStore,
    outbox,
    subscriptions,
    usage_keys,
)
from tests.conftest import sh

D = Decimal


def test_edit_creates_commits_and_load_reads(store: SqlStore) -> None:
    """An edit of an unknown customer starts it new; a clean exit commits what was done."""
    assert store.load("cust-42") is None
    with store.edit("cust-42") as sub:
        assert lc.State.NONE == sub.state_at(sh(2026, 3, 1))
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
        sub.record_usage("media_processing", D(5), usage_id="u-1", at=sh(2026, 3, 2))
    snapshot = store.load("cust-42")
    assert snapshot is not None
    assert (lc.State.ENTERPRISE_ACTIVE, D(1995)) == (
        snapshot.state_at(sh(2026, 3, 2)),
        snapshot.remaining_credits(sh(2026, 3, 2)),
    )
    assert 1 == len(snapshot.to_record()["usage"])


def test_exception_rolls_back(store: SqlStore) -> None:
    """An exception inside edit leaves the last committed state."""
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))

    def fail_after_operations() -> None:
        with store.edit("c") as sub:
            sub.unsubscribe(request_id="r-1", at=sh(2026, 3, 2))
            sub.record_usage("media_processing", D(5), usage_id="u-1", at=sh(2026, 3, 2))
            raise RuntimeError("the order service failed after the operations")

    with pytest.raises(RuntimeError):
        fail_after_operations()
    snapshot = store.load("c")
    assert snapshot is not None
    assert lc.State.ENTERPRISE_ACTIVE == snapshot.state_at(sh(2026, 3, 2))
    with store.engine.connect() as connection:
        assert 0 == connection.execute(sa.select(sa.func.count()).select_from(usage_keys)).scalar()
        assert 1 == connection.execute(sa.select(sa.func.count()).select_from(outbox)).scalar()


def test_snapshot_is_read_only(store: SqlStore) -> None:
    """A loaded snapshot reads, but refuses to operate."""
    with store.edit("c") as sub:
        sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    snapshot = store.load("c")
    assert snapshot is not None
    with pytest.raises(ReadOnly) as info:
        snapshot.record_usage("media_processing", D(1), usage_id="u-1", at=sh(2026, 3, 2))
    assert "store.read_only" == info.value.code


def test_retries_are_answered_from_stored_keys(store: SqlStore) -> None:
    """A usage or order retried in a later edit returns its first result; a reused key
    with other arguments conflicts; past the window a retry is OutOfOrder, and the
    key's row is deleted within the hour after."""
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
        first = sub.record_usage("media_processing", D(5), usage_id="u-1", at=sh(2026, 3, 2))
    with store.edit("c") as sub:
        assert first == sub.record_usage("media_processing", D(5), "u-1", sh(2026, 3, 2))
        with pytest.raises(lc.IdempotencyConflict):
            sub.record_usage("media_processing", D(6), "u-1", sh(2026, 3, 2))
        assert D("1000.00") == sub.subscribe("basic", order_id="o-1").amount
    with store.edit("c") as sub:
        sub.advance(sh(2026, 3, 9, 12))
    with store.edit("c") as sub, pytest.raises(lc.OutOfOrder):
        sub.record_usage("media_processing", D(5), "u-1", sh(2026, 3, 2))
    count = sa.select(sa.func.count()).select_from(usage_keys)
    with store.engine.connect() as connection:
        assert 1 == connection.execute(count).scalar()  # forgotten, deleted in a later batch
    with store.edit("c") as sub:
        sub.advance(sh(2026, 3, 9, 13, 1))
    with store.engine.connect() as connection:
        assert 0 == connection.execute(count).scalar()
    snapshot = store.load("c")
    assert snapshot is not None
    assert D(1995) == snapshot.remaining_credits(sh(2026, 3, 10))


def test_past_balance_reads_stored_keys(store: SqlStore) -> None:
    """A read before the mark takes back usage found in the key table."""
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
        sub.record_usage("media_processing", D(5), usage_id="u-1", at=sh(2026, 3, 2))
    with store.edit("c") as sub:
        sub.record_usage("media_processing", D(7), usage_id="u-2", at=sh(2026, 3, 3))
        assert (D(2000), D(1995), D(1988)) == (
            sub.remaining_credits(sh(2026, 3, 1)),
            sub.remaining_credits(sh(2026, 3, 2)),
            sub.remaining_credits(sh(2026, 3, 3)),
        )
        assert 2 == len(sub.to_record()["usage"])


def test_every_transition_lands_in_the_outbox_once(store: SqlStore) -> None:
    """Each history entry is one outbox row, delivered in order and only once."""
    with store.edit("c") as sub:
        sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
        sub.record_usage("media_processing", D(100), usage_id="u-1", at=sh(2026, 3, 2))
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-2", at=sh(2026, 3, 3))
    seen: list[OutboxMessage] = []
    assert 2 == store.drain_outbox(seen.append, limit=2)
    assert 1 == store.drain_outbox(seen.append)
    assert 0 == store.drain_outbox(seen.append)
    assert ["purchase_trial", "trial_used_up", "subscribe"] == [m.trigger for m in seen]
    assert ([1, 2, 3], {"c"}) == ([m.seq for m in seen], {m.customer_id for m in seen})
    assert (lc.State.TRIAL, lc.State.TRIAL_EXHAUSTED) == (seen[1].source, seen[1].dest)
    assert "20.00" == seen[0].details["amount"]


def test_a_failing_handler_leaves_its_message(store: SqlStore) -> None:
    """Messages before a failure stay delivered; the failed one comes again next time."""
    with store.edit("c") as sub:
        sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
        sub.subscribe("basic", order_id="o-2", at=sh(2026, 3, 2))
    seen: list[int] = []

    def flaky(message: OutboxMessage) -> None:
        if message.seq == 2 and -2 not in seen:
            seen.append(-2)
            raise ConnectionError("the mailer is down")
        seen.append(message.seq)

    with pytest.raises(ConnectionError):
        store.drain_outbox(flaky)
    assert 1 == store.drain_outbox(flaky)
    assert [1, -2, 2] == seen


def test_sweep_applies_due_transitions_by_index(store: SqlStore) -> None:
    """sweep applies trial ends and period ends, each at its own instant, for customers
    who never come back, and produces their outbox rows."""
    with store.edit("trial") as sub:
        sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    with store.edit("period") as sub:
        sub.subscribe("basic", order_id="o-1", term_months=1, at=sh(2026, 3, 5))
    with store.edit("later") as sub:
        sub.subscribe("basic", order_id="o-1", term_months=12, at=sh(2026, 3, 5))
    assert 0 == store.sweep(sh(2026, 3, 31))
    assert 2 == store.sweep(sh(2026, 4, 10))
    assert 0 == store.sweep(sh(2026, 4, 10))
    trial, period = store.load("trial"), store.load("period")
    assert trial is not None
    assert period is not None
    assert (sh(2026, 4, 1), sh(2026, 4, 5)) == (trial.mark, period.mark)
    assert lc.State.EXPIRED == period.history[-1].dest
    messages: list[OutboxMessage] = []
    store.drain_outbox(messages.append)
    assert {"trial_ended", "period_ended"} == {m.trigger for m in messages if m.seq == 2}


def test_sweep_in_batches(store: SqlStore) -> None:
    """More due subscriptions than a batch are all swept."""
    for n in range(7):
        with store.edit(f"c-{n}") as sub:
            sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    assert 7 == store.sweep(sh(2026, 5, 1), batch=3)


def test_edit_inside_the_callers_transaction(store: SqlStore) -> None:
    """With connection=, the order row and the subscription commit together, or neither."""
    with store.engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE orders (id VARCHAR(20) PRIMARY KEY)")
    with store.engine.connect() as connection, connection.begin():
        connection.exec_driver_sql("INSERT INTO orders VALUES ('o-1')")
        with store.edit("c", connection=connection) as sub:
            sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))

    def declined() -> None:
        with store.engine.connect() as connection, connection.begin():
            connection.exec_driver_sql("INSERT INTO orders VALUES ('o-2')")
            with store.edit("c", connection=connection) as sub:
                sub.buy_addon("boost-500", order_id="o-2", at=sh(2026, 3, 2))
                raise ValueError("payment declined")

    with pytest.raises(ValueError, match="payment declined"):
        declined()
    with store.engine.connect() as connection:
        orders = connection.exec_driver_sql("SELECT id FROM orders").scalars().all()
    assert ["o-1"] == orders
    snapshot = store.load("c")
    assert snapshot is not None
    assert D(2000) == snapshot.remaining_credits(sh(2026, 3, 2))


def test_schema_is_idempotent_and_versioned(store: SqlStore, url: str) -> None:
    """create_schema twice is fine; another version, or none, is a clear error."""
    store.create_schema()
    with store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE lifecycle_schema SET version = 99")
    other = SqlStore(url)
    with pytest.raises(SchemaMismatch, match="version 99"):
        other.load("c")
    with pytest.raises(SchemaMismatch, match="version 99"):
        other.create_schema()
    other.engine.dispose()
    with store.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE lifecycle_schema")
    empty = SqlStore(url)
    with pytest.raises(SchemaMismatch, match="create_schema"), empty.edit("c"):
        pass
    empty.engine.dispose()


@pytest.mark.parametrize(
    ("column", "value", "field"),
    [
        ("record", "{not json", "customer 'c': record"),
        ("record", '{"schema_version": 1}', "customer 'c': record.addons"),
    ],
)
def test_corrupt_stored_record_names_customer_and_field(
    store: SqlStore, column: str, value: str, field: str
) -> None:
    """A corrupt stored record is InvalidInput naming the customer and the field."""
    with store.edit("c") as sub:
        sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    with store.engine.begin() as connection:
        connection.execute(sa.update(subscriptions).values({column: value}))
    for read in (lambda: store.load("c"), lambda: store.edit("c").__enter__()):
        with pytest.raises(lc.InvalidInput) as info:
            read()
        assert field == info.value.field


def test_corrupt_stored_usage_key_names_customer_and_key(store: SqlStore) -> None:
    """A corrupt usage key row is InvalidInput naming the customer and the key."""
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
        sub.record_usage("media_processing", D(5), usage_id="u-1", at=sh(2026, 3, 2))
    with store.engine.begin() as connection:
        connection.execute(sa.update(usage_keys).values(row='["u-1"]'))
    with pytest.raises(lc.InvalidInput) as info, store.edit("c") as sub:
        sub.record_usage("media_processing", D(5), usage_id="u-1", at=sh(2026, 3, 2))
    assert "customer 'c': usage_keys['u-1']" == info.value.field


def test_edit_cost_does_not_load_the_keys(store: SqlStore) -> None:
    """An edit finds a key by the primary key, whatever the window holds: on SQLite the
    statements an edit runs are traced, on PostgreSQL the planner is asked."""
    with store.edit("c") as sub:
        sub.subscribe("professional", order_id="o-1", at=sh(2026, 3, 1))
        for n in range(2000):
            at = sh(2026, 3, 1) + timedelta(minutes=n)
            sub.record_usage("media_processing", D(1), f"u-{n}", at)
    lookup = store._lookup.sql
    if store.is_sqlite:
        statements: list[str] = []
        with store.engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            assert raw is not None
            raw.set_trace_callback(statements.append)  # type: ignore[attr-defined]
            with store.edit("c", connection=connection) as sub:
                sub.record_usage(
                    "media_processing", D(1), "u-new", datetime(2026, 3, 3, tzinfo=UTC)
                )
            connection.commit()
            raw.set_trace_callback(None)  # type: ignore[attr-defined]
        reads = [s for s in statements if "FROM lifecycle_usage_keys" in s]
        assert 1 == len(reads)
        assert "usage_id = " in reads[0]
        return
    with store.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE lifecycle_usage_keys")
        plan = "\n".join(
            connection.exec_driver_sql(
                "EXPLAIN " + lookup,
                {"customer_id": "c", "usage_id": "u-7", "cutoff": datetime(2026, 1, 1, tzinfo=UTC)},
            ).scalars()
        )
    assert "Index" in plan
    assert "lifecycle_usage_keys_pkey" in plan
