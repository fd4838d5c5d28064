"""trial.once_per_month (Q2): one trial per calendar month, in the catalog's zone."""

import lifecycle as lc
from tests.conftest import D, refused, sh


def _use_up_trial(sub: lc.Subscription, order_id: str, at: object) -> None:
    sub.purchase_trial(order_id=order_id, at=at)
    sub.record_usage("media_processing", D("100"), usage_id=f"u-{order_id}", at=at)


def test_next_month_trial_allowed(sub: lc.Subscription) -> None:
    """A trial used up in March can be followed by another in April."""
    _use_up_trial(sub, "o-1", sh(2026, 3, 5))
    receipt = sub.purchase_trial(order_id="o-2", at=sh(2026, 4, 1, 0, 0))
    assert lc.State.TRIAL == receipt.state


def test_second_trial_same_month_refused(sub: lc.Subscription) -> None:
    """A second March trial is refused, and the advice names 1 April."""
    _use_up_trial(sub, "o-1", sh(2026, 3, 5))
    error = refused(
        sub,
        lambda: sub.purchase_trial(order_id="o-2", at=sh(2026, 3, 31, 23, 59)),
        "trial.once_per_month",
    )
    assert ("Q2", "trial-exhausted", "purchase_trial") == (
        error.faq,
        error.state,
        error.operation,
    )
    assert "1 April 2026" in str(error)


def test_once_per_month_counts_after_unsubscribe(sub: lc.Subscription) -> None:
    """Subscribing and unsubscribing in between does not reset the month's trial."""
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 2))
    sub.subscribe("basic", order_id="o-2", at=sh(2026, 3, 3))
    sub.unsubscribe(request_id="r-1", at=sh(2026, 3, 4))
    refused(
        sub,
        lambda: sub.purchase_trial(order_id="o-3", at=sh(2026, 3, 5)),
        "trial.once_per_month",
    )


def test_month_is_the_catalogs_not_utc(sub: lc.Subscription) -> None:
    """00:30 on 1 April in Shanghai is still March in UTC, yet it is an April trial."""
    _use_up_trial(sub, "o-1", sh(2026, 3, 31, 23, 0))
    receipt = sub.purchase_trial(order_id="o-2", at=sh(2026, 4, 1, 0, 30))
    assert lc.State.TRIAL == receipt.state


def test_december_trial_points_to_january(sub: lc.Subscription) -> None:
    """A second December trial is refused until 1 January of the next year."""
    _use_up_trial(sub, "o-1", sh(2026, 12, 2))
    error = refused(
        sub, lambda: sub.purchase_trial(order_id="o-2", at=sh(2026, 12, 31)), "trial.once_per_month"
    )
    assert "1 January 2027 00:00 (Asia/Shanghai)" in error.advice
