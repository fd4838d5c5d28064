"""Idempotency: a caller key answers with its first result, or conflicts."""

import json

import pytest

import lifecycle as lc
from tests.conftest import Clock, D, sh, snapshot, unchanged


def test_same_key_same_arguments_returns_first_result(sub: lc.Subscription) -> None:
    """A retried purchase returns the first receipt and changes nothing."""
    first = sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    with unchanged(sub):
        again = sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 2))
    assert first == again


def test_same_key_other_arguments_conflicts(sub: lc.Subscription) -> None:
    """The same order id for another edition, term or operation is a conflict."""
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    for call in (
        lambda: sub.subscribe("standard", order_id="o-1", at=sh(2026, 3, 2)),
        lambda: sub.subscribe("basic", order_id="o-1", term_months=1, at=sh(2026, 3, 2)),
        lambda: sub.buy_addon("boost-500", order_id="o-1", at=sh(2026, 3, 2)),
    ):
        with unchanged(sub), pytest.raises(lc.IdempotencyConflict) as info:
            call()
        assert ("idempotency.conflict", "o-1") == (info.value.code, info.value.key)
        assert "subscribe(edition='basic', term_months='12')" in str(info.value)


def test_retry_after_later_operations(sub: lc.Subscription) -> None:
    """A retry arriving after later operations still gets its first result, not OutOfOrder."""
    trial = sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    usage = sub.record_usage("media_processing", D(10), usage_id="u-1", at=sh(2026, 3, 2))
    sub.subscribe("basic", order_id="o-2", at=sh(2026, 3, 3))
    with unchanged(sub):
        assert trial == sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
        assert usage == sub.record_usage(
            "media_processing", D("10.0"), usage_id="u-1", at=sh(2026, 3, 2)
        )


def test_usage_key_conflict(sub: lc.Subscription) -> None:
    """A usage id reused for another meter or quantity is a conflict."""
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    sub.record_usage("media_processing", D(10), usage_id="u-1", at=sh(2026, 3, 2))
    for meter, quantity in (("media_processing", D(11)), ("rtc_ai", D(10))):
        with unchanged(sub), pytest.raises(lc.IdempotencyConflict):
            sub.record_usage(meter, quantity, usage_id="u-1", at=sh(2026, 3, 2))


def test_refused_operation_remembers_no_key(sub: lc.Subscription) -> None:
    """A refused operation leaves its key free: the corrected retry is applied."""
    with pytest.raises(lc.RuleViolation):
        sub.purchase_trial(order_id="o-1", discount=D(5), at=sh(2026, 3, 1))
    assert lc.State.TRIAL == sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1)).state


def test_key_namespaces_are_separate(sub: lc.Subscription) -> None:
    """Order ids, request ids and usage ids are separate sequences: equal strings do not clash."""
    sub.subscribe("basic", order_id="k-1", at=sh(2026, 3, 1))
    sub.record_usage("media_processing", D(1), usage_id="k-1", at=sh(2026, 3, 1))
    assert lc.State.UNSUBSCRIBED == sub.unsubscribe(request_id="k-1", at=sh(2026, 3, 1)).state


def test_usage_retried_inside_window_returns_first(sub: lc.Subscription) -> None:
    """Inside the 7-day window a usage retry returns the first settlement."""
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    first = sub.record_usage("media_processing", D(5), usage_id="u-1", at=sh(2026, 3, 2))
    sub.advance(sh(2026, 3, 8, 23, 59))
    assert first == sub.record_usage("media_processing", D(5), usage_id="u-1", at=sh(2026, 3, 2))


def test_usage_retried_past_window_is_out_of_order(sub: lc.Subscription) -> None:
    """Past the window the key is forgotten, and the retry is OutOfOrder: never applied twice."""
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    sub.record_usage("media_processing", D(5), usage_id="u-1", at=sh(2026, 3, 2))
    sub.advance(sh(2026, 3, 9))
    assert [] == sub.to_record()["usage"]
    with unchanged(sub), pytest.raises(lc.OutOfOrder):
        sub.record_usage("media_processing", D(5), usage_id="u-1", at=sh(2026, 3, 2))
    assert D(1995) == sub.remaining_credits(sh(2026, 3, 9))


def test_purchase_keys_are_remembered_for_ever(sub: lc.Subscription) -> None:
    """A purchase retried a year later still returns its receipt."""
    first = sub.subscribe("basic", order_id="o-1", term_months=1, at=sh(2026, 3, 1))
    sub.advance(sh(2027, 3, 1))
    restored = lc.Subscription.from_record(sub.to_record(), catalog=sub.catalog)
    assert first == restored.subscribe("basic", order_id="o-1", term_months=1)


def test_record_size_stays_flat_as_usage_grows(catalog: lc.Catalog) -> None:
    """A year of hourly usage leaves a record about the size of a week's worth."""
    clock = Clock(sh(2026, 1, 1, 0, 0))
    sub = lc.Subscription.new("c", catalog=catalog, clock=clock)
    sub.subscribe("professional", order_id="o-1", at=sh(2026, 1, 1, 0, 0))
    sizes = {}
    for hour in range(24 * 364):
        at = sh(2026, 1, 1, 0, 0) + hour * (sh(2026, 1, 1, 1, 0) - sh(2026, 1, 1, 0, 0))
        sub.record_usage("media_processing", D("0.5"), usage_id=f"u-{hour}", at=at)
        if hour + 1 in (24 * 14, 24 * 364):
            sizes[hour + 1] = len(json.dumps(sub.to_record()))
    assert sizes[24 * 364] < sizes[24 * 14] * 1.05
    assert 24 * 7 == len(sub.to_record()["usage"])
    assert snapshot(sub) == snapshot(lc.Subscription.from_record(sub.to_record(), catalog=catalog))
