"""quota.payg_overage (Q6): Enterprise usage beyond quota and add-ons is billed
pay-as-you-go."""

import lifecycle as lc
from tests.conftest import D, sh


def test_usage_within_quota_is_not_billed(sub: lc.Subscription) -> None:
    """Within the quota nothing is billed and no rule applies."""
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    s = sub.record_usage("media_processing", D("1999"), usage_id="u-1", at=sh(2026, 3, 2))
    assert (D("1999"), D(0), D(0), None) == (s.quota, s.payg, s.amount, s.rule)
    assert lc.State.ENTERPRISE_ACTIVE == s.state


def test_overage_billed_payg(sub: lc.Subscription) -> None:
    """Beyond the quota the rest is pay-as-you-go at the meter's price."""
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    s = sub.record_usage("media_processing", D("2010"), usage_id="u-1", at=sh(2026, 3, 2))
    assert (D("2000"), D("10"), D(0), D("5.00")) == (s.quota, s.payg, s.denied, s.amount)
    assert "quota.payg_overage" == s.rule
    assert lc.State.QUOTA_EXHAUSTED_PAYG == s.state
    later = sub.record_usage("media_processing", D("4"), usage_id="u-2", at=sh(2026, 3, 3))
    assert (D("4"), D("2.00"), "quota.payg_overage") == (later.payg, later.amount, later.rule)
    decision = sub.authorize("media_processing", at=sh(2026, 3, 3))
    assert lc.Decision(True, "payg", "quota.payg_overage") == decision
