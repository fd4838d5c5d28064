"""unsubscribe.enterprise_only (Q4): only an Enterprise subscription can be unsubscribed."""

import pytest

import lifecycle as lc
from tests.conftest import D, refused, sh


def test_unsubscribe_forfeits_unused_credits(sub: lc.Subscription) -> None:
    """Unsubscribing stops the service and forfeits base and add-on credits (Q4)."""
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    sub.buy_addon("boost-500", order_id="o-2", at=sh(2026, 3, 1))
    sub.record_usage("media_processing", D("100"), usage_id="u-1", at=sh(2026, 3, 2))
    receipt = sub.unsubscribe(request_id="r-1", at=sh(2026, 3, 3))
    assert (D(0), D("2400"), lc.State.UNSUBSCRIBED) == (
        receipt.amount,
        receipt.forfeited,
        receipt.state,
    )
    assert D(0) == sub.remaining_credits(sh(2026, 3, 3))
    assert "2400" == sub.history[-1].details["forfeited"]


def test_unsubscribe_from_quota_exhausted_payg(sub: lc.Subscription) -> None:
    """An exhausted subscription can be unsubscribed too; nothing is left to forfeit."""
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    sub.record_usage("media_processing", D("2001"), usage_id="u-1", at=sh(2026, 3, 2))
    receipt = sub.unsubscribe(request_id="r-1", at=sh(2026, 3, 3))
    assert (lc.State.UNSUBSCRIBED, D(0)) == (receipt.state, receipt.forfeited)


@pytest.mark.parametrize("trial", [False, True])
def test_unsubscribe_without_enterprise_refused(sub: lc.Subscription, trial: bool) -> None:
    """Without Enterprise (never bought, or only a trial) unsubscribe is refused."""
    if trial:
        sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    error = refused(
        sub,
        lambda: sub.unsubscribe(request_id="r-1", at=sh(2026, 3, 2)),
        "unsubscribe.enterprise_only",
    )
    assert ("Q4", "unsubscribe") == (error.faq, error.operation)


def test_unsubscribe_twice_refused(sub: lc.Subscription) -> None:
    """A second unsubscribe with a new request id is refused."""
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    sub.unsubscribe(request_id="r-1", at=sh(2026, 3, 2))
    refused(
        sub,
        lambda: sub.unsubscribe(request_id="r-2", at=sh(2026, 3, 3)),
        "unsubscribe.enterprise_only",
    )
