"""``SqlStore``: subscriptions in SQLite or PostgreSQL, for threads and processes.

It opens and closes transactions and translates failures; what happens
inside them is ``core``, ``sweep``, ``outbox`` and ``migrate``, which the
asynchronous store runs too.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RootTransaction

from lifecycle import inputs
from lifecycle.catalog import AnyCatalog, Catalog, CatalogVersions, default_catalog
from lifecycle.clock import Clock, aware, read_clock, utc_now
from lifecycle.errors import (
    InvalidInput,
    SchemaMismatch,
    StoreMisuse,
    StoreUnavailable,
    UnknownCustomer,
)
from lifecycle.store import core, migrate, outbox, sql, sweep
from lifecycle.store.outbox import DeadLetter, OutboxMessage
from lifecycle.store.schema import SCHEMA_VERSION
from lifecycle.store.sweep import FailingCustomer, SweepReport
from lifecycle.subscription import Subscription
from lifecycle.values import Transition

_EDITING: contextvars.ContextVar[frozenset[tuple[int, str]]] = contextvars.ContextVar(
    "lifecycle_editing", default=frozenset()
)
"""The (store, customer) pairs this thread or task is editing, to refuse a nested
edit at once instead of waiting for a lock it holds itself."""

SETTLE_RETRIES = (0.05, 0.5, 2.0)
"""Seconds to wait before each retry of recording a hand-out."""

LOW_REFRESH = 10.0
"""Seconds between two looks for the oldest pending outbox message; in between,
claims start from the oldest message the last claim took, and do not walk
again the rows delivered before it."""


def _options(
    catalog: AnyCatalog | None,
    clock: Clock | None,
    lock_timeout: timedelta,
    outbox_retention: timedelta,
    max_attempts: int,
) -> tuple[AnyCatalog, Clock]:
    if catalog is None:
        catalog = default_catalog()
    elif not isinstance(catalog, Catalog | CatalogVersions):
        raise InvalidInput(
            "catalog", f"expected a Catalog or CatalogVersions, got {type(catalog).__name__}"
        )
    if clock is None:
        clock = utc_now
    elif not callable(clock):
        raise InvalidInput("clock", "expected a zero-argument callable")
    for name, value in (("lock_timeout", lock_timeout), ("outbox_retention", outbox_retention)):
        if not isinstance(value, timedelta) or value <= timedelta(0):
            raise InvalidInput(name, f"expected a positive timedelta, got {value!r}")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise InvalidInput("max_attempts", f"expected a whole number from 1, got {max_attempts!r}")
    return catalog, clock


def make_url(url: str | sa.URL, drivers: dict[str, tuple[str, ...]]) -> sa.URL:
    """``url`` parsed, if it names a database and driver this store runs on."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError, TypeError) as error:
        raise InvalidInput("url", f"not a database URL: {error}") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend not in drivers:
        raise InvalidInput("url", f"{backend!r}: the store runs on SQLite or PostgreSQL")
    if driver not in drivers[backend]:
        known = ", ".join(f"{backend}+{name}" for name in drivers[backend])
        raise InvalidInput("url", f"{backend}+{driver}: this store runs on {known}")
    return parsed


def sqlite_connect(lock_timeout: timedelta) -> Callable[[Any, Any], None]:
    milliseconds = max(1, int(lock_timeout.total_seconds() * 1000))

    def connect(dbapi_connection: Any, _record: Any) -> None:
        # NOTE: pysqlite's own BEGIN is switched off and ours is emitted by
        # `sqlite_begin`: IMMEDIATE takes the write lock at once, so two edits of
        # one database serialise instead of deadlocking on a lock upgrade.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                _into_wal(cursor, milliseconds)
            cursor.execute("PRAGMA synchronous=FULL")
        finally:
            cursor.close()

    return connect


def _into_wal(cursor: Any, milliseconds: int) -> None:
    """Switch a fresh database into WAL mode, once, whoever else is connecting.

    NOTE: the switch needs the database to itself. Waiting for it in the busy
    handler while holding a read lock deadlocks with a writer that waits to
    commit, so each try gives up at once, lets go, and tries again.
    """
    cursor.execute("PRAGMA busy_timeout = 0")
    deadline = time.monotonic() + milliseconds / 1000
    try:
        while True:
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                return
            except Exception as error:  # sqlite3.OperationalError: database is locked
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
    finally:
        cursor.execute(f"PRAGMA busy_timeout = {milliseconds}")


def sqlite_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get("lifecycle_begin", "IMMEDIATE")
    connection.exec_driver_sql(f"BEGIN {mode}")


def postgresql_connect(lock_timeout: timedelta) -> Callable[[Any, Any], None]:
    milliseconds = max(1, int(lock_timeout.total_seconds() * 1000))

    def connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET lock_timeout = {milliseconds}")
        cursor.close()
        dbapi_connection.commit()

    return connect


class SqlStore:
    """Subscriptions in a SQL database: ``sqlite:///file.db`` or
    ``postgresql+psycopg://…``.

    ``clock`` is what subscriptions edited or loaded through the store read
    for ``at=None`` and for reads (default: the system clock).
    ``lock_timeout`` bounds every wait for another edit's lock
    (``LockTimeout``); delivered outbox messages are deleted by ``sweep`` once
    older than ``outbox_retention``; a message whose handler failed
    ``max_attempts`` times is dead-lettered. ``engine_options`` go to
    ``sqlalchemy.create_engine``.
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
        self.catalog, self.clock = _options(
            catalog, clock, lock_timeout, outbox_retention, max_attempts
        )
        self.lock_timeout = lock_timeout
        self.outbox_retention = outbox_retention
        self.max_attempts = max_attempts
        parsed = make_url(url, self.DRIVERS)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            connect_args = engine_options.setdefault("connect_args", {})
            connect_args.setdefault("timeout", lock_timeout.total_seconds())
        else:
            # NOTE: after a server restart every pooled connection is dead; a ping at
            # checkout replaces it instead of failing one request per connection.
            engine_options.setdefault("pool_pre_ping", True)
        self.engine: Engine = sa.create_engine(parsed, **engine_options)
        if self.is_sqlite:
            sa.event.listen(self.engine, "connect", sqlite_connect(lock_timeout))
            sa.event.listen(self.engine, "begin", sqlite_begin)
        else:
            sa.event.listen(self.engine, "connect", postgresql_connect(lock_timeout))
        self._codec = core.Codec(self.catalog, self.clock, lock_timeout)
        self._hot = sql.HotPath(self.engine.dialect)
        self._schema_checked = False
        self._low = 0
        self._low_seen = 0.0

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
            raise core.translate(error, operation, customer_id, self.lock_timeout) from error

    def translated(self, operation: str = "database") -> AbstractContextManager[None]:
        """Inside the block, a SQLAlchemy or driver error becomes the store's own
        (``StoreUnavailable``, ``LockTimeout``...): for the statements an order
        service runs itself in the transaction it hands to ``edit(connection=)``."""
        return self._database(operation)

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with self.engine.connect() as connection, connection.begin():
            yield connection

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

    def _now(self) -> datetime:
        return read_clock(self.clock)

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
        failures: list[tuple[str, str]] = []
        after: str | None = ""
        with self._database("upgrade"):
            self._ensure_schema()
            while after is not None:
                with self._writing() as connection:
                    _, failed, after = migrate.convert(
                        connection, self._hot, self._codec, after, sweep.BATCH
                    )
                failures.extend(failed)
        return failures

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
                row = connection.execute(sql.lock, {"customer_id": customer}).first()
            if row is None:
                return None
            one = core.held(None, None, self._codec, customer, *row, opener=self._snapshot_read)
        one.sub._read_only = (
            f"the subscription of {customer!r} was loaded read-only; "
            "change it inside `with store.edit(customer_id) as sub:`"
        )
        return one.sub

    def history(self, customer_id: str) -> list[Transition]:
        """Every transition of ``customer_id``, oldest first."""
        customer = inputs.customer_id(customer_id)
        with self._database("history", customer):
            self._ensure_schema()
            with self._reading() as connection:
                row = connection.execute(sql.lock, {"customer_id": customer}).first()
                if row is None:
                    raise UnknownCustomer(customer)
                one = core.held(connection, None, self._codec, customer, *row)
                return list(one.sub.history)

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

    def _not_ahead(self, now: datetime) -> datetime:
        """``now``, unless it is later than the store's clock by more than the
        allowance: a sweep ahead of time would end periods early and move idle
        customers' marks into the future."""
        clock = self._now()
        if now > clock + self.catalog.late_arrival:
            raise InvalidInput(
                "now",
                f"{now.isoformat()} is later than the store's clock ({clock.isoformat()}): "
                "sweep the time it is (a TestClock moves a test's store through time)",
                code="input.in_the_future",
            )
        return now

    def _sweep(self, now: datetime, *, grace: timedelta) -> SweepReport:
        report = SweepReport()
        with self._database("sweep"):
            self._ensure_schema()
            for job in (sweep.due, sweep.keys):
                after = sweep.START
                while True:
                    with self._writing() as connection:
                        page = job(connection, self._hot, self._codec, now, now - grace, after)
                    report += page.report
                    after = page.after
                    if not page.full:
                        break
            deleted = batch = sweep.BATCH
            while deleted == batch:
                with self._writing() as connection:
                    deleted = outbox.prune(connection, now - self.outbox_retention, batch)
                report += SweepReport(messages_deleted=deleted)
        return report

    def drain_outbox(self, handler: Callable[[OutboxMessage], object], *, limit: int = 100) -> int:
        """Hand up to ``limit`` messages to ``handler``, in order per customer, and
        return how many it took. No lock is held while ``handler`` runs.

        A message whose handler raises holds back only its customer's later
        messages, and is tried again later; after ``max_attempts`` failures it
        is dead-lettered (``dead_letters``, ``redeliver``). Delivery is at least
        once: ``(message.customer_id, message.seq)`` identifies a repeat.
        """
        if not callable(handler):
            raise InvalidInput("handler", "expected a callable taking an OutboxMessage")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidInput("limit", f"expected a whole number from 1 to 10000, got {limit!r}")
        with self._database("drain_outbox"):
            self._ensure_schema()
            with self._writing() as connection:
                batch = outbox.claim(
                    connection, datetime.now(UTC), limit, self._low_mark(connection)
                )
        if batch.messages:
            # NOTE: the next claim starts here, not at the rows delivered before
            # (dead until a vacuum): a message below it that this claim could not
            # see (held by another drainer, waiting after a failure, committed
            # late) is found again by the next look for the oldest (LOW_REFRESH).
            self._low = max(self._low, batch.messages[0].id)
        outcome = outbox.Outcome()
        try:
            outbox.hand_out(batch, handler, outcome)
        finally:
            outcome.close(batch)
            if batch.messages:
                self._settle(batch, outcome)
        return len(outcome.delivered)

    def _settle(self, batch: outbox.Claim, outcome: outbox.Outcome) -> None:
        """Record what a hand-out did; a failure is tried again (the handlers have
        run: giving up leaves their messages to be handed out again when the lease
        ends, and holds their customers back until then)."""
        for wait in SETTLE_RETRIES:
            try:
                with self._writing() as connection:
                    outbox.settle(
                        connection,
                        batch,
                        outcome,
                        now=datetime.now(UTC),
                        delivered_at=self._now(),
                        max_attempts=self.max_attempts,
                    )
                return
            except core.DATABASE_ERRORS as error:
                failure = error
                time.sleep(wait)
        raise StoreUnavailable(
            "drain_outbox",
            failure,
            consequence=(
                f"the handler took {len(outcome.delivered)} message(s) but their delivery "
                "could not be recorded: they are handed out again once their lease ends"
            ),
        ) from failure

    def _low_mark(self, connection: Connection) -> int:
        if time.monotonic() - self._low_seen > LOW_REFRESH:
            lowest = connection.execute(sql.lowest_pending).scalar()
            if lowest is not None:
                self._low = lowest
            self._low_seen = time.monotonic()
        return self._low

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
        chosen = list(ids)
        if not all(type(i) is int for i in chosen):
            raise InvalidInput("ids", "expected the ids of dead letters (integers)")
        with self._database("redeliver"):
            self._ensure_schema()
            with self._writing() as connection:
                fresh = outbox.redeliver(connection, chosen)
        if fresh:
            self._low = min(self._low, *fresh)
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
        self._token: contextvars.Token[frozenset[tuple[int, str]]] | None = None

    def __enter__(self) -> Subscription:
        store = self._store
        customer = inputs.customer_id(self._customer_id)
        editing = _EDITING.get()
        if (id(store), customer) in editing or (
            store.is_sqlite and self._given is None and any(s == id(store) for s, _ in editing)
        ):
            raise StoreMisuse(
                f"edit({customer!r}) inside an edit of "
                f"{'the same customer' if (id(store), customer) in editing else 'this database'} "
                "on the same thread would wait for a lock it holds itself: "
                "do both in one edit, or one after the other",
                code="store.nested_edit",
            )
        if self._given is not None:
            core.check_connection(self._given, store.engine)
        self._token = _EDITING.set(editing | {(id(store), customer)})
        try:
            with store._database("edit", customer):
                store._ensure_schema()
                if self._given is None:
                    self._own = store.engine.connect()
                    self._own.begin()
                    connection = self._own
                else:
                    connection = self._given
                    self._transaction = connection.get_transaction()
                    if not store.is_sqlite and connection.engine is not store.engine:
                        milliseconds = int(store.lock_timeout.total_seconds() * 1000)
                        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {milliseconds}")
                self._held = core.hold(
                    connection, store._hot, store._codec, customer, create=self._create
                )
        except BaseException:
            self._finish(commit=False)
            raise
        return self._held.sub

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
                        raise StoreMisuse(
                            f"the transaction of edit({held.customer_id!r}, connection=...) "
                            "ended inside the edit: its lock on the customer went with it, "
                            "and nothing of the edit is written; commit after the block",
                            code="store.no_transaction",
                        )
                    with store._database("edit", held.customer_id):
                        if not core.write(connection, store._hot, store._codec, [held]):
                            core.forget_if_new(connection, held)
                        if self._own is not None:
                            self._own.commit()
                except BaseException:
                    self._rollback(connection)
                    raise
            elif connection is not None:
                self._rollback(connection)
        finally:
            if held is not None:
                held.release(
                    f"the edit of {held.customer_id!r} has ended: the subscription is "
                    "read-only now; start another edit to change it"
                )
            if self._own is not None:
                self._own.close()
                self._own = None
            if self._token is not None:
                _EDITING.reset(self._token)
                self._token = None

    def _rollback(self, connection: Connection) -> None:
        try:
            transaction = connection.get_transaction()
            if transaction is not None and transaction.is_active:
                transaction.rollback()
        except core.DATABASE_ERRORS:
            pass  # NOTE: the connection is gone; the database rolled back without us
