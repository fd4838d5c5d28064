"""The record format: ``to_record`` / ``from_record``.

A record is a JSON-safe dict: strings, numbers, lists, dicts and None.
Decimals are strings (exact), datetimes ISO 8601 strings in UTC. Loading
validates every field and every invariant before anything is built, and
names the field at fault (``history[3].at``), so a corrupt record can never
become a half-built subscription.

A record carries the state, the mark and the ledger (credits, and the terms
the current trial and period were bought under), every history entry, and
the usage keys inside the idempotency window. Usage keys are rows (lists) in
``USAGE_COLUMNS`` order: there may be a week's worth of them, and rows are
about half the size of dicts. A store keeps the history and the keys in
tables of its own and writes the rest, the checkpoint, with ``dump(...,
history=False, usage=False)``; records of schema version 1 are read too
(``lifecycle.record.v1``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from lifecycle.catalog import AnyCatalog, Edition, TrialPackage
from lifecycle.clock import Clock
from lifecycle.errors import InvalidInput, shown
from lifecycle.history import ARGUMENTS, NO_HISTORY, History, MemoryHistory, namespace
from lifecycle.inputs import MAX_TERM_MONTHS
from lifecycle.keys import MemoryKeys
from lifecycle.ledger import Grant, Ledger, due, joined
from lifecycle.money import MONEY, text
from lifecycle.record import fields as f
from lifecycle.states import EDGES, ENTERPRISE, NONE, QUOTA_EXHAUSTED_PAYG, TRIAL, State
from lifecycle.values import Settlement, Transition

if TYPE_CHECKING:
    from lifecycle.subscription import Subscription

SCHEMA_VERSION = 2

FIELDS = (
    "schema_version",
    "customer_id",
    "state",
    "mark",
    "seq",
    "credits",
    "addons",
    "trial",
    "period",
    "history",
    "usage",
)
TRIAL_FIELDS = ("bought_at", "ends", "price", "credits", "validity_months", "excluded_features")
PERIOD_FIELDS = ("edition", "rank", "price", "credits", "features", "start", "end")
USAGE_COLUMNS = (
    "usage_id",
    "at",
    "meter",
    "quantity",
    "quota",
    "addons",
    "payg",
    "denied",
    "amount",
    "rule",
    "credits",
    "state",
    "requested_at",
)
HISTORY_FIELDS = ("seq", "at", "requested_at", "trigger", "source", "dest", "key", "details")
_FIELDS = frozenset(FIELDS)
_TRIAL_FIELDS = frozenset(TRIAL_FIELDS)
_PERIOD_FIELDS = frozenset(PERIOD_FIELDS)
_HISTORY_FIELDS = frozenset(HISTORY_FIELDS)
_GRANT_FIELDS = frozenset(("package", "order_id", "credits"))


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def usage_row(s: Settlement) -> list[Any]:
    """One remembered usage key as a record row, in ``USAGE_COLUMNS`` order."""
    return [
        s.usage_id,
        s.at.isoformat(),
        s.meter,
        text(s.quantity),
        text(s.quota),
        text(s.addons),
        text(s.payg),
        text(s.denied),
        text(s.amount),
        s.rule,
        text(s.credits),
        s.state.value,
        None if s.requested_at == s.at else s.requested_at.isoformat(),
    ]


def history_entry(t: Transition) -> dict[str, Any]:
    """One history entry as it is recorded."""
    return {
        "seq": t.seq,
        "at": t.at.isoformat(),
        "requested_at": None if t.requested_at == t.at else t.requested_at.isoformat(),
        "trigger": t.trigger,
        "source": t.source.value,
        "dest": t.dest.value,
        "key": t.key,
        "details": dict(t.details),
    }


def dump(sub: Subscription, *, history: bool = True, usage: bool = True) -> dict[str, Any]:
    """``sub`` as a record. A store that keeps the history and the usage keys in
    tables of its own leaves them out (``history=False``, ``usage=False``)."""
    ledger = sub._ledger
    trial, edition = ledger.trial, ledger.edition
    return {
        "schema_version": SCHEMA_VERSION,
        "customer_id": sub.customer_id,
        "state": sub._state.value,
        "mark": _time(sub._mark),
        "seq": sub._seq,
        "credits": text(ledger.credits),
        "addons": [
            {"package": g.package, "order_id": g.order_id, "credits": text(g.credits)}
            for g in ledger.addons
        ],
        "trial": None
        if trial is None
        else {
            "bought_at": _time(ledger.last_trial_at),
            "ends": _time(ledger.trial_end),
            "price": text(trial.price),
            "credits": text(trial.credits),
            "validity_months": trial.validity_months,
            "excluded_features": sorted(trial.excluded_features),
        },
        "period": None
        if edition is None
        else {
            "edition": edition.name,
            "rank": edition.rank,
            "price": text(edition.price),
            "credits": text(edition.credits),
            "features": sorted(edition.features),
            "start": _time(ledger.period_start),
            "end": _time(ledger.period_end),
        },
        "history": [history_entry(t) for t in sub._history.entries()] if history else [],
        "usage": [usage_row(s) for s in sub._keys.all()] if usage else [],
    }


def load(
    cls: type[Subscription],
    record: Mapping[str, Any],
    catalog: AnyCatalog,
    clock: Clock,
    *,
    history: History | None = None,
) -> Subscription:
    """Validate ``record`` and build its subscription.

    With ``history`` (a store's), the record is a checkpoint: its history and
    usage lists are empty and ``history`` holds the entries. Without it, the
    record holds every history entry: a record whose history is partial could
    answer a purchase retried with a forgotten key as new, so it is refused.
    """
    version = record.get("schema_version") if isinstance(record, Mapping) else None
    if isinstance(record, Mapping) and type(version) is int and version == 1:
        from lifecycle.record.v1 import upgrade

        record = upgrade(record, catalog)
    elif isinstance(record, Mapping) and not (type(version) is int and version == SCHEMA_VERSION):
        raise InvalidInput(
            "schema_version",
            f"{shown(version)} is not a supported schema version "
            f"(this library reads versions 1 and {SCHEMA_VERSION})",
            code="record.unsupported_version",
        )
    data = f.mapping(record, "", _FIELDS)
    customer_id = f.key(data["customer_id"], "customer_id")
    state = f.state(data["state"], "state")
    mark = f.instant(data["mark"], "mark", optional=True)
    seq = f.integer(data["seq"], "", "seq", lowest=0, highest=2**62)
    ledger = _ledger(data)
    _check_ledger(state, ledger, mark)

    entries = f.listed(data["history"], "history")
    usage_rows = f.listed(data["usage"], "usage")
    if history is None:
        if len(entries) != seq:
            raise f.bad(
                "history",
                f"holds {len(entries)} of the {seq} entries the record counts; a record "
                "from to_record() holds them all (a store keeps them in its own tables)",
            )
        kept = [parse_transition(entry, f"history[{i}]", i + 1) for i, entry in enumerate(entries)]
        _check_history(kept, state, mark)
        _check_ledger_against_history(ledger, kept)
        history = MemoryHistory(kept) if kept else NO_HISTORY
    elif entries or usage_rows:
        raise f.bad("history", "a checkpoint holds no history or usage of its own")
    usage = [parse_usage_row(row, f"usage[{i}]") for i, row in enumerate(usage_rows)]
    _check_usage(usage, mark)

    sub = cls(customer_id, catalog, clock)
    sub._state = state
    sub._ledger = ledger
    sub._mark = mark
    sub._seq = seq
    sub._history = history
    if usage and mark is not None:
        cutoff = mark - catalog.window
        sub._keys = MemoryKeys(s for s in usage if s.at > cutoff)
    return sub


def _ledger(data: Mapping[str, Any]) -> Ledger:
    # NOTE: positional, in field order (keywords cost more); checked in the
    # order the fields are written, so the first bad one is the one named.
    trial, period = data["trial"], data["period"]
    if trial is not None:
        trial = f.mapping(trial, "trial", _TRIAL_FIELDS)
    if period is not None:
        period = f.mapping(period, "period", _PERIOD_FIELDS)
    credits = f.decimal(data["credits"], "credits")
    addons = f.listed(data["addons"], "addons")
    grants = tuple([_grant(entry, f"addons[{i}]") for i, entry in enumerate(addons)])
    if trial is None:
        terms = trial_end = bought_at = None
    else:
        terms = TrialPackage(
            f.decimal(trial["price"], "trial", "price"),
            f.decimal(trial["credits"], "trial", "credits", positive=True),
            f.integer(trial["validity_months"], "trial", "validity_months", lowest=1, highest=1200),
            f.names(trial["excluded_features"], "trial", "excluded_features"),
        )
        trial_end = f.instant(trial["ends"], "trial", "ends")
        bought_at = f.instant(trial["bought_at"], "trial", "bought_at")
    if period is None:
        return Ledger(credits, grants, terms, trial_end, bought_at)
    edition = Edition(
        f.text(period["edition"], "period", "edition"),
        f.integer(period["rank"], "period", "rank", lowest=0, highest=1000),
        f.decimal(period["price"], "period", "price"),
        f.decimal(period["credits"], "period", "credits", positive=True),
        f.names(period["features"], "period", "features"),
    )
    return Ledger(
        credits,
        grants,
        terms,
        trial_end,
        bought_at,
        edition,
        f.instant(period["start"], "period", "start"),
        f.instant(period["end"], "period", "end"),
    )


def _grant(value: object, field: str) -> Grant:
    entry = f.mapping(value, field, _GRANT_FIELDS)
    return Grant(
        f.text(entry["package"], field, "package"),
        f.key(entry["order_id"], field, "order_id"),
        f.decimal(entry["credits"], field, "credits", positive=True),
    )


def _check_ledger(state: State, ledger: Ledger, mark: datetime | None) -> None:
    """The ledger must be one the library could have produced in ``state``."""
    if state is TRIAL:
        if ledger.trial is None:
            raise f.bad("trial", "a trial needs the terms it was bought under")
        if not ledger.credits or ledger.addons:
            raise f.bad("credits", "a running trial has trial credits left and no add-ons")
    elif state in ENTERPRISE:
        if ledger.edition is None:
            raise f.bad("period", f"state {state.value} needs an edition and a period")
        if state is QUOTA_EXHAUSTED_PAYG and (ledger.credits or ledger.addons):
            raise f.bad("credits", "quota-exhausted-payg has no credits left")
        if state is not QUOTA_EXHAUSTED_PAYG and not ledger.remaining:
            raise f.bad("credits", "enterprise-active must have credits left")
    elif ledger.credits or ledger.addons:
        raise f.bad("credits", f"state {state.value} holds no credits")
    if (
        ledger.trial_end is not None
        and ledger.last_trial_at is not None
        and ledger.trial_end <= ledger.last_trial_at
    ):
        raise f.bad("trial.ends", "ends before the trial was bought")
    if ledger.period_start and ledger.period_end and ledger.period_end <= ledger.period_start:
        raise f.bad("period.end", "ends before the period starts")
    if mark is None:
        if state is not NONE:
            raise f.bad("mark", f"state {state.value} needs the time of its last operation")
    elif due(state, ledger, mark) is not None:
        raise f.bad("state", "a trial end or period end before the mark was never applied")
    for when, name in (
        (ledger.last_trial_at, "trial.bought_at"),
        (ledger.period_start, "period.start"),
    ):
        if when is not None and (mark is None or when > mark):
            raise f.bad(name, "is later than the mark")


def _figure(value: object, where: str, name: str) -> object:
    return f.decimal(value, where, name)


def _moment(value: object, where: str, name: str) -> object:
    return f.instant(value, where, name)


def _months(value: object, where: str, name: str) -> object:
    if type(value) is not str or not value.isdigit() or not 1 <= int(value) <= MAX_TERM_MONTHS:
        raise f.bad(f"{where}.{name}", f"{shown(value)} is not a term in months")
    return value


def _rank(value: object, where: str, name: str) -> object:
    if type(value) is not str or not value.isdigit() or not 0 <= int(value) <= 1000:
        raise f.bad(f"{where}.{name}", f"{shown(value)} is not a rank")
    return value


def _name(value: object, where: str, name: str) -> object:
    return f.text(value, where, name)


def _names(value: object, where: str, name: str) -> object:
    if type(value) is not str:
        raise f.bad(f"{where}.{name}", "expected comma-separated names")
    return value


def _version(value: object, where: str, name: str) -> object:
    if type(value) is not str or len(value) > 255:
        raise f.bad(f"{where}.{name}", "expected the catalog version's name, or an empty string")
    return value


DETAILS: Mapping[str, Mapping[str, Callable[[object, str, str], object]]] = {
    "purchase_trial": {
        "amount": _figure,
        "credits": _figure,
        "trial_end": _moment,
        "forfeited": _figure,
        "excluded_features": _names,
        "version": _version,
    },
    "subscribe": {
        "edition": _name,
        "term_months": _months,
        "amount": _figure,
        "credits": _figure,
        "period_end": _moment,
        "forfeited": _figure,
        "rank": _rank,
        "features": _names,
        "version": _version,
    },
    "buy_addon": {
        "package": _name,
        "amount": _figure,
        "credits": _figure,
        "valid_until": _moment,
        "forfeited": _figure,
        "version": _version,
    },
    "unsubscribe": {"amount": _figure, "forfeited": _figure},
    "trial_ended": {"lapsed": _figure},
    "period_ended": {"lapsed": _figure},
    "trial_used_up": {},
    "quota_used_up": {},
}
"""What each trigger's history entry records, and how each detail is checked:
every figure a receipt, a past balance or past terms are rebuilt from is
checked on load."""


class _Step(NamedTuple):
    source: State
    dest: State
    names: frozenset[str]
    checks: tuple[tuple[str, Callable[[object, str, str], object]], ...]


_STEPS = {
    (e.trigger, source.value, e.dest.value): _Step(
        source, e.dest, frozenset(DETAILS[e.trigger]), tuple(DETAILS[e.trigger].items())
    )
    for e in EDGES
    for source in e.sources
}
"""Each step the table allows, by the texts a history entry names it with:
its states, and the details it records with their checks."""


def parse_transition(value: object, field: str, seq: int) -> Transition:
    """A recorded history entry back into its ``Transition``, validated; ``seq`` is
    the number it must carry and ``field`` names it in errors."""
    entry = f.mapping(value, field, _HISTORY_FIELDS)
    if type(entry["seq"]) is not int or entry["seq"] != seq:
        raise f.bad(f"{field}.seq", f"expected {seq}, got {shown(entry['seq'])}")
    trigger, source, dest = entry["trigger"], entry["source"], entry["dest"]
    step = (
        _STEPS.get((trigger, source, dest))
        if type(trigger) is str and type(source) is str and type(dest) is str
        else None
    )
    if step is None:
        source = f.state(source, field, "source")
        dest = f.state(dest, field, "dest")
        raise f.bad(
            f"{field}.trigger",
            f"{shown(trigger)} does not lead from {source.value} to {dest.value}",
        )
    details = entry["details"]
    if type(details) is not dict and not isinstance(details, Mapping):
        raise f.bad(f"{field}.details", "expected an object of strings")
    if details.keys() != step.names:
        names = sorted(str(k) for k in set(details) ^ step.names)
        raise f.bad(f"{field}.details.{names[0]}", "is missing or is not a detail of " + trigger)
    where = field + ".details"
    for name, check in step.checks:
        check(details[name], where, name)
    key = entry["key"]
    if key is None:
        if trigger in ARGUMENTS:
            raise f.bad(f"{field}.key", f"{trigger} needs its caller key")
    else:
        key = f.key(key, field, "key")
    at = f.instant(entry["at"], field, "at")
    requested = entry["requested_at"]
    if requested is not None:
        requested = f.instant(requested, field, "requested_at")
        if requested >= at:
            raise f.bad(f"{field}.requested_at", "must be earlier than at, or null when equal")
    return Transition(seq, at, trigger, step.source, step.dest, key, details, requested or at)


def _check_history(history: list[Transition], state: State, mark: datetime | None) -> None:
    seen: set[tuple[str, str]] = set()
    current, previous = NONE, None
    for index, entry in enumerate(history):
        if entry.source is not current:
            raise f.bad(
                f"history[{index}].source", f"expected {current.value}, the previous entry's dest"
            )
        if previous is not None and entry.at < previous:
            raise f.bad(f"history[{index}].at", "is earlier than the entry before it")
        if mark is None or entry.at > mark:
            raise f.bad(f"history[{index}].at", "is later than the mark")
        space = namespace(entry.trigger)
        if space is not None and entry.key is not None:
            if (space, entry.key) in seen:
                raise f.bad(f"history[{index}].key", f"{shown(entry.key)} is used twice")
            seen.add((space, entry.key))
        current, previous = entry.dest, entry.at
    if current is not state:
        raise f.bad("state", f"is {state.value} but the history ends in {current.value}")


def _check_ledger_against_history(ledger: Ledger, history: list[Transition]) -> None:
    """The trial and the period the ledger holds are those the history last bought,
    on the terms it bought them."""
    trial = subscribe = None
    for entry in reversed(history):
        if trial is None and entry.trigger == "purchase_trial":
            trial = entry
        if subscribe is None and entry.trigger == "subscribe":
            subscribe = entry
        if trial is not None and subscribe is not None:
            break
    if trial is None:
        bought_trial: tuple[Any, ...] = (None,) * 5
    else:
        d = trial.details
        bought_trial = (
            trial.at,
            f.instant(d["trial_end"], ""),
            f.decimal(d["amount"], ""),
            f.decimal(d["credits"], ""),
            d["excluded_features"],
        )
    held = ledger.trial
    if (
        ledger.last_trial_at,
        ledger.trial_end,
        held and held.price,
        held and held.credits,
        held and joined(held.excluded_features),
    ) != bought_trial:
        raise f.bad("trial", "does not match the last trial in the history")
    if subscribe is None:
        bought_period: tuple[Any, ...] = (None,) * 7
    else:
        d = subscribe.details
        bought_period = (
            d["edition"],
            int(d["rank"]),
            f.decimal(d["amount"], ""),
            f.decimal(d["credits"], ""),
            d["features"],
            subscribe.at,
            f.instant(d["period_end"], ""),
        )
    edition = ledger.edition
    if (
        edition and edition.name,
        edition and edition.rank,
        edition and edition.price,
        edition and edition.credits,
        edition and joined(edition.features),
        ledger.period_start,
        ledger.period_end,
    ) != bought_period:
        raise f.bad("period", "does not match the last subscription in the history")
    orders = {e.key: e for e in history if e.trigger == "buy_addon"}
    for index, grant in enumerate(ledger.addons):
        bought = orders.get(grant.order_id)
        if (
            bought is None
            or bought.details["package"] != grant.package
            or subscribe is None
            or bought.at < subscribe.at
        ):
            raise f.bad(
                f"addons[{index}].order_id", "is not an add-on bought in the current period"
            )


def parse_usage_row(value: object, where: str) -> Settlement:
    """A record row back into its settlement, validated; ``where`` names it in errors."""
    row = value if type(value) is list else f.listed(value, where)
    if len(row) == len(USAGE_COLUMNS) - 1:
        row = [*row, None]  # a row version 1 wrote: no late arrivals then
    if len(row) != len(USAGE_COLUMNS):
        raise f.bad(where, f"expected {len(USAGE_COLUMNS)} columns: {', '.join(USAGE_COLUMNS)}")
    (usage_id, at, meter, quantity, quota, addons, payg, denied, amount, rule, credits, state,
     requested) = row  # fmt: skip
    when = f.instant(at, where, "at")
    asked = f.instant(requested, where, "requested_at", optional=True)
    if asked is not None and asked >= when:
        raise f.bad(f"{where}.requested_at", "must be earlier than at, or null when equal")
    # NOTE: positional, in field order: keywords cost a third more here, and
    # this runs once per remembered usage key on every load.
    settlement = Settlement(
        f.decimal(quota, where, "quota"),
        f.decimal(addons, where, "addons"),
        f.decimal(payg, where, "payg"),
        f.decimal(denied, where, "denied"),
        f.decimal(amount, where, "amount"),
        f.rule(rule, where),
        f.decimal(credits, where, "credits"),
        f.text(meter, where, "meter"),
        f.decimal(quantity, where, "quantity", positive=True),
        f.key(usage_id, where, "usage_id"),
        when,
        f.state(state, where, "state"),
        asked or when,
    )
    parts = MONEY.add(
        MONEY.add(settlement.quota, settlement.addons),
        MONEY.add(settlement.payg, settlement.denied),
    )
    if parts != settlement.quantity:
        raise f.bad(where, "quota + addons + payg + denied does not equal the quantity")
    return settlement


def _check_usage(usage: list[Settlement], mark: datetime | None) -> None:
    seen: set[str] = set()
    previous = None
    for index, settlement in enumerate(usage):
        if settlement.usage_id in seen:
            raise f.bad(f"usage[{index}].usage_id", f"{shown(settlement.usage_id)} appears twice")
        seen.add(settlement.usage_id)
        if previous is not None and settlement.at < previous:
            raise f.bad(f"usage[{index}].at", "is earlier than the usage before it")
        if mark is None or settlement.at > mark:
            raise f.bad(f"usage[{index}].at", "is later than the mark")
        previous = settlement.at
