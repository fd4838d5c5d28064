"""A stored subscription's history and usage keys, read from their tables on demand.

Inside an edit both read through the edit's connection, in its transaction;
for a snapshot from ``load`` each read opens a short read transaction of its
own. Either way they see only what the subscription itself had seen when it
was read (history up to its ``seq``), and what an operation adds is held
until the edit writes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, NoReturn

from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from lifecycle.errors import InvalidInput, ReadOnly, shown
from lifecycle.history import ORDER_OPERATIONS, Namespace
from lifecycle.record import parse_transition, parse_usage_row, usage_row
from lifecycle.store import sql
from lifecycle.values import Settlement, Transition

FOREVER_AGO = datetime(1000, 1, 1, tzinfo=UTC)

Opener = Callable[[], AbstractContextManager[Connection]]


def from_json(text: str) -> Any:
    """The JSON of a stored row. A document nested deeper than Python's recursion
    limit is as unreadable as one that is not JSON: ``ValueError`` for both."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply to be read") from None


def corrupt(customer_id: str, field: str, problem: str) -> InvalidInput:
    return InvalidInput(
        f"customer {shown(customer_id)}: {field}" if field else f"customer {shown(customer_id)}",
        problem,
        code="record.invalid",
    )


class Link:
    """How a provider reaches its tables: a connection bound for the length of an
    edit, or an opener for each read of a snapshot. Once the edit ends with no
    opener, reads that need the database refuse (``ReadOnly``)."""

    __slots__ = ("connection", "customer_id", "failure", "opener", "revision")

    def __init__(
        self,
        customer_id: str,
        connection: Connection | None,
        opener: Opener | None = None,
        revision: int | None = None,
        failure: Callable[[Exception], Exception] | None = None,
    ) -> None:
        self.customer_id = customer_id
        self.connection = connection
        self.opener = opener
        self.revision = revision
        self.failure = failure

    @contextmanager
    def open(self, *, current: bool = False) -> Iterator[Connection]:
        """A connection to read through; with ``current``, a snapshot's read checks
        that the customer has not changed since it was loaded (its usage keys
        are only its own until then)."""
        if self.connection is not None:
            try:
                yield self.connection
            except SQLAlchemyError as error:
                # NOTE: a read in the middle of an operation (a key, a past entry):
                # the caller gets the store's error, never the driver's.
                if self.failure is None:
                    raise
                raise self.failure(error) from error
        elif self.opener is not None:
            with self.opener() as connection:
                if current and self.revision is not None:
                    found = connection.execute(
                        sql.revision_of, {"customer_id": self.customer_id}
                    ).scalar()
                    if found != self.revision:
                        raise ReadOnly(
                            f"{shown(self.customer_id)} has changed since it was loaded: "
                            "load it again to read its past balance"
                        )
                yield connection
        else:
            raise ReadOnly(
                f"the edit of {shown(self.customer_id)} has ended and this read needs the "
                "database: read inside the edit, or load the customer again"
            )


class SqlHistory:
    """History entries up to ``stored`` in ``lifecycle_history``, later ones pending."""

    __slots__ = ("_link", "pending", "stored")

    def __init__(self, link: Link, stored: int) -> None:
        self._link = link
        self.stored = stored
        self.pending: list[Transition] = []

    def _rows(self, statement: Any, **params: Any) -> list[Transition]:
        customer_id = self._link.customer_id
        with self._link.open() as connection:
            rows = connection.execute(
                statement, {"customer_id": customer_id, "upto": self.stored, **params}
            ).all()
        return [_transition(customer_id, row) for row in rows]

    def extend(self, entries: Sequence[Transition]) -> None:
        self.pending.extend(entries)

    def entries(self) -> tuple[Transition, ...]:
        stored = self._rows(sql.history_all) if self.stored else []
        found, wanted = [entry.seq for entry in stored], list(range(1, self.stored + 1))
        if found != wanted:
            self._missing(len(found), sorted(set(wanted) - set(found))[:5])
        return (*stored, *self.pending)

    def _missing(self, found: int, missing: list[int]) -> NoReturn:
        which = f" (missing seq {', '.join(map(str, missing))})" if missing else ""
        raise corrupt(
            self._link.customer_id,
            "history",
            f"the table holds {found} of the record's {self.stored} entries{which}: what "
            "a missing entry did (an order it answers for) cannot be ruled out",
        )

    def last_at_or_before(self, when: datetime, trigger: str | None = None) -> Transition | None:
        for entry in reversed(self.pending):
            if entry.at <= when and (trigger is None or entry.trigger == trigger):
                return entry
        if not self.stored:
            return None
        if trigger is None:
            found = self._rows(sql.history_last, when=when)
        else:
            found = self._rows(sql.history_last_of, when=when, trigger=trigger)
        return found[0] if found else None

    def after(self, when: datetime) -> Sequence[Transition]:
        stored = self._rows(sql.history_after, when=when) if self.stored else []
        return [*stored, *(entry for entry in self.pending if entry.at > when)]

    def keyed(self, space: Namespace, key: str) -> Transition | None:
        triggers = sorted(ORDER_OPERATIONS) if space == "order" else ["unsubscribe"]
        for entry in self.pending:
            if entry.key == key and entry.trigger in triggers:
                return entry
        if not self.stored:
            return None
        found = self._rows(sql.history_keyed, key=key, triggers=triggers)
        if found:
            return found[0]
        # NOTE: a key not found must not be taken as new while an entry is missing
        # or has lost its key (by hand): that entry may be the one that used it.
        # Orders are rare beside usage, and this reads one customer's entries.
        keyed = sorted(ORDER_OPERATIONS | {"unsubscribe"})
        params = {"customer_id": self._link.customer_id, "upto": self.stored, "keyed": keyed}
        with self._link.open() as connection:
            held, keyless = connection.execute(sql.history_count, params).one()
        if held != self.stored:
            self._missing(held, [])
        if keyless:
            raise corrupt(
                self._link.customer_id,
                "history",
                f"{keyless} of its entries of orders or cancellations hold no key: "
                "whether one of them used this key cannot be ruled out",
            )
        return None


def _transition(customer_id: str, row: Any) -> Transition:
    seq, at, requested_at, trigger, source, dest, key, details = row
    try:
        parsed = from_json(details)
    except ValueError as error:
        raise corrupt(customer_id, f"history[{seq}].details", f"not JSON: {error}") from None
    entry = {
        "seq": seq,
        "at": at.isoformat(),
        "requested_at": None if requested_at is None else requested_at.isoformat(),
        "trigger": trigger,
        "source": source,
        "dest": dest,
        "key": key,
        "details": parsed,
    }
    try:
        return parse_transition(entry, f"history[{seq}]", seq)
    except InvalidInput as error:
        raise corrupt(customer_id, error.field, error.reason) from None


def history_row(customer_id: str, entry: Transition) -> dict[str, Any]:
    """An entry as a row of ``lifecycle_history`` (and, the same, of the outbox)."""
    return {
        "customer_id": customer_id,
        "seq": entry.seq,
        "at": entry.at,
        "requested_at": None if entry.requested_at == entry.at else entry.requested_at,
        "trigger": entry.trigger,
        "source": entry.source.value,
        "dest": entry.dest.value,
        "key": entry.key,
        "details": json.dumps(dict(entry.details), sort_keys=True, separators=(",", ":")),
    }


class SqlKeys:
    """A subscription's usage keys in ``lifecycle_usage_keys``, read by primary key.

    New keys and the forgetting cutoff are held until the edit writes them, in
    the edit's transaction; reads honour the cutoff at once. The sweep deletes
    keys out of the window, so an edit never does: its cost does not depend on
    how many keys the window holds.
    """

    __slots__ = ("_cutoff", "_link", "_lookup", "_pending", "keys_from")

    def __init__(
        self,
        link: Link,
        cutoff: datetime | None,
        keys_from: datetime | None,
        lookup: sql.Prepared | None,
    ) -> None:
        self._link = link
        self._lookup = lookup
        self._cutoff = cutoff or FOREVER_AGO
        self._pending: dict[str, Settlement] = {}
        self.keys_from = keys_from  # the oldest key stored, pruned or not

    def _parse(self, row: str, usage_id: str) -> Settlement:
        try:
            return parse_usage_row(from_json(row), "")
        except (InvalidInput, ValueError) as error:
            problem = error.reason if isinstance(error, InvalidInput) else str(error)
            raise corrupt(
                self._link.customer_id, f"usage_keys[{shown(usage_id)}]", problem
            ) from None

    def get(self, usage_id: str) -> Settlement | None:
        if usage_id in self._pending:
            return self._pending[usage_id]
        if self.keys_from is None:
            return None  # nothing stored: no query
        params = {"customer_id": self._link.customer_id, "usage_id": usage_id}
        params["cutoff"] = self._cutoff  # type: ignore[assignment]
        with self._link.open(current=True) as connection:
            if self._lookup is not None:
                rows: Any = self._lookup.run(connection, params)
            else:
                rows = connection.execute(sql.key_by_id, params).all()
        return self._parse(rows[0][0], usage_id) if rows else None

    def remember(self, settlement: Settlement) -> None:
        self._pending[settlement.usage_id] = settlement

    def forget_until(self, cutoff: datetime) -> None:
        if cutoff > self._cutoff:
            self._cutoff = cutoff

    def newer_than(self, at: datetime) -> Iterable[Settlement]:
        found = [s for s in reversed(self._pending.values()) if s.at > at]
        if self.keys_from is not None:
            params = {"customer_id": self._link.customer_id, "after": max(at, self._cutoff)}
            with self._link.open(current=True) as connection:
                rows = connection.execute(sql.keys_after, params).all()
            found.extend(self._parse(row, usage_id) for usage_id, row in rows)
        return found

    def all(self) -> list[Settlement]:
        return list(reversed(list(self.newer_than(self._cutoff))))

    def take_new(self) -> list[dict[str, Any]]:
        """The rows of the keys remembered in this edit, for the edit to insert."""
        pending, self._pending = self._pending, {}
        if not pending:
            return []
        oldest = min(s.at for s in pending.values())
        if self.keys_from is None or oldest < self.keys_from:
            self.keys_from = oldest
        customer_id = self._link.customer_id
        return [
            {
                "k_customer": customer_id,
                "k_usage_id": s.usage_id,
                "k_at": s.at,
                "k_row": json.dumps(usage_row(s), separators=(",", ":")),
            }
            for s in pending.values()
        ]
