"""Settling usage: exact splits over base credits, add-ons, pay-as-you-go, denied."""

from decimal import Decimal, localcontext
from typing import Any

import pytest

import lifecycle as lc
from tests.conftest import D, sh


def _catalog(rate: str) -> lc.Catalog:
    data: dict[str, Any] = {
        "currency": "CNY",
        "trial": {"price": "20.00", "credits": "10"},
        "editions": {"e": {"rank": 1, "price": "1", "credits": "10", "features": ["f"]}},
        "addons": {"a3": {"price": "1", "credits": "3"}, "a5": {"price": "1", "credits": "5"}},
        "meters": {"m": {"feature": "f", "credit_rate": rate, "payg_price": "0.07"}},
    }
    return lc.Catalog.from_dict(data)


def _parts(s: lc.Settlement) -> tuple[Decimal, ...]:
    return (s.quota, s.addons, s.payg, s.denied, s.amount)


def test_base_then_addons_in_purchase_order_then_payg() -> None:
    """Base credits go first, then each add-on in the order bought, then pay-as-you-go."""
    sub = lc.Subscription.new("c", catalog=_catalog("2.5"))
    at = sh(2026, 3, 1)
    sub.subscribe("e", order_id="o-1", at=at)
    sub.buy_addon("a5", order_id="o-2", at=at)
    sub.buy_addon("a3", order_id="o-3", at=at)
    # 10 base credits = 4 units; a5's 5 credits = 2 units; a3's 3 credits = 1.2 units.
    first = sub.record_usage("m", D("5"), usage_id="u-1", at=at)
    assert (D("4"), D("1"), D(0), D(0), D("0.00")) == _parts(first)
    assert D("2.5") + D("3") == sub.remaining_credits(at)
    second = sub.record_usage("m", D("3"), usage_id="u-2", at=at)
    assert (D(0), D("2.2"), D("0.8"), D(0), D("0.056")) == _parts(second)
    assert "quota.payg_overage" == second.rule
    assert lc.State.QUOTA_EXHAUSTED_PAYG == second.state
    assert D(0) == sub.remaining_credits(at)


def test_split_is_exact_with_a_rate_that_does_not_divide() -> None:
    """With 3 credits per unit the parts still sum to the quantity exactly, and the
    amount is the exact product of pay-as-you-go units and price."""
    sub = lc.Subscription.new("c", catalog=_catalog("3"))
    at = sh(2026, 3, 1)
    sub.subscribe("e", order_id="o-1", at=at)
    s = sub.record_usage("m", D("5"), usage_id="u-1", at=at)
    assert D("5") == s.quota + s.addons + s.payg + s.denied
    assert D(10) / D(3) == s.quota
    with localcontext() as exact:
        exact.prec = 100
        assert s.payg * D("0.07") == s.amount


def test_trial_credits_then_denied() -> None:
    """In a trial the rate applies too; what the credits cannot cover is denied."""
    sub = lc.Subscription.new("c", catalog=_catalog("4"))
    at = sh(2026, 3, 1)
    sub.purchase_trial(order_id="o-1", at=at)
    s = sub.record_usage("m", D("3"), usage_id="u-1", at=at)
    assert (D("2.5"), D(0), D(0), D("0.5"), D(0)) == _parts(s)
    assert "trial.no_payg" == s.rule


def test_settlement_ignores_the_callers_decimal_context() -> None:
    """A caller's low-precision context does not change what a customer is billed."""
    sub = lc.Subscription.new("c", catalog=_catalog("3"))
    at = sh(2026, 3, 1)
    sub.subscribe("e", order_id="o-1", at=at)
    with localcontext() as ctx:
        ctx.prec = 3
        s = sub.record_usage("m", D("5"), usage_id="u-1", at=at)
    assert D(10) / D(3) == s.quota


@pytest.mark.parametrize("quantity", [D(0), D(-1), D("NaN"), D("Infinity"), "abc", None, True])
def test_bad_quantity_is_invalid_input(quantity: object) -> None:
    """A quantity that is not a positive finite number is refused and changes nothing."""
    sub = lc.Subscription.new("c", catalog=_catalog("1"))
    sub.subscribe("e", order_id="o-1", at=sh(2026, 3, 1))
    before = sub.to_record()
    with pytest.raises(lc.InvalidInput) as info:
        sub.record_usage("m", quantity, usage_id="u-1", at=sh(2026, 3, 2))  # type: ignore[arg-type]
    assert ("quantity", "input.bad_quantity") == (info.value.field, info.value.code)
    assert before == sub.to_record()


@pytest.mark.parametrize(("given", "expected"), [(3, D(3)), ("2.5", D("2.5")), (0.1, D("0.1"))])
def test_quantity_accepts_ints_strings_and_floats_exactly(given: object, expected: Decimal) -> None:
    """Ints, numeric strings and floats (by their shortest repr) become exact Decimals."""
    sub = lc.Subscription.new("c", catalog=_catalog("1"))
    sub.subscribe("e", order_id="o-1", at=sh(2026, 3, 1))
    s = sub.record_usage("m", given, usage_id="u-1", at=sh(2026, 3, 2))  # type: ignore[arg-type]
    assert (expected, expected) == (s.quantity, s.quota)


def _one_edition(credits: str, rate: str) -> lc.Catalog:
    data: dict[str, Any] = {
        "currency": "CNY",
        "trial": {"price": "20.00", "credits": "10"},
        "editions": {"e": {"rank": 1, "price": "1", "credits": credits, "features": ["f"]}},
        "meters": {"m": {"feature": "f", "credit_rate": rate, "payg_price": "1.20"}},
    }
    return lc.Catalog.from_dict(data)


@pytest.mark.parametrize(
    ("credits", "rate", "quantity"),
    [
        ("1999.99999999999999999999999999", "1", "3000"),
        ("2000", "2", "999.9999999999999999999999999999"),
        ("10", "3", "5"),
        ("0.0000000000000000000000000001", "3", "1"),
    ],
)
def test_no_part_of_a_split_is_ever_negative(credits: str, rate: str, quantity: str) -> None:
    """Long pools and rates that do not divide never make payg negative or quota too big."""
    sub = lc.Subscription.new("c", catalog=_one_edition(credits, rate))
    sub.subscribe("e", order_id="o-1", at=sh(2026, 3, 1))
    s = sub.record_usage("m", D(quantity), usage_id="u-1", at=sh(2026, 3, 2))
    parts = (s.quota, s.addons, s.payg, s.denied)
    assert all(part >= 0 for part in parts)
    with localcontext() as exact:
        exact.prec = 200
        assert s.quota * D(rate) <= D(credits)
        assert D(quantity) == sum(parts)
        assert s.payg * D("1.20") == s.amount
    assert (
        sub.to_record()
        == lc.Subscription.from_record(sub.to_record(), catalog=sub.catalog).to_record()
    )


def test_exact_division_is_not_rounded() -> None:
    """A pool of 30 digits at rate 1 covers exactly its own value, not a rounded one."""
    sub = lc.Subscription.new("c", catalog=_one_edition("1999.99999999999999999999999999", "1"))
    sub.subscribe("e", order_id="o-1", at=sh(2026, 3, 1))
    s = sub.record_usage("m", D(3000), usage_id="u-1", at=sh(2026, 3, 2))
    assert D("1999.99999999999999999999999999") == s.quota


def test_exact_division_stays_exact_after_a_number_that_was_rounded() -> None:
    """A refused quantity of 2,000 digits is rounded in parsing, which marks the
    library's own decimal context Inexact; a later settlement must still see its
    own division as exact, not round it down."""
    sub = lc.Subscription.new("c", catalog=_one_edition("1999.99999999999999999999999999", "1"))
    sub.subscribe("e", order_id="o-1", at=sh(2026, 3, 1))
    with pytest.raises(lc.InvalidInput):
        sub.record_usage("m", "9" * 2000, usage_id="u-0", at=sh(2026, 3, 2))
    s = sub.record_usage("m", D(3000), usage_id="u-1", at=sh(2026, 3, 2))
    assert D("1999.99999999999999999999999999") == s.quota


@pytest.mark.parametrize("quantity", [D("9E+999999999999999999"), D("1E+31"), D("1E-51"), "\u0663"])
def test_out_of_range_quantity_is_invalid_input(quantity: object) -> None:
    """Absurd magnitudes and non-ASCII digits are refused before any arithmetic."""
    sub = lc.Subscription.new("c", catalog=_catalog("1"))
    sub.subscribe("e", order_id="o-1", at=sh(2026, 3, 1))
    with pytest.raises(lc.InvalidInput) as info:
        sub.record_usage("m", quantity, usage_id="u-1", at=sh(2026, 3, 2))  # type: ignore[arg-type]
    assert "quantity" == info.value.field


def _metered(meter: dict[str, Any]) -> lc.Catalog:
    data: dict[str, Any] = {
        "currency": "CNY",
        "trial": {"price": "20.00", "credits": "10"},
        "editions": {
            "low": {"rank": 1, "price": "1", "credits": "10", "features": ["f"]},
            "high": {"rank": 2, "price": "1", "credits": "10", "features": ["f"]},
        },
        "meters": {"m": {"feature": "f", "payg_price": "2", **meter}},
    }
    return lc.Catalog.from_dict(data)


def test_payg_without_subscription_meter_is_payg_in_a_trial() -> None:
    """A meter billed without subscription is pay-as-you-go in a trial, trial credits untouched."""
    sub = lc.Subscription.new("c", catalog=_metered({"payg_without_subscription": True}))
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    s = sub.record_usage("m", D(3), usage_id="u-1", at=sh(2026, 3, 1))
    assert (D(0), D(3), D(6), "rtc_ai.standard_or_higher") == (s.quota, s.payg, s.amount, s.rule)
    assert D(10) == sub.remaining_credits(sh(2026, 3, 1))


def test_min_edition_meter_without_payg_everywhere() -> None:
    """A meter with a min_edition but no payg_without_subscription: pay-as-you-go under a
    lower edition, denied in a trial (a trial never bills pay-as-you-go)."""
    catalog = _metered({"min_edition": "high"})
    trial = lc.Subscription.new("t", catalog=catalog)
    trial.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    s = trial.record_usage("m", D(3), usage_id="u-1", at=sh(2026, 3, 1))
    assert (D(0), D(3), "trial.no_payg") == (s.payg, s.denied, s.rule)
    low = lc.Subscription.new("l", catalog=catalog)
    low.subscribe("low", order_id="o-1", at=sh(2026, 3, 1))
    s = low.record_usage("m", D(3), usage_id="u-1", at=sh(2026, 3, 1))
    assert (D(0), D(3), "rtc_ai.standard_or_higher") == (s.quota, s.payg, s.rule)
    high = lc.Subscription.new("h", catalog=catalog)
    high.subscribe("high", order_id="o-1", at=sh(2026, 3, 1))
    s = high.record_usage("m", D(3), usage_id="u-1", at=sh(2026, 3, 1))
    assert (D(3), None) == (s.quota, s.rule)


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ("1" * 60, False),  # 1E+59: too large, though 60 characters
        ("0." + "1" * 58, True),  # 60 characters
        ("0." + "1" * 59, False),  # 61 characters
        ("1E-50", True),
        ("1E-51", False),
        ("9E+30", True),
        ("1E+31", False),
    ],
)
def test_quantity_range_boundaries(text: str, accepted: bool) -> None:
    """Quantities of at most 60 characters, from 1E-50 to below 1E+31, are accepted."""
    sub = lc.Subscription.new("c", catalog=_catalog("1"))
    sub.subscribe("e", order_id="o-1", at=sh(2026, 3, 1))
    try:
        sub.record_usage("m", D(text), usage_id="u-1", at=sh(2026, 3, 2))
    except lc.InvalidInput:
        assert not accepted
    else:
        assert accepted


ENTERPRISE_STATES = {lc.State.ENTERPRISE_ACTIVE, lc.State.QUOTA_EXHAUSTED_PAYG}


@pytest.mark.parametrize(
    "catalog",
    [
        lc.default_catalog(),
        _metered({"min_edition": "high"}),
        _metered({"payg_without_subscription": True}),
        _metered({"min_edition": "high", "payg_without_subscription": True}),
    ],
)
def test_terms_decide_only_where_the_reference_says(catalog: lc.Catalog) -> None:
    """Every rule `terms` returns is listed in DECIDES for that state: the rules
    reference says where each settlement rule acts, and cannot be wrong about it."""
    from lifecycle.settlement import DECIDES, terms

    editions: list[Any] = [None, *catalog.editions.values()]
    for state in lc.State:
        for edition in editions:
            if (edition is None) == (state in ENTERPRISE_STATES):
                continue
            for feature in sorted(catalog.features):
                trial = catalog.trial if state is lc.State.TRIAL else None
                how = terms(state, feature, catalog.meter_for(feature), edition, trial, catalog)
                for rule in (how.rule, how.overflow):
                    if rule is not None:
                        assert state in DECIDES[rule], (rule.code, state, feature)
