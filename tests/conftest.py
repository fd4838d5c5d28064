"""Shared fixtures: a catalog, a settable clock, Shanghai times, and `unchanged`."""

from __future__ import annotations

import contextlib
import json
import os
import tomllib
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

import lifecycle as lc

pytest_plugins = ["pytester"]

SHANGHAI = ZoneInfo("Asia/Shanghai")

ADMIN_URL = os.environ.get(
    "LIFECYCLE_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
"""A PostgreSQL URL allowed to create and drop databases (scripts/test's server)."""

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def sh(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    """An aware datetime on the Shanghai wall clock (the default catalog's zone)."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


class Clock:
    """A clock a test can set and move; the subscription reads it at call time."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def catalog() -> lc.Catalog:
    return lc.default_catalog()


@pytest.fixture
def clock() -> Clock:
    return Clock(sh(2026, 3, 10))


@pytest.fixture
def sub(catalog: lc.Catalog, clock: Clock) -> lc.Subscription:
    return lc.Subscription.new("cust-42", catalog=catalog, clock=clock)


def snapshot(sub: lc.Subscription) -> str:
    return json.dumps(sub.to_record(), sort_keys=True)


@contextlib.contextmanager
def unchanged(sub: lc.Subscription) -> Iterator[None]:
    """Assert the block leaves `to_record()` byte-identical (raising or not)."""
    before = snapshot(sub)
    try:
        yield
    finally:
        assert before == snapshot(sub)


def refused(sub: lc.Subscription, call: Callable[[], object], code: str) -> lc.RuleViolation:
    """Run `call`, assert it is refused by rule `code` and changed nothing."""
    with unchanged(sub), pytest.raises(lc.RuleViolation) as info:
        call()
    assert code == info.value.code
    return info.value


def enterprise(
    sub: lc.Subscription, edition: str = "standard", at: datetime | None = None
) -> lc.Receipt:
    return sub.subscribe(edition, order_id=f"o-{edition}-{len(sub.history)}", at=at)


D = Decimal


def catalog_data() -> dict[str, Any]:
    """The shipped catalog as the dict ``Catalog.from_dict`` takes, to change a copy."""
    text = resources.files("lifecycle.catalog").joinpath("default_catalog.toml").read_text("utf-8")
    return tomllib.loads(text)


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
