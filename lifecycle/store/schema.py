"""The store's tables, their version, and what PostgreSQL's vacuum is told.

Six tables: the schema's version; one row per customer (the checkpoint of
its subscription, and the indexed instants ``sweep`` looks for); the history,
one row per transition, kept for ever; the usage keys inside the idempotency
window; the outbox, one row per transition until delivered and a retention
period after; nothing else. Every lookup on the way of an edit, a claim or
a prune is by an index whose range holds only live rows, so none of them
walks what a vacuum has not yet cleared.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

SCHEMA_VERSION = 2
"""The version of the tables this library writes and reads. 1: the first release
(history inside the record). 2: history, purchase keys and leases in tables
of their own (``upgrade`` brings 1 to 2 in place)."""


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite keeps no offset)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


metadata = sa.MetaData()
"""The lifecycle tables, as SQLAlchemy ``MetaData``: Alembic's ``target_metadata``
for migrations of your own beside them, or ``metadata.create_all(engine)``
(``SqlStore.create_schema()`` does that and upgrades an earlier version)."""

schema_table = sa.Table(
    "lifecycle_schema",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

subscriptions = sa.Table(
    "lifecycle_subscriptions",
    metadata,
    sa.Column("customer_id", sa.String(255), primary_key=True),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("due_at", UTCDateTime, nullable=True),
    sa.Column("mark", UTCDateTime, nullable=True),
    sa.Column("revision", sa.Integer, nullable=False),
    # the oldest usage key stored (pruned or not), for the sweep's prune
    sa.Column("keys_from", UTCDateTime, nullable=True),
    # how many history entries lifecycle_history holds for this customer
    sa.Column("seq", sa.Integer, nullable=False, server_default="0"),
    # a sweep that failed on this customer leaves it until then
    sa.Column("sweep_after", UTCDateTime, nullable=True),
    sa.Column("sweep_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("sweep_error", sa.Text, nullable=True),
    sa.Index(
        "ix_lifecycle_subscriptions_due_at",
        "due_at",
        "customer_id",
        postgresql_where=sa.text("due_at IS NOT NULL"),
        sqlite_where=sa.text("due_at IS NOT NULL"),
    ),
    sa.Index(
        "ix_lifecycle_subscriptions_keys_from",
        "keys_from",
        "customer_id",
        postgresql_where=sa.text("keys_from IS NOT NULL"),
        sqlite_where=sa.text("keys_from IS NOT NULL"),
    ),
)

history = sa.Table(
    "lifecycle_history",
    metadata,
    sa.Column("customer_id", sa.String(255), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("requested_at", UTCDateTime, nullable=True),
    sa.Column("trigger", sa.String(32), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("dest", sa.String(32), nullable=False),
    sa.Column("key", sa.String(255), nullable=True),
    sa.Column("details", sa.Text, nullable=False),
    # a purchase or unsubscribe retried with its key is answered from here
    sa.Index(
        "ix_lifecycle_history_key",
        "customer_id",
        "key",
        postgresql_where=sa.text("key IS NOT NULL"),
        sqlite_where=sa.text("key IS NOT NULL"),
    ),
)

usage_keys = sa.Table(
    "lifecycle_usage_keys",
    metadata,
    sa.Column("customer_id", sa.String(255), primary_key=True),
    sa.Column("usage_id", sa.String(255), primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("row", sa.Text, nullable=False),
    # the prune deletes a customer's keys from `keys_from` up to its cutoff: a
    # range of live rows only, however many deleted ones a vacuum has not cleared
    sa.Index("ix_lifecycle_usage_keys_at", "customer_id", "at"),
)

_PENDING = "delivered_at IS NULL AND dead_at IS NULL"

outbox = sa.Table(
    "lifecycle_outbox",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("customer_id", sa.String(255), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("trigger", sa.String(32), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("dest", sa.String(32), nullable=False),
    sa.Column("key", sa.String(255), nullable=True),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    sa.Column("requested_at", UTCDateTime, nullable=True),
    sa.Column("lease_until", UTCDateTime, nullable=True),
    sa.Column("lease_token", sa.String(32), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("dead_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("customer_id", "seq", name="uq_lifecycle_outbox_transition"),
    sa.Index(
        "ix_lifecycle_outbox_pending",
        "id",
        postgresql_where=sa.text(_PENDING),
        sqlite_where=sa.text(_PENDING),
    ),
    sa.Index(
        "ix_lifecycle_outbox_pending_customer",
        "customer_id",
        "id",
        postgresql_where=sa.text(_PENDING),
        sqlite_where=sa.text(_PENDING),
    ),
    sa.Index(
        "ix_lifecycle_outbox_delivered",
        "delivered_at",
        postgresql_where=sa.text("delivered_at IS NOT NULL"),
        sqlite_where=sa.text("delivered_at IS NOT NULL"),
    ),
    sa.Index(
        "ix_lifecycle_outbox_dead",
        "id",
        postgresql_where=sa.text("dead_at IS NOT NULL"),
        sqlite_where=sa.text("dead_at IS NOT NULL"),
    ),
    # NOTE: an id is never given twice, even once every row has been deleted
    # (SQLite's plain rowid would start again at 1): a handler may rely on it.
    sqlite_autoincrement=True,
)

TABLES = (schema_table, subscriptions, history, usage_keys, outbox)

STORAGE: dict[str, str] = {
    # NOTE: PostgreSQL only. A subscription row is rewritten by every edit:
    # room on its page keeps the rewrite a HOT update (no index touched), and
    # the page is pruned by the next reader, vacuum or not. The queues
    # (outbox, keys) turn over every few days: vacuum them after 2% change
    # rather than the default 20%.
    "lifecycle_subscriptions": "fillfactor = 70, autovacuum_vacuum_scale_factor = 0.05",
    "lifecycle_usage_keys": (
        "autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02"
    ),
    "lifecycle_outbox": (
        "autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02"
    ),
}
