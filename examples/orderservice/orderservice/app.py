"""The order service's HTTP API, on ``AsyncSqlStore`` (``async def`` routes).

Run it: ``LIFECYCLE_DB=sqlite+aiosqlite:///orders.db uvicorn orderservice.app:app``.
Notifications go out through ``lifecycle worker --handler orderservice.notify:send``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

import lifecycle as lc
from lifecycle.store import AsyncSqlStore

orders = sa.Table(
    "orders",
    sa.MetaData(),
    # NOTE: keys are the customer's own: "o-1" of one customer is not another's
    sa.Column("customer_id", sa.String(255), primary_key=True),
    sa.Column("operation", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("amount", sa.String(64), nullable=False),
)


class Trial(BaseModel):
    order_id: str


class Subscription(BaseModel):
    order_id: str
    edition: str
    term_months: int = 12


class Addon(BaseModel):
    order_id: str
    package: str


class Unsubscribe(BaseModel):
    request_id: str


class Usage(BaseModel):
    usage_id: str
    meter: str
    quantity: Decimal
    at: datetime | None = None  # the metered time; None: the store's clock


def create_app(store: AsyncSqlStore) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.create_schema()
        async with store.engine.begin() as connection:
            await connection.run_sync(orders.metadata.create_all)
        yield
        await store.close()

    app = FastAPI(title="orders", lifespan=lifespan)

    @app.exception_handler(lc.LifecycleError)
    async def problem(request: Request, error: lc.LifecycleError) -> JSONResponse:
        details = error.problem()
        # a retryable failure (the database, a lock held too long) may be retried
        # at once, with the same keys
        retry = {"Retry-After": "1"} if details.get("retryable") else None
        return JSONResponse(
            details, details["status"], headers=retry, media_type="application/problem+json"
        )

    async def purchase(customer_id: str, buy: Any) -> dict[str, Any]:
        """A purchase and its order row in one transaction; a retry writes no row."""
        async with store.translated("orders"), store.begin() as connection:
            async with store.edit(customer_id, connection=connection) as sub:
                receipt: lc.Receipt = await buy(sub)
            if not receipt.replayed:
                row = {"operation": receipt.operation, "key": receipt.key}
                await connection.execute(
                    orders.insert().values(
                        **row, customer_id=customer_id, amount=str(receipt.amount)
                    )
                )
        return receipt.to_dict()

    @app.post("/customers/{customer_id}/trial")
    async def trial(customer_id: str, body: Trial) -> dict[str, Any]:
        return await purchase(customer_id, lambda sub: sub.purchase_trial(body.order_id))

    @app.post("/customers/{customer_id}/subscription")
    async def subscribe(customer_id: str, body: Subscription) -> dict[str, Any]:
        return await purchase(
            customer_id, lambda sub: sub.subscribe(body.edition, body.order_id, body.term_months)
        )

    @app.post("/customers/{customer_id}/addons")
    async def addon(customer_id: str, body: Addon) -> dict[str, Any]:
        return await purchase(customer_id, lambda sub: sub.buy_addon(body.package, body.order_id))

    @app.post("/customers/{customer_id}/unsubscribe")
    async def unsubscribe(customer_id: str, body: Unsubscribe) -> dict[str, Any]:
        async with store.edit(customer_id, create=False) as sub:
            receipt = await sub.unsubscribe(body.request_id)
        return receipt.to_dict()

    @app.post("/customers/{customer_id}/usage")
    async def usage(customer_id: str, body: Usage) -> dict[str, Any]:
        async with store.edit(customer_id, create=False) as sub:
            settled = await sub.record_usage(body.meter, body.quantity, body.usage_id, body.at)
        return settled.to_dict()

    @app.get("/customers/{customer_id}")
    async def status(customer_id: str) -> dict[str, Any]:
        sub = await store.load(customer_id)
        if sub is None:
            raise lc.store.UnknownCustomer(customer_id)
        return await sub.status()

    @app.get("/customers/{customer_id}/authorize/{feature}")
    async def authorize(customer_id: str, feature: str) -> dict[str, Any]:
        sub = await store.load(customer_id)
        if sub is None:
            raise lc.store.UnknownCustomer(customer_id)
        return (await sub.authorize(feature)).to_dict()

    return app


def __getattr__(name: str) -> FastAPI:
    """``orderservice.app:app``, made when uvicorn asks for it, on ``LIFECYCLE_DB``."""
    if name != "app":
        raise AttributeError(name)
    url = os.environ.get("LIFECYCLE_DB", "sqlite+aiosqlite:///orders.db")
    return create_app(AsyncSqlStore(url))
