"""The rules of storage, shared by both stores: how a customer is held, read and
written, and what a database failure becomes.

Everything here is a plain function over a SQLAlchemy ``Connection`` inside a
transaction the caller opened. ``SqlStore`` calls them directly;
``AsyncSqlStore`` calls the very same functions through
``AsyncConnection.run_sync``, the way SQLAlchemy's asyncio extension wraps its
own synchronous core instead of copying it.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.catalog import AnyCatalog
from lifecycle.clock import Clock
from lifecycle.errors import (
    InvalidInput,
    LifecycleError,
    LockTimeout,
    SchemaMismatch,
    StoreError,
    StoreMisuse,
    StoreUnavailable,
    UnknownCustomer,
    shown,
)
from lifecycle.record import dump, load
from lifecycle.store import sql
from lifecycle.store.providers import (
    Link,
    Opener,
    SqlHistory,
    SqlKeys,
    corrupt,
    from_json,
    history_row,
)
from lifecycle.store.schema import SCHEMA_VERSION
from lifecycle.subscription import Subscription
from lifecycle.values import Transition

KNOWN_RECORDS = 1024
"""How many customers' last written records a store keeps parsed."""


class Codec:
    """Records in and out of the store, and the records this process last wrote.

    NOTE: a record this process wrote itself is not parsed and validated
    again: the next edit of the customer finds it here, by exact text. A
    record another process wrote, or one whose transaction rolled back,
    differs from it and is parsed afresh.
    """

    def __init__(self, catalog: AnyCatalog, clock: Clock, lock_timeout: timedelta) -> None:
        self.catalog = catalog
        self.clock = clock
        self.lock_timeout = lock_timeout
        self._known: OrderedDict[str, tuple[str, Subscription]] = OrderedDict()

    def decode(
        self, customer_id: str, text: str, stored: int, link: Link
    ) -> tuple[Subscription, SqlHistory | None]:
        """The subscription in ``text`` (a row's record), its history in the table."""
        if not text:
            return Subscription(customer_id, self.catalog, self.clock), None
        history: SqlHistory | None = None
        known = self._known.get(customer_id)
        if known is not None and known[0] == text and known[1]._seq == stored:
            sub = known[1].copy()
            sub._history = history = SqlHistory(link, stored)
            return sub, history
        try:
            data = from_json(text)
        except ValueError as error:
            raise corrupt(customer_id, "record", f"not JSON: {error}") from None
        try:
            if isinstance(data, dict) and data.get("schema_version") == 1 and not stored:
                # NOTE: a row a version 1 store wrote and the upgrade could not
                # convert: its history is inside, and moves to the table when written.
                sub = load(Subscription, data, self.catalog, self.clock)
            else:
                history = SqlHistory(link, stored)
                sub = load(Subscription, data, self.catalog, self.clock, history=history)
        except InvalidInput as error:
            raise corrupt(customer_id, f"record.{error.field}", error.reason) from None
        if sub.customer_id != customer_id:
            raise corrupt(customer_id, "record.customer_id", f"is {shown(sub.customer_id)}")
        if history is not None and sub._seq != stored:
            raise corrupt(
                customer_id, "record.seq", f"is {sub._seq}, the row's seq column says {stored}"
            )
        return sub, history

    def encode(self, sub: Subscription) -> str:
        return json.dumps(dump(sub, history=False, usage=False), separators=(",", ":"))

    def remember(self, customer_id: str, text: str, sub: Subscription) -> None:
        known = self._known
        known[customer_id] = (text, sub.copy())
        known.move_to_end(customer_id)
        if len(known) > KNOWN_RECORDS:
            known.popitem(last=False)


UNKNOWN = object()
"""A value of the customer's row that was not read."""


@attrs.define(eq=False)
class Held:
    """One customer's subscription, held under its row lock until written."""

    customer_id: str
    sub: Subscription
    text: str
    revision: int
    stored: int  # history entries lifecycle_history holds
    loaded: int  # history entries the record had when read (all in the outbox)
    keys: SqlKeys
    history: SqlHistory | None
    link: Link
    rewrite: bool = False  # write the checkpoint even if nothing changed
    keys_from: datetime | None = None  # as the row holds them
    due_at: object = UNKNOWN  # as the row holds it, if it was read

    def release(self, reason: str) -> None:
        """After the write (or the rollback): the subscription only reads now."""
        self.sub._read_only = reason
        self.link.connection = None


def hold(
    connection: Connection,
    hot: sql.HotPath,
    codec: Codec,
    customer_id: str,
    *,
    create: bool = True,
) -> Held:
    """Lock ``customer_id``'s row (creating it if asked) and read its subscription."""
    params = {"customer_id": customer_id}
    rows = hot.lock.run(connection, params)
    if not rows:
        if not create:
            raise UnknownCustomer(customer_id)
        hot.create.run(connection, params)
        rows = hot.lock.run(connection, params)
    return held(connection, hot, codec, customer_id, *rows[0])


def _never_written(link: Link, customer_id: str, revision: int, seq: int) -> None:
    """Refuse to read an empty record as a new customer unless it is one: only a
    row never written (revision 0) with no history may be. Read as new, a row
    blanked, reset or deleted by hand would sell and bill afresh. A customer's
    first edit pays one look at its history for this; a snapshot is not looked
    at (``load`` reads one row, and a snapshot changes nothing)."""
    if revision or seq:
        raise corrupt(
            customer_id, "record", f"empty, though written (revision {revision}, seq {seq})"
        )
    if link.connection is None:
        return  # a snapshot: it sells nothing, and ``load`` reads the row only
    found = link.connection.execute(sql.history_any, {"customer_id": customer_id}).first()
    if found is not None:
        raise corrupt(
            customer_id,
            "record",
            "empty, though the history table holds entries of this customer (its row "
            "was deleted or reset by hand?)",
        )


def held(
    connection: Connection | None,
    hot: sql.HotPath | None,
    codec: Codec,
    customer_id: str,
    record: str,
    revision: int,
    keys_from: datetime | None,
    seq: int,
    due_at: object = UNKNOWN,
    opener: Opener | None = None,
) -> Held:
    """A row already read (and locked, for a write) as a ``Held`` subscription."""
    link = Link(
        customer_id,
        connection,
        opener,
        None if connection is not None else revision,
        lambda error: translate(error, "edit", customer_id, codec.lock_timeout),
    )
    if not record:
        _never_written(link, customer_id, revision, seq)
    sub, history = codec.decode(customer_id, record, seq, link)
    sub._ahead = codec.catalog.late_arrival
    mark = sub.mark
    cutoff = None if mark is None else mark - codec.catalog.window
    keys = SqlKeys(link, cutoff, keys_from, None if hot is None else hot.key_by_id)
    sub._keys = keys
    return Held(
        customer_id, sub, record, revision, seq, sub._seq, keys, history, link,
        keys_from=keys_from, due_at=due_at,
    )  # fmt: skip


def write(
    connection: Connection,
    hot: sql.HotPath,
    codec: Codec,
    holds: Sequence[Held],
    *,
    remember: bool = True,
) -> int:
    """Write what the subscriptions of ``holds`` did: keys, history and outbox rows,
    and the checkpoint; a subscription that did nothing writes nothing. Return
    how many customers were written. ``remember`` keeps each record parsed for
    this process's next edit (a sweep's thousands would only push out the
    customers its edits do come back to)."""
    updates: list[dict[str, Any]] = []
    new_keys: list[dict[str, Any]] = []
    transitions: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    narrow: list[tuple[bool, bool]] = []  # whether due_at, keys_from changed
    for one in holds:
        sub = one.sub
        keys = one.keys.take_new()
        if one.history is not None:
            entries: Sequence[Any] = one.history.pending
        else:
            entries = sub._history.entries()[one.stored :]
        quiet = not keys and not entries and not one.rewrite
        if quiet and not one.text and sub._mark is None:
            continue  # a new customer that did nothing: not even worth a row
        text = codec.encode(sub)
        if quiet and text == one.text:
            continue  # a read, or a retry answered from its key: nothing to write
        new_keys.extend(keys)
        rows = [history_row(one.customer_id, entry) for entry in entries]
        transitions.extend(rows)
        # NOTE: a version 1 record's own entries are in the outbox already
        messages.extend(row for row in rows if row["seq"] > one.loaded)
        due_at = sub.due_at
        updates.append(
            {
                "customer": one.customer_id,
                "record": text,
                "state": sub._state.value,
                "due_at": due_at,
                "mark": sub.mark,
                "revision": one.revision + 1,
                "keys_from": one.keys.keys_from,
                "seq": sub._seq,
            }
        )
        narrow.append((one.due_at != due_at, one.keys_from != one.keys.keys_from))
        if remember:
            codec.remember(one.customer_id, text, sub)
        one.text, one.revision, one.stored = text, one.revision + 1, sub._seq
        one.due_at, one.keys_from = due_at, one.keys.keys_from
        one.loaded, one.rewrite = sub._seq, False
        if one.history is not None:
            one.history.stored, one.history.pending = sub._seq, []
    bulk = hot.postgresql and len(updates) > 1
    if transitions:
        if bulk:
            connection.execute(sql.bulk_insert["lifecycle_history"], sql.as_json(transitions))
        else:
            connection.execute(sql.insert_history, transitions)
    if messages:
        if bulk:
            connection.execute(sql.bulk_insert["lifecycle_outbox"], sql.as_json(messages))
        else:
            connection.execute(sql.insert_outbox, messages)
    if len(updates) == 1 and len(new_keys) == 1 and hot.update_with_key is not None:
        written = len(hot.update_with_key.run(connection, {**updates[0], **new_keys[0]}))
    elif len(updates) == 1:
        for key in new_keys:
            hot.insert_key.run(connection, key)
        written = len(hot.updates[narrow[0]].run(connection, updates[0]))
    elif updates:
        if new_keys:
            connection.execute(sql.insert_key, new_keys)
        if bulk:
            result = connection.execute(sql.bulk_update_subscriptions, sql.as_json(updates))
        else:
            result = connection.execute(sql.update_subscription, updates)
        written = result.rowcount
    else:
        written = 0
    if written != len(updates):
        raise StoreMisuse(
            "a customer was changed by another transaction while this one held it: the "
            "lock was lost (did the transaction end inside the edit?); nothing of this "
            "edit is written",
            code="store.no_transaction",
        )
    return len(updates)


def stored(connection: Connection, customer_id: str) -> sa.Row[Any, Any, Any, Any, Any] | None:
    """A customer's row (record, revision, keys_from, seq, due_at), unlocked, or None."""
    return connection.execute(sql.lock, {"customer_id": customer_id}).first()


def history_of(connection: Connection, codec: Codec, customer_id: str) -> list[Transition]:
    """Every transition of a customer, oldest first, or ``UnknownCustomer``."""
    row = stored(connection, customer_id)
    if row is None:
        raise UnknownCustomer(customer_id)
    return list(held(connection, None, codec, customer_id, *row).sub.history)


def dropped(error: BaseException) -> bool:
    """Whether a failure is the database having dropped the connection (SQLAlchemy
    has invalidated it): an edit that failed so at its first statement did
    nothing, and may try again on another connection."""
    return isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated


AT_COMMIT = "lifecycle: raised by the COMMIT itself"
"""The note (``add_note``) on a database error raised by a COMMIT: its outcome
may be unknown, and ``translate`` must not say that nothing was committed."""

UNKNOWN_OUTCOME = (
    "the commit itself failed, so what it wrote may have been written or not: retry "
    "it with the same keys (what was written answers as a replay, replayed=True; what "
    "was not is applied), never with new ones"
)
UNKNOWN_OUTCOME_OF_OURS = (
    "the commit itself failed, so what it wrote may have been written or not: run it "
    "again (what was done is not done twice)"
)
OURS = frozenset({"create_schema", "upgrade", "sweep", "drain_outbox", "redeliver"})
"""The store's own operations: run again, each does only what is left to do."""


@contextmanager
def committing() -> Iterator[None]:
    """Around a COMMIT (an edit's, a transaction of the store's own, or one of
    ``store.begin()``): its failure is noted ``AT_COMMIT``. SQLAlchemy raises a
    failed COMMIT as it raises a failed statement; only the moment tells them
    apart. (An engine event would see every COMMIT, but any engine event makes
    SQLAlchemy take its slower paths on every statement: measured, 8% more of
    an edit's instructions on PostgreSQL.)"""
    try:
        yield
    except sa.exc.SQLAlchemyError as error:
        note_commit(error)
        raise


def note_commit(error: BaseException) -> None:
    """Note ``error`` as raised by a COMMIT (``committing`` does it around one; an
    edit's own COMMIT, already in a ``try``, calls this)."""
    error.add_note(AT_COMMIT)


def at_commit(error: BaseException) -> bool:
    """Whether a COMMIT raised ``error`` and no refusal of the server's says it
    rolled back: the connection dropped (the answer is lost), or SQLite failed
    writing its files (its recovery may yet find the commit)."""
    if AT_COMMIT not in getattr(error, "__notes__", ()):
        return False
    answered = getattr(getattr(error, "orig", None), "sqlstate", None) is not None
    return dropped(error) or not answered


def bound_locks(connection: Connection, engine: sa.Engine, lock_timeout: timedelta) -> None:
    """A caller's PostgreSQL connection from another engine has no lock timeout of
    ours: set one for its transaction."""
    if engine.dialect.name == "postgresql" and connection.engine is not engine:
        milliseconds = int(lock_timeout.total_seconds() * 1000)
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {milliseconds}")


def write_edit(connection: Connection, hot: sql.HotPath, codec: Codec, one: Held) -> None:
    """What one edit did, written; an edit that created its customer and did
    nothing leaves no row."""
    if not write(connection, hot, codec, [one]):
        forget_if_new(connection, one)


def forget_if_new(connection: Connection, one: Held) -> None:
    """An edit that created its customer and did nothing leaves no row: a read
    through ``edit`` of a mistyped id does not make a customer of it."""
    if not one.text and one.revision == 0:
        connection.execute(sql.forget_new, {"customer_id": one.customer_id})


# --- the connection a caller hands in -----------------------------------------


def check_connection(connection: Connection, engine: sa.Engine) -> None:
    """Refuse, before touching anything, a connection an edit could not write safely."""
    if not isinstance(connection, Connection):
        raise InvalidInput(
            "connection",
            f"expected a sqlalchemy Connection, got {type(connection).__name__}",
        )
    if not connection.in_transaction():
        raise StoreMisuse(
            "edit(connection=...) needs a connection inside a transaction of its own: "
            "with engine.connect() as connection, connection.begin(): ...",
            code="store.no_transaction",
        )
    options = connection.get_execution_options()
    dbapi = connection.connection.dbapi_connection
    if (
        options.get("isolation_level") == "AUTOCOMMIT"
        or getattr(dbapi, "autocommit", False) is True
    ):
        raise StoreMisuse(
            "edit(connection=...) was given a connection in AUTOCOMMIT mode: each statement "
            "would commit alone and a concurrent edit could be lost; use a connection "
            "with a transaction",
            code="store.no_transaction",
        )
    if engine.dialect.name == "sqlite" and connection.engine is not engine:
        raise StoreMisuse(
            "on SQLite, edit(connection=...) needs a connection from store.begin() or "
            "store.engine, whose transactions take the write lock when they begin "
            "(BEGIN IMMEDIATE)",
            code="store.no_transaction",
        )


# --- what a database failure becomes -----------------------------------------


def translate(
    error: BaseException, operation: str, customer_id: str | None, lock_timeout: timedelta
) -> LifecycleError:
    """The library's error for a SQLAlchemy or driver exception (chain it as the cause)."""
    orig = getattr(error, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)
    message = str(orig if orig is not None else error).lower()
    if sqlstate == "55P03":  # PostgreSQL's lock_timeout: the customer's row
        return LockTimeout(customer_id, lock_timeout.total_seconds())
    if "database is locked" in message or "table is locked" in message:
        return LockTimeout(customer_id, lock_timeout.total_seconds(), database=True)
    if sqlstate == "25P02":
        return StoreMisuse(
            f"{operation}: the transaction was aborted by a statement that failed inside "
            "it (PostgreSQL then refuses every other statement); roll it back, or put a "
            "SAVEPOINT around a statement you expect may fail",
            code="store.no_transaction",
        )
    if sqlstate == "42P01" or "no such table" in message:
        return SchemaMismatch(
            "the lifecycle tables are missing from this database: call "
            f"create_schema() (schema version {SCHEMA_VERSION})"
        )
    if at_commit(error):
        unknown = UNKNOWN_OUTCOME_OF_OURS if operation in OURS else UNKNOWN_OUTCOME
        return StoreUnavailable(operation, error, consequence=unknown)
    if dropped(error):
        return StoreUnavailable(operation, error)  # whatever class the driver gave it
    if isinstance(error, sa.exc.IntegrityError):
        return StoreError(
            f"{operation}: a statement broke a constraint of the database (the database's "
            "own message is the cause of this error); nothing was committed, and the same "
            "statement would break it again",
            code="store.constraint",
        )
    if isinstance(error, sa.exc.ProgrammingError | sa.exc.DataError):
        return StoreError(
            f"{operation}: the database refused a statement (its own message is the cause "
            "of this error); nothing was committed",
            code="store.error",
        )
    return StoreUnavailable(operation, error)


DATABASE_ERRORS = (sa.exc.SQLAlchemyError,)
"""What ``translate`` turns into the library's errors (drivers' own errors reach
us wrapped in ``sqlalchemy.exc.DBAPIError``)."""
