"""Stateful property tests: random operation sequences against the SPEC's invariants
and against an independent model of the SPEC (tests/oracle/refmodel.py).

Random time jumps (minutes to months, and jumps landing exactly on a trial or
period end), random keys with retries of earlier ones (same and other
arguments), operations out of order, round trips through the record. Run with
the `ci` hypothesis profile by default (bounded); `HYPOTHESIS_PROFILE=thorough`
runs many more examples.
"""

from __future__ import annotations

import copy
import json
import tomllib
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from importlib import resources
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import lifecycle as lc
from lifecycle.clock import month_of
from tests.oracle.refmodel import RefError, RefSub

D = Decimal
ENTERPRISE = {lc.State.ENTERPRISE_ACTIVE, lc.State.QUOTA_EXHAUSTED_PAYG}
NO_PAYG = {
    lc.State.NONE,
    lc.State.TRIAL,
    lc.State.TRIAL_EXHAUSTED,
    lc.State.UNSUBSCRIBED,
    lc.State.EXPIRED,
}
AFTER = {
    "purchase_trial": {lc.State.TRIAL},
    "subscribe": {lc.State.ENTERPRISE_ACTIVE},
    "buy_addon": {lc.State.ENTERPRISE_ACTIVE},
    "unsubscribe": {lc.State.UNSUBSCRIBED},
}
"""What the SPEC table allows after each successful caller operation."""

PURCHASES = {"purchase_trial", "subscribe", "buy_addon"}

QUANTITIES = st.sampled_from(
    [D("1"), D("0.5"), D("12.5"), D("99"), D("100"), D("250"), D("2000"), D("0.001")]
) | st.decimals(min_value=D("0.01"), max_value=D("9000"), places=2)

JUMPS = st.sampled_from(
    [
        timedelta(0),
        timedelta(minutes=1),
        timedelta(hours=1),
        timedelta(hours=13),
        timedelta(days=1),
        timedelta(days=6, hours=23),
        timedelta(days=7),
        timedelta(days=29),
        timedelta(days=31),
        timedelta(days=92),
    ]
)


def catalog_data(timezone: str) -> dict[str, Any]:
    text = resources.files("lifecycle.catalog").joinpath("default_catalog.toml").read_text("utf-8")
    data = tomllib.loads(text)
    data["timezone"] = timezone
    return data


def outcome_ours(call: Any) -> tuple[Any, ...]:
    try:
        result = call()
    except lc.RuleViolation as error:
        return ("rule", error.code)
    except lc.OutOfOrder:
        return ("out_of_order",)
    except lc.IdempotencyConflict:
        return ("conflict",)
    if isinstance(result, lc.Receipt):
        return ("ok", result.amount, result.state.value, result.forfeited, result.at,
                result.requested_at)  # fmt: skip
    if isinstance(result, lc.Settlement):
        return ("ok", result.quota, result.addons, result.payg, result.denied, result.amount,
                result.rule, result.at, result.requested_at)  # fmt: skip
    return ("ok", [(t.at, t.dest.value) for t in result])


def outcome_model(call: Any) -> tuple[Any, ...]:
    try:
        result = call()
    except RefError as error:
        return ("rule", error.code) if error.kind == "rule" else (error.kind,)
    if isinstance(result, dict) and "forfeited" in result:
        return ("ok", result["amount"], result["state"], result["forfeited"], result["at"],
                result["requested_at"])  # fmt: skip
    if isinstance(result, dict):
        return ("ok", result["quota"], result["addons"], result["payg"], result["denied"],
                result["amount"], result["rule"], result["at"], result["requested_at"])  # fmt: skip
    return ("ok", [(t["at"], t["dest"]) for t in result])


class Lifecycle(RuleBasedStateMachine):
    """One customer's random life, checked step by step."""

    timezone: ClassVar[str] = "Asia/Shanghai"

    def __init__(self) -> None:
        super().__init__()
        data = catalog_data(self.timezone)
        self.catalog = lc.Catalog.from_dict(data)
        self.zone = ZoneInfo(self.timezone)
        self.sub = lc.Subscription.new("cust", catalog=self.catalog)
        self.model = RefSub(catalog=copy.deepcopy(data))
        self.now = datetime(2026, 1, 30, 22, 30, tzinfo=self.zone)
        self.keys: dict[str, dict[str, tuple[str, tuple[Any, ...], datetime]]] = {
            "order": {},
            "request": {},
            "usage": {},
        }
        self.counter = 0
        self.trial_months: list[tuple[int, int]] = []
        self.credits = D(0)

    # --- time --------------------------------------------------------------

    @rule(jump=JUMPS)
    def wait(self, jump: timedelta) -> None:
        self.now += jump

    @rule(which=st.sampled_from(["trial_end", "period_end"]))
    def wait_until_an_end(self, which: str) -> None:
        """Land exactly on the instant a trial or a period ends."""
        end = getattr(self.sub, which)
        if end is not None and end > self.now:
            self.now = end

    # --- operations ----------------------------------------------------------

    def _key(self, kind: str) -> str:
        self.counter += 1
        return f"{kind[0]}-{self.counter}"

    def _apply(self, name: str, kind: str, key: str, args: tuple[Any, ...], at: datetime) -> None:
        sub = self.sub
        seen = self.keys[kind].get(key)
        before_record = json.dumps(sub.to_record(), sort_keys=True)
        before_state = sub.state_at(at) if sub.mark is None or at >= sub.mark else None
        mark = sub.mark
        ours, theirs = self._calls(name, key, args, at)
        mine, reference = outcome_ours(ours), outcome_model(theirs)
        assert reference == mine, (name, key, args, at)
        if mark is not None and at < mark and mine[0] == "ok" and seen is None:
            # a late arrival took effect at the mark: check it there
            before_state, at = None, mark
        event(f"{name}: {mine[0]}" + (f" {mine[1]}" if mine[0] == "rule" else ""))
        after_record = json.dumps(sub.to_record(), sort_keys=True)
        if mine[0] != "ok" or (seen is not None and seen[:2] == (name, args)):
            # a refusal, a conflict, an out-of-order call or a replay changes nothing
            assert before_record == after_record
            return
        if seen is None:
            self.keys[kind][key] = (name, args, at)
        state = sub.state_at(at)
        if name in AFTER:
            assert state in AFTER[name]
        if name == "purchase_trial":
            month = month_of(at, self.zone)
            assert month not in self.trial_months
            self.trial_months.append(month)
        if name == "record_usage":
            self._check_settlement(args, mine[:7], before_state)
        credits = sub.remaining_credits(at)
        assert credits >= 0
        if credits > self.credits:
            assert name in PURCHASES, (name, self.credits, credits)
        self.credits = credits

    def _calls(self, name: str, key: str, args: tuple[Any, ...], at: datetime) -> tuple[Any, Any]:
        sub, model = self.sub, self.model
        if name == "purchase_trial":
            return (lambda: sub.purchase_trial(key, args[0], at),
                    lambda: model.purchase_trial(key, args[0], at))  # fmt: skip
        if name == "subscribe":
            return (lambda: sub.subscribe(args[0], key, args[1], at),
                    lambda: model.subscribe(args[0], key, args[1], at))  # fmt: skip
        if name == "buy_addon":
            return (lambda: sub.buy_addon(args[0], key, at),
                    lambda: model.buy_addon(args[0], key, at))  # fmt: skip
        if name == "unsubscribe":
            return lambda: sub.unsubscribe(key, at), lambda: model.unsubscribe(key, at)
        return (lambda: sub.record_usage(args[0], args[1], key, at),
                lambda: model.record_usage(args[0], args[1], key, at))  # fmt: skip

    def _check_settlement(
        self, args: tuple[Any, ...], outcome: tuple[Any, ...], before: lc.State | None
    ) -> None:
        meter = self.catalog.meters[args[0]]
        _, quota, addons, payg, denied, amount, _rule = outcome
        with localcontext() as exact:
            exact.prec = 200
            assert args[1] == quota + addons + payg + denied
            assert payg * meter.payg_price == amount
        assert min(quota, addons, payg, denied) >= 0
        if before in NO_PAYG and not meter.payg_without_subscription:
            assert payg == 0
        if before in ENTERPRISE:
            assert denied == 0  # every edition of this catalog includes every feature

    @rule(discount=st.sampled_from([None, None, None, D("5"), "SPRING"]))
    def purchase_trial(self, discount: object) -> None:
        self._apply("purchase_trial", "order", self._key("order"), (discount,), self.now)

    @rule(
        edition=st.sampled_from(["basic", "standard", "professional"]),
        term=st.sampled_from([1, 1, 3, 12]),
    )
    def subscribe(self, edition: str, term: int) -> None:
        self._apply("subscribe", "order", self._key("order"), (edition, term), self.now)

    @rule(package=st.sampled_from(["boost-500", "boost-2000"]))
    def buy_addon(self, package: str) -> None:
        self._apply("buy_addon", "order", self._key("order"), (package,), self.now)

    @rule()
    def unsubscribe(self) -> None:
        self._apply("unsubscribe", "request", self._key("request"), (), self.now)

    @rule(meter=st.sampled_from(["media_processing", "advanced_effects", "rtc_ai"]), q=QUANTITIES)
    def record_usage(self, meter: str, q: Decimal) -> None:
        self._apply("record_usage", "usage", self._key("usage"), (meter, q), self.now)

    @rule()
    def advance(self) -> None:
        mine = outcome_ours(lambda: self.sub.advance(self.now))
        assert outcome_model(lambda: self.model.advance(self.now)) == mine
        if mine[0] == "ok":
            self.credits = self.sub.remaining_credits(self.now)

    @rule(data=st.data(), same=st.booleans())
    def retry(self, data: st.DataObject, same: bool) -> None:
        """An earlier key again, with its arguments (a replay) or others (a conflict).

        A usage is retried with its own `at`, as the SPEC says a client must: past
        the idempotency window that makes it OutOfOrder, never applied twice.
        Purchases are retried now: their keys are remembered for ever.
        """
        kinds = [k for k, v in self.keys.items() if v]
        if not kinds:
            return
        kind = data.draw(st.sampled_from(kinds))
        key = data.draw(st.sampled_from(sorted(self.keys[kind])))
        name, args, first_at = self.keys[kind][key]
        at = first_at if kind == "usage" else self.now
        if not same:
            name, args = {
                "purchase_trial": ("purchase_trial", (D("5"),)),
                "subscribe": ("subscribe", ("basic", 7)),
                "buy_addon": ("subscribe", ("standard", 2)),
                "unsubscribe": ("unsubscribe", ()),
                "record_usage": ("record_usage", ("rtc_ai", D("77.7"))),
            }[name]
            if (name, args) == self.keys[kind][key][:2]:
                return
        self._apply(name, kind, key, args, at)

    @rule(back=st.sampled_from([timedelta(seconds=1), timedelta(hours=5), timedelta(days=40)]))
    def late_usage(self, back: timedelta) -> None:
        """An operation earlier than the mark is OutOfOrder and changes nothing."""
        if self.sub.mark is None:
            return
        at = self.sub.mark - back
        self._apply("record_usage", "usage", self._key("usage"), ("media_processing", D(1)), at)

    @rule()
    def round_trip(self) -> None:
        """Carry on with the subscription loaded from its own record."""
        record = json.loads(json.dumps(self.sub.to_record()))
        self.sub = lc.Subscription.from_record(record, catalog=self.catalog)
        assert record == self.sub.to_record()

    @rule(ahead=JUMPS)
    def projection(self, ahead: timedelta) -> None:
        """state_at(t) equals the state after advance(t), on a copy; reads match the model."""
        t = self.now + ahead
        if self.sub.mark is not None and t < self.sub.mark:
            return
        twin = lc.Subscription.from_record(self.sub.to_record(), catalog=self.catalog)
        twin.advance(t)
        assert twin.state_at(t) == self.sub.state_at(t)
        assert self.model.state_at(t) == self.sub.state_at(t).value

    @invariant()
    def reads_agree_with_the_model(self) -> None:
        at = self.now
        if self.sub.mark is not None and at < self.sub.mark - self.catalog.window:
            return
        assert self.model.state_at(at) == self.sub.state_at(at).value
        assert self.model.remaining_credits(at) == self.sub.remaining_credits(at)
        for feature in sorted(self.catalog.features):
            mine = self.sub.authorize(feature, at)
            theirs = self.model.authorize(feature, at)
            assert (theirs["allowed"], theirs["billing"], theirs["rule"]) == (
                mine.allowed,
                mine.billing,
                mine.rule,
            )


class LifecycleInBerlin(Lifecycle):
    """The same life in a zone with daylight saving, so month ends and DST changes meet."""

    timezone = "Europe/Berlin"


# NOTE: a stateful example is a whole life, so fewer of them than the profile's
# max_examples, each of 40 steps; the `thorough` profile raises both.
_PROFILE = settings()
for _machine in (Lifecycle, LifecycleInBerlin):
    _machine.TestCase.settings = settings(
        _PROFILE,
        max_examples=max(8, _PROFILE.max_examples // 2),
        stateful_step_count=40 if _PROFILE.max_examples < 1000 else 80,
    )

TestLifecycle = Lifecycle.TestCase
TestLifecycleInBerlin = LifecycleInBerlin.TestCase
