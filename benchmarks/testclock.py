"""TestClock.advance beside the sweep and drain it runs, called directly.

    python benchmarks/testclock.py [--quick]

1,000 customers on a SQLite file (trials and periods of one to twelve months)
are moved one year: once by ``TestClock.advance``, once by calling
``sweep`` and ``drain_outbox`` directly on an identical copy of the file. Medians
of interleaved rounds; target: TestClock within 1.5x of the direct calls. Also
reported: seconds per simulated customer-year.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from common import verdict

from lifecycle.store import SqlStore
from lifecycle.testing import ManualClock, TestClock
from lifecycle.testing.plugin import START


def build(path: Path, customers: int) -> None:
    store = SqlStore(f"sqlite:///{path}", clock=ManualClock(START))
    store.create_schema()
    for n in range(customers):
        with store.edit(f"c-{n}") as sub:
            if n % 3 == 0:
                sub.purchase_trial(order_id="o-1")
            else:
                sub.subscribe("basic", order_id="o-1", term_months=n % 12 + 1)
    while store.drain_outbox(lambda message: None, limit=1000):
        pass
    store.close()


def with_test_clock(path: Path) -> float:
    store = SqlStore(f"sqlite:///{path}", clock=ManualClock(START))
    clock = TestClock(store)
    began = time.perf_counter()
    clock.advance(timedelta(days=365))
    took = time.perf_counter() - began
    store.close()
    return took


def directly(path: Path) -> float:
    clock = ManualClock(START)
    store = SqlStore(f"sqlite:///{path}", clock=clock)
    began = time.perf_counter()
    now = clock.advance(timedelta(days=365))
    while store._sweep(now, grace=timedelta(0)).applied:
        pass
    while store.drain_outbox(lambda message: None, limit=1000):
        pass
    took = time.perf_counter() - began
    store.close()
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args(argv)
    customers, rounds = 1000, 3 if args.quick else 7
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as folder:
        template = Path(folder) / "template.db"
        build(template, customers)
        for n in range(rounds):
            for runner, sample in ((with_test_clock, ours), (directly, theirs)):
                copy = Path(folder) / f"round-{n}-{runner.__name__}.db"
                shutil.copy(template, copy)
                sample.append(runner(copy))
    mine, base = statistics.median(ours), statistics.median(theirs)
    print(f"{customers:,} customers moved one year on SQLite (medians of {rounds} rounds)")
    per = mine / customers * 1e3
    print(f"  TestClock.advance          {mine:7.3f} s  ({per:.2f} ms per customer-year)")
    print(f"  sweep + drain_outbox       {base:7.3f} s")
    print(f"  ratio                      {mine / base:7.2f}x")
    print(verdict("TestClock within 1.5x of the direct calls", mine / base <= 1.5))
    return 0 if mine / base <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
