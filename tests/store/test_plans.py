"""The drain's plan: when an interrupted claim is given back, and when it is not."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from lifecycle.store import core, plans
from lifecycle.store.plans import Low


def _claim_fails_with(error: BaseException) -> list[plans.Request]:
    """The requests a drain makes when its claim raises ``error``, up to the raise."""
    plan = plans.drain_plan(lambda _m: None, Low(), 10, lambda: datetime.now(UTC), 3)
    made = [next(plan)]

    def drive() -> None:
        request = plan.throw(error)
        while True:
            made.append(request)
            request = plan.send(None)

    with pytest.raises(type(error)) as raised:
        drive()
    assert raised.value is error
    return made


def _database_error() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("COMMIT", {}, Exception("server closed the connection"))


def test_a_claim_that_failed_before_its_commit_is_not_given_back() -> None:
    """A claim refused before its COMMIT (a lock held too long, a connection gone
    before it began) wrote nothing: the drain raises at once, asking nothing more
    of the database."""
    made = _claim_fails_with(_database_error())
    assert [plans.Transaction] == [type(r) for r in made]


@pytest.mark.parametrize("interruption", [asyncio.CancelledError, KeyboardInterrupt])
def test_an_interrupted_claim_is_given_back_aside(interruption: type[BaseException]) -> None:
    """A claim interrupted (its task cancelled, Ctrl-C) may have committed: what its
    token leased is given back, aside (the cancelled task does not wait for it)."""
    made = _claim_fails_with(interruption())
    assert [plans.Transaction, plans.Aside] == [type(r) for r in made]


def test_a_claim_whose_commit_answer_was_lost_is_given_back() -> None:
    """A claim whose COMMIT's answer was lost may have committed: given back too."""
    error = _database_error()
    core.note_commit(error)
    made = _claim_fails_with(error)
    assert [plans.Transaction, plans.Aside] == [type(r) for r in made]
