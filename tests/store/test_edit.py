"""SqlStore.edit and load: one customer, held exclusively; every misuse a clear error
before anything is touched. On a SQLite file and on PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

import lifecycle as lc
from lifecycle.store import SqlStore
from tests.conftest import sh
from tests.store.conftest import count, row_of
from tests.store.facade import make_store

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
    assert ["subscribe"] == [t.trigger for t in store.history("cust-42")]


def test_create_false_refuses_an_unknown_customer(store: SqlStore) -> None:
    """edit(create=False) of a customer never seen is UnknownCustomer, and creates nothing;
    of a known one it edits as usual."""
    with pytest.raises(lc.store.UnknownCustomer) as info, store.edit("typo", create=False):
        pass
    assert ("store.unknown_customer", "typo") == (info.value.code, info.value.customer_id)
    assert 0 == count(store, "lifecycle_subscriptions")
    with store.edit("known") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    with store.edit("known", create=False) as sub:
        sub.record_usage("media_processing", D(1), "u-1", at=sh(2026, 3, 2))
    assert 1 == count(store, "lifecycle_usage_keys")


def test_exception_rolls_back(store: SqlStore) -> None:
    """An exception inside edit leaves the last committed state: no key, no outbox row."""
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
    assert (0, 1, 1) == (
        count(store, "lifecycle_usage_keys"),
        count(store, "lifecycle_outbox"),
        count(store, "lifecycle_history"),
    )


def test_the_subscription_is_read_only_after_the_block(store: SqlStore) -> None:
    """Once the block exits, operations raise ReadOnly and nothing is saved; reads that
    need no database still answer."""
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    revision = row_of(store, "c")["revision"]
    for call in (
        lambda: sub.record_usage("media_processing", D(1), "u-1", at=sh(2026, 3, 2)),
        lambda: sub.buy_addon("boost-500", order_id="o-2", at=sh(2026, 3, 2)),
        lambda: sub.advance(sh(2026, 5, 1)),
    ):
        with pytest.raises(lc.store.ReadOnly) as info:
            call()
        assert "store.read_only" == info.value.code
    assert D(2000) == sub.remaining_credits(sh(2026, 3, 2))
    assert revision == row_of(store, "c")["revision"]
    assert 0 == count(store, "lifecycle_usage_keys")


def test_a_snapshot_is_read_only(store: SqlStore) -> None:
    """A loaded snapshot reads, but refuses to operate."""
    with store.edit("c") as sub:
        sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    snapshot = store.load("c")
    assert snapshot is not None
    with pytest.raises(lc.store.ReadOnly) as info:
        snapshot.record_usage("media_processing", D(1), usage_id="u-1", at=sh(2026, 3, 2))
    assert "store.read_only" == info.value.code


def test_a_nested_edit_of_the_same_customer_is_refused_at_once(store: SqlStore) -> None:
    """A nested edit of the customer being edited raises store.nested_edit instead of
    waiting for the lock its own thread holds; the outer edit goes on and commits."""
    with store.edit("c") as outer:
        outer.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
        with pytest.raises(lc.store.StoreMisuse) as info, store.edit("c"):
            pass
        assert "store.nested_edit" == info.value.code
    snapshot = store.load("c")
    assert snapshot is not None
    assert lc.State.ENTERPRISE_ACTIVE == snapshot.state_at(sh(2026, 3, 2))


def test_nested_edits_of_other_customers(store: SqlStore) -> None:
    """On PostgreSQL an edit of another customer inside an edit works (row locks); on
    SQLite, whose write lock the outer edit holds, it is refused at once."""
    with store.edit("a") as outer:
        outer.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
        if store.is_sqlite:
            with pytest.raises(lc.store.StoreMisuse) as info, store.edit("b"):
                pass
            assert "store.nested_edit" == info.value.code
        else:
            with store.edit("b") as inner:
                inner.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    assert (2 if not store.is_sqlite else 1) == count(store, "lifecycle_history")


@contextmanager
def held_elsewhere(store: SqlStore, customer_id: str) -> Iterator[None]:
    """Another thread holds the customer's lock (its row; on SQLite the database)."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        other = SqlStore(store.engine.url)
        with other.edit(customer_id):
            locked.set()
            release.wait(30)
        other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert locked.wait(30)
    try:
        yield
    finally:
        release.set()
        thread.join(30)


def test_a_lock_held_too_long_is_a_lock_timeout(
    store: SqlStore, stores: Callable[..., SqlStore]
) -> None:
    """Waiting longer than lock_timeout for another edit's lock raises LockTimeout,
    retryable, and changes nothing; once the lock is free the edit works."""
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    impatient = stores(lock_timeout=timedelta(milliseconds=300))
    with held_elsewhere(store, "c"), pytest.raises(lc.store.LockTimeout) as info:
        impatient.edit("c").__enter__()
    assert ("store.lock_timeout", True) == (info.value.code, info.value.retryable)
    # PostgreSQL locks the customer's row; SQLite, the file
    sqlite = store.engine.url.get_backend_name() == "sqlite"
    locked = "the database" if sqlite else "customer 'c'"
    assert str(info.value).startswith(f"{locked} stayed locked by another transaction")
    assert sqlite == info.value.database
    assert 0 == count(store, "lifecycle_usage_keys")
    with impatient.edit("c") as sub:
        sub.record_usage("media_processing", D(1), "u-1", at=sh(2026, 3, 2))
    assert 1 == count(store, "lifecycle_usage_keys")


def test_sqlite_locked_by_another_program_names_the_database(tmp_path: Path, kind: str) -> None:
    """Another program holding SQLite's write lock past lock_timeout: LockTimeout says
    the database stayed locked (not the customer, whom nobody else was editing),
    keeps the customer's id, and nothing is written; once it lets go, the edit works."""
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    store = make_store(kind, url, lock_timeout=timedelta(milliseconds=200))
    store.create_schema()
    other = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(lc.store.LockTimeout) as info, store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    other.execute("ROLLBACK")
    other.close()
    assert ("c", True) == (info.value.customer_id, info.value.database)
    assert str(info.value).startswith(
        "the database stayed locked by another transaction for more than 0.2 s "
        "(lock_timeout) while customer 'c' waited"
    )
    assert store.load("c") is None
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    assert store.load("c") is not None
    store.close()


def test_a_connection_without_a_transaction_is_refused(sync_store: SqlStore) -> None:
    store = sync_store
    """edit(connection=c) needs c inside a transaction: without one it is refused with
    store.no_transaction before anything is read or written."""
    with store.engine.connect() as connection:
        with pytest.raises(lc.store.StoreMisuse) as info, store.edit("c", connection=connection):
            pass
        assert "store.no_transaction" == info.value.code
    assert 0 == count(store, "lifecycle_subscriptions")


def test_an_autocommit_connection_is_refused(sync_store: SqlStore) -> None:
    store = sync_store
    """A connection in AUTOCOMMIT mode would commit each statement alone: refused with
    store.no_transaction, nothing changed."""
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    with store.engine.connect() as plain:
        connection = plain.execution_options(isolation_level="AUTOCOMMIT")
        with (
            connection.begin(),
            pytest.raises(lc.store.StoreMisuse) as info,
            store.edit("c", connection=connection) as sub,
        ):
            sub.record_usage("media_processing", D(1), "u-1", at=sh(2026, 3, 2))
    assert "store.no_transaction" == info.value.code
    assert 0 == count(store, "lifecycle_usage_keys")


def test_sqlite_needs_a_connection_of_the_store(sync_store: SqlStore, url: str) -> None:
    store = sync_store
    """On SQLite only a connection from store.engine (transactions begin IMMEDIATE) is
    taken; on PostgreSQL any connection to the database in a transaction will do."""
    foreign = sa.create_engine(url)
    with foreign.connect() as connection, connection.begin():
        if store.is_sqlite:
            with (
                pytest.raises(lc.store.StoreMisuse) as info,
                store.edit("c", connection=connection),
            ):
                pass
            assert "store.no_transaction" == info.value.code
        else:
            with store.edit("c", connection=connection) as sub:
                sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    foreign.dispose()
    assert (0 if store.is_sqlite else 1) == count(store, "lifecycle_history")


ORDERS = sa.Table(
    "orders",
    sa.MetaData(),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("customer_id", sa.String(255), nullable=False),
    sa.Column("amount", sa.String(32), nullable=False),
)


def place_order(store: SqlStore, customer_id: str, order_id: str) -> lc.Receipt:
    """The README's example: the order row and the subscription commit together, and
    a retry of the same order writes the order row only once."""
    with store.translated("orders"), store.engine.connect() as connection, connection.begin():
        with store.edit(customer_id, connection=connection) as sub:
            receipt = sub.buy_addon("boost-500", order_id=order_id, at=sh(2026, 3, 2))
        if not receipt.replayed:
            connection.execute(
                ORDERS.insert().values(
                    id=order_id, customer_id=customer_id, amount=str(receipt.amount)
                )
            )
    return receipt


def test_the_readme_order_example_is_retry_safe(sync_store: SqlStore) -> None:
    store = sync_store
    """Run twice for the same order: one order row, one add-on, the second receipt
    marked replayed and equal to the first."""
    ORDERS.create(store.engine)
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    first = place_order(store, "c", "o-2")
    again = place_order(store, "c", "o-2")
    assert (False, True, first) == (first.replayed, again.replayed, again)
    assert 1 == count(store, "orders")
    snapshot = store.load("c")
    assert snapshot is not None
    assert D(2500) == snapshot.remaining_credits(sh(2026, 3, 2))


def test_a_declined_order_rolls_back_the_callers_rows_too(sync_store: SqlStore) -> None:
    store = sync_store
    """With connection=, an exception inside the edit rolls back the caller's rows too."""
    ORDERS.create(store.engine)
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))

    def declined() -> None:
        with store.engine.connect() as connection, connection.begin():
            connection.execute(ORDERS.insert().values(id="o-2", customer_id="c", amount="1"))
            with store.edit("c", connection=connection) as sub:
                sub.buy_addon("boost-500", order_id="o-2", at=sh(2026, 3, 2))
                raise ValueError("payment declined")

    with pytest.raises(ValueError, match="payment declined"):
        declined()
    assert 0 == count(store, "orders")
    snapshot = store.load("c")
    assert snapshot is not None
    assert D(2000) == snapshot.remaining_credits(sh(2026, 3, 2))


def test_a_broken_constraint_of_the_callers_rows_is_store_constraint(
    sync_store: SqlStore,
) -> None:
    """The caller's own row breaking a constraint (an order id already used by
    another customer) is store.constraint, answered 409, not retryable; the edit
    in the same transaction is rolled back with it. Another order id commits."""
    store = sync_store
    ORDERS.create(store.engine)
    for customer in ("c", "d"):
        with store.edit(customer) as sub:
            sub.subscribe("basic", order_id=f"o-1-{customer}", at=sh(2026, 3, 1))
    place_order(store, "c", "o-2")
    with pytest.raises(lc.store.StoreError) as info:
        place_order(store, "d", "o-2")
    error = info.value
    assert ("store.constraint", 409, False) == (
        error.code,
        error.problem()["status"],
        getattr(error, "retryable", False),
    )
    assert isinstance(error.__cause__, sa.exc.IntegrityError)
    detail = error.problem()["detail"].lower()  # answered to HTTP clients: no database text
    assert "duplicate key" not in detail
    assert "unique constraint" not in detail
    assert 1 == count(store, "orders")
    snapshot = store.load("d")
    assert snapshot is not None
    assert D(2000) == snapshot.remaining_credits(sh(2026, 3, 2))
    assert place_order(store, "d", "o-3").replayed is False
    assert 2 == count(store, "orders")


@pytest.mark.parametrize(
    ("customer_id", "order_id", "usage_id", "field"),
    [
        ("c" * 256, "o-1", "u-1", "customer_id"),
        ("a\x00b", "o-1", "u-1", "customer_id"),
        ("c", "o\x00", "u-1", "order_id"),
        ("c", "o-1", "u\x00", "usage_id"),
        ("c", "o-1", "u" * 256, "usage_id"),
        ("c", "o-1", "\ud800", "usage_id"),
        ("c", " ", "u-1", "order_id"),
    ],
)
def test_bad_ids_are_refused_before_the_database(
    store: SqlStore, customer_id: str, order_id: str, usage_id: str, field: str
) -> None:
    """Ids and keys too long, blank, or holding a control character are InvalidInput
    naming the argument, on every database alike, and nothing is written."""

    def order() -> None:
        with store.edit(customer_id) as sub:
            sub.subscribe("basic", order_id=order_id, at=sh(2026, 3, 1))
            sub.record_usage("media_processing", D(1), usage_id, at=sh(2026, 3, 2))

    with pytest.raises(lc.InvalidInput) as info:
        order()
    assert field == info.value.field
    assert 0 == count(store, "lifecycle_history")
    with pytest.raises(lc.InvalidInput):
        store.load(customer_id if field == "customer_id" else "\x01")


def test_retries_are_answered_from_the_tables_and_say_so(store: SqlStore) -> None:
    """A usage or an order retried in a later edit returns its first result, marked
    replayed, and writes nothing; a reused key with other arguments conflicts."""
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
        first = sub.record_usage("media_processing", D(5), usage_id="u-1", at=sh(2026, 3, 2))
    revision = row_of(store, "c")["revision"]
    with store.edit("c") as sub:
        again = sub.record_usage("media_processing", D(5), "u-1", sh(2026, 3, 2))
        order = sub.subscribe("basic", order_id="o-1")
        with pytest.raises(lc.IdempotencyConflict):
            sub.record_usage("media_processing", D(6), "u-1", sh(2026, 3, 2))
        with pytest.raises(lc.IdempotencyConflict):
            sub.buy_addon("boost-500", order_id="o-1")
    assert (first, True, False) == (again, again.replayed, first.replayed)
    assert (True, D("1000.00")) == (order.replayed, order.amount)
    assert revision == row_of(store, "c")["revision"]


def test_a_corrupt_row_names_the_customer_and_the_field(store: SqlStore) -> None:
    """A corrupt stored record, usage key or history row is InvalidInput naming the
    customer and the field, for edit and load alike."""
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
        sub.record_usage("media_processing", D(5), usage_id="u-1", at=sh(2026, 3, 2))
    cases = [
        ("UPDATE lifecycle_subscriptions SET record = '{not json'", "customer 'c': record"),
        (
            "UPDATE lifecycle_subscriptions SET record = '{\"schema_version\": 7}'",
            "schema_version",
        ),
        ("UPDATE lifecycle_subscriptions SET seq = 5", "customer 'c': record.seq"),
        ("UPDATE lifecycle_subscriptions SET record = ''", "customer 'c': record"),
        (
            f"UPDATE lifecycle_subscriptions SET record = '{'[' * 100_000}{']' * 100_000}'",
            "customer 'c': record",
        ),
    ]
    for statement, field in cases:
        with store.engine.begin() as connection:
            saved = connection.exec_driver_sql(
                "SELECT record, seq FROM lifecycle_subscriptions"
            ).one()
            connection.exec_driver_sql(statement)
        for read in (lambda: store.load("c"), lambda: store.edit("c").__enter__()):
            with pytest.raises(lc.InvalidInput) as info:
                read()
            assert field in info.value.field
        with store.engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE lifecycle_subscriptions SET record = :r, seq = :s"),
                {"r": saved[0], "s": saved[1]},
            )
    with store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE lifecycle_usage_keys SET row = '[\"u-1\"]'")
        connection.exec_driver_sql("UPDATE lifecycle_history SET details = '{}'")
    with pytest.raises(lc.InvalidInput) as info, store.edit("c") as sub:
        sub.record_usage("media_processing", D(5), usage_id="u-1", at=sh(2026, 3, 2))
    assert "customer 'c': usage_keys['u-1']" == info.value.field
    with pytest.raises(lc.InvalidInput) as info:
        store.history("c")
    assert info.value.field.startswith("customer 'c': history[1].details")


def test_a_row_reset_or_deleted_by_hand_is_not_a_new_customer(store: SqlStore) -> None:
    """A customer's row reset to a new one's, or deleted, with its history left:
    an edit refuses it as record.invalid (read as new, it would sell and bill
    afresh), and nothing is written; a customer truly new is served as before.
    (``load`` reads the row alone: a snapshot, which changes nothing.)"""
    for customer in ("reset", "deleted"):
        with store.edit(customer) as sub:
            sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    with store.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE lifecycle_subscriptions SET record = '', revision = 0, seq = 0 "
            "WHERE customer_id = 'reset'"
        )
        connection.exec_driver_sql(
            "DELETE FROM lifecycle_subscriptions WHERE customer_id = 'deleted'"
        )
    for customer in ("reset", "deleted"):
        with pytest.raises(lc.InvalidInput) as info, store.edit(customer) as sub:
            sub.subscribe("basic", order_id="o-2", at=sh(2026, 3, 2))
        assert (f"customer {customer!r}: record", "record.invalid") == (
            info.value.field,
            info.value.code,
        )
        assert "history table holds entries of this customer" in str(info.value)
    assert 0 == count(store, "lifecycle_subscriptions", "customer_id = 'deleted'")
    assert 2 == count(store, "lifecycle_history")
    with store.edit("new") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    assert 3 == count(store, "lifecycle_history")


def test_a_missing_history_entry_is_never_taken_for_an_unused_order_key(
    store: SqlStore,
) -> None:
    """A history row deleted by hand (a purge): the retried purchase it recorded is
    not taken as new (charged twice) but refused as record.invalid naming the gap,
    and nothing changes; the full history names the gap too."""
    refused = _retried_purchase_after(store, "DELETE FROM lifecycle_history WHERE seq = 2")
    assert "holds 1 of the record's 2 entries" in str(refused)
    with pytest.raises(lc.InvalidInput, match="missing seq 2"):
        store.history("c")
    with store.edit("c") as sub:  # what needs no order key goes on
        sub.record_usage("media_processing", D(5), usage_id="u-1", at=sh(2026, 3, 3))


def test_an_order_entry_that_lost_its_key_is_never_taken_for_an_unused_key(
    store: SqlStore,
) -> None:
    """A purchase's history row whose key was blanked by hand: the retried purchase
    is refused as record.invalid, not charged again; nothing changes."""
    refused = _retried_purchase_after(
        store, "UPDATE lifecycle_history SET key = NULL WHERE seq = 2"
    )
    assert "1 of its entries of orders or cancellations hold no key" in str(refused)


def _retried_purchase_after(store: SqlStore, tampering: str) -> lc.InvalidInput:
    """Subscribe and buy an add-on, change the history by hand (``tampering``),
    retry the add-on's purchase: it is refused as record.invalid naming the
    history, and nothing changes. Return the refusal."""
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
        sub.buy_addon("boost-500", order_id="o-2", at=sh(2026, 3, 2))
    with store.engine.begin() as connection:
        connection.exec_driver_sql(tampering)
    before = row_of(store, "c")
    with pytest.raises(lc.InvalidInput) as info, store.edit("c") as sub:
        sub.buy_addon("boost-500", order_id="o-2", at=sh(2026, 3, 2))
    assert ("record.invalid", "customer 'c': history") == (info.value.code, info.value.field)
    assert before == row_of(store, "c")
    return info.value


def test_load_reads_the_row_only(store: SqlStore) -> None:
    """load() and a status read of today read one row: no usage keys, no history, however
    many the window holds; a read of the past fetches what it needs then."""
    with store.edit("c") as sub:
        sub.subscribe("professional", order_id="o-1", at=sh(2026, 3, 1))
        for n in range(50):
            sub.record_usage(
                "media_processing", D(1), f"u-{n}", sh(2026, 3, 2) + timedelta(minutes=n)
            )
    statements: list[str] = []
    for engine in store.engines if getattr(store, "is_async", False) else [store.engine]:
        sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    snapshot = store.load("c")
    assert snapshot is not None
    assert (lc.State.ENTERPRISE_ACTIVE, D(29950)) == (
        snapshot.state_at(sh(2026, 3, 10)),
        snapshot.remaining_credits(sh(2026, 3, 10)),
    )
    assert snapshot.authorize("media_processing", sh(2026, 3, 10)).allowed
    assert not [s for s in statements if "lifecycle_usage_keys" in s or "lifecycle_history" in s]
    assert D(29979) == snapshot.remaining_credits(sh(2026, 3, 2, 12, 20))
    assert [s for s in statements if "lifecycle_usage_keys" in s]


def test_a_stale_snapshot_does_not_guess_a_past_balance(store: SqlStore) -> None:
    """A snapshot whose customer changed since it was loaded refuses a read of the past
    that would need usage keys it never saw, rather than answer wrongly."""
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
        sub.record_usage("media_processing", D(5), "u-1", at=sh(2026, 3, 2))
    snapshot = store.load("c")
    assert snapshot is not None
    with store.edit("c") as sub:
        sub.record_usage("media_processing", D(7), "u-2", at=sh(2026, 3, 2, 13))
    assert D(1995) == snapshot.remaining_credits(sh(2026, 3, 2, 13))
    with pytest.raises(lc.store.ReadOnly, match="load it again"):
        snapshot.remaining_credits(sh(2026, 3, 2, 11))
    fresh = store.load("c")
    assert fresh is not None
    assert D(2000) == fresh.remaining_credits(sh(2026, 3, 2, 11))


def test_a_transaction_that_ends_inside_the_edit_writes_nothing(sync_store: SqlStore) -> None:
    store = sync_store
    """The caller commits its connection inside the edit (its row lock goes with the
    transaction): the edit refuses to write at the end, store.no_transaction, rather
    than write over whatever another edit did meanwhile."""
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))

    def commits_inside() -> None:
        with store.engine.connect() as connection:
            connection.begin()
            with store.edit("c", connection=connection) as sub:
                sub.record_usage("media_processing", D(100), "u-a", at=sh(2026, 3, 2))
                connection.commit()
            connection.commit()

    with pytest.raises(lc.store.StoreMisuse) as info:
        commits_inside()
    assert "store.no_transaction" == info.value.code
    with store.edit("c") as sub:
        sub.record_usage("media_processing", D(100), "u-b", at=sh(2026, 3, 2))
    snapshot = store.load("c")
    assert snapshot is not None
    assert (D(1900), 1) == (
        snapshot.remaining_credits(sh(2026, 3, 2)),
        count(store, "lifecycle_usage_keys"),
    )


def test_an_edit_that_does_nothing_to_a_new_customer_leaves_no_row(store: SqlStore) -> None:
    """Reading a mistyped id through edit() does not create a customer."""
    with store.edit("typo") as sub:
        assert lc.State.NONE == sub.state_at(sh(2026, 3, 1))
    assert (None, 0) == (store.load("typo"), count(store, "lifecycle_subscriptions"))
    with store.edit("real") as sub:
        sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    assert 1 == count(store, "lifecycle_subscriptions")


def test_the_callers_own_statements_translate_too(store: SqlStore) -> None:
    """store.translated() turns the errors of the caller's own statements, in the
    transaction it hands to edit, into the store's."""
    with (
        pytest.raises(lc.store.StoreError) as info,
        store.translated("orders"),
        store.engine.connect() as connection,
    ):
        connection.exec_driver_sql("SELECT * FROM no_such_orders_table")
    assert isinstance(info.value.__cause__, sa.exc.DBAPIError)


def test_an_aborted_transaction_is_not_called_retryable(pg_sync_store: SqlStore) -> None:
    """On PostgreSQL a statement the caller catches inside the edit aborts the whole
    transaction: the edit says so (store.no_transaction, not retryable) instead of
    a retryable StoreUnavailable that could never succeed."""
    store = pg_sync_store

    def swallow() -> None:
        with (
            store.engine.connect() as connection,
            connection.begin(),
            store.edit("c", connection=connection) as sub,
        ):
            sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
            with suppress(sa.exc.DBAPIError):
                connection.exec_driver_sql("SELECT 1/0")

    with pytest.raises(lc.store.StoreMisuse) as info:
        swallow()
    assert ("store.no_transaction", False) == (info.value.code, info.value.retryable)
    assert store.load("c") is None


def _utc(value: object) -> datetime | None:
    """A timestamp column as read by plain SQL (SQLite answers text)."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def test_the_row_keeps_the_instants_the_sweep_looks_for(store: SqlStore) -> None:
    """The row's due_at and keys_from follow every kind of write: set when they
    change (a purchase, the first usage key, a sweep), kept when they do not (a
    later usage, which leaves them out of its UPDATE)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)

    def instants() -> tuple[datetime | None, datetime | None]:
        row, sub = row_of(store, "c"), store.load("c")
        assert sub is not None
        found = (_utc(row["due_at"]), _utc(row["keys_from"]))
        assert sub.due_at == found[0]
        return found

    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", term_months=1, at=start)
        due = sub.due_at
    assert due is not None
    assert (due, None) == instants()
    with store.edit("c") as sub:
        sub.record_usage("media_processing", D(1), "u-1", at=start + timedelta(days=1))
    assert (due, start + timedelta(days=1)) == instants()
    with store.edit("c") as sub:
        sub.record_usage("media_processing", D(1), "u-2", at=start + timedelta(days=2))
    assert (due, start + timedelta(days=1)) == instants()
    assert 1 == store.sweep(datetime.now(UTC)).applied
    after_sweep = instants()
    assert after_sweep[0] is None
