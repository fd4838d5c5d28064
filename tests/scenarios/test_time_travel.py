"""Stories across month ends, trial ends and period ends, told with freezegun.

No `at=` is passed anywhere: the subscription reads the default clock, which
freezegun moves.
"""

import json

import pytest
from freezegun import freeze_time

import lifecycle as lc
from tests.conftest import D, sh


def test_trial_bought_on_31_january_ends_on_28_february() -> None:
    """A one-month trial bought on 31 January ends on 28 February, same wall time."""
    with freeze_time(sh(2026, 1, 31, 10, 0)) as frozen:
        sub = lc.Subscription.new("c")
        sub.purchase_trial(order_id="o-1")
        frozen.move_to(sh(2026, 2, 28, 9, 59))
        assert lc.State.TRIAL == sub.state
        frozen.move_to(sh(2026, 2, 28, 10, 0))
        assert lc.State.TRIAL_EXHAUSTED == sub.state
        assert D(0) == sub.remaining_credits()
        sub.advance(sh(2026, 3, 1))
    assert ("trial_ended", sh(2026, 2, 28, 10, 0)) == (sub.history[-1].trigger, sub.history[-1].at)


def test_shanghai_march_trial_blocks_another_march_trial() -> None:
    """00:30 on 1 March in Shanghai is February in UTC, yet it is the month's one trial."""
    with freeze_time("2026-02-28T16:30:00+00:00") as frozen:
        sub = lc.Subscription.new("c")
        assert sh(2026, 3, 1, 0, 30) == sub.purchase_trial(order_id="o-1").at
        sub.record_usage("media_processing", D(100), usage_id="u-1")
        frozen.move_to(sh(2026, 3, 31, 23, 59))
        with pytest.raises(lc.RuleViolation, match=r"1 April 2026 00:00 \(Asia/Shanghai\)") as info:
            sub.purchase_trial(order_id="o-2")
        assert "trial.once_per_month" == info.value.code
        frozen.move_to(sh(2026, 4, 1, 0, 0))
        assert lc.State.TRIAL == sub.purchase_trial(order_id="o-2").state


def test_enterprise_period_ending_mid_usage() -> None:
    """Usage flowing across a period's end: credits before it, denied after it."""
    with freeze_time(sh(2026, 1, 31, 12, 0)) as frozen:
        sub = lc.Subscription.new("c")
        sub.subscribe("basic", order_id="o-1", term_months=1)
        frozen.move_to(sh(2026, 2, 28, 11, 0))
        last_paid = sub.record_usage("media_processing", D(5), usage_id="u-1")
        frozen.move_to(sh(2026, 2, 28, 12, 0))
        first_denied = sub.record_usage("media_processing", D(5), usage_id="u-2")
    assert (D(5), lc.State.ENTERPRISE_ACTIVE) == (last_paid.quota, last_paid.state)
    assert (D(5), "service.unavailable", lc.State.EXPIRED) == (
        first_denied.denied,
        first_denied.rule,
        first_denied.state,
    )
    expiry = sub.history[-1]
    assert ("period_ended", sh(2026, 2, 28, 12, 0), "1995") == (
        expiry.trigger,
        expiry.at,
        expiry.details["lapsed"],
    )


def test_record_saved_in_january_read_in_june_shows_expired() -> None:
    """A record written in January and loaded in June reads expired, and stays unchanged."""
    with freeze_time(sh(2026, 1, 5)):
        sub = lc.Subscription.new("c")
        sub.subscribe("standard", order_id="o-1", term_months=3)
        saved = json.dumps(sub.to_record())
    with freeze_time(sh(2026, 6, 1)):
        loaded = lc.Subscription.from_record(json.loads(saved))
        assert lc.State.EXPIRED == loaded.state
        assert D(0) == loaded.remaining_credits()
        assert not loaded.authorize("media_processing").allowed
        assert saved == json.dumps(loaded.to_record())


def test_whole_journey_on_the_clock() -> None:
    """Trial, trial used up, Enterprise, pay-as-you-go, add-on, unsubscribe, a new trial."""
    with freeze_time(sh(2026, 3, 1, 9, 0)) as frozen:
        sub = lc.Subscription.new("c")
        sub.purchase_trial(order_id="o-1")
        sub.record_usage("media_processing", D(120), usage_id="u-1")
        assert lc.State.TRIAL_EXHAUSTED == sub.state
        frozen.move_to(sh(2026, 3, 2))
        sub.subscribe("basic", order_id="o-2", term_months=12)
        sub.record_usage("media_processing", D(2100), usage_id="u-2")
        assert lc.State.QUOTA_EXHAUSTED_PAYG == sub.state
        sub.buy_addon("boost-500", order_id="o-3")
        assert (lc.State.ENTERPRISE_ACTIVE, D(500)) == (sub.state, sub.remaining_credits())
        receipt = sub.unsubscribe(request_id="r-1")
        assert D(500) == receipt.forfeited
        frozen.move_to(sh(2026, 4, 1))
        sub.purchase_trial(order_id="o-4")
        assert lc.State.TRIAL == sub.state
    assert [
        "purchase_trial",
        "trial_used_up",
        "subscribe",
        "quota_used_up",
        "buy_addon",
        "unsubscribe",
        "purchase_trial",
    ] == [t.trigger for t in sub.history]
