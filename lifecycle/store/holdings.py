"""Who holds what: the customers an edition or add-on change applies to.

``lifecycle catalog diff --db URL`` says how many existing periods or add-ons
keep their terms after a version changes or removes what they bought.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from lifecycle.store import sql
from lifecycle.store.sync import SqlStore

Kind = Literal["edition", "package"]


def held(store: SqlStore, kind: Kind, name: str, at: datetime) -> int:
    """How many customers hold ``name`` (an edition's period, or an add-on) still
    running at ``at``."""
    pattern = f'%"{kind}":{json.dumps(name)}%'
    count = 0
    with store._database("holdings"), store._reading() as connection:
        store._ensure_schema()
        for _, record in connection.execute(sql.holding, {"pattern": pattern}):
            data = json.loads(record)
            period = data.get("period") or {}
            end = period.get("end")
            if end is None or datetime.fromisoformat(end) <= at:
                continue
            if kind == "edition":
                count += period.get("edition") == name
            else:
                count += sum(g.get("package") == name for g in data.get("addons", ()))
    return count
