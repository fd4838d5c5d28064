"""service.unavailable (Q2, Q4, Q5): nothing is usable in none, trial-exhausted,
unsubscribed or expired."""

import pytest

import lifecycle as lc
from tests.conftest import D, sh


def _into(sub: lc.Subscription, state: str) -> None:
    at = sh(2026, 3, 1)
    if state == "trial-exhausted":
        sub.purchase_trial(order_id="o-t", at=at)
        sub.advance(sh(2026, 4, 1))
    elif state == "unsubscribed":
        sub.subscribe("standard", order_id="o-e", at=at)
        sub.unsubscribe(request_id="r-1", at=at)
    elif state == "expired":
        sub.subscribe("standard", order_id="o-e", term_months=1, at=at)
        sub.advance(sh(2026, 4, 1))


def test_feature_usable_with_subscription(sub: lc.Subscription) -> None:
    """With a running subscription the same usage is paid from credits."""
    sub.subscribe("standard", order_id="o-e", at=sh(2026, 3, 1))
    s = sub.record_usage("media_processing", D("5"), usage_id="u-1", at=sh(2026, 4, 2))
    assert (D("5"), None) == (s.quota, s.rule)


@pytest.mark.parametrize("state", ["none", "trial-exhausted", "unsubscribed", "expired"])
def test_usage_denied_without_service(sub: lc.Subscription, state: str) -> None:
    """Every unit is denied, nothing is billed, no credit moves and the state stays."""
    _into(sub, state)
    at = sh(2026, 4, 2)
    assert state == sub.state_at(at)
    s = sub.record_usage("media_processing", D("5"), usage_id="u-1", at=at)
    assert (D(0), D(0), D(0), D("5"), D(0)) == (s.quota, s.addons, s.payg, s.denied, s.amount)
    assert "service.unavailable" == s.rule
    assert (state, D(0)) == (sub.state_at(at), sub.remaining_credits(at))
    decision = sub.authorize("video_editing", at=at)
    assert lc.Decision(False, "denied", "service.unavailable") == decision
