"""Records of schema version 1, read into version 2.

Version 1 kept the edition by name only and did not record the terms of what
was bought beyond its price and credits. A version 1 record therefore takes
the rank, features and trial exclusions of the catalog it is loaded with (of
the version in force when each was bought, for catalog versions);
everything else it recorded (prices paid, credits granted, every instant) is
kept as it was. An edition that catalog no longer has is named in the error.

The conversion only reshapes: every value still goes through the version 2
checks afterwards, so a corrupt version 1 record is refused as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from lifecycle.catalog import AnyCatalog, Catalog
from lifecycle.errors import InvalidInput, shown
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


def upgrade(record: Mapping[str, Any], catalog: AnyCatalog) -> dict[str, Any]:
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


def _entry(entry: object, index: int, catalog: AnyCatalog) -> object:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("details"), Mapping):
        return entry
    details = dict(entry["details"])
    trigger = entry.get("trigger")
    version = _in_force(catalog, entry.get("at"))
    if trigger in ("purchase_trial", "subscribe", "buy_addon"):
        details["version"] = version.version or ""
    if trigger == "purchase_trial":
        details["excluded_features"] = joined(version.trial.excluded_features)
    elif trigger == "subscribe":
        name = details.get("edition")
        edition = version.editions.get(name) if isinstance(name, str) else None
        if edition is None:
            raise _bad(
                f"history[{index}].details.edition",
                f"{shown(name)} is not an edition of this catalog; a record of schema "
                "version 1 takes the terms of the catalog it is loaded with",
            )
        details["rank"] = str(edition.rank)
        details["features"] = joined(edition.features)
    return {**entry, "requested_at": None, "details": details}


def _in_force(catalog: AnyCatalog, when: object) -> Catalog:
    """The version in force at a recorded time (the latest for a time unreadable
    here: the version 2 checks will name the field)."""
    try:
        at = datetime.fromisoformat(when) if isinstance(when, str) else None
    except ValueError:
        at = None
    if at is None or at.utcoffset() is None:
        return catalog.versions[-1]
    return catalog.at(at)


def _trial(
    record: Mapping[str, Any], bought: Mapping[str, Any] | None, catalog: AnyCatalog
) -> dict[str, Any] | None:
    if record["last_trial_at"] is None and record["trial_end"] is None and bought is None:
        return None
    details = bought["details"] if bought is not None else {}
    version = _in_force(catalog, record["last_trial_at"])
    return {
        "bought_at": record["last_trial_at"],
        "ends": record["trial_end"],
        "price": details.get("amount"),
        "credits": details.get("credits"),
        "validity_months": version.trial.validity_months,
        "excluded_features": sorted(version.trial.excluded_features),
    }


def _period(
    record: Mapping[str, Any], bought: Mapping[str, Any] | None, catalog: AnyCatalog
) -> dict[str, Any] | None:
    name = record["edition"]
    if name is None and record["period_start"] is None and bought is None:
        return None
    version = _in_force(catalog, record["period_start"])
    edition = version.editions.get(name) if isinstance(name, str) else None
    if edition is None:
        raise _bad(
            "edition",
            f"{shown(name)} is not an edition of this catalog; a record of schema version 1 "
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
