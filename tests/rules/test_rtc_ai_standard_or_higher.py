"""rtc_ai.standard_or_higher (Q7): credits pay for Real-time Conversational AI only
from Standard Edition up; otherwise it is pay-as-you-go, in every state."""

import pytest

import lifecycle as lc
from tests.conftest import D, sh


@pytest.mark.parametrize("edition", ["standard", "professional"])
def test_standard_and_higher_pay_with_credits(sub: lc.Subscription, edition: str) -> None:
    """Standard and higher editions pay for RTC AI from their quota."""
    sub.subscribe(edition, order_id="o-1", at=sh(2026, 3, 1))
    s = sub.record_usage("rtc_ai", D("10"), usage_id="u-1", at=sh(2026, 3, 2))
    assert (D("10"), D(0), None) == (s.quota, s.payg, s.rule)
    assert lc.Decision(True, "credits", None) == sub.authorize("realtime_conversational_ai")


def test_basic_edition_pays_payg(sub: lc.Subscription) -> None:
    """Basic Edition's credits may not pay: all pay-as-you-go, credits untouched."""
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    s = sub.record_usage("rtc_ai", D("10"), usage_id="u-1", at=sh(2026, 3, 2))
    assert (D(0), D("10"), D("8.00"), "rtc_ai.standard_or_higher") == (
        s.quota,
        s.payg,
        s.amount,
        s.rule,
    )
    assert D("2000") == sub.remaining_credits(sh(2026, 3, 2))


@pytest.mark.parametrize("state", ["none", "trial", "unsubscribed"])
def test_without_enterprise_payg_not_denied(sub: lc.Subscription, state: str) -> None:
    """Without an Enterprise subscription RTC AI is billed pay-as-you-go, never denied."""
    at = sh(2026, 3, 1)
    if state == "trial":
        sub.purchase_trial(order_id="o-t", at=at)
    elif state == "unsubscribed":
        sub.subscribe("professional", order_id="o-e", at=at)
        sub.unsubscribe(request_id="r-1", at=at)
    s = sub.record_usage("rtc_ai", D("2.5"), usage_id="u-1", at=at)
    assert (D("2.5"), D(0), D("2.00"), "rtc_ai.standard_or_higher") == (
        s.payg,
        s.denied,
        s.amount,
        s.rule,
    )
    assert state == sub.state_at(at)
    decision = sub.authorize("realtime_conversational_ai", at=at)
    assert lc.Decision(True, "payg", "rtc_ai.standard_or_higher") == decision


def test_edition_without_the_feature_still_pays_payg() -> None:
    """Under an edition that does not list RTC AI, it is pay-as-you-go, not denied."""
    data = {
        "currency": "CNY",
        "trial": {"price": "20.00", "credits": "100"},
        "editions": {
            "basic": {"rank": 1, "price": "1", "credits": "10", "features": ["media"]},
            "standard": {"rank": 2, "price": "2", "credits": "10", "features": ["media", "rtc"]},
        },
        "meters": {
            "media": {"feature": "media", "payg_price": "1"},
            "rtc": {
                "feature": "rtc",
                "payg_price": "0.80",
                "min_edition": "standard",
                "payg_without_subscription": True,
            },
        },
    }
    sub = lc.Subscription.new("c", catalog=lc.Catalog.from_dict(data))
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    s = sub.record_usage("rtc", D("5"), usage_id="u-1", at=sh(2026, 3, 1))
    assert (D(5), D("4.00"), "rtc_ai.standard_or_higher") == (s.payg, s.amount, s.rule)
