"""Scenarios: "what happens if…" stories replayed on a simulated clock.

A scenario file (TOML) names a customer, optionally a catalog, and a list of
steps. Each step has an ``at`` (an aware ISO 8601 time, or a local time in
the catalog's zone), an ``op`` with its arguments, and optional
expectations under ``expect``::

    customer = "cust-42"
    catalog = "my-catalog.toml"          # optional, relative to this file

    [[steps]]
    at = 2026-03-01T10:00:00             # local time in the catalog's zone
    op = "purchase_trial"
    order_id = "o-1"
    expect = { state = "trial", amount = "20.00" }

``run`` replays the steps and returns the timeline: one row per step, and one
row per timed transition (trial end, period end) at its own instant.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import attrs

from lifecycle.catalog import AnyCatalog, default_catalog, load_catalog
from lifecycle.clock import aware
from lifecycle.errors import CatalogError, LifecycleError, RuleViolation, shown
from lifecycle.states import State
from lifecycle.subscription import Subscription
from lifecycle.values import Decision, Receipt, Settlement

ARGUMENTS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # op: (required arguments, optional arguments)
    "purchase_trial": (("order_id",), ("discount",)),
    "subscribe": (("edition", "order_id"), ("term_months",)),
    "buy_addon": (("package", "order_id"), ()),
    "unsubscribe": (("request_id",), ()),
    "record_usage": (("meter", "quantity", "usage_id"), ()),
    "advance": ((), ()),
    "read": (("what",), ("feature",)),
}
READS = ("state", "credits", "authorize")

_RECEIPT = frozenset({"state", "credits", "amount", "forfeited", "refused"})
EXPECTATIONS: Mapping[str, frozenset[str]] = {
    "purchase_trial": _RECEIPT,
    "subscribe": _RECEIPT,
    "buy_addon": _RECEIPT,
    "unsubscribe": _RECEIPT,
    "record_usage": frozenset(
        {"state", "credits", "amount", "quota", "addons", "payg", "denied", "rule", "refused"}
    ),
    "advance": frozenset({"state", "credits", "refused"}),
    "read": frozenset({"state", "credits", "allowed", "billing", "rule", "refused"}),
}
_DECIMALS = frozenset({"credits", "amount", "forfeited", "quota", "addons", "payg", "denied"})


class ScenarioError(Exception):
    """A scenario file that cannot be run: ``file: step N: what is wrong``."""

    def __init__(self, source: str, problem: str, step: int | None = None) -> None:
        self.source = source
        self.step = step
        self.problem = problem
        where = f"step {step}: " if step is not None else ""
        super().__init__(f"{source}: {where}{problem}")


@attrs.frozen
class Step:
    number: int
    at: datetime
    op: str
    args: Mapping[str, Any]
    expect: Mapping[str, Any]
    note: str = ""


@attrs.frozen
class Scenario:
    source: str
    customer: str
    catalog: AnyCatalog
    steps: tuple[Step, ...]


@attrs.frozen
class Row:
    """One line of the timeline.

    ``step`` is None for a transition the library made by itself between
    steps; ``code`` and ``faq`` name the rule or error of a refusal;
    ``failures`` lists the expectations that did not hold.
    """

    step: int | None
    at: datetime
    operation: str
    before: State
    after: State
    amount: Decimal | None = None
    split: Mapping[str, Decimal] | None = None
    rule: str | None = None
    code: str | None = None
    faq: str | None = None
    question: str | None = None
    detail: str = ""
    failures: tuple[str, ...] = ()

    def as_json(self, zone: Any) -> dict[str, Any]:
        return {
            "step": self.step,
            "at": self.at.isoformat(),
            "local_time": self.at.astimezone(zone).isoformat(),
            "operation": self.operation,
            "before": self.before.value,
            "after": self.after.value,
            "amount": None if self.amount is None else str(self.amount),
            "split": None if self.split is None else {k: str(v) for k, v in self.split.items()},
            "rule": self.rule,
            "refused": self.code,
            "faq": self.faq,
            "question": self.question,
            "detail": self.detail,
            "failures": list(self.failures),
        }


def load(path: str | os.PathLike[str], catalog: str | os.PathLike[str] | None = None) -> Scenario:
    """Read and check the scenario at ``path``; ``catalog`` overrides its own."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise ScenarioError(source, f"cannot read: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ScenarioError(source, f"not valid TOML: {error}") from None
    unknown = sorted(set(data) - {"customer", "catalog", "steps", "description"})
    if unknown:
        raise ScenarioError(source, f"unknown key {shown(unknown[0])}")
    customer = data.get("customer")
    if not isinstance(customer, str) or not customer.strip():
        raise ScenarioError(source, "`customer` must name the customer")
    chosen = catalog if catalog is not None else data.get("catalog")
    loaded: AnyCatalog
    try:
        if chosen is None:
            loaded = default_catalog()
        elif isinstance(chosen, (str, os.PathLike)):
            base = Path(source).parent if catalog is None else Path()
            loaded = load_catalog(base / chosen)
        else:
            raise ScenarioError(source, "`catalog` must be a path")
    except CatalogError as error:
        raise ScenarioError(source, f"catalog: {error}") from None
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ScenarioError(source, "`steps` must be a non-empty list of [[steps]] tables")
    parsed = tuple(
        _step(source, number, entry, loaded) for number, entry in enumerate(steps, start=1)
    )
    return Scenario(source, customer, loaded, parsed)


def _step(source: str, number: int, entry: object, catalog: AnyCatalog) -> Step:
    def fail(problem: str) -> ScenarioError:
        return ScenarioError(source, problem, number)

    if not isinstance(entry, dict):
        raise fail("expected a table")
    op = entry.get("op")
    if not isinstance(op, str) or op not in ARGUMENTS:
        raise fail(f"`op` must be one of {', '.join(ARGUMENTS)}, got {shown(op)}")
    required, optional = ARGUMENTS[op]
    args = {k: v for k, v in entry.items() if k not in ("at", "op", "expect", "note")}
    for name in required:
        if name not in args:
            raise fail(f"{op} needs `{name}`")
    for name in args:
        if name not in required and name not in optional:
            raise fail(f"{op} takes no `{name}`")
    if op == "read":
        if args["what"] not in READS:
            raise fail(f"`what` must be one of {', '.join(READS)}, got {shown(args['what'])}")
        if (args["what"] == "authorize") != ("feature" in args):
            raise fail("a read of `authorize` needs `feature`, and only it")
    expect = entry.get("expect", {})
    if not isinstance(expect, dict):
        raise fail("`expect` must be a table")
    allowed = EXPECTATIONS[op]
    for name, value in expect.items():
        if name not in allowed:
            raise fail(f"{op} cannot expect `{name}` (it can expect: {', '.join(sorted(allowed))})")
        if name in _DECIMALS:
            try:
                Decimal(str(value))
            except InvalidOperation:
                raise fail(f"expect.{name} = {shown(value)} is not a number") from None
    if "at" not in entry:
        raise fail("needs `at`")
    note = entry.get("note", "")
    if not isinstance(note, str):
        raise fail("`note` must be text")
    return Step(number, _time(entry["at"], catalog, fail), op, args, expect, note)


def _time(value: object, catalog: AnyCatalog, fail: Callable[[str], ScenarioError]) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise fail(f"`at` = {shown(value)} is not an ISO 8601 time") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if not isinstance(value, datetime):
        raise fail(f"`at` must be a time, got {shown(value)}")
    if value.utcoffset() is None:
        value = value.replace(tzinfo=catalog.zone)  # a local time in the catalog's zone
    try:
        return aware(value, "at")
    except LifecycleError as error:
        raise fail(str(error)) from None


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def run(scenario: Scenario) -> list[Row]:
    """Replay ``scenario`` on a simulated clock and return its timeline."""
    clock = _Clock(scenario.steps[0].at)
    sub = Subscription.new(scenario.customer, catalog=scenario.catalog, clock=clock)
    rows: list[Row] = []
    for step in scenario.steps:
        clock.now = step.at
        if sub.mark is None or step.at >= sub.mark:
            # NOTE: the simulator applies what fell due since the last step first,
            # so a trial end or period end shows as its own row at its own instant
            # even when the step after it is refused or is only a read.
            for entry in sub.advance(step.at):
                rows.append(
                    Row(None, entry.at, entry.trigger, entry.source, entry.dest, detail="auto")
                )
        rows.append(_perform(sub, step))
    return rows


def _perform(sub: Subscription, step: Step) -> Row:
    before = sub.state_at(step.at)
    args = dict(step.args)
    result: object = None
    error: LifecycleError | None = None
    try:
        result = _call(sub, step.op, args, step.at)
    except LifecycleError as raised:
        error = raised
    after = sub.state_at(step.at)
    row = Row(step.number, step.at, _describe(step), before, after)
    if error is not None:
        rule = error.rule if isinstance(error, RuleViolation) else None
        row = attrs.evolve(
            row,
            code=error.code,
            faq=error.faq if isinstance(error, RuleViolation) else None,
            question=" / ".join(rule.questions) if rule is not None else None,
            detail=str(error),
        )
    elif isinstance(result, Receipt):
        detail = f"forfeited {result.forfeited} credits" if result.forfeited else ""
        row = attrs.evolve(row, amount=result.amount, detail=detail)
    elif isinstance(result, Settlement):
        split = {
            "quota": result.quota,
            "addons": result.addons,
            "payg": result.payg,
            "denied": result.denied,
        }
        row = attrs.evolve(row, amount=result.amount, split=split, rule=result.rule)
    elif isinstance(result, Decision):
        detail = f"{'allowed' if result.allowed else 'denied'}, billed by {result.billing}"
        row = attrs.evolve(row, rule=result.rule, detail=detail)
    elif isinstance(result, (str, Decimal)):
        row = attrs.evolve(row, detail=str(result))
    if step.note:
        row = attrs.evolve(row, detail=f"{row.detail} ({step.note})" if row.detail else step.note)
    return attrs.evolve(row, failures=_check(sub, step, result, error))


def _call(sub: Subscription, op: str, args: dict[str, Any], at: datetime) -> object:
    if op == "read":
        what = args["what"]
        if what == "state":
            return sub.state.value
        if what == "credits":
            return sub.remaining_credits()
        return sub.authorize(args["feature"])
    if op == "advance":
        return sub.advance(at)
    if op == "record_usage":
        quantity = args.pop("quantity")
        return sub.record_usage(args.pop("meter"), _number(quantity), **args)  # type: ignore[arg-type]
    method = getattr(sub, op)
    if op == "purchase_trial" and "discount" in args:
        args["discount"] = _number(args["discount"])
    return method(**args)


def _number(value: object) -> object:
    """A TOML number or string as a Decimal where it reads as one; else unchanged."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return value
    return value


def _describe(step: Step) -> str:
    args = step.args
    if step.op == "read":
        return f"read {args['what']}" + (f" {args['feature']}" if "feature" in args else "")
    if step.op == "record_usage":
        return f"record_usage {args['meter']} {args['quantity']}"
    if step.op in ("subscribe", "buy_addon"):
        name = args.get("edition") or args.get("package")
        months = args.get("term_months")
        term = f", {months} month{'s' if months != 1 else ''}" if months is not None else ""
        return f"{step.op} {name}{term}"
    return step.op


def _check(
    sub: Subscription, step: Step, result: object, error: LifecycleError | None
) -> tuple[str, ...]:
    expect = dict(step.expect)
    failures = []
    refused = expect.pop("refused", None)
    if error is not None:
        if refused is None:
            if expect:
                failures.append(f"expected success, refused by {error.code}")
            return tuple(failures)
        if refused != error.code:
            failures.append(f"expected refusal {refused}, got {error.code}")
    elif refused is not None:
        failures.append(f"expected refusal {refused}, but it succeeded")
    actual = _actuals(sub, step, result)
    for name, wanted in expect.items():
        got = actual.get(name)
        if name in _DECIMALS:
            ok = got is not None and Decimal(str(got)) == Decimal(str(wanted))
        elif name == "rule":
            ok = (got or "") == ("" if wanted in ("", "none") else wanted)
        else:
            ok = got == wanted
        if not ok:
            failures.append(f"expected {name} {wanted}, got {got}")
    return tuple(failures)


def _actuals(sub: Subscription, step: Step, result: object) -> dict[str, Any]:
    actual: dict[str, Any] = {
        "state": sub.state_at(step.at).value,
        "credits": sub.remaining_credits(step.at),
    }
    if isinstance(result, Receipt):
        actual.update(amount=result.amount, forfeited=result.forfeited)
    elif isinstance(result, Settlement):
        actual.update(
            amount=result.amount,
            quota=result.quota,
            addons=result.addons,
            payg=result.payg,
            denied=result.denied,
            rule=result.rule,
        )
    elif isinstance(result, Decision):
        actual.update(allowed=result.allowed, billing=result.billing, rule=result.rule)
    return actual
