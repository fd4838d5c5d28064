"""``AsyncSqlStore`` on an SQLite file: its own units of work run in worker
threads on a blocking engine of the same file, one thread hop per unit.

aiosqlite runs every call of every statement (cursor, execute, fetch, close)
in its thread and back through the event loop, a dozen hops and more for one
edit, all while the edit holds the database's write lock; under load that
halves what the file can do. Here a transaction's work is one hop: the same
functions of ``core``, ``plans``, ``sweep`` and ``outbox``, on a pysqlite
connection, in a thread of the store's own. An operation inside an edit runs
on the event loop itself: the edit holds the write lock, so its reads (point
reads by key) never wait for a lock, and cost less than a hop. A caller's
``edit(connection=<AsyncConnection>)`` still runs on the caller's aiosqlite
connection, and ``store.engine`` is still the aiosqlite engine.

Writers wait for their turn (``turns.AsyncTurns``) on the event loop, before
the hop. A task cancelled while its work runs does not stop the work: the
connection stays busy until the work ends, and a transaction opened for a
task that is gone is rolled back and closed, its turn given back.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import queue
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.errors import StoreMisuse
from lifecycle.store import core, turns

T = TypeVar("T")
_ENDING: set[asyncio.Future[None]] = set()
"""Transactions being ended whose tasks were cancelled: kept until they end."""
Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any] | None", Callable[[], Any]]


def applies(url: sa.URL) -> bool:
    """Whether ``url`` names an SQLite file (an in-memory database has no second
    connection to share it with)."""
    database = url.database or ""
    return (
        url.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and url.query.get("mode") != "memory"
    )


class Threads:
    """The blocking engine and the worker threads of one ``AsyncSqlStore``."""

    def __init__(
        self, url: sa.URL, engine_options: dict[str, Any], lock_timeout: timedelta
    ) -> None:
        options = dict(engine_options)
        connect_args = dict(options.pop("connect_args", {}))
        # NOTE: a connection is used by one unit of work at a time, but not always
        # from the same thread.
        connect_args["check_same_thread"] = False
        self.engine = sa.create_engine(
            url.set(drivername="sqlite"), connect_args=connect_args, **options
        )
        self._database = turns.database_of(url)
        self._seconds = lock_timeout.total_seconds()
        self._milliseconds = max(1, int(self._seconds * 1000))
        pool = self.engine.pool
        self._size = pool.size() if isinstance(pool, sa.QueuePool) else 5
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._guard = threading.Lock()

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``fn(*args)`` in a worker thread, with the caller's context."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._put((loop, future, functools.partial(contextvars.copy_context().run, fn, *args)))
        return future

    def _put(self, job: Job) -> None:
        if len(self._workers) < self._size:
            with self._guard:
                if len(self._workers) < self._size:
                    worker = threading.Thread(
                        target=_work, args=(self._jobs,), daemon=True,
                        name=f"lifecycle-sqlite-{len(self._workers)}",
                    )  # fmt: skip
                    worker.start()
                    self._workers.append(worker)
        self._jobs.put(job)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread; a cancelled caller leaves it to finish."""
        return await asyncio.shield(self.submit(fn, *args))

    async def unit(self, write: bool, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` in one transaction, committed if it returns."""

        def work() -> T:
            with self.engine.connect() as connection:
                if not write:
                    connection.execution_options(lifecycle_begin="DEFERRED")
                with connection.begin():
                    done = fn(connection, *args)
                    with core.committing():
                        connection.commit()
                    return done

        if not write:
            return await self.call(work)
        give = await turns.AsyncTurns.take(self._database, self._seconds)
        future = self.submit(work)
        future.add_done_callback(lambda _: give())
        return await asyncio.shield(future)

    async def open(self, fn: Callable[..., T], *args: Any) -> tuple[ThreadedConnection, T]:
        """A write transaction held open across awaits, and ``fn(connection, *args)``
        run in it, in one hop; on failure the transaction is gone."""

        def work() -> tuple[Connection, T]:
            connection = self.engine.connect()
            try:
                connection.begin()
                return connection, fn(connection, *args)
            except BaseException:
                connection.close()
                raise

        give = await turns.AsyncTurns.take(self._database, self._seconds)
        here = self._begin_here()
        if here is not None:
            try:
                return ThreadedConnection(self, here, give), fn(here, *args)
            except BaseException:
                here.close()
                give()
                raise
        future = self.submit(work)
        try:
            connection, value = await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(functools.partial(self._abandon, give))
            raise
        except BaseException:
            give()
            raise
        return ThreadedConnection(self, connection, give), value

    def _begin_here(self) -> Connection | None:
        """BEGIN IMMEDIATE on the event loop, when it need not wait: the process's
        turn is held, so only another process's writer could make it wait, and
        SQLite's wait belongs in a thread. None when the write lock is not free at
        once, or when every pooled connection is out (a checkout would wait)."""
        pool = self.engine.pool
        if isinstance(pool, sa.QueuePool) and pool.checkedout() >= pool.size():
            return None
        connection = self.engine.connect()
        raw = connection.connection.dbapi_connection
        assert raw is not None
        try:
            raw.execute("PRAGMA busy_timeout = 0")
            try:
                connection.begin()
            finally:
                raw.execute(f"PRAGMA busy_timeout = {self._milliseconds}")
        except sa.exc.OperationalError:  # NOTE: database is locked, by another process
            connection.close()
            return None
        except BaseException:
            connection.close()
            raise
        return connection

    def _abandon(
        self, give: Callable[[], None], future: asyncio.Future[tuple[Connection, Any]]
    ) -> None:
        """A transaction opened for a task that was cancelled meanwhile: closed in a
        worker, which rolls it back, then its turn given back."""
        if future.cancelled() or future.exception() is not None:
            give()
            return
        closed = self.submit(future.result()[0].close)
        closed.add_done_callback(lambda _: give())

    def close(self) -> None:
        with self._guard:
            workers, self._workers = self._workers, []
        for _ in workers:
            self._jobs.put(None)
        for worker in workers:
            worker.join()
        self.engine.dispose()


def _work(jobs: queue.SimpleQueue[Job | None]) -> None:
    while (job := jobs.get()) is not None:
        loop, future, fn = job
        try:
            result = fn()
        except BaseException as error:
            if future is not None:
                loop.call_soon_threadsafe(_settle, future, None, error)
        else:
            if future is not None:
                loop.call_soon_threadsafe(_settle, future, result, None)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class ThreadedConnection:
    """A transaction of an ``AsyncSqlStore`` on an SQLite file, holding its turn:
    an edit's own, or the caller's from ``store.begin()``, which takes
    ``await connection.execute(...)`` like an ``AsyncConnection``.

    One step runs at a time: a step whose task was cancelled keeps the
    connection until it ends, and the next step waits for that.
    """

    def __init__(self, threads: Threads, connection: Connection, give: Callable[[], None]) -> None:
        self._threads = threads
        self.sync_connection = connection
        self._give: Callable[[], None] | None = give
        self._step: asyncio.Future[Any] | None = None

    def __repr__(self) -> str:
        return f"<ThreadedConnection {self.sync_connection.engine.url}>"

    @property
    def engine(self) -> sa.Engine:
        return self.sync_connection.engine

    async def _idle(self) -> None:
        while self._step is not None and not self._step.done():
            await asyncio.wait([self._step])

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        await self._idle()
        self._step = step = self._threads.submit(fn, *args)
        result: T = await asyncio.shield(step)
        return result

    async def execute(
        self, statement: sa.Executable, parameters: Any = None
    ) -> sa.Result[Any] | sa.CursorResult[Any]:
        """``statement`` in this transaction, its rows fetched in the worker thread."""

        def work(connection: Connection) -> Any:
            result = connection.execute(statement, parameters)
            return result.freeze() if result.returns_rows else result

        done = await self.run_sync(work)
        return done() if isinstance(done, sa.engine.FrozenResult) else done

    async def scalar(self, statement: sa.Executable, parameters: Any = None) -> Any:
        """The first column of the first row of ``statement``, or None."""
        return (await self.execute(statement, parameters)).scalar()

    async def scalars(self, statement: sa.Executable, parameters: Any = None) -> Any:
        """The first column of every row of ``statement``."""
        return (await self.execute(statement, parameters)).scalars()

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> Any:
        """``statement`` as the driver takes it, in this transaction."""

        def work(connection: Connection) -> Any:
            result = connection.exec_driver_sql(statement, parameters)
            return result.freeze() if result.returns_rows else result

        done = await self.run_sync(work)
        return done() if isinstance(done, sa.engine.FrozenResult) else done

    def in_transaction(self) -> bool:
        return self._give is not None

    async def commit(self) -> None:
        """Refused: the transaction of ``store.begin()`` commits when its block
        ends (on PostgreSQL a commit inside an edit makes the edit refuse to
        write, with the same code)."""
        raise StoreMisuse(
            "the transaction of store.begin() commits when its block ends; a commit "
            "inside it would let go of the edits' locks",
            code="store.no_transaction",
        )

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` on the blocking connection, in a worker thread."""
        return await self._run(fn, self.sync_connection, *args)

    async def run_here(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the event loop, once no step is running: an operation of an
        edit, whose reads never wait for a lock."""
        await self._idle()
        return fn()

    async def rollback(self) -> None:
        await self._run(self.sync_connection.rollback)

    async def end(self, fn: Callable[[Connection], object] | None) -> None:
        """Run ``fn(connection)`` and commit, or with ``fn`` None roll back; close
        the connection and give the turn back however that ends; one hop."""

        def work() -> None:
            connection = self.sync_connection
            try:
                if fn is None:
                    connection.rollback()
                else:
                    fn(connection)
                    with core.committing():
                        connection.commit()
            finally:
                connection.close()

        async def ending() -> None:
            try:
                await self._idle()
                await self._threads.submit(work)
            finally:
                self._ended()

        # NOTE: its own task, so that a cancelled caller leaves it to finish
        task = asyncio.ensure_future(ending())
        _ENDING.add(task)
        task.add_done_callback(_ENDING.discard)
        await asyncio.shield(task)

    def _ended(self) -> None:
        give, self._give = self._give, None
        if give is not None:
            give()
