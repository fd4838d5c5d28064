"""Every error code, the HTTP status an order service should answer with, and its
RFC 9457 problem details (``LifecycleError.problem()``).

The table is the contract: one row per code the library raises (a test holds
it to the code), and the README's table is generated from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lifecycle.rules import RULES

TYPE = "urn:lifecycle:problem:{code}"
"""A problem's ``type``: a stable URI per code (a URN: it names, it is not fetched)."""

CODES: Mapping[str, tuple[int, str]] = {
    **{rule.code: (409, rule.summary[:1].upper() + rule.summary[1:]) for rule in RULES},
    "order.out_of_order": (409, "The operation is earlier than the subscription allows"),
    "idempotency.conflict": (422, "The key was used before with other arguments"),
    "input.invalid": (400, "An argument is not acceptable"),
    "input.bad_customer_id": (400, "The customer id is not acceptable"),
    "input.bad_key": (400, "The caller key is not acceptable"),
    "input.bad_quantity": (400, "The quantity is not a positive finite number"),
    "input.bad_discount": (400, "The discount is not acceptable"),
    "input.bad_term": (400, "The term is not a whole number of months from 1 to 1200"),
    "input.not_a_datetime": (400, "A time is not a datetime"),
    "input.naive_datetime": (400, "A time has no time zone"),
    "input.out_of_range": (400, "A time is outside the range a record holds"),
    "input.in_the_future": (400, "A time is later than the store's clock"),
    "catalog.unknown_edition": (400, "The catalog in force has no such edition"),
    "catalog.unknown_package": (400, "The catalog in force has no such add-on package"),
    "catalog.unknown_meter": (400, "The catalog in force has no such meter"),
    "catalog.unknown_feature": (400, "The catalog in force has no such feature"),
    "catalog.invalid": (500, "The catalog is invalid"),
    "record.invalid": (500, "A stored record is corrupt"),
    "record.unsupported_version": (500, "A stored record is of an unknown schema version"),
    "store.unknown_customer": (404, "The store holds no such customer"),
    "store.unavailable": (503, "The database failed; retry with the same keys"),
    "store.lock_timeout": (503, "The customer or the database stayed locked by another request"),
    "store.schema": (503, "The database holds no lifecycle schema of this version"),
    "store.read_only": (500, "The subscription may only be read"),
    "store.nested_edit": (500, "An edit inside an edit of the same customer"),
    "store.no_transaction": (500, "The edit's transaction is missing or ended"),
    "store.constraint": (409, "A statement broke a constraint of the database"),
    "store.error": (500, "The store failed"),
    "lifecycle.error": (500, "The lifecycle library failed"),
}


def details(
    code: str,
    detail: str,
    *,
    faq: str | None = None,
    advice: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    status, title = CODES.get(code, CODES["lifecycle.error"])
    found: dict[str, Any] = {
        "type": TYPE.format(code=code),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if faq is not None:
        found["faq"] = faq
    if advice is not None:
        found["advice"] = advice
    if extra:
        found.update(extra)
    return found


def table() -> str:
    """The README's table: every code with its status and title."""
    lines = ["| code | status | title |", "|---|---|---|"]
    for code, (status, title) in CODES.items():
        lines.append(f"| `{code}` | {status} | {title} |")
    return "\n".join(lines)
