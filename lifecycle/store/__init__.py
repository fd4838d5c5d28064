"""Persisting subscriptions safely: SQLite embedded by default, PostgreSQL for a
fleet of order-service instances, on SQLAlchemy 2 Core.

``SqlStore.edit(customer_id)`` hands out the subscription held exclusively (a
row lock on PostgreSQL, an immediate write transaction on SQLite) and writes
back, in the same transaction, its usage keys, one history row and one
outbox row per transition, and a small checkpoint of the subscription with
the indexed instants ``sweep`` looks for. Nothing grows with the age of the
fleet: the sweep deletes keys out of the window and delivered messages past
their retention, and an edit reads only what it needs.

Modules: ``schema`` (tables, version), ``migrate`` (create, upgrade), ``sql``
(every statement), ``core`` (hold, read, write a customer; failures),
``providers`` (history and keys read on demand), ``sweep``, ``outbox``,
``plans`` (the work of many transactions, driven by both stores), ``base``
(settings, checks), ``sync`` (``SqlStore``), ``aio`` (``AsyncSqlStore``). The
tables are in ``lifecycle.store.schema``.
"""

from lifecycle.errors import (
    LockTimeout,
    ReadOnly,
    SchemaMismatch,
    StoreError,
    StoreMisuse,
    StoreUnavailable,
    UnknownCustomer,
)
from lifecycle.store.aio import AsyncEdit, AsyncSqlStore, AsyncSubscription
from lifecycle.store.outbox import DeadLetter, OutboxMessage
from lifecycle.store.schema import SCHEMA_VERSION, metadata
from lifecycle.store.sweep import FailingCustomer, SweepFailure, SweepReport
from lifecycle.store.sync import Edit, SqlStore
from lifecycle.subscription import Subscription as Snapshot

__all__ = [
    "SCHEMA_VERSION",
    "AsyncEdit",
    "AsyncSqlStore",
    "AsyncSubscription",
    "DeadLetter",
    "Edit",
    "FailingCustomer",
    "LockTimeout",
    "OutboxMessage",
    "ReadOnly",
    "SchemaMismatch",
    "Snapshot",
    "SqlStore",
    "StoreError",
    "StoreMisuse",
    "StoreUnavailable",
    "SweepFailure",
    "SweepReport",
    "UnknownCustomer",
    "metadata",
]
