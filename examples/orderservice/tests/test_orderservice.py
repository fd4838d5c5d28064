"""The order service, driven over HTTP, moved through time by the lifecycle plugin."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from orderservice.app import create_app, orders

from lifecycle.store import AsyncSqlStore, SqlStore
from lifecycle.testing import TestClock


@pytest.fixture
def call(lifecycle_store: SqlStore, lifecycle_clock: Any) -> Callable[..., Any]:
    """call(method, path, json) -> (status, body): the app on the plugin's database
    and clock, run on an event loop of its own."""
    url = lifecycle_store.url.set(drivername="sqlite+aiosqlite")
    app = create_app(AsyncSqlStore(url, clock=lifecycle_clock))
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://orders")

    lifespan = app.router.lifespan_context(app)
    loop.run_until_complete(lifespan.__aenter__())

    def call(method: str, path: str, json: Any = None) -> tuple[int, Any]:
        response = loop.run_until_complete(client.request(method, path, json=json))
        return response.status_code, response.json()

    yield call
    loop.run_until_complete(client.aclose())
    loop.run_until_complete(lifespan.__aexit__(None, None, None))
    loop.close()


def test_a_trial_used_and_ended(call: Callable[..., Any], lifecycle_test_clock: TestClock) -> None:
    """A trial, some usage, a month later its end delivered as a notification."""
    assert 200 == call("POST", "/customers/c-1/trial", {"order_id": "o-1"})[0]
    status, settled = call(
        "POST",
        "/customers/c-1/usage",
        {"usage_id": "u-1", "meter": "media_processing", "quantity": "40"},
    )
    assert (200, "40", "trial") == (status, settled["quota"], settled["state"])
    delivered = lifecycle_test_clock.advance(timedelta(days=31))
    assert ["purchase_trial", "trial_ended"] == [m.trigger for m in delivered]
    assert "trial-exhausted" == call("GET", "/customers/c-1")[1]["state"]


def test_a_retried_order_writes_one_row(
    call: Callable[..., Any], lifecycle_store: SqlStore
) -> None:
    """The same order twice: the second receipt is a replay, and one orders row."""
    body = {"order_id": "o-7", "edition": "basic", "term_months": 1}
    first = call("POST", "/customers/c-2/subscription", body)[1]
    again = call("POST", "/customers/c-2/subscription", body)[1]
    assert (False, True, first["amount"]) == (first["replayed"], again["replayed"], again["amount"])
    with lifecycle_store.engine.connect() as connection:
        rows = connection.execute(sa.select(orders.c.key)).scalars().all()
    assert ["o-7"] == rows


def test_errors_are_problem_details(call: Callable[..., Any]) -> None:
    """A refusal is 409 with its rule and FAQ question; an unknown customer 404; bad
    input 400 naming the field."""
    call("POST", "/customers/c-3/trial", {"order_id": "o-1"})
    status, problem = call(
        "POST", "/customers/c-3/addons", {"order_id": "o-2", "package": "boost-500"}
    )
    assert (409, "addon.enterprise_only", "Q1") == (status, problem["code"], problem["faq"])
    assert problem["advice"].startswith("Subscribe to an Enterprise Edition")
    status, problem = call("GET", "/customers/nobody")
    assert (404, "store.unknown_customer") == (status, problem["code"])
    status, problem = call(
        "POST",
        "/customers/c-3/usage",
        {"usage_id": "u\u0000", "meter": "media_processing", "quantity": "1"},
    )
    assert (400, "usage_id") == (status, problem["field"])


def test_a_period_ends_and_usage_goes_pay_as_you_go(
    call: Callable[..., Any], lifecycle_test_clock: TestClock
) -> None:
    """Quota used up, the rest billed pay-as-you-go; the period's end delivered."""
    call(
        "POST",
        "/customers/c-4/subscription",
        {"order_id": "o-1", "edition": "basic", "term_months": 1},
    )
    settled = call(
        "POST",
        "/customers/c-4/usage",
        {"usage_id": "u-1", "meter": "media_processing", "quantity": "2010"},
    )[1]
    assert ("10", "5.00", "quota-exhausted-payg") == (
        settled["payg"],
        settled["amount"],
        settled["state"],
    )
    delivered = lifecycle_test_clock.advance(timedelta(days=32))
    assert "period_ended" == delivered[-1].trigger
    assert {"allowed": False, "billing": "denied", "rule": "service.unavailable"} == call(
        "GET", "/customers/c-4/authorize/media_processing"
    )[1]


def test_a_customer_locked_too_long_is_a_503_to_retry(
    lifecycle_store: SqlStore, lifecycle_clock: Any
) -> None:
    """Another writer holds the database past the store's lock timeout: the answer
    is a problem (store.lock_timeout, retryable) with Retry-After, and the same
    request once the lock is free succeeds."""
    url = lifecycle_store.url.set(drivername="sqlite+aiosqlite")
    app = create_app(AsyncSqlStore(url, clock=lifecycle_clock, lock_timeout=timedelta(seconds=0.2)))

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://orders") as client,
        ):
            body = {"order_id": "o-9"}
            with lifecycle_store.engine.connect() as holder:
                holder.begin()  # BEGIN IMMEDIATE: the write lock, held
                refused = await client.post("/customers/c-9/trial", json=body)
                holder.rollback()
            return [refused, await client.post("/customers/c-9/trial", json=body)]

    refused, accepted = asyncio.run(scenario())
    assert (503, "store.lock_timeout", True) == (
        refused.status_code,
        refused.json()["code"],
        refused.json()["retryable"],
    )
    assert "1" == refused.headers["retry-after"]
    assert 200 == accepted.status_code
    assert "retry-after" not in accepted.headers
