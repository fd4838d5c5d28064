"""The transactional outbox: leases, per-customer order, retries and dead letters.

Every transition is written to ``lifecycle_outbox`` in the transaction of the
edit that made it. ``drain`` hands it to a handler at least once, in order
per customer, and holds no lock while the handler runs:

1. **claim** (one statement): take pending messages no live lease holds,
   oldest first, skipping rows another drainer is claiming at that instant;
   keep only customers with no earlier pending message outside the claim
   (leased, locked or failed), and lease theirs;
2. **hand out**, with no transaction open: a handler may write to the same
   database, through ``store.edit`` too. A customer whose message fails is
   held back for the rest of the batch; every other customer's go on;
3. **settle** (a short transaction): mark what was handed out delivered,
   count each failure, and release what was not reached.

A drainer that dies leaves its lease to run out; the messages are then
claimed again (a pgmq-style visibility timeout). A message that failed
``max_attempts`` times is set aside (dead-lettered): its customer's later
messages then flow without it, and ``redeliver`` puts it back at the end of
the queue.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle import telemetry
from lifecycle.errors import InvalidInput, shown
from lifecycle.states import State
from lifecycle.store import sql
from lifecycle.values import Transition

log = logging.getLogger("lifecycle.outbox")

LEASE = timedelta(minutes=5)
"""How long a claim holds its messages; a drainer stops handing out a batch
whose lease is about to run out, so another may take over."""

RETRY_AFTER = (timedelta(seconds=5), timedelta(minutes=10))
"""A failed message waits 5 s, doubling per attempt, at most 10 min, before it
is claimed again: one bad customer never makes a drain loop hot."""

MAX_ERROR = 2000


@attrs.frozen
class OutboxMessage:
    """One transition, handed to a ``drain_outbox`` handler (at least once).

    ``(customer_id, seq)`` identifies the transition for ever; ``id`` is its
    place in the queue (a redelivered dead letter gets a new one).
    """

    id: int
    customer_id: str
    seq: int
    at: datetime
    trigger: str
    source: State
    dest: State
    key: str | None
    details: Mapping[str, str]
    requested_at: datetime = attrs.field(
        default=attrs.Factory(lambda self: self.at, takes_self=True)
    )

    @property
    def transition(self) -> Transition:
        """The history entry this message carries."""
        return Transition(
            self.seq,
            self.at,
            self.trigger,
            self.source,
            self.dest,
            self.key,
            self.details,
            self.requested_at,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: Decimals as strings, times ISO 8601 with their offset."""
        return {"id": self.id, "customer_id": self.customer_id, **self.transition.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutboxMessage:
        """Back from ``to_dict()``, validated (``InvalidInput`` names the field)."""
        if not isinstance(data, Mapping):
            raise InvalidInput("message", "expected an object", code="record.invalid")
        rest = {k: v for k, v in data.items() if k not in ("id", "customer_id")}
        id_ = data.get("id")
        if type(id_) is not int or id_ < 1:
            raise InvalidInput(
                "message.id", f"expected a positive id, got {shown(id_)}", code="record.invalid"
            )
        customer = data.get("customer_id")
        if type(customer) is not str or not customer:
            raise InvalidInput(
                "message.customer_id", "expected the customer's id", code="record.invalid"
            )
        entry = Transition.from_dict(rest)
        return cls(
            id_,
            customer,
            entry.seq,
            entry.at,
            entry.trigger,
            entry.source,
            entry.dest,
            entry.key,
            entry.details,
            entry.requested_at,
        )


@attrs.frozen
class DeadLetter:
    """A message set aside after ``attempts`` failed deliveries; ``last_error`` says
    what the handler raised the last time."""

    message: OutboxMessage
    attempts: int
    last_error: str | None
    dead_at: datetime

    @property
    def id(self) -> int:
        return self.message.id


def message(row: Sequence[Any]) -> OutboxMessage:
    id_, customer_id, seq, at, requested_at, trigger, source, dest, key, details = row[:10]
    found = json.loads(details)
    if not isinstance(found, dict):
        raise TypeError(f"details: expected a JSON object, got {type(found).__name__}")
    return OutboxMessage(
        id=id_,
        customer_id=customer_id,
        seq=seq,
        at=at,
        trigger=trigger,
        source=State(source),
        dest=State(dest),
        key=key,
        details=found,
        requested_at=requested_at or at,
    )


@attrs.frozen
class Unreadable:
    """A row of the outbox that is no message (written by hand, say): it can never
    be handed out, so it is dead-lettered at once, and holds up no one else."""

    id: int
    customer_id: str
    reason: str


_UNREADABLE = (ValueError, TypeError, KeyError, OverflowError, RecursionError, sa.exc.DataError)
"""What reading a row that is no message raises: the driver's or SQLAlchemy's
conversion of a column (a timestamp that is no time, PostgreSQL's infinity),
and the decoding of its details."""


def _unreadable(error: BaseException) -> bool:
    """Whether ``error`` is a row that cannot be read (not the database failing):
    a conversion, or SQLite's text that is not UTF-8."""
    if isinstance(error, _UNREADABLE):
        return True
    cause = getattr(error, "orig", None)
    return isinstance(error, sa.exc.OperationalError) and "could not decode" in str(cause).lower()


def _why(error: BaseException) -> str:
    return f"unreadable: {type(error).__name__}: {error}"[:MAX_ERROR]


def fetch(
    connection: Connection, rows: Any, ids: Any, one: Any, params: dict[str, Any]
) -> tuple[list[OutboxMessage], list[Unreadable], list[Sequence[Any]]]:
    """The messages of the statement ``rows``, the rows that are none (each with
    why), and the rows themselves. Should one row fail to be read, the rows ``ids``
    names are read again one by one (``one``), so that a row that is no message
    holds up no one else."""
    try:
        found: list[Sequence[Any]] = list(connection.execute(rows, params).all())
    except Exception as error:
        if not _unreadable(error):
            raise
        found, unreadable = [], []
        for id_, customer_id in connection.execute(ids, params).all():
            try:
                found.append(connection.execute(one, {"id": id_}).one())
            except Exception as failure:
                if not _unreadable(failure):
                    raise
                unreadable.append(Unreadable(id_, customer_id, _why(failure)))
        messages, more = read(found)
        return messages, unreadable + more, found
    messages, unreadable = read(found)
    return messages, unreadable, found


def read(rows: Sequence[Sequence[Any]]) -> tuple[list[OutboxMessage], list[Unreadable]]:
    """The messages of ``rows``, and the rows that are none, each with why."""
    messages, unreadable = [], []
    for row in rows:
        try:
            messages.append(message(row))
        except Exception as error:  # whatever a row holds, it is named, not raised
            unreadable.append(Unreadable(row[0], row[1], _why(error)))
    return messages, unreadable


@attrs.define
class Claim:
    """Messages leased to one drain, in queue order."""

    token: str
    messages: list[OutboxMessage]
    lease_ends: float  # time.monotonic() by which the hand-out must stop
    unreadable: list[Unreadable] = attrs.Factory(list)

    @property
    def first(self) -> int | None:
        """The lowest id claimed, readable or not."""
        ids = [m.id for m in self.messages] + [row.id for row in self.unreadable]
        return min(ids, default=None)


def claim(
    connection: Connection,
    now: datetime,
    limit: int,
    low: int,
    token: str,
    lease: timedelta = LEASE,
) -> Claim:
    """Lease up to ``limit`` messages that may be handed out now (step 1), under
    ``token`` (``new_token()``; the caller keeps it to give them back)."""
    started = time.monotonic()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(sql.plain_index_scans)
    params = {"now": now, "low": low, "scan": limit, "until": now + lease, "token": token}
    messages, unreadable, _ = fetch(connection, sql.claim, sql.claimed_ids, sql.one_message, params)
    messages.sort(key=lambda m: m.id)
    return Claim(token, messages, started + lease.total_seconds() * 0.8, unreadable)


def new_token() -> str:
    return uuid.uuid4().hex


def abandon(connection: Connection, token: str) -> None:
    """Give back whatever a claim under ``token`` leased: it was interrupted, and
    may have committed all the same."""
    connection.execute(sql.abandoned, {"token": token})


def set_aside_failed(error: BaseException) -> None:
    log.warning(
        "outbox: an interrupted claim could not be given back (its lease ends it within %s): %r",
        LEASE,
        error,
    )


@attrs.define
class Outcome:
    """What a hand-out did, to be settled in one short transaction."""

    delivered: list[int] = attrs.Factory(list)
    failed: list[tuple[OutboxMessage, str]] = attrs.Factory(list)
    unreached: list[int] = attrs.Factory(list)
    blocked: set[str] = attrs.Factory(set)

    def due(self, batch: Claim) -> Iterator[OutboxMessage]:
        """The messages to hand out, in order: a customer whose message failed is
        held back for the rest of the batch, and the hand-out stops before the
        lease runs out (another drainer may take over then). A customer with an
        unreadable row is held back too: its messages come after that row is
        dead-lettered, in the next batch."""
        self.blocked.update(row.customer_id for row in batch.unreadable)
        for index, item in enumerate(batch.messages):
            if item.customer_id in self.blocked:
                self.unreached.append(item.id)
                continue
            if time.monotonic() > batch.lease_ends:
                self.unreached.extend(m.id for m in batch.messages[index:])
                return
            yield item

    def fail(self, item: OutboxMessage, error: Exception) -> None:
        log.warning(
            "outbox: handler failed on message %s (customer %r, seq %s): %r",
            item.id,
            item.customer_id,
            item.seq,
            error,
        )
        self.failed.append((item, f"{type(error).__name__}: {error}"[:MAX_ERROR]))
        self.blocked.add(item.customer_id)

    def close(self, batch: Claim) -> None:
        """Count every message the hand-out did not reach (it stopped early)."""
        done = {*self.delivered, *self.unreached, *(m.id for m, _ in self.failed)}
        self.unreached.extend(m.id for m in batch.messages if m.id not in done)


def hand_out(batch: Claim, handler: Callable[[OutboxMessage], object], outcome: Outcome) -> None:
    """Run ``handler`` on each claimed message, outside any transaction (step 2).

    ``outcome`` is filled as it goes, so what was handed out before an
    interruption (KeyboardInterrupt, SystemExit) is still settled."""
    with telemetry.batch("lifecycle.drain.batch", messages=len(batch.messages)) as found:
        for item in outcome.due(batch):
            try:
                handler(item)
            except Exception as error:
                outcome.fail(item, error)
            else:
                outcome.delivered.append(item.id)
        found.update(delivered=len(outcome.delivered), failed=len(outcome.failed))


async def hand_out_async(
    batch: Claim, handler: Callable[[OutboxMessage], object], outcome: Outcome
) -> None:
    """``hand_out`` for an asynchronous store: the handler may be a coroutine function."""
    with telemetry.batch("lifecycle.drain.batch", messages=len(batch.messages)) as found:
        for item in outcome.due(batch):
            try:
                result = handler(item)
                if inspect.isawaitable(result):
                    await result
            except Exception as error:
                outcome.fail(item, error)
            else:
                outcome.delivered.append(item.id)
        found.update(delivered=len(outcome.delivered), failed=len(outcome.failed))


def settle(
    connection: Connection,
    batch: Claim,
    outcome: Outcome,
    *,
    now: datetime,
    delivered_at: datetime,
    max_attempts: int,
) -> list[OutboxMessage]:
    """Mark delivered (at ``delivered_at``, the store's clock), count failures and
    release the rest (step 3); return the messages dead-lettered just now.
    ``now`` is the wall clock leases and retries are timed by."""
    token = batch.token
    if outcome.delivered:
        handed = set(outcome.delivered)
        for item in batch.messages:
            if item.id in handed:
                telemetry.delivered(item.at, delivered_at)
        kept = [
            *outcome.unreached,
            *(item.id for item, _ in outcome.failed),
            *(row.id for row in batch.unreadable),
        ]
        connection.execute(
            sql.delivered,
            {
                "first": min(outcome.delivered),
                "last": max(outcome.delivered),
                "kept": kept,
                "token": token,
                "now": delivered_at,
            },
        )
    if outcome.unreached:
        connection.execute(sql.released, {"ids": outcome.unreached, "token": token})
    for row in batch.unreadable:
        connection.execute(
            sql.failed,
            {
                "message_id": row.id,
                "token": token,
                "error": row.reason,
                "retry_at": now,
                "max_attempts": 0,  # dead at once: no retry reads it better
                "now": now,
            },
        )
        log.error("outbox: message %s (customer %r) dead: %s", row.id, row.customer_id, row.reason)
    dead: list[OutboxMessage] = []
    for item, error in outcome.failed:
        attempts = connection.execute(sql.attempts_of, {"message_id": item.id}).scalar() or 0
        wait = min(RETRY_AFTER[0] * 2**attempts, RETRY_AFTER[1])
        connection.execute(
            sql.failed,
            {
                "message_id": item.id,
                "token": token,
                "error": error,
                "retry_at": now + wait,
                "max_attempts": max_attempts,
                "now": now,
            },
        )
        if attempts + 1 >= max_attempts:
            dead.append(item)
            log.error(
                "outbox: message %s (customer %r, seq %s) dead-lettered after %s attempts",
                item.id,
                item.customer_id,
                item.seq,
                attempts + 1,
            )
    return dead


def dead_letters(connection: Connection) -> list[DeadLetter]:
    """The dead letters that are messages; an unreadable row is logged by id (it
    can still be redelivered, or deleted, by that id)."""
    letters, unreadable, rows = fetch(
        connection, sql.dead.order_by(sql.Q.id), sql.dead_ids, sql.one_dead, {}
    )
    for row in unreadable:
        log.error("outbox: dead letter %s (customer %r) is %s", row.id, row.customer_id, row.reason)
    extra = {row[0]: row[10:13] for row in rows}
    return [DeadLetter(letter, *extra[letter.id]) for letter in letters]


def redeliver(connection: Connection, ids: Sequence[int]) -> list[int]:
    """Put dead letters back at the end of the queue (new ids); return the new ids."""
    dead = list(connection.execute(sql.dead_ids_locked, {"ids": list(ids)}).scalars())
    fresh = []
    for id_ in dead:
        connection.execute(sql.set_aside, {"message_id": id_})
        fresh.append(connection.execute(sql.copy_message, {"message_id": id_}).scalar_one())
    if dead:
        connection.execute(sql.delete_messages, {"ids": dead})
    return fresh


def prune(connection: Connection, cut: datetime, batch: int) -> int:
    """Delete up to ``batch`` messages delivered at or before ``cut``."""
    ids = connection.execute(sql.expired_messages, {"cut": cut, "batch": batch}).scalars().all()
    if ids:
        connection.execute(sql.delete_messages, {"ids": list(ids)})
    return len(ids)
