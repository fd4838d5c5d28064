"""Who holds what: the customers an edition or add-on change applies to.

``lifecycle catalog diff --db URL`` says how many existing periods or add-ons
keep their terms after a version changes or removes what they bought.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Literal

from lifecycle.store import sql
from lifecycle.store.providers import from_json
from lifecycle.store.sync import SqlStore

Kind = Literal["edition", "package"]

log = logging.getLogger("lifecycle.store")


def held(store: SqlStore, kind: Kind, name: str, at: datetime) -> int:
    """How many customers hold ``name`` (an edition's period, or an add-on) still
    running at ``at``."""
    pattern = f'%"{kind}":{json.dumps(name)}%'
    count = 0
    with store._database("holdings"), store._reading() as connection:
        store._ensure_schema()
        for customer, record in connection.execute(sql.holding, {"pattern": pattern}):
            try:
                count += _holds(from_json(record), kind, name, at)
            except (ValueError, TypeError, AttributeError) as error:
                log.warning("holdings: the record of %r cannot be read: %s", customer, error)
    return count


def _holds(data: dict[str, Any], kind: Kind, name: str, at: datetime) -> int:
    period = data.get("period") or {}
    end = period.get("end")
    if end is None or datetime.fromisoformat(end) <= at:
        return 0
    if kind == "edition":
        return int(period.get("edition") == name)
    return sum(g.get("package") == name for g in data.get("addons", ()))
