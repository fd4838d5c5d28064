"""subscribe.already_active: no re-subscription while quota is left."""

import lifecycle as lc
from tests.conftest import D, refused, sh


def test_resubscribe_after_quota_used_up(sub: lc.Subscription) -> None:
    """From quota-exhausted-payg a new subscription replaces the period (Q6)."""
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    sub.record_usage("media_processing", D("2000"), usage_id="u-1", at=sh(2026, 3, 2))
    receipt = sub.subscribe("standard", order_id="o-2", term_months=1, at=sh(2026, 3, 5))
    assert (lc.State.ENTERPRISE_ACTIVE, D(0)) == (receipt.state, receipt.forfeited)
    assert D("8000") == sub.remaining_credits(sh(2026, 3, 5))
    assert sh(2026, 4, 5) == sub.period_end


def test_resubscribe_with_quota_left_refused(sub: lc.Subscription) -> None:
    """While quota is left, subscribing again is refused and the advice names the way out."""
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    error = refused(
        sub,
        lambda: sub.subscribe("standard", order_id="o-2", at=sh(2026, 3, 5)),
        "subscribe.already_active",
    )
    assert (None, "enterprise-active", "subscribe") == (error.faq, error.state, error.operation)
    assert "unsubscribe" in str(error)
    assert "1 March 2027" in str(error)
