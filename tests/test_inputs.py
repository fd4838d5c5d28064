"""Arguments are checked by the engine, the same for every backend, before anything is
touched; results never depend on the caller's decimal context."""

from __future__ import annotations

import decimal
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lifecycle as lc
from tests.conftest import D, refused, sh, unchanged


@pytest.mark.parametrize(
    "value",
    ["", "   ", "x" * 256, "a\x00b", "tab\there", "new\nline", "\x7f", "\ud800", 42, None],
)
def test_bad_customer_ids_are_refused(value: object) -> None:
    """A customer id must be non-blank text of at most 255 characters with no control
    characters: anything else is InvalidInput naming customer_id."""
    with pytest.raises(lc.InvalidInput) as info:
        lc.Subscription.new(value)  # type: ignore[arg-type]
    assert ("customer_id", "input.bad_customer_id") == (info.value.field, info.value.code)


@pytest.mark.parametrize("value", ["x" * 255, "客户-42", "a b", "o-1\u00a0x", "é"])
def test_good_ids_are_taken(value: str) -> None:
    """Up to 255 printable characters of any script are an id, and a key."""
    sub = lc.Subscription.new(value)
    sub.subscribe("basic", order_id=value, at=sh(2026, 3, 1))
    assert value == sub.history[0].key


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.subscribe("basic", order_id="o\x00", at=sh(2026, 3, 2)), "order_id"),
        (lambda s: s.buy_addon("boost-500", order_id="x" * 256, at=sh(2026, 3, 2)), "order_id"),
        (lambda s: s.unsubscribe(request_id="r\n", at=sh(2026, 3, 2)), "request_id"),
        (lambda s: s.record_usage("media_processing", 1, "u\x1b", sh(2026, 3, 2)), "usage_id"),
    ],
)
def test_bad_keys_are_refused_and_change_nothing(call, field: str) -> None:  # type: ignore[no-untyped-def]
    """A key with a control character or over 255 characters is InvalidInput naming the
    argument; the subscription is unchanged."""
    sub = lc.Subscription.new("c")
    sub.subscribe("standard", order_id="o-1", at=sh(2026, 3, 1))
    with unchanged(sub), pytest.raises(lc.InvalidInput) as info:
        call(sub)
    assert (field, "input.bad_key") == (info.value.field, info.value.code)


def test_a_period_that_would_end_beyond_the_last_year_is_refused() -> None:
    """subscribe near the end of the range a record can hold, for a term that would end
    past it, is InvalidInput before anything changes; a trial likewise."""
    sub = lc.Subscription.new("c")
    late = datetime(9000, 6, 1, tzinfo=ZoneInfo("UTC"))
    with unchanged(sub), pytest.raises(lc.InvalidInput) as info:
        sub.subscribe("basic", order_id="o-1", term_months=12, at=late)
    assert ("term_months", "input.out_of_range") == (info.value.field, info.value.code)
    with unchanged(sub), pytest.raises(lc.InvalidInput) as info:
        sub.purchase_trial(order_id="o-2", at=datetime(9000, 12, 15, tzinfo=ZoneInfo("UTC")))
    assert "at" == info.value.field
    sub.subscribe("basic", order_id="o-3", term_months=6, at=late)
    assert lc.Subscription.from_record(sub.to_record()).to_record() == sub.to_record()


def test_a_coupon_is_refused_whatever_the_decimal_context() -> None:
    """purchase_trial(discount="SPRING") is trial.no_discount even when the caller's
    context does not trap invalid operations (Decimal("SPRING") is then NaN, not an
    error)."""
    sub = lc.Subscription.new("c")
    with decimal.localcontext() as context:
        context.traps[decimal.InvalidOperation] = False
        refused(
            sub,
            lambda: sub.purchase_trial(order_id="o-1", discount="SPRING", at=sh(2026, 3, 1)),
            "trial.no_discount",
        )
        with pytest.raises(lc.InvalidInput):
            sub.record_usage("media_processing", "lots", "u-1", sh(2026, 3, 1))


HOSTILE = st.builds(
    lambda prec, rounding, capitals, trap: (prec, rounding, capitals, trap),
    st.integers(1, 6),
    st.sampled_from([decimal.ROUND_UP, decimal.ROUND_FLOOR, decimal.ROUND_CEILING]),
    st.sampled_from([0, 1]),
    st.booleans(),
)


def _life(catalog: lc.Catalog) -> tuple[list[object], dict[str, object]]:
    sub = lc.Subscription.new("c", catalog=catalog)
    results: list[object] = [
        sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1)),
        sub.record_usage("media_processing", D("33.333"), "u-1", sh(2026, 3, 2)),
        sub.subscribe("standard", order_id="o-2", at=sh(2026, 3, 3)),
        sub.record_usage("advanced_effects", D("3999.75"), "u-2", sh(2026, 3, 4)),
        sub.record_usage("rtc_ai", D("12.5E+3"), "u-3", sh(2026, 3, 5)),
        sub.buy_addon("boost-500", order_id="o-3", at=sh(2026, 3, 6)),
        sub.record_usage("media_processing", D("0.000001"), "u-4", sh(2026, 3, 7)),
        sub.remaining_credits(sh(2026, 3, 7)),
        sub.remaining_credits(sh(2026, 3, 4, 13)),
        sub.unsubscribe(request_id="r-1", at=sh(2026, 3, 8)),
    ]
    record = sub.to_record()
    lc.Subscription.from_record(record, catalog=catalog)
    return results, record


@given(HOSTILE)
def test_results_do_not_depend_on_the_callers_decimal_context(
    hostile: tuple[int, str, int, bool],
) -> None:
    """A whole life lived under a context of 1 to 6 digits, other rounding, lower-case
    exponents and untrapped errors gives the very results and record of the default
    context."""
    catalog = lc.default_catalog()
    expected = _life(catalog)
    prec, rounding, capitals, trap = hostile
    with decimal.localcontext() as context:
        context.prec, context.rounding, context.capitals = prec, rounding, capitals
        context.traps[decimal.InvalidOperation] = trap
        context.traps[decimal.Inexact] = trap
        got = _life(catalog)
    assert expected == got


def test_a_replay_says_so_and_still_equals_the_first_result() -> None:
    """A retried key returns the first result with replayed=True; replayed takes no part
    in equality, and a first result says False."""
    sub = lc.Subscription.new("c")
    first = sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    used = sub.record_usage("media_processing", D(5), "u-1", sh(2026, 3, 2))
    again, reused = (
        sub.subscribe("basic", order_id="o-1"),
        sub.record_usage("media_processing", D(5), "u-1", sh(2026, 3, 2)),
    )
    assert (False, False, True, True) == (
        first.replayed,
        used.replayed,
        again.replayed,
        reused.replayed,
    )
    assert (first, used) == (again, reused)


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda sub: sub.subscribe("e" * 100_000, order_id="o-1"), "catalog.unknown_edition"),
        (lambda sub: sub.buy_addon("p" * 100_000, order_id="o-1"), "catalog.unknown_package"),
        (lambda sub: sub.record_usage("m" * 100_000, D(1), "u-1"), "catalog.unknown_meter"),
        (lambda sub: sub.record_usage("rtc_ai", "9" * 100_000, "u-1"), "input.bad_quantity"),
        (lambda sub: sub.record_usage("rtc_ai", "'x\"" * 50_000, "u-1"), "input.bad_quantity"),
    ],
)
def test_a_huge_value_is_not_echoed_whole(call: object, code: str) -> None:
    """A 100 KB name or number comes back in the message and the problem details as
    its first 60 characters and its length, not whole; nothing changes."""
    sub = lc.Subscription.new("c")
    with unchanged(sub), pytest.raises(lc.InvalidInput) as info:
        call(sub)  # type: ignore[operator]
    assert code == info.value.code
    assert len(str(info.value)) < 400
    assert "characters)" in str(info.value)
    assert str(info.value) == info.value.problem()["detail"]
    assert len(info.value.reason) < 400


def test_a_short_value_is_echoed_whole() -> None:
    with pytest.raises(lc.InvalidInput) as info:
        lc.Subscription.new("c").subscribe("platinum", order_id="o-1")
    assert "'platinum' is not in catalog version" in str(info.value)
