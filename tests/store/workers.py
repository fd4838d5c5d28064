"""Process entry points for the concurrency and fault tests (importable for spawn)."""

from __future__ import annotations

import os
import time
from decimal import Decimal
from typing import Any

from lifecycle.store import OutboxMessage, SqlStore


def record_twice(url: str, customer: str, worker: int, count: int) -> list[tuple[str, str, str]]:
    """Record `count` usages, each sent twice in separate edits (a retry)."""
    store = SqlStore(url)
    done = []
    for n in range(count):
        usage_id = f"w{worker}-u{n}"
        with store.edit(customer) as sub:
            first = sub.record_usage("media_processing", Decimal(2), usage_id)
        with store.edit(customer) as sub:
            again = sub.record_usage("media_processing", Decimal(2), usage_id)
        assert first == again, (first, again)
        done.append((usage_id, str(first.quota), str(first.payg)))
    store.engine.dispose()
    return done


def die_inside_edit(url: str, customer: str, ready: Any) -> None:
    """Record a usage inside an edit, say so, and wait to be killed."""
    store = SqlStore(url)
    with store.edit(customer) as sub:
        sub.record_usage("media_processing", Decimal(7), "doomed")
        ready.set()
        time.sleep(120)


def sweep_and_drain(url: str, now_iso: str, rounds: int) -> list[tuple[int, str, int, float]]:
    """Sweep and drain in a loop; return what this process was handed."""
    from datetime import datetime

    store = SqlStore(url)
    now = datetime.fromisoformat(now_iso)
    handed: list[tuple[int, str, int, float]] = []

    def handler(message: OutboxMessage) -> None:
        handed.append((message.id, message.customer_id, message.seq, time.monotonic()))

    idle = 0
    for _ in range(rounds):
        swept = store.sweep(now, batch=5)
        drained = store.drain_outbox(handler, limit=7)
        idle = idle + 1 if not (swept or drained) else 0
        if idle >= 3:
            break
    store.engine.dispose()
    return handed


def pid() -> int:
    return os.getpid()
