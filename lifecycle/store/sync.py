"""``SqlStore``: subscriptions in SQLite or PostgreSQL, for threads and processes.

It opens transactions and waits with blocking calls; what happens inside them
is ``core``, ``plans``, ``sweep``, ``outbox`` and ``migrate``, which the
asynchronous store (``aio.py``) runs the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, ClassVar, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RootTransaction

from lifecycle import inputs, telemetry
from lifecycle.catalog import AnyCatalog
from lifecycle.clock import Clock, aware
from lifecycle.errors import SchemaMismatch
from lifecycle.store import base, core, migrate, outbox, plans, sweep, turns
from lifecycle.store.outbox import DeadLetter, OutboxMessage
from lifecycle.store.schema import SCHEMA_VERSION
from lifecycle.store.sweep import FailingCustomer, SweepReport
from lifecycle.subscription import Subscription
from lifecycle.values import Transition

T = TypeVar("T")


class SqlStore(base.StoreBase):
    """Subscriptions in a SQL database: ``sqlite:///file.db`` or
    ``postgresql+psycopg://…``.

    ``clock`` is what subscriptions edited or loaded through the store read
    for ``at=None`` and for reads (default: the system clock).
    ``lock_timeout`` bounds every wait for another edit's lock
    (``LockTimeout``); delivered outbox messages are deleted by ``sweep`` once
    older than ``outbox_retention``; a message whose handler failed
    ``max_attempts`` times is dead-lettered. ``engine_options`` go to
    ``sqlalchemy.create_engine``. On SQLite, the store's writers in one process
    take turns before they ask for the database's write lock.
    """

    DRIVERS: ClassVar[dict[str, tuple[str, ...]]] = {
        "sqlite": ("pysqlite",),
        "postgresql": ("psycopg",),
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
        self.engine: Engine = sa.create_engine(self.url, **self.engine_options)
        if self.is_sqlite:
            turns.take_turns(self.engine, lock_timeout)
        self._set_up(self.engine)

    def __repr__(self) -> str:
        return f"<SqlStore {self.engine.url.render_as_string(hide_password=True)}>"

    def close(self) -> None:
        """Close every pooled connection (``engine.dispose()``)."""
        self.engine.dispose()

    # --- transactions and failures ---------------------------------------------

    @contextmanager
    def _database(self, operation: str, customer_id: str | None = None) -> Iterator[None]:
        """No SQLAlchemy or driver exception leaves a public method: each becomes
        ``StoreUnavailable``, ``LockTimeout`` or ``SchemaMismatch``, the cause chained."""
        try:
            yield
        except core.DATABASE_ERRORS as error:
            raise self._translate(error, operation, customer_id) from error

    def translated(self, operation: str = "database") -> AbstractContextManager[None]:
        """Inside the block, a SQLAlchemy or driver error becomes the store's own
        (``StoreUnavailable``, ``LockTimeout``...): for the statements an order
        service runs itself in the transaction it hands to ``edit(connection=)``."""
        return self._database(operation)

    def begin(self) -> AbstractContextManager[Connection]:
        """A transaction on the store's database for the caller's own rows beside
        an edit's: ``with store.begin() as connection:``, then
        ``store.edit(customer_id, connection=connection)``. It is
        ``engine.begin()``, except that a failed COMMIT is told apart from a
        failed statement (``translated()`` then says the outcome is unknown)."""
        return self._writing()

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with self.engine.connect() as connection, connection.begin():
            yield connection
            with core.committing():
                connection.commit()

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A connection in a read transaction (DEFERRED on SQLite: no write lock)."""
        with self.engine.connect() as connection:
            connection.execution_options(lifecycle_begin="DEFERRED")
            with connection.begin():
                yield connection

    @contextmanager
    def _snapshot_read(self) -> Iterator[Connection]:
        with self._database("load"), self._reading() as connection:
            yield connection

    def _ensure_schema(self) -> None:
        if self._schema_checked:
            return
        with self._reading() as connection:
            found = migrate.version(connection)
        if found != [SCHEMA_VERSION]:
            raise SchemaMismatch(migrate.mismatch(found))
        self._schema_checked = True

    def _drive(self, plan: plans.Plan[T]) -> T:
        """Run a plan: its transactions, hand-outs and pauses, blocking."""
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
                    with self._writing() if request.write else self._reading() as connection:
                        value = request.work(connection)
                elif isinstance(request, plans.HandOut):
                    outbox.hand_out(request.batch, request.handler, request.outcome)
                elif isinstance(request, plans.Aside):
                    try:
                        with self._writing() as connection:
                            request.work(connection)
                    except core.DATABASE_ERRORS as failed:
                        outbox.set_aside_failed(failed)
                else:
                    time.sleep(request.seconds)
            except BaseException as failure:
                error = failure

    # --- schema ------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create the tables if they are missing, or upgrade a database of an earlier
        version in place. Safe to call from many instances at once."""
        with self._database("create_schema"):
            with self._writing() as connection:
                before = migrate.create(connection)
            self._schema_checked = True
            if before == 1:
                self.upgrade()

    def upgrade(self) -> list[tuple[str, str]]:
        """Convert the records a version 1 store wrote (``create_schema`` does this
        after upgrading the tables); return the customers left as they were, and
        why. Those still load as version 1 records."""
        with self._database("upgrade"):
            self._ensure_schema()
            return self._drive(plans.upgrade_plan(self._hot, self._codec))

    # --- one customer ------------------------------------------------------------

    def edit(
        self,
        customer_id: str,
        *,
        create: bool = True,
        connection: Connection | None = None,
    ) -> Edit:
        """``with store.edit(customer_id) as sub:`` the subscription, held exclusively.

        Commits on a clean exit and rolls back on an exception. A customer the
        store has never seen starts new, or raises ``UnknownCustomer`` with
        ``create=False``. With ``connection=``, the caller's own transaction is
        used: the subscription is written into it on a clean exit, and an
        exception rolls all of it back, the caller's rows included. Once the
        block ends the subscription is read-only.
        """
        return Edit(self, customer_id, create, connection)

    def load(self, customer_id: str) -> Subscription | None:
        """A read-only snapshot of ``customer_id``'s subscription, or None.

        It reads only the customer's row; a read of the past that needs its
        history or usage keys fetches them then.
        """
        customer = inputs.customer_id(customer_id)
        with self._database("load", customer):
            self._ensure_schema()
            with self._reading() as connection:
                row = core.stored(connection, customer)
            if row is None:
                return None
            one = core.held(None, None, self._codec, customer, *row, opener=self._snapshot_read)
        self._snapshot(one)
        return one.sub

    def history(self, customer_id: str) -> list[Transition]:
        """Every transition of ``customer_id``, oldest first."""
        customer = inputs.customer_id(customer_id)
        with self._database("history", customer):
            self._ensure_schema()
            with self._reading() as connection:
                return core.history_of(connection, self._codec, customer)

    # --- the scheduler's jobs ----------------------------------------------------

    def sweep(self, now: datetime) -> SweepReport:
        """Apply every trial end and period end due by ``now``, delete usage keys out
        of the window and outbox messages past their retention; never stops at
        one customer (see ``SweepReport.failed``).

        A timed transition is applied once the catalog's late-arrival allowance
        has passed since it fell due, so usage metered before a period's end and
        delivered within the allowance is still settled inside the period. Reads
        show the transition at its own instant all the same.
        """
        return self._sweep(self._not_ahead(aware(now, "now")), grace=self.catalog.late_arrival)

    def _sweep(self, now: datetime, *, grace: timedelta) -> SweepReport:
        with self._database("sweep"):
            self._ensure_schema()
            return self._drive(
                plans.sweep_plan(self._hot, self._codec, now, grace, self.outbox_retention)
            )

    def drain_outbox(self, handler: Callable[[OutboxMessage], object], *, limit: int = 100) -> int:
        """Hand up to ``limit`` messages to ``handler``, in order per customer, and
        return how many it took. No lock is held while ``handler`` runs.

        A message whose handler raises holds back only its customer's later
        messages, and is tried again later; after ``max_attempts`` failures it
        is dead-lettered (``dead_letters``, ``redeliver``). Delivery is at least
        once: ``(message.customer_id, message.seq)`` identifies a repeat.
        """
        self._drain_arguments(handler, limit)
        with self._database("drain_outbox"):
            self._ensure_schema()
            return self._drive(
                plans.drain_plan(handler, self._low, limit, self._now, self.max_attempts)
            )

    def failing_customers(self) -> list[FailingCustomer]:
        """The customers sweeps keep failing on, most failures first, each with its
        last error and when it is tried again (a sweep reports one only when it
        tries it)."""
        with self._database("failing_customers"):
            self._ensure_schema()
            with self._reading() as connection:
                return sweep.failing(connection)

    def dead_letters(self) -> list[DeadLetter]:
        """The messages set aside after ``max_attempts`` failed deliveries."""
        with self._database("dead_letters"):
            self._ensure_schema()
            with self._reading() as connection:
                return outbox.dead_letters(connection)

    def redeliver(self, ids: Sequence[int]) -> int:
        """Put dead letters back at the end of the queue; return how many."""
        chosen = self._ids(ids)
        with self._database("redeliver"):
            self._ensure_schema()
            with self._writing() as connection:
                fresh = outbox.redeliver(connection, chosen)
        if fresh:
            self._low.id = min(self._low.id, *fresh)
        return len(fresh)


class Edit:
    """``store.edit(...)``: the context manager that holds one customer."""

    def __init__(
        self, store: SqlStore, customer_id: str, create: bool, connection: Connection | None
    ) -> None:
        self._store = store
        self._customer_id = customer_id
        self._create = create
        self._given = connection
        self._own: Connection | None = None
        self._transaction: RootTransaction | None = None
        self._held: core.Held | None = None
        self._token: Any = None
        self._span: AbstractContextManager[Any] | None = None

    def __enter__(self) -> Subscription:
        store = self._store
        customer, self._token = base.begin_edit(store, self._customer_id, self._given)
        self._span = telemetry.span("lifecycle.edit", customer_id=customer)
        self._span.__enter__()
        try:
            if self._given is not None:
                core.check_connection(self._given, store.engine)
            with store._database("edit", customer):
                store._ensure_schema()
                if self._given is None:
                    self._held = self._hold_own(customer)
                else:
                    connection = self._given
                    self._transaction = connection.get_transaction()
                    core.bound_locks(connection, store.engine, store.lock_timeout)
                    self._held = core.hold(
                        connection, store._hot, store._codec, customer, create=self._create
                    )
        except BaseException:
            self._finish(commit=False)
            raise
        return self._held.sub

    def _hold_own(self, customer: str) -> core.Held:
        """Lock the customer on a connection of the store's own: first one the pool
        hands over unchecked, then, if the database had dropped it, one it pings."""
        store = self._store
        for checked in (False, True):
            token = base.PING.set(checked)
            try:
                self._own = store.engine.connect()
            finally:
                base.PING.reset(token)
            self._own.begin()
            try:
                return core.hold(self._own, store._hot, store._codec, customer, create=self._create)
            except core.DATABASE_ERRORS as error:
                if checked or not core.dropped(error):
                    raise
                self._own.close()
                self._own = None
        raise AssertionError("unreachable")  # pragma: no cover

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._finish(commit=kind is None)

    def _finish(self, *, commit: bool) -> None:
        store, held = self._store, self._held
        connection = self._own if self._own is not None else self._given
        try:
            if commit and held is not None and connection is not None:
                try:
                    begun = self._transaction
                    if self._given is not None and (
                        begun is None
                        or connection.get_transaction() is not begun
                        or not begun.is_active
                    ):
                        raise base.transaction_ended(held)
                    with store._database("edit", held.customer_id):
                        core.write_edit(connection, store._hot, store._codec, held)
                    if self._own is not None:
                        try:
                            self._own.commit()
                        except core.DATABASE_ERRORS as error:
                            core.note_commit(error)
                            raise store._translate(error, "edit", held.customer_id) from error
                except BaseException:
                    self._rollback(connection)
                    raise
            elif connection is not None:
                self._rollback(connection)
        finally:
            if held is not None:
                held.release(base.ENDED.format(customer=held.customer_id))
            if self._own is not None:
                self._own.close()
                self._own = None
            if self._token is not None:
                base.EDITING.reset(self._token)
                self._token = None
            if self._span is not None:
                self._span.__exit__(None, None, None)
                self._span = None

    def _rollback(self, connection: Connection) -> None:
        try:
            transaction = connection.get_transaction()
            if transaction is not None and transaction.is_active:
                transaction.rollback()
        except core.DATABASE_ERRORS:
            pass  # NOTE: the connection is gone; the database rolled back without us
