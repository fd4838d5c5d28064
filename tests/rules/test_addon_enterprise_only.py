"""addon.enterprise_only (Q1): only Enterprise Edition subscribers can buy add-ons."""

import pytest

import lifecycle as lc
from tests.conftest import D, enterprise, refused, sh


def test_enterprise_subscriber_buys_addon(sub: lc.Subscription) -> None:
    """An add-on bought under Enterprise adds its credits to the quota."""
    enterprise(sub, at=sh(2026, 3, 1))
    receipt = sub.buy_addon("boost-500", order_id="o-a", at=sh(2026, 3, 2))
    assert (D("200.00"), lc.State.ENTERPRISE_ACTIVE) == (receipt.amount, receipt.state)
    assert D("8500") == sub.remaining_credits(sh(2026, 3, 2))


def test_addon_in_quota_exhausted_payg_returns_to_active(sub: lc.Subscription) -> None:
    """From quota-exhausted-payg an add-on brings the subscription back to enterprise-active."""
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    sub.record_usage("media_processing", D("2000"), usage_id="u-1", at=sh(2026, 3, 2))
    assert lc.State.QUOTA_EXHAUSTED_PAYG == sub.state_at(sh(2026, 3, 2))
    sub.buy_addon("boost-500", order_id="o-a", at=sh(2026, 3, 3))
    assert lc.State.ENTERPRISE_ACTIVE == sub.state_at(sh(2026, 3, 3))
    assert D("500") == sub.remaining_credits(sh(2026, 3, 3))


@pytest.mark.parametrize("setup", ["none", "trial", "trial-exhausted", "unsubscribed", "expired"])
def test_addon_refused_without_enterprise(sub: lc.Subscription, setup: str) -> None:
    """Outside Enterprise an add-on is refused with addon.enterprise_only, changing nothing."""
    at, attempt = sh(2026, 3, 1), sh(2026, 3, 20)
    if setup in ("trial", "trial-exhausted"):
        sub.purchase_trial(order_id="o-t", at=at)
        if setup == "trial-exhausted":
            sub.record_usage("media_processing", D("100"), usage_id="u-1", at=at)
    if setup in ("unsubscribed", "expired"):
        sub.subscribe("basic", order_id="o-e", term_months=1, at=at)
        if setup == "unsubscribed":
            sub.unsubscribe(request_id="r-1", at=at)
        else:
            attempt = sh(2026, 4, 2)
            sub.advance(attempt)
    assert setup == sub.state_at(attempt)
    error = refused(
        sub,
        lambda: sub.buy_addon("boost-500", order_id="o-a", at=attempt),
        "addon.enterprise_only",
    )
    assert ("Q1", setup, "buy_addon") == (error.faq, error.state, error.operation)
    assert "Subscribe to an Enterprise Edition" in str(error)
