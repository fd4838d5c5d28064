"""The record format: ``to_record`` / ``from_record``.

A record is a JSON-safe dict: strings, numbers, lists, dicts and None.
Decimals are strings (exact), datetimes ISO 8601 strings in UTC. Loading
validates every field and every invariant before anything is built, and
names the field at fault (``history[3].at``), so a corrupt record can never
become a half-built subscription.

Usage keys are stored as rows (lists) in ``USAGE_COLUMNS`` order: there may be
a week's worth of them, and rows are about half the size of dicts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from lifecycle.catalog import Catalog
from lifecycle.clock import Clock
from lifecycle.errors import InvalidInput
from lifecycle.rules import BY_CODE
from lifecycle.settlement import ZERO
from lifecycle.states import EDGES, ENTERPRISE, NONE, QUOTA_EXHAUSTED_PAYG, TRIAL, State
from lifecycle.subscription import ARGUMENTS, ORDER_OPERATIONS, Grant, Ledger, due
from lifecycle.values import Settlement, Transition

if TYPE_CHECKING:
    from lifecycle.subscription import Subscription

SCHEMA_VERSION = 1

FIELDS = (
    "schema_version",
    "customer_id",
    "state",
    "mark",
    "credits",
    "addons",
    "trial_end",
    "last_trial_at",
    "edition",
    "period_start",
    "period_end",
    "history",
    "usage",
)
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
    "state",
)
HISTORY_FIELDS = ("seq", "at", "trigger", "source", "dest", "key", "details")
_EDGES = {(e.trigger, source): e.dest for e in EDGES for source in e.sources}
_STATES = {state.value: state for state in State}


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def dump(sub: Subscription) -> dict[str, Any]:
    ledger = sub._ledger
    return {
        "schema_version": SCHEMA_VERSION,
        "customer_id": sub.customer_id,
        "state": sub._state.value,
        "mark": _time(sub._mark),
        "credits": str(ledger.credits),
        "addons": [
            {"package": g.package, "order_id": g.order_id, "credits": str(g.credits)}
            for g in ledger.addons
        ],
        "trial_end": _time(ledger.trial_end),
        "last_trial_at": _time(ledger.last_trial_at),
        "edition": ledger.edition,
        "period_start": _time(ledger.period_start),
        "period_end": _time(ledger.period_end),
        "history": [
            {
                "seq": t.seq,
                "at": t.at.isoformat(),
                "trigger": t.trigger,
                "source": t.source.value,
                "dest": t.dest.value,
                "key": t.key,
                "details": dict(t.details),
            }
            for t in sub._history
        ],
        "usage": [
            [
                s.usage_id,
                s.at.isoformat(),
                s.meter,
                str(s.quantity),
                str(s.quota),
                str(s.addons),
                str(s.payg),
                str(s.denied),
                str(s.amount),
                s.rule,
                s.state.value,
            ]
            for s in sub._usage.values()
        ],
    }


def _bad(field: str, problem: str) -> InvalidInput:
    return InvalidInput(field, problem, code="record.invalid")


def _text(value: object, field: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise _bad(field, f"expected a non-empty string, got {value!r}")
    return value


def _instant(value: object, field: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _bad(field, f"expected an ISO 8601 timestamp, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _bad(field, f"{value!r} is not an ISO 8601 timestamp") from None
    if parsed.utcoffset() is None:
        raise _bad(field, f"{value!r} is naive; records hold aware timestamps")
    return parsed.astimezone(UTC)


def _decimal(value: object, field: str, *, positive: bool = False) -> Decimal:
    if not isinstance(value, str):
        raise _bad(field, f"expected a decimal string, got {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise _bad(field, f"{value!r} is not a decimal number") from None
    if not number.is_finite() or number < 0 or (positive and not number):
        raise _bad(
            field, f"{value!r} must be a finite {'positive' if positive else 'non-negative'} number"
        )
    return number


def _state(value: object, field: str) -> State:
    # NOTE: transitions would silently accept an unknown state; we never do.
    if isinstance(value, str) and value in _STATES:
        return _STATES[value]
    raise _bad(field, f"{value!r} is not a state; known: {', '.join(_STATES)}")


def _list(value: object, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise _bad(field, f"expected a list, got {type(value).__name__}")
    return value


def _mapping(value: object, field: str, fields: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(field, f"expected an object, got {type(value).__name__}")
    missing = [name for name in fields if name not in value]
    if missing:
        raise _bad(f"{field}.{missing[0]}" if field else missing[0], "is missing")
    extra = sorted(str(name) for name in value if name not in fields)
    if extra:
        raise _bad(f"{field}.{extra[0]}" if field else extra[0], "is not a record field")
    return value


def load(
    cls: type[Subscription],
    record: Mapping[str, Any],
    catalog: Catalog,
    clock: Clock | None,
) -> Subscription:
    if isinstance(record, Mapping) and record.get("schema_version") != SCHEMA_VERSION:
        raise InvalidInput(
            "schema_version",
            f"{record.get('schema_version')!r} is not a supported schema version "
            f"(this library reads version {SCHEMA_VERSION})",
            code="record.unsupported_version",
        )
    data = _mapping(record, "", FIELDS)
    customer_id = _text(data["customer_id"], "customer_id")
    state = _state(data["state"], "state")
    mark = _instant(data["mark"], "mark", optional=True)

    ledger = Ledger(
        credits=_decimal(data["credits"], "credits"),
        addons=tuple(
            _grant(entry, f"addons[{i}]") for i, entry in enumerate(_list(data["addons"], "addons"))
        ),
        trial_end=_instant(data["trial_end"], "trial_end", optional=True),
        last_trial_at=_instant(data["last_trial_at"], "last_trial_at", optional=True),
        edition=_text(data["edition"], "edition", optional=True),
        period_start=_instant(data["period_start"], "period_start", optional=True),
        period_end=_instant(data["period_end"], "period_end", optional=True),
    )
    _check_ledger(state, ledger, mark, catalog)

    history = [_transition(entry, i) for i, entry in enumerate(_list(data["history"], "history"))]
    orders, requests = _check_history(history, state, mark)

    usage = [_usage(row, f"usage[{i}]") for i, row in enumerate(_list(data["usage"], "usage"))]
    _check_usage(usage, mark)

    sub = cls(customer_id, catalog=catalog, clock=clock)
    sub._state = state
    sub._ledger = ledger
    sub._mark = mark
    sub._history = history
    sub._orders = orders
    sub._requests = requests
    if usage:
        window = catalog.window
        live = [s for s in usage if mark is None or s.at + window > mark]
        sub._usage = {s.usage_id: s for s in live}
        sub._usage_queue = deque(live)
    return sub


def _grant(value: object, field: str) -> Grant:
    entry = _mapping(value, field, ("package", "order_id", "credits"))
    return Grant(
        _text(entry["package"], f"{field}.package"),
        _text(entry["order_id"], f"{field}.order_id"),
        _decimal(entry["credits"], f"{field}.credits", positive=True),
    )


def _check_ledger(state: State, ledger: Ledger, mark: datetime | None, catalog: Catalog) -> None:
    """The ledger must be one the library could have produced in ``state``."""
    if state is TRIAL:
        if ledger.trial_end is None or ledger.last_trial_at is None:
            raise _bad("trial_end", "a trial needs its end and purchase time")
        if not ledger.credits or ledger.addons:
            raise _bad("credits", "a running trial has trial credits left and no add-ons")
    elif state in ENTERPRISE:
        if ledger.edition is None or ledger.period_start is None or ledger.period_end is None:
            raise _bad("edition", f"state {state.value} needs an edition and a period")
        if ledger.edition not in catalog.editions:
            raise _bad("edition", f"{ledger.edition!r} is not an edition of this catalog")
        if ledger.period_end <= ledger.period_start:
            raise _bad("period_end", "ends before the period starts")
        if state is QUOTA_EXHAUSTED_PAYG and (ledger.credits or ledger.addons):
            raise _bad("credits", "quota-exhausted-payg has no credits left")
        if state is not QUOTA_EXHAUSTED_PAYG and not ledger.remaining:
            raise _bad("credits", "enterprise-active must have credits left")
    elif ledger.credits or ledger.addons:
        raise _bad("credits", f"state {state.value} holds no credits")
    if mark is None:
        if state is not NONE:
            raise _bad("mark", f"state {state.value} needs the time of its last operation")
    elif due(state, ledger, mark) is not None:
        raise _bad("state", "a trial end or period end before the mark was never applied")


def _transition(value: object, index: int) -> Transition:
    field = f"history[{index}]"
    entry = _mapping(value, field, HISTORY_FIELDS)
    seq = entry["seq"]
    if type(seq) is not int or seq != index + 1:
        raise _bad(f"{field}.seq", f"expected {index + 1}, got {seq!r}")
    details = entry["details"]
    if not isinstance(details, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in details.items()
    ):
        raise _bad(f"{field}.details", "expected an object of strings")
    trigger = entry["trigger"]
    source = _state(entry["source"], f"{field}.source")
    dest = _state(entry["dest"], f"{field}.dest")
    if not isinstance(trigger, str) or _EDGES.get((trigger, source)) is not dest:
        raise _bad(
            f"{field}.trigger", f"{trigger!r} does not lead from {source.value} to {dest.value}"
        )
    key = _text(entry["key"], f"{field}.key", optional=True)
    if trigger in ARGUMENTS:
        if key is None:
            raise _bad(f"{field}.key", f"{trigger} needs its caller key")
        for name in ("amount", "forfeited"):
            _decimal(details.get(name), f"{field}.details.{name}")
        for name in ARGUMENTS[trigger]:
            if name != "discount" and name not in details:
                raise _bad(f"{field}.details.{name}", "is missing")
    return Transition(
        seq, _instant(entry["at"], f"{field}.at"), trigger, source, dest, key, dict(details)
    )


def _check_history(
    history: list[Transition], state: State, mark: datetime | None
) -> tuple[dict[str, Transition], dict[str, Transition]]:
    orders: dict[str, Transition] = {}
    requests: dict[str, Transition] = {}
    current, previous = NONE, None
    for entry in history:
        field = f"history[{entry.seq - 1}]"
        if entry.source is not current:
            raise _bad(f"{field}.source", f"expected {current.value}, the previous entry's dest")
        if previous is not None and entry.at < previous:
            raise _bad(f"{field}.at", "is earlier than the entry before it")
        if mark is None or entry.at > mark:
            raise _bad(f"{field}.at", "is later than the mark")
        if entry.key is not None and entry.trigger in ARGUMENTS:
            keys = orders if entry.trigger in ORDER_OPERATIONS else requests
            if entry.key in keys:
                raise _bad(f"{field}.key", f"{entry.key!r} is used twice")
            keys[entry.key] = entry
        current, previous = entry.dest, entry.at
    if current is not state:
        raise _bad("state", f"is {state.value} but the history ends in {current.value}")
    return orders, requests


def _usage(value: object, field: str) -> Settlement:
    row = _list(value, field)
    if len(row) != len(USAGE_COLUMNS):
        raise _bad(field, f"expected {len(USAGE_COLUMNS)} columns: {', '.join(USAGE_COLUMNS)}")
    usage_id, at, meter, quantity, quota, addons, payg, denied, amount, rule, state = row
    parts = [
        _decimal(part, f"{field}.{name}")
        for part, name in ((quota, "quota"), (addons, "addons"), (payg, "payg"), (denied, "denied"))
    ]
    settlement = Settlement(
        quota=parts[0],
        addons=parts[1],
        payg=parts[2],
        denied=parts[3],
        amount=_decimal(amount, f"{field}.amount"),
        rule=_rule(rule, f"{field}.rule"),
        meter=_text(meter, f"{field}.meter"),
        quantity=_decimal(quantity, f"{field}.quantity", positive=True),
        usage_id=_text(usage_id, f"{field}.usage_id"),
        at=_instant(at, f"{field}.at"),
        state=_state(state, f"{field}.state"),
    )
    if sum(parts, ZERO) != settlement.quantity:
        raise _bad(field, "quota + addons + payg + denied does not equal the quantity")
    return settlement


def _rule(value: object, field: str) -> str | None:
    if value is None or (isinstance(value, str) and value in BY_CODE):
        return value
    raise _bad(field, f"{value!r} is not a rule code")


def _check_usage(usage: list[Settlement], mark: datetime | None) -> None:
    seen: set[str] = set()
    previous = None
    for index, settlement in enumerate(usage):
        field = f"usage[{index}]"
        if settlement.usage_id in seen:
            raise _bad(f"{field}.usage_id", f"{settlement.usage_id!r} appears twice")
        seen.add(settlement.usage_id)
        if previous is not None and settlement.at < previous:
            raise _bad(f"{field}.at", "is earlier than the usage before it")
        if mark is None or settlement.at > mark:
            raise _bad(f"{field}.at", "is later than the mark")
        previous = settlement.at
