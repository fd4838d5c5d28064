"""Concurrency and faults, against the real servers: processes contend for one customer,
processes die inside an edit, PostgreSQL drops a connection mid-transaction, sweepers
and drainers run side by side. Nothing is mocked."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from lifecycle.store import SqlStore, outbox
from tests.store import workers

D = Decimal
SPAWN = multiprocessing.get_context("spawn")


def test_eight_processes_on_one_customer(store: SqlStore, url: str) -> None:
    """8 processes x 200 usages, each sent twice, on one customer whose credits run out
    part-way: credits plus pay-as-you-go equal the usage sent once, exactly one
    quota-exhausted-payg transition, no key applied twice, each transition in the outbox once."""
    with store.edit("hot") as sub:
        sub.subscribe("basic", order_id="o-1", term_months=12)  # 2000 credits
    with SPAWN.Pool(8) as pool:
        results = pool.starmap(workers.record_twice, [(url, "hot", n, 200) for n in range(8)])
    settled = [row for rows in results for row in rows]
    assert 1600 == len({usage_id for usage_id, _, _ in settled})
    quota = sum(D(q) for _, q, _ in settled)
    payg = sum(D(p) for _, _, p in settled)
    assert (D(2000), D(1200)) == (quota, payg)  # 1600 usages x 2 units, sent once
    sub = store.load("hot")
    assert sub is not None
    assert D(0) == sub.remaining_credits()
    triggers = [t.trigger for t in sub.history]
    assert ["subscribe", "quota_used_up"] == triggers
    with store.engine.connect() as connection:
        rows = connection.execute(sa.select(outbox.c.customer_id, outbox.c.seq)).all()
    assert [("hot", 1), ("hot", 2)] == sorted(rows)


def test_a_process_killed_inside_edit_leaves_the_last_commit(store: SqlStore, url: str) -> None:
    """SIGKILL inside an edit: nothing of that edit is kept, and the lock is released."""
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1")
    ready = SPAWN.Event()
    doomed = SPAWN.Process(target=workers.die_inside_edit, args=(url, "c", ready))
    doomed.start()
    assert ready.wait(60)
    assert doomed.pid is not None
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join(30)
    assert -signal.SIGKILL == doomed.exitcode
    with store.edit("c") as sub:  # would hang if the dead process still held the lock
        assert D(2000) == sub.remaining_credits()
        sub.record_usage("media_processing", D(7), "doomed")
    snapshot = store.load("c")
    assert snapshot is not None
    assert D(1993) == snapshot.remaining_credits()


def test_dropped_postgresql_connection_commits_nothing_half(pg_store: SqlStore) -> None:
    """The server ends the backend mid-transaction: the edit fails, nothing of it is
    committed, what was committed before is intact, and the next edit works."""
    store = pg_store
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1")
    killer = sa.create_engine(store.engine.url)
    connection = store.engine.connect()
    connection.begin()
    backend = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()

    def edit_while_the_server_ends_it() -> None:
        with store.edit("c", connection=connection) as sub:
            sub.record_usage("media_processing", D(7), "u-1")
            with killer.begin() as other:
                other.exec_driver_sql(f"SELECT pg_terminate_backend({backend})")

    with pytest.raises(sa.exc.DBAPIError):
        edit_while_the_server_ends_it()
    connection.invalidate()
    connection.close()
    killer.dispose()
    snapshot = store.load("c")
    assert snapshot is not None
    assert (D(2000), 1) == (snapshot.remaining_credits(), len(snapshot.history))
    with store.edit("c") as sub:
        sub.record_usage("media_processing", D(7), "u-1")
    snapshot = store.load("c")
    assert snapshot is not None
    assert D(1993) == snapshot.remaining_credits()


def test_sweepers_and_drainers_side_by_side(store: SqlStore, url: str) -> None:
    """Two processes sweep and drain at once: every transition is handed out exactly
    once, and each customer's in order."""
    start = datetime.now(UTC) - timedelta(days=70)
    for n in range(25):
        with store.edit(f"c-{n}") as sub:
            sub.purchase_trial(order_id="o-1", at=start + timedelta(minutes=n))
    now = (start + timedelta(days=60)).isoformat()
    with SPAWN.Pool(2) as pool:
        handed = pool.starmap(workers.sweep_and_drain, [(url, now, 200), (url, now, 200)])
    messages = [m for process in handed for m in process]
    ids = Counter(message_id for message_id, _, _, _ in messages)
    assert all(1 == count for count in ids.values())
    with store.engine.connect() as connection:
        rows = connection.execute(
            sa.select(outbox.c.id, outbox.c.customer_id, outbox.c.seq, outbox.c.delivered_at)
        ).all()
    assert set(ids) == {row.id for row in rows}
    assert 50 == len(rows)
    assert all(row.delivered_at is not None for row in rows)
    by_customer = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r.delivered_at, r.id)):
        by_customer[row.customer_id].append(row.seq)
    assert all([1, 2] == seqs for seqs in by_customer.values())
    for n in range(25):
        snapshot = store.load(f"c-{n}")
        assert snapshot is not None
        assert ["purchase_trial", "trial_ended"] == [t.trigger for t in snapshot.history]
