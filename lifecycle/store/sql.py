"""Every statement the stores send, written once as SQLAlchemy Core.

Both stores (``SqlStore`` and ``AsyncSqlStore``) and every dialect run these
same statements; what differs by dialect is compiled by SQLAlchemy. The few
on the hot path of an edit are compiled once per dialect and run on the DBAPI
cursor (``Prepared``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.compiler import SQLCompiler

from lifecycle.states import State
from lifecycle.store.schema import UTCDateTime, history, outbox, subscriptions, usage_keys

P = sa.bindparam
S, H, K, Q = subscriptions.c, history.c, usage_keys.c, outbox.c

# --- one customer: the edit ---------------------------------------------------

lock = sa.select(S.record, S.revision, S.keys_from, S.seq).where(S.customer_id == P("customer_id"))
lock_for_update = lock.with_for_update()
revision_of = sa.select(S.revision).where(S.customer_id == P("customer_id"))

create = {
    dialect: insert(subscriptions)
    .values(customer_id=P("customer_id"), record="", state=State.NONE.value, revision=0)
    .on_conflict_do_nothing(index_elements=["customer_id"])
    for dialect, insert in (("sqlite", sqlite.insert), ("postgresql", postgresql.insert))
}
"""A new customer's row: an empty record means "new subscription"; ON CONFLICT
lets two first edits of one customer race safely."""

key_by_id = sa.select(K.row).where(
    K.customer_id == P("customer_id"), K.usage_id == P("usage_id"), K.at > P("cutoff")
)
keys_after = (
    sa.select(K.usage_id, K.row)
    .where(K.customer_id == P("customer_id"), K.at > P("after"))
    .order_by(K.at.desc())
)
insert_key = sa.insert(usage_keys).values(
    customer_id=P("k_customer"), usage_id=P("k_usage_id"), at=P("k_at"), row=P("k_row")
)
update_subscription = (
    sa.update(subscriptions)
    .where(S.customer_id == P("customer"))
    .values(
        record=P("record"),
        state=P("state"),
        due_at=P("due_at"),
        mark=P("mark"),
        revision=P("revision"),
        keys_from=P("keys_from"),
        seq=P("seq"),
        sweep_after=sa.null(),
        sweep_failures=sa.literal_column("0"),
    )
)
update_with_key = update_subscription.add_cte(insert_key.cte("new_key"))
"""PostgreSQL only: the usual edit, one usage, writes its key and the
subscription in one round trip (a data-modifying CTE)."""

insert_history = sa.insert(history)
insert_outbox = sa.insert(outbox)

# --- one customer: its history ------------------------------------------------

_HISTORY = (H.seq, H.at, H.requested_at, H.trigger, H.source, H.dest, H.key, H.details)
_mine = sa.and_(H.customer_id == P("customer_id"), H.seq <= P("upto"))
history_all = sa.select(*_HISTORY).where(_mine).order_by(H.seq)
history_after = sa.select(*_HISTORY).where(_mine, H.at > P("when")).order_by(H.seq)
history_last = sa.select(*_HISTORY).where(_mine, H.at <= P("when")).order_by(H.seq.desc()).limit(1)
history_last_of = (
    sa.select(*_HISTORY)
    .where(_mine, H.at <= P("when"), H.trigger == P("trigger"))
    .order_by(H.seq.desc())
    .limit(1)
)
history_keyed = (
    sa.select(*_HISTORY)
    .where(_mine, H.key == P("key"), H.trigger.in_(P("triggers", expanding=True)))
    .order_by(H.seq)
    .limit(1)
)

# --- the sweep ----------------------------------------------------------------

_CHECKPOINT = (S.customer_id, S.record, S.revision, S.keys_from, S.seq)
_sweepable = sa.or_(S.sweep_after.is_(None), S.sweep_after <= P("now"))

due = (
    sa.select(*_CHECKPOINT, S.due_at)
    .where(
        S.due_at <= P("cut"),
        _sweepable,
        sa.tuple_(S.due_at, S.customer_id) > sa.tuple_(P("after_at"), P("after_id")),
    )
    .order_by(S.due_at, S.customer_id)
    .limit(P("batch"))
    .with_for_update(skip_locked=True)
)
"""Customers with a timed transition due, a batch at a time (keyset order, so a
sweep never walks again what it has passed); locked rows are another
sweeper's, skipped."""

stale_keys = (
    sa.select(*_CHECKPOINT, S.mark)
    .where(
        S.keys_from <= P("cut"),
        _sweepable,
        sa.tuple_(S.keys_from, S.customer_id) > sa.tuple_(P("after_at"), P("after_id")),
    )
    .order_by(S.keys_from, S.customer_id)
    .limit(P("batch"))
    .with_for_update(skip_locked=True)
)
"""Customers holding usage keys older than the window, a batch at a time."""

delete_keys = sa.delete(usage_keys).where(
    K.customer_id == P("customer_id"), K.at >= P("keys_from"), K.at <= P("cutoff")
)
oldest_keys = (
    sa.select(K.customer_id, sa.func.min(K.at))
    .where(K.customer_id.in_(P("customers", expanding=True)))
    .group_by(K.customer_id)
)
set_keys_from = (
    sa.update(subscriptions).where(S.customer_id == P("customer")).values(keys_from=P("keys_from"))
)
sweep_failed = (
    sa.update(subscriptions)
    .where(S.customer_id == P("customer"))
    .values(sweep_after=P("sweep_after"), sweep_failures=S.sweep_failures + 1)
)
failures_of = sa.select(S.customer_id, S.sweep_failures).where(
    S.customer_id.in_(P("customers", expanding=True))
)

# --- the outbox ---------------------------------------------------------------

_pending = sa.and_(Q.delivered_at.is_(None), Q.dead_at.is_(None))
_MESSAGE = (
    Q.id,
    Q.customer_id,
    Q.seq,
    Q.at,
    Q.requested_at,
    Q.trigger,
    Q.source,
    Q.dest,
    Q.key,
    Q.details,
)

claimable = (
    sa.select(*_MESSAGE)
    .where(
        _pending,
        Q.id >= P("low"),
        sa.or_(Q.lease_until.is_(None), Q.lease_until <= P("now")),
    )
    .order_by(Q.id)
    .limit(P("scan"))
    .with_for_update(skip_locked=True)
)
"""Pending messages no live lease holds, oldest first; rows another drainer is
claiming at this moment are skipped, not waited for."""

pending_of = (
    sa.select(Q.customer_id, Q.id)
    .where(_pending, Q.customer_id.in_(P("customers", expanding=True)), Q.id <= P("upto"))
    .order_by(Q.customer_id, Q.id)
)
"""Every pending message of these customers up to ``upto``, leased, locked or
not: a message is handed out only after every earlier one of its customer."""

lowest_pending = sa.select(sa.func.min(Q.id)).where(_pending)

lease = (
    sa.update(outbox)
    .where(Q.id.in_(P("ids", expanding=True)))
    .values(lease_until=P("until"), lease_token=P("token"))
)
delivered = (
    sa.update(outbox)
    .where(Q.id.in_(P("ids", expanding=True)), Q.lease_token == P("token"))
    .values(delivered_at=P("now"), lease_until=None, lease_token=None)
)
released = (
    sa.update(outbox)
    .where(Q.id.in_(P("ids", expanding=True)), Q.lease_token == P("token"))
    .values(lease_until=None, lease_token=None)
)
failed = (
    sa.update(outbox)
    .where(Q.id == P("message_id"), Q.lease_token == P("token"))
    .values(
        attempts=Q.attempts + 1,
        last_error=P("error"),
        lease_until=P("retry_at"),
        lease_token=None,
        dead_at=sa.case((Q.attempts + 1 >= P("max_attempts"), P("now")), else_=None),
    )
)
attempts_of = sa.select(Q.attempts).where(Q.id == P("message_id"))
dead = sa.select(*_MESSAGE, Q.attempts, Q.last_error, Q.dead_at).where(Q.dead_at.is_not(None))
dead_by_id = dead.where(Q.id.in_(P("ids", expanding=True))).with_for_update()
delete_messages = sa.delete(outbox).where(Q.id.in_(P("ids", expanding=True)))
expired_messages = (
    sa.select(Q.id)
    .where(Q.delivered_at <= P("cut"))
    .order_by(Q.delivered_at)
    .limit(P("batch"))
    .with_for_update(skip_locked=True)
)


class Prepared:
    """A Core statement compiled once for one dialect and run on the DBAPI cursor.

    NOTE: an edit's hot path (lock, key look-up, write) runs this way because
    SQLAlchemy's per-execution machinery was half of an edit's cost (measured
    on PostgreSQL: 2.4 ms against 1.2 ms per edit). The SQL, the parameter
    binding and the type processing are still SQLAlchemy's, compiled from the
    Core statements above; errors are wrapped and disconnects invalidate the
    connection as ``Connection.execute`` would.
    """

    def __init__(
        self,
        statement: sa.ClauseElement,
        dialect: sa.Dialect,
        results: Sequence[sa.types.TypeEngine[Any]] = (),
    ) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self._compiled = compiled
        self._dialect = dialect
        self.sql = compiled.string
        self._positional = compiled.positiontup
        self._binds = [
            (name, processor)
            for name, bind in compiled.binds.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]
        self._results = [
            kind.dialect_impl(dialect).result_processor(dialect, None) for kind in results
        ]

    def run(self, connection: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        values = self._compiled.construct_params(dict(params))
        assert values is not None
        for name, process in self._binds:
            values[name] = process(values[name])
        args: Any = [values[n] for n in self._positional] if self._positional else values
        raw = connection.connection
        cursor = raw.cursor()
        try:
            cursor.execute(self.sql, args)
            rows = list(cursor.fetchall()) if cursor.description else []
        except self._dialect.loaded_dbapi.Error as error:
            if self._dialect.is_disconnect(error, raw.dbapi_connection, cursor):
                connection.invalidate(error)
            raise sa.exc.DBAPIError.instance(
                self.sql, args, error, self._dialect.loaded_dbapi.Error
            ) from error
        finally:
            cursor.close()
        processors = self._results
        if not processors:
            return rows
        return [
            tuple(p(v) if p else v for p, v in zip(processors, row, strict=False))
            + tuple(row[len(processors) :])
            for row in rows
        ]


class HotPath:
    """The statements of an edit, compiled for one dialect."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self.postgresql = dialect.name == "postgresql"
        results = (sa.Text(), sa.Integer(), UTCDateTime(), sa.Integer())
        self.lock = Prepared(lock_for_update if self.postgresql else lock, dialect, results)
        self.create = Prepared(create["postgresql" if self.postgresql else "sqlite"], dialect)
        self.key_by_id = Prepared(key_by_id, dialect)
        self.insert_key = Prepared(insert_key, dialect)
        self.update = Prepared(update_subscription, dialect)
        self.update_with_key = Prepared(update_with_key, dialect) if self.postgresql else None
