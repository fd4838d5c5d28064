"""trial.feature_excluded (Q2): the trial excludes dedicated customer service and
the advanced video clip effects package."""

import pytest

import lifecycle as lc
from tests.conftest import D, sh


@pytest.fixture
def trial(sub: lc.Subscription) -> lc.Subscription:
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    return sub


def test_included_features_usable_in_trial(trial: lc.Subscription) -> None:
    """Features the trial includes are allowed: metered on credits, unmetered included."""
    at = sh(2026, 3, 2)
    assert lc.Decision(True, "credits", None) == trial.authorize("media_processing", at=at)
    assert lc.Decision(True, "included", None) == trial.authorize("video_editing", at=at)


@pytest.mark.parametrize("feature", ["dedicated_customer_service", "advanced_video_clip_effects"])
def test_excluded_feature_denied(trial: lc.Subscription, feature: str) -> None:
    """An excluded feature is denied in a trial, naming the rule."""
    decision = trial.authorize(feature, at=sh(2026, 3, 2))
    assert lc.Decision(False, "denied", "trial.feature_excluded") == decision


def test_excluded_meter_usage_wholly_denied(trial: lc.Subscription) -> None:
    """Usage of an excluded feature's meter is all denied and draws no credits."""
    s = trial.record_usage("advanced_effects", D("3"), usage_id="u-1", at=sh(2026, 3, 2))
    assert (D(0), D(0), D(0), D("3"), D(0)) == (s.quota, s.addons, s.payg, s.denied, s.amount)
    assert "trial.feature_excluded" == s.rule
    assert D("100") == trial.remaining_credits(sh(2026, 3, 2))
    assert lc.State.TRIAL == trial.state_at(sh(2026, 3, 2))


def test_same_feature_allowed_under_enterprise(trial: lc.Subscription) -> None:
    """The excluded features come with Enterprise (the FAQ's way to continue)."""
    trial.subscribe("basic", order_id="o-2", at=sh(2026, 3, 3))
    decision = trial.authorize("dedicated_customer_service", at=sh(2026, 3, 3))
    assert lc.Decision(True, "included", None) == decision
