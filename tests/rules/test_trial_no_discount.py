"""trial.no_discount (Q2): the trial has a fixed price and takes no discount."""

import pytest

import lifecycle as lc
from tests.conftest import D, refused, sh


@pytest.mark.parametrize("discount", [None, 0, D("0"), D("0.00")])
def test_trial_at_fixed_price(sub: lc.Subscription, discount: object) -> None:
    """Without a discount (None or zero) the trial is sold at CNY 20."""
    receipt = sub.purchase_trial(order_id="o-1", discount=discount, at=sh(2026, 3, 1))
    assert (D("20.00"), lc.State.TRIAL) == (receipt.amount, receipt.state)


@pytest.mark.parametrize("discount", [D("5"), 1, "0.5", "SPRING-PROMO"])
def test_discount_refused(sub: lc.Subscription, discount: object) -> None:
    """Any discount, an amount or a coupon code, is refused and changes nothing."""
    error = refused(
        sub,
        lambda: sub.purchase_trial(order_id="o-1", discount=discount, at=sh(2026, 3, 1)),
        "trial.no_discount",
    )
    assert ("Q2", "none", "purchase_trial") == (error.faq, error.state, error.operation)
    assert "CNY 20.00" in str(error)


@pytest.mark.parametrize("discount", [D("-1"), D("NaN"), float("inf"), "", True, [1]])
def test_nonsense_discount_is_invalid_input(sub: lc.Subscription, discount: object) -> None:
    """A negative, NaN, empty or mistyped discount is bad input, not a rule refusal."""
    with pytest.raises(lc.InvalidInput) as info:
        sub.purchase_trial(order_id="o-1", discount=discount, at=sh(2026, 3, 1))
    assert "discount" == info.value.field
    assert lc.State.NONE == sub.state_at(sh(2026, 3, 1))
