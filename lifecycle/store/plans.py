"""The store's multi-transaction work, written once for both stores.

A plan is a generator: it yields requests (a ``Transaction`` to run, a
``HandOut`` of messages to a handler, a ``Pause``) and is sent back each
result, or thrown the exception it raised. ``SqlStore`` drives a plan with
blocking calls, ``AsyncSqlStore`` with awaits; the loops, batches, retries
and what each transaction does are here, and only here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import attrs
from sqlalchemy.engine import Connection

from lifecycle.errors import StoreUnavailable
from lifecycle.store import core, migrate, outbox, sql, sweep
from lifecycle.store.sweep import SweepReport

T = TypeVar("T")


@attrs.frozen
class Transaction:
    """Run ``work(connection)`` in a transaction; its result is sent back."""

    work: Callable[[Connection], Any]
    write: bool = True


@attrs.frozen
class HandOut:
    """Hand a claimed batch to ``handler``, with no transaction open."""

    batch: outbox.Claim
    outcome: outbox.Outcome
    handler: Callable[[outbox.OutboxMessage], object]


@attrs.frozen
class Pause:
    seconds: float


@attrs.frozen
class Aside:
    """Run ``work(connection)`` in a write transaction of its own, without keeping
    the plan waiting where the store can help it: the async store runs it as a
    task of its own (its next drain, and ``close``, wait for it), the blocking
    store at once. Nothing is sent back; a failure is logged (see
    ``outbox.set_aside_failed``)."""

    work: Callable[[Connection], Any]


Request = Transaction | HandOut | Pause | Aside
Plan = Generator[Request, Any, T]

SETTLE_RETRIES = (0.05, 0.5, 2.0)
"""Seconds to wait before each retry of recording a hand-out."""

LOW_REFRESH = 10.0
"""Seconds between two looks for the oldest pending outbox message; in between,
claims start from the oldest message the last claim took, and do not walk
again the rows delivered before it."""


@attrs.define
class Low:
    """Where a store's claims start in the outbox (see ``LOW_REFRESH``)."""

    id: int = 0
    seen: float = 0.0

    def mark(self, connection: Connection) -> int:
        if time.monotonic() - self.seen > LOW_REFRESH:
            lowest = connection.execute(sql.lowest_pending).scalar()
            if lowest is not None:
                self.id = lowest
            self.seen = time.monotonic()
        return self.id


def sweep_plan(
    hot: sql.HotPath, codec: core.Codec, now: datetime, grace: timedelta, retention: timedelta
) -> Plan[SweepReport]:
    """Every due transition, every expired key, every message past its retention."""
    report = SweepReport()
    for job in (sweep.due, sweep.keys):
        after = sweep.START
        while True:
            page: sweep.Page = yield Transaction(
                partial(_page, job=job, hot=hot, codec=codec, now=now, cut=now - grace, after=after)
            )
            report += page.report
            after = page.after
            if not page.full:
                break
    deleted = batch = sweep.BATCH
    while deleted == batch:
        deleted = yield Transaction(partial(outbox.prune, cut=now - retention, batch=batch))
        report += SweepReport(messages_deleted=deleted)
    return report


def _page(
    connection: Connection,
    job: Callable[..., sweep.Page],
    hot: sql.HotPath,
    codec: core.Codec,
    now: datetime,
    cut: datetime,
    after: tuple[datetime, str],
) -> sweep.Page:
    return job(connection, hot, codec, now, cut, after)


def drain_plan(
    handler: Callable[[outbox.OutboxMessage], object],
    low: Low,
    limit: int,
    delivered_at: Callable[[], datetime],
    max_attempts: int,
) -> Plan[int]:
    """Claim a batch, hand it out, record what happened (tried again if that fails)."""
    token = outbox.new_token()
    try:
        claimed: outbox.Claim = yield Transaction(
            lambda connection: outbox.claim(
                connection, datetime.now(UTC), limit, low.mark(connection), token
            )
        )
    except BaseException as error:
        # NOTE: interrupted (the task cancelled) or its COMMIT's answer lost, the
        # claim may have committed, and its batch would wait out the lease with
        # nobody to hand it out: it is given back, aside, so that a cancelled
        # task is not kept waiting for the database. A claim that failed before
        # its COMMIT wrote nothing.
        if not isinstance(error, Exception) or core.at_commit(error):
            yield Aside(partial(outbox.abandon, token=token))
        raise
    first = claimed.first
    if first is None:
        return 0
    # NOTE: the next claim starts here, not at the rows delivered before (dead
    # until a vacuum): a message below it that this claim could not see (held by
    # another drainer, waiting after a failure, committed late) is found again by
    # the next look for the oldest (LOW_REFRESH).
    low.id = max(low.id, first)
    outcome = outbox.Outcome()
    interrupted: BaseException | None = None
    try:
        yield HandOut(claimed, outcome, handler)
    except BaseException as error:  # KeyboardInterrupt in a handler: settle, then raise
        interrupted = error
    outcome.close(claimed)
    settle = partial(
        _settle,
        batch=claimed,
        outcome=outcome,
        delivered_at=delivered_at(),
        max_attempts=max_attempts,
    )
    failure: Exception | None = None
    for wait in SETTLE_RETRIES:
        try:
            yield Transaction(settle)
        except core.DATABASE_ERRORS as error:
            failure = error
            yield Pause(wait)
            continue
        failure = None
        break
    if interrupted is not None:
        raise interrupted
    if failure is not None:
        raise StoreUnavailable(
            "drain_outbox",
            failure,
            consequence=(
                f"the handler took {len(outcome.delivered)} message(s) but their delivery "
                "could not be recorded: they are handed out again once their lease ends"
            ),
        ) from failure
    return len(outcome.delivered)


def _settle(
    connection: Connection,
    batch: outbox.Claim,
    outcome: outbox.Outcome,
    delivered_at: datetime,
    max_attempts: int,
) -> None:
    outbox.settle(
        connection,
        batch,
        outcome,
        now=datetime.now(UTC),
        delivered_at=delivered_at,
        max_attempts=max_attempts,
    )


def upgrade_plan(hot: sql.HotPath, codec: core.Codec) -> Plan[list[tuple[str, str]]]:
    """Convert version 1 records in batches; return the customers left as they were."""
    failures: list[tuple[str, str]] = []
    after: str | None = ""
    while after is not None:
        _, failed, after = yield Transaction(
            partial(migrate.convert, hot=hot, codec=codec, after=after, batch=sweep.BATCH)
        )
        failures.extend(failed)
    return failures
