"""The client's CPU per load and per edit, in instructions: repeatable where
seconds are not.

    python benchmarks/cpu.py [--loads N] [--edits N] [--pg-admin URL]
    PYTHONPATH=/path/to/another/checkout python benchmarks/cpu.py   # its code

Runs each measured process under ``valgrind --tool=callgrind``, and one doing
none of the work, and prints the difference per operation. First
``from_record`` of the record ``benchmarks/ops.py`` loads (a trial, an
Enterprise period and an add-on: three history entries). Then a process that
makes ``N`` edits (one usage each) through ``SqlStore``, and the baseline of
``benchmarks/store.py`` (a transaction updating one counter row on the
store's engine), on a SQLite file and on a fresh PostgreSQL database.
Instruction counts do not move with the machine's other work, so they compare
two versions of the code run hours apart; they count this process only (not
the PostgreSQL server, not the wait for the disk). On a machine whose cores
are shared, this is what decides how well many workers scale: the edit's CPU
beside the baseline's.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from common import PG_ADMIN, fresh_postgresql

import lifecycle as lc
from lifecycle.store import SqlStore

WARM_UP = 20


def work(kind: str, url: str, count: int) -> None:
    """In the measured process: set up, warm up, then ``count`` of ``kind``."""
    if kind == "load":
        from ops import lived

        catalog = lc.default_catalog()
        record = lived(catalog, usages=0).to_record()
        for _ in range(WARM_UP + count):
            lc.Subscription.from_record(record, catalog=catalog)
        return
    store = SqlStore(url)
    if kind == "edit":
        store.create_schema()
        customer = f"c-{count}"  # each measured process a customer of its own
        with store.edit(customer) as sub:
            sub.subscribe("professional", order_id="o-1", term_months=24)
        for n in range(WARM_UP + count):
            with store.edit(customer) as sub:
                sub.record_usage("media_processing", Decimal("0.01"), f"u-{n}")
    else:
        with store.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS bench_counters")
            connection.exec_driver_sql(
                "CREATE TABLE bench_counters (id INTEGER PRIMARY KEY, n INTEGER)"
            )
            connection.exec_driver_sql("INSERT INTO bench_counters VALUES (0, 0)")
        statement = sa.text("UPDATE bench_counters SET n = n + 1 WHERE id = :id")
        for _ in range(WARM_UP + count):
            with store.engine.begin() as connection:
                connection.execute(statement, {"id": 0})
    store.close()


def instructions(kind: str, url: str, count: int) -> int:
    """The instructions a process doing ``count`` of ``kind`` executes."""
    found = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         __file__, "--work", kind, url, str(count)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(re.findall(r"Collected : (\d+)", found.stderr)[-1])


def per_operation(kind: str, fresh: str, count: int) -> float:
    return (instructions(kind, fresh, count) - instructions(kind, fresh, 0)) / count


def measure(name: str, urls: list[str], count: int) -> list[str]:
    edit = per_operation("edit", urls[0], count)
    update = per_operation("update", urls[1], count)
    return [
        f"{name}",
        f"  an edit (one usage)          {edit / 1e6:6.3f} M instructions",
        f"  the baseline's transaction   {update / 1e6:6.3f} M instructions",
        f"  edit / baseline              {edit / update:6.2f}x",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=100, help="operations measured")
    parser.add_argument("--loads", type=int, default=2000, help="from_record calls measured")
    parser.add_argument("--pg-admin", default=PG_ADMIN, help="may create and drop a database")
    parser.add_argument("--work", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.work:
        kind, url, count = args.work
        work(kind, url, int(count))
        return 0
    if shutil.which("valgrind") is None:
        print("benchmarks/cpu.py needs valgrind (Debian: apt-get install valgrind)")
        return 1
    load = per_operation("load", "-", args.loads)
    print(f"from_record (3 history entries) {load / 1e3:8.1f} k instructions", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        files = [f"sqlite:///{Path(folder) / name}" for name in ("edit.db", "update.db")]
        print("\n".join(measure("SQLite (file, WAL)", files, args.edits)), flush=True)
    with fresh_postgresql(args.pg_admin) as url:
        print("\n".join(measure("PostgreSQL (psycopg 3)", [url, url], args.edits)), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
