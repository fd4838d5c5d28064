"""``AsyncSqlStore``: the store for ``async def`` code, on SQLAlchemy's asyncio
extension (``postgresql+psycopg_async://…``, ``sqlite+aiosqlite:///…``).

The same tables and the same rules of storage as ``SqlStore``: every piece of
work runs through ``AsyncConnection.run_sync`` on the very functions the
synchronous store calls (``core``, ``plans``, ``sweep``, ``outbox``,
``migrate``), the way SQLAlchemy's asyncio extension wraps its own
synchronous core instead of copying it. What differs is only how transactions
are opened and how the store waits. On an SQLite file the store's own work
runs those functions in worker threads instead, one hop a transaction
(``threaded``).

A subscription from ``edit`` or ``load`` is an ``AsyncSubscription``: its
operations, and its reads that may touch the database, are awaited.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    nullcontext,
)
from datetime import datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any, ClassVar, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RootTransaction
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from lifecycle import inputs, telemetry
from lifecycle.catalog import AnyCatalog
from lifecycle.clock import Clock, aware
from lifecycle.errors import SchemaMismatch
from lifecycle.store import base, core, migrate, outbox, plans, sweep, threaded, turns
from lifecycle.store.outbox import DeadLetter, OutboxMessage
from lifecycle.store.schema import SCHEMA_VERSION
from lifecycle.store.sweep import FailingCustomer, SweepReport
from lifecycle.subscription import Subscription
from lifecycle.values import Decision, Receipt, Settlement, Transition

T = TypeVar("T")


class AsyncSqlStore(base.StoreBase):
    """Subscriptions in SQLite or PostgreSQL, for ``async def`` code; the same
    settings, tables and guarantees as ``SqlStore``, every method awaited."""

    DRIVERS: ClassVar[dict[str, tuple[str, ...]]] = {
        "sqlite": ("aiosqlite",),
        "postgresql": ("psycopg_async",),
    }

    def __init__(
        self,
        url: str | sa.URL,
        *,
        catalog: AnyCatalog | None = None,
        clock: Clock | None = None,
        lock_timeout: timedelta = timedelta(seconds=10),
        outbox_retention: timedelta = timedelta(days=7),
        max_attempts: int = 10,
        **engine_options: Any,
    ) -> None:
        super().__init__(
            url, catalog, clock, lock_timeout, outbox_retention, max_attempts, engine_options
        )
        self.engine: AsyncEngine = create_async_engine(self.url, **self.engine_options)
        self._asides: set[asyncio.Task[None]] = set()
        self._threads: threaded.Threads | None = None
        if self.is_sqlite:
            turns.take_turns(self.engine.sync_engine, lock_timeout)
        if threaded.applies(self.url):
            self._threads = threaded.Threads(self.url, self.engine_options, lock_timeout)
            self._set_up(self._threads.engine)
        self._set_up(self.engine.sync_engine)

    def __repr__(self) -> str:
        return f"<AsyncSqlStore {self.engine.url.render_as_string(hide_password=True)}>"

    async def close(self) -> None:
        """Close every pooled connection (``await engine.dispose()``)."""
        await self._settled()
        await self.engine.dispose()
        if self._threads is not None:
            await asyncio.to_thread(self._threads.close)

    # --- transactions and failures ---------------------------------------------

    @asynccontextmanager
    async def _database(
        self, operation: str, customer_id: str | None = None
    ) -> AsyncIterator[None]:
        try:
            yield
        except core.DATABASE_ERRORS as error:
            raise self._translate(error, operation, customer_id) from error

    def translated(self, operation: str = "database") -> AbstractAsyncContextManager[None]:
        """``async with store.translated():`` a SQLAlchemy or driver error inside the
        block becomes the store's own (``StoreUnavailable``, ``LockTimeout``...)."""
        return self._database(operation)

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as connection, connection.begin():
            yield connection
            with core.committing():
                await connection.commit()

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as connection:
            await connection.execution_options(lifecycle_begin="DEFERRED")
            async with connection.begin():
                yield connection

    async def _unit(self, write: bool, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` in a transaction of its own, committed if it
        returns; a write waits for its turn on SQLite."""
        if self._threads is None:
            async with self._writing() if write else self._reading() as connection:
                return await connection.run_sync(fn, *args)
        return await self._threads.unit(write, fn, *args)

    async def _ensure_schema(self) -> None:
        if self._schema_checked:
            return
        found = await self._unit(False, migrate.version)
        if found != [SCHEMA_VERSION]:
            raise SchemaMismatch(migrate.mismatch(found))
        self._schema_checked = True

    async def _drive(self, plan: plans.Plan[T]) -> T:
        """Run a plan: its transactions, hand-outs and pauses, awaited."""
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                request = plan.send(value) if error is None else plan.throw(error)
            except StopIteration as done:
                result: T = done.value
                return result
            value, error = None, None
            try:
                if isinstance(request, plans.Transaction):
                    value = await self._unit(request.write, request.work)
                elif isinstance(request, plans.HandOut):
                    await outbox.hand_out_async(request.batch, request.handler, request.outcome)
                elif isinstance(request, plans.Aside):
                    task = asyncio.get_running_loop().create_task(self._aside(request.work))
                    self._asides.add(task)
                    task.add_done_callback(self._asides.discard)
                else:
                    await asyncio.sleep(request.seconds)
            except BaseException as failure:
                error = failure

    async def _aside(self, work: Callable[[Connection], Any]) -> None:
        try:
            await self._unit(True, work)
        except core.DATABASE_ERRORS as failed:
            outbox.set_aside_failed(failed)

    async def _settled(self) -> None:
        """Wait for the work set aside (``plans.Aside``) so far."""
        if self._asides:
            await asyncio.gather(*self._asides, return_exceptions=True)

    # --- schema ------------------------------------------------------------------

    async def create_schema(self) -> None:
        """Create the tables if they are missing, or upgrade an earlier version in
        place. Safe to call from many instances at once."""
        async with self._database("create_schema"):
            before = await self._unit(True, migrate.create)
            self._schema_checked = True
            if before == 1:
                await self.upgrade()

    async def upgrade(self) -> list[tuple[str, str]]:
        """Convert the records a version 1 store wrote; return those left as they were."""
        async with self._database("upgrade"):
            await self._ensure_schema()
            return await self._drive(plans.upgrade_plan(self._hot, self._codec))

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection | threaded.ThreadedConnection]:
        """A transaction on the store's database for the caller's own rows beside
        an edit's: ``async with store.begin() as connection:``, then
        ``store.edit(customer_id, connection=connection)`` and
        ``await connection.execute(...)``. Commits when the block ends cleanly,
        rolls back when it raises.

        It is ``store.engine.begin()``, except that a failed COMMIT is told apart
        from a failed statement (``translated()`` then says the outcome is
        unknown), and on an SQLite file it runs in the store's worker threads,
        one hop a statement (``threaded``).
        """
        if self._threads is None:
            async with self._writing() as connection:
                yield connection
            return
        ours, _ = await self._threads.open(lambda _: None)
        try:
            yield ours
        except BaseException:
            await ours.end(None)
            raise
        await ours.end(lambda _: None)

    # --- one customer ------------------------------------------------------------

    def edit(
        self,
        customer_id: str,
        *,
        create: bool = True,
        connection: AsyncConnection | threaded.ThreadedConnection | None = None,
    ) -> AsyncEdit:
        """``async with store.edit(customer_id) as sub:`` the subscription, held
        exclusively; ``await sub.record_usage(...)``. Commits on a clean exit, rolls
        back on an exception; ``connection=`` joins the caller's transaction."""
        return AsyncEdit(self, customer_id, create, connection)

    async def load(self, customer_id: str) -> AsyncSubscription | None:
        """A read-only snapshot of ``customer_id``'s subscription, or None; it reads
        the customer's row only, and a read of the past fetches what it needs then."""
        customer = inputs.customer_id(customer_id)
        async with self._database("load", customer):
            await self._ensure_schema()
            row = await self._unit(False, core.stored, customer)
            if row is None:
                return None
            one = core.held(None, None, self._codec, customer, *row, opener=_needs_database)
        self._snapshot(one)
        return AsyncSubscription(one.sub, self._snapshot_runner(one))

    def _snapshot_runner(self, one: core.Held) -> Runner:
        async def run(work: Callable[[], T]) -> T:
            try:
                return work()  # most reads need no database at all
            except _NeedsDatabase:
                pass

            def bound(sync: Connection) -> T:
                one.link.opener = lambda: nullcontext(sync)
                try:
                    return work()
                finally:
                    one.link.opener = _needs_database

            async with self._database("load", one.customer_id):
                return await self._unit(False, bound)

        return run

    async def history(self, customer_id: str) -> list[Transition]:
        """Every transition of ``customer_id``, oldest first."""
        customer = inputs.customer_id(customer_id)
        async with self._database("history", customer):
            await self._ensure_schema()
            return await self._unit(False, core.history_of, self._codec, customer)

    # --- the scheduler's jobs ----------------------------------------------------

    async def sweep(self, now: datetime) -> SweepReport:
        """``SqlStore.sweep``, awaited."""
        return await self._sweep(
            self._not_ahead(aware(now, "now")), grace=self.catalog.late_arrival
        )

    async def _sweep(self, now: datetime, *, grace: timedelta) -> SweepReport:
        async with self._database("sweep"):
            await self._ensure_schema()
            return await self._drive(
                plans.sweep_plan(self._hot, self._codec, now, grace, self.outbox_retention)
            )

    async def drain_outbox(
        self, handler: Callable[[OutboxMessage], object], *, limit: int = 100
    ) -> int:
        """``SqlStore.drain_outbox``, awaited; ``handler`` may be a coroutine function."""
        self._drain_arguments(handler, limit)
        async with self._database("drain_outbox"):
            await self._ensure_schema()
            await self._settled()  # a claim an interrupted drain gives back
            return await self._drive(
                plans.drain_plan(handler, self._low, limit, self._now, self.max_attempts)
            )

    async def failing_customers(self) -> list[FailingCustomer]:
        """The customers sweeps keep failing on, with their last error."""
        async with self._database("failing_customers"):
            await self._ensure_schema()
            return await self._unit(False, sweep.failing)

    async def dead_letters(self) -> list[DeadLetter]:
        """The messages set aside after ``max_attempts``, with their last error."""
        async with self._database("dead_letters"):
            await self._ensure_schema()
            return await self._unit(False, outbox.dead_letters)

    async def redeliver(self, ids: Sequence[int]) -> int:
        """Put dead letters back at the end of the queue; how many were."""
        chosen = self._ids(ids)
        async with self._database("redeliver"):
            await self._ensure_schema()
            fresh = await self._unit(True, outbox.redeliver, chosen)
        if fresh:
            self._low.id = min(self._low.id, *fresh)
        return len(fresh)


class _NeedsDatabase(Exception):
    """A snapshot's read that needs the database, outside a connection: run it again
    inside one."""


def _needs_database() -> nullcontext[Connection]:
    raise _NeedsDatabase


Runner = Callable[[Callable[[], Any]], Any]


class AsyncEdit:
    """``store.edit(...)`` of an ``AsyncSqlStore``: ``async with`` it."""

    def __init__(
        self,
        store: AsyncSqlStore,
        customer_id: str,
        create: bool,
        connection: AsyncConnection | threaded.ThreadedConnection | None,
    ) -> None:
        self._store = store
        self._customer_id = customer_id
        self._create = create
        self._given = connection
        self._own: AsyncConnection | None = None
        self._threaded: threaded.ThreadedConnection | None = None
        self._transaction: RootTransaction | None = None
        self._held: core.Held | None = None
        self._token: Any = None
        self._span: AbstractContextManager[Any] | None = None

    async def __aenter__(self) -> AsyncSubscription:
        store = self._store
        customer, self._token = base.begin_edit(store, self._customer_id, self._given)
        self._span = telemetry.span("lifecycle.edit", customer_id=customer)
        self._span.__enter__()
        try:
            given = self._given
            if given is not None and not isinstance(
                given, (AsyncConnection, threaded.ThreadedConnection)
            ):
                raise base.InvalidInput(
                    "connection",
                    "expected an AsyncConnection or a connection from store.begin(), "
                    f"got {type(given).__name__}",
                )
            async with store._database("edit", customer):
                await store._ensure_schema()
                hold = functools.partial(
                    core.hold, hot=store._hot, codec=store._codec, customer_id=customer,
                    create=self._create,
                )  # fmt: skip
                connection: AsyncConnection | threaded.ThreadedConnection
                if given is None and store._threads is not None:
                    self._threaded, self._held = await store._threads.open(hold)
                    connection = self._threaded
                elif given is None:
                    self._held = await self._hold_own(hold)
                    assert self._own is not None
                    connection = self._own
                else:
                    connection = given
                    engine = store.engine.sync_engine
                    if isinstance(given, threaded.ThreadedConnection) and store._threads:
                        engine = store._threads.engine

                    def joined(sync: Connection) -> core.Held:
                        core.check_connection(sync, engine)
                        self._transaction = sync.get_transaction()
                        core.bound_locks(sync, engine, store.lock_timeout)
                        return hold(sync)

                    self._held = await _run_on(connection, joined)
                if self._held is None:
                    self._held = await connection.run_sync(hold)
        except BaseException:
            await self._finish(commit=False)
            raise
        held, own = self._held, connection

        async def run(work: Callable[[], T]) -> T:
            if held.sub._read_only is not None:
                # NOTE: the edit has ended: operations refuse (ReadOnly), and so does
                # a read that would need the connection; other reads still answer.
                return work()
            async with store._database("edit", held.customer_id):
                return await _run_on(own, lambda _: work())

        return AsyncSubscription(held.sub, run)

    async def _hold_own(self, hold: Callable[[Connection], core.Held]) -> core.Held:
        """Lock the customer on a connection of the store's own: first one the pool
        hands over unchecked, then, if the database had dropped it, one it pings
        (as ``SqlStore``'s edit does)."""
        for checked in (False, True):
            token = base.PING.set(checked)
            try:
                self._own = await self._store.engine.connect()
            finally:
                base.PING.reset(token)
            await self._own.begin()
            try:
                return await self._own.run_sync(hold)
            except core.DATABASE_ERRORS as error:
                if checked or not core.dropped(error):
                    raise
                await self._own.close()
                self._own = None
        raise AssertionError("unreachable")  # pragma: no cover

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._finish(commit=kind is None)

    async def _finish(self, *, commit: bool) -> None:
        store, held = self._store, self._held
        connection = self._own if self._own is not None else self._given
        if not isinstance(connection, (AsyncConnection, threaded.ThreadedConnection)):
            connection = None  # refused before anything began: the caller's to end
        try:
            if self._threaded is not None:
                # NOTE: write, commit and close in one hop, or roll back and close
                ended, self._threaded = self._threaded, None
                async with store._database("edit", self._customer_id):
                    if commit and held is not None:
                        one = held
                        await ended.end(lambda c: core.write_edit(c, store._hot, store._codec, one))
                    else:
                        await ended.end(None)
            elif commit and held is not None and connection is not None:
                try:
                    begun = self._transaction
                    if self._given is not None and (
                        begun is None
                        or connection.sync_connection is None
                        or connection.sync_connection.get_transaction() is not begun
                        or not begun.is_active
                    ):
                        raise base.transaction_ended(held)
                    async with store._database("edit", held.customer_id):
                        await _run_on(
                            connection,
                            lambda sync: core.write_edit(sync, store._hot, store._codec, held),
                        )
                    if self._own is not None:
                        try:
                            await self._own.commit()
                        except core.DATABASE_ERRORS as error:
                            core.note_commit(error)
                            raise store._translate(error, "edit", held.customer_id) from error
                except BaseException:
                    await self._rollback(connection)
                    raise
            elif connection is not None:
                await self._rollback(connection)
        finally:
            if held is not None:
                held.release(base.ENDED.format(customer=held.customer_id))
            if self._own is not None:
                await self._own.close()
                self._own = None
            if self._token is not None:
                base.EDITING.reset(self._token)
                self._token = None
            if self._span is not None:
                self._span.__exit__(None, None, None)
                self._span = None

    async def _rollback(self, connection: AsyncConnection | threaded.ThreadedConnection) -> None:
        try:
            if isinstance(connection, threaded.ThreadedConnection):
                await connection.rollback()
                return
            transaction = connection.get_transaction()
            if transaction is not None and transaction.is_active:
                await transaction.rollback()
        except core.DATABASE_ERRORS:
            pass  # NOTE: the connection is gone; the database rolled back without us


async def _run_on(
    connection: AsyncConnection | threaded.ThreadedConnection, fn: Callable[[Connection], T]
) -> T:
    """``fn`` on an edit's connection: in place on a threaded one, which holds the
    write lock (its statements never wait for one), else through ``run_sync``."""
    if isinstance(connection, threaded.ThreadedConnection):
        sync = connection.sync_connection
        return await connection.run_here(lambda: fn(sync))
    return await connection.run_sync(fn)


class AsyncSubscription:
    """A subscription of an ``AsyncSqlStore``: the operations, and the reads that
    may need the database, are awaited; what never does is a plain attribute.

    It is the very ``Subscription`` underneath (``.sync`` is it, for code that
    runs inside the store's own ``run_sync``); after its edit ends it is
    read-only, and a snapshot from ``load`` always is.
    """

    __slots__ = ("_run", "sync")

    def __init__(self, sub: Subscription, run: Runner) -> None:
        self.sync = sub
        self._run = run

    def __repr__(self) -> str:
        return f"<AsyncSubscription {self.sync!r}>"

    @property
    def customer_id(self) -> str:
        return self.sync.customer_id

    @property
    def catalog(self) -> AnyCatalog:
        return self.sync.catalog

    @property
    def mark(self) -> datetime | None:
        return self.sync.mark

    @property
    def edition(self) -> str | None:
        return self.sync.edition

    @property
    def period_end(self) -> datetime | None:
        return self.sync.period_end

    @property
    def trial_end(self) -> datetime | None:
        return self.sync.trial_end

    @property
    def due_at(self) -> datetime | None:
        return self.sync.due_at

    # reads
    async def state_at(self, at: datetime | None = None) -> Any:
        return await self._run(lambda: self.sync.state_at(at))

    async def remaining_credits(self, at: datetime | None = None) -> Decimal:
        result: Decimal = await self._run(lambda: self.sync.remaining_credits(at))
        return result

    async def authorize(self, feature: str, at: datetime | None = None) -> Decision:
        result: Decision = await self._run(lambda: self.sync.authorize(feature, at))
        return result

    async def status(self, at: datetime | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self._run(lambda: self.sync.status(at))
        return result

    async def history(self) -> tuple[Transition, ...]:
        result: tuple[Transition, ...] = await self._run(lambda: self.sync.history)
        return result

    async def to_record(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._run(self.sync.to_record)
        return result

    # operations
    async def purchase_trial(
        self, order_id: str, discount: object = None, at: datetime | None = None
    ) -> Receipt:
        result: Receipt = await self._run(lambda: self.sync.purchase_trial(order_id, discount, at))
        return result

    async def subscribe(
        self, edition: str, order_id: str, term_months: int = 12, at: datetime | None = None
    ) -> Receipt:
        result: Receipt = await self._run(
            lambda: self.sync.subscribe(edition, order_id, term_months, at)
        )
        return result

    async def buy_addon(self, package: str, order_id: str, at: datetime | None = None) -> Receipt:
        result: Receipt = await self._run(lambda: self.sync.buy_addon(package, order_id, at))
        return result

    async def unsubscribe(self, request_id: str, at: datetime | None = None) -> Receipt:
        result: Receipt = await self._run(lambda: self.sync.unsubscribe(request_id, at))
        return result

    async def record_usage(
        self,
        meter: str,
        quantity: Decimal | int | str,
        usage_id: str,
        at: datetime | None = None,
    ) -> Settlement:
        result: Settlement = await self._run(
            lambda: self.sync.record_usage(meter, quantity, usage_id, at)
        )
        return result

    async def advance(self, to: datetime) -> list[Transition]:
        result: list[Transition] = await self._run(lambda: self.sync.advance(to))
        return result
