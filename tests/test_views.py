"""JSON: every value an order service sends or keeps has to_dict(), JSON-safe, and
from_dict() back, validated; status() is one dict of where a customer stands."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

import lifecycle as lc
from lifecycle.store import OutboxMessage
from tests.conftest import D, sh


def _values() -> list[Any]:
    sub = lc.Subscription.new("c")
    receipt = sub.subscribe("standard", order_id="o-1", at=sh(2026, 3, 1))
    settled = sub.record_usage("media_processing", D("8000.5"), "u-1", sh(2026, 3, 2))
    late = sub.record_usage("media_processing", D(1), "u-2", sh(2026, 3, 2, 11, 30))
    decision = sub.authorize("realtime_conversational_ai", sh(2026, 3, 3))
    entry = sub.history[-1]
    message = OutboxMessage(7, "c", entry.seq, entry.at, entry.trigger, entry.source,
                            entry.dest, entry.key, entry.details, entry.requested_at)  # fmt: skip
    return [receipt, settled, late, decision, entry, message, sub.history[0]]


@pytest.mark.parametrize("value", _values(), ids=lambda v: type(v).__name__)
def test_to_dict_is_json_safe_and_from_dict_gives_it_back(value: Any) -> None:
    """Decimals as strings, times ISO 8601 with their offset; from_dict(to_dict(x))
    equals x."""
    data = value.to_dict()
    assert data == json.loads(json.dumps(data))
    assert value == type(value).from_dict(json.loads(json.dumps(data)))


def test_the_shapes_are_the_documented_ones() -> None:
    """A settlement says every part of its split as text, with both instants."""
    _, settled, late, *_ = _values()
    assert {
        "usage_id": "u-1",
        "meter": "media_processing",
        "quantity": "8000.5",
        "quota": "8000",
        "addons": "0",
        "payg": "0.5",
        "denied": "0",
        "amount": "0.250",
        "credits": "8000",
        "rule": "quota.payg_overage",
        "state": "quota-exhausted-payg",
        "at": "2026-03-02T04:00:00+00:00",
        "requested_at": "2026-03-02T04:00:00+00:00",
        "replayed": False,
    } == settled.to_dict()
    assert "2026-03-02T03:30:00+00:00" == late.to_dict()["requested_at"]


@pytest.mark.parametrize(
    ("kind", "change", "field"),
    [
        (lc.Settlement, {"quota": "-1"}, "settlement.quota"),
        (lc.Settlement, {"payg": "9"}, "settlement"),
        (lc.Settlement, {"at": "2026-03-02T04:00:00"}, "settlement.at"),
        (lc.Settlement, {"extra": 1}, "settlement.extra"),
        (lc.Receipt, {"operation": "teleport"}, "receipt.operation"),
        (lc.Receipt, {"replayed": "no"}, "receipt.replayed"),
        (lc.Decision, {"billing": "free"}, "decision.billing"),
        (lc.Transition, {"trigger": "teleport"}, "transition.trigger"),
    ],
)
def test_from_dict_refuses_what_to_dict_never_wrote(
    kind: Any, change: dict[str, Any], field: str
) -> None:
    """Anything wrong is InvalidInput naming the field (code record.invalid)."""
    base = next(v for v in _values() if type(v) is kind).to_dict()
    with pytest.raises(lc.InvalidInput) as info:
        kind.from_dict({**base, **change})
    assert (field, "record.invalid") == (info.value.field, info.value.code)


def test_status_says_where_a_customer_stands() -> None:
    """state, edition in force, credits (base, add-ons, total), trial and period ends."""
    sub = lc.Subscription.new("c")
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    sub.subscribe("basic", order_id="o-2", at=sh(2026, 3, 2))
    sub.buy_addon("boost-500", order_id="o-3", at=sh(2026, 3, 3))
    sub.record_usage("media_processing", D(10), "u-1", sh(2026, 3, 4))
    status = sub.status(sh(2026, 3, 5))
    assert status == json.loads(json.dumps(status))
    assert {
        "customer_id": "c",
        "at": "2026-03-05T04:00:00+00:00",
        "state": "enterprise-active",
        "edition": "basic",
        "credits": {"base": "1990", "addons": "500", "total": "2490"},
        "trial_end": "2026-04-01T04:00:00+00:00",
        "period_end": "2027-03-02T04:00:00+00:00",
        "mark": "2026-03-04T04:00:00+00:00",
    } == status
    assert {"base": None, "addons": None, "total": "2500"} == sub.status(sh(2026, 3, 3, 13))[
        "credits"
    ]
    assert "expired" == sub.status(datetime(2028, 1, 1, tzinfo=UTC))["state"]
