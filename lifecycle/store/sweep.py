"""The sweep: timed transitions for every customer due, and nothing kept past its time.

``sweep(now)`` works in batches, many customers per short transaction, in
three passes, each in keyset order so it never walks again what it passed:

1. **due**: every customer whose trial or period ended by ``now``, less the
   late-arrival allowance, gets that transition, recorded at its own instant;
2. **keys**: usage keys older than the idempotency window are deleted, for
   idle customers too: an idle customer's mark is moved on (an ``advance``)
   just far enough for them to be forgotten, so a retry of one is refused
   (``OutOfOrder``), never applied twice;
3. **outbox**: messages delivered longer ago than ``outbox_retention``.

A customer that cannot be swept (a corrupt record, a catalog that lost what
it bought) is reported in ``SweepReport.failed``, skipped by later sweeps for
a while that doubles each time (1 minute to 1 hour), and never stops the
others. On PostgreSQL, rows another sweeper holds are skipped, not waited for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
from sqlalchemy.engine import Connection

from lifecycle import telemetry
from lifecycle.errors import LifecycleError
from lifecycle.store import core, sql
from lifecycle.store.providers import FOREVER_AGO

BATCH = 1000
"""Customers (or messages) per transaction."""

PRUNE_EVERY = timedelta(hours=1)
"""A customer's expired usage keys are deleted once the oldest is this far past
the window: at most one prune per customer per hour."""

RETRY_AFTER = (timedelta(minutes=1), timedelta(hours=1))
"""A customer a sweep failed on is skipped for 1 minute, doubling per failure,
at most 1 hour."""


@attrs.frozen
class SweepFailure:
    """A customer a sweep could not process: the error's code and message."""

    customer_id: str
    code: str
    message: str


@attrs.frozen
class SweepReport:
    """What a sweep did: transitions ``applied``, customers ``failed``, usage keys
    and delivered outbox messages deleted."""

    applied: int = 0
    failed: tuple[SweepFailure, ...] = ()
    keys_deleted: int = 0
    messages_deleted: int = 0

    def __add__(self, other: SweepReport) -> SweepReport:
        return SweepReport(
            self.applied + other.applied,
            self.failed + other.failed,
            self.keys_deleted + other.keys_deleted,
            self.messages_deleted + other.messages_deleted,
        )


START: tuple[datetime, str] = (FOREVER_AGO, "")


@attrs.define
class Page:
    """One batch's report, and where the next batch starts."""

    report: SweepReport
    after: tuple[datetime, str]
    full: bool


def due(
    connection: Connection,
    hot: sql.HotPath,
    codec: core.Codec,
    now: datetime,
    cut: datetime,
    after: tuple[datetime, str],
    batch: int | None = None,
) -> Page:
    """Apply the timed transitions due by ``cut`` to one batch of customers."""
    with telemetry.batch("lifecycle.sweep.batch", job="due") as found:
        page = _due(connection, hot, codec, now, cut, after, batch or BATCH)
        found.update(applied=page.report.applied, failed=len(page.report.failed))
    return page


def _due(
    connection: Connection,
    hot: sql.HotPath,
    codec: core.Codec,
    now: datetime,
    cut: datetime,
    after: tuple[datetime, str],
    batch: int,
) -> Page:
    rows = connection.execute(
        sql.due,
        {"cut": cut, "now": now, "after_at": after[0], "after_id": after[1], "batch": batch},
    ).all()
    holds, failures, applied = [], [], 0
    for customer_id, record, revision, keys_from, seq, due_at in rows:
        try:
            one = core.held(connection, hot, codec, customer_id, record, revision, keys_from, seq)
            at = one.sub.due_at
            if at is not None and at <= cut:
                applied += len(one.sub.advance(at))
            elif at != due_at:
                one.rewrite = True  # the column disagrees with the record: write it again
        except core.DATABASE_ERRORS:
            raise
        except Exception as error:
            failures.append(_failure(customer_id, error))
            continue
        holds.append(one)
    core.write(connection, hot, codec, holds, remember=False)
    _postpone(connection, now, failures)
    last = (rows[-1][5], rows[-1][0]) if rows else after
    return Page(SweepReport(applied, tuple(failures)), last, len(rows) == batch)


def keys(
    connection: Connection,
    hot: sql.HotPath,
    codec: core.Codec,
    now: datetime,
    horizon: datetime,
    after: tuple[datetime, str],
    batch: int | None = None,
) -> Page:
    """Delete the usage keys of one batch of customers that are out of the window.

    ``horizon`` is how far the sweep may move an idle customer's mark: keys
    at or before ``horizon - window`` are forgotten and deleted.
    """
    with telemetry.batch("lifecycle.sweep.batch", job="keys") as found:
        page = _keys(connection, hot, codec, now, horizon, after, batch or BATCH)
        found.update(applied=page.report.applied, failed=len(page.report.failed))
    return page


def _keys(
    connection: Connection,
    hot: sql.HotPath,
    codec: core.Codec,
    now: datetime,
    horizon: datetime,
    after: tuple[datetime, str],
    batch: int,
) -> Page:
    window = codec.catalog.window
    rows = connection.execute(
        sql.stale_keys,
        {
            "cut": horizon - window - PRUNE_EVERY,
            "now": now,
            "after_at": after[0],
            "after_id": after[1],
            "batch": batch,
        },
    ).all()
    holds, failures, applied = [], [], 0
    deletions: list[dict[str, Any]] = []
    for customer_id, record, revision, keys_from, seq, mark in rows:
        if mark is None or mark < horizon:
            try:
                one = core.held(
                    connection, hot, codec, customer_id, record, revision, keys_from, seq
                )
                applied += len(one.sub.advance(horizon))
            except core.DATABASE_ERRORS:
                raise
            except Exception as error:
                failures.append(_failure(customer_id, error))
                continue
            holds.append(one)
            mark = horizon
        deletions.append(
            {"customer_id": customer_id, "keys_from": keys_from, "cutoff": mark - window}
        )
    core.write(connection, hot, codec, holds, remember=False)
    deleted = 0
    for deletion in deletions:
        deleted += max(connection.execute(sql.delete_keys, deletion).rowcount, 0)
    if deletions:
        customers = [d["customer_id"] for d in deletions]
        oldest = dict(connection.execute(sql.oldest_keys, {"customers": customers}).all())
        connection.execute(
            sql.set_keys_from,
            [{"customer": c, "keys_from": oldest.get(c)} for c in customers],
        )
    _postpone(connection, now, failures)
    last = (rows[-1][3], rows[-1][0]) if rows else after
    return Page(
        SweepReport(applied, tuple(failures), keys_deleted=deleted), last, len(rows) == batch
    )


def _failure(customer_id: str, error: Exception) -> SweepFailure:
    code = error.code if isinstance(error, LifecycleError) else "sweep.error"
    return SweepFailure(customer_id, code, str(error) or type(error).__name__)


def _postpone(connection: Connection, now: datetime, failures: Sequence[SweepFailure]) -> None:
    """Leave each failed customer alone for a while that doubles with each failure."""
    if not failures:
        return
    customers = [failure.customer_id for failure in failures]
    counts = dict(connection.execute(sql.failures_of, {"customers": customers}).all())
    connection.execute(
        sql.sweep_failed,
        [
            {
                "customer": failure.customer_id,
                "sweep_after": now + _wait(counts.get(failure.customer_id, 0)),
                "error": f"{failure.code}: {failure.message}"[:2000],
            }
            for failure in failures
        ],
    )


def _wait(failures: int) -> timedelta:
    longer: timedelta = RETRY_AFTER[0] * 2 ** min(failures, 16)
    return min(longer, RETRY_AFTER[1])


@attrs.frozen
class FailingCustomer:
    """A customer sweeps keep failing on: how often, when it is tried next, and the
    last error (``code: message``)."""

    customer_id: str
    failures: int
    retry_after: datetime | None
    error: str | None


def failing(connection: Connection) -> list[FailingCustomer]:
    return [FailingCustomer(*row) for row in connection.execute(sql.failing)]
