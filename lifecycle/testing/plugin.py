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
from typing import Any
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


_ASYNC_DRIVERS = frozenset(("postgresql+psycopg_async", "postgresql+asyncpg"))


def server_url(given: str) -> Any:
    """The PostgreSQL server ``--lifecycle-db`` names, for ``SqlStore``: an async
    driver's URL (an order service's own) becomes psycopg's; anything else that is
    not PostgreSQL is a usage error naming what to give."""
    import sqlalchemy as sa  # NOTE: here, not at the top: pytest loads this plugin always

    try:
        url = sa.make_url(given)
    except sa.exc.ArgumentError as error:
        raise pytest.UsageError(f"--lifecycle-db: {error}") from None
    if url.get_backend_name() != "postgresql":
        raise pytest.UsageError(
            f"--lifecycle-db: {url.get_backend_name()} is not PostgreSQL; give a server "
            "such as postgresql+psycopg://user@host/postgres (SQLite is the default: "
            "a file per test)"
        )
    if url.drivername in _ASYNC_DRIVERS:
        url = url.set(drivername="postgresql+psycopg")
    return url


def pytest_configure(config: pytest.Config) -> None:
    given = config.getoption("--lifecycle-db", default=None)
    if given is not None:
        server_url(given)  # a usage error before any test runs


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

    server = server_url(given)
    name = f"lifecycle_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.SQLAlchemyError as error:
        admin.dispose()
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise pytest.UsageError(
            f"--lifecycle-db: cannot create a test database on "
            f"{server.render_as_string(hide_password=True)}: {reason}"
        ) from None
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
