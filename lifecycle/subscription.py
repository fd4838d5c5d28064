"""The Subscription aggregate: operations, reads, history.

Every operation runs in two phases. First it works on a ``Draft`` (the state
and the small immutable ``Ledger``, nothing else): it applies the timed
transitions due by its time, checks the guards through the shared machine,
and computes the effects. Only when all of that has succeeded is the draft
committed, by plain assignments that cannot fail. A refused or failed
operation therefore leaves the subscription exactly as it was, without ever
copying the history or the idempotency keys.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs

from lifecycle import inputs
from lifecycle.catalog import (
    AnyCatalog,
    Catalog,
)
from lifecycle.clock import Clock, add_months, aware, utc_now
from lifecycle.drafting import Draft, Machinery, catalog_and_clock, ending, receipt_of
from lifecycle.errors import IdempotencyConflict, OutOfOrder, ReadOnly, shown
from lifecycle.history import NO_HISTORY, History, MemoryHistory
from lifecycle.keys import NO_KEYS, MemoryKeys, UsageKeys
from lifecycle.ledger import (
    EMPTY,
    END_OF_TIME,
    HOLDING,
    Grant,
    Ledger,
    credit_change,
    due,
)
from lifecycle.machine import fire
from lifecycle.money import MONEY, ZERO, text
from lifecycle.settlement import split, terms
from lifecycle.states import ENTERPRISE, STATES, TRIAL, State
from lifecycle.telemetry import counted
from lifecycle.values import Decision, Receipt, Settlement, Transition


class Subscription(Machinery):
    """One customer's subscription to IMS: a state machine under the FAQ's rules.

    Create one with ``Subscription.new`` or ``Subscription.from_record``.
    """

    __slots__ = ()  # every attribute is a slot of Machinery

    customer_id: str
    catalog: AnyCatalog
    _clock: Clock
    _state: State
    _ledger: Ledger
    _mark: datetime | None
    _seq: int
    _history: History
    _keys: UsageKeys
    _read_only: str | None
    _ahead: timedelta | None
    """How far ahead of the clock an operation's time may be: set by a store, whose
    clock is the fleet's; None (a subscription alone) leaves time to the caller."""

    def __init__(self, customer_id: str, catalog: AnyCatalog, clock: Clock) -> None:
        # Trusts its arguments: `new` and `from_record` validate them first.
        self.customer_id = customer_id
        self.catalog = catalog
        self._clock = clock
        self._state = State.NONE
        self._ledger = EMPTY
        self._mark = None
        self._seq = 0
        # NOTE: shared empty ones until the first entry or key: most are idle.
        self._history = NO_HISTORY
        self._keys = NO_KEYS
        self._read_only = None
        self._ahead = None

    @classmethod
    def new(
        cls,
        customer_id: str,
        *,
        catalog: AnyCatalog | None = None,
        clock: Clock | None = None,
    ) -> Subscription:
        """A subscription that has never bought anything (``State.NONE``).

        ``clock`` is a zero-argument callable returning an aware datetime; the
        default reads ``datetime.now(timezone.utc)`` at call time.
        """
        # NOTE: the usual case checked here at once, as inputs.identifier would.
        if not (
            type(customer_id) is str
            and customer_id.isprintable()
            and customer_id.strip()
            and len(customer_id) <= inputs.MAX_KEY_LENGTH
        ):
            customer_id = inputs.customer_id(customer_id)
        if type(catalog) is not Catalog or clock is not None:
            catalog, clock = catalog_and_clock(catalog, clock)
        return cls(customer_id, catalog, utc_now if clock is None else clock)

    def copy(self) -> Subscription:
        """An independent copy, sharing only what is immutable (catalog, ledger,
        history entries); usage keys are not copied, and a history kept outside
        (in a store) is not either."""
        twin = type(self)(self.customer_id, self.catalog, self._clock)
        twin._state = self._state
        twin._ledger = self._ledger
        twin._mark = self._mark
        twin._seq = self._seq
        twin._ahead = self._ahead
        if isinstance(self._history, MemoryHistory):
            twin._history = self._history.copy()
        return twin

    def __repr__(self) -> str:
        return f"<Subscription {self.customer_id!r} {self._state.value} mark={self._mark}>"

    # --- reads: pure, as of the clock's now (or ``at``) ----------------------
    #
    # A read at or after the mark projects the timed transitions due by then.
    # A read before the mark (a past time, or an instance whose clock lags the
    # one that applied the last operation) answers as the subscription stood
    # then: the state and terms from the history, the credits by taking back
    # what happened since, which the remembered usage allows within the
    # idempotency window.

    @property
    def state(self) -> State:
        """The state as of the clock's now, timed transitions included."""
        return self.state_at(None)

    def state_at(self, at: datetime | None = None) -> State:
        """The state as of ``at`` (the clock's now if None); changes nothing."""
        return self._standing(self._when(at))[0]

    def remaining_credits(self, at: datetime | None = None) -> Decimal:
        """Credits left as of ``at``: base quota plus add-ons, or the trial's."""
        when = self._when(at)
        mark = self._mark
        if mark is None or when >= mark:
            return self._projected(when)[1].remaining
        if self._standing(when)[0] not in HOLDING:
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
        for entry in reversed(self._history.after(when)):
            balance = MONEY.subtract(balance, credit_change(entry))
        return balance

    def authorize(self, feature: str, at: datetime | None = None) -> Decision:
        """Whether ``feature`` may be used as of ``at``, and how it would be billed."""
        when = self._when(at)
        state, edition, trial = self._standing(when)
        catalog = self.catalog.at(when)
        # NOTE: a feature the customer's own terms name is known to them, even once
        # a later version no longer has it; what it costs is the version in force.
        name = catalog.feature(feature, also=edition.features if edition else frozenset())
        how = terms(state, name, catalog.meter_for(name), edition, trial, catalog)
        return Decision(how.billing != "denied", how.billing, how.rule.code if how.rule else None)

    def status(self, at: datetime | None = None) -> dict[str, Any]:
        """Where the subscription stands as of ``at`` (the clock's now if None), in
        one JSON-safe dict: state, the edition in force, credits left (base and
        add-ons; before the mark only their total), the current or last trial's
        and period's ends."""
        when = self._when(at)
        state, edition, _ = self._standing(when)
        mark = self._mark
        if mark is None or when >= mark:
            ledger = self._projected(when)[1]
            addons = ZERO
            for grant in ledger.addons:
                addons = MONEY.add(addons, grant.credits)
            credits: dict[str, str | None] = {
                "base": text(ledger.credits),
                "addons": text(addons),
                "total": text(MONEY.add(ledger.credits, addons)),
            }
        else:
            credits = {"base": None, "addons": None, "total": text(self.remaining_credits(when))}
        ledger = self._ledger
        return {
            "customer_id": self.customer_id,
            "at": when.isoformat(),
            "state": state.value,
            "edition": None if edition is None else edition.name,
            "credits": credits,
            "trial_end": None if ledger.trial_end is None else ledger.trial_end.isoformat(),
            "period_end": None if ledger.period_end is None else ledger.period_end.isoformat(),
            "mark": None if mark is None else mark.isoformat(),
        }

    @property
    def history(self) -> tuple[Transition, ...]:
        """Every transition applied, oldest first."""
        return self._history.entries()

    @property
    def mark(self) -> datetime | None:
        """The time of the last operation; operations before it are refused."""
        return self._mark

    @property
    def edition(self) -> str | None:
        """The edition of the current or last Enterprise subscription."""
        edition = self._ledger.edition
        return None if edition is None else edition.name

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
        pending = due(self._state, self._ledger, END_OF_TIME)
        return pending[1] if pending else None

    # --- operations ----------------------------------------------------------

    @counted
    def purchase_trial(
        self, order_id: str, discount: object = None, at: datetime | None = None
    ) -> Receipt:
        """Buy the monthly feature trial package (Q2) at its fixed price."""
        self._writable()
        key = inputs.identifier(order_id, "order_id")
        asked = inputs.discount(discount)
        requested = self._when(at)
        first = self._replay("order", key, "purchase_trial", {"discount": asked})
        if first is not None:
            return first
        draft = self._draft("purchase_trial", requested)
        when = draft.at
        source = draft.state
        fire(draft, "purchase_trial", self._attempt("purchase_trial", draft, when, asked))
        catalog = self.catalog.at(when)
        trial, texts = catalog.trial, catalog.trial_texts
        ends = ending(add_months(when, trial.validity_months, catalog.zone), "at")
        draft.ledger = attrs.evolve(
            draft.ledger,
            credits=trial.credits,
            addons=(),
            trial=trial,
            trial_end=ends,
            last_trial_at=when,
        )
        entry = draft.log(
            "purchase_trial",
            source,
            when,
            key,
            {
                "amount": texts["amount"],
                "credits": texts["credits"],
                "trial_end": ends.isoformat(),
                "forfeited": "0",
                "excluded_features": texts["excluded_features"],
                "version": texts["version"],
            },
            requested,
        )
        self._commit(draft, when)
        return receipt_of(entry)

    @counted
    def subscribe(
        self,
        edition: str,
        order_id: str,
        term_months: int = 12,
        at: datetime | None = None,
    ) -> Receipt:
        """Subscribe to an Enterprise Edition for ``term_months`` calendar months."""
        self._writable()
        name = self._name(edition, "edition")
        term = inputs.term(term_months)
        key = inputs.identifier(order_id, "order_id")
        requested = self._when(at)
        args = {"edition": name, "term_months": sys.intern(str(term))}
        first = self._replay("order", key, "subscribe", args)
        if first is not None:
            return first
        draft = self._draft("subscribe", requested)
        when = draft.at
        catalog = self.catalog.at(when)
        chosen = catalog.edition(name)
        texts = catalog.edition_texts[chosen.name]
        source = draft.state
        fire(draft, "subscribe", self._attempt("subscribe", draft, when))
        # NOTE: from a trial the rest of the trial ends here (Q2: to continue,
        # subscribe); from quota-exhausted-payg the new period replaces the old
        # one (Q6). Either way what was left is forfeited and recorded.
        forfeited = draft.ledger.remaining
        ends = ending(add_months(when, term, catalog.zone), "term_months")
        draft.ledger = attrs.evolve(
            draft.ledger,
            credits=chosen.credits,
            addons=(),
            edition=chosen,
            period_start=when,
            period_end=ends,
        )
        entry = draft.log(
            "subscribe",
            source,
            when,
            key,
            {
                "edition": chosen.name,
                "term_months": args["term_months"],
                "amount": texts["amount"],
                "credits": texts["credits"],
                "period_end": ends.isoformat(),
                "forfeited": text(forfeited),
                "rank": texts["rank"],
                "features": texts["features"],
                "version": texts["version"],
            },
            requested,
        )
        self._commit(draft, when)
        return receipt_of(entry)

    @counted
    def buy_addon(self, package: str, order_id: str, at: datetime | None = None) -> Receipt:
        """Buy an add-on package: its credits last until the current period ends (Q1, Q6)."""
        self._writable()
        name = self._name(package, "package")
        key = inputs.identifier(order_id, "order_id")
        requested = self._when(at)
        args = {"package": name}
        first = self._replay("order", key, "buy_addon", args)
        if first is not None:
            return first
        draft = self._draft("buy_addon", requested)
        when = draft.at
        catalog = self.catalog.at(when)
        chosen = catalog.addon(name)
        texts = catalog.addon_texts[chosen.name]
        source = draft.state
        fire(draft, "buy_addon", self._attempt("buy_addon", draft, when))
        ledger = draft.ledger
        assert ledger.period_end is not None, "an Enterprise state always has a period"
        draft.ledger = attrs.evolve(
            ledger, addons=(*ledger.addons, Grant(chosen.name, key, chosen.credits))
        )
        entry = draft.log(
            "buy_addon",
            source,
            when,
            key,
            {
                "package": chosen.name,
                "amount": texts["amount"],
                "credits": texts["credits"],
                "valid_until": ledger.period_end.isoformat(),
                "forfeited": "0",
                "version": texts["version"],
            },
            requested,
        )
        self._commit(draft, when)
        return receipt_of(entry)

    @counted
    def unsubscribe(self, request_id: str, at: datetime | None = None) -> Receipt:
        """Unsubscribe from Enterprise: service stops, unused credits are forfeited (Q4)."""
        self._writable()
        key = inputs.identifier(request_id, "request_id")
        requested = self._when(at)
        first = self._replay("request", key, "unsubscribe", {})
        if first is not None:
            return first
        draft = self._draft("unsubscribe", requested)
        when = draft.at
        source = draft.state
        fire(draft, "unsubscribe", self._attempt("unsubscribe", draft, when))
        forfeited = draft.ledger.remaining
        draft.ledger = draft.ledger.emptied()
        entry = draft.log(
            "unsubscribe",
            source,
            when,
            key,
            {"amount": "0", "forfeited": text(forfeited)},
            requested,
        )
        self._commit(draft, when)
        return receipt_of(entry)

    @counted
    def record_usage(
        self,
        meter: str,
        quantity: Decimal | int | str,
        usage_id: str,
        at: datetime | None = None,
    ) -> Settlement:
        """Settle ``quantity`` units of ``meter`` over credits, pay-as-you-go or denial."""
        if self._read_only is not None:
            raise ReadOnly(self._read_only)
        name = meter if type(meter) is str else self._name(meter, "meter")
        amount = inputs.quantity(quantity)
        key = inputs.identifier(usage_id, "usage_id")
        requested = self._when(at)
        first = self._keys.get(key)
        if first is not None:
            # NOTE: answered before the meter is looked up: a usage settled under a
            # meter a later version removed is still answered with its settlement.
            if first.meter == name and first.quantity == amount:
                return attrs.evolve(first, replayed=True)
            raise IdempotencyConflict(
                key,
                f"record_usage({shown(first.meter)}, {first.quantity})",
                f"record_usage({shown(name)}, {amount})",
            )
        when = self._effective("record_usage", requested)
        state, ledger = self._state, self._ledger
        # NOTE: most usage changes no state: a draft (the machine's model) is made
        # only when a timed transition is due or the credits run out.
        draft = None
        if due(state, ledger, when) is not None:
            draft = self._drafted(when, requested)
            state, ledger = STATES[draft.state], draft.ledger
        catalog = self.catalog.at(when)
        measured = catalog.meters.get(name)
        if measured is None:
            measured = catalog.meter(name)  # raises, naming what the catalog has
        how = terms(
            state,
            measured.feature,
            measured,
            ledger.edition if state in ENTERPRISE else None,
            ledger.trial if state is TRIAL else None,
            catalog,
        )
        grants = ledger.addons
        pools = tuple([grant.credits for grant in grants]) if grants else ()
        parts = split(how, amount, measured.credit_rate, ledger.credits, pools)
        before = ledger.remaining
        if parts.base_left != ledger.credits or parts.addons_left != pools:
            ledger = ledger.drawn(parts.base_left, parts.addons_left)
            if not ledger.remaining:
                trigger = "trial_used_up" if state is TRIAL else "quota_used_up"
                if draft is None:
                    draft = Draft(state.value, ledger, self._seq + 1, when, requested)
                draft.ledger = ledger
                fire(draft, trigger, self._attempt(trigger, draft, when))
                draft.log(trigger, state.value, when, key, {}, requested)
                state = STATES[draft.state]
        settlement = Settlement(
            parts.quota,
            parts.addons,
            parts.payg,
            parts.denied,
            MONEY.multiply(parts.payg, measured.payg_price) if parts.payg else ZERO,
            parts.rule.code if parts.rule else None,
            MONEY.subtract(before, ledger.remaining),
            measured.name,
            amount,
            key,
            when,
            state,
            requested,
        )
        if draft is None:
            # NOTE: what _commit does when the state stays and nothing is logged.
            self._ledger = ledger
            self._mark = when
            self._keys.forget_until(when - self.catalog.window)
        else:
            draft.ledger = ledger
            self._commit(draft, when)
        keys = self._keys
        if keys is NO_KEYS:
            self._keys = keys = MemoryKeys()
        keys.remember(settlement)
        return settlement

    def advance(self, to: datetime) -> list[Transition]:
        """Apply the timed transitions due by ``to`` and move the mark there."""
        self._writable()
        draft = self._draft("advance", aware(to, "to"))
        self._commit(draft, draft.at)
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
        catalog: AnyCatalog | None = None,
        clock: Clock | None = None,
    ) -> Subscription:
        """Rebuild a subscription from ``to_record()``'s output, validating all of it.

        A corrupt record raises ``InvalidInput`` naming the field; nothing is
        half-built.
        """
        from lifecycle.record import load

        return load(cls, record, *catalog_and_clock(catalog, clock))
