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


INDEXED = 8
"""How many entries a ``MemoryHistory`` holds before it indexes its keys: a few
entries are searched faster than a dict is kept (most subscriptions have few)."""


class MemoryHistory:
    """Every entry in a list; purchase keys found by a search while the entries are
    few, then in a dict (the first entry of each key)."""

    __slots__ = ("_entries", "_keys")

    def __init__(self, entries: Iterable[Transition] = ()) -> None:
        self._entries: list[Transition] = []
        self._keys: dict[str, Transition] | None = None
        self.extend(list(entries))

    def copy(self) -> MemoryHistory:
        twin = MemoryHistory()
        twin._entries = list(self._entries)
        twin._keys = None if self._keys is None else dict(self._keys)
        return twin

    def extend(self, entries: Sequence[Transition]) -> None:
        # NOTE: a list of the exact size: it grows by a transition at a time, rarely.
        self._entries = [*self._entries, *entries]
        index = self._keys
        if index is None:
            if len(self._entries) <= INDEXED:
                return
            index = self._keys = {}
            entries = self._entries
        for entry in entries:
            if entry.key is not None and namespace(entry.trigger) is not None:
                index.setdefault(entry.key, entry)

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
        index = self._keys
        if index is not None:
            first = index.get(key)
            if first is None or namespace(first.trigger) == space:
                return first
            # NOTE: the key is also one of the other namespace's: search.
        for entry in self._entries:
            if entry.key == key and namespace(entry.trigger) == space:
                return entry
        return None


class EmptyHistory:
    """The history of a subscription that has none yet, shared by all of them: the
    subscription puts a ``MemoryHistory`` in its place before the first entry."""

    __slots__ = ()

    def extend(self, entries: Sequence[Transition]) -> None:
        raise TypeError("the shared empty history is never extended")

    def entries(self) -> tuple[Transition, ...]:
        return ()

    def last_at_or_before(self, when: datetime, trigger: str | None = None) -> Transition | None:
        return None

    def after(self, when: datetime) -> Sequence[Transition]:
        return ()

    def keyed(self, space: Namespace, key: str) -> Transition | None:
        return None


NO_HISTORY = EmptyHistory()
