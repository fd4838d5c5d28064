"""The pytest plugin: fixtures for an order service's own time-travel tests.

Registered with the ``pytest11`` entry point (``lifecycle``), so installing the
library is enough; ``-p lifecycle.testing`` loads it where plugins are not
auto-loaded. Options: ``--lifecycle-db URL`` (a PostgreSQL server: a fresh
database is created for the run and dropped after it; default: a SQLite file
per test) and ``--lifecycle-catalog PATH``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from lifecycle.catalog import AnyCatalog, default_catalog, load_catalog
from lifecycle.testing.clock import ManualClock
from lifecycle.testing.testclock import TestClock

START = datetime(2026, 1, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
"""Where ``lifecycle_clock`` starts: 1 January 2026, 09:00 in Shanghai."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lifecycle", "lifecycle: time-travel tests of an order service")
    group.addoption(
        "--lifecycle-db",
        metavar="URL",
        default=None,
        help="run lifecycle_store on this PostgreSQL server (a database is created "
        "for the run and dropped after it); default: a SQLite file per test",
    )
    group.addoption(
        "--lifecycle-catalog",
        metavar="PATH",
        default=None,
        help="the catalog (TOML file or directory) lifecycle_catalog loads",
    )


@pytest.fixture
def lifecycle_clock() -> ManualClock:
    """A ManualClock standing at 1 January 2026, 09:00 Shanghai, until moved."""
    return ManualClock(START)


@pytest.fixture
def lifecycle_catalog(request: pytest.FixtureRequest) -> AnyCatalog:
    """The default catalog, or the one named by --lifecycle-catalog."""
    path = request.config.getoption("--lifecycle-catalog")
    return default_catalog() if path is None else load_catalog(path)


@pytest.fixture(scope="session")
def _lifecycle_server(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The database --lifecycle-db names, created for the run, dropped after it."""
    given = request.config.getoption("--lifecycle-db")
    if given is None:
        yield None
        return
    import sqlalchemy as sa

    server = sa.make_url(given)
    name = f"lifecycle_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def lifecycle_store(
    _lifecycle_server: str | None,
    tmp_path: Path,
    lifecycle_clock: ManualClock,
    lifecycle_catalog: AnyCatalog,
) -> Iterator[object]:
    """A SqlStore on fresh tables, reading lifecycle_clock."""
    from lifecycle.store import SqlStore
    from lifecycle.store.schema import metadata

    if _lifecycle_server is None:
        url = f"sqlite:///{tmp_path / 'lifecycle.db'}"
    else:
        import sqlalchemy as sa

        url = _lifecycle_server
        engine = sa.create_engine(url)
        metadata.drop_all(engine)
        engine.dispose()
    store = SqlStore(url, catalog=lifecycle_catalog, clock=lifecycle_clock)
    store.create_schema()
    yield store
    store.close()


@pytest.fixture
def lifecycle_test_clock(lifecycle_store: object) -> TestClock:
    """A TestClock over lifecycle_store: advance() moves the whole store in time."""
    from lifecycle.store import SqlStore

    assert isinstance(lifecycle_store, SqlStore)
    return TestClock(lifecycle_store)
