"""The same API on ``SqlStore`` with blocking ``def`` routes (FastAPI runs them in
its thread pool): what ``benchmarks/service.py`` measures beside ``app.py``.

Run it: ``LIFECYCLE_DB=sqlite:///orders.db uvicorn orderservice.sync_app:app``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import lifecycle as lc
from lifecycle.store import SqlStore
from orderservice.app import Addon, Subscription, Trial, Unsubscribe, Usage, orders


def create_app(store: SqlStore) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store.create_schema()
        orders.metadata.create_all(store.engine)
        yield
        store.close()

    app = FastAPI(title="orders (blocking)", lifespan=lifespan)

    @app.exception_handler(lc.LifecycleError)
    async def problem(request: Request, error: lc.LifecycleError) -> JSONResponse:
        details = error.problem()
        # a retryable failure (the database, a lock held too long) may be retried
        # at once, with the same keys
        retry = {"Retry-After": "1"} if details.get("retryable") else None
        return JSONResponse(
            details, details["status"], headers=retry, media_type="application/problem+json"
        )

    def purchase(customer_id: str, buy: Callable[[lc.Subscription], lc.Receipt]) -> dict[str, Any]:
        with store.translated("orders"), store.begin() as connection:
            with store.edit(customer_id, connection=connection) as sub:
                receipt = buy(sub)
            if not receipt.replayed:
                row = {"operation": receipt.operation, "key": receipt.key}
                connection.execute(
                    orders.insert().values(
                        **row, customer_id=customer_id, amount=str(receipt.amount)
                    )
                )
        return receipt.to_dict()

    @app.post("/customers/{customer_id}/trial")
    def trial(customer_id: str, body: Trial) -> dict[str, Any]:
        return purchase(customer_id, lambda sub: sub.purchase_trial(body.order_id))

    @app.post("/customers/{customer_id}/subscription")
    def subscribe(customer_id: str, body: Subscription) -> dict[str, Any]:
        return purchase(
            customer_id, lambda sub: sub.subscribe(body.edition, body.order_id, body.term_months)
        )

    @app.post("/customers/{customer_id}/addons")
    def addon(customer_id: str, body: Addon) -> dict[str, Any]:
        return purchase(customer_id, lambda sub: sub.buy_addon(body.package, body.order_id))

    @app.post("/customers/{customer_id}/unsubscribe")
    def unsubscribe(customer_id: str, body: Unsubscribe) -> dict[str, Any]:
        with store.edit(customer_id, create=False) as sub:
            return sub.unsubscribe(body.request_id).to_dict()

    @app.post("/customers/{customer_id}/usage")
    def usage(customer_id: str, body: Usage) -> dict[str, Any]:
        with store.edit(customer_id, create=False) as sub:
            return sub.record_usage(body.meter, body.quantity, body.usage_id, body.at).to_dict()

    @app.get("/customers/{customer_id}")
    def status(customer_id: str) -> dict[str, Any]:
        sub = store.load(customer_id)
        if sub is None:
            raise lc.store.UnknownCustomer(customer_id)
        return sub.status()

    return app


def __getattr__(name: str) -> FastAPI:
    """``orderservice.sync_app:app``, made when uvicorn asks for it, on ``LIFECYCLE_DB``."""
    if name != "app":
        raise AttributeError(name)
    return create_app(SqlStore(os.environ.get("LIFECYCLE_DB", "sqlite:///orders.db")))
