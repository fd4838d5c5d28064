"""trial.no_payg (Q5): usage beyond the trial's credits is denied, never billed."""

import lifecycle as lc
from tests.conftest import D, sh


def test_usage_within_trial_credits(sub: lc.Subscription) -> None:
    """Usage the trial's credits cover is drawn from them, no rule involved."""
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    s = sub.record_usage("media_processing", D("99.5"), usage_id="u-1", at=sh(2026, 3, 2))
    assert (D("99.5"), D(0), D(0), None) == (s.quota, s.payg, s.denied, s.rule)
    assert D("0.5") == sub.remaining_credits(sh(2026, 3, 2))
    assert lc.State.TRIAL == s.state


def test_usage_beyond_trial_credits_denied_not_billed(sub: lc.Subscription) -> None:
    """What the credits cannot cover is denied, nothing is charged, the trial is exhausted."""
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    s = sub.record_usage("media_processing", D("130"), usage_id="u-1", at=sh(2026, 3, 2))
    assert (D("100"), D(0), D("30"), D(0)) == (s.quota, s.payg, s.denied, s.amount)
    assert "trial.no_payg" == s.rule
    assert lc.State.TRIAL_EXHAUSTED == s.state
    assert ("trial_used_up", "u-1") == (sub.history[-1].trigger, sub.history[-1].key)


def test_after_trial_consumed_service_stops(sub: lc.Subscription) -> None:
    """Q5: after the trial is consumed the service stops; usage is denied, not billed."""
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    sub.record_usage("media_processing", D("100"), usage_id="u-1", at=sh(2026, 3, 2))
    s = sub.record_usage("media_processing", D("5"), usage_id="u-2", at=sh(2026, 3, 3))
    assert (D(0), D("5"), "service.unavailable") == (s.payg, s.denied, s.rule)
