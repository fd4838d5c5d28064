"""SQLite: a process's writers take turns before they ask for the write lock
(lifecycle/store/turns.py), and AsyncSqlStore's work on an SQLite file runs in
worker threads without ever blocking its event loop (lifecycle/store/threaded.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from contextlib import nullcontext
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import lifecycle as lc
from lifecycle.store import AsyncSqlStore, SqlStore
from lifecycle.store.turns import Turns
from tests.conftest import sh

D = Decimal
SHORT = timedelta(milliseconds=300)


def statements_of(engine: sa.Engine) -> list[str]:
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


def test_the_line_is_first_come_first_served() -> None:
    """Waiters get the turn in the order they asked; one whose wait runs out leaves
    the line and the next one gets it."""
    turns = Turns()
    assert turns.take(1)
    order: list[int] = []

    def wait(n: int, seconds: float) -> None:
        if turns.take(seconds):
            order.append(n)
            turns.give()

    waiters = []
    for n, seconds in enumerate([5, 0.05, 5]):
        waiters.append(threading.Thread(target=wait, args=(n, seconds)))
        waiters[-1].start()
        time.sleep(0.02)
    time.sleep(0.1)  # the second one's wait has run out
    turns.give()
    for waiter in waiters:
        waiter.join()
    assert [0, 2] == order


def test_a_callers_transaction_holds_the_turn(tmp_path: Path) -> None:
    """A transaction from store.begin() holds the file's turn: another thread's edit
    waits in the line, without asking SQLite for the lock, and after lock_timeout
    gives up with LockTimeout, nothing written; once the transaction commits, the
    edit goes through."""
    url = f"sqlite:///{tmp_path / 'turns.db'}"
    store, other = SqlStore(url), SqlStore(url, lock_timeout=SHORT)
    store.create_schema()
    seen = statements_of(other.engine)
    failed: list[BaseException] = []

    def edit() -> None:
        try:
            with other.edit("d") as sub:
                sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
        except lc.LifecycleError as error:
            failed.append(error)

    with store.begin() as connection:
        with store.edit("c", connection=connection) as sub:
            sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
        waiter = threading.Thread(target=edit)
        waiter.start()
        waiter.join()
    assert ["store.lock_timeout"] == [getattr(e, "code", None) for e in failed]
    assert not [s for s in seen if "BEGIN IMMEDIATE" in s]
    assert other.load("d") is None
    edit()
    loaded = other.load("d")
    assert loaded is not None
    assert lc.State.TRIAL == loaded.state_at(sh(2026, 3, 2))
    store.close()
    other.close()


@pytest.mark.parametrize("ending", ["commit", "raise in edit", "raise in begin", "close"])
def test_the_turn_passes_however_a_transaction_ends(tmp_path: Path, ending: str) -> None:
    """Committed, rolled back by an error inside the edit or the caller's block, or a
    connection closed without either: the next writer gets the turn at once."""
    url = f"sqlite:///{tmp_path / 'turns.db'}"
    store, other = SqlStore(url), SqlStore(url, lock_timeout=SHORT)
    store.create_schema()
    with pytest.raises(ValueError, match="raise") if ending.startswith("raise") else nullcontext():
        if ending == "close":
            connection = store.engine.connect()
            connection.begin()
            with store.edit("c", connection=connection) as sub:
                sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
            connection.close()
        else:
            with store.begin() as connection:
                with store.edit("c", connection=connection) as sub:
                    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
                    if ending == "raise in edit":
                        raise ValueError(ending)
                if ending == "raise in begin":
                    raise ValueError(ending)
    began = time.monotonic()
    with other.edit("d") as sub:
        sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    assert time.monotonic() - began < SHORT.total_seconds()
    assert (other.load("c") is not None) == (ending == "commit")
    store.close()
    other.close()


def run(body: Any, url: str, **options: Any) -> Any:
    async def main() -> Any:
        store = AsyncSqlStore(url, **options)
        await store.create_schema()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def test_tasks_take_turns_on_one_event_loop(tmp_path: Path) -> None:
    """AsyncSqlStore: while a task's store.begin() transaction holds the turn, another
    task's edit waits for it without blocking the loop or asking SQLite, and gives up
    after lock_timeout with LockTimeout, nothing written."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}"

    async def body(store: AsyncSqlStore) -> None:
        assert store._threads is not None
        seen = statements_of(store._threads.engine)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        async with store.begin() as connection:
            async with store.edit("c", connection=connection) as sub:
                await sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
            began = len(seen)
            with pytest.raises(lc.store.LockTimeout):
                async with store.edit("d") as sub:
                    await sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
            assert began == len(seen)
        ticker.cancel()
        assert ticks >= 10
        assert await store.load("d") is None
        assert await store.load("c") is not None

    run(body, url, lock_timeout=SHORT)


def test_another_process_holding_the_lock_never_blocks_the_loop(tmp_path: Path) -> None:
    """Another process's writer holds the file: an edit waits for SQLite in a worker
    thread while the loop goes on, gives up after lock_timeout, and leaves nothing
    behind; once the writer is done, the next edit goes through."""
    path = tmp_path / "turns.db"

    async def body(store: AsyncSqlStore) -> None:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        outsider = sqlite3.connect(path, isolation_level=None)
        outsider.execute("BEGIN IMMEDIATE")
        ticker = asyncio.create_task(tick())
        with pytest.raises(lc.store.LockTimeout):
            async with store.edit("c") as sub:
                await sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
        ticker.cancel()
        assert ticks >= 10
        outsider.execute("COMMIT")
        outsider.close()
        async with store.edit("c") as sub:
            await sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
        assert 1 == len(await store.history("c"))

    run(body, f"sqlite+aiosqlite:///{path}", lock_timeout=SHORT)


@pytest.mark.parametrize("where", ["waiting for the turn", "waiting for SQLite", "in the edit"])
def test_a_cancelled_task_gives_its_turn_back(tmp_path: Path, where: str) -> None:
    """A task cancelled while it waits for the turn, while its transaction is being
    opened in a worker thread, or inside its edit: nothing of it is written, and the
    next edit gets the turn at once."""
    path = tmp_path / "turns.db"

    async def body(store: AsyncSqlStore) -> None:
        async with store.edit("c") as sub:
            await sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
        entered = asyncio.Event()

        async def usage() -> None:
            async with store.edit("c") as sub:
                await sub.record_usage("media_processing", D(5), "u-1", sh(2026, 3, 2))
                entered.set()
                await asyncio.sleep(10)

        outsider = sqlite3.connect(path, isolation_level=None)
        holder = None
        if where == "waiting for the turn":
            holder = store.begin()
            await holder.__aenter__()
        elif where == "waiting for SQLite":
            outsider.execute("BEGIN IMMEDIATE")
        task = asyncio.create_task(usage())
        if where == "in the edit":
            await entered.wait()
        else:
            await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        if holder is not None:
            await holder.__aexit__(None, None, None)
        if outsider.in_transaction:
            outsider.execute("COMMIT")
        outsider.close()
        began = time.monotonic()
        async with store.edit("c") as sub:
            assert D(2000) == await sub.remaining_credits(sh(2026, 3, 2))
        assert time.monotonic() - began < SHORT.total_seconds()

    run(body, f"sqlite+aiosqlite:///{path}", lock_timeout=timedelta(seconds=2))
