"""The Subscription aggregate: operations, reads, history.

Every operation runs in two phases. First it works on a ``_Draft`` (the state
and the small immutable ``Ledger``, nothing else): it applies the timed
transitions due by its time, checks the guards through the shared machine,
and computes the effects. Only when all of that has succeeded is the draft
committed, by plain assignments that cannot fail. A refused or failed
operation therefore leaves the subscription exactly as it was, without ever
copying the history or the idempotency keys.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from lifecycle.catalog import Catalog, Edition, default_catalog
from lifecycle.clock import Clock, add_months, aware, describe, read_clock, utc_now
from lifecycle.errors import IdempotencyConflict, InvalidInput, OutOfOrder
from lifecycle.keys import MemoryKeys, UsageKeys
from lifecycle.machine import fire
from lifecycle.money import MONEY, ZERO, in_range
from lifecycle.rules import Attempt
from lifecycle.settlement import split, terms
from lifecycle.states import (
    ENTERPRISE,
    ENTERPRISE_ACTIVE,
    EXPIRED,
    TRIAL,
    TRIAL_EXHAUSTED,
    State,
)
from lifecycle.values import Decision, Receipt, Settlement, Transition

MAX_KEY_LENGTH = 255
MAX_TERM_MONTHS = 1200

ARGUMENTS: Mapping[str, tuple[str, ...]] = {
    "purchase_trial": ("discount",),
    "subscribe": ("edition", "term_months"),
    "buy_addon": ("package",),
    "unsubscribe": (),
}
"""The arguments of each keyed operation that idempotency compares (not ``at``)."""

ORDER_OPERATIONS = frozenset({"purchase_trial", "subscribe", "buy_addon"})

HOLDING = frozenset({TRIAL, ENTERPRISE_ACTIVE})
"""The states that hold credits."""


@attrs.frozen
class Grant:
    """Add-on credits bought with one order; valid until the period ends (Q6)."""

    package: str
    order_id: str
    credits: Decimal


@attrs.frozen
class Ledger:
    """Everything a subscription holds besides its state and its keys.

    ``credits`` are the trial's credits in a trial and the base quota under
    Enterprise; outside those states every credit is zero. The last trial's
    purchase time is kept for ever, for ``trial.once_per_month``; the last
    period is kept after it ends, for the customer's information.
    """

    credits: Decimal = ZERO
    addons: tuple[Grant, ...] = ()
    trial_end: datetime | None = None
    last_trial_at: datetime | None = None
    edition: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None

    @property
    def remaining(self) -> Decimal:
        total = self.credits
        for grant in self.addons:
            total = MONEY.add(total, grant.credits)
        return total


EMPTY = Ledger()
_END_OF_TIME = datetime.max.replace(tzinfo=UTC)


@attrs.define(slots=False, eq=False)
class _Draft:
    """An operation's work in progress; the machine's model (hence slots=False)."""

    state: str
    ledger: Ledger
    seq: int
    applied: list[Transition] = attrs.Factory(list)

    def log(
        self,
        trigger: str,
        source: str,
        at: datetime,
        key: str | None,
        details: dict[str, str],
    ) -> Transition:
        entry = Transition(self.seq, at, trigger, State(source), State(self.state), key, details)
        self.seq += 1
        self.applied.append(entry)
        return entry


def due(state: State, ledger: Ledger, until: datetime) -> tuple[str, datetime] | None:
    """The timed transition due by ``until`` (at most one can be), and its instant."""
    if state is TRIAL and ledger.trial_end is not None and ledger.trial_end <= until:
        return "trial_ended", ledger.trial_end
    if state in ENTERPRISE and ledger.period_end is not None and ledger.period_end <= until:
        return "period_ended", ledger.period_end
    return None


class Subscription:
    """One customer's subscription to IMS: a state machine under the FAQ's rules.

    Create one with ``Subscription.new`` or ``Subscription.from_record``.
    """

    __slots__ = (
        "_clock",
        "_history",
        "_keys",
        "_ledger",
        "_mark",
        "_orders",
        "_requests",
        "_state",
        "catalog",
        "customer_id",
    )

    customer_id: str
    catalog: Catalog
    _clock: Clock
    _state: State
    _ledger: Ledger
    _mark: datetime | None
    _history: list[Transition]
    _orders: dict[str, Transition]
    _requests: dict[str, Transition]
    _keys: UsageKeys

    def __init__(self, customer_id: str, catalog: Catalog, clock: Clock) -> None:
        # Trusts its arguments: `new` and `from_record` validate them first.
        self.customer_id = customer_id
        self.catalog = catalog
        self._clock = clock
        self._state = State.NONE
        self._ledger = EMPTY
        self._mark = None
        self._history = []
        self._orders = {}
        self._requests = {}
        self._keys = MemoryKeys()

    @classmethod
    def new(
        cls,
        customer_id: str,
        *,
        catalog: Catalog | None = None,
        clock: Clock | None = None,
    ) -> Subscription:
        """A subscription that has never bought anything (``State.NONE``).

        ``clock`` is a zero-argument callable returning an aware datetime; the
        default reads ``datetime.now(timezone.utc)`` at call time.
        """
        if not isinstance(customer_id, str) or not customer_id.strip():
            raise InvalidInput(
                "customer_id",
                f"expected a non-empty string, got {customer_id!r}",
                code="input.bad_customer_id",
            )
        return cls(customer_id, *_catalog_and_clock(catalog, clock))

    def copy(self) -> Subscription:
        """An independent copy, sharing only what is immutable (catalog, ledger,
        history entries); usage keys are not copied."""
        twin = type(self)(self.customer_id, self.catalog, self._clock)
        twin._state = self._state
        twin._ledger = self._ledger
        twin._mark = self._mark
        twin._history = list(self._history)
        twin._orders = dict(self._orders)
        twin._requests = dict(self._requests)
        return twin

    def __repr__(self) -> str:
        return f"<Subscription {self.customer_id!r} {self._state.value} mark={self._mark}>"

    # --- reads: pure, as of the clock's now (or ``at``) ----------------------
    #
    # A read at or after the mark projects the timed transitions due by then.
    # A read before the mark (a past time, or an instance whose clock lags the
    # one that applied the last operation) answers as the subscription stood
    # then: the state and edition from the history, the credits by taking back
    # what happened since, which the remembered usage allows within the
    # idempotency window.

    @property
    def state(self) -> State:
        """The state as of the clock's now, timed transitions included."""
        return self.state_at(None)

    def state_at(self, at: datetime | None) -> State:
        """The state as of ``at`` (the clock's now if None); changes nothing."""
        return self._standing(self._when(at))[0]

    def remaining_credits(self, at: datetime | None = None) -> Decimal:
        """Credits left as of ``at``: base quota plus add-ons, or the trial's."""
        when = self._when(at)
        mark = self._mark
        if mark is None or when >= mark:
            return self._projected(when)[1].remaining
        if self._past(when)[0] not in HOLDING:
            return ZERO
        window = self.catalog.window
        if when < mark - window:
            raise OutOfOrder(
                "remaining_credits",
                when,
                mark - window,
                reason="balances are kept back to the idempotency window only",
            )
        balance = self._ledger.remaining
        for settlement in self._keys.newer_than(when):
            balance = MONEY.add(balance, settlement.credits)
        for entry in reversed(self._history):
            if entry.at <= when:
                break
            balance = MONEY.subtract(balance, _credit_change(entry))
        return balance

    def authorize(self, feature: str, at: datetime | None = None) -> Decision:
        """Whether ``feature`` may be used as of ``at``, and how it would be billed."""
        name = self.catalog.feature(feature)
        state, edition = self._standing(self._when(at))
        chosen = self._edition_in_force(state, edition)
        how = terms(state, name, self.catalog.meter_for(name), chosen, self.catalog)
        return Decision(how.billing != "denied", how.billing, how.rule.code if how.rule else None)

    @property
    def history(self) -> tuple[Transition, ...]:
        """Every transition applied, oldest first."""
        return tuple(self._history)

    @property
    def mark(self) -> datetime | None:
        """The time of the last operation; operations before it are refused."""
        return self._mark

    @property
    def edition(self) -> str | None:
        """The edition of the current or last Enterprise subscription."""
        return self._ledger.edition

    @property
    def period_end(self) -> datetime | None:
        """When the current or last Enterprise validity period ends (exclusive)."""
        return self._ledger.period_end

    @property
    def trial_end(self) -> datetime | None:
        """When the current or last trial ends (exclusive)."""
        return self._ledger.trial_end

    @property
    def due_at(self) -> datetime | None:
        """When the next timed transition (trial end, period end) falls due, if any.

        This is what a store indexes to find the subscriptions ``sweep`` must visit.
        """
        pending = due(self._state, self._ledger, _END_OF_TIME)
        return pending[1] if pending else None

    def _standing(self, when: datetime) -> tuple[State, str | None]:
        """State and edition at ``when``: from the history before the mark, projected
        with the timed transitions due from it on."""
        if self._mark is not None and when < self._mark:
            return self._past(when)
        state, ledger = self._projected(when)
        return state, ledger.edition

    def _edition_in_force(self, state: State, edition: str | None) -> Edition | None:
        """The catalog entry of ``edition`` if ``state`` is Enterprise, else None."""
        return self.catalog.editions.get(edition or "") if state in ENTERPRISE else None

    def _projected(self, when: datetime) -> tuple[State, Ledger]:
        """State and ledger at ``when`` (at or after the mark), timed transitions applied."""
        pending = due(self._state, self._ledger, when)
        if pending is None:
            return self._state, self._ledger
        state = TRIAL_EXHAUSTED if pending[0] == "trial_ended" else EXPIRED
        return state, attrs.evolve(self._ledger, credits=ZERO, addons=())

    def _past(self, when: datetime) -> tuple[State, str | None]:
        """State and edition at ``when``, before the mark, from the history."""
        history = self._history
        index = bisect.bisect_right(history, when, key=_at)
        if not index:
            return State.NONE, None
        edition = None
        for entry in reversed(history[:index]):
            if entry.trigger == "subscribe":
                edition = entry.details["edition"]
                break
        return history[index - 1].dest, edition

    # --- operations ----------------------------------------------------------

    def purchase_trial(
        self, order_id: str, discount: object = None, at: datetime | None = None
    ) -> Receipt:
        """Buy the monthly feature trial package (Q2) at its fixed price."""
        key = _key(order_id, "order_id")
        asked = _discount(discount)
        when = self._when(at)
        first = self._replay(self._orders, key, "purchase_trial", {"discount": asked})
        if first is not None:
            return first
        draft = self._draft("purchase_trial", when)
        source = draft.state
        fire(draft, "purchase_trial", self._attempt("purchase_trial", draft, when, asked))
        trial = self.catalog.trial
        ends = add_months(when, trial.validity_months, self.catalog.zone)
        draft.ledger = attrs.evolve(
            draft.ledger, credits=trial.credits, addons=(), trial_end=ends, last_trial_at=when
        )
        entry = draft.log(
            "purchase_trial",
            source,
            when,
            key,
            {
                "amount": str(trial.price),
                "credits": str(trial.credits),
                "trial_end": ends.isoformat(),
                "forfeited": "0",
            },
        )
        self._commit(draft, when)
        self._orders[key] = entry
        return _receipt(entry)

    def subscribe(
        self,
        edition: str,
        order_id: str,
        term_months: int = 12,
        at: datetime | None = None,
    ) -> Receipt:
        """Subscribe to an Enterprise Edition for ``term_months`` calendar months."""
        chosen = self.catalog.edition(edition)
        term = _term(term_months)
        key = _key(order_id, "order_id")
        when = self._when(at)
        args = {"edition": chosen.name, "term_months": str(term)}
        first = self._replay(self._orders, key, "subscribe", args)
        if first is not None:
            return first
        draft = self._draft("subscribe", when)
        source = draft.state
        fire(draft, "subscribe", self._attempt("subscribe", draft, when))
        # NOTE: from a trial the rest of the trial ends here (Q2: to continue,
        # subscribe); from quota-exhausted-payg the new period replaces the old
        # one (Q6). Either way what was left is forfeited and recorded.
        forfeited = draft.ledger.remaining
        ends = add_months(when, term, self.catalog.zone)
        draft.ledger = attrs.evolve(
            draft.ledger,
            credits=chosen.credits,
            addons=(),
            edition=chosen.name,
            period_start=when,
            period_end=ends,
        )
        entry = draft.log(
            "subscribe",
            source,
            when,
            key,
            {
                **args,
                "amount": str(chosen.price),
                "credits": str(chosen.credits),
                "period_end": ends.isoformat(),
                "forfeited": str(forfeited),
            },
        )
        self._commit(draft, when)
        self._orders[key] = entry
        return _receipt(entry)

    def buy_addon(self, package: str, order_id: str, at: datetime | None = None) -> Receipt:
        """Buy an add-on package: its credits last until the current period ends (Q1, Q6)."""
        chosen = self.catalog.addon(package)
        key = _key(order_id, "order_id")
        when = self._when(at)
        args = {"package": chosen.name}
        first = self._replay(self._orders, key, "buy_addon", args)
        if first is not None:
            return first
        draft = self._draft("buy_addon", when)
        source = draft.state
        fire(draft, "buy_addon", self._attempt("buy_addon", draft, when))
        ledger = draft.ledger
        draft.ledger = attrs.evolve(
            ledger, addons=(*ledger.addons, Grant(chosen.name, key, chosen.credits))
        )
        entry = draft.log(
            "buy_addon",
            source,
            when,
            key,
            {
                **args,
                "amount": str(chosen.price),
                "credits": str(chosen.credits),
                "valid_until": _isoformat(ledger.period_end),
                "forfeited": "0",
            },
        )
        self._commit(draft, when)
        self._orders[key] = entry
        return _receipt(entry)

    def unsubscribe(self, request_id: str, at: datetime | None = None) -> Receipt:
        """Unsubscribe from Enterprise: service stops, unused credits are forfeited (Q4)."""
        key = _key(request_id, "request_id")
        when = self._when(at)
        first = self._replay(self._requests, key, "unsubscribe", {})
        if first is not None:
            return first
        draft = self._draft("unsubscribe", when)
        source = draft.state
        fire(draft, "unsubscribe", self._attempt("unsubscribe", draft, when))
        forfeited = draft.ledger.remaining
        draft.ledger = attrs.evolve(draft.ledger, credits=ZERO, addons=())
        entry = draft.log(
            "unsubscribe",
            source,
            when,
            key,
            {"amount": "0", "forfeited": str(forfeited)},
        )
        self._commit(draft, when)
        self._requests[key] = entry
        return _receipt(entry)

    def record_usage(
        self,
        meter: str,
        quantity: Decimal | int | str,
        usage_id: str,
        at: datetime | None = None,
    ) -> Settlement:
        """Settle ``quantity`` units of ``meter`` over credits, pay-as-you-go or denial."""
        measured = self.catalog.meter(meter)
        amount = _quantity(quantity)
        key = _key(usage_id, "usage_id")
        when = self._when(at)
        first = self._keys.get(key)
        if first is not None:
            if first.meter == measured.name and first.quantity == amount:
                return first
            raise IdempotencyConflict(
                key,
                f"record_usage({first.meter!r}, {first.quantity})",
                f"record_usage({measured.name!r}, {amount})",
            )
        draft = self._draft("record_usage", when)
        state = State(draft.state)
        ledger = draft.ledger
        how = terms(
            state,
            measured.feature,
            measured,
            self._edition_in_force(state, ledger.edition),
            self.catalog,
        )
        pools = tuple(grant.credits for grant in ledger.addons)
        parts = split(how, amount, measured.credit_rate, ledger.credits, pools)
        before = ledger.remaining
        if parts.base_left != ledger.credits or parts.addons_left != pools:
            draft.ledger = ledger = attrs.evolve(
                ledger,
                credits=parts.base_left,
                addons=tuple(
                    attrs.evolve(grant, credits=left)
                    for grant, left in zip(ledger.addons, parts.addons_left, strict=True)
                    if left
                ),
            )
            if not ledger.remaining:
                trigger = "trial_used_up" if state is TRIAL else "quota_used_up"
                fire(draft, trigger, self._attempt(trigger, draft, when))
                draft.log(trigger, state.value, when, key, {})
        settlement = Settlement(
            quota=parts.quota,
            addons=parts.addons,
            payg=parts.payg,
            denied=parts.denied,
            amount=MONEY.multiply(parts.payg, measured.payg_price) if parts.payg else ZERO,
            rule=parts.rule.code if parts.rule else None,
            credits=MONEY.subtract(before, ledger.remaining),
            meter=measured.name,
            quantity=amount,
            usage_id=key,
            at=when,
            state=State(draft.state),
        )
        self._commit(draft, when)
        self._keys.remember(settlement)
        return settlement

    def advance(self, to: datetime) -> list[Transition]:
        """Apply the timed transitions due by ``to`` and move the mark there."""
        when = aware(to, "to")
        draft = self._draft("advance", when)
        self._commit(draft, when)
        return draft.applied

    # --- records -------------------------------------------------------------

    def to_record(self) -> dict[str, Any]:
        """A JSON-safe dict of everything, carrying a schema version."""
        from lifecycle.record import dump

        return dump(self)

    @classmethod
    def from_record(
        cls,
        record: Mapping[str, Any],
        *,
        catalog: Catalog | None = None,
        clock: Clock | None = None,
    ) -> Subscription:
        """Rebuild a subscription from ``to_record()``'s output, validating all of it.

        A corrupt record raises ``InvalidInput`` naming the field; nothing is
        half-built.
        """
        from lifecycle.record import load

        return load(cls, record, *_catalog_and_clock(catalog, clock))

    # --- the machinery of an operation ---------------------------------------

    def _when(self, at: datetime | None) -> datetime:
        if at is None:
            return read_clock(self._clock)
        return aware(at, "at")

    def _draft(self, operation: str, when: datetime) -> _Draft:
        """A draft at ``when``, with the timed transitions due by then applied."""
        mark = self._mark
        if mark is not None and when < mark:
            raise OutOfOrder(operation, when, mark)
        draft = _Draft(self._state.value, self._ledger, len(self._history) + 1)
        pending = due(self._state, self._ledger, when)
        if pending is not None:
            trigger, instant = pending
            source = draft.state
            lapsed = draft.ledger.remaining
            fire(draft, trigger, self._attempt(trigger, draft, instant))
            draft.ledger = attrs.evolve(draft.ledger, credits=ZERO, addons=())
            draft.log(trigger, source, instant, None, {"lapsed": str(lapsed)})
        return draft

    def _commit(self, draft: _Draft, when: datetime) -> None:
        # NOTE: only assignments from here on: nothing below can refuse.
        self._state = State(draft.state)
        self._ledger = draft.ledger
        if draft.applied:
            self._history.extend(draft.applied)
        self._mark = when
        self._keys.forget_until(when - self.catalog.window)

    def _attempt(
        self, operation: str, draft: _Draft, at: datetime, discount: object = None
    ) -> Attempt:
        catalog = self.catalog
        ledger = draft.ledger
        facts = {"trial_price": f"{catalog.currency} {catalog.trial.price}"}
        if ledger.period_end is not None:
            facts["period_end"] = describe(ledger.period_end, catalog.zone)
        return Attempt(
            operation,
            State(draft.state),
            at,
            catalog.zone,
            last_trial_at=ledger.last_trial_at,
            discount=discount,
            facts=facts,
        )

    def _replay(
        self,
        keys: dict[str, Transition],
        key: str,
        operation: str,
        args: Mapping[str, str | None],
    ) -> Receipt | None:
        entry = keys.get(key)
        if entry is None:
            return None
        before = {name: entry.details.get(name) for name in ARGUMENTS[entry.trigger]}
        if entry.trigger != operation or before != args:
            raise IdempotencyConflict(key, _call(entry.trigger, before), _call(operation, args))
        return _receipt(entry)


def _catalog_and_clock(catalog: Catalog | None, clock: Clock | None) -> tuple[Catalog, Clock]:
    if catalog is None:
        catalog = default_catalog()
    elif not isinstance(catalog, Catalog):
        raise InvalidInput("catalog", f"expected a Catalog, got {type(catalog).__name__}")
    if clock is None:
        clock = utc_now
    elif not callable(clock):
        raise InvalidInput("clock", "expected a zero-argument callable")
    return catalog, clock


def _isoformat(at: datetime | None) -> str:
    assert at is not None, "an Enterprise state always has a period"
    return at.isoformat()


def _at(entry: Transition) -> datetime:
    return entry.at


def _credit_change(entry: Transition) -> Decimal:
    """How much ``entry`` changed the credit balance, from what its details record."""
    details = entry.details
    change = Decimal(details.get("credits", "0"))
    for taken in ("forfeited", "lapsed"):
        if taken in details:
            change = MONEY.subtract(change, Decimal(details[taken]))
    return change


def _receipt(entry: Transition) -> Receipt:
    return Receipt(
        entry.trigger,
        entry.key or "",
        entry.at,
        Decimal(entry.details["amount"]),
        entry.dest,
        Decimal(entry.details["forfeited"]),
    )


def _call(operation: str, args: Mapping[str, str | None]) -> str:
    shown = ", ".join(f"{name}={value!r}" for name, value in args.items() if value is not None)
    return f"{operation}({shown})"


def _key(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(
            field, f"expected a non-empty string key, got {value!r}", code="input.bad_key"
        )
    if len(value) > MAX_KEY_LENGTH:
        raise InvalidInput(
            field,
            f"is {len(value)} characters long; keys are at most {MAX_KEY_LENGTH}",
            code="input.bad_key",
        )
    return value


def _number(value: object, field: str, code: str) -> Decimal:
    """``value`` as a Decimal: Decimal, int, a finite float or a numeric string."""
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, bool):
        raise InvalidInput(field, f"expected a number, got {value!r}", code=code)
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(field, f"{value!r} is not a finite number", code=code)
        # NOTE: the shortest repr, so 0.1 means Decimal("0.1"), not its binary value.
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            if not value.isascii():
                raise InvalidOperation
            number = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidInput(field, f"{value!r} is not a number", code=code) from None
    else:
        raise InvalidInput(field, f"expected a Decimal, got {type(value).__name__}", code=code)
    if not number.is_finite():
        raise InvalidInput(field, f"{value!r} is not a finite number", code=code)
    if not in_range(number):
        raise InvalidInput(
            field,
            f"{value!r} is out of range (at most 60 characters, from 1E-50 to below 1E+31)",
            code=code,
        )
    return number


def _quantity(value: object) -> Decimal:
    if type(value) is Decimal and value.is_finite() and value > 0 and in_range(value):
        return value  # the hot path: a valid Decimal, checked without more ado
    number = _number(value, "quantity", "input.bad_quantity")
    if number <= 0:
        raise InvalidInput(
            "quantity", f"must be positive, got {value!r}", code="input.bad_quantity"
        )
    return number


def _discount(value: object) -> str | None:
    """None for no discount (None or zero); otherwise what was asked, as text."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip() and not _numeric(value):
        return value  # a coupon code: a discount all the same
    number = _number(value, "discount", "input.bad_discount")
    if number < 0:
        raise InvalidInput(
            "discount", f"must not be negative, got {value!r}", code="input.bad_discount"
        )
    return None if number == 0 else str(number)


def _numeric(text: str) -> bool:
    try:
        Decimal(text.strip())
    except InvalidOperation:
        return False
    return text.isascii()


def _term(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(
            "term_months",
            f"expected a whole number of months, got {value!r}",
            code="input.bad_term",
        )
    if not 1 <= value <= MAX_TERM_MONTHS:
        raise InvalidInput(
            "term_months",
            f"must be between 1 and {MAX_TERM_MONTHS}, got {value}",
            code="input.bad_term",
        )
    return value
