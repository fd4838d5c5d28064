"""Faults against the real servers: processes contend and die, PostgreSQL drops a
connection, the database is out of reach, many instances create the schema at once.
No SQLAlchemy or driver exception ever reaches the caller. Nothing is mocked."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

import lifecycle as lc
from lifecycle.store import AsyncSqlStore, SqlStore, StoreUnavailable
from tests.conftest import ADMIN_URL, sh
from tests.store import workers
from tests.store.conftest import count, empty_postgresql
from tests.store.facade import async_url, make_store
from tests.store.proxy import commit_cutter

D = Decimal
SPAWN = multiprocessing.get_context("spawn")


def test_eight_processes_on_one_customer(store: SqlStore, url: str, kind: str) -> None:
    """8 processes x 200 usages, each sent twice, on one customer whose credits run out
    part-way: credits plus pay-as-you-go equal the usage sent once, exactly one
    quota-exhausted-payg transition, no key applied twice, each transition in the outbox once."""
    with store.edit("hot") as sub:
        sub.subscribe("basic", order_id="o-1", term_months=12)  # 2000 credits
    with SPAWN.Pool(8) as pool:
        jobs = [(url, "hot", n, 200, kind) for n in range(8)]
        results = pool.starmap(workers.record_twice, jobs)
    settled = [row for rows in results for row in rows]
    assert 1600 == len({usage_id for usage_id, _, _ in settled})
    quota = sum(D(q) for _, q, _ in settled)
    payg = sum(D(p) for _, _, p in settled)
    assert (D(2000), D(1200)) == (quota, payg)  # 1600 usages x 2 units, sent once
    sub = store.load("hot")
    assert sub is not None
    assert D(0) == sub.remaining_credits()
    assert ["subscribe", "quota_used_up"] == [t.trigger for t in store.history("hot")]
    assert (2, 2) == (count(store, "lifecycle_outbox"), count(store, "lifecycle_history"))


def test_a_process_killed_inside_edit_leaves_the_last_commit(
    store: SqlStore, url: str, kind: str
) -> None:
    """SIGKILL inside an edit: nothing of that edit is kept, and the lock is released."""
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1")
    ready = SPAWN.Event()
    doomed = SPAWN.Process(target=workers.die_inside_edit, args=(url, "c", ready, kind))
    doomed.start()
    assert ready.wait(60)
    assert doomed.pid is not None
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join(30)
    assert -signal.SIGKILL == doomed.exitcode
    with store.edit("c") as sub:  # would hang if the dead process still held the lock
        assert D(2000) == sub.remaining_credits()
        sub.record_usage("media_processing", D(7), "doomed")
    snapshot = store.load("c")
    assert snapshot is not None
    assert D(1993) == snapshot.remaining_credits()


def _engine_of(store: SqlStore) -> sa.Engine:
    """The engine the store's own edits run on (the async store's sync_engine)."""
    engines = getattr(store, "engines", None)
    return engines[0] if engines is not None else store.engine


def _terminate_others(url: sa.URL) -> None:
    killer = sa.create_engine(url)
    with killer.begin() as connection:
        connection.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    killer.dispose()


def test_an_edit_skips_the_ping_that_every_other_checkout_makes(
    pg_store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edit's connection leaves the pool without a ping (its first statement would
    find a dropped connection and it can try again); a load's is pinged."""
    store = pg_store
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1")
    assert store.load("c") is not None  # every pooled connection has been used once
    engine = _engine_of(store)
    pings: list[object] = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda c: pings.append(c) or ping(c))
    for n in range(3):
        with store.edit("c") as sub:
            sub.record_usage("media_processing", D(1), f"u-{n}")
    assert [] == pings
    assert store.load("c") is not None
    assert 1 == len(pings)


def test_pool_pre_ping_false_turns_the_ping_off(
    pg_url: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pool_pre_ping=False`` in the engine options: no checkout pings."""
    store = make_store(kind, empty_postgresql(pg_url), pool_pre_ping=False)
    store.create_schema()
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1")
    engine = _engine_of(store)
    pings: list[object] = []
    monkeypatch.setattr(engine.dialect, "do_ping", pings.append)
    assert store.load("c") is not None
    store.close()
    assert [] == pings


def test_an_edit_after_the_server_dropped_every_connection_tries_again(
    pg_store: SqlStore,
) -> None:
    """The server restarts between requests (every pooled connection is dead): the
    next edit finds it at its first statement, tries again on a checked connection
    and is written once; so is the next load."""
    store = pg_store
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1")
    _terminate_others(store.engine.url)
    with store.edit("c") as sub:
        sub.record_usage("media_processing", D(7), "u-1")
    _terminate_others(store.engine.url)
    snapshot = store.load("c")
    assert snapshot is not None
    assert (D(1993), 1) == (snapshot.remaining_credits(), count(store, "lifecycle_usage_keys"))


def test_a_dropped_connection_is_store_unavailable(pg_store: SqlStore) -> None:
    """The server ends the backend mid-edit: StoreUnavailable (retryable, the driver's
    error chained), nothing of the edit committed, and the next edit works."""
    store = pg_store
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1")
    killer = sa.create_engine(store.engine.url)

    def edit_while_the_server_ends_it() -> None:
        with store.edit("c") as sub:
            sub.record_usage("media_processing", D(7), "u-1")
            with store.engine.connect() as probe:
                pids = (
                    probe.exec_driver_sql(
                        "SELECT pid FROM pg_locks WHERE locktype = 'transactionid' "
                        "AND mode = 'ExclusiveLock' AND pid <> pg_backend_pid()"
                    )
                    .scalars()
                    .all()
                )
            with killer.begin() as other:
                for pid in pids:
                    other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")

    with pytest.raises(StoreUnavailable) as info:
        edit_while_the_server_ends_it()
    assert ("store.unavailable", True) == (info.value.code, info.value.retryable)
    assert isinstance(info.value.__cause__, sa.exc.DBAPIError)
    killer.dispose()
    snapshot = store.load("c")
    assert snapshot is not None
    assert (D(2000), 0) == (snapshot.remaining_credits(), count(store, "lifecycle_usage_keys"))
    with store.edit("c") as sub:
        sub.record_usage("media_processing", D(7), "u-1")
    assert 1 == count(store, "lifecycle_usage_keys")


def _unreachable(tmp_path: Path, kind: str) -> list[SqlStore]:
    return [
        make_store(kind, "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"),
        make_store(kind, f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"),
    ]


def test_no_database_error_escapes_a_public_method(tmp_path: Path, kind: str) -> None:
    """With the database out of reach, every public method raises StoreUnavailable,
    never a SQLAlchemy or driver exception."""
    calls: list[Callable[[SqlStore], object]] = [
        lambda s: s.create_schema(),
        lambda s: s.load("c"),
        lambda s: s.edit("c").__enter__(),
        lambda s: s.history("c"),
        lambda s: s.sweep(sh(2026, 3, 1)),
        lambda s: s.drain_outbox(print),
        lambda s: s.dead_letters(),
        lambda s: s.redeliver([1]),
        lambda s: s.upgrade(),
    ]
    for store in _unreachable(tmp_path, kind):
        for call in calls:
            with pytest.raises(StoreUnavailable) as info:
                call(store)
            assert "store.unavailable" == info.value.code
        store.close()


def test_schema_versions_and_missing_tables_are_named(
    store: SqlStore, stores: Callable[..., SqlStore]
) -> None:
    """create_schema twice is fine; another version, no schema, or dropped tables are
    SchemaMismatch naming what to do."""
    store.create_schema()
    with store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE lifecycle_schema SET version = 99")
    other = stores()
    with pytest.raises(lc.store.SchemaMismatch, match="version 99"):
        other.load("c")
    with pytest.raises(lc.store.SchemaMismatch, match="version 99"):
        other.create_schema()
    with store.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE lifecycle_schema")
    empty = stores()
    with pytest.raises(lc.store.SchemaMismatch, match="create_schema"), empty.edit("c"):
        pass
    with store.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE lifecycle_usage_keys")

    def use() -> None:
        with store.edit("c") as sub:
            sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
            sub.record_usage("media_processing", D(1), "u-1", at=sh(2026, 3, 2))

    with pytest.raises(lc.store.SchemaMismatch) as info:
        use()
    assert "store.schema" == info.value.code


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_eight_instances_create_the_schema_at_once(backend: str, kind: str, tmp_path: Path) -> None:
    """Eight processes call create_schema() on a fresh database at the same moment: all
    succeed, and the schema is there once."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
        admin = None
    else:
        name = f"lifecycle_fresh_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = sa.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        start = SPAWN.Manager().Barrier(8)
        with SPAWN.Pool(8) as pool:
            pids = pool.starmap(workers.create_schema, [(url, start, kind)] * 8)
        assert 8 == len(set(pids))
        store = SqlStore(url)
        assert 1 == count(store, "lifecycle_schema")
        with store.edit("c") as sub:
            sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
        store.close()
    finally:
        if admin is not None:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("mysql://root@localhost/test", "url"),
        ("postgresql+psycopg_async://postgres@127.0.0.1/test", "url"),
        ("not a url", "url"),
    ],
)
def test_a_url_the_store_cannot_run_on_is_invalid_input(url: str, field: str) -> None:
    """A database or driver the store does not run on is named before anything connects."""
    with pytest.raises(lc.InvalidInput) as info:
        SqlStore(url)
    assert field == info.value.field


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("lock_timeout", 10),
        ("outbox_retention", lc.Subscription),
        ("max_attempts", 0),
        ("clock", "now"),
        ("catalog", {}),
    ],
)
def test_bad_store_options_are_invalid_input(option: str, value: object, tmp_path: Path) -> None:
    """Each setting is checked when the store is made, naming the setting."""
    with pytest.raises(lc.InvalidInput) as info:
        SqlStore(f"sqlite:///{tmp_path / 'x.db'}", **{option: value})  # type: ignore[arg-type]
    assert option == info.value.field


def test_a_read_in_the_middle_of_an_operation_fails_as_the_store(
    pg_sync_store: SqlStore,
) -> None:
    """The connection dies before an operation looks up its key: the operation itself
    raises StoreUnavailable (not the driver's error), and nothing is committed."""
    store = pg_sync_store
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1")
        sub.record_usage("media_processing", D(1), "u-1")
    killer = sa.create_engine(store.engine.url)
    with store.engine.connect() as connection:
        backend = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        connection.commit()
        connection.begin()

        def terminate() -> None:
            with killer.begin() as other:
                other.exec_driver_sql(f"SELECT pg_terminate_backend({backend})")

        raised = _record_after(store, connection, terminate)
    killer.dispose()
    assert [StoreUnavailable] == [type(error) for error in raised]
    assert 1 == count(store, "lifecycle_usage_keys")


def test_a_connection_closed_under_an_edit_is_store_unavailable(sync_store: SqlStore) -> None:
    """The driver's connection is closed in the middle of an edit (on SQLite the
    cursor cannot even be opened): the operation raises StoreUnavailable, never
    the driver's own error, and nothing of the edit is written."""
    store = sync_store
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1")
        sub.record_usage("media_processing", D(1), "u-1")
    with store.engine.connect() as connection:
        connection.begin()
        close = connection.connection.dbapi_connection.close  # type: ignore[union-attr]
        raised = _record_after(store, connection, close)
    assert [StoreUnavailable] == [type(error) for error in raised]
    assert 1 == count(store, "lifecycle_usage_keys")


def _record_after(
    store: SqlStore, connection: sa.Connection, sabotage: Callable[[], object]
) -> list[BaseException]:
    """In an edit on the caller's ``connection``: ``sabotage``, then record a usage.
    The edit raises StoreUnavailable; return what the operation itself raised."""
    raised: list[BaseException] = []

    def use() -> None:
        with store.edit("c", connection=connection) as sub:
            sabotage()
            try:
                sub.record_usage("media_processing", D(1), "u-2")
            except BaseException as error:
                raised.append(error)
                raise

    with pytest.raises(StoreUnavailable):
        use()
    return raised


def test_a_commit_whose_answer_is_lost_says_the_outcome_is_unknown(pg_url: str, kind: str) -> None:
    """The server commits an edit but its answer never arrives: StoreUnavailable, whose
    message says the edit may have been written (not that nothing was), and the
    retry with the same key answers it as a replay: charged once."""
    with commit_cutter(empty_postgresql(pg_url)) as (cutter, through):
        store = _subscribed(make_store(kind, through, catalog=lc.default_catalog()))
        cutter.armed.set()
        with pytest.raises(StoreUnavailable) as info:
            _record(store, "u-1")
        assert 1 == cutter.cut
        assert "may have been written or not" in str(info.value)
        assert "retry it with the same keys" in str(info.value)
        assert info.value.retryable
        with store.edit("c") as sub:
            settled = sub.record_usage("media_processing", D(7), "u-1")
            assert settled.replayed
        snapshot = store.load("c")
        assert snapshot is not None
        assert D(1993) == snapshot.remaining_credits()
        store.close()


def _subscribed(store: SqlStore) -> SqlStore:
    """``store`` with its schema and customer "c" on Basic."""
    store.create_schema()
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1")
    return store


def _record(store: SqlStore, usage_id: str) -> None:
    with store.edit("c") as sub:
        sub.record_usage("media_processing", D(7), usage_id)


def test_without_pings_an_edit_after_every_connection_dropped_still_tries_again(
    pg_url: str,
) -> None:
    """With ``pool_pre_ping=False``, an edit's second try is still pinged: a pool
    full of dropped connections is found out, and the edit is written once."""
    store = SqlStore(empty_postgresql(pg_url), pool_pre_ping=False)
    store.create_schema()
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1")
    pooled = [store.engine.connect() for _ in range(3)]
    for connection in pooled:
        connection.exec_driver_sql("SELECT 1")
        connection.close()  # three connections wait in the pool
    _terminate_others(store.engine.url)
    with store.edit("c") as sub:
        sub.record_usage("media_processing", D(7), "u-1")
    snapshot = store.load("c")
    store.close()
    assert snapshot is not None
    assert D(1993) == snapshot.remaining_credits()


def test_a_commit_the_disk_refuses_is_not_taken_for_written(tmp_path: Path, kind: str) -> None:
    """SQLite's COMMIT fails (the disk is full): the edit raises StoreUnavailable
    instead of returning as if written, saying the outcome is unknown (SQLite's
    recovery could find a commit whose write failed late); here nothing of it is
    kept, and the same usage once the disk has room is applied, not a replay."""
    url = f"sqlite:///{tmp_path / 'full.db'}"
    store = make_store(kind, url, catalog=lc.default_catalog())
    store.create_schema()
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1")
    store.close()
    with SPAWN.Pool(1) as pool:
        outcome = pool.apply(workers.commit_on_a_full_disk, (url, kind))
    name, code, message = outcome["raised"]
    assert ("StoreUnavailable", "store.unavailable") == (name, code), message
    assert "the database failed (" in message
    assert "may have been written or not" in message
    assert ("2000", False, "1993") == (outcome["kept"], outcome["again_replayed"], outcome["after"])


def test_a_callers_commit_whose_answer_is_lost_says_the_outcome_is_unknown(pg_url: str) -> None:
    """The caller's own transaction, holding an edit, loses its COMMIT's answer:
    ``translated()`` raises StoreUnavailable saying it may have been written (not
    that nothing was), and the retry with the same key is a replay."""
    with commit_cutter(empty_postgresql(pg_url)) as (cutter, through):
        store = _subscribed(SqlStore(through, catalog=lc.default_catalog()))
        cutter.armed.set()
        with pytest.raises(StoreUnavailable) as info:
            _order(store, "u-1")
        assert 1 == cutter.cut
        assert str(info.value).startswith("order: the database failed (")
        assert "may have been written or not" in str(info.value)
        with store.edit("c") as sub:
            assert sub.record_usage("media_processing", D(7), "u-1").replayed
        store.close()


def _order(store: SqlStore, usage_id: str) -> None:
    """An order service's transaction: its own rows (none here) and an edit."""
    with (
        store.translated("order"),
        store.begin() as connection,
        store.edit("c", connection=connection) as sub,
    ):
        sub.record_usage("media_processing", D(7), usage_id)


def test_the_stores_own_commit_whose_answer_is_lost_says_the_outcome_is_unknown(
    pg_url: str, kind: str
) -> None:
    """Not only an edit: any transaction of the store's own (here create_schema's)
    whose COMMIT answer is lost says the outcome is unknown; a statement that fails
    before the COMMIT still says nothing was committed."""
    with commit_cutter(empty_postgresql(pg_url)) as (cutter, through):
        store = make_store(kind, through, catalog=lc.default_catalog())
        store.create_schema()
        cutter.armed.set()
        with pytest.raises(StoreUnavailable) as info:
            store.create_schema()
        assert 1 == cutter.cut
        assert "may have been written or not: run it again" in str(info.value)
        store.close()
    with pytest.raises(StoreUnavailable) as refused:
        make_store(kind, "postgresql+psycopg://nobody@127.0.0.1:1/none").load("c")
    assert str(refused.value).endswith("nothing was committed")


@pytest.mark.parametrize(("given", "idle"), [({}, "30"), ({"keepalives_idle": 7}, "7")])
def test_both_ends_probe_a_silent_connection(
    pg_url: str, kind: str, given: dict[str, int], idle: str
) -> None:
    """A PostgreSQL store's connections carry TCP keepalives on the client and the
    server (30 s idle, 10 s apart, 3 probes, unless ``connect_args`` say otherwise),
    so that a connection cut without a word releases its row locks in about a
    minute, not the system's two hours."""
    names = ("idle", "interval", "count")
    if kind == "sync":
        store = SqlStore(pg_url, connect_args=dict(given))
        with store.engine.connect() as connection:
            shown = [connection.exec_driver_sql(f"SHOW tcp_keepalives_{n}").scalar() for n in names]
            client = connection.connection.driver_connection.info.get_parameters()  # type: ignore[union-attr]
        store.close()
    else:

        async def read() -> tuple[list[object], dict[str, str]]:
            store = AsyncSqlStore(async_url(pg_url), connect_args=dict(given))
            async with store.engine.connect() as connection:
                shown = [
                    (await connection.exec_driver_sql(f"SHOW tcp_keepalives_{n}")).scalar()
                    for n in names
                ]
                raw = await connection.get_raw_connection()
                client = raw.driver_connection.info.get_parameters()  # type: ignore[union-attr]
            await store.close()
            return shown, client

        shown, client = asyncio.run(read())
    assert [idle, "10", "3"] == shown
    assert (idle, "10", "3") == (
        client["keepalives_idle"],
        client["keepalives_interval"],
        client["keepalives_count"],
    )


@pytest.mark.parametrize("value", ["thirty", "-1", -1, 1.5, True])
def test_keepalives_that_are_not_whole_seconds_are_invalid_input(value: object) -> None:
    with pytest.raises(lc.InvalidInput) as info:
        SqlStore("postgresql://nobody@127.0.0.1:1/none", connect_args={"keepalives_count": value})
    assert "connect_args" == info.value.field
    assert "keepalives_count" in str(info.value)


def test_keepalives_in_the_url_stand_and_the_callers_dict_is_left_alone(pg_url: str) -> None:
    """A keepalive in the URL's query is the one used, on both ends; one given as
    text is taken as libpq takes it; ``keepalives=0`` turns them off on both ends;
    the caller's ``connect_args`` are not changed."""
    plain = sa.create_engine(pg_url)
    system = _keepalives_of(plain)  # what the server says with nothing set
    plain.dispose()
    given = {"keepalives_interval": "4"}
    for query, expected in (("keepalives_idle=600", ("600", "4")), ("keepalives=0", system)):
        store = SqlStore(f"{pg_url}?{query}", connect_args=given)
        assert expected == _keepalives_of(store.engine)
        store.close()
    assert {"keepalives_interval": "4"} == given
    assert ("30", "10") != system


def _keepalives_of(engine: sa.Engine) -> tuple[str, str]:
    with engine.connect() as connection:
        idle = connection.exec_driver_sql("SHOW tcp_keepalives_idle").scalar()
        interval = connection.exec_driver_sql("SHOW tcp_keepalives_interval").scalar()
    return str(idle), str(interval)
