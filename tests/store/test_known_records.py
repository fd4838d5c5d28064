"""The store's parsed-record cache never hands out a stale subscription."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

import lifecycle as lc
from lifecycle.store import SqlStore, subscriptions
from tests.conftest import sh

D = Decimal


def test_a_record_written_elsewhere_is_read_afresh(store: SqlStore, url: str) -> None:
    """After another store (another process) writes the record, the next edit sees it."""
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    other = SqlStore(url)
    with other.edit("c") as sub:
        sub.record_usage("media_processing", D(5), usage_id="u-1", at=sh(2026, 3, 2))
    other.engine.dispose()
    with store.edit("c") as sub:
        assert D(1995) == sub.remaining_credits(sh(2026, 3, 2))


def test_a_rolled_back_write_is_not_believed(store: SqlStore) -> None:
    """An edit written into the caller's transaction, which the caller then rolls back,
    leaves the database as it was, and the next edit reads the database, not memory."""
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    with store.engine.connect() as connection:
        transaction = connection.begin()
        with store.edit("c", connection=connection) as sub:
            sub.record_usage("media_processing", D(5), usage_id="u-1", at=sh(2026, 3, 2))
        transaction.rollback()
    with store.edit("c") as sub:
        assert D(2000) == sub.remaining_credits(sh(2026, 3, 2))


def test_edits_do_not_share_state(store: SqlStore) -> None:
    """Two edits in a row get independent subscriptions, and a corrupt stored record is
    still caught although this store wrote the one before it."""
    with store.edit("c") as sub:
        sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    with store.edit("c") as first:
        first.record_usage("media_processing", D(5), usage_id="u-1", at=sh(2026, 3, 2))
    with store.edit("c") as second:
        assert D(1995) == second.remaining_credits(sh(2026, 3, 2))
        assert first is not second
    with store.engine.begin() as connection:
        connection.execute(sa.update(subscriptions).values(record='{"schema_version": 7}'))
    with pytest.raises(lc.InvalidInput, match="schema_version"), store.edit("c"):
        pass
