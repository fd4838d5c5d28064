"""Store fixtures: every store test runs on a SQLite file and on PostgreSQL.

PostgreSQL is the server on this machine. The run gets a database of its own:
`LIFECYCLE_TEST_PG_URL` if set (scripts/test and .ci/run create a fresh one),
else one created here and dropped at the end. Each test starts from empty
tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import lifecycle as lc
from lifecycle.store import SqlStore
from tests.store.facade import make_store

TABLES = (
    "lifecycle_schema",
    "lifecycle_subscriptions",
    "lifecycle_history",
    "lifecycle_usage_keys",
    "lifecycle_outbox",
    "orders",
)


def empty_postgresql(url: str) -> str:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for table in TABLES:
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lifecycle.db'}"
    return empty_postgresql(str(request.getfixturevalue("pg_url")))


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    """Which store a test runs on: SqlStore, or AsyncSqlStore (behind AsyncFacade)."""
    return str(request.param)


@pytest.fixture
def stores(url: str, kind: str) -> Iterator[Callable[..., SqlStore]]:
    """Make stores of the test's kind on its database (another process's, say); all
    closed after."""
    made: list[Any] = []

    def make(**options: Any) -> SqlStore:
        options.setdefault("catalog", lc.default_catalog())
        store = make_store(kind, url, **options)
        made.append(store)
        return store  # type: ignore[no-any-return]

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(stores: Callable[..., SqlStore]) -> SqlStore:
    store = stores()
    store.create_schema()
    return store


@pytest.fixture
def sync_store(url: str) -> Iterator[SqlStore]:
    """A SqlStore, for what only it takes: a caller's blocking Connection."""
    store = SqlStore(url, catalog=lc.default_catalog())
    store.create_schema()
    yield store
    store.close()


@pytest.fixture
def pg_store(pg_url: str, kind: str) -> Iterator[SqlStore]:
    """A store of either kind on PostgreSQL only, for faults only a server has."""
    store = make_store(kind, empty_postgresql(pg_url), catalog=lc.default_catalog())
    store.create_schema()
    yield store
    store.close()


@pytest.fixture
def pg_sync_store(pg_url: str) -> Iterator[SqlStore]:
    store = SqlStore(empty_postgresql(pg_url), catalog=lc.default_catalog())
    store.create_schema()
    yield store
    store.close()


def count(store: SqlStore, table: str, where: str = "") -> int:
    with store.engine.connect() as connection:
        found = connection.execute(
            sa.text(f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else ""))
        ).scalar()
    return int(found or 0)


def row_of(store: SqlStore, customer_id: str) -> Any:
    with store.engine.connect() as connection:
        return (
            connection.execute(
                sa.text("SELECT * FROM lifecycle_subscriptions WHERE customer_id = :c"),
                {"c": customer_id},
            )
            .mappings()
            .first()
        )
