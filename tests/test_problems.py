"""Problem details (RFC 9457): every error answers problem() with a stable type per
code, the status an order service should send, and what the error knows."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest

import lifecycle as lc
from lifecycle import problems
from lifecycle.errors import LockTimeout, StoreUnavailable
from lifecycle.rules import RULES
from tests.conftest import sh

ROOT = Path(__file__).parents[1]


def test_a_refusal_carries_its_rule() -> None:
    """A rule's refusal: 409, its code, FAQ question and advice."""
    sub = lc.Subscription.new("c")
    with pytest.raises(lc.RuleViolation) as info:
        sub.unsubscribe(request_id="r-1", at=sh(2026, 3, 1))
    problem = info.value.problem()
    assert problem == json.loads(json.dumps(problem))
    assert {
        "type": "urn:lifecycle:problem:unsubscribe.enterprise_only",
        "title": "Only an Enterprise subscription can be unsubscribed",
        "status": 409,
        "code": "unsubscribe.enterprise_only",
        "faq": "Q4",
        "advice": "There is no Enterprise Edition subscription to unsubscribe from.",
    }.items() <= problem.items()
    assert problem["detail"].startswith("unsubscribe refused in state 'none'")


@pytest.mark.parametrize(
    ("error", "status", "extra"),
    [
        (
            lc.InvalidInput("quantity", "must be positive", code="input.bad_quantity"),
            400,
            {"field": "quantity"},
        ),
        (lc.InvalidInput("customer 'c': record", "not JSON", code="record.invalid"), 500, {}),
        (lc.IdempotencyConflict("o-1", "subscribe()", "buy_addon()"), 422, {}),
        (lc.OutOfOrder("record_usage", sh(2026, 3, 1), sh(2026, 3, 2)), 409, {}),
        (lc.store.UnknownCustomer("typo"), 404, {"retryable": False}),
        (StoreUnavailable("edit", OSError("gone")), 503, {"retryable": True}),
        (LockTimeout("c", 10), 503, {"retryable": True}),
        (lc.CatalogError("currency", "is missing"), 500, {}),
    ],
)
def test_each_kind_of_error_gets_the_status_that_fits(
    error: lc.LifecycleError, status: int, extra: dict[str, object]
) -> None:
    """Invalid input 400, a corrupt record 500, an idempotency conflict 422, out of
    order 409, an unknown customer 404, an unavailable store 503."""
    problem = error.problem()
    assert (status, error.code) == (problem["status"], problem["code"])
    assert extra.items() <= problem.items()
    assert pickle.loads(pickle.dumps(error)).problem() == problem


def test_every_code_the_library_raises_is_in_the_table() -> None:
    """Each code written in the library has its status and title in problems.CODES."""
    source = "\n".join(p.read_text() for p in (ROOT / "lifecycle").rglob("*.py"))
    found = set(re.findall(r'code(?:=| = )"([a-z_]+\.[a-z_]+)"', source))
    found |= {rule.code for rule in RULES}
    assert found <= set(problems.CODES), found - set(problems.CODES)


def test_the_readme_lists_every_code_with_its_status() -> None:
    """The README's table is the one problems.table() makes (lifecycle diagrams writes it)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- generated:problems -->\n")[1].split(
        "\n<!-- /generated:problems -->"
    )[0]
    assert problems.table() == block.strip()
