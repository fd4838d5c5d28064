"""The same tests for both stores: ``AsyncSqlStore`` behind a blocking facade.

The store tests are written against ``SqlStore``'s API. ``AsyncFacade`` gives
an ``AsyncSqlStore`` that API by running each call on an event loop of its own
(in a thread), and ``make_store`` builds either store for a test or a worker
process, so every guarantee is tested on both stores and both databases.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa

from lifecycle.store import AsyncSqlStore, AsyncSubscription, SqlStore

T = TypeVar("T")

ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg_async"}


def async_url(url: str | sa.URL) -> sa.URL:
    parsed = sa.make_url(url)
    return parsed.set(drivername=ASYNC_DRIVERS[parsed.get_backend_name()])


def sync_url(url: str | sa.URL) -> sa.URL:
    parsed = sa.make_url(url)
    name = "sqlite" if parsed.get_backend_name() == "sqlite" else "postgresql+psycopg"
    return parsed.set(drivername=name)


class Loop:
    """An event loop in a thread of its own; each calling thread keeps one context,
    so an edit's context variables (nested-edit detection) span its calls."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.contexts = threading.local()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        context = getattr(self.contexts, "context", None)
        if context is None:
            context = self.contexts.context = contextvars.Context()
        done: Any = __import__("concurrent.futures").futures.Future()

        def start() -> None:
            task = self.loop.create_task(coroutine, context=context)
            task.add_done_callback(
                lambda t: (
                    done.set_exception(t.exception())
                    if t.exception() is not None
                    else done.set_result(t.result())
                )
            )

        self.loop.call_soon_threadsafe(start)
        result: T = done.result()
        return result

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class SyncSubscription:
    """An ``AsyncSubscription`` with the blocking API of a ``Subscription``."""

    PLAIN = frozenset(
        {"customer_id", "catalog", "mark", "edition", "period_end", "trial_end", "due_at"}
    )

    def __init__(self, proxy: AsyncSubscription, loop: Loop) -> None:
        self._proxy = proxy
        self._loop = loop

    def __repr__(self) -> str:
        return repr(self._proxy)

    @property
    def state(self) -> Any:
        return self._loop.run(self._proxy.state_at(None))

    @property
    def history(self) -> Any:
        return self._loop.run(self._proxy.history())

    def __getattr__(self, name: str) -> Any:
        if name in self.PLAIN:
            return getattr(self._proxy, name)
        method = getattr(self._proxy, name)
        return lambda *args, **kwargs: self._loop.run(method(*args, **kwargs))


class AsyncFacade:
    """An ``AsyncSqlStore`` with ``SqlStore``'s blocking API, for the shared tests;
    ``engine`` is a synchronous engine on the same database, for the tests' own SQL."""

    is_async = True

    def __init__(self, url: str | sa.URL, **options: Any) -> None:
        self._loop = Loop()
        self.store = AsyncSqlStore(async_url(url), **options)
        self.engine = sa.create_engine(sync_url(url))
        self.is_sqlite = self.store.is_sqlite
        self.catalog = self.store.catalog
        self.clock = self.store.clock

    @property
    def engines(self) -> list[sa.Engine]:
        """The engines the store's own statements run on (on an SQLite file, most
        run on its threaded engine)."""
        threads = self.store._threads
        return [self.store.engine.sync_engine, *([threads.engine] if threads else [])]

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)
        return lambda *args, **kwargs: self._run(method(*args, **kwargs))

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        result = self._loop.run(coroutine)
        if isinstance(result, AsyncSubscription):
            return SyncSubscription(result, self._loop)  # type: ignore[return-value]
        return result

    def drain_outbox(self, handler: Any, **options: Any) -> int:
        """A blocking handler runs in a thread, so that it may call the facade itself
        (an asynchronous service's handler would await the store instead)."""

        async def handle(message: Any) -> None:
            await asyncio.to_thread(handler, message)

        chosen = handle if callable(handler) else handler
        return self._run(self.store.drain_outbox(chosen, **options))

    @contextmanager
    def edit(self, customer_id: str, **options: Any) -> Iterator[SyncSubscription]:
        edit = self.store.edit(customer_id, **options)
        proxy = self._loop.run(edit.__aenter__())
        try:
            yield SyncSubscription(proxy, self._loop)
        except BaseException as error:
            self._loop.run(edit.__aexit__(type(error), error, error.__traceback__))
            raise
        self._loop.run(edit.__aexit__(None, None, None))

    @contextmanager
    def translated(self, operation: str = "database") -> Iterator[None]:
        try:
            yield
        except Exception as error:
            if isinstance(error, sa.exc.SQLAlchemyError):
                raise self.store._translate(error, operation, None) from error
            raise

    def close(self) -> None:
        self._loop.run(self.store.close())
        self._loop.stop()
        self.engine.dispose()


def make_store(kind: str, url: str | sa.URL, **options: Any) -> Any:
    """A ``SqlStore`` (kind "sync") or an ``AsyncFacade`` (kind "async") on ``url``."""
    if kind == "sync":
        return SqlStore(sync_url(url), **options)
    return AsyncFacade(url, **options)
