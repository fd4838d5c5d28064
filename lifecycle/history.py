"""Where a subscription keeps its history, and the purchase keys found in it.

``MemoryHistory`` keeps every entry with the subscription (and in its record).
A store plugs in its own ``History`` (``lifecycle.store`` keeps one row per
transition in a table), so that an edit costs the same whatever the number of
transitions and purchases behind it. The subscription calls ``extend`` only
when an operation commits, never before.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Literal, Protocol

from lifecycle.values import Transition

ARGUMENTS: Mapping[str, tuple[str, ...]] = {
    "purchase_trial": ("discount",),
    "subscribe": ("edition", "term_months"),
    "buy_addon": ("package",),
    "unsubscribe": (),
}
"""The arguments of each keyed operation that idempotency compares (not ``at``)."""

ORDER_OPERATIONS = frozenset({"purchase_trial", "subscribe", "buy_addon"})

Namespace = Literal["order", "request"]


def namespace(trigger: str) -> Namespace | None:
    """The key namespace a history entry's key belongs to, if it is a caller's key."""
    if trigger in ORDER_OPERATIONS:
        return "order"
    if trigger == "unsubscribe":
        return "request"
    return None


class History(Protocol):
    """The transitions of one subscription, oldest first, numbered from 1."""

    def extend(self, entries: Sequence[Transition]) -> None:
        """Append ``entries`` (they continue the numbering)."""

    def entries(self) -> tuple[Transition, ...]:
        """Every entry, oldest first."""

    def last_at_or_before(self, when: datetime, trigger: str | None = None) -> Transition | None:
        """The newest entry at or before ``when`` (of ``trigger``, if given)."""

    def after(self, when: datetime) -> Sequence[Transition]:
        """The entries after ``when``, oldest first."""

    def keyed(self, space: Namespace, key: str) -> Transition | None:
        """The entry a caller key of ``space`` first caused, if any."""


def _at(entry: Transition) -> datetime:
    return entry.at


class MemoryHistory:
    """Every entry in a list, purchase keys in dicts."""

    __slots__ = ("_entries", "_keys")

    def __init__(self, entries: Iterable[Transition] = ()) -> None:
        self._entries: list[Transition] = []
        self._keys: dict[tuple[Namespace, str], Transition] = {}
        self.extend(list(entries))

    def copy(self) -> MemoryHistory:
        twin = MemoryHistory()
        twin._entries = list(self._entries)
        twin._keys = dict(self._keys)
        return twin

    def extend(self, entries: Sequence[Transition]) -> None:
        for entry in entries:
            space = namespace(entry.trigger)
            if space is not None and entry.key is not None:
                self._keys.setdefault((space, entry.key), entry)
        self._entries.extend(entries)

    def entries(self) -> tuple[Transition, ...]:
        return tuple(self._entries)

    def last_at_or_before(self, when: datetime, trigger: str | None = None) -> Transition | None:
        entries = self._entries
        index = bisect.bisect_right(entries, when, key=_at)
        for entry in reversed(entries[:index]):
            if trigger is None or entry.trigger == trigger:
                return entry
        return None

    def after(self, when: datetime) -> Sequence[Transition]:
        entries = self._entries
        return entries[bisect.bisect_right(entries, when, key=_at) :]

    def keyed(self, space: Namespace, key: str) -> Transition | None:
        return self._keys.get((space, key))
