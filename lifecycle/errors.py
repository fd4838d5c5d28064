"""The error hierarchy: one base, a stable ``code`` on every error.

Codes are part of the public contract and are never renamed; messages are
built here from the error's attributes, so every raise site says the same
thing the same way.
"""

from __future__ import annotations

import re
import reprlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lifecycle.rules import Rule


class LifecycleError(Exception):
    """Base of every error the library raises; ``code`` is stable."""

    code: str = "lifecycle.error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        message = clipped(message)
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message

    def problem(self) -> dict[str, Any]:
        """RFC 9457 problem details: ``type`` (a stable URI per code), ``title``,
        ``status`` (the HTTP status an order service should answer with),
        ``detail``, ``code``, and ``faq``, ``advice``, ``field``, ``retryable``
        where the error has them. JSON-safe."""
        from lifecycle.problems import details

        extra: dict[str, Any] = {}
        for name in ("field", "retryable"):
            if hasattr(self, name):
                extra[name] = getattr(self, name)
        return details(
            self.code,
            self.message,
            faq=getattr(self, "faq", None),
            advice=getattr(self, "advice", None),
            extra=extra,
        )

    def __reduce__(self) -> tuple[object, ...]:
        # NOTE: subclasses take their context, not the message, as arguments, so
        # the default pickling (cls(*args)) would fail; an error must cross a
        # process boundary intact (multiprocessing, task queues).
        return _rebuild, (type(self), self.message, dict(self.__dict__))


_QUOTE = re.compile("['\"]")
_INSIDE = {q: re.compile(rf"(?:[^{q}\\\n]|\\.)*+") for q in "'\""}


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel = 3
_SHOWN.maxdict = _SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxset = 6
_SHOWN.maxfrozenset = _SHOWN.maxdeque = _SHOWN.maxarray = 6
_SHOWN.maxstring = _SHOWN.maxlong = _SHOWN.maxother = 1_000_000  # ``clipped`` cuts
_PLAIN = frozenset((str, int, float, bool, type(None)))


def shown(value: object) -> str:
    """``value`` as a message quotes it: ``repr``, but a container only a few levels
    and items deep, so that a value nested past the recursion limit (or one
    whose ``repr`` fails) is named, never raised from the error about it."""
    try:
        return repr(value) if type(value) in _PLAIN else _SHOWN.repr(value)
    except Exception:  # NOTE: a repr of the caller's own that fails, or an int too long
        if type(value) is int:  # to print (4,300 digits and more)
            return f"<a whole number of {value.bit_length():,} bits>"
        return f"<a {type(value).__name__}>"


def clipped(text: str, limit: int = 2000) -> str:
    """``text`` with every quoted value of 120 characters or more cut to its first
    60 (a caller's 100 KB name is not echoed back into logs and problem
    details), and at most ``limit`` characters in all. Linear in the text."""
    if len(text) < 120:
        return text
    parts, at = [], 0
    while (found := _QUOTE.search(text, at)) is not None:
        start, quote = found.start(), found[0]
        end = _INSIDE[quote].match(text, start + 1).end()  # type: ignore[union-attr]
        if end >= len(text) or text[end] != quote:
            break  # no closing quote: the rest is left as it is
        value = text[start : end + 1]
        if len(value) - 2 >= 120:
            value = f"{value[:61]}…{quote} ({len(value) - 2} characters)"
        parts.append(text[at:start] + value)
        at = end + 1
    parts.append(text[at:])
    text = "".join(parts)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _rebuild(cls: type[LifecycleError], message: str, state: dict[str, object]) -> LifecycleError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


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
    a record) and ``reason`` says what is wrong with it.
    """

    code = "input.invalid"

    def __init__(self, field: str, problem: str, *, code: str | None = None) -> None:
        self.field = field
        self.reason = clipped(problem)
        super().__init__(f"{field}: {problem}", code=code)


class OutOfOrder(LifecycleError):
    """An operation is earlier than the last one applied (the mark)."""

    code = "order.out_of_order"

    def __init__(
        self,
        operation: str,
        at: datetime,
        mark: datetime,
        *,
        reason: str | None = None,
        allowance: timedelta = timedelta(0),
    ) -> None:
        self.operation = operation
        self.at = at
        self.mark = mark
        self.earliest = mark - allowance
        if reason is None and allowance:
            minutes = int(allowance.total_seconds() // 60)
            reason = (
                f"an operation may arrive at most {minutes} minutes behind the last one "
                "(late_arrival_minutes)"
            )
        reason = reason or "operations must come in time order"
        super().__init__(
            f"{operation} at {at.isoformat()} is earlier than {self.earliest.isoformat()}, "
            f"the earliest time allowed; {reason}"
        )


class IdempotencyConflict(LifecycleError):
    """A caller key was used again with different arguments."""

    code = "idempotency.conflict"

    def __init__(self, key: str, first: str, now: str) -> None:
        self.key = key
        self.first = first
        self.now = now
        super().__init__(
            f"key {shown(key)} was first used for {first}; it cannot be reused for {now}"
        )


class CatalogError(LifecycleError):
    """The catalog is malformed; ``key`` names the offending entry, ``reason`` what
    is wrong with it."""

    code = "catalog.invalid"

    def __init__(self, key: str, problem: str, *, source: str | None = None) -> None:
        self.key = key
        self.reason = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}catalog key {shown(key)}: {problem}")


class ReadOnly(LifecycleError):
    """An operation on a subscription that may only be read: a snapshot from a
    store's ``load``, or the subscription of an ``edit`` whose block has ended."""

    code = "store.read_only"


class StoreError(LifecycleError):
    """Base of the errors a store raises; ``retryable`` says whether trying the same
    request again may succeed."""

    code = "store.error"
    retryable = False


class StoreUnavailable(StoreError):
    """The database failed (a dropped connection, a server going away, a
    conflict it could not resolve). Nothing was committed, unless the failure
    was the commit itself: then the message says the outcome is unknown.
    Either way a retry with the same keys is safe (what was written answers as
    a replay); ``retryable`` says a retry may succeed, and the database's own
    error is chained as the cause."""

    code = "store.unavailable"
    retryable = True

    def __init__(
        self,
        operation: str,
        cause: BaseException,
        *,
        consequence: str = "nothing was committed",
    ) -> None:
        self.operation = operation
        detail = str(getattr(cause, "orig", None) or cause).strip().splitlines()
        reason = detail[0] if detail else type(cause).__name__
        super().__init__(f"{operation}: the database failed ({reason}); {consequence}")


class LockTimeout(StoreError):
    """A customer (or, on SQLite, the database) stayed locked by another edit
    for longer than the store's ``lock_timeout``; nothing was changed."""

    code = "store.lock_timeout"
    retryable = True

    def __init__(self, customer_id: str | None, seconds: float, *, database: bool = False) -> None:
        self.customer_id = customer_id
        self.seconds = seconds
        self.database = database or customer_id is None
        """Whether the lock was the whole database's (SQLite's), not the customer's row."""
        if customer_id is None:
            what, waiting = "the database", ""
        elif database:  # SQLite's lock is the file's: another customer's edit holds it
            what, waiting = "the database", f" while customer {shown(customer_id)} waited"
        else:
            what, waiting = f"customer {shown(customer_id)}", ""
        super().__init__(
            f"{what} stayed locked by another transaction for more than {seconds:g} s "
            f"(lock_timeout){waiting}; nothing was changed, try again"
        )


class UnknownCustomer(StoreError):
    """``edit(customer_id, create=False)`` of a customer the store has never seen."""

    code = "store.unknown_customer"

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        super().__init__(
            f"the store holds no customer {shown(customer_id)}; "
            "edit(..., create=True) starts a new one"
        )


class SchemaMismatch(StoreError):
    """The database holds no lifecycle schema, or one of another version."""

    code = "store.schema"


class StoreMisuse(StoreError):
    """A store called in a way that cannot work: a nested edit of one customer on
    one thread (``store.nested_edit``), a connection with no transaction of its
    own (``store.no_transaction``)."""
