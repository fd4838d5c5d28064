"""Every statement the stores send, written once as SQLAlchemy Core.

Both stores (``SqlStore`` and ``AsyncSqlStore``) and every dialect run these
same statements; what differs by dialect is compiled by SQLAlchemy. The few
on the hot path of an edit are compiled once per dialect and run on the DBAPI
cursor (``Prepared``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
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

lock = sa.select(S.record, S.revision, S.keys_from, S.seq, S.due_at).where(
    S.customer_id == P("customer_id")
)
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


def checkpoint(*, due_at: bool = True, keys_from: bool = True) -> sa.Update:
    """A customer's checkpoint, written only over the revision its edit read: the
    row lock makes that certain, and the guard makes a lost lock an error, not a
    lost update. ``due_at`` and ``keys_from`` are left out when they have not
    changed: on SQLite, a column set (even to its own value) rewrites its index
    entry, and those two index pages were a third of an edit's commit."""
    values: dict[str, Any] = {
        "record": P("record"),
        "state": P("state"),
        "mark": P("mark"),
        "revision": P("revision"),
        "seq": P("seq"),
        "sweep_after": sa.null(),
        "sweep_failures": sa.literal_column("0"),
        "sweep_error": sa.null(),
    }
    if due_at:
        values["due_at"] = P("due_at")
    if keys_from:
        values["keys_from"] = P("keys_from")
    return (
        sa.update(subscriptions)
        .where(S.customer_id == P("customer"), S.revision == P("revision") - 1)
        .values(**values)
    )


update_subscription = checkpoint()
update_one = update_subscription.returning(S.customer_id)
update_with_key = update_one.add_cte(insert_key.cte("new_key"))
"""PostgreSQL only: the usual edit, one usage, writes its key and the
subscription in one round trip (a data-modifying CTE)."""

insert_history = sa.insert(history)
insert_outbox = sa.insert(outbox)

# NOTE: PostgreSQL only, for a sweep's batch of hundreds of customers: the
# batch travels as one JSON document and is one statement, not one per row (a
# third of a sweep's time went to per-row statements; arrays cost as much again
# in the driver's quoting). SQLite, in process, runs the per-row forms above.
_SUBSCRIPTION_COLUMNS = (
    "customer text, record text, state text, due_at timestamptz, mark timestamptz, "
    "revision integer, keys_from timestamptz, seq integer"
)
_TRANSITION_COLUMNS = (
    "customer_id text, seq integer, at timestamptz, requested_at timestamptz, trigger text, "
    "source text, dest text, key text, details text"
)
bulk_update_subscriptions = sa.text(
    "UPDATE lifecycle_subscriptions AS s SET record = v.record, state = v.state, "
    "due_at = v.due_at, mark = v.mark, revision = v.revision, keys_from = v.keys_from, "
    "seq = v.seq, sweep_after = NULL, sweep_failures = 0, sweep_error = NULL "
    f"FROM json_to_recordset(CAST(:rows AS json)) AS v({_SUBSCRIPTION_COLUMNS}) "
    "WHERE s.customer_id = v.customer AND s.revision = v.revision - 1"
)
bulk_insert = {
    table: sa.text(
        f"INSERT INTO {table} (customer_id, seq, at, requested_at, trigger, source, dest, "
        "key, details) SELECT customer_id, seq, at, requested_at, trigger, source, dest, "
        f"key, details FROM json_to_recordset(CAST(:rows AS json)) AS v({_TRANSITION_COLUMNS})"
    )
    for table in ("lifecycle_history", "lifecycle_outbox")
}


def _moment(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def as_json(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Rows as the one parameter of the bulk statements."""
    return {"rows": json.dumps(rows, default=_moment, separators=(",", ":"))}


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
history_any = sa.select(H.seq).where(H.customer_id == P("customer_id")).limit(1)
"""Whether a customer whose row holds no record has history nonetheless."""
history_count = (
    sa.select(
        sa.func.count(),
        sa.func.count(sa.case((sa.and_(H.key.is_(None), H.trigger.in_(P("keyed"))), 1))),
    )
    .select_from(history)
    .where(_mine)
)
"""How many entries a customer's history holds, and how many of those that
answer for a caller's key (``keyed``: the triggers) have lost it."""
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
    .values(
        sweep_after=P("sweep_after"),
        sweep_failures=S.sweep_failures + 1,
        sweep_error=P("error"),
    )
)
failing = (
    sa.select(S.customer_id, S.sweep_failures, S.sweep_after, S.sweep_error)
    .where(S.sweep_failures > 0)
    .order_by(S.sweep_failures.desc(), S.customer_id)
)
forget_new = sa.delete(subscriptions).where(
    S.customer_id == P("customer_id"), S.record == "", S.revision == 0
)
"""An edit that created a customer and did nothing leaves no row behind."""
failures_of = sa.select(S.customer_id, S.sweep_failures).where(
    S.customer_id.in_(P("customers", expanding=True))
)

# --- who holds what (lifecycle catalog diff --db) ---------------------------------

holding = sa.select(S.customer_id, S.record).where(
    S.state.in_(("enterprise-active", "quota-exhausted-payg")),
    S.record.like(P("pattern")),
)
"""Customers inside an Enterprise period whose record names ``pattern``: those who
may hold an edition or add-on a new version changes."""

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

_candidates = (
    sa.select(Q.id, Q.customer_id)
    .where(
        _pending,
        Q.id >= P("low"),
        sa.or_(Q.lease_until.is_(None), Q.lease_until <= P("now")),
    )
    .order_by(Q.id)
    .limit(P("scan"))
    .with_for_update(skip_locked=True)
    .cte("candidates")
)
_per_customer = sa.select(
    _candidates.c.id,
    _candidates.c.customer_id,
    sa.func.count().over(partition_by=_candidates.c.customer_id).label("taken"),
    sa.func.max(_candidates.c.id).over(partition_by=_candidates.c.customer_id).label("last"),
).cte("per_customer")
_earlier = outbox.alias("earlier")
_in_turn = sa.select(_per_customer.c.id).where(
    sa.select(sa.func.count())
    .where(
        _earlier.c.customer_id == _per_customer.c.customer_id,
        _earlier.c.delivered_at.is_(None),
        _earlier.c.dead_at.is_(None),
        _earlier.c.id <= _per_customer.c.last,
    )
    .scalar_subquery()
    == _per_customer.c.taken
)
claim = (
    sa.update(outbox)
    .where(Q.id.in_(_in_turn))
    .values(lease_until=P("until"), lease_token=P("token"))
    .returning(*_MESSAGE)
)
"""Lease, in one statement, the messages that may be handed out now.

Candidates are pending messages no live lease holds, oldest first; rows
another drainer is claiming at that instant are skipped, not waited for. A
customer's candidates are taken only if they are all its pending messages up
to the last of them (counted whether leased, locked or failed): a message is
handed out only after every earlier one of its customer, whatever other
drainers hold. A customer whose earlier message is elsewhere is left for a
later claim."""

claimed_ids = sa.select(Q.id, Q.customer_id).where(Q.lease_token == P("token")).order_by(Q.id)
one_message = sa.select(*_MESSAGE).where(Q.id == P("id"))
"""A claim read again row by row, when one of its rows could not be read."""

plain_index_scans = "SET LOCAL enable_bitmapscan = off"
"""PostgreSQL, before a claim: the count above walks a customer's index entries in
order (a plain index scan), so the entries of messages delivered since the last
vacuum are marked dead in the index on the first walk and cost the next claim
nothing; a bitmap scan would visit each of them in the table again, every time."""

lowest_pending = sa.select(sa.func.min(Q.id)).where(_pending)

lease = (
    sa.update(outbox)
    .where(Q.id.in_(P("ids", expanding=True)))
    .values(lease_until=P("until"), lease_token=P("token"))
)
delivered = (
    sa.update(outbox)
    .where(
        Q.id.between(P("first"), P("last")),
        Q.lease_token == P("token"),
        Q.id.not_in(P("kept", expanding=True)),
    )
    .values(delivered_at=P("now"), lease_until=None, lease_token=None)
)
"""Every message of a claim but those ``kept`` (failed or not reached): one range
of the primary key, whatever the size of the batch."""
released = (
    sa.update(outbox)
    .where(Q.id.in_(P("ids", expanding=True)), Q.lease_token == P("token"))
    .values(lease_until=None, lease_token=None)
)
abandoned = (
    sa.update(outbox)
    .where(_pending, Q.lease_token == P("token"))
    .values(lease_until=None, lease_token=None)
)
"""Every message a claim leased, given back: the claim was interrupted (its task
cancelled, its answer lost) and may have committed."""
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
retry_now = (
    sa.update(outbox)
    .where(_pending, Q.lease_token.is_(None), Q.lease_until.is_not(None))
    .values(lease_until=None)
)
"""``TestClock``: every message waiting after a failed hand-out may be handed out
again now (its wait is on the real clock; a test's time is the test clock's)."""
attempts_of = sa.select(Q.attempts).where(Q.id == P("message_id"))
dead = sa.select(*_MESSAGE, Q.attempts, Q.last_error, Q.dead_at).where(Q.dead_at.is_not(None))
dead_ids = sa.select(Q.id, Q.customer_id).where(Q.dead_at.is_not(None)).order_by(Q.id)
one_dead = dead.where(Q.id == P("id"))
dead_ids_locked = (
    sa.select(Q.id)
    .where(Q.dead_at.is_not(None), Q.id.in_(P("ids", expanding=True)))
    .order_by(Q.id)
    .with_for_update()
)
_COPIED = (
    *("customer_id", "seq", "at", "requested_at", "trigger"),
    *("source", "dest", "key", "details"),
)
set_aside = sa.update(outbox).where(Q.id == P("message_id")).values(seq=-Q.seq)
copy_message = (
    sa.insert(outbox)
    .from_select(
        _COPIED,
        sa.select(*(-Q.seq if name == "seq" else outbox.c[name] for name in _COPIED)).where(
            Q.id == P("message_id")
        ),
    )
    .returning(Q.id)
)
"""A message again at the end of the queue, copied by the database from the row
``set_aside`` (its seq negated, so that the copy's is free): nothing of it is
read here, so a dead letter that is no message can be redelivered too."""
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
        self._dialect = dialect
        self.sql = compiled.string
        self._positional = compiled.positiontup
        # NOTE: what construct_params would do on each run, done once: the
        # statement's own values (literals such as the 1 of ``revision - 1``),
        # the names a caller gives, and the type processing of each.
        self._fixed = {
            name: value
            for name, value in compiled.construct_params(_check=False).items()
            if not compiled.binds[name].required
        }
        self._given = [name for name in compiled.binds if compiled.binds[name].required]
        self._binds = [
            (name, processor)
            for name, bind in compiled.binds.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]
        self._results = [
            kind.dialect_impl(dialect).result_processor(dialect, None) for kind in results
        ]
        # NOTE: whether rows come back is known from the statement (a text, such
        # as SQLite's BEGIN, says nothing, so the cursor is asked): psycopg builds
        # an object per column each time ``cursor.description`` is read, 3% of
        # a PostgreSQL edit's CPU.
        self._rows: bool | None = (
            None
            if isinstance(statement, sa.TextClause)
            else isinstance(statement, sa.Select) or bool(compiled.effective_returning)
        )

    def args(self, params: Mapping[str, Any]) -> Any:
        """``params`` as the driver takes them: a list, or a dict by name."""
        values = dict(self._fixed)
        for name in self._given:
            values[name] = params[name]
        for name, process in self._binds:
            values[name] = process(values[name])
        return [values[n] for n in self._positional] if self._positional else values

    def run(self, connection: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        args = self.args(params)
        raw = connection.connection
        cursor = None
        try:
            cursor = _cursor(raw)
            cursor.execute(self.sql, args)
            returned = self._rows if self._rows is not None else cursor.description
            rows = list(cursor.fetchall()) if returned else []
        except BaseException as error:
            _drop_cursor(raw, cursor)
            if not isinstance(error, self._dialect.loaded_dbapi.Error):
                raise
            dropped = self._dialect.is_disconnect(error, raw.dbapi_connection, cursor)
            if dropped:
                connection.invalidate(error)
            raise sa.exc.DBAPIError.instance(
                self.sql,
                args,
                error,
                self._dialect.loaded_dbapi.Error,
                connection_invalidated=dropped,
            ) from error
        processors = self._results
        if not processors:
            return rows
        return [
            tuple(p(v) if p else v for p, v in zip(processors, row, strict=False))
            + tuple(row[len(processors) :])
            for row in rows
        ]


CURSOR = "lifecycle_cursor"
"""In a pooled connection's ``info``: the driver's cursor ``Prepared`` runs its
statements on, with the driver connection it belongs to."""


def _cursor(raw: Any) -> Any:
    """The cursor kept for the driver connection under ``raw``, or a new one.

    NOTE: one cursor per connection, not one per statement: making a psycopg
    cursor (and its adapters) was 2% of a PostgreSQL edit's CPU. Each statement
    reads all its rows before the next, and a failed statement's cursor is
    closed and forgotten (``_drop_cursor``); a connection the pool replaced
    has a driver connection of its own, so its cursor is never one of the old.
    """
    driver = raw.dbapi_connection
    kept = raw.info.get(CURSOR)
    if kept is not None and kept[0] is driver:
        return kept[1]
    cursor = raw.cursor()
    raw.info[CURSOR] = (driver, cursor)
    return cursor


def _drop_cursor(raw: Any, cursor: Any) -> None:
    with contextlib.suppress(Exception):
        raw.info.pop(CURSOR, None)
    if cursor is not None:
        # NOTE: the cursor of a connection just invalidated cannot close
        # (pysqlite: "Cannot operate on a closed database"); it holds nothing,
        # and that error must not replace the one being raised.
        with contextlib.suppress(Exception):
            cursor.close()


class HotPath:
    """The statements of an edit, compiled for one dialect."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self.postgresql = dialect.name == "postgresql"
        results = (sa.Text(), sa.Integer(), UTCDateTime(), sa.Integer(), UTCDateTime())
        self.lock = Prepared(lock_for_update if self.postgresql else lock, dialect, results)
        self.create = Prepared(create["postgresql" if self.postgresql else "sqlite"], dialect)
        self.key_by_id = Prepared(key_by_id, dialect)
        self.insert_key = Prepared(insert_key, dialect)
        self.updates = {
            (due_at, keys_from): Prepared(
                checkpoint(due_at=due_at, keys_from=keys_from).returning(S.customer_id), dialect
            )
            for due_at in (False, True)
            for keys_from in (False, True)
        }
        """The checkpoint written alone, by whether ``due_at`` and ``keys_from`` changed."""
        self.update_with_key = Prepared(update_with_key, dialect) if self.postgresql else None
