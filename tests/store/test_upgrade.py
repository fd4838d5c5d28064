"""A database written by the first release (schema version 1) is upgraded in place by
create_schema(), with nothing lost: every customer, key, history entry and message.

`fixtures/v1-rows.json` holds every row a version 1 store wrote for five customers
(a trial used up, Enterprise with an add-on and usage in the window, a swept expiry,
an unsubscribe, a customer with nothing), with part of the outbox delivered. The
tables are rebuilt exactly as version 1 defined them (`V1` below), on SQLite and
PostgreSQL, and the rows put back.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import lifecycle as lc
from lifecycle.store import SqlStore
from lifecycle.store.schema import UTCDateTime
from tests.conftest import catalog_data, sh
from tests.store.conftest import count

D = Decimal
ROWS = json.loads((Path(__file__).parent / "fixtures" / "v1-rows.json").read_text())

V1 = sa.MetaData()
sa.Table("lifecycle_schema", V1, sa.Column("id", sa.Integer, primary_key=True),
         sa.Column("version", sa.Integer, nullable=False))  # fmt: skip
sa.Table(
    "lifecycle_subscriptions",
    V1,
    sa.Column("customer_id", sa.String(255), primary_key=True),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("due_at", UTCDateTime, nullable=True),
    sa.Column("mark", UTCDateTime, nullable=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("keys_from", UTCDateTime, nullable=True),
    sa.Index("ix_lifecycle_subscriptions_due_at", "due_at"),
)
sa.Table(
    "lifecycle_usage_keys",
    V1,
    sa.Column("customer_id", sa.String(255), primary_key=True),
    sa.Column("usage_id", sa.String(255), primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("row", sa.Text, nullable=False),
)
sa.Table(
    "lifecycle_outbox",
    V1,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("customer_id", sa.String(255), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("trigger", sa.String(32), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("dest", sa.String(32), nullable=False),
    sa.Column("key", sa.String(255), nullable=True),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("customer_id", "seq", name="uq_lifecycle_outbox_transition"),
    sa.Index("ix_lifecycle_outbox_undelivered", "delivered_at", "id"),
)
TIMES = {"due_at", "mark", "keys_from", "at", "delivered_at"}


def _value(column: str, value: Any) -> Any:
    return datetime.fromisoformat(value) if column in TIMES and value is not None else value


def build_v1(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        V1.create_all(connection)
        for name, rows in ROWS.items():
            table = V1.tables[name]
            for row in rows:
                connection.execute(table.insert().values({k: _value(k, v) for k, v in row.items()}))
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql(
                "SELECT setval('lifecycle_outbox_id_seq', (SELECT max(id) FROM lifecycle_outbox))"
            )
    engine.dispose()


def _v1_records() -> dict[str, dict[str, Any]]:
    return {
        row["customer_id"]: json.loads(row["record"]) for row in ROWS["lifecycle_subscriptions"]
    }


def test_a_version_1_database_upgrades_in_place_with_nothing_lost(url: str) -> None:
    """Tables and columns are added, every record becomes a version 2 checkpoint with its
    history in the history table, and every customer reads, retries and carries on
    exactly as before; the outbox keeps what was delivered and delivers the rest once."""
    build_v1(url)
    store = SqlStore(url)
    store.create_schema()
    assert 1 == count(store, "lifecycle_schema", "version = 2")
    assert 0 == count(store, "lifecycle_subscriptions", "record LIKE '%schema_version__1,%'")
    records = _v1_records()
    assert sum(len(r["history"]) for r in records.values()) == count(store, "lifecycle_history")
    for customer, record in records.items():
        old = lc.Subscription.from_record(record)
        assert old.history == tuple(store.history(customer)), customer
        snapshot = store.load(customer)
        assert snapshot is not None
        at = old.mark or sh(2026, 3, 1)
        assert (old.state_at(at), old.remaining_credits(at)) == (
            snapshot.state_at(at),
            snapshot.remaining_credits(at),
        ), customer
    with store.edit("v1-enterprise") as sub:
        retried = sub.record_usage("rtc_ai", D("1.25"), "u-r4", at=sh(2026, 2, 13, 4))
        again = sub.buy_addon("boost-500", order_id="o-3")
        sub.record_usage("media_processing", D("600"), "u-new", at=sh(2026, 2, 14))
    after = store.load("v1-enterprise")
    assert after is not None
    assert (True, True, D("0")) == (
        retried.replayed,
        again.replayed,
        after.remaining_credits(sh(2026, 2, 14)),
    )
    delivered_before = sum(1 for row in ROWS["lifecycle_outbox"] if row["delivered_at"])
    assert delivered_before == count(store, "lifecycle_outbox", "delivered_at IS NOT NULL")
    handed: list[tuple[str, int]] = []
    while store.drain_outbox(lambda m: handed.append((m.customer_id, m.seq))):
        pass
    pending_before = {
        (row["customer_id"], row["seq"])
        for row in ROWS["lifecycle_outbox"]
        if not row["delivered_at"]
    }
    assert pending_before | {("v1-enterprise", 4)} == set(handed)  # quota_used_up, new
    assert len(handed) == len(set(handed))
    assert 0 == count(store, "lifecycle_outbox", "delivered_at IS NULL")
    store.close()


def test_a_record_the_catalog_cannot_read_stays_version_1_and_says_why(url: str) -> None:
    """A version 1 record whose edition the catalog no longer has cannot take its terms
    from it: the upgrade leaves it untouched and reports it, every other customer is
    converted, and the customer reads as it did before the upgrade (an InvalidInput
    naming the edition) until the catalog has the edition again."""
    build_v1(url)
    data = catalog_data()
    del data["editions"]["professional"]
    store = SqlStore(url, catalog=lc.Catalog.from_dict(data))
    store.create_schema()
    assert 1 == count(store, "lifecycle_subscriptions", "record LIKE '%schema_version__1,%'")
    with pytest.raises(lc.InvalidInput) as info:
        store.load("v1-gone")
    assert "professional" in str(info.value)
    store.close()
    full = SqlStore(url)
    assert [] == full.upgrade()
    assert ["subscribe", "unsubscribe"] == [t.trigger for t in full.history("v1-gone")]
    full.close()


def test_the_upgrade_converts_a_record_once_even_with_edits_under_way(url: str) -> None:
    """A store that has not yet converted a version 1 record reads and writes it all
    the same (its history moves to the table on its first write), and no outbox
    message is written twice."""
    build_v1(url)
    engine = sa.create_engine(url)
    store = SqlStore(url)
    with engine.begin() as connection:
        from lifecycle.store import migrate

        migrate.create(connection)  # the tables only: the records stay version 1
    with store.edit("v1-trial") as sub:
        sub.subscribe("basic", order_id="o-9", at=sh(2026, 3, 10))
    assert ["purchase_trial", "trial_used_up", "subscribe"] == [
        t.trigger for t in store.history("v1-trial")
    ]
    assert [] == store.upgrade()
    assert 3 == count(store, "lifecycle_outbox", "customer_id = 'v1-trial'")
    engine.dispose()
    store.close()
