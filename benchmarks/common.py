"""What the benchmarks share: a fresh PostgreSQL database, interleaved medians."""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@contextmanager
def fresh_postgresql(admin_url: str = PG_ADMIN) -> Iterator[str]:
    """The URL of a database created for this run, dropped after it."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    database = f"lifecycle_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{database}"')
    try:
        yield sa.make_url(admin_url).set(database=database).render_as_string(False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.dispose()


def medians(runs: int, *jobs: Callable[[], float]) -> list[float]:
    """Each job's median over `runs` rounds, the jobs interleaved within a round so
    that a noisy neighbour slows them alike."""
    samples: list[list[float]] = [[] for _ in jobs]
    for _ in range(runs):
        for sample, job in zip(samples, jobs, strict=True):
            sample.append(job())
    return [statistics.median(sample) for sample in samples]


def verdict(label: str, ok: bool) -> str:
    return f"  target: {label}: {'ok' if ok else 'MISSED'}"
