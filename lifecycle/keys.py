"""Where a subscription remembers its usage keys inside the idempotency window.

``MemoryKeys`` keeps them with the subscription (and in its record). A store
may plug in its own ``UsageKeys`` (``lifecycle.store`` keeps them in an
indexed table), so that the cost of an operation does not grow with the number
of keys in the window. Either way the subscription calls ``remember`` and
``forget_until`` only when an operation commits, never before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from lifecycle.values import Settlement


class UsageKeys(Protocol):
    """The usage keys of one subscription, oldest first."""

    def get(self, usage_id: str) -> Settlement | None:
        """The first settlement of ``usage_id``, if it is still remembered."""

    def remember(self, settlement: Settlement) -> None:
        """Keep ``settlement`` under its usage id (it is the newest)."""

    def forget_until(self, cutoff: datetime) -> None:
        """Forget every key whose usage's ``at`` is at or before ``cutoff``."""

    def newer_than(self, at: datetime) -> Iterable[Settlement]:
        """The remembered settlements after ``at``, newest first."""

    def all(self) -> list[Settlement]:
        """Every remembered settlement, oldest first."""


class MemoryKeys:
    """Usage keys held in memory: a dict for look-ups, a queue for forgetting in order."""

    __slots__ = ("_by_id", "_queue")

    def __init__(self, settlements: Iterable[Settlement] = ()) -> None:
        self._by_id: dict[str, Settlement] = {}
        self._queue: deque[Settlement] | None = None
        for settlement in settlements:
            self.remember(settlement)

    def get(self, usage_id: str) -> Settlement | None:
        return self._by_id.get(usage_id)

    def remember(self, settlement: Settlement) -> None:
        self._by_id[settlement.usage_id] = settlement
        if self._queue is None:
            self._queue = deque()  # NOTE: lazily: most subscriptions are idle
        self._queue.append(settlement)

    def forget_until(self, cutoff: datetime) -> None:
        queue = self._queue
        while queue and queue[0].at <= cutoff:
            del self._by_id[queue.popleft().usage_id]

    def newer_than(self, at: datetime) -> Iterable[Settlement]:
        for settlement in reversed(self._queue or ()):
            if settlement.at <= at:
                return
            yield settlement

    def all(self) -> list[Settlement]:
        return list(self._queue or ())


class EmptyKeys:
    """The usage keys of a subscription that has none yet, shared by all of them:
    the subscription puts a ``MemoryKeys`` in its place before the first."""

    __slots__ = ()

    def get(self, usage_id: str) -> Settlement | None:
        return None

    def remember(self, settlement: Settlement) -> None:
        raise TypeError("the shared empty usage keys never remember")

    def forget_until(self, cutoff: datetime) -> None:
        return None

    def newer_than(self, at: datetime) -> Iterable[Settlement]:
        return ()

    def all(self) -> list[Settlement]:
        return []


NO_KEYS = EmptyKeys()
