"""The outbox: every transition handed out at least once, in order per customer, one
failing customer never holding up another, no lock held while a handler runs."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

import lifecycle as lc
from lifecycle.store import OutboxMessage, SqlStore
from lifecycle.store import outbox as queue
from tests.conftest import sh
from tests.store import workers
from tests.store.conftest import count
from tests.store.facade import make_store

D = Decimal
SPAWN = multiprocessing.get_context("spawn")


def expire_leases(store: SqlStore) -> None:
    """As if the wait after a failure (or a dead drainer's lease) had run out."""
    with store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE lifecycle_outbox SET lease_until = NULL")


def test_every_transition_lands_in_the_outbox_once(store: SqlStore) -> None:
    """Each history entry is one outbox row, handed out in order, `limit` at a time."""
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


def _two_customers(store: SqlStore) -> None:
    for customer in ("poison", "healthy"):
        with store.edit(customer) as sub:
            sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
            sub.subscribe("basic", order_id="o-2", at=sh(2026, 3, 2))


def test_a_failing_message_holds_back_only_its_customer(store: SqlStore) -> None:
    """A handler failing on one customer's message: that customer's later messages wait,
    every other customer's flow in the same drain, nothing is raised; the failed one is
    tried again once its wait is over, and then its customer's later ones follow."""
    _two_customers(store)
    seen: list[tuple[str, int]] = []
    broken = {"poison"}

    def handler(message: OutboxMessage) -> None:
        if message.customer_id in broken:
            raise ConnectionError("the mailer refuses this address")
        seen.append((message.customer_id, message.seq))

    assert 2 == store.drain_outbox(handler)
    assert [("healthy", 1), ("healthy", 2)] == seen
    assert 0 == store.drain_outbox(handler)  # waiting: not tried again at once
    expire_leases(store)
    broken.clear()
    assert 2 == store.drain_outbox(handler)
    assert [("poison", 1), ("poison", 2)] == seen[2:]
    assert 0 == count(store, "lifecycle_outbox", "delivered_at IS NULL")


def test_dead_letters_and_redelivery(stores: Callable[..., SqlStore]) -> None:
    """After max_attempts failures a message is dead-lettered with its attempts and last
    error; its customer's later messages then flow without it; redeliver puts it back
    at the end of the queue, and it is handed out once the handler works."""
    store = stores(max_attempts=3)
    store.create_schema()
    _two_customers(store)
    seen: list[tuple[str, int]] = []

    def handler(message: OutboxMessage) -> None:
        if message.customer_id == "poison" and message.seq == 1 and len(seen) < 10:
            raise ValueError(f"bad template for seq {message.seq}")
        seen.append((message.customer_id, message.seq))

    for _ in range(3):
        store.drain_outbox(handler)
        expire_leases(store)
    assert ("poison", 2) not in seen  # held back behind its failing seq 1 until now
    store.drain_outbox(handler)
    [dead] = store.dead_letters()
    assert (3, "ValueError: bad template for seq 1") == (dead.attempts, dead.last_error)
    assert ("poison", 1, "purchase_trial") == (
        dead.message.customer_id,
        dead.message.seq,
        dead.message.trigger,
    )
    assert ("poison", 2) in seen
    seen.extend([("filler", 0)] * 10)
    assert 1 == store.redeliver([dead.id])
    assert [] == store.dead_letters()
    assert 1 == store.drain_outbox(handler)
    assert ("poison", 1) == seen[-1]
    assert 0 == store.redeliver([dead.id])


@pytest.mark.parametrize(
    ("ids", "named"),
    [
        (5, "got int"),
        ("12", "got str"),
        ([2**63], f"got {2**63}"),
        ([0], "got 0"),
        ([1, True], "got True"),
        ([1.0], "got 1.0"),
    ],
)
def test_redeliver_refuses_what_is_no_id(
    stores: Callable[..., SqlStore], ids: Any, named: str
) -> None:
    """redeliver with something that is not a list of outbox ids (a bare number, a
    text, a number past 64 bits, a bool) is InvalidInput naming it, before the
    database sees it; a dead letter stays dead."""
    store = stores(max_attempts=1)
    store.create_schema()
    with store.edit("c") as sub:
        sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))

    def refuse(message: OutboxMessage) -> None:
        raise ValueError("down")

    store.drain_outbox(refuse)
    [dead] = store.dead_letters()
    with pytest.raises(lc.InvalidInput) as info:
        store.redeliver(ids)
    assert "ids" == info.value.field
    assert named in str(info.value)
    assert [dead.id] == [d.id for d in store.dead_letters()]
    assert 1 == store.redeliver(d.id for d in [dead])  # any iterable of ids


def test_a_handler_may_edit_the_store(store: SqlStore) -> None:
    """A handler that writes through store.edit (the obvious place to record a
    notification) works on SQLite and PostgreSQL: the drain holds no lock meanwhile."""
    _two_customers(store)

    def handler(message: OutboxMessage) -> None:
        with store.edit(f"notified-{message.customer_id}-{message.seq}") as sub:
            sub.purchase_trial(order_id=f"n-{message.id}", at=sh(2026, 3, 5))

    assert 4 == store.drain_outbox(handler)
    assert 4 == count(store, "lifecycle_subscriptions", "customer_id LIKE 'notified-%'")


def test_no_lock_is_held_while_a_handler_runs(
    store: SqlStore, stores: Callable[..., SqlStore]
) -> None:
    """While a handler runs, an unrelated edit from another thread goes through at once
    (it would wait for the drain on SQLite if the drain held the write lock)."""
    _two_customers(store)
    impatient = stores(lock_timeout=timedelta(milliseconds=500))
    outcomes: list[str] = []

    def handler(message: OutboxMessage) -> None:
        def edit() -> None:
            with impatient.edit("bystander") as sub:
                sub.purchase_trial(order_id=f"o-{message.id}", at=sh(2026, 3, 5))
            outcomes.append("edited")

        thread = threading.Thread(target=edit)
        thread.start()
        thread.join(10)

    store.drain_outbox(handler, limit=1)
    assert ["edited"] == outcomes


def test_a_dead_drainers_messages_come_back_after_its_lease(store: SqlStore) -> None:
    """Messages claimed by a drainer that died (no hand-out, no settlement) are not
    handed out while its lease lives, and are handed out again once it runs out."""
    _two_customers(store)
    with store.engine.begin() as connection:
        claimed = queue.claim(connection, datetime.now().astimezone(), 100, 0, queue.new_token())
    assert 4 == len(claimed.messages)
    seen: list[OutboxMessage] = []
    assert 0 == store.drain_outbox(seen.append)
    expire_leases(store)
    assert 4 == store.drain_outbox(seen.append)
    assert [1, 2, 1, 2] == [m.seq for m in seen]


def test_the_sweep_deletes_delivered_messages_after_their_retention(
    stores: Callable[..., SqlStore],
) -> None:
    """Delivered messages older than outbox_retention (at the sweep's now, delivered by
    the store's clock) are deleted; undelivered ones never are."""
    now = [sh(2026, 3, 10)]
    store = stores(clock=lambda: now[0], outbox_retention=timedelta(days=2))
    store.create_schema()
    _two_customers(store)
    store.drain_outbox(lambda m: None, limit=2)  # one customer's two messages
    now[0] = sh(2026, 3, 11)
    assert 0 == store.sweep(now[0]).messages_deleted
    now[0] = sh(2026, 3, 12)
    assert 2 == store.sweep(now[0]).messages_deleted
    assert 2 == count(store, "lifecycle_outbox")
    now[0] = sh(2027, 3, 12)
    assert 0 == store.sweep(now[0]).messages_deleted


def test_an_id_is_never_given_twice(stores: Callable[..., SqlStore]) -> None:
    """Once every message has been delivered and deleted, new ones still get ids
    above every id handed out before (a handler may use the id to spot repeats)."""
    now = [sh(2026, 3, 10)]
    store = stores(clock=lambda: now[0], outbox_retention=timedelta(days=1))
    store.create_schema()
    _two_customers(store)
    first: list[OutboxMessage] = []
    store.drain_outbox(first.append)
    now[0] = sh(2026, 3, 20)
    store.sweep(now[0])
    assert 0 == count(store, "lifecycle_outbox")
    with store.edit("healthy") as sub:
        sub.buy_addon("boost-500", order_id="o-3", at=sh(2026, 3, 20))
    later: list[OutboxMessage] = []
    assert 1 == store.drain_outbox(later.append)
    assert later[0].id > max(m.id for m in first)


def test_drain_arguments_are_checked(store: SqlStore) -> None:
    """A handler that is not callable, or a limit outside 1..10000, is InvalidInput."""
    with pytest.raises(lc.InvalidInput) as info:
        store.drain_outbox("print")  # type: ignore[arg-type]
    assert "handler" == info.value.field
    for limit in (0, -1, 10_001, True):
        with pytest.raises(lc.InvalidInput) as info:
            store.drain_outbox(print, limit=limit)
        assert "limit" == info.value.field


@pytest.mark.parametrize("drainers", [2, 4])
def test_drainers_side_by_side_keep_each_customers_order(
    store: SqlStore, url: str, drainers: int, kind: str
) -> None:
    """Several drainer processes over customers whose messages interleave in the outbox:
    every message is handed out once, and a customer's message only after the handler
    of its previous one has returned."""
    customers = [f"c-{n}" for n in range(60)]
    for customer in customers:
        with store.edit(customer) as sub:
            sub.subscribe("professional", order_id="o-0", at=sh(2026, 3, 1))
    for round_ in range(1, 5):
        for customer in customers:
            with store.edit(customer) as sub:
                sub.buy_addon("boost-500", order_id=f"o-{round_}", at=sh(2026, 3, 1 + round_))
    start = SPAWN.Manager().Barrier(drainers)
    with SPAWN.Pool(drainers) as pool:
        results = pool.starmap(workers.drain_all, [(url, 7, start, kind)] * drainers)
    handled = [row for rows in results for row in rows]
    assert len(customers) * 5 == len(handled)
    assert len(handled) == len({(c, seq) for c, seq, *_ in handled})
    by_customer: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for customer, seq, began, ended, _ in handled:
        by_customer[customer].append((began, ended, seq))
    for customer, rows in by_customer.items():
        rows.sort()
        assert [1, 2, 3, 4, 5] == [seq for _, _, seq in rows], customer
        for (_, ended, _), (began, _, _) in itertools.pairwise(rows):
            assert began >= ended, customer
    assert len({pid for *_, pid in handled}) > 1
    assert 0 == count(store, "lifecycle_outbox", "delivered_at IS NULL")


def test_a_drain_survives_its_connections_dying_under_the_handler(pg_store: SqlStore) -> None:
    """A handler during which every pooled connection of the store dies: the drain
    still records what it handed out (a fresh connection, tried again), so nothing
    is handed out twice and no customer is held back."""
    store = pg_store
    _two_customers(store)
    killer = sqlalchemy.create_engine(store.engine.url)
    handed: list[int] = []

    def handler(message: OutboxMessage) -> None:
        handed.append(message.id)
        with killer.begin() as connection:
            connection.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )

    assert 4 == store.drain_outbox(handler)
    killer.dispose()
    assert 0 == count(store, "lifecycle_outbox", "delivered_at IS NULL")
    assert 0 == store.drain_outbox(handler)
    assert 4 == len(handed)


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("details", "{not json", "JSONDecodeError"),
        ("details", "[1, 2]", "expected a JSON object"),
        ("details", "[" * 100_000 + "]" * 100_000, "RecursionError"),
        ("source", "limbo", "'limbo' is not a valid State"),
        ("at", {"sqlite": "garbage", "postgresql": "infinity"}, ""),
        ("requested_at", {"sqlite": "31/12/2026", "postgresql": "-infinity"}, ""),
    ],
)
def test_an_unreadable_row_is_dead_lettered_and_holds_up_no_one(
    store: SqlStore, column: str, value: str | dict[str, str], reason: str
) -> None:
    """One customer's outbox row is no message (written by hand: details that are
    no JSON object or nest past Python's limit, an unknown state, a timestamp the
    driver cannot read): the drain raises nothing, every other customer's messages
    flow, the row is dead-lettered at once with why, and that customer's later
    messages follow in the next drain; dead_letters() lists the readable ones."""
    _interleaved(store)
    if isinstance(value, dict):
        value = value["sqlite" if store.is_sqlite else "postgresql"]
    with store.engine.begin() as connection:
        connection.execute(
            sqlalchemy.text(
                f"UPDATE lifecycle_outbox SET {column} = :value "
                "WHERE customer_id = 'poison' AND seq = 1"
            ),
            {"value": value},
        )
    _the_bad_row_is_dead_lettered(store, reason)


def _the_bad_row_is_dead_lettered(store: SqlStore, reason: str) -> None:
    seen: list[tuple[str, int]] = []
    assert 2 == store.drain_outbox(lambda m: seen.append((m.customer_id, m.seq)))
    assert [("healthy", 1), ("healthy", 2)] == seen
    assert 1 == store.drain_outbox(lambda m: seen.append((m.customer_id, m.seq)))
    assert ("poison", 2) == seen[-1]
    assert [] == store.dead_letters()  # not a message: logged by id, not listed
    query = (
        "SELECT id, attempts, last_error, dead_at FROM lifecycle_outbox "
        "WHERE customer_id = 'poison' AND seq = 1"
    )
    with store.engine.connect() as connection:
        id_, attempts, error, dead = connection.execute(sqlalchemy.text(query)).one()
    assert (1, True) == (attempts, dead is not None)
    assert error.startswith("unreadable: ")
    assert reason in error
    assert 1 == store.redeliver([id_])  # copied by the database, as it is
    assert 0 == store.drain_outbox(lambda m: seen.append((m.customer_id, m.seq)))
    with store.engine.connect() as connection:
        again, attempts, error, dead = connection.execute(sqlalchemy.text(query)).one()
    assert (True, 1, True) == (again > id_, attempts, dead is not None)
    assert 3 == len(seen)  # the copy, as unreadable, is dead again at once


def test_text_that_is_not_utf8_is_an_unreadable_row(tmp_path: Path, kind: str) -> None:
    """SQLite: a row whose text is not UTF-8 (the driver cannot decode it) is as
    unreadable as bad JSON, not the database failing: it is dead-lettered."""
    store = make_store(kind, f"sqlite:///{tmp_path / 'utf8.db'}", catalog=lc.default_catalog())
    store.create_schema()
    _interleaved(store)
    with store.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE lifecycle_outbox SET details = CAST(X'7BFF7D' AS TEXT) "
            "WHERE customer_id = 'poison' AND seq = 1"
        )
    _the_bad_row_is_dead_lettered(store, "decode")
    store.close()


def _interleaved(store: SqlStore) -> None:
    """Two customers' two messages each, the poison's first between the healthy's."""
    for customer in ("healthy", "poison", "healthy", "poison"):
        with store.edit(customer) as sub:
            if sub.state is lc.State.NONE:
                sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
            else:
                sub.subscribe("basic", order_id="o-2", at=sh(2026, 3, 2))
