"""transition.not_allowed: an operation with no transition from the current state."""

import pytest

import lifecycle as lc
from tests.conftest import D, refused, sh


def test_trial_after_enterprise_expired(sub: lc.Subscription) -> None:
    """After an Enterprise period expires a trial may be bought again (Q4)."""
    sub.subscribe("basic", order_id="o-1", term_months=1, at=sh(2026, 3, 1))
    receipt = sub.purchase_trial(order_id="o-2", at=sh(2026, 4, 2))
    assert lc.State.TRIAL == receipt.state
    assert "period_ended" == sub.history[1].trigger


@pytest.mark.parametrize("state", ["trial", "enterprise-active", "quota-exhausted-payg"])
def test_trial_refused_where_no_edge(sub: lc.Subscription, state: str) -> None:
    """A trial cannot be bought during a trial or an Enterprise subscription."""
    at = sh(2026, 2, 10)
    if state == "trial":
        sub.purchase_trial(order_id="o-t", at=at)
    else:
        sub.subscribe("basic", order_id="o-e", at=at)
        if state == "quota-exhausted-payg":
            sub.record_usage("media_processing", D("2000"), usage_id="u-1", at=at)
    error = refused(
        sub,
        lambda: sub.purchase_trial(order_id="o-2", at=sh(2026, 3, 1)),
        "transition.not_allowed",
    )
    assert (None, state, "purchase_trial") == (error.faq, error.state, error.operation)
    assert "none, trial-exhausted, unsubscribed, expired" in str(error)


def test_advice_names_the_operation(sub: lc.Subscription) -> None:
    """The advice says which operation is possible from where."""
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    error = refused(
        sub, lambda: sub.purchase_trial(order_id="o-2", at=sh(2026, 3, 2)), "transition.not_allowed"
    )
    assert error.advice.startswith("purchase_trial is possible only from: none")
