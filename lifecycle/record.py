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

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from lifecycle.catalog import Catalog
from lifecycle.clock import FIRST_YEAR, LAST_YEAR, Clock
from lifecycle.errors import InvalidInput
from lifecycle.keys import MemoryKeys
from lifecycle.money import MONEY
from lifecycle.rules import BY_CODE
from lifecycle.states import EDGES, ENTERPRISE, NONE, QUOTA_EXHAUSTED_PAYG, TRIAL, State
from lifecycle.subscription import (
    ARGUMENTS,
    MAX_KEY_LENGTH,
    MAX_TERM_MONTHS,
    ORDER_OPERATIONS,
    Grant,
    Ledger,
    due,
)
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
    "credits",
    "state",
)
HISTORY_FIELDS = ("seq", "at", "trigger", "source", "dest", "key", "details")
_FIELDS = frozenset(FIELDS)
_HISTORY_FIELDS = frozenset(HISTORY_FIELDS)
_GRANT_FIELDS = frozenset(("package", "order_id", "credits"))
_EDGES = {(e.trigger, source): e.dest for e in EDGES for source in e.sources}
_STATES = {state.value: state for state in State}


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def usage_row(s: Settlement) -> list[Any]:
    """One remembered usage key as a record row, in ``USAGE_COLUMNS`` order."""
    return [
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
        str(s.credits),
        s.state.value,
    ]


def dump(sub: Subscription, *, usage: bool = True) -> dict[str, Any]:
    """``sub`` as a record; without its usage keys if ``usage`` is False (a store
    that keeps them in a table of their own)."""
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
        "usage": [usage_row(s) for s in sub._keys.all()] if usage else [],
    }


def _bad(field: str, problem: str) -> InvalidInput:
    return InvalidInput(field, problem, code="record.invalid")


def _path(where: str, name: str) -> str:
    # NOTE: field paths are only built on the way to an error, never on the
    # success path: from_record's cost is mostly these helpers.
    return f"{where}.{name}" if where and name else where or name


def _text(value: object, where: str, name: str = "", *, optional: bool = False) -> Any:
    if type(value) is str and value:
        return value
    if value is None and optional:
        return None
    raise _bad(_path(where, name), f"expected a non-empty string, got {value!r}")


def _key(value: object, where: str, name: str = "", *, optional: bool = False) -> Any:
    """A caller key: the same rules as the operations apply to it."""
    if type(value) is str and value.strip() and len(value) <= MAX_KEY_LENGTH:
        return value
    if value is None and optional:
        return None
    raise _bad(
        _path(where, name), f"expected a key of 1 to {MAX_KEY_LENGTH} characters, got {value!r}"
    )


def _instant(
    value: object,
    where: str,
    name: str = "",
    *,
    optional: bool = False,
    memo: dict[str, datetime] | None = None,
) -> Any:
    if type(value) is not str:
        if value is None and optional:
            return None
        raise _bad(_path(where, name), f"expected an ISO 8601 timestamp, got {value!r}")
    parsed = memo.get(value) if memo is not None else None
    if parsed is not None:
        return parsed
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _bad(_path(where, name), f"{value!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is not UTC and parsed.utcoffset() is None:
        raise _bad(_path(where, name), f"{value!r} is naive; records hold aware timestamps")
    if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
        raise _bad(_path(where, name), f"{value!r} is out of range")
    if parsed.tzinfo is not UTC:
        parsed = parsed.astimezone(UTC)
    if memo is not None:
        memo[value] = parsed
    return parsed


def _decimal(
    value: object,
    where: str,
    name: str = "",
    *,
    positive: bool = False,
    memo: dict[str, Decimal] | None = None,
) -> Decimal:
    """``value`` as a finite, non-negative Decimal (positive if asked).

    ``memo`` holds the strings already parsed while loading one record: usage
    rows repeat the same few figures ("0", the quantity), and a dict lookup
    costs a fraction of a parse.
    """
    if type(value) is not str:
        raise _bad(_path(where, name), f"expected a decimal string, got {value!r}")
    number = memo.get(value) if memo is not None else None
    if number is None:
        try:
            number = Decimal(value) if value.isascii() else None
        except InvalidOperation:
            number = None
        if number is None:
            raise _bad(_path(where, name), f"{value!r} is not a decimal number")
        if not number.is_finite() or number.is_signed() or not _recordable(number, value):
            raise _bad(_path(where, name), f"{value!r} must be a finite non-negative number")
        if memo is not None:
            memo[value] = number
    if positive and not number:
        raise _bad(_path(where, name), f"{value!r} must be a positive number")
    return number


def _recordable(number: Decimal, text: str) -> bool:
    # Looser than the bounds on input: a stored figure may carry the digits of
    # a division or of many sums, but nothing near the limits of arithmetic.
    return len(text) <= 450 and -450 <= number.adjusted() <= 100


def _state(value: object, where: str, name: str = "") -> State:
    # NOTE: transitions would silently accept an unknown state; we never do.
    state = _STATES.get(value) if type(value) is str else None
    if state is None:
        known = ", ".join(_STATES)
        raise _bad(_path(where, name), f"{value!r} is not a state; known: {known}")
    return state


def _list(value: object, field: str) -> list[Any]:
    if type(value) is not list:
        raise _bad(field, f"expected a list, got {type(value).__name__}")
    return value


def _mapping(value: object, field: str, fields: frozenset[str]) -> Mapping[str, Any]:
    if type(value) is dict and value.keys() == fields:
        return value
    if not isinstance(value, Mapping):
        raise _bad(field or "record", f"expected an object, got {type(value).__name__}")
    missing = sorted(name for name in fields if name not in value)
    if missing:
        raise _bad(_path(field, missing[0]), "is missing")
    extra = sorted(str(name) for name in value if name not in fields)
    if extra:
        raise _bad(_path(field, extra[0]), "is not a record field")
    return value


def load(
    cls: type[Subscription],
    record: Mapping[str, Any],
    catalog: Catalog,
    clock: Clock,
) -> Subscription:
    version = record.get("schema_version") if isinstance(record, Mapping) else None
    if isinstance(record, Mapping) and not (type(version) is int and version == SCHEMA_VERSION):
        raise InvalidInput(
            "schema_version",
            f"{version!r} is not a supported schema version "
            f"(this library reads version {SCHEMA_VERSION})",
            code="record.unsupported_version",
        )
    data = _mapping(record, "", _FIELDS)
    customer_id = _text(data["customer_id"], "customer_id")
    if not customer_id.strip():
        raise _bad("customer_id", "is blank")
    state = _state(data["state"], "state")
    times: dict[str, datetime] = {}
    mark = _instant(data["mark"], "mark", optional=True, memo=times)

    memo: dict[str, Decimal] = {}
    ledger = Ledger(
        _decimal(data["credits"], "credits", memo=memo),
        tuple(
            _grant(entry, f"addons[{i}]") for i, entry in enumerate(_list(data["addons"], "addons"))
        ),
        _instant(data["trial_end"], "trial_end", optional=True, memo=times),
        _instant(data["last_trial_at"], "last_trial_at", optional=True, memo=times),
        _text(data["edition"], "edition", optional=True),
        _instant(data["period_start"], "period_start", optional=True, memo=times),
        _instant(data["period_end"], "period_end", optional=True, memo=times),
    )
    _check_ledger(state, ledger, mark, catalog)

    history = [
        _transition(entry, i, memo, times)
        for i, entry in enumerate(_list(data["history"], "history"))
    ]
    orders, requests = _check_history(history, state, mark)
    _check_ledger_against_history(ledger, history, orders, times)

    usage = [_usage(row, i, memo) for i, row in enumerate(_list(data["usage"], "usage"))]
    _check_usage(usage, mark)

    sub = cls(customer_id, catalog, clock)
    sub._state = state
    sub._ledger = ledger
    sub._mark = mark
    sub._history = history
    sub._orders = orders
    sub._requests = requests
    if usage and mark is not None:
        cutoff = mark - catalog.window
        sub._keys = MemoryKeys(s for s in usage if s.at > cutoff)
    return sub


def _grant(value: object, field: str) -> Grant:
    entry = _mapping(value, field, _GRANT_FIELDS)
    return Grant(
        _text(entry["package"], field, "package"),
        _key(entry["order_id"], field, "order_id"),
        _decimal(entry["credits"], field, "credits", positive=True),
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
        if state is QUOTA_EXHAUSTED_PAYG and (ledger.credits or ledger.addons):
            raise _bad("credits", "quota-exhausted-payg has no credits left")
        if state is not QUOTA_EXHAUSTED_PAYG and not ledger.remaining:
            raise _bad("credits", "enterprise-active must have credits left")
    elif ledger.credits or ledger.addons:
        raise _bad("credits", f"state {state.value} holds no credits")
    if ledger.period_start and ledger.period_end and ledger.period_end <= ledger.period_start:
        raise _bad("period_end", "ends before the period starts")
    if mark is None:
        if state is not NONE:
            raise _bad("mark", f"state {state.value} needs the time of its last operation")
    elif due(state, ledger, mark) is not None:
        raise _bad("state", "a trial end or period end before the mark was never applied")


def _figure(value: object, where: str, name: str, memo: Memo) -> object:
    return _decimal(value, where, name, memo=memo[0])


def _moment(value: object, where: str, name: str, memo: Memo) -> object:
    return _instant(value, where, name, memo=memo[1])


def _months(value: object, where: str, name: str, memo: Memo) -> object:
    if type(value) is not str or not value.isdigit() or not 1 <= int(value) <= MAX_TERM_MONTHS:
        raise _bad(f"{where}.{name}", f"{value!r} is not a term in months")
    return value


def _name(value: object, where: str, name: str, memo: Memo) -> object:
    return _text(value, where, name)


Memo = tuple[dict[str, Decimal], dict[str, datetime]]

DETAILS: Mapping[str, Mapping[str, Callable[[object, str, str, Memo], object]]] = {
    "purchase_trial": {
        "amount": _figure,
        "credits": _figure,
        "trial_end": _moment,
        "forfeited": _figure,
    },
    "subscribe": {
        "edition": _name,
        "term_months": _months,
        "amount": _figure,
        "credits": _figure,
        "period_end": _moment,
        "forfeited": _figure,
    },
    "buy_addon": {
        "package": _name,
        "amount": _figure,
        "credits": _figure,
        "valid_until": _moment,
        "forfeited": _figure,
    },
    "unsubscribe": {"amount": _figure, "forfeited": _figure},
    "trial_ended": {"lapsed": _figure},
    "period_ended": {"lapsed": _figure},
    "trial_used_up": {},
    "quota_used_up": {},
}
"""What each trigger's history entry records, and how each detail is checked:
every figure a receipt or a past balance is rebuilt from is checked on load."""


def _transition(
    value: object, index: int, memo: dict[str, Decimal], times: dict[str, datetime]
) -> Transition:
    field = f"history[{index}]"
    entry = _mapping(value, field, _HISTORY_FIELDS)
    seq = entry["seq"]
    if type(seq) is not int or seq != index + 1:
        raise _bad(f"{field}.seq", f"expected {index + 1}, got {seq!r}")
    trigger = entry["trigger"]
    source = _state(entry["source"], field, "source")
    dest = _state(entry["dest"], field, "dest")
    if type(trigger) is not str or _EDGES.get((trigger, source)) is not dest:
        raise _bad(
            f"{field}.trigger", f"{trigger!r} does not lead from {source.value} to {dest.value}"
        )
    details = entry["details"]
    if type(details) is not dict and not isinstance(details, Mapping):
        raise _bad(f"{field}.details", "expected an object of strings")
    schema = DETAILS[trigger]
    if details.keys() != schema.keys():
        names = sorted(str(k) for k in set(details) ^ set(schema))
        raise _bad(f"{field}.details.{names[0]}", "is missing or is not a detail of " + trigger)
    memos, where = (memo, times), field + ".details"
    for name, check in schema.items():
        check(details[name], where, name, memos)
    key = _key(entry["key"], field, "key", optional=True)
    if trigger in ARGUMENTS and key is None:
        raise _bad(f"{field}.key", f"{trigger} needs its caller key")
    at = _instant(entry["at"], field, "at", memo=times)
    return Transition(seq, at, trigger, source, dest, key, details)


def _check_history(
    history: list[Transition], state: State, mark: datetime | None
) -> tuple[dict[str, Transition], dict[str, Transition]]:
    orders: dict[str, Transition] = {}
    requests: dict[str, Transition] = {}
    current, previous = NONE, None
    for index, entry in enumerate(history):
        if entry.source is not current:
            raise _bad(
                f"history[{index}].source", f"expected {current.value}, the previous entry's dest"
            )
        if previous is not None and entry.at < previous:
            raise _bad(f"history[{index}].at", "is earlier than the entry before it")
        if mark is None or entry.at > mark:
            raise _bad(f"history[{index}].at", "is later than the mark")
        if entry.key is not None and entry.trigger in ARGUMENTS:
            keys = orders if entry.trigger in ORDER_OPERATIONS else requests
            if entry.key in keys:
                raise _bad(f"history[{index}].key", f"{entry.key!r} is used twice")
            keys[entry.key] = entry
        current, previous = entry.dest, entry.at
    if current is not state:
        raise _bad("state", f"is {state.value} but the history ends in {current.value}")
    return orders, requests


def _check_ledger_against_history(
    ledger: Ledger,
    history: list[Transition],
    orders: Mapping[str, Transition],
    times: dict[str, datetime],
) -> None:
    """The trial and the period the ledger holds are those the history last bought."""
    trial = subscribe = None
    for entry in reversed(history):
        if trial is None and entry.trigger == "purchase_trial":
            trial = entry
        if subscribe is None and entry.trigger == "subscribe":
            subscribe = entry
        if trial is not None and subscribe is not None:
            break
    bought_trial = (
        (None, None)
        if trial is None
        else (trial.at, _instant(trial.details["trial_end"], "", memo=times))
    )
    if (ledger.last_trial_at, ledger.trial_end) != bought_trial:
        raise _bad("last_trial_at", "does not match the last trial in the history")
    bought_period = (
        (None, None, None)
        if subscribe is None
        else (
            subscribe.details["edition"],
            subscribe.at,
            _instant(subscribe.details["period_end"], "", memo=times),
        )
    )
    if (ledger.edition, ledger.period_start, ledger.period_end) != bought_period:
        raise _bad("edition", "does not match the last subscription in the history")
    for index, grant in enumerate(ledger.addons):
        bought = orders.get(grant.order_id)
        if (
            bought is None
            or bought.trigger != "buy_addon"
            or bought.details["package"] != grant.package
            or subscribe is None
            or bought.at < subscribe.at
        ):
            raise _bad(f"addons[{index}].order_id", "is not an add-on bought in the current period")


def _usage(value: object, index: int, memo: dict[str, Decimal]) -> Settlement:
    return parse_usage_row(value, f"usage[{index}]", memo)


def parse_usage_row(
    value: object, where: str, memo: dict[str, Decimal] | None = None
) -> Settlement:
    """A record row back into its settlement, validated; ``where`` names it in errors."""
    row = value if type(value) is list else _list(value, where)
    if len(row) != len(USAGE_COLUMNS):
        raise _bad(where, f"expected {len(USAGE_COLUMNS)} columns: {', '.join(USAGE_COLUMNS)}")
    usage_id, at, meter, quantity, quota, addons, payg, denied, amount, rule, credits, state = row
    # NOTE: positional, in field order: keywords cost a third more here, and
    # this runs once per remembered usage key on every load.
    settlement = Settlement(
        _decimal(quota, where, "quota", memo=memo),
        _decimal(addons, where, "addons", memo=memo),
        _decimal(payg, where, "payg", memo=memo),
        _decimal(denied, where, "denied", memo=memo),
        _decimal(amount, where, "amount", memo=memo),
        _rule(rule, where),
        _decimal(credits, where, "credits", memo=memo),
        _text(meter, where, "meter"),
        _decimal(quantity, where, "quantity", positive=True, memo=memo),
        _key(usage_id, where, "usage_id"),
        _instant(at, where, "at"),
        _state(state, where, "state"),
    )
    parts = MONEY.add(
        MONEY.add(settlement.quota, settlement.addons),
        MONEY.add(settlement.payg, settlement.denied),
    )
    if parts != settlement.quantity:
        raise _bad(where, "quota + addons + payg + denied does not equal the quantity")
    return settlement


def _rule(value: object, where: str) -> str | None:
    if value is None or (type(value) is str and value in BY_CODE):
        return value
    raise _bad(f"{where}.rule", f"{value!r} is not a rule code")


def _check_usage(usage: list[Settlement], mark: datetime | None) -> None:
    seen: set[str] = set()
    previous = None
    for index, settlement in enumerate(usage):
        if settlement.usage_id in seen:
            raise _bad(f"usage[{index}].usage_id", f"{settlement.usage_id!r} appears twice")
        seen.add(settlement.usage_id)
        if previous is not None and settlement.at < previous:
            raise _bad(f"usage[{index}].at", "is earlier than the usage before it")
        if mark is None or settlement.at > mark:
            raise _bad(f"usage[{index}].at", "is later than the mark")
        previous = settlement.at
