"""Late arrivals: an operation behind the mark by at most the catalog's
`late_arrival_minutes` takes effect at the mark, keeping the caller's time as
`requested_at`; further behind it is OutOfOrder. A seen key is answered first."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lifecycle as lc
from tests.conftest import D, catalog_data, sh, unchanged


def strict() -> lc.Catalog:
    data = catalog_data()
    data["late_arrival_minutes"] = 0
    return lc.Catalog.from_dict(data)


def test_a_late_usage_takes_effect_at_the_mark(sub: lc.Subscription) -> None:
    """Usage metered 59 minutes before the last operation is settled at the mark; the
    settlement and the exhaustion it causes keep the caller's time as requested_at."""
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 2, 10))
    sub.record_usage("media_processing", D(50), "u-1", sh(2026, 3, 2, 12))
    late = sub.record_usage("media_processing", D(60), "u-2", sh(2026, 3, 2, 11, 1))
    assert (sh(2026, 3, 2, 12), sh(2026, 3, 2, 11, 1)) == (late.at, late.requested_at)
    assert (D(50), D(10), "trial.no_payg") == (late.quota, late.denied, late.rule)
    used_up = sub.history[-1]
    assert ("trial_used_up", sh(2026, 3, 2, 12), sh(2026, 3, 2, 11, 1)) == (
        used_up.trigger,
        used_up.at,
        used_up.requested_at,
    )
    assert sh(2026, 3, 2, 12) == sub.mark


def test_an_operation_on_time_has_requested_at_equal_to_at(sub: lc.Subscription) -> None:
    """Not late: requested_at is at, on receipts, settlements and history."""
    receipt = sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 2, 10))
    settled = sub.record_usage("media_processing", D(5), "u-1", sh(2026, 3, 2, 11))
    assert receipt.at == receipt.requested_at
    assert settled.at == settled.requested_at
    assert all(entry.at == entry.requested_at for entry in sub.history)


def test_too_late_is_out_of_order_and_changes_nothing(sub: lc.Subscription) -> None:
    """A minute beyond the allowance is OutOfOrder naming the earliest time allowed,
    and the subscription is unchanged."""
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 2, 12))
    with unchanged(sub), pytest.raises(lc.OutOfOrder) as info:
        sub.record_usage("media_processing", D(1), "u-1", sh(2026, 3, 2, 10, 59))
    assert (sh(2026, 3, 2, 11), sh(2026, 3, 2, 12)) == (info.value.earliest, info.value.mark)
    assert "60 minutes" in str(info.value)


def test_a_seen_key_is_answered_first_however_late(sub: lc.Subscription) -> None:
    """A retry of a seen key returns the first result, marked replayed, whatever its
    time: never applied twice, never refused as late."""
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    first = sub.record_usage("media_processing", D(5), "u-1", sh(2026, 3, 2))
    sub.record_usage("media_processing", D(5), "u-2", sh(2026, 3, 5))
    again = sub.record_usage("media_processing", D(5), "u-1", sh(2026, 3, 2))
    assert (first, True) == (again, again.replayed)
    assert sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1)).replayed


def test_strict_order_with_no_allowance() -> None:
    """late_arrival_minutes = 0 keeps the strict order of the first release."""
    sub = lc.Subscription.new("c", catalog=strict())
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 2, 12))
    with pytest.raises(lc.OutOfOrder):
        sub.record_usage("media_processing", D(1), "u-1", sh(2026, 3, 2, 11, 59))


def test_a_late_purchase_counts_in_the_month_it_takes_effect(sub: lc.Subscription) -> None:
    """A trial asked for on 31 March 23:50 and arriving after an operation of 1 April
    00:10 takes effect on 1 April: it is April's trial."""
    sub.record_usage("media_processing", D(1), "u-0", sh(2026, 4, 1, 0, 10))
    receipt = sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 31, 23, 50))
    assert (sh(2026, 4, 1, 0, 10), sh(2026, 3, 31, 23, 50)) == (
        receipt.at,
        receipt.requested_at,
    )
    assert sh(2026, 5, 1, 0, 10) == sub.trial_end


def test_a_late_advance_does_nothing(sub: lc.Subscription) -> None:
    """advance to a time within the allowance behind the mark applies nothing."""
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 2, 12))
    with unchanged(sub):
        assert [] == sub.advance(sh(2026, 3, 2, 11, 30))


def test_requested_at_survives_the_record(sub: lc.Subscription) -> None:
    """A record keeps both instants of a late operation, for history and usage keys."""
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 2, 12))
    sub.record_usage("media_processing", D(100), "u-1", sh(2026, 3, 2, 11, 30))
    loaded = lc.Subscription.from_record(sub.to_record(), catalog=sub.catalog)
    assert sub.history == loaded.history
    assert sh(2026, 3, 2, 11, 30) == loaded.history[-1].requested_at
    replay = loaded.record_usage("media_processing", D(100), "u-1", sh(2026, 3, 2, 11, 30))
    assert sh(2026, 3, 2, 11, 30) == replay.requested_at


@pytest.mark.parametrize(
    ("minutes", "window"), [(-1, 7), (7 * 24 * 60, 7), (3 * 24 * 60, 3), (True, 7)]
)
def test_an_allowance_not_shorter_than_the_window_is_refused(minutes: object, window: int) -> None:
    """late_arrival_minutes must be a whole number of minutes, shorter than the
    idempotency window: a retry must never outlive its key."""
    data = catalog_data()
    data["late_arrival_minutes"] = minutes
    data["idempotency_window_days"] = window
    with pytest.raises(lc.CatalogError) as info:
        lc.Catalog.from_dict(data)
    assert "late_arrival_minutes" == info.value.key


METERED = st.lists(
    st.tuples(st.integers(0, 600), st.integers(0, 60), st.booleans()),
    min_size=1,
    max_size=30,
)


@given(METERED, st.sampled_from(["basic", None]))
def test_usage_delivered_in_any_order_within_the_allowance_is_settled_once(
    metered: list[tuple[int, int, bool]], edition: str | None
) -> None:
    """Usages metered at random minutes and each delivered up to 60 minutes late, so in
    any order the delay allows, some sent twice: none is refused, none is lost, each
    is settled exactly once, and the splits add up to what was sent once."""
    start = sh(2026, 3, 2, 8)
    sub = lc.Subscription.new("c")
    if edition:
        sub.subscribe(edition, order_id="o-1", at=start)
    else:
        sub.purchase_trial(order_id="o-1", at=start)
    arrivals = sorted(
        (start + timedelta(minutes=minute + delay), n, start + timedelta(minutes=minute), twice)
        for n, (minute, delay, twice) in enumerate(metered)
    )
    settled: dict[str, lc.Settlement] = {}
    sent = D(0)
    for _, n, at, twice in arrivals:
        quantity = D(n + 1) / 4
        for attempt in range(2 if twice else 1):
            result = sub.record_usage("media_processing", quantity, f"u-{n}", at)
            if attempt:
                assert (settled[f"u-{n}"], True) == (result, result.replayed)
            else:
                assert not result.replayed
                settled[f"u-{n}"] = result
                sent += quantity
            assert at == result.requested_at
            assert result.at >= at
            assert result.at - at <= timedelta(minutes=60)
    assert len(metered) == len(settled)
    parts = sum((s.quota + s.addons + s.payg + s.denied for s in settled.values()), D(0))
    assert sent == parts
    assert max(s.at for s in settled.values()) == sub.mark


def test_a_read_of_the_mark_is_unaffected_by_late_arrivals(sub: lc.Subscription) -> None:
    """Reads answer as before: a late arrival does not move what a read shows for the
    caller's time, except by what the late usage drew."""
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    sub.record_usage("media_processing", D(10), "u-1", sh(2026, 3, 2, 12))
    sub.record_usage("media_processing", D(5), "u-2", sh(2026, 3, 2, 11, 30))
    assert D(1985) == sub.remaining_credits(sh(2026, 3, 2, 12))
    assert D(2000) == sub.remaining_credits(sh(2026, 3, 2, 11, 59))
    assert isinstance(sub.mark, datetime)
