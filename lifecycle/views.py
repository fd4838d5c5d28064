"""The value objects as JSON-safe dicts, and back: what an order service sends over
HTTP or keeps in its own tables.

Decimals are strings (exact), times ISO 8601 with their offset, states their
values. ``from_dict`` validates everything it is given and names the field at
fault (``InvalidInput``, code ``record.invalid``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from lifecycle.errors import shown
from lifecycle.money import text
from lifecycle.record import fields as f
from lifecycle.values import Decision, Receipt, Settlement, Transition

T = TypeVar("T")


def _time(value: datetime) -> str:
    return value.isoformat()


def receipt(value: Receipt) -> dict[str, Any]:
    return {
        "operation": value.operation,
        "key": value.key,
        "at": _time(value.at),
        "requested_at": _time(value.requested_at),
        "amount": text(value.amount),
        "state": value.state.value,
        "forfeited": text(value.forfeited),
        "replayed": value.replayed,
    }


def settlement(value: Settlement) -> dict[str, Any]:
    return {
        "usage_id": value.usage_id,
        "meter": value.meter,
        "quantity": text(value.quantity),
        "quota": text(value.quota),
        "addons": text(value.addons),
        "payg": text(value.payg),
        "denied": text(value.denied),
        "amount": text(value.amount),
        "credits": text(value.credits),
        "rule": value.rule,
        "state": value.state.value,
        "at": _time(value.at),
        "requested_at": _time(value.requested_at),
        "replayed": value.replayed,
    }


def decision(value: Decision) -> dict[str, Any]:
    return {"allowed": value.allowed, "billing": value.billing, "rule": value.rule}


def transition(value: Transition) -> dict[str, Any]:
    return {
        "seq": value.seq,
        "at": _time(value.at),
        "requested_at": _time(value.requested_at),
        "trigger": value.trigger,
        "source": value.source.value,
        "dest": value.dest.value,
        "key": value.key,
        "details": dict(value.details),
    }


# --- back from JSON -------------------------------------------------------------


def _fields(data: object, kind: str, names: tuple[str, ...]) -> Mapping[str, Any]:
    return f.mapping(data, kind, frozenset(names))


def _flag(value: object, where: str) -> bool:
    if type(value) is bool:
        return value
    raise f.bad(where, f"expected true or false, got {shown(value)}")


RECEIPT = ("operation", "key", "at", "requested_at", "amount", "state", "forfeited", "replayed")


def receipt_from(data: object) -> Receipt:
    d = _fields(data, "receipt", RECEIPT)
    if d["operation"] not in ("purchase_trial", "subscribe", "buy_addon", "unsubscribe"):
        raise f.bad("receipt.operation", f"{shown(d['operation'])} is not a keyed operation")
    return Receipt(
        d["operation"],
        f.key(d["key"], "receipt", "key"),
        f.instant(d["at"], "receipt", "at"),
        f.decimal(d["amount"], "receipt", "amount"),
        f.state(d["state"], "receipt", "state"),
        f.decimal(d["forfeited"], "receipt", "forfeited"),
        f.instant(d["requested_at"], "receipt", "requested_at"),
        _flag(d["replayed"], "receipt.replayed"),
    )


SETTLEMENT = (
    "usage_id",
    "meter",
    "quantity",
    "quota",
    "addons",
    "payg",
    "denied",
    "amount",
    "credits",
    "rule",
    "state",
    "at",
    "requested_at",
    "replayed",
)


def settlement_from(data: object) -> Settlement:
    d = _fields(data, "settlement", SETTLEMENT)
    where = "settlement"
    value = Settlement(
        f.decimal(d["quota"], where, "quota"),
        f.decimal(d["addons"], where, "addons"),
        f.decimal(d["payg"], where, "payg"),
        f.decimal(d["denied"], where, "denied"),
        f.decimal(d["amount"], where, "amount"),
        f.rule(d["rule"], where),
        f.decimal(d["credits"], where, "credits"),
        f.text(d["meter"], where, "meter"),
        f.decimal(d["quantity"], where, "quantity", positive=True),
        f.key(d["usage_id"], where, "usage_id"),
        f.instant(d["at"], where, "at"),
        f.state(d["state"], where, "state"),
        f.instant(d["requested_at"], where, "requested_at"),
        _flag(d["replayed"], "settlement.replayed"),
    )
    from lifecycle.money import MONEY

    parts = MONEY.add(MONEY.add(value.quota, value.addons), MONEY.add(value.payg, value.denied))
    if parts != value.quantity:
        raise f.bad(where, "quota + addons + payg + denied does not equal the quantity")
    return value


def decision_from(data: object) -> Decision:
    d = _fields(data, "decision", ("allowed", "billing", "rule"))
    if d["billing"] not in ("credits", "payg", "included", "denied"):
        raise f.bad("decision.billing", f"{shown(d['billing'])} is not a way of billing")
    return Decision(
        _flag(d["allowed"], "decision.allowed"), d["billing"], f.rule(d["rule"], "decision")
    )


def transition_from(data: object) -> Transition:
    d = _fields(
        data,
        "transition",
        ("seq", "at", "requested_at", "trigger", "source", "dest", "key", "details"),
    )
    from lifecycle.record import parse_transition

    seq = d["seq"]
    if type(seq) is not int or seq < 1:
        raise f.bad("transition.seq", f"expected a whole number from 1, got {shown(seq)}")
    requested = d["requested_at"]
    entry = {**d, "requested_at": None if requested == d["at"] else requested}
    return parse_transition(entry, "transition", seq)
