"""Process entry points for the concurrency and fault tests (importable for spawn)."""

from __future__ import annotations

import os
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

from lifecycle.store import OutboxMessage
from tests.store.facade import make_store


def record_twice(
    url: str, customer: str, worker: int, count: int, kind: str = "sync"
) -> list[tuple[str, str, str]]:
    """Record `count` usages, each sent twice in separate edits (a retry)."""
    store = make_store(kind, url)
    done = []
    for n in range(count):
        usage_id = f"w{worker}-u{n}"
        with store.edit(customer) as sub:
            first = sub.record_usage("media_processing", Decimal(2), usage_id)
        with store.edit(customer) as sub:
            again = sub.record_usage("media_processing", Decimal(2), usage_id)
        assert first == again, (first, again)
        assert again.replayed
        done.append((usage_id, str(first.quota), str(first.payg)))
    store.close()
    return done


def die_inside_edit(url: str, customer: str, ready: Any, kind: str = "sync") -> None:
    """Record a usage inside an edit, say so, and wait to be killed."""
    store = make_store(kind, url)
    with store.edit(customer) as sub:
        sub.record_usage("media_processing", Decimal(7), "doomed")
        ready.set()
        time.sleep(120)


def drain_all(
    url: str, limit: int, start: Any, kind: str = "sync"
) -> list[tuple[str, int, float, float, int]]:
    """Drain until the outbox stays empty; return (customer, seq, began, ended, pid) for
    each message this process handled (monotonic times, comparable across processes)."""
    store = make_store(kind, url)
    handled: list[tuple[str, int, float, float, int]] = []

    def handler(message: OutboxMessage) -> None:
        began = time.monotonic()
        time.sleep(0.0005)  # a handler takes a moment: let the drainers overlap
        handled.append((message.customer_id, message.seq, began, time.monotonic(), os.getpid()))

    start.wait()
    idle = 0
    while idle < 5:
        idle = 0 if store.drain_outbox(handler, limit=limit) else idle + 1
        if idle:
            time.sleep(0.05)
    store.close()
    return handled


def sweep_until_done(url: str, now_iso: str, start: Any, kind: str = "sync") -> list[int]:
    """Sweep at `now` until a sweep applies nothing; return what each sweep applied."""
    store = make_store(kind, url)
    now = datetime.fromisoformat(now_iso)
    start.wait()
    applied = []
    while True:
        report = store.sweep(now)
        assert not report.failed, report.failed
        applied.append(report.applied)
        if not report.applied:
            break
    store.close()
    return applied


def create_schema(url: str, start: Any, kind: str = "sync") -> int:
    store = make_store(kind, url)
    start.wait()
    store.create_schema()
    store.close()
    return os.getpid()


def commit_on_a_full_disk(url: str, kind: str) -> dict[str, Any]:
    """Record a usage while no file may grow (a full disk, by RLIMIT_FSIZE): what the
    edit raised, what was kept, then the same usage again once the disk has room."""
    import resource
    import signal
    import sqlite3

    from lifecycle.errors import LifecycleError

    store = make_store(kind, url)
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as checkpoint:  # the WAL starts empty: a commit must grow it
        checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, EFBIG
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))
    outcome: dict[str, Any] = {}
    try:
        with store.edit("c") as sub:
            sub.record_usage("media_processing", Decimal(7), "u-1")
    except LifecycleError as error:
        outcome["raised"] = (type(error).__name__, error.code, str(error))
    except BaseException as error:
        outcome["raised"] = (type(error).__name__, None, str(error))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    kept = store.load("c")
    outcome["kept"] = str(kept.remaining_credits()) if kept is not None else None
    with store.edit("c") as sub:
        outcome["again_replayed"] = sub.record_usage("media_processing", Decimal(7), "u-1").replayed
    again = store.load("c")
    outcome["after"] = str(again.remaining_credits()) if again is not None else None
    store.close()
    return outcome
