"""What only AsyncSqlStore has: awaited subscriptions, AsyncConnection, coroutine
handlers, many tasks of one event loop. (Every other guarantee is tested on it
by the shared suite, through tests/store/facade.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import lifecycle as lc
from lifecycle.store import AsyncSqlStore, OutboxMessage, SqlStore
from tests.conftest import sh
from tests.store.conftest import empty_postgresql
from tests.store.facade import async_url

D = Decimal


@pytest.fixture(params=["sqlite", "postgresql"])
def aurl(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'async.db'}"
    url = empty_postgresql(str(request.getfixturevalue("pg_url")))
    return async_url(url).render_as_string(hide_password=False)


def run(aurl: str, body: Callable[[AsyncSqlStore], Awaitable[Any]], **options: Any) -> Any:
    async def main() -> Any:
        store = AsyncSqlStore(aurl, **options)
        await store.create_schema()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def test_operations_and_reads_are_awaited(aurl: str) -> None:
    """An edit's subscription is awaited for operations and reads; a snapshot reads
    without touching the database unless a read of the past needs it."""

    async def body(store: AsyncSqlStore) -> None:
        async with store.edit("c") as sub:
            await sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
            first = await sub.record_usage("media_processing", D(5), "u-1", sh(2026, 3, 2))
            assert D(1995) == await sub.remaining_credits(sh(2026, 3, 2))
        async with store.edit("c") as sub:
            again = await sub.record_usage("media_processing", D(5), "u-1", sh(2026, 3, 2))
        assert (first, True) == (again, again.replayed)
        snapshot = await store.load("c")
        assert snapshot is not None
        assert lc.State.ENTERPRISE_ACTIVE == await snapshot.state_at(sh(2026, 3, 3))
        assert D(2000) == await snapshot.remaining_credits(sh(2026, 3, 1, 13))
        assert "1995" == (await snapshot.status(sh(2026, 3, 3)))["credits"]["total"]
        with pytest.raises(lc.store.ReadOnly):
            await snapshot.record_usage("media_processing", D(1), "u-2", sh(2026, 3, 3))
        assert ["subscribe"] == [t.trigger for t in await store.history("c")]

    run(aurl, body)


def test_a_coroutine_handler_is_awaited(aurl: str) -> None:
    """drain_outbox awaits a coroutine handler; one that raises holds back its customer
    only, as a blocking one would."""

    async def body(store: AsyncSqlStore) -> None:
        for customer in ("a", "b"):
            async with store.edit(customer) as sub:
                await sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
        seen: list[str] = []

        async def handler(message: OutboxMessage) -> None:
            await asyncio.sleep(0)
            if message.customer_id == "a":
                raise ConnectionError("down")
            seen.append(message.customer_id)

        assert 1 == await store.drain_outbox(handler)
        assert ["b"] == seen

    run(aurl, body)


def test_a_drain_cancelled_as_it_claims_gives_its_batch_back(aurl: str) -> None:
    """A drain cancelled while its claim runs (asyncio.timeout, a client gone): the
    claim may commit all the same, but its batch is given back, so the next drain
    hands every message out at once instead of after the 5-minute lease."""

    async def body(store: AsyncSqlStore) -> None:
        for customer in ("a", "b", "c"):
            async with store.edit(customer) as sub:
                await sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
        loop = asyncio.get_running_loop()
        seen: list[str] = []

        async def handler(message: OutboxMessage) -> None:
            seen.append(message.customer_id)

        drain = asyncio.create_task(store.drain_outbox(handler))

        def cancel_at_the_claim(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
            if statement.startswith("WITH candidates"):  # the claim
                loop.call_soon_threadsafe(drain.cancel)

        sa.event.listen(sa.engine.Engine, "before_cursor_execute", cancel_at_the_claim)
        try:
            with pytest.raises(asyncio.CancelledError):
                await drain
        finally:
            sa.event.remove(sa.engine.Engine, "before_cursor_execute", cancel_at_the_claim)
        assert [] == seen
        assert 3 == await store.drain_outbox(handler)
        assert ["a", "b", "c"] == seen

    run(aurl, body)


def test_many_tasks_on_one_customer_keep_every_unit(aurl: str) -> None:
    """Forty tasks of one event loop record usage on one customer at once, each twice:
    every unit is settled once, and credits plus pay-as-you-go add up exactly."""

    async def body(store: AsyncSqlStore) -> None:
        async with store.edit("hot") as sub:
            await sub.subscribe("basic", order_id="o-1")

        async def usage(n: int) -> lc.Settlement:
            async with store.edit("hot") as sub:
                first = await sub.record_usage("media_processing", D(60), f"u-{n}")
            async with store.edit("hot") as sub:
                again = await sub.record_usage("media_processing", D(60), f"u-{n}")
            assert (first, True) == (again, again.replayed)
            return first

        settled = await asyncio.gather(*(usage(n) for n in range(40)))
        assert (D(2000), D(400)) == (
            sum((s.quota for s in settled), D(0)),
            sum((s.payg for s in settled), D(0)),
        )

    run(aurl, body)


def test_a_nested_edit_in_a_task_is_refused(aurl: str) -> None:
    """Inside an edit, a nested edit of the same customer in the same task is refused
    at once."""

    async def body(store: AsyncSqlStore) -> None:
        async with store.edit("c") as sub:
            await sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
            with pytest.raises(lc.store.StoreMisuse) as info:
                async with store.edit("c"):
                    pass
            assert "store.nested_edit" == info.value.code

    run(aurl, body)


def test_a_task_started_inside_an_edit_may_edit_once_it_has_ended(aurl: str) -> None:
    """A task created inside an edit inherits the edit's context but is not nested in
    it: it waits its turn (here, until the edit has ended) instead of being refused
    as a nested edit. The edit's own task is still refused."""

    async def body(store: AsyncSqlStore) -> list[str]:
        async def later() -> lc.Settlement:
            await asyncio.sleep(0.05)
            async with store.edit("c") as sub:
                return await sub.record_usage("media_processing", D(1), "bg", sh(2026, 3, 2))

        async with store.edit("c") as sub:
            await sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
            background = asyncio.create_task(later())
            with pytest.raises(lc.store.StoreMisuse):
                async with store.edit("c"):
                    pass
        settled = await asyncio.wait_for(background, 10)
        assert (D(1), False) == (settled.quota, settled.replayed)
        return [t.trigger for t in await store.history("c")]

    assert ["subscribe"] == run(aurl, body)


def test_a_cancel_as_the_turn_is_granted_is_not_swallowed(tmp_path: Path) -> None:
    """A task cancelled just as its edit begins raises CancelledError, and an edit
    inside an expired timeout raises TimeoutError (on 3.11, wait_for returned the
    turn and swallowed both, so the caller believed the edit finished). Like a
    request timed out, a cancelled edit may or may not have committed: a retry
    with the same key settles each usage exactly once."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cancel.db'}"

    async def body(store: AsyncSqlStore) -> None:
        async with store.edit("c") as sub:
            await sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))

        async def usage(usage_id: str) -> None:
            async with store.edit("c") as sub:
                await sub.record_usage("media_processing", D(1), usage_id, sh(2026, 3, 2))

        task = asyncio.create_task(usage("u-1"))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0):
                await usage("u-2")
        await usage("u-1")
        await usage("u-2")
        snapshot = await store.load("c")
        assert snapshot is not None
        assert D(1998) == await snapshot.remaining_credits(sh(2026, 3, 2))

    run(url, body)


def test_a_blocking_connection_is_refused_and_left_to_its_owner(aurl: str) -> None:
    """edit(connection=<a blocking Connection>) is InvalidInput naming the connection,
    and the caller's own transaction is left as it was, still active."""
    blocking = sa.create_engine(
        aurl.replace("+aiosqlite", "").replace("+psycopg_async", "+psycopg")
    )

    async def body(store: AsyncSqlStore) -> None:
        with blocking.connect() as connection, connection.begin() as transaction:
            with pytest.raises(lc.InvalidInput) as info:
                async with store.edit("c", connection=connection):  # type: ignore[arg-type]
                    pass
            assert "connection" == info.value.field
            assert transaction.is_active

    run(aurl, body)
    blocking.dispose()


def test_a_connection_from_begin_reads_like_an_async_connection(aurl: str) -> None:
    """What an order service calls on store.begin()'s connection works on both
    databases; a commit inside it is store.no_transaction on both, and nothing of
    the edit is written."""

    async def body(store: AsyncSqlStore) -> None:
        async with store.begin() as connection:
            assert 1 == await connection.scalar(sa.text("SELECT 1"))
            assert [1, 2] == list(await connection.scalars(sa.text("SELECT 1 UNION ALL SELECT 2")))
            assert connection.in_transaction()

        async def commit_inside() -> None:
            async with store.begin() as connection, store.edit("c", connection=connection) as sub:
                await sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
                await connection.commit()

        with pytest.raises(lc.store.StoreMisuse) as info:
            await commit_inside()
        assert "store.no_transaction" == info.value.code
        snapshot = await store.load("c")  # PostgreSQL: a new customer's empty row committed
        assert snapshot is None or (None, None) == (snapshot.mark, snapshot.edition)

    run(aurl, body)


ORDERS = sa.Table(
    "orders",
    sa.MetaData(),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("amount", sa.String(32), nullable=False),
)


@asynccontextmanager
async def engine_begin(store: AsyncSqlStore) -> AsyncIterator[Any]:
    async with store.engine.connect() as connection, connection.begin():
        yield connection


@pytest.mark.parametrize("opened", [engine_begin, AsyncSqlStore.begin], ids=["engine", "store"])
def test_an_async_connection_joins_the_callers_transaction(aurl: str, opened: Any) -> None:
    """edit(connection=...) with a connection from store.engine or store.begin(): the
    order row and the subscription commit together, a retry writes the order once, a
    declined order rolls back both; a blocking Connection or one with no transaction
    is refused."""

    async def place(store: AsyncSqlStore, order_id: str, decline: bool = False) -> lc.Receipt:
        async with store.translated("orders"), opened(store) as connection:
            async with store.edit("c", connection=connection) as sub:
                receipt = await sub.buy_addon("boost-500", order_id, sh(2026, 3, 2))
            if not receipt.replayed:
                await connection.execute(
                    ORDERS.insert().values(id=order_id, amount=str(receipt.amount))
                )
            if decline:
                raise ValueError("declined")
        return receipt

    async def body(store: AsyncSqlStore) -> None:
        async with store.engine.begin() as connection:
            await connection.run_sync(ORDERS.create)
        async with store.edit("c") as sub:
            await sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
        first, again = await place(store, "o-2"), await place(store, "o-2")
        assert (False, True) == (first.replayed, again.replayed)
        with pytest.raises(ValueError, match="declined"):
            await place(store, "o-3", decline=True)
        async with opened(store) as connection:
            rows = (await connection.execute(sa.select(ORDERS.c.id))).scalars().all()
        assert ["o-2"] == rows
        snapshot = await store.load("c")
        assert snapshot is not None
        assert D(2500) == await snapshot.remaining_credits(sh(2026, 3, 2))
        async with store.engine.connect() as connection:
            with pytest.raises(lc.store.StoreMisuse) as info:
                async with store.edit("c", connection=connection):
                    pass
            assert "store.no_transaction" == info.value.code
        blocking = sa.create_engine("sqlite://")
        with blocking.connect() as connection, pytest.raises(lc.InvalidInput) as bad:
            async with store.edit("c", connection=connection):  # type: ignore[arg-type]
                pass
        assert "connection" == bad.value.field
        blocking.dispose()

    run(aurl, body)


def test_each_store_takes_its_own_drivers(tmp_path: Path) -> None:
    """AsyncSqlStore takes the asyncio drivers and SqlStore the blocking ones; the
    other is named before anything connects."""
    with pytest.raises(lc.InvalidInput, match="aiosqlite"):
        AsyncSqlStore(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(lc.InvalidInput, match="pysqlite"):
        SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
