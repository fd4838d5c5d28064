"""The Subscription aggregate: effects of each operation, pure reads, history."""

from datetime import UTC, datetime, timedelta

import pytest

import lifecycle as lc
from tests.conftest import Clock, D, sh, snapshot, unchanged


def test_new_subscription_has_bought_nothing(sub: lc.Subscription) -> None:
    """A new subscription is in none, with no credits, history or mark."""
    assert (lc.State.NONE, D(0), (), None) == (
        sub.state,
        sub.remaining_credits(),
        sub.history,
        sub.mark,
    )


def test_new_uses_default_catalog_and_validates_the_customer() -> None:
    """Without a catalog the shipped one is used; a blank customer id is InvalidInput."""
    assert lc.default_catalog() is lc.Subscription.new("c").catalog
    with pytest.raises(lc.InvalidInput) as info:
        lc.Subscription.new("  ")
    assert "customer_id" == info.value.field


def test_purchase_trial_receipt_and_effects(sub: lc.Subscription) -> None:
    """A trial costs CNY 20, grants 100 credits and runs one calendar month."""
    receipt = sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 10, 9, 15))
    assert (
        lc.Receipt(
            "purchase_trial", "o-1", sh(2026, 3, 10, 9, 15), D("20.00"), lc.State.TRIAL, D(0)
        )
        == receipt
    )
    assert D(100) == sub.remaining_credits(sh(2026, 3, 10, 9, 15))
    assert sh(2026, 4, 10, 9, 15) == sub.trial_end


def test_subscribe_from_trial_forfeits_the_rest(sub: lc.Subscription) -> None:
    """Subscribing during a trial ends it; its unused credits are recorded as forfeited."""
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    sub.record_usage("media_processing", D(30), usage_id="u-1", at=sh(2026, 3, 2))
    receipt = sub.subscribe("standard", order_id="o-2", term_months=3, at=sh(2026, 3, 3))
    assert (D("3000.00"), D(70), lc.State.ENTERPRISE_ACTIVE) == (
        receipt.amount,
        receipt.forfeited,
        receipt.state,
    )
    assert D(8000) == sub.remaining_credits(sh(2026, 3, 3))
    assert (sh(2026, 6, 3), "standard") == (sub.period_end, sub.edition)
    assert ("trial", "enterprise-active", "70") == (
        sub.history[-1].source,
        sub.history[-1].dest,
        sub.history[-1].details["forfeited"],
    )


def test_period_end_lapses_credits(sub: lc.Subscription) -> None:
    """At the period's end the subscription expires and what was left is recorded as lapsed."""
    sub.subscribe("basic", order_id="o-1", term_months=1, at=sh(2026, 1, 31))
    sub.buy_addon("boost-500", order_id="o-2", at=sh(2026, 2, 1))
    applied = sub.advance(sh(2026, 3, 1))
    assert 1 == len(applied)
    (expiry,) = applied
    assert ("period_ended", sh(2026, 2, 28), "2500") == (
        expiry.trigger,
        expiry.at,
        expiry.details["lapsed"],
    )
    assert (lc.State.EXPIRED, D(0)) == (sub.state_at(sh(2026, 3, 1)), sub.remaining_credits())


def test_period_is_half_open(sub: lc.Subscription) -> None:
    """The period is [start, end): usage at the end instant is already expired."""
    sub.subscribe("basic", order_id="o-1", term_months=1, at=sh(2026, 3, 1))
    end = sh(2026, 4, 1)
    before = sub.record_usage(
        "media_processing", D(1), usage_id="u-1", at=end - timedelta(microseconds=1)
    )
    at_end = sub.record_usage("media_processing", D(1), usage_id="u-2", at=end)
    assert (D(1), D(1)) == (before.quota, at_end.denied)
    assert (lc.State.ENTERPRISE_ACTIVE, lc.State.EXPIRED) == (before.state, at_end.state)


def test_timed_transition_recorded_at_its_own_instant(sub: lc.Subscription) -> None:
    """A trial end found by a later operation is recorded when it happened, before the operation."""
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    sub.subscribe("basic", order_id="o-2", at=sh(2026, 5, 20))
    ended, subscribed = sub.history[1:]
    assert ("trial_ended", sh(2026, 4, 1), "100") == (
        ended.trigger,
        ended.at,
        ended.details["lapsed"],
    )
    assert ("subscribe", sh(2026, 5, 20), lc.State.TRIAL_EXHAUSTED) == (
        subscribed.trigger,
        subscribed.at,
        subscribed.source,
    )
    assert [1, 2, 3] == [t.seq for t in sub.history]


def test_reads_are_pure(sub: lc.Subscription, clock: Clock) -> None:
    """state, state_at, remaining_credits and authorize project time but change nothing."""
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    clock.now = sh(2026, 6, 1)
    with unchanged(sub):
        assert lc.State.TRIAL_EXHAUSTED == sub.state
        assert lc.State.TRIAL == sub.state_at(sh(2026, 3, 31, 23, 59))
        assert D(0) == sub.remaining_credits()
        assert D(100) == sub.remaining_credits(sh(2026, 3, 2))
        assert not sub.authorize("media_processing").allowed
    assert sh(2026, 3, 1) == sub.mark


def test_reads_before_the_mark_show_the_past(sub: lc.Subscription) -> None:
    """A read earlier than the last operation shows the subscription as it stood then."""
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    sub.record_usage("media_processing", D(30), usage_id="u-1", at=sh(2026, 3, 2))
    sub.subscribe("basic", order_id="o-2", at=sh(2026, 3, 3))
    sub.record_usage("rtc_ai", D(4), usage_id="u-2", at=sh(2026, 3, 4))
    sub.record_usage("media_processing", D(5), usage_id="u-3", at=sh(2026, 3, 5))
    with unchanged(sub):
        assert (lc.State.NONE, D(0)) == (
            sub.state_at(sh(2026, 2, 28)),
            sub.remaining_credits(sh(2026, 2, 28)),
        )
        assert (lc.State.TRIAL, D(100), D(70)) == (
            sub.state_at(sh(2026, 3, 1)),
            sub.remaining_credits(sh(2026, 3, 1)),
            sub.remaining_credits(sh(2026, 3, 2)),
        )
        assert (D(2000), D(1995)) == (
            sub.remaining_credits(sh(2026, 3, 4)),
            sub.remaining_credits(sh(2026, 3, 5)),
        )
        decision = sub.authorize("dedicated_customer_service", at=sh(2026, 3, 2))
        assert lc.Decision(False, "denied", "trial.feature_excluded") == decision
        rtc = sub.authorize("realtime_conversational_ai", at=sh(2026, 3, 4))
        assert lc.Decision(True, "payg", "rtc_ai.standard_or_higher") == rtc


def test_past_balance_is_kept_back_to_the_window(sub: lc.Subscription) -> None:
    """Credits further back than the idempotency window are not kept: OutOfOrder says so."""
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    sub.record_usage("media_processing", D(5), usage_id="u-1", at=sh(2026, 3, 2))
    sub.advance(sh(2026, 3, 20))
    assert lc.State.ENTERPRISE_ACTIVE == sub.state_at(sh(2026, 3, 1))
    with pytest.raises(lc.OutOfOrder, match="idempotency window"):
        sub.remaining_credits(sh(2026, 3, 1))


def test_advance_moves_the_mark_and_refuses_the_past(sub: lc.Subscription) -> None:
    """advance applies only timed transitions, moves the mark, and cannot go back."""
    assert [] == sub.advance(sh(2026, 3, 1))
    assert sh(2026, 3, 1) == sub.mark
    with unchanged(sub), pytest.raises(lc.OutOfOrder) as info:
        sub.advance(sh(2026, 2, 1))
    assert "order.out_of_order" == info.value.code


def test_operations_out_of_order_change_nothing(sub: lc.Subscription) -> None:
    """An operation earlier than the mark is OutOfOrder and changes nothing."""
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 5))
    for call in (
        lambda: sub.record_usage("media_processing", D(1), usage_id="u-1", at=sh(2026, 3, 4)),
        lambda: sub.buy_addon("boost-500", order_id="o-2", at=sh(2026, 3, 4)),
        lambda: sub.unsubscribe(request_id="r-1", at=sh(2026, 3, 4)),
    ):
        with unchanged(sub), pytest.raises(lc.OutOfOrder):
            call()
    # the same instant as the mark is in order
    sub.record_usage("media_processing", D(1), usage_id="u-1", at=sh(2026, 3, 5))


def test_clock_is_read_at_call_time(sub: lc.Subscription, clock: Clock) -> None:
    """With at=None the operation takes the clock's reading at call time."""
    clock.now = sh(2026, 3, 12, 8, 0)
    receipt = sub.purchase_trial(order_id="o-1")
    assert sh(2026, 3, 12, 8, 0) == receipt.at


@pytest.mark.parametrize("bad", [datetime(2026, 3, 1), "2026-03-01"])
def test_naive_or_wrong_at_is_invalid_input(sub: lc.Subscription, bad: object) -> None:
    """A naive datetime (or not a datetime) is InvalidInput naming `at`; nothing changes."""
    with unchanged(sub), pytest.raises(lc.InvalidInput) as info:
        sub.purchase_trial(order_id="o-1", at=bad)  # type: ignore[arg-type]
    assert "at" == info.value.field


def test_naive_clock_is_invalid_input(catalog: lc.Catalog) -> None:
    """A clock that returns a naive datetime is reported as the clock's fault."""
    sub = lc.Subscription.new("c", catalog=catalog, clock=lambda: datetime(2026, 3, 1))
    with pytest.raises(lc.InvalidInput) as info:
        sub.state  # noqa: B018
    assert ("clock", "input.naive_datetime") == (info.value.field, info.value.code)


@pytest.mark.parametrize(
    ("call", "field", "code"),
    [
        (lambda s: s.subscribe("gold", order_id="o"), "edition", "catalog.unknown_edition"),
        (lambda s: s.buy_addon("boost-9", order_id="o"), "package", "catalog.unknown_package"),
        (lambda s: s.record_usage("x", D(1), usage_id="u"), "meter", "catalog.unknown_meter"),
        (lambda s: s.authorize("teleport"), "feature", "catalog.unknown_feature"),
        (lambda s: s.subscribe("basic", order_id=""), "order_id", "input.bad_key"),
        (lambda s: s.subscribe("basic", order_id=7), "order_id", "input.bad_key"),
        (lambda s: s.unsubscribe(request_id=None), "request_id", "input.bad_key"),
        (lambda s: s.record_usage("rtc_ai", D(1), usage_id="u" * 256), "usage_id", "input.bad_key"),
        (
            lambda s: s.subscribe("basic", order_id="o", term_months=0),
            "term_months",
            "input.bad_term",
        ),
        (
            lambda s: s.subscribe("basic", order_id="o", term_months=1.5),
            "term_months",
            "input.bad_term",
        ),
        (
            lambda s: s.subscribe("basic", order_id="o", term_months=True),
            "term_months",
            "input.bad_term",
        ),
    ],
)
def test_bad_arguments_are_invalid_input(
    sub: lc.Subscription, call: object, field: str, code: str
) -> None:
    """Each bad argument is InvalidInput naming it, with a stable code; nothing changes."""
    before = snapshot(sub)
    with pytest.raises(lc.InvalidInput) as info:
        call(sub)  # type: ignore[operator]
    assert (field, code) == (info.value.field, info.value.code)
    assert before == snapshot(sub)


def test_receipt_and_history_times_are_utc(sub: lc.Subscription) -> None:
    """Times come back as the same instants, in UTC."""
    receipt = sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1, 8, 0))
    assert datetime(2026, 3, 1, 0, 0, tzinfo=UTC) == receipt.at
    assert UTC is receipt.at.tzinfo


def test_a_failing_clock_is_invalid_input(catalog: lc.Catalog) -> None:
    """A clock that raises or wants arguments is reported as the clock's fault."""
    for clock in (lambda: 1 / 0, lambda now: now):
        sub = lc.Subscription.new("c", catalog=catalog, clock=clock)  # type: ignore[arg-type]
        with pytest.raises(lc.InvalidInput) as info:
            sub.purchase_trial(order_id="o-1")
        assert "clock" == info.value.field


def test_blank_keys_are_refused(sub: lc.Subscription) -> None:
    """A whitespace-only key is no key."""
    with pytest.raises(lc.InvalidInput) as info:
        sub.purchase_trial(order_id="   ", at=sh(2026, 3, 1))
    assert "order_id" == info.value.field


def test_far_future_is_out_of_range(sub: lc.Subscription) -> None:
    """Instants near the end of the calendar are refused before they can overflow."""
    with unchanged(sub), pytest.raises(lc.InvalidInput) as info:
        sub.subscribe("basic", order_id="o-1", at=datetime(9999, 6, 1, tzinfo=UTC))
    assert "input.out_of_range" == info.value.code


def test_refusal_state_is_a_state(sub: lc.Subscription) -> None:
    """RuleViolation.state is the State member (and still equal to its value)."""
    with pytest.raises(lc.RuleViolation) as info:
        sub.unsubscribe(request_id="r-1", at=sh(2026, 3, 1))
    assert lc.State.NONE is info.value.state
    assert "none" == info.value.state


def test_last_trial_and_period_are_kept(sub: lc.Subscription) -> None:
    """trial_end and period_end keep the current or last trial and period."""
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    sub.subscribe("basic", order_id="o-2", term_months=1, at=sh(2026, 3, 2))
    assert (sh(2026, 4, 1), sh(2026, 4, 2)) == (sub.trial_end, sub.period_end)
    sub.purchase_trial(order_id="o-3", at=sh(2026, 4, 3))
    assert (sh(2026, 5, 3), sh(2026, 4, 2), "basic") == (sub.trial_end, sub.period_end, sub.edition)


def test_failing_clock_message_says_so(catalog: lc.Catalog) -> None:
    """The clock's own error is named in the message."""
    sub = lc.Subscription.new("c", catalog=catalog, clock=lambda: 1 / 0)  # type: ignore[arg-type,return-value]
    with pytest.raises(lc.InvalidInput, match="raised ZeroDivisionError"):
        sub.remaining_credits()


def test_every_read_defaults_to_the_clocks_now(catalog: lc.Catalog) -> None:
    """state_at, remaining_credits, authorize and status all read as of the clock's
    now when given no time, as the async store's snapshot does."""
    from lifecycle.testing import ManualClock

    clock = ManualClock(sh(2026, 3, 1, 9))
    sub = lc.Subscription.new("c", catalog=catalog, clock=clock)
    sub.purchase_trial(order_id="o-1")
    clock.advance(timedelta(days=40))
    assert lc.State.TRIAL_EXHAUSTED == sub.state_at() == sub.state_at(clock()) == sub.state
    assert sub.remaining_credits() == sub.remaining_credits(clock())
    assert sub.status() == sub.status(clock())
