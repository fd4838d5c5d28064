"""Records of schema version 1, read into version 2.

Version 1 kept the edition by name only and did not record the terms of what
was bought beyond its price and credits. A version 1 record therefore takes
the rank, features and trial exclusions of the catalog it is loaded with;
everything else it recorded (prices paid, credits granted, every instant) is
kept as it was. An edition that catalog no longer has is named in the error.

The conversion only reshapes: every value still goes through the version 2
checks afterwards, so a corrupt version 1 record is refused as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lifecycle.catalog import Catalog
from lifecycle.errors import InvalidInput
from lifecycle.ledger import joined

V1_FIELDS = frozenset(
    (
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
)


def _bad(field: str, problem: str) -> InvalidInput:
    return InvalidInput(field, problem, code="record.invalid")


def upgrade(record: Mapping[str, Any], catalog: Catalog) -> dict[str, Any]:
    """``record`` (schema version 1) as a version 2 record, terms from ``catalog``."""
    missing = sorted(V1_FIELDS - set(record))
    if missing:
        raise _bad(missing[0], "is missing")
    extra = sorted(str(name) for name in set(record) - V1_FIELDS)
    if extra:
        raise _bad(extra[0], "is not a record field")
    history = record["history"]
    entries = (
        [_entry(entry, i, catalog) for i, entry in enumerate(history)]
        if type(history) is list
        else history
    )
    last = {}
    if type(entries) is list:
        for entry in entries:
            if isinstance(entry, Mapping) and entry.get("trigger") in (
                "purchase_trial",
                "subscribe",
            ):
                last[entry["trigger"]] = entry
    return {
        "schema_version": 2,
        "customer_id": record["customer_id"],
        "state": record["state"],
        "mark": record["mark"],
        "seq": len(entries) if type(entries) is list else 0,
        "credits": record["credits"],
        "addons": record["addons"],
        "trial": _trial(record, last.get("purchase_trial"), catalog),
        "period": _period(record, last.get("subscribe"), catalog),
        "history": entries,
        "usage": [[*row, None] if type(row) is list else row for row in record["usage"]]
        if type(record["usage"]) is list
        else record["usage"],
    }


def _entry(entry: object, index: int, catalog: Catalog) -> object:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("details"), Mapping):
        return entry
    details = dict(entry["details"])
    trigger = entry.get("trigger")
    if trigger == "purchase_trial":
        details["excluded_features"] = joined(catalog.trial.excluded_features)
    elif trigger == "subscribe":
        name = details.get("edition")
        edition = catalog.editions.get(name) if isinstance(name, str) else None
        if edition is None:
            raise _bad(
                f"history[{index}].details.edition",
                f"{name!r} is not an edition of this catalog; a record of schema "
                "version 1 takes the terms of the catalog it is loaded with",
            )
        details["rank"] = str(edition.rank)
        details["features"] = joined(edition.features)
    return {**entry, "requested_at": None, "details": details}


def _trial(
    record: Mapping[str, Any], bought: Mapping[str, Any] | None, catalog: Catalog
) -> dict[str, Any] | None:
    if record["last_trial_at"] is None and record["trial_end"] is None and bought is None:
        return None
    details = bought["details"] if bought is not None else {}
    return {
        "bought_at": record["last_trial_at"],
        "ends": record["trial_end"],
        "price": details.get("amount"),
        "credits": details.get("credits"),
        "validity_months": catalog.trial.validity_months,
        "excluded_features": sorted(catalog.trial.excluded_features),
    }


def _period(
    record: Mapping[str, Any], bought: Mapping[str, Any] | None, catalog: Catalog
) -> dict[str, Any] | None:
    name = record["edition"]
    if name is None and record["period_start"] is None and bought is None:
        return None
    edition = catalog.editions.get(name) if isinstance(name, str) else None
    if edition is None:
        raise _bad(
            "edition",
            f"{name!r} is not an edition of this catalog; a record of schema version 1 "
            "takes the terms of the catalog it is loaded with",
        )
    details = bought["details"] if bought is not None else {}
    return {
        "edition": name,
        "rank": edition.rank,
        "price": details.get("amount"),
        "credits": details.get("credits"),
        "features": sorted(edition.features),
        "start": record["period_start"],
        "end": record["period_end"],
    }
