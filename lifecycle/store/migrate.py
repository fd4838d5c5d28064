"""Creating the schema, and bringing a database of an earlier version up to date.

``create`` runs in one transaction under a lock (PostgreSQL: an advisory
lock; SQLite: the write lock BEGIN IMMEDIATE takes), so any number of
instances may call it at once on a fresh database: one creates, the others
find it done. A database of version 1 is upgraded in place: tables and
columns are added, and its records are converted afterwards in batches
(``convert``); a record that cannot be converted is left as it was and is
still read as version 1.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.errors import SchemaMismatch
from lifecycle.store import core, sql
from lifecycle.store.schema import (
    SCHEMA_VERSION,
    STORAGE,
    history,
    metadata,
    outbox,
    schema_table,
    subscriptions,
    usage_keys,
)

log = logging.getLogger("lifecycle.store")

ADVISORY_LOCK = 0x6C69666563796C65
"""pg_advisory_xact_lock key of schema changes ("lifecycle" in ASCII, cut to 8 bytes)."""


def mismatch(found: Sequence[int]) -> str:
    if not found:
        return "no lifecycle schema in this database: call SqlStore.create_schema() first"
    return (
        f"the database holds lifecycle schema version {found[0]}, this library "
        f"reads version {SCHEMA_VERSION}; use a release that reads it, or upgrade"
    )


def version(connection: Connection) -> list[int]:
    """The versions the schema table holds (one, normally), or [] if there is none."""
    if not sa.inspect(connection).has_table(schema_table.name):
        return []
    return list(connection.execute(sa.select(schema_table.c.version)).scalars())


def create(connection: Connection) -> int | None:
    """Create the schema, or upgrade it; return the version found before (None: new)."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK)))
    found = version(connection)
    if not found:
        metadata.create_all(connection, checkfirst=True)
        connection.execute(sa.insert(schema_table).values(id=1, version=SCHEMA_VERSION))
        _storage(connection)
        return None
    if found == [SCHEMA_VERSION]:
        return SCHEMA_VERSION
    if found == [1]:
        _upgrade_1(connection)
        connection.execute(sa.update(schema_table).values(version=SCHEMA_VERSION))
        _storage(connection)
        log.info("lifecycle: schema upgraded from version 1 to %s", SCHEMA_VERSION)
        return 1
    raise SchemaMismatch(mismatch(found))


def _storage(connection: Connection) -> None:
    if connection.dialect.name != "postgresql":
        return
    for table, settings in STORAGE.items():
        connection.exec_driver_sql(f"ALTER TABLE {table} SET ({settings})")


def _add(connection: Connection, table: sa.Table, name: str) -> None:
    column = table.c[name]
    kind = column.type.compile(dialect=connection.dialect)
    rest = ""
    if column.server_default is not None:
        default = column.server_default.arg  # type: ignore[attr-defined]
        rest = f" NOT NULL DEFAULT {default}"
    connection.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}{rest}")


def _upgrade_1(connection: Connection) -> None:
    """Version 1 to 2: the tables and columns that version 2 added."""
    for name in ("seq", "sweep_after", "sweep_failures", "sweep_error"):
        _add(connection, subscriptions, name)
    connection.exec_driver_sql("DROP INDEX ix_lifecycle_subscriptions_due_at")
    connection.exec_driver_sql("DROP INDEX ix_lifecycle_outbox_undelivered")
    if connection.dialect.name == "sqlite":
        _rebuild_outbox(connection)
    else:
        for name in OUTBOX_V2:
            _add(connection, outbox, name)
        for index in outbox.indexes:
            index.create(connection)
    for index in (*subscriptions.indexes, *usage_keys.indexes):
        index.create(connection)
    history.create(connection)


OUTBOX_V2 = ("requested_at", "lease_until", "lease_token", "attempts", "last_error", "dead_at")


def _rebuild_outbox(connection: Connection) -> None:
    """SQLite: version 1's outbox gave ids again once every row was deleted; the
    table is rebuilt with AUTOINCREMENT (SQLite cannot alter that in place)."""
    kept = [c.name for c in outbox.columns if c.name not in OUTBOX_V2]
    connection.exec_driver_sql("ALTER TABLE lifecycle_outbox RENAME TO lifecycle_outbox_v1")
    outbox.create(connection)
    columns = ", ".join(kept)
    connection.exec_driver_sql(
        f"INSERT INTO lifecycle_outbox ({columns}) SELECT {columns} FROM lifecycle_outbox_v1"
    )
    connection.exec_driver_sql("DROP TABLE lifecycle_outbox_v1")


V1_RECORDS = subscriptions.c.record.like('{"schema_version":1,%')

_next_v1 = (
    sa.select(
        subscriptions.c.customer_id,
        subscriptions.c.record,
        subscriptions.c.revision,
        subscriptions.c.keys_from,
        subscriptions.c.seq,
    )
    .where(V1_RECORDS, subscriptions.c.customer_id > sa.bindparam("after"))
    .order_by(subscriptions.c.customer_id)
    .limit(sa.bindparam("batch"))
    .with_for_update(skip_locked=True)
)


def convert(
    connection: Connection,
    hot: sql.HotPath,
    codec: core.Codec,
    after: str,
    batch: int,
) -> tuple[int, list[tuple[str, str]], str | None]:
    """Convert one batch of version 1 records (history into its table); return how
    many were converted, the failures (customer, why), and where to go on."""
    rows = connection.execute(_next_v1, {"after": after, "batch": batch}).all()
    holds, failures = [], []
    for customer_id, record, revision, keys_from, seq in rows:
        try:
            one = core.held(connection, hot, codec, customer_id, record, revision, keys_from, seq)
        except Exception as error:
            failures.append((customer_id, str(error)))
            log.warning("lifecycle: record of %r left at version 1: %s", customer_id, error)
            continue
        one.rewrite = True  # a version 1 record: written again, as version 2
        holds.append(one)
    core.write(connection, hot, codec, holds, remember=False)
    return len(holds), failures, rows[-1][0] if len(rows) == batch else None
