"""The machinery of an operation, shared by every operation of ``Subscription``.

``Draft`` is an operation's work in progress; ``Machinery`` drafts it (the
late-arrival rule: when an operation takes effect, ``_effective``), applies the
timed transitions due (``_drafted``), checks the guards through the shared
machine and commits it by plain assignments (``_commit``); it also answers a
seen key (``_replay``) and reads the past from the history (``_past``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

import attrs

from lifecycle.catalog import (
    AnyCatalog,
    Catalog,
    CatalogVersions,
    Edition,
    TrialPackage,
    default_catalog,
)
from lifecycle.clock import LAST_YEAR, Clock, aware, read_clock, utc_now
from lifecycle.errors import IdempotencyConflict, InvalidInput, OutOfOrder, ReadOnly, shown
from lifecycle.history import ARGUMENTS, NO_HISTORY, History, MemoryHistory, Namespace
from lifecycle.keys import UsageKeys
from lifecycle.ledger import Ledger, due, edition_terms, trial_terms
from lifecycle.machine import fire
from lifecycle.money import text
from lifecycle.rules import Attempt
from lifecycle.states import ENTERPRISE, EXPIRED, STATES, TRIAL, TRIAL_EXHAUSTED, State
from lifecycle.values import Receipt, Transition


@attrs.define(slots=False, eq=False)
class Draft:
    """An operation's work in progress; the machine's model (hence slots=False)."""

    state: str
    ledger: Ledger
    seq: int
    at: datetime
    """When the operation takes effect: the caller's time, or the mark for a
    late arrival."""
    asked: datetime
    """The caller's time."""
    applied: list[Transition] = attrs.Factory(list)

    def log(
        self,
        trigger: str,
        source: str,
        at: datetime,
        key: str | None,
        details: dict[str, str],
        requested: datetime | None = None,
    ) -> Transition:
        entry = Transition(
            self.seq, at, trigger, STATES[source], STATES[self.state], key, details, requested or at
        )
        self.seq += 1
        self.applied.append(entry)
        return entry


Standing = tuple[State, Edition | None, TrialPackage | None]
"""A state, and the edition and trial terms in force in it."""


class Machinery:
    """What every operation of a subscription does around its own effects."""

    __slots__ = (
        "_ahead",
        "_clock",
        "_history",
        "_keys",
        "_ledger",
        "_mark",
        "_read_only",
        "_seq",
        "_state",
        "catalog",
        "customer_id",
    )

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

    # --- reads of the past ---------------------------------------------------

    def _standing(self, when: datetime) -> Standing:
        """State and terms at ``when``: from the history before the mark, projected
        with the timed transitions due from it on."""
        if self._mark is not None and when < self._mark:
            return self._past(when)
        state, ledger = self._projected(when)
        return (
            state,
            ledger.edition if state in ENTERPRISE else None,
            ledger.trial if state is TRIAL else None,
        )

    def _projected(self, when: datetime) -> tuple[State, Ledger]:
        """State and ledger at ``when`` (at or after the mark), timed transitions applied."""
        pending = due(self._state, self._ledger, when)
        if pending is None:
            return self._state, self._ledger
        state = TRIAL_EXHAUSTED if pending[0] == "trial_ended" else EXPIRED
        return state, self._ledger.emptied()

    def _past(self, when: datetime) -> Standing:
        """State and terms at ``when``, before the mark, from the history."""
        history = self._history
        entry = history.last_at_or_before(when)
        if entry is None:
            return State.NONE, None, None
        state, ledger = entry.dest, self._ledger
        edition = trial = None
        if state in ENTERPRISE:
            # NOTE: the period in force then is the ledger's own when it had begun by
            # then; an earlier one's terms are in the history entry that bought it.
            if ledger.period_start is not None and ledger.period_start <= when:
                edition = ledger.edition
            else:
                bought = history.last_at_or_before(when, "subscribe")
                edition = None if bought is None else edition_terms(bought)
        elif state is TRIAL:
            if ledger.last_trial_at is not None and ledger.last_trial_at <= when:
                trial = ledger.trial
            else:
                bought = history.last_at_or_before(when, "purchase_trial")
                validity = self.catalog.at(when).trial.validity_months
                trial = None if bought is None else trial_terms(bought, validity)
        return state, edition, trial

    # --- the machinery of an operation ---------------------------------------

    def _name(self, value: object, field: str) -> str:
        """A catalog name's form; whether the version in force has it is asked later,
        once the operation's time is known (and after a seen key is answered)."""
        if isinstance(value, str):
            return value
        codes = {"edition": "catalog.unknown_edition", "package": "catalog.unknown_package"}
        raise InvalidInput(
            field,
            f"expected a name from the catalog, got {type(value).__name__}",
            code=codes.get(field, "catalog.unknown_meter"),
        )

    def _writable(self) -> None:
        if self._read_only is not None:
            raise ReadOnly(self._read_only)

    def _when(self, at: datetime | None) -> datetime:
        if at is None:
            return read_clock(self._clock)
        return aware(at, "at")

    def _draft(self, operation: str, asked: datetime) -> Draft:
        """A draft of ``operation`` asked for at ``asked``, with the timed transitions
        due by the time it takes effect applied."""
        return self._drafted(self._effective(operation, asked), asked)

    def _effective(self, operation: str, asked: datetime) -> datetime:
        """When ``operation``, asked for at ``asked``, takes effect.

        An operation behind the mark by no more than the catalog's
        ``late_arrival_minutes`` takes effect at the mark; further behind, it is
        ``OutOfOrder`` and nothing changes.
        """
        if self._ahead is not None:
            now = read_clock(self._clock)
            if asked > now + self._ahead:
                raise InvalidInput(
                    "at" if operation != "advance" else "to",
                    f"{asked.isoformat()} is later than the store's clock ({now.isoformat()}) "
                    "by more than the late-arrival allowance: an operation cannot be dated in "
                    "the future (pass at=None to let the store read its clock)",
                    code="input.in_the_future",
                )
        mark = self._mark
        if mark is not None and asked < mark:
            allowance = self.catalog.late_arrival
            if mark - asked > allowance:
                raise OutOfOrder(operation, asked, mark, allowance=allowance)
            return mark
        return asked

    def _drafted(self, when: datetime, asked: datetime) -> Draft:
        """A draft taking effect at ``when``, the timed transitions due by then applied."""
        draft = Draft(self._state.value, self._ledger, self._seq + 1, when, asked)
        pending = due(self._state, self._ledger, when)
        if pending is not None:
            trigger, instant = pending
            source = draft.state
            lapsed = draft.ledger.remaining
            fire(draft, trigger, self._attempt(trigger, draft, instant))
            draft.ledger = draft.ledger.emptied()
            draft.log(trigger, source, instant, None, {"lapsed": text(lapsed)})
        return draft

    def _commit(self, draft: Draft, when: datetime) -> None:
        # NOTE: only assignments from here on: nothing below can refuse.
        self._state = STATES[draft.state]
        self._ledger = draft.ledger
        if draft.applied:
            history = self._history
            if history is NO_HISTORY:
                self._history = history = MemoryHistory()
            history.extend(draft.applied)
            self._seq = draft.seq - 1
        self._mark = when
        self._keys.forget_until(when - self.catalog.window)

    def _attempt(
        self, operation: str, draft: Draft, at: datetime, discount: object = None
    ) -> Attempt:
        catalog = self.catalog.at(at)
        ledger = draft.ledger
        return Attempt(
            operation,
            STATES[draft.state],
            at,
            catalog.zone,
            ledger.last_trial_at,
            discount,
            catalog.trial_price,
            ledger.period_end,
        )

    def _replay(
        self,
        space: Namespace,
        key: str,
        operation: str,
        args: Mapping[str, str | None],
    ) -> Receipt | None:
        entry = self._history.keyed(space, key)
        if entry is None:
            return None
        before = {name: entry.details.get(name) for name in ARGUMENTS[entry.trigger]}
        if entry.trigger != operation or before != args:
            raise IdempotencyConflict(
                key, call_text(entry.trigger, before), call_text(operation, args)
            )
        return attrs.evolve(receipt_of(entry), replayed=True)


_CATALOGS = (Catalog, CatalogVersions)


def catalog_and_clock(catalog: AnyCatalog | None, clock: Clock | None) -> tuple[AnyCatalog, Clock]:
    if catalog is None:
        catalog = default_catalog()
    elif not isinstance(catalog, _CATALOGS):
        raise InvalidInput(
            "catalog", f"expected a Catalog or CatalogVersions, got {type(catalog).__name__}"
        )
    if clock is None:
        clock = utc_now
    elif not callable(clock):
        raise InvalidInput("clock", "expected a zero-argument callable")
    return catalog, clock


def ending(end: datetime, field: str) -> datetime:
    """``end`` if a record can hold it; an operation ending later is refused."""
    if end.year > LAST_YEAR:
        raise InvalidInput(
            field,
            f"the trial or period would end on {end.date().isoformat()}, after the "
            f"year {LAST_YEAR}, the last a record holds",
            code="input.out_of_range",
        )
    return end


def receipt_of(entry: Transition) -> Receipt:
    return Receipt(
        entry.trigger,
        entry.key or "",
        entry.at,
        Decimal(entry.details["amount"]),
        entry.dest,
        Decimal(entry.details["forfeited"]),
        entry.requested_at,
    )


def call_text(operation: str, args: Mapping[str, str | None]) -> str:
    given = ", ".join(f"{name}={shown(value)}" for name, value in args.items() if value is not None)
    return f"{operation}({given})"
