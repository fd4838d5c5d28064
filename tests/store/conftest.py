"""Store fixtures: every store test runs on a SQLite file and on PostgreSQL.

PostgreSQL is the server on this machine. The run gets a database of its own:
`LIFECYCLE_TEST_PG_URL` if set (scripts/test and .ci/run create a fresh one),
else one created here and dropped at the end. Each test starts from empty
tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import lifecycle as lc
from lifecycle.store import SqlStore, metadata

ADMIN_URL = os.environ.get(
    "LIFECYCLE_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    given = os.environ.get("LIFECYCLE_TEST_PG_URL")
    if given:
        yield given
        return
    name = f"lifecycle_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lifecycle.db'}"
    pg = request.getfixturevalue("pg_url")
    engine = sa.create_engine(pg)
    with engine.begin() as connection:
        metadata.drop_all(connection)
        connection.exec_driver_sql("DROP TABLE IF EXISTS orders")
    engine.dispose()
    return str(pg)


@pytest.fixture
def store(url: str) -> Iterator[SqlStore]:
    store = SqlStore(url, catalog=lc.default_catalog())
    store.create_schema()
    yield store
    store.engine.dispose()


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[SqlStore]:
    """A store on PostgreSQL only, for faults only a server has."""
    engine = sa.create_engine(pg_url)
    with engine.begin() as connection:
        metadata.drop_all(connection)
    engine.dispose()
    store = SqlStore(pg_url, catalog=lc.default_catalog())
    store.create_schema()
    yield store
    store.engine.dispose()
