"""A fleet's scheduled work, each beside a one-statement baseline in the same run.

    python benchmarks/fleet.py [--quick] [--sweep] [--drain] [--year] [--customers N]

--sweep  sweep() over 10,000 and 100,000 due customers on PostgreSQL, beside one
         UPDATE of the same rows' due_at (target: within 25x; cost per customer
         flat from 10,000 to 100,000); medians of three rounds.
--drain  drain_outbox() of 100,000 messages, beside one UPDATE ... SET
         delivered_at of the same rows (target: within 10x).
--year   a simulated year of hourly usage (one edit an hour per customer, a
         sweep and a drain a simulated day) on SQLite and on PostgreSQL with
         autovacuum off, on, and a VACUUM every simulated day (what autovacuum
         does on a real clock): bytes per customer and edit latency (p50, p99)
         each month (target, where something vacuums: sizes flat after the
         first two weeks, within 1.25x).

With no flag, all three. The rows are written straight into the tables (the
same records and rows an edit writes), so setting up 100,000 customers takes
seconds, not the hours 100,000 edits would. The exit status is 1 when a target
is missed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from common import PG_ADMIN, fresh_postgresql, verdict

import lifecycle as lc
from lifecycle.record import dump
from lifecycle.store import SqlStore
from lifecycle.store.providers import history_row
from lifecycle.store.schema import history, outbox, subscriptions

START = datetime(2026, 1, 1, tzinfo=UTC)


def due_customers(url: str, customers: int) -> SqlStore:
    """`customers` customers whose trial ended, written as an edit would write them."""
    store = SqlStore(url)
    store.create_schema()
    template = lc.Subscription.new("template", catalog=store.catalog)
    template.purchase_trial(order_id="o-1", at=START)
    entry = template.history[0]
    record = dump(template, history=False, usage=False)
    rows, entries = [], []
    for n in range(customers):
        customer = f"c-{n:06d}"
        record["customer_id"] = customer
        rows.append(
            {
                "customer_id": customer,
                "record": json.dumps(record, separators=(",", ":")),
                "state": "trial",
                "due_at": template.due_at,
                "mark": template.mark,
                "revision": 1,
                "keys_from": None,
                "seq": 1,
            }
        )
        entries.append(history_row(customer, entry))
    with store.engine.begin() as connection:
        for chunk in range(0, customers, 10_000):
            connection.execute(sa.insert(subscriptions), rows[chunk : chunk + 10_000])
            connection.execute(sa.insert(history), entries[chunk : chunk + 10_000])
    return store


def timed_update(store: SqlStore, statement: str) -> float:
    """Seconds one UPDATE of every row takes (rolled back: the rows stay for us)."""
    with store.engine.connect() as connection:
        transaction = connection.begin()
        began = time.perf_counter()
        connection.exec_driver_sql(statement)
        took = time.perf_counter() - began
        transaction.rollback()
    return took


def sweep_figures(url: str, customers: int) -> tuple[float, float]:
    """(sweep seconds per customer, baseline seconds per customer)."""
    store = due_customers(url, customers)
    with store.engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")
    baseline = timed_update(
        store, "UPDATE lifecycle_subscriptions SET due_at = NULL WHERE due_at IS NOT NULL"
    )
    began = time.perf_counter()
    report = store.sweep(START + timedelta(days=40))
    took = time.perf_counter() - began
    assert (customers, ()) == (report.applied, report.failed), report
    store.close()
    return took / customers, baseline / customers


MESSAGES_PER_CUSTOMER = 5
"""--drain: each customer has five messages, interleaved with everyone else's."""


def pending_messages(url: str, messages: int) -> SqlStore:
    """`messages` undelivered messages, five per customer, interleaved."""
    store = SqlStore(url)
    store.create_schema()
    sub = lc.Subscription.new("template")
    sub.subscribe("professional", order_id="o-0", at=START)
    entry = sub.history[0]
    rows = []
    customers = messages // MESSAGES_PER_CUSTOMER
    for n in range(messages):
        row = history_row(f"c-{n % customers:06d}", entry)
        row["seq"] = n // customers + 1
        rows.append(row)
    with store.engine.begin() as connection:
        for chunk in range(0, messages, 10_000):
            connection.execute(sa.insert(outbox), rows[chunk : chunk + 10_000])
        connection.exec_driver_sql("ANALYZE lifecycle_outbox")
    return store


def drain_figures(url: str, messages: int, limit: int) -> tuple[float, float]:
    """(messages per second drained, baseline per second)."""
    store = pending_messages(url, messages)
    baseline = timed_update(
        store, "UPDATE lifecycle_outbox SET delivered_at = now() WHERE delivered_at IS NULL"
    )
    handled = 0

    def handler(message: Any) -> None:
        nonlocal handled
        handled += 1

    began = time.perf_counter()
    while store.drain_outbox(handler, limit=limit):
        pass
    took = time.perf_counter() - began
    assert messages == handled, handled
    store.close()
    return messages / took, messages / baseline


@contextmanager
def autovacuum(url: str, on: bool) -> Iterator[None]:
    """PostgreSQL's autovacuum switched on (every second: a year passes in minutes
    here) or off for the length of the block, then put back as it was."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        before = connection.exec_driver_sql("SHOW autovacuum").scalar()
        naptime = connection.exec_driver_sql("SHOW autovacuum_naptime").scalar()
        connection.exec_driver_sql(f"ALTER SYSTEM SET autovacuum = {'on' if on else 'off'}")
        connection.exec_driver_sql("ALTER SYSTEM SET autovacuum_naptime = '1s'")
        connection.exec_driver_sql("SELECT pg_reload_conf()")
    try:
        yield
    finally:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"ALTER SYSTEM SET autovacuum = {before}")
            connection.exec_driver_sql(f"ALTER SYSTEM SET autovacuum_naptime = '{naptime}'")
            connection.exec_driver_sql("SELECT pg_reload_conf()")
        engine.dispose()


TABLES = (
    "lifecycle_subscriptions",
    "lifecycle_history",
    "lifecycle_usage_keys",
    "lifecycle_outbox",
)


def size(store: SqlStore, path: Path | None) -> int:
    """Bytes the store's tables take (the SQLite database file, without its write-ahead
    log, whose size the checkpoints bound; or the four PostgreSQL tables with their
    indexes and TOAST)."""
    if path is not None:
        return path.stat().st_size
    with store.engine.connect() as connection:
        return int(
            connection.exec_driver_sql(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                "WHERE c.relname IN ('lifecycle_subscriptions', 'lifecycle_history', "
                "'lifecycle_usage_keys', 'lifecycle_outbox')"
            ).scalar()
            or 0
        )


def year(
    url: str,
    customers: int,
    days: int,
    path: Path | None,
    *,
    vacuumed: bool = True,
    daily_vacuum: bool = False,
) -> list[str]:
    """Hourly usage for `days` days: a row per month of bytes per customer and edit
    latency. Returns the printed rows; the last is the verdict on flat sizes
    (not a target where nothing vacuums: dead rows stay until a VACUUM).
    ``daily_vacuum`` runs VACUUM on the four tables every simulated day: what
    autovacuum does on a real clock, which a year squeezed into minutes outruns."""
    now = [START]
    store = SqlStore(url, clock=lambda: now[0])
    store.create_schema()
    names = [f"y-{n}" for n in range(customers)]
    for name in names:
        with store.edit(name) as sub:
            sub.subscribe("basic", order_id="o-0", term_months=24, at=START)
    lines, week, latencies = [], None, []
    for day in range(days):
        for hour in range(24):
            now[0] = START + timedelta(days=day, hours=hour)
            for name in names:
                began = time.perf_counter()
                with store.edit(name) as sub:
                    if hour == 0 and day % 30 == 29:
                        sub.buy_addon("boost-2000", order_id=f"o-{day}")
                    sub.record_usage("media_processing", Decimal("3.5"), f"u-{day}-{hour}")
                latencies.append(time.perf_counter() - began)
        report = store.sweep(now[0])
        assert not report.failed, report.failed
        while store.drain_outbox(lambda message: None, limit=1000):
            pass
        if daily_vacuum:
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                for table in TABLES:
                    c.exec_driver_sql(f"VACUUM {table}")
        if day == 13:
            week = size(store, path) / customers
        if day % 30 == 29 or day == days - 1:
            ordered = sorted(latencies)
            p99 = ordered[int(len(ordered) * 0.99)]
            lines.append(
                f"    day {day + 1:3d}: {size(store, path) / customers / 1024:8.1f} KiB/customer"
                f"   edit p50 {statistics.median(ordered) * 1e3:5.2f} ms  p99 {p99 * 1e3:6.2f} ms"
            )
            latencies = []
    final = size(store, path) / customers
    store.close()
    assert week is not None
    flat = final <= week * 1.25
    lines.append(
        f"    after two weeks {week / 1024:.1f} KiB/customer, at the end {final / 1024:.1f} "
        f"({final / week:.2f}x)"
    )
    if vacuumed:
        lines.append(verdict("sizes flat after the first weeks (within 1.25x)", flat))
    else:
        lines.append("  (no target: without vacuum PostgreSQL keeps every dead row)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the work")
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--drain", action="store_true")
    parser.add_argument("--year", action="store_true")
    parser.add_argument("--customers", type=int, default=10, help="for --year")
    parser.add_argument("--pg-admin", default=PG_ADMIN)
    args = parser.parse_args(argv)
    every = not (args.sweep or args.drain or args.year)
    ok = True
    big = 10_000 if args.quick else 100_000
    if every or args.sweep:
        print("sweep (PostgreSQL): customers per second, beside one UPDATE of due_at")
        per = {}
        for customers in (big // 10, big):
            rounds = []
            for _ in range(3):
                with fresh_postgresql(args.pg_admin) as url:
                    rounds.append(sweep_figures(url, customers))
            ours = statistics.median(r[0] for r in rounds)
            base = statistics.median(r[1] for r in rounds)
            per[customers] = ours
            print(
                f"  {customers:7,d} due: {1 / ours:9,.0f}/s   baseline {1 / base:11,.0f}/s"
                f"   {ours / base:5.1f}x"
            )
            ok &= ours / base <= 25
        growth = per[big] / per[big // 10]
        print(f"  cost per customer, {big:,} against {big // 10:,}: {growth:.2f}x")
        print(verdict("within 25x of the baseline", ok))
        print(verdict("cost per customer flat (within 1.25x)", growth <= 1.25))
        ok &= growth <= 1.25
    if every or args.drain:
        print("drain_outbox (PostgreSQL): messages per second, beside one UPDATE")
        with fresh_postgresql(args.pg_admin) as url:
            ours, base = drain_figures(url, big, 1000)
        print(f"  {big:7,d} messages, limit=1000: {ours:9,.0f}/s   baseline {base:11,.0f}/s"
              f"   {base / ours:5.1f}x")  # fmt: skip
        print(verdict("within 10x of the baseline", base / ours <= 10))
        ok &= base / ours <= 10
    if every or args.year:
        days = 90 if args.quick else 365
        print(f"a simulated year of hourly usage, {args.customers} customers, {days} days")
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "year.db"
            print("  SQLite")
            lines = year(f"sqlite:///{path}", args.customers, days, path)
            print("\n".join(lines), flush=True)
            ok &= lines[-1].endswith("ok")
        modes = (
            ("autovacuum off", False, False),
            ("autovacuum on (every second)", True, False),
            ("a VACUUM every simulated day", False, True),
        )
        for label, on, daily in modes:
            print(f"  PostgreSQL, {label}")
            with fresh_postgresql(args.pg_admin) as url, autovacuum(args.pg_admin, on):
                lines = year(url, args.customers, days, None, vacuumed=daily, daily_vacuum=daily)
            print("\n".join(lines), flush=True)
            ok &= lines[-1].endswith("ok") or not daily
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
