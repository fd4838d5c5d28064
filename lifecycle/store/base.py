"""What both stores share that is not SQL: their settings, the engine's set-up,
the checks made before a database is touched, and the decisions of an edit.

``SqlStore`` (``sync.py``) and ``AsyncSqlStore`` (``aio.py``) differ only in
how they open transactions and wait; everything else is here, in ``core``,
``plans``, ``sweep``, ``outbox`` and ``migrate``.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle import inputs
from lifecycle.catalog import AnyCatalog, Catalog, CatalogVersions, default_catalog
from lifecycle.clock import Clock, read_clock, utc_now
from lifecycle.errors import InvalidInput, StoreMisuse, shown
from lifecycle.store import core, sql
from lifecycle.store.plans import Low

EDITING: contextvars.ContextVar[frozenset[tuple[int, str, int]]] = contextvars.ContextVar(
    "lifecycle_editing", default=frozenset()
)
"""The (store, customer, owner) triples this thread or task is editing, to refuse a
nested edit at once instead of waiting for a lock it holds itself. The owner is
the task (or thread) that opened the edit: a task created inside an edit
inherits this variable, but is not nested in the edit and may wait its turn."""

PING: contextvars.ContextVar[bool | None] = contextvars.ContextVar("lifecycle_ping", default=None)
"""Whether the pool pings the connection it hands over now: None, as the store is
set up (``pool_pre_ping``); False for an edit's first try, True for its second
(see ``ping_on_checkout``)."""

FRESH = "lifecycle_fresh"

MAX_ID = 2**63 - 1
"""The largest outbox id: PostgreSQL's BIGINT, SQLite's INTEGER."""


def _owner() -> int:
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop running in this thread
        task = None
    return id(task) if task is not None else threading.get_ident()


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
            raise InvalidInput(name, f"expected a positive timedelta, got {shown(value)}")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise InvalidInput(
            "max_attempts", f"expected a whole number from 1, got {shown(max_attempts)}"
        )
    return catalog, clock


def make_url(url: str | sa.URL, drivers: dict[str, tuple[str, ...]]) -> sa.URL:
    """``url`` parsed, if it names a database and driver this store runs on."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError, TypeError) as error:
        raise InvalidInput("url", f"not a database URL: {error}") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend not in drivers:
        raise InvalidInput("url", f"{shown(backend)}: the store runs on SQLite or PostgreSQL")
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
            cursor.execute("PRAGMA journal_mode")  # NOTE: two calls: aiosqlite's adapter
            if cursor.fetchone()[0] != "wal":
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


def sqlite_begin(dialect: sa.Dialect) -> Callable[[Connection], None]:
    """SQLite's BEGIN, IMMEDIATE unless the connection's ``lifecycle_begin`` says
    DEFERRED (a read), sent on the driver's cursor as an edit's statements are
    (``sql.Prepared``). Through ``exec_driver_sql`` it cost 90,000 of an edit's
    1.23 M instructions (``benchmarks/cpu.py``: 1.14 M now)."""
    begins = {
        mode: sql.Prepared(sa.text(f"BEGIN {mode}"), dialect) for mode in ("IMMEDIATE", "DEFERRED")
    }

    def begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("lifecycle_begin", "IMMEDIATE")
        begins[mode].run(connection, {})

    return begin


KEEPALIVES = {"keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
"""TCP keepalives of a PostgreSQL store's connections, in seconds, unless the
``connect_args`` say otherwise: on the client (libpq) and, the same, on the
server. A connection cut without a word (a partition, a host gone) would
otherwise hold its row locks on the server, and leave its client waiting for
an answer, for the system's two hours; with these both ends find out in about
a minute. A live peer's kernel answers the probes, so nothing alive is cut."""


def _keepalives(url: sa.URL, connect_args: dict[str, Any]) -> dict[str, int]:
    """The keepalives in effect, where the URL's query or ``connect_args`` do not
    set them ``KEEPALIVES``'s (added to ``connect_args``); none with
    ``keepalives=0``, which turns them off on the client, so on the server too."""
    found: dict[str, int] = {}
    for name, seconds in KEEPALIVES.items():
        given = url.query[name] if name in url.query else connect_args.setdefault(name, seconds)
        text = str(given).strip()
        if isinstance(given, bool) or not text.isdigit() or not isinstance(given, int | str):
            raise InvalidInput(
                "connect_args", f"{name}: expected whole seconds (0 or more), got {shown(given)}"
            )
        found[name] = int(text)
    switch = url.query.get("keepalives", connect_args.get("keepalives", 1))
    return {} if str(switch).strip() == "0" else found


def postgresql_connect(
    lock_timeout: timedelta, keepalives: dict[str, int]
) -> Callable[[Any, Any], None]:
    milliseconds = max(1, int(lock_timeout.total_seconds() * 1000))
    settings = [f"SET lock_timeout = {milliseconds}"] + [
        f"SET tcp_{name} = {seconds}" for name, seconds in keepalives.items()
    ]

    def connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("; ".join(settings))
        cursor.close()
        dbapi_connection.commit()

    return connect


def _fresh(_dbapi_connection: Any, record: Any) -> None:
    record.info[FRESH] = True


def ping_on_checkout(dialect: sa.Dialect, *, usually: bool) -> Callable[[Any, Any, Any], None]:
    """``pool_pre_ping``'s check, as a checkout event: a pooled connection is pinged
    before use (if the store pings ``usually``), and if the ping finds it dropped
    every pooled connection is replaced.

    NOTE: an edit's first try skips the ping (``PING`` False): it begins by
    locking the customer's row, and if that finds the connection dropped the
    edit has done nothing yet and tries again on a connection that is pinged
    (``PING`` True), whatever the store's setting, so that a pool full of
    dropped connections is found out at once (``core.dropped``). A caller's own
    transaction cannot be tried again, so every other checkout pings as the
    store is set up. Measured on PostgreSQL: the ping was one of an edit's six
    round trips.
    """

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        wanted = PING.get()
        if record.info.pop(FRESH, False) or not (usually if wanted is None else wanted):
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            # As pool_pre_ping: a dropped connection means the server went away,
            # so every pooled connection is replaced; any other failure replaces
            # this one. Either way the checkout goes on with a fresh connection.
            dropped = isinstance(error, dialect.loaded_dbapi.Error) and dialect.is_disconnect(
                error, dbapi_connection, None
            )
            failure = sa.exc.InvalidatePoolError if dropped else sa.exc.DisconnectionError
            raise failure(f"the ping at checkout failed: {error}") from error

    return checkout


class StoreBase:
    """Settings and state both stores keep; no I/O."""

    DRIVERS: ClassVar[dict[str, tuple[str, ...]]]

    def __init__(
        self,
        url: str | sa.URL,
        catalog: AnyCatalog | None,
        clock: Clock | None,
        lock_timeout: timedelta,
        outbox_retention: timedelta,
        max_attempts: int,
        engine_options: dict[str, Any],
    ) -> None:
        self.catalog, self.clock = _options(
            catalog, clock, lock_timeout, outbox_retention, max_attempts
        )
        self.lock_timeout = lock_timeout
        self.outbox_retention = outbox_retention
        self.max_attempts = max_attempts
        self.url = make_url(url, self.DRIVERS)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self._ping = False
        # NOTE: a copy: the caller's dict is not the store's to change
        connect_args = engine_options["connect_args"] = dict(
            engine_options.get("connect_args") or {}
        )
        self._keepalives: dict[str, int] = {}
        if self.is_sqlite:
            connect_args.setdefault("timeout", lock_timeout.total_seconds())
        else:
            # NOTE: after a server restart every pooled connection is dead; a ping at
            # checkout replaces it instead of failing one request per connection.
            # The store pings itself (ping_on_checkout), so that an edit, which
            # can try again, skips it.
            self._ping = bool(engine_options.pop("pool_pre_ping", True))
            self._keepalives = _keepalives(self.url, connect_args)
        self.engine_options = engine_options
        self._codec = core.Codec(self.catalog, self.clock, lock_timeout)
        self._schema_checked = False
        self._low = Low()

    def _set_up(self, engine: sa.Engine) -> None:
        """The events every connection of the store's engine gets."""
        if self.is_sqlite:
            sa.event.listen(engine, "connect", sqlite_connect(self.lock_timeout))
            sa.event.listen(engine, "begin", sqlite_begin(engine.dialect))
        else:
            connect = postgresql_connect(self.lock_timeout, self._keepalives)
            sa.event.listen(engine, "connect", connect)
            sa.event.listen(engine.pool, "connect", _fresh)
            sa.event.listen(
                engine.pool, "checkout", ping_on_checkout(engine.dialect, usually=self._ping)
            )
        self._hot = sql.HotPath(engine.dialect)

    def _now(self) -> datetime:
        return read_clock(self.clock)

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

    def _translate(
        self, error: BaseException, operation: str, customer_id: str | None
    ) -> Exception:
        return core.translate(error, operation, customer_id, self.lock_timeout)

    @staticmethod
    def _drain_arguments(handler: object, limit: object) -> None:
        if not callable(handler):
            raise InvalidInput("handler", "expected a callable taking an OutboxMessage")
        most = inputs.MAX_DRAIN_LIMIT
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= most:
            raise InvalidInput(
                "limit", f"expected a whole number from 1 to {most}, got {shown(limit)}"
            )

    @staticmethod
    def _ids(ids: Sequence[int]) -> list[int]:
        """The ids a caller gives ``redeliver``: a list (or any iterable but a text)
        of whole numbers an outbox id can be (1 to 2**63 - 1)."""
        if isinstance(ids, str | bytes) or not isinstance(ids, Iterable):
            raise InvalidInput(
                "ids", f"expected a list of dead letters' ids, got {type(ids).__name__}"
            )
        chosen = list(ids)
        for i in chosen:
            if type(i) is not int or not 1 <= i <= MAX_ID:
                raise InvalidInput(
                    "ids",
                    f"expected the ids of dead letters (whole numbers from 1 to {MAX_ID}), "
                    f"got {shown(i)}",
                )
        return chosen

    def _snapshot(self, one: core.Held) -> None:
        one.sub._read_only = (
            f"the subscription of {shown(one.customer_id)} was loaded read-only; "
            "change it inside `with store.edit(customer_id) as sub:`"
        )


def begin_edit(
    store: StoreBase, customer_id: object, given: object
) -> tuple[str, contextvars.Token[Any]]:
    """The checks an edit makes before anything is touched; returns the customer and
    the token that marks it as being edited on this thread or task."""
    customer = inputs.customer_id(customer_id)
    owner = _owner()
    editing = {(s, c) for s, c, o in EDITING.get() if o == owner}
    same = (id(store), customer) in editing
    if same or (store.is_sqlite and given is None and any(s == id(store) for s, _ in editing)):
        raise StoreMisuse(
            f"edit({shown(customer)}) inside an edit of "
            f"{'the same customer' if same else 'this database'} on the same thread would "
            "wait for a lock it holds itself: do both in one edit, or one after the other",
            code="store.nested_edit",
        )
    return customer, EDITING.set(EDITING.get() | {(id(store), customer, owner)})


def transaction_ended(held: core.Held) -> StoreMisuse:
    return StoreMisuse(
        f"the transaction of edit({shown(held.customer_id)}, connection=...) ended inside the "
        "edit: its lock on the customer went with it, and nothing of the edit is written; "
        "commit after the block",
        code="store.no_transaction",
    )


ENDED = (
    "the edit of {customer!r} has ended: the subscription is read-only now; start "
    "another edit to change it"
)
