"""Independent reference model of the `lifecycle` billing state machine.

Written from SPEC.md and the billing FAQ alone, by an author who did not read
the library's code, as the oracle of the differential property test
(tests/test_properties.py). Standard library only; simple and literal on
purpose, not fast: it deep-copies its state on every operation and keeps a
snapshot after each, so it can answer any past read.

Where its reading of the SPEC (the AMBIGUITIES below) differs from the
library's documented decisions (README, "Decisions"), the differential test
does not generate those inputs: A3 (default term), A12 (negative discounts),
A14 (one key namespace), A29 (edition features).

======================================================================
AMBIGUITIES  (where SPEC.md is silent or loose, and the choice made here)
======================================================================

Prices, credits, terms
 A1. subscribe Receipt.amount does NOT depend on term_months: it is the
     edition's catalog `price`, once per subscribe (the catalog has one price,
     and SPEC never says "per month").
 A2. The base quota does NOT depend on term_months either: a period gets the
     edition's `credits` once ("with the edition's quota").
 A3. term_months is required to be an int >= 1 (bool refused) -> invalid
     "invalid.term_months".  Its default in this model is 1 (SPEC gives no
     default; its example passes 12).
 A4. purchase_trial Receipt.amount = trial price "20.00"; buy_addon amount =
     package price; unsubscribe amount = 0 (no refund: the FAQ says unused
     resources are forfeited).  Amounts are returned un-quantized exactly as
     the catalog Decimal (e.g. Decimal("20.00")).
 A5. Receipt.forfeited counts only credits this operation itself gave up:
       - subscribe from trial: the trial credits left (trial ends);
       - subscribe from any other state: 0 (quota-exhausted-payg has none
         left by definition; expired/unsubscribed ones were already zeroed);
       - unsubscribe: base + add-on credits left;
       - purchase_trial, buy_addon: 0.
     Credits that lapse in a timed transition applied at the start of the
     operation (trial end, period end) are NOT counted in the Receipt; they
     are recorded (as "lapsed") only in the history entry of that transition.
 A6. Forfeited amounts are in credits (not money).
 A7. When the trial ends by time, its leftover credits lapse (set to 0),
     so remaining_credits is 0 in trial-exhausted.
 A8. Add-on credits bought in a period lapse with that period; since
     subscribe is refused while enterprise-active and quota-exhausted-payg has
     no add-on credits left, add-ons can never outlive their period anyway.

Guards and refusal order
 A9. Check order for every caller operation:
       1. `at` (None / not a datetime / naive -> invalid), key (must be a
          non-empty str -> invalid "invalid.key"), then the arguments (unknown
          edition/package/meter, bad quantity, bad term_months -> invalid);
       2. idempotency key lookup (replay -> first result; different
          arguments -> conflict);
       3. order check (at < mark -> out_of_order, unless within the
          late-arrival allowance: then the operation takes effect at the
          mark, A36-A37);
       4. timed transitions due by the effective `at` are applied (on a
          scratch copy);
       5. state/rule guards (rule).
     So an invalid argument beats an idempotency conflict, and a key seen
     before beats both the order check and any rule.
 A10. purchase_trial guard order: state first (trial, enterprise-active,
     quota-exhausted-payg -> transition.not_allowed), then
     trial.once_per_month, then trial.no_discount (the order the transition
     table lists them).  So a discounted trial in a month that already had a
     trial reports trial.once_per_month; purchase_trial while a trial is
     running reports transition.not_allowed even if bought this month.
 A11. subscribe from enterprise-active -> subscribe.already_active (never
     transition.not_allowed); buy_addon outside enterprise-active /
     quota-exhausted-payg -> addon.enterprise_only; unsubscribe outside them
     -> unsubscribe.enterprise_only.  transition.not_allowed therefore only
     arises from purchase_trial.
 A12. Discount: None or any value numerically equal to zero (0, 0.0,
     Decimal("0"), "0", False) is "no discount".  Anything else (non-zero
     numbers, negative numbers, strings like "SPRING10", NaN, ...) is a
     discount and is refused with trial.no_discount.
 A13. trial.once_per_month compares the (year, month) of `at` in the
     catalog zone with the (year, month) of every *successful* earlier trial
     purchase.  Refused purchases do not count.  It is per calendar month,
     not "30 days since the last trial".

Idempotency
 A14. All caller keys (order_id, request_id, usage_id) share ONE namespace.
     The stored request is (operation name, normalized arguments); the same
     key used for a different operation is an IdempotencyConflict
     (kind "conflict", code "idempotency.conflict").
 A15. Compared arguments: purchase_trial -> discount normalized (every
     "no discount" value is equal, A12); subscribe -> (edition,
     term_months); buy_addon -> package; unsubscribe -> nothing;
     record_usage -> (meter, quantity) with quantity compared numerically
     (Decimal("12.5") == Decimal("12.50")).  `at` is never compared.
 A16. A replay returns an equal copy of the first result (not the current
     state), changes nothing and does not move the mark.
 A17. Refused operations (rule, out_of_order, conflict, invalid) do not
     store their key: the same key may be used again later and is evaluated
     afresh.
 A18. Usage keys are forgotten when mark >= usage.at + window
     (window = timedelta(days=idempotency_window_days), absolute 24h days,
     not calendar days in the zone).  Forgetting happens only when the mark
     moves (after each successful operation, advance included).  After that
     a retry with its own `at` is out_of_order; a retry with a *new* `at` at
     or after the mark is a new usage.  Purchase/unsubscribe keys are kept
     for ever.
 A19. Usage that settles as all `denied` is still a successful operation:
     its key is stored and the mark moves.

Time
 A20. A timed transition is due when its instant <= t ([start, end)
     periods): an operation or read exactly at a trial end / period end
     sees trial-exhausted / expired first.
 A21. Calendar months: convert the start to the catalog zone, add months
     to (year, month), clamp the day to the month's length, keep the local
     wall-clock time, re-attach the zone (fold=0; Asia/Shanghai has no
     DST today, historic DST gaps are not handled specially).  End instants
     are kept in the catalog zone; all comparisons are by instant.
 A22. Operations at exactly the mark are allowed (only strictly earlier,
     and then only beyond the late-arrival allowance, A36, is
     out_of_order).  advance(at) is an operation: it moves the mark, it can
     be out_of_order, it takes no key, and returns the list of transition
     records it applied (possibly empty).  Each record's `at` is the
     transition's own instant.
 A23. Reads (state_at, remaining_credits, authorize) at a time BEFORE the
     mark show the subscription as it stood at that time: this model keeps
     a snapshot after every successful operation and replays the timed
     transitions from the latest snapshot whose time is <= the read time
     (before the first operation: the empty `none` subscription).  Reads at
     or after the mark use the current state plus due timed transitions.
     Reads validate `at` (naive -> invalid) and never move the mark.
 A24. Credit exhaustion caused by record_usage (trial -> trial-exhausted,
     enterprise-active -> quota-exhausted-payg) happens at the usage's `at`
     and is recorded in the history as its own entry with trigger
     "credits_exhausted" after the usage.  Exhaustion happens exactly when
     the balance reaches 0 (an exact-cover usage exhausts the trial; its
     rule is None because nothing was denied).

Settlement
 A25. Units are split fractionally: with 3 credits left and credit_rate 2,
     1.5 units are covered.  Arithmetic uses a 100-digit Decimal context;
     with a non-terminating rate (e.g. 3) the split would be rounded there
     (not arising with this catalog, whose rates are 1 and 2).
 A26. Settlement.amount = payg * payg_price, exact, NOT quantized to cents
     (e.g. 12.5 * 0.50 = Decimal("6.250")); 0 when nothing is payg.
 A27. Rule precedence for a meter:
       trial: excluded feature (trial.feature_excluded, all denied) >
              payg_without_subscription meter (rtc_ai.standard_or_higher,
              all payg, no trial credits drawn) > trial credits
              (rest denied -> trial.no_payg);
       enterprise-active / quota-exhausted-payg: min_edition not met ->
              all payg; rule rtc_ai.standard_or_higher (checked BEFORE
              quota.payg_overage, also in quota-exhausted-payg);
              otherwise enterprise-active draws credits and the rest is payg
              (quota.payg_overage only if payg > 0, else None);
              quota-exhausted-payg is all payg with quota.payg_overage;
       none / trial-exhausted / unsubscribed / expired: meter with
              payg_without_subscription -> all payg
              (rtc_ai.standard_or_higher); otherwise all denied
              (service.unavailable).
     A meter with min_edition not met but payg_without_subscription false
     (absent from this catalog) is treated as all payg as well.
 A28. The `rule` code "rtc_ai.standard_or_higher" is used for every meter
     with payg_without_subscription / min_edition (the SPEC has only that
     one code for it).
 A29. An edition's `features` list does not gate usage or authorize
     (every edition lists every feature in this catalog).
 A30. Quantity must be a positive finite number: int (not bool), Decimal,
     or float (converted via str()); strings and bools are invalid
     ("invalid.quantity"), as are 0, negatives, NaN and infinities.

authorize
 A31. Known features = union of all editions' features, the trial's
     excluded features and all meters' features; anything else -> invalid
     "catalog.unknown_feature".  A feature's meter is the first meter in
     catalog order whose `feature` is it; "included" is for a feature with
     no meter.
 A32. Decisions:
       none / trial-exhausted / unsubscribed / expired: meter with
         payg_without_subscription -> (True, "payg",
         rtc_ai.standard_or_higher); anything else -> (False, "denied",
         service.unavailable), including unmetered features.
       trial: excluded -> (False, "denied", trial.feature_excluded);
         payg_without_subscription meter -> (True, "payg", rtc rule);
         metered -> (True, "credits", None); unmetered -> (True,
         "included", None).
       enterprise-active: min_edition not met -> (True, "payg", rtc rule);
         metered -> (True, "credits", None) (or payg/quota.payg_overage if
         somehow no credit is left); unmetered -> (True, "included", None).
       quota-exhausted-payg: min_edition not met -> (True, "payg", rtc
         rule); metered -> (True, "payg", quota.payg_overage); unmetered
         -> (True, "included", None).

Errors
 A33. RefError(kind, code): kind "rule" carries the SPEC rule code; the
     other codes are this model's own: "out_of_order",
     "idempotency.conflict", "invalid.naive_datetime", "invalid.datetime",
     "invalid.key", "invalid.quantity", "invalid.term_months",
     "catalog.unknown_edition", "catalog.unknown_package",
     "catalog.unknown_meter", "catalog.unknown_feature".
 A34. `at` is mandatory in this model (no clock); None -> invalid
     "invalid.datetime".

History
 A35. `history` (list of dicts seq/at/requested_at/trigger/source/dest/key/
     details, A40) gets
     an entry for every purchase, unsubscribe and timed / exhaustion
     transition; record_usage adds one only when it exhausts credits, and
     advance adds only the timed transitions.  It is informative only.

Late arrivals (SPEC section 8, amends section 5)
 A36. The allowance is the catalog's `late_arrival_minutes` (absent -> 60),
     read from the catalog dict like `idempotency_window_days`.  It must be
     an int >= 0 (bool refused) and strictly shorter than the idempotency
     window; otherwise the constructor raises ValueError (the model's
     stand-in for the library's CatalogError).  0 is today's strict order,
     exactly: every `at` < mark is out_of_order.
 A37. With mark set and at < mark: mark - at <= allowance -> applied with
     effective time = the mark; mark - at > allowance -> out_of_order (and
     nothing changes).  at >= mark is unchanged (effective time = at).  The
     boundary is inclusive: exactly `allowance` behind is still applied.
 A38. A late operation behaves exactly as if it had been called with
     at = mark: timed transitions due by the mark (already applied when the
     mark was set) are applied, every guard uses the effective time (the
     once-per-calendar-month trial rule looks at the mark's month; a trial
     end / period end is computed from the mark), and the mark does not
     move.  A read at a time between `at` and the mark does not see it
     (its effect starts at the mark; snapshots are keyed by effective time).
 A39. The idempotency lookup (A9 step 2) still comes first: a seen key is
     replayed (or a conflict) whatever its `at`, even far beyond the
     allowance; a replay returns the first result, including the first
     call's `at` and `requested_at`.  A late usage's key is remembered with
     its effective `at` (the mark), and A18's forgetting counts the window
     from that effective `at`.  Since the allowance is shorter than the
     window, a forgotten usage retried with its own `at` is still
     out_of_order, never applied twice.
 A40. Results and history carry both instants: every receipt / settlement
     dict has `at` (effective) and `requested_at` (the caller's `at`; equal
     to `at` when not late).  History entries of the operation itself, and
     of an exhaustion it causes (A24), have `at` = effective time and
     `requested_at` = the caller's `at`; timed transitions (applied along
     the way or by advance) have `requested_at` equal to their own `at`.
 A41. advance(at) is an operation too: behind the mark within the allowance
     it is a no-op at the mark (nothing is due there that was not already
     applied, so it returns []); further behind, out_of_order.
 A42. Reads (state_at, remaining_credits, authorize) are unchanged.  The
     SPEC's `sweep(now)` allowance (store level) is outside this model.
"""

from __future__ import annotations

import bisect
import calendar
import copy
import decimal
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

# ---------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------

_ALL_FEATURES = [
    "media_processing",
    "video_editing",
    "dedicated_customer_service",
    "advanced_video_clip_effects",
    "realtime_conversational_ai",
]

CATALOG = {
    "currency": "CNY",
    "timezone": "Asia/Shanghai",
    "idempotency_window_days": 7,
    "trial": {
        "price": "20.00",
        "credits": "100",
        "validity_months": 1,
        "excluded_features": ["dedicated_customer_service", "advanced_video_clip_effects"],
    },
    "editions": {
        "basic": {
            "rank": 1,
            "price": "1000.00",
            "credits": "2000",
            "features": list(_ALL_FEATURES),
        },
        "standard": {
            "rank": 2,
            "price": "3000.00",
            "credits": "8000",
            "features": list(_ALL_FEATURES),
        },
        "professional": {
            "rank": 3,
            "price": "10000.00",
            "credits": "30000",
            "features": list(_ALL_FEATURES),
        },
    },
    "addons": {
        "boost-500": {"price": "200.00", "credits": "500"},
        "boost-2000": {"price": "700.00", "credits": "2000"},
    },
    "meters": {
        "media_processing": {
            "feature": "media_processing",
            "credit_rate": "1",
            "payg_price": "0.50",
        },
        "advanced_effects": {
            "feature": "advanced_video_clip_effects",
            "credit_rate": "2",
            "payg_price": "1.20",
        },
        "rtc_ai": {
            "feature": "realtime_conversational_ai",
            "credit_rate": "1",
            "payg_price": "0.80",
            "min_edition": "standard",
            "payg_without_subscription": True,
        },
    },
}

# ---------------------------------------------------------------------------
# States and rules
# ---------------------------------------------------------------------------

NONE = "none"
TRIAL = "trial"
TRIAL_EXHAUSTED = "trial-exhausted"
ENTERPRISE_ACTIVE = "enterprise-active"
QUOTA_EXHAUSTED_PAYG = "quota-exhausted-payg"
UNSUBSCRIBED = "unsubscribed"
EXPIRED = "expired"

ENTERPRISE_STATES = (ENTERPRISE_ACTIVE, QUOTA_EXHAUSTED_PAYG)
NO_SERVICE_STATES = (NONE, TRIAL_EXHAUSTED, UNSUBSCRIBED, EXPIRED)

RULES = {
    "addon.enterprise_only": ("Q1", "only Enterprise Edition subscribers can buy add-on packages"),
    "trial.once_per_month": ("Q2", "a trial can be bought once per calendar month"),
    "trial.no_discount": ("Q2", "the trial has a fixed price; any discount is refused"),
    "trial.feature_excluded": (
        "Q2",
        "the trial excludes dedicated customer service and advanced effects",
    ),
    "trial.no_payg": ("Q5", "usage beyond the trial's credits is denied"),
    "service.unavailable": ("Q2,Q4,Q5", "no IMS feature is usable without a trial or subscription"),
    "quota.payg_overage": (
        "Q6",
        "Enterprise usage beyond quota and add-ons is billed pay-as-you-go",
    ),
    "rtc_ai.standard_or_higher": (
        "Q7",
        "credits pay for RTC AI only from Standard up; otherwise pay-as-you-go",
    ),
    "subscribe.already_active": (None, "re-subscribing while quota is left is refused"),
    "unsubscribe.enterprise_only": ("Q4", "only an Enterprise subscription can be unsubscribed"),
    "transition.not_allowed": (None, "the operation has no transition from the current state"),
}

ZERO = Decimal("0")
_CTX = decimal.Context(prec=100)


class RefError(Exception):
    """kind in {"rule", "out_of_order", "conflict", "invalid"}; code is stable."""

    def __init__(self, kind: str, code: str, message: str = ""):
        super().__init__(f"{kind}: {code}" + (f" ({message})" if message else ""))
        self.kind = kind
        self.code = code


def _rule(code: str) -> RefError:
    return RefError("rule", code, RULES[code][1])


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def add_months(dt: datetime, months: int, tz: ZoneInfo) -> datetime:
    """Calendar months in `tz`, day clamped to the month's end, wall time kept."""
    local = dt.astimezone(tz)
    total = local.year * 12 + (local.month - 1) + months
    year, month0 = divmod(total, 12)
    month = month0 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day, fold=0)


def _check_at(at) -> None:
    if not isinstance(at, datetime):
        raise RefError("invalid", "invalid.datetime")
    if at.tzinfo is None or at.tzinfo.utcoffset(at) is None:
        raise RefError("invalid", "invalid.naive_datetime")


def _check_key(key) -> None:
    if not isinstance(key, str) or not key:
        raise RefError("invalid", "invalid.key")


def _to_quantity(q) -> Decimal:
    if isinstance(q, bool):
        raise RefError("invalid", "invalid.quantity")
    if isinstance(q, Decimal):
        d = q
    elif isinstance(q, int):
        d = Decimal(q)
    elif isinstance(q, float):
        d = Decimal(str(q))
    else:
        raise RefError("invalid", "invalid.quantity")
    if not d.is_finite() or d <= 0:
        raise RefError("invalid", "invalid.quantity")
    return d


def _is_discount(discount) -> bool:
    if discount is None:
        return False
    try:
        if isinstance(discount, (bool, int, float, Decimal)):
            return discount != 0
        if isinstance(discount, str):
            return Decimal(discount.strip()) != 0
    except (decimal.InvalidOperation, ValueError):
        return True
    return True


# ---------------------------------------------------------------------------
# Core mutable state (copied for every operation and every read)
# ---------------------------------------------------------------------------


@dataclass
class _Core:
    state: str = NONE
    trial_credits: Decimal = ZERO
    trial_end: datetime | None = None
    trial_months: set = field(default_factory=set)  # {(year, month)} of successful trials
    edition: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    base: Decimal = ZERO
    addons: list = field(default_factory=list)  # [[order_id, credits_left], ...] purchase order


class RefSub:
    def __init__(self, catalog=CATALOG):
        self.cat = catalog
        self.tz = ZoneInfo(catalog["timezone"])
        self.window = timedelta(days=int(catalog.get("idempotency_window_days", 7)))
        late = catalog.get("late_arrival_minutes", 60)
        if isinstance(late, bool) or not isinstance(late, int) or late < 0:
            raise ValueError("catalog: late_arrival_minutes must be an int >= 0")
        self.late = timedelta(minutes=late)
        if self.late >= self.window:
            raise ValueError(
                "catalog: late_arrival_minutes must be shorter than idempotency_window_days"
            )
        self._core = _Core()
        self._mark: datetime | None = None
        # key -> {"op", "args", "result", "at", "usage": bool}
        self._keys: dict = {}
        self._snap_ats: list = []
        self._snaps: list = []
        self.history: list = []

    # ------------------------------------------------------------------ catalog
    def _trial(self):
        return self.cat["trial"]

    def _meter_for_feature(self, feature):
        for _name, m in self.cat["meters"].items():
            if m["feature"] == feature:
                return m
        return None

    def _known_features(self):
        feats = set(self._trial().get("excluded_features", []))
        for e in self.cat["editions"].values():
            feats.update(e.get("features", []))
        for m in self.cat["meters"].values():
            feats.add(m["feature"])
        return feats

    def _min_edition_unmet(self, core: _Core, meter) -> bool:
        """True when subscription credits may not pay for this meter."""
        me = meter.get("min_edition")
        if me is None:
            return False
        if core.edition is None:
            return True
        return self.cat["editions"][core.edition]["rank"] < self.cat["editions"][me]["rank"]

    # ------------------------------------------------------------------ time
    def _apply_timed(self, core: _Core, t: datetime, log: list | None) -> None:
        while True:
            if core.state == TRIAL and core.trial_end is not None and core.trial_end <= t:
                lapsed = core.trial_credits
                self._log(
                    log,
                    core.trial_end,
                    "trial_end",
                    TRIAL,
                    TRIAL_EXHAUSTED,
                    None,
                    {"lapsed": lapsed},
                )
                core.trial_credits = ZERO
                core.trial_end = None
                core.state = TRIAL_EXHAUSTED
                continue
            if (
                core.state in ENTERPRISE_STATES
                and core.period_end is not None
                and core.period_end <= t
            ):
                lapsed = core.base + sum((a[1] for a in core.addons), ZERO)
                src = core.state
                self._log(
                    log, core.period_end, "period_end", src, EXPIRED, None, {"lapsed": lapsed}
                )
                core.base = ZERO
                core.addons = []
                core.edition = None
                core.period_start = None
                core.period_end = None
                core.state = EXPIRED
                continue
            break

    @staticmethod
    def _log(log, at, trigger, source, dest, key, details):
        # requested_at defaults to `at`; _run overwrites it for the entries the
        # operation itself logs (A40).
        if log is not None:
            log.append(
                {
                    "at": at,
                    "requested_at": at,
                    "trigger": trigger,
                    "source": source,
                    "dest": dest,
                    "key": key,
                    "details": dict(details),
                }
            )

    # ------------------------------------------------------------------ op runner
    def _effective(self, at: datetime) -> datetime:
        """The instant an operation requested at `at` takes effect (A37)."""
        if self._mark is None or at >= self._mark:
            return at
        if self._mark - at <= self.late:
            return self._mark
        raise RefError("out_of_order", "out_of_order")

    def _run(self, op: str, key: str, args, at: datetime, body, usage: bool = False):
        seen = self._keys.get(key)
        if seen is not None:
            if seen["op"] == op and seen["args"] == args:
                return copy.deepcopy(seen["result"])
            raise RefError("conflict", "idempotency.conflict")
        eff = self._effective(at)
        core = copy.deepcopy(self._core)
        log: list = []
        self._apply_timed(core, eff, log)
        timed = len(log)
        result = body(core, eff, log)  # may raise RefError: nothing committed
        for entry in log[timed:]:
            entry["requested_at"] = at
        result["at"] = eff
        result["requested_at"] = at
        self._commit(core, eff, log)
        self._keys[key] = {
            "op": op,
            "args": args,
            "result": copy.deepcopy(result),
            "at": eff,
            "usage": usage,
        }
        self._prune()
        return result

    def _commit(self, core: _Core, at: datetime, log: list) -> None:
        self._core = core
        self._mark = at
        for entry in log:
            entry["seq"] = len(self.history) + 1
            self.history.append(entry)
        self._snap_ats.append(at)
        self._snaps.append(copy.deepcopy(core))

    def _prune(self) -> None:
        for k in [
            k for k, v in self._keys.items() if v["usage"] and self._mark >= v["at"] + self.window
        ]:
            del self._keys[k]

    # ------------------------------------------------------------------ operations
    def purchase_trial(self, order_id, discount=None, at=None):
        _check_at(at)
        _check_key(order_id)
        has_discount = _is_discount(discount)
        args = (("discount", discount) if has_discount else ("discount", None),)

        def body(core: _Core, t, log):
            if core.state not in (NONE, TRIAL_EXHAUSTED, UNSUBSCRIBED, EXPIRED):
                raise _rule("transition.not_allowed")
            local = t.astimezone(self.tz)
            if (local.year, local.month) in core.trial_months:
                raise _rule("trial.once_per_month")
            if has_discount:
                raise _rule("trial.no_discount")
            src = core.state
            tr = self._trial()
            core.state = TRIAL
            core.trial_credits = Decimal(tr["credits"])
            core.trial_end = add_months(t, int(tr.get("validity_months", 1)), self.tz)
            core.trial_months.add((local.year, local.month))
            self._log(log, t, "purchase_trial", src, TRIAL, order_id, {"trial_end": core.trial_end})
            return {"amount": Decimal(tr["price"]), "state": TRIAL, "forfeited": ZERO}

        return self._run("purchase_trial", order_id, args, at, body)

    def subscribe(self, edition, order_id, term_months=1, at=None):
        _check_at(at)
        _check_key(order_id)
        if not isinstance(edition, str) or edition not in self.cat["editions"]:
            raise RefError("invalid", "catalog.unknown_edition")
        if isinstance(term_months, bool) or not isinstance(term_months, int) or term_months < 1:
            raise RefError("invalid", "invalid.term_months")
        args = (edition, term_months)

        def body(core: _Core, t, log):
            if core.state == ENTERPRISE_ACTIVE:
                raise _rule("subscribe.already_active")
            src = core.state
            forfeited = ZERO
            if src == TRIAL:
                forfeited = core.trial_credits
                core.trial_credits = ZERO
                core.trial_end = None
            ed = self.cat["editions"][edition]
            core.state = ENTERPRISE_ACTIVE
            core.edition = edition
            core.period_start = t
            core.period_end = add_months(t, term_months, self.tz)
            core.base = Decimal(ed["credits"])
            core.addons = []
            self._log(
                log,
                t,
                "subscribe",
                src,
                ENTERPRISE_ACTIVE,
                order_id,
                {"edition": edition, "period_end": core.period_end, "forfeited": forfeited},
            )
            return {
                "amount": Decimal(ed["price"]),
                "state": ENTERPRISE_ACTIVE,
                "forfeited": forfeited,
            }

        return self._run("subscribe", order_id, args, at, body)

    def buy_addon(self, package, order_id, at=None):
        _check_at(at)
        _check_key(order_id)
        if not isinstance(package, str) or package not in self.cat["addons"]:
            raise RefError("invalid", "catalog.unknown_package")
        args = (package,)

        def body(core: _Core, t, log):
            if core.state not in ENTERPRISE_STATES:
                raise _rule("addon.enterprise_only")
            src = core.state
            pkg = self.cat["addons"][package]
            core.addons.append([order_id, Decimal(pkg["credits"])])
            core.state = ENTERPRISE_ACTIVE
            self._log(log, t, "buy_addon", src, ENTERPRISE_ACTIVE, order_id, {"package": package})
            return {"amount": Decimal(pkg["price"]), "state": ENTERPRISE_ACTIVE, "forfeited": ZERO}

        return self._run("buy_addon", order_id, args, at, body)

    def unsubscribe(self, request_id, at=None):
        _check_at(at)
        _check_key(request_id)
        args = ()

        def body(core: _Core, t, log):
            if core.state not in ENTERPRISE_STATES:
                raise _rule("unsubscribe.enterprise_only")
            src = core.state
            forfeited = core.base + sum((a[1] for a in core.addons), ZERO)
            core.base = ZERO
            core.addons = []
            core.edition = None
            core.period_start = None
            core.period_end = None
            core.state = UNSUBSCRIBED
            self._log(
                log, t, "unsubscribe", src, UNSUBSCRIBED, request_id, {"forfeited": forfeited}
            )
            return {"amount": ZERO, "state": UNSUBSCRIBED, "forfeited": forfeited}

        return self._run("unsubscribe", request_id, args, at, body)

    def record_usage(self, meter, quantity, usage_id, at=None):
        _check_at(at)
        _check_key(usage_id)
        if not isinstance(meter, str) or meter not in self.cat["meters"]:
            raise RefError("invalid", "catalog.unknown_meter")
        q = _to_quantity(quantity)
        args = (meter, q)

        def body(core: _Core, t, log):
            res = self._settle(core, meter, q)
            if core.state == TRIAL and core.trial_credits == 0:
                self._log(log, t, "credits_exhausted", TRIAL, TRIAL_EXHAUSTED, usage_id, {})
                core.state = TRIAL_EXHAUSTED
                core.trial_end = None
            elif (
                core.state == ENTERPRISE_ACTIVE
                and core.base + sum((a[1] for a in core.addons), ZERO) == 0
            ):
                self._log(
                    log,
                    t,
                    "credits_exhausted",
                    ENTERPRISE_ACTIVE,
                    QUOTA_EXHAUSTED_PAYG,
                    usage_id,
                    {},
                )
                core.state = QUOTA_EXHAUSTED_PAYG
            return res

        return self._run("record_usage", usage_id, args, at, body, usage=True)

    def _settle(self, core: _Core, meter_name: str, q: Decimal) -> dict:
        m = self.cat["meters"][meter_name]
        rate = Decimal(m["credit_rate"])
        price = Decimal(m["payg_price"])
        pws = bool(m.get("payg_without_subscription", False))
        quota = addons = payg = denied = ZERO
        rule = None
        with decimal.localcontext(_CTX):
            st = core.state
            if st == TRIAL:
                if m["feature"] in self._trial().get("excluded_features", []):
                    denied, rule = q, "trial.feature_excluded"
                elif pws:
                    payg, rule = q, "rtc_ai.standard_or_higher"
                else:
                    quota = min(q, core.trial_credits / rate)
                    core.trial_credits -= quota * rate
                    denied = q - quota
                    rule = "trial.no_payg" if denied > 0 else None
            elif st in ENTERPRISE_STATES:
                if self._min_edition_unmet(core, m):
                    payg, rule = q, "rtc_ai.standard_or_higher"
                elif st == QUOTA_EXHAUSTED_PAYG:
                    payg, rule = q, "quota.payg_overage"
                else:
                    rest = q
                    quota = min(rest, core.base / rate)
                    core.base -= quota * rate
                    rest -= quota
                    for a in core.addons:
                        if rest <= 0:
                            break
                        take = min(rest, a[1] / rate)
                        a[1] -= take * rate
                        addons += take
                        rest -= take
                    payg = rest
                    rule = "quota.payg_overage" if payg > 0 else None
            else:  # none, trial-exhausted, unsubscribed, expired
                if pws:
                    payg, rule = q, "rtc_ai.standard_or_higher"
                else:
                    denied, rule = q, "service.unavailable"
            amount = payg * price
        assert quota + addons + payg + denied == q
        return {
            "quota": quota,
            "addons": addons,
            "payg": payg,
            "denied": denied,
            "amount": amount,
            "rule": rule,
        }

    def advance(self, at):
        _check_at(at)
        eff = self._effective(at)  # late within the allowance: a no-op at the mark (A41)
        core = copy.deepcopy(self._core)
        log: list = []
        self._apply_timed(core, eff, log)
        self._commit(core, eff, log)
        self._prune()
        return copy.deepcopy(log)

    # ------------------------------------------------------------------ reads
    @property
    def mark(self):
        return self._mark

    def _view(self, at) -> _Core:
        _check_at(at)
        if self._mark is None or at >= self._mark:
            core = copy.deepcopy(self._core)
        else:
            i = bisect.bisect_right(self._snap_ats, at) - 1
            core = copy.deepcopy(self._snaps[i]) if i >= 0 else _Core()
        self._apply_timed(core, at, None)
        return core

    def state_at(self, at) -> str:
        return self._view(at).state

    def remaining_credits(self, at) -> Decimal:
        core = self._view(at)
        if core.state == TRIAL:
            return core.trial_credits
        if core.state in ENTERPRISE_STATES:
            return core.base + sum((a[1] for a in core.addons), ZERO)
        return ZERO

    def authorize(self, feature, at) -> dict:
        if not isinstance(feature, str) or feature not in self._known_features():
            _check_at(at)
            raise RefError("invalid", "catalog.unknown_feature")
        core = self._view(at)
        m = self._meter_for_feature(feature)
        pws = bool(m and m.get("payg_without_subscription", False))
        st = core.state

        def d(allowed, billing, rule):
            return {"allowed": allowed, "billing": billing, "rule": rule}

        if st in NO_SERVICE_STATES:
            if pws:
                return d(True, "payg", "rtc_ai.standard_or_higher")
            return d(False, "denied", "service.unavailable")
        if st == TRIAL:
            if feature in self._trial().get("excluded_features", []):
                return d(False, "denied", "trial.feature_excluded")
            if m is None:
                return d(True, "included", None)
            if pws:
                return d(True, "payg", "rtc_ai.standard_or_higher")
            return d(True, "credits", None)
        # enterprise-active / quota-exhausted-payg
        if m is None:
            return d(True, "included", None)
        if self._min_edition_unmet(core, m):
            return d(True, "payg", "rtc_ai.standard_or_higher")
        total = core.base + sum((a[1] for a in core.addons), ZERO)
        if st == ENTERPRISE_ACTIVE and total > 0:
            return d(True, "credits", None)
        return d(True, "payg", "quota.payg_overage")
