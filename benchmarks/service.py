"""The example order service under load: async routes on AsyncSqlStore beside
sync routes on SqlStore, on SQLite and PostgreSQL, in the same run.

    python benchmarks/service.py [--quick]

Each round starts the service (examples/orderservice) in a uvicorn process on
loopback, gives 20 customers an Enterprise subscription, and runs 8 client
threads of 200 requests each (usage, usage retried, add-ons, add-ons retried,
status reads). Reported: requests per second, p50 and p99 latency. After each
round the totals are checked exactly: every retry answered with its first
result, every unit of usage settled once, one orders row per order. Targets:
async at least as fast as sync on each database; on SQLite, p99 under 4x p50.
The exit status is 1 when a target is missed or a total is wrong.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from common import PG_ADMIN, fresh_postgresql, verdict

ROOT = Path(__file__).parents[1]
CUSTOMERS = [f"c-{n:02d}" for n in range(20)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def service(variant: str, url: str) -> Iterator[str]:
    """The order service (async or sync routes) on ``url``, until the block ends."""
    port = free_port()
    module = "orderservice.app:app" if variant == "async" else "orderservice.sync_app:app"
    drivers = {"async": {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg_async"},
               "sync": {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}}  # fmt: skip
    parsed = sa.make_url(url)
    database = parsed.set(drivername=drivers[variant][parsed.get_backend_name()])
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", module, "--port", str(port), "--log-level", "warning"],
        env={
            **os.environ,
            "LIFECYCLE_DB": database.render_as_string(hide_password=False),
            "PYTHONPATH": str(ROOT / "examples" / "orderservice"),
        },
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/customers/none", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(30)


class Client(threading.Thread):
    """One client: ``count`` requests, a seeded mix; it remembers what it sent."""

    def __init__(self, base: str, number: int, count: int) -> None:
        super().__init__()
        self.base, self.number, self.count = base, number, count
        self.latencies: list[float] = []
        self.usages: dict[tuple[str, str], tuple[Decimal, dict[str, Any]]] = {}
        self.orders: dict[tuple[str, str], dict[str, Any]] = {}
        self.wrong: list[str] = []

    def run(self) -> None:
        rng = random.Random(self.number)
        with httpx.Client(base_url=self.base, timeout=60) as http:
            for n in range(self.count):
                customer = rng.choice(CUSTOMERS)
                roll = rng.random()
                began = time.perf_counter()
                if roll < 0.55 or (roll < 0.7 and not self.usages):
                    key = (customer, f"u-{self.number}-{n}")
                    quantity = Decimal(rng.randint(1, 400)) / 4
                    body = {
                        "usage_id": key[1],
                        "meter": "media_processing",
                        "quantity": str(quantity),
                    }
                    answer = http.post(f"/customers/{customer}/usage", json=body).json()
                    self.usages[key] = (quantity, answer)
                elif roll < 0.7:
                    key = rng.choice(list(self.usages))
                    quantity, first = self.usages[key]
                    body = {
                        "usage_id": key[1],
                        "meter": "media_processing",
                        "quantity": str(quantity),
                    }
                    again = http.post(f"/customers/{key[0]}/usage", json=body).json()
                    if {**again, "replayed": False} != first:
                        self.wrong.append(f"usage retry {key}: {again} != {first}")
                elif roll < 0.8 or (roll < 0.85 and not self.orders):
                    key = (customer, f"o-{self.number}-{n}")
                    body = {"order_id": key[1], "package": "boost-500"}
                    self.orders[key] = http.post(f"/customers/{customer}/addons", json=body).json()
                elif roll < 0.85:
                    key = rng.choice(list(self.orders))
                    body = {"order_id": key[1], "package": "boost-500"}
                    again = http.post(f"/customers/{key[0]}/addons", json=body).json()
                    if {**again, "replayed": False} != self.orders[key]:
                        self.wrong.append(f"order retry {key}")
                else:
                    http.get(f"/customers/{customer}")
                self.latencies.append(time.perf_counter() - began)


def round_(variant: str, url: str, count: int) -> dict[str, Any]:
    with service(variant, url) as base:
        with httpx.Client(base_url=base, timeout=60) as http:
            for customer in CUSTOMERS:
                body = {"order_id": "o-0", "edition": "professional", "term_months": 24}
                http.post(f"/customers/{customer}/subscription", json=body).raise_for_status()
        clients = [Client(base, n, count) for n in range(8)]
        began = time.perf_counter()
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        took = time.perf_counter() - began
    latencies = sorted(t for c in clients for t in c.latencies)
    wrong = [w for c in clients for w in c.wrong] + check(url, clients)
    return {
        "rps": len(latencies) / took,
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99)],
        "wrong": wrong,
    }


def check(url: str, clients: list[Client]) -> list[str]:
    """Every unit sent once is settled once; one orders row per order."""
    from lifecycle.store import SqlStore

    store = SqlStore(sa.make_url(url))
    wrong = []
    sent: dict[str, Decimal] = {}
    for client in clients:
        for (customer, _), (quantity, answer) in client.usages.items():
            parts = sum(Decimal(answer[k]) for k in ("quota", "addons", "payg", "denied"))
            if parts != quantity:
                wrong.append(f"{customer}: split {parts} != {quantity}")
            sent[customer] = sent.get(customer, Decimal(0)) + quantity
    with store.engine.connect() as connection:
        stored = dict(
            connection.exec_driver_sql(
                "SELECT customer_id, count(*) FROM lifecycle_usage_keys GROUP BY customer_id"
            ).all()
        )
        rows = connection.exec_driver_sql("SELECT count(*) FROM orders").scalar()
    keys = sum(len(c.usages) for c in clients)
    if sum(stored.values()) != keys:
        wrong.append(f"{sum(stored.values())} usage keys stored for {keys} sent")
    orders = sum(len(c.orders) for c in clients) + len(CUSTOMERS)
    if rows != orders:
        wrong.append(f"{rows} orders rows for {orders} orders")
    store.close()
    return wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 requests a client")
    parser.add_argument("--pg-admin", default=PG_ADMIN)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), action="append")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each (default 3)")
    args = parser.parse_args(argv)
    count = 50 if args.quick else 200
    ok = True
    with tempfile.TemporaryDirectory() as folder:
        for backend in args.backend or ("sqlite", "postgresql"):
            results: dict[str, list[dict[str, Any]]] = {"async": [], "sync": []}
            for round_number in range(args.rounds):
                for variant in ("async", "sync"):
                    if backend == "sqlite":
                        path = Path(folder) / f"{variant}-{round_number}.db"
                        results[variant].append(round_(variant, f"sqlite:///{path}", count))
                    else:
                        with fresh_postgresql(args.pg_admin) as url:
                            results[variant].append(round_(variant, url, count))
            print(
                f"{backend}: 8 clients x {count} requests on 20 customers "
                f"(medians of {args.rounds} rounds)"
            )
            figures = {}
            for variant, rounds in results.items():
                rps = statistics.median(r["rps"] for r in rounds)
                p50 = statistics.median(r["p50"] for r in rounds)
                p99 = statistics.median(r["p99"] for r in rounds)
                figures[variant] = (rps, p50, p99)
                wrong = [w for r in rounds for w in r["wrong"]]
                totals = "exact" if not wrong else "WRONG"
                print(
                    f"  {variant:5} routes: {rps:7.0f} requests/s   p50 {p50 * 1e3:6.1f} ms   "
                    f"p99 {p99 * 1e3:6.1f} ms   totals {totals}"
                )
                for line in wrong[:5]:
                    print(f"    {line}")
                ok &= not wrong
            faster = figures["async"][0] >= figures["sync"][0]
            print(verdict("async at least as fast as sync", faster))
            ok &= faster
            if backend == "sqlite":
                for variant, (_, p50, p99) in figures.items():
                    tight = p99 < 4 * p50
                    print(verdict(f"{variant} p99 under 4x p50 ({p99 / p50:.1f}x)", tight))
                    ok &= tight
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
