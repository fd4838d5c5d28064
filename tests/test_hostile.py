"""Hostile records and catalogs: any corruption of a valid one raises InvalidInput or
CatalogError and nothing else, and what does load behaves."""

from __future__ import annotations

import contextlib
import copy
import json
import tomllib
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lifecycle as lc
from tests.conftest import sh

D = Decimal

JUNK = st.sampled_from(
    [
        None, 0, -1, 1.5, True, "", " ", "x", "zombie", "NaN", "-1", "-0", "1E+999999", "1E-999",
        "2026-01-01T00:00:00", "2026-13-01T00:00:00+00:00", "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-12:00", "trial", "expired", "purchase_trial", "subscribe",
        "\u0663", "u" * 300, [], {}, [1, 2], {"a": 1},
    ]
)  # fmt: skip


def _lives() -> list[dict[str, Any]]:
    """Valid records of a few lives, each with history and remembered usage."""
    records = []
    sub = lc.Subscription.new("c1")
    sub.purchase_trial(order_id="o-1", at=sh(2026, 1, 10))
    sub.record_usage("media_processing", D("100"), usage_id="u-1", at=sh(2026, 1, 11))
    sub.subscribe("standard", order_id="o-2", term_months=1, at=sh(2026, 1, 31))
    sub.buy_addon("boost-500", order_id="o-3", at=sh(2026, 2, 1))
    sub.record_usage("rtc_ai", D("2.5"), usage_id="u-2", at=sh(2026, 2, 2))
    records.append(sub.to_record())
    sub.record_usage("media_processing", D("9000"), usage_id="u-3", at=sh(2026, 2, 3))
    records.append(sub.to_record())
    sub.unsubscribe(request_id="r-1", at=sh(2026, 2, 4))
    sub.advance(sh(2026, 4, 1))
    records.append(sub.to_record())
    return records


LIVES = _lives()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def corrupted_records(draw: st.DrawFn) -> dict[str, Any]:
    record = copy.deepcopy(draw(st.sampled_from(LIVES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(record)
        path = draw(st.sampled_from(paths))
        *parents, last = path
        node = record
        for part in parents:
            node = node[part]
        how = draw(st.sampled_from(["replace", "drop", "swap", "add"]))
        if how == "drop":
            if isinstance(node, dict):
                del node[last]
            else:
                node.pop(last)
        elif how == "swap" and isinstance(node, list) and len(node) > 1:
            other = draw(st.integers(0, len(node) - 1))
            node[last], node[other] = node[other], node[last]
        elif how == "add" and isinstance(node, dict):
            node[draw(st.sampled_from(["extra", "seq", "details", "at"]))] = copy.deepcopy(
                draw(JUNK)
            )
        else:
            node[last] = copy.deepcopy(draw(JUNK))
    return record


def _exercise(sub: lc.Subscription) -> None:
    """Use a loaded subscription: only LifecycleErrors may come out."""
    at = sh(2026, 6, 1)
    for call in (
        lambda: sub.state_at(at),
        lambda: sub.remaining_credits(at),
        lambda: sub.remaining_credits(sh(2026, 1, 31)),
        lambda: sub.authorize("realtime_conversational_ai", at),
        lambda: sub.subscribe("basic", order_id="o-2", at=at),
        lambda: sub.purchase_trial(order_id="o-9", at=at),
        lambda: sub.record_usage("media_processing", D(3), usage_id="u-2", at=at),
        lambda: sub.buy_addon("boost-500", order_id="o-3", at=at),
        lambda: sub.unsubscribe(request_id="r-1", at=at),
    ):
        with contextlib.suppress(lc.LifecycleError):
            call()


@given(corrupted_records())
def test_corrupt_records_raise_invalid_input_and_nothing_else(record: dict[str, Any]) -> None:
    """A corrupted record is InvalidInput (code record.*) or a subscription that round-trips."""
    try:
        sub = lc.Subscription.from_record(record)
    except lc.InvalidInput as error:
        refused: lc.InvalidInput | None = error
    else:
        refused = None
    if refused is not None:
        assert refused.code.startswith("record.")
        assert refused.field
        return
    assert json.loads(json.dumps(record)) == sub.to_record()
    _exercise(sub)


def _catalog() -> dict[str, Any]:
    text = resources.files("lifecycle.catalog").joinpath("default_catalog.toml").read_text("utf-8")
    return tomllib.loads(text)


CATALOG = _catalog()


@st.composite
def corrupted_catalogs(draw: st.DrawFn) -> dict[str, Any]:
    data = copy.deepcopy(CATALOG)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(data)))
        *parents, last = path
        node = data
        for part in parents:
            node = node[part]
        how = draw(st.sampled_from(["replace", "drop", "add"]))
        if how == "drop":
            if isinstance(node, dict):
                del node[last]
            else:
                node.pop(last)
        elif how == "add" and isinstance(node, dict):
            node[draw(st.sampled_from(["extra", "rank", "credits", "feature", 7]))] = copy.deepcopy(
                draw(JUNK)
            )
        else:
            node[last] = copy.deepcopy(draw(JUNK))
    return data


@given(corrupted_catalogs())
def test_corrupt_catalogs_raise_catalog_error_and_nothing_else(data: dict[str, Any]) -> None:
    """A corrupted catalog is a CatalogError naming a key, or a catalog that works."""
    try:
        catalog = lc.Catalog.from_dict(data)
    except lc.CatalogError as error:
        assert error.key  # noqa: PT017 (the point is what else may escape)
        return
    sub = lc.Subscription.new("c", catalog=catalog)
    for edition in catalog.editions:
        with contextlib.suppress(lc.LifecycleError):
            sub.subscribe(edition, order_id=f"o-{edition}", at=sh(2026, 3, 1))
    for meter in catalog.meters:
        sub.record_usage(meter, D("2.5"), usage_id=f"u-{meter}", at=sh(2026, 3, 2))
    _exercise(sub)


@pytest.mark.parametrize("record", LIVES)
def test_lives_round_trip(record: dict[str, Any]) -> None:
    """The uncorrupted records the corruptions start from are valid."""
    assert record == lc.Subscription.from_record(record).to_record()


def _nested(depth: int = 100_000) -> list[Any]:
    """A list nested far past the recursion limit: its plain ``repr`` raises."""
    outer: list[Any] = []
    inner = outer
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return outer


DEEP = _nested()
HUGE = 10**5000  # past the 4,300 digits ``repr`` prints


def _with(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    *parents, last = path
    node = data
    for part in parents:
        node = node[part]
    node[last] = value
    return data


@pytest.mark.parametrize("value", [DEEP, HUGE], ids=["deep", "huge"])
@pytest.mark.parametrize("path", _paths(LIVES[0]), ids=str)
def test_a_value_python_cannot_print_is_invalid_input(path: tuple[Any, ...], value: Any) -> None:
    """Anywhere in a record, a value nested deeper than Python can print, or a whole
    number too long to print, is refused by name like any other wrong value: the
    error quotes it a few levels deep, or says what it is."""
    with pytest.raises(lc.InvalidInput) as info:
        lc.Subscription.from_record(_with(LIVES[0], path, value))
    assert info.value.code.startswith("record.")
    assert len(str(info.value)) < 2100


@pytest.mark.parametrize("value", [DEEP, HUGE], ids=["deep", "huge"])
@pytest.mark.parametrize("path", _paths(CATALOG), ids=str)
def test_a_catalog_value_python_cannot_print_is_a_catalog_error(
    path: tuple[Any, ...], value: Any
) -> None:
    with pytest.raises(lc.CatalogError):
        lc.Catalog.from_dict(_with(CATALOG, path, value))


@pytest.mark.parametrize(
    "call",
    [
        lambda sub: lc.Subscription.new(DEEP),
        lambda sub: sub.subscribe("basic", order_id=DEEP, at=sh(2026, 3, 1)),
        lambda sub: sub.subscribe("basic", order_id="o", term_months=DEEP, at=sh(2026, 3, 1)),
        lambda sub: sub.record_usage("media_processing", D(1), DEEP, at=sh(2026, 3, 2)),
        lambda sub: sub.unsubscribe(request_id=DEEP, at=sh(2026, 3, 2)),
        lambda sub: lc.Transition.from_dict({**sub.history[0].to_dict(), "trigger": DEEP}),
        lambda sub: sub.record_usage("media_processing", HUGE, "u-1", at=sh(2026, 3, 2)),
        lambda sub: sub.subscribe("basic", order_id="o", term_months=HUGE, at=sh(2026, 3, 1)),
        lambda sub: lc.Subscription.from_record({**sub.to_record(), "seq": HUGE}),
    ],
)
def test_an_argument_python_cannot_print_is_invalid_input(call: Any) -> None:
    """An operation's argument nested deeper than Python can print, or a whole number
    too long to print (4,300 digits and more): InvalidInput, nothing changed."""
    sub = lc.Subscription.new("c")
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    before = sub.to_record()
    with pytest.raises(lc.InvalidInput):
        call(sub)
    assert before == sub.to_record()
