"""SQLite: the writers of one database file take turns inside the process, first
come first served, before they ask for the database's write lock.

SQLite lets one writer in at a time, and its own wait polls with growing
sleeps (1, 2, 5 ... 100 ms), so a server's writers would otherwise wait in
long, uneven tails. A writer hands the turn to the next in line directly when
its commit or rollback is done; a wait longer than the lock timeout leaves
the line with ``LockTimeout``.

The turn is taken by the engine's ``begin`` event, so every write
transaction on the store's engine takes it: the store's own, and a caller's
for ``edit(connection=)`` or for its own tables. Threads take turns per
process (``Turns``), tasks per event loop (``AsyncTurns``): a task waits for
its turn without blocking its loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import threading
import weakref
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.errors import LockTimeout

TURN = "lifecycle_turn"
"""In a connection's ``info``: how to give back the turn it holds."""


class Turns:
    """The line of one database file's writers in this process, across threads."""

    _all: ClassVar[dict[str, Turns]] = {}
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._busy = False
        self._line: collections.deque[threading.Event] = collections.deque()
        self._mutex = threading.Lock()

    @classmethod
    def of(cls, database: str) -> Turns:
        with cls._guard:
            return cls._all.setdefault(database, cls())

    def take(self, timeout: float) -> bool:
        with self._mutex:
            if not self._busy and not self._line:
                self._busy = True
                return True
            mine = threading.Event()
            self._line.append(mine)
        if mine.wait(timeout):
            return True
        with self._mutex:
            if mine.is_set():
                return True  # handed over just as the wait ran out
            self._line.remove(mine)
        return False

    def give(self) -> None:
        with self._mutex:
            if self._line:
                self._line.popleft().set()  # the turn passes, still busy
            else:
                self._busy = False


class AsyncTurns:
    """The line of one database file's writers on one event loop: an
    ``asyncio.Lock``, whose waiters are served in order.

    Measured beside a line of threads that hand the turn to each other
    directly, this is faster: a waiting writer holds no thread, and the
    threads that do work meet fewer others for the GIL.
    """

    _all: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]]]
    _all = weakref.WeakKeyDictionary()  # noqa: PIE794, RUF012 - the annotation above

    @classmethod
    def of(cls, database: str) -> asyncio.Lock:
        per_loop = cls._all.setdefault(asyncio.get_running_loop(), {})
        return per_loop.setdefault(database, asyncio.Lock())

    @classmethod
    async def take(cls, database: str, seconds: float) -> Callable[[], None]:
        """Wait for the turn; return what gives it back."""
        lock = cls.of(database)
        try:
            # NOTE: not wait_for, which on 3.11 returns the lock to a task cancelled
            # as it was granted, swallowing the cancellation
            async with asyncio.timeout(seconds):
                await lock.acquire()
        except TimeoutError:
            raise LockTimeout(None, seconds) from None
        return lock.release


def _refused(connection: Connection, dbapi_connection: Any, error: Exception) -> Exception:
    """A COMMIT SQLite refused: roll back what it may have left open (a busy or
    full database can leave the transaction active), and give the error as
    SQLAlchemy would have, so that the store translates it."""
    with contextlib.suppress(Exception):
        dbapi_connection.rollback()
    dbapi = connection.dialect.loaded_dbapi
    if not isinstance(error, dbapi.Error):
        return error
    return sa.exc.DBAPIError.instance(None, None, error, dbapi.Error, dialect=connection.dialect)


def database_of(url: sa.URL) -> str:
    """What names an SQLite database in the lines: its file's absolute path."""
    return os.path.abspath(url.database or ":memory:")


def take_turns(engine: sa.Engine, lock_timeout: timedelta) -> None:
    """Every write transaction of ``engine`` takes its turn before its BEGIN
    IMMEDIATE and gives it back when it ends, however it ends.

    ``engine`` is a blocking engine, or the ``sync_engine`` of an asyncio one;
    call this before the store's ``begin`` event is registered, so that the
    turn is held before BEGIN runs.
    """
    database = database_of(engine.url)
    seconds = lock_timeout.total_seconds()
    asynchronous = engine.dialect.is_async

    def begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("lifecycle_begin", "IMMEDIATE")
        if mode != "IMMEDIATE" or connection.info.get(TURN):
            return
        give: Callable[[], None]
        if asynchronous:
            # NOTE: events of an asyncio engine run in SQLAlchemy's greenlet on the
            # event loop; run_async is its documented way to await from them.
            give = connection.connection.dbapi_connection.run_async(  # type: ignore[union-attr]
                lambda _driver: AsyncTurns.take(database, seconds)
            )
        else:
            turns = Turns.of(database)
            if not turns.take(seconds):
                raise LockTimeout(None, seconds)
            give = turns.give
        connection.info[TURN] = give

    def ending(finish: str) -> Callable[[Connection], None]:
        def end(connection: Connection) -> None:
            give = connection.info.pop(TURN, None)
            if give is None:
                return
            # NOTE: SQLAlchemy's commit and rollback events come before the commit or
            # rollback. The turn must pass after the write lock is free, or the next
            # writer's BEGIN IMMEDIATE meets it and sleeps in SQLite's busy wait
            # (tens of milliseconds). So it is done here; SQLAlchemy's own call after
            # this finds no transaction and does nothing.
            dbapi_connection = None
            try:
                dbapi_connection = connection.connection.dbapi_connection
                if dbapi_connection is not None:
                    getattr(dbapi_connection, finish)()
            except Exception as error:
                if finish == "commit":  # a refused commit (a full disk) must not pass
                    raise _refused(connection, dbapi_connection, error) from error
                # a failed rollback: SQLite has ended the transaction, or the
                # connection is gone, and the pool's reset rolls back again
            finally:
                give()

        return end

    def lost(record: Any) -> None:
        give = record.info.pop(TURN, None) if record is not None else None
        if give is not None:
            give()

    sa.event.listen(engine, "begin", begin)
    sa.event.listen(engine, "commit", ending("commit"))
    sa.event.listen(engine, "rollback", ending("rollback"))
    sa.event.listen(engine.pool, "reset", lambda _c, record, _state: lost(record))
    sa.event.listen(engine.pool, "invalidate", lambda _c, record, _e: lost(record))
    sa.event.listen(engine.pool, "close", lambda _c, record: lost(record))
