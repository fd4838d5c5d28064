"""The error hierarchy: one base, a stable ``code`` on every error.

Codes are part of the public contract and are never renamed; messages are
built here from the error's attributes, so every raise site says the same
thing the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lifecycle.rules import Rule


class LifecycleError(Exception):
    """Base of every error the library raises; ``code`` is stable."""

    code: str = "lifecycle.error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


class RuleViolation(LifecycleError):
    """An operation was refused by a rule of the billing FAQ.

    ``code`` is the rule's code, ``faq`` the FAQ question it comes from
    (``None`` for the library's own rules), ``state`` the ``State`` the
    subscription was in, ``operation`` what was attempted and ``advice`` what
    the customer can do instead.
    """

    def __init__(self, rule: Rule, *, state: str, operation: str, advice: str) -> None:
        self.rule = rule
        self.faq = rule.faq
        self.state = state
        self.operation = operation
        self.advice = advice
        source = f"FAQ {rule.faq}" if rule.faq else "lifecycle rule"
        message = (
            f"{operation} refused in state '{state}' by {rule.code} ({source}): "
            f"{rule.summary}. {advice}"
        )
        super().__init__(message, code=rule.code)


class InvalidInput(LifecycleError, ValueError):
    """An argument, a clock reading or a stored record is not acceptable.

    ``field`` names what was wrong (an argument name, or a dotted path inside
    a record).
    """

    code = "input.invalid"

    def __init__(self, field: str, problem: str, *, code: str | None = None) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}", code=code)


class OutOfOrder(LifecycleError):
    """An operation is earlier than the last one applied (the mark)."""

    code = "order.out_of_order"

    def __init__(
        self, operation: str, at: datetime, mark: datetime, *, reason: str | None = None
    ) -> None:
        self.operation = operation
        self.at = at
        self.mark = mark
        reason = reason or "operations must come in time order"
        super().__init__(
            f"{operation} at {at.isoformat()} is earlier than {mark.isoformat()}, "
            f"the earliest time allowed; {reason}"
        )


class IdempotencyConflict(LifecycleError):
    """A caller key was used again with different arguments."""

    code = "idempotency.conflict"

    def __init__(self, key: str, first: str, now: str) -> None:
        self.key = key
        self.first = first
        self.now = now
        super().__init__(f"key {key!r} was first used for {first}; it cannot be reused for {now}")


class CatalogError(LifecycleError):
    """The catalog is malformed; ``key`` names the offending entry."""

    code = "catalog.invalid"

    def __init__(self, key: str, problem: str, *, source: str | None = None) -> None:
        self.key = key
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}catalog key {key!r}: {problem}")
