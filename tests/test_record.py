"""Records: JSON-safe, versioned, round-trip exactly, and refuse corruption by name."""

import collections
import copy
import decimal
import json
from typing import Any

import pytest

import lifecycle as lc
from tests.conftest import D, sh, snapshot


def _lived(catalog: lc.Catalog) -> lc.Subscription:
    """A subscription with a bit of everything: trial, Enterprise, add-on, usage."""
    sub = lc.Subscription.new("cust-7", catalog=catalog)
    sub.purchase_trial(order_id="o-1", at=sh(2026, 1, 10))
    sub.record_usage("media_processing", D("100"), usage_id="u-1", at=sh(2026, 1, 11))
    sub.subscribe("standard", order_id="o-2", term_months=1, at=sh(2026, 1, 31))
    sub.buy_addon("boost-500", order_id="o-3", at=sh(2026, 2, 1))
    sub.record_usage("rtc_ai", D("2.5"), usage_id="u-2", at=sh(2026, 2, 2))
    sub.record_usage("advanced_effects", D("7"), usage_id="u-3", at=sh(2026, 2, 3))
    return sub


def test_record_is_json_safe_and_versioned(catalog: lc.Catalog) -> None:
    """to_record survives JSON unchanged and says which schema it follows."""
    record = _lived(catalog).to_record()
    assert record == json.loads(json.dumps(record))
    assert 2 == record["schema_version"]


def test_round_trip_is_exact_and_carries_on_the_same(catalog: lc.Catalog) -> None:
    """from_record(to_record()) is the same subscription, now and after more operations."""
    original = _lived(catalog)
    copy_ = lc.Subscription.from_record(
        json.loads(json.dumps(original.to_record())), catalog=catalog
    )
    assert snapshot(original) == snapshot(copy_)
    assert original.history == copy_.history
    for sub in (original, copy_):
        sub.record_usage("media_processing", D("8600"), usage_id="u-4", at=sh(2026, 2, 4))
        sub.advance(sh(2026, 3, 5))
    assert snapshot(original) == snapshot(copy_)
    assert lc.State.EXPIRED == copy_.state_at(sh(2026, 3, 5))


def test_empty_subscription_round_trips(catalog: lc.Catalog) -> None:
    """A subscription that never did anything round-trips too."""
    sub = lc.Subscription.new("c", catalog=catalog)
    assert snapshot(sub) == snapshot(lc.Subscription.from_record(sub.to_record(), catalog=catalog))


def _corrupt(record: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    record = copy.deepcopy(record)
    *parents, last = path.split("/")
    node: Any = record
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is KeyError:
        del node[key]
    else:
        node[key] = value
    return record


CORRUPTIONS = [
    ("customer_id", KeyError, "customer_id"),
    ("customer_id", 42, "customer_id"),
    ("state", "zombie", "state"),
    ("state", "trial", "credits"),
    ("state", "quota-exhausted-payg", "credits"),
    ("mark", "yesterday", "mark"),
    ("mark", "2026-02-03T04:00:00", "mark"),
    ("mark", "2026-01-01T00:00:00+00:00", "trial.bought_at"),
    ("credits", "lots", "credits"),
    ("credits", "-5", "credits"),
    ("credits", 8000, "credits"),
    ("addons/0/credits", "NaN", "addons[0].credits"),
    ("addons/0/package", KeyError, "addons[0].package"),
    ("addons", {}, "addons"),
    ("period/edition", "gold", "period"),
    ("period/end", None, "period.end"),
    ("period/end", "2026-01-01T00:00:00+00:00", "period.end"),
    ("period", None, "period"),
    ("period/rank", 7, "period"),
    ("period/features", ["video_editing"], "period"),
    ("period/features", ["b", "a"], "period.features"),
    ("period/price", "1.00", "period"),
    ("trial/excluded_features", [], "trial"),
    ("trial/credits", "5", "trial"),
    ("trial/validity_months", 0, "trial.validity_months"),
    ("seq", 3, "history"),
    ("seq", -1, "seq"),
    ("history/0/requested_at", "2026-01-10T04:00:00+00:00", "history[0].requested_at"),
    ("history/0/requested_at", "2026-01-10T05:00:00+00:00", "history[0].requested_at"),
    ("history/2/details/rank", "two", "history[2].details.rank"),
    ("history/2/details/features", 5, "history[2].details.features"),
    ("history/0/seq", 7, "history[0].seq"),
    ("history/1/source", "none", "history[1].trigger"),
    ("history/2/source", "expired", "history[2].source"),
    ("history/2/trigger", "teleport", "history[2].trigger"),
    ("history/2/dest", "unknown", "history[2].dest"),
    ("history/0/at", "2027-01-01T00:00:00+00:00", "history[0].at"),
    ("history/3/at", "2026-01-01T00:00:00+00:00", "history[3].at"),
    ("history/0/details", ["amount"], "history[0].details"),
    ("history/0/details/amount", KeyError, "history[0].details.amount"),
    ("history/3/key", "o-2", "history[3].key"),
    ("history/0/colour", "red", "history[0].colour"),
    ("usage/0", ["u-2"], "usage[0]"),
    ("usage/0/3", "-2.5", "usage[0].quantity"),
    ("usage/0/4", "9", "usage[0]"),
    ("usage/0/9", "made.up", "usage[0].rule"),
    ("usage/1/0", "u-2", "usage[1].usage_id"),
    ("usage/0/1", "2026-02-04T00:00:00", "usage[0].at"),
    ("usage/1/1", "2026-01-01T00:00:00+00:00", "usage[1].at"),
    ("extra", 1, "extra"),
    ("mark", "0001-01-01T00:00:00+05:00", "mark"),
    ("period/end", "9999-12-31T23:00:00-05:00", "period.end"),
    ("history/0/at", "0001-01-01T00:00:00+05:00", "history[0].at"),
    ("history/2/details/credits", "lots", "history[2].details.credits"),
    ("history/2/details/credits", "-5", "history[2].details.credits"),
    ("history/2/details/credits", "1E+999999", "history[2].details.credits"),
    ("history/2/details/term_months", "twelve", "history[2].details.term_months"),
    ("history/2/details/colour", "red", "history[2].details.colour"),
    ("history/0/details/forfeited", "-0", "history[0].details.forfeited"),
    ("trial/bought_at", None, "trial.bought_at"),
    ("trial/ends", None, "trial.ends"),
    ("trial/bought_at", "2026-01-09T04:00:00+00:00", "trial"),
    ("trial/bought_at", "2030-01-09T04:00:00+00:00", "trial.ends"),
    ("period/edition", "basic", "period"),
    ("usage/0/12", "2026-02-02T04:00:00+00:00", "usage[0].requested_at"),
    ("addons/0/order_id", "o-9", "addons[0].order_id"),
    ("customer_id", " ", "customer_id"),
    ("usage/0/0", "u" * 256, "usage[0].usage_id"),
    ("usage/0/3", "9E+999999", "usage[0].quantity"),
    ("usage/0/3", "\u0663", "usage[0].quantity"),
]


@pytest.mark.parametrize(("path", "value", "field"), CORRUPTIONS)
def test_corrupt_record_is_invalid_input_naming_the_field(
    catalog: lc.Catalog, path: str, value: Any, field: str
) -> None:
    """Each corruption raises InvalidInput naming the field, never a KeyError or a half object."""
    record = _corrupt(_lived(catalog).to_record(), path, value)
    with pytest.raises(lc.InvalidInput) as info:
        lc.Subscription.from_record(record, catalog=catalog)
    assert field == info.value.field
    assert "record.invalid" == info.value.code


@pytest.mark.parametrize("version", [None, 0, 3, "2", True, 2.0])
def test_unknown_schema_version(catalog: lc.Catalog, version: object) -> None:
    """A record of another schema version is refused with its own code."""
    record = _lived(catalog).to_record()
    record["schema_version"] = version
    with pytest.raises(lc.InvalidInput) as info:
        lc.Subscription.from_record(record, catalog=catalog)
    assert ("schema_version", "record.unsupported_version") == (info.value.field, info.value.code)


@pytest.mark.parametrize("record", [None, [], "{}", 42])
def test_not_a_record(catalog: lc.Catalog, record: Any) -> None:
    """Something that is not a dict at all is InvalidInput too."""
    with pytest.raises(lc.InvalidInput):
        lc.Subscription.from_record(record, catalog=catalog)


def test_any_mapping_loads(catalog: lc.Catalog) -> None:
    """A record built with another Mapping type (OrderedDict, JSON hooks) loads the same."""
    record = _lived(catalog).to_record()
    ordered = json.loads(json.dumps(record), object_pairs_hook=collections.OrderedDict)
    loaded = lc.Subscription.from_record(ordered, catalog=catalog)
    assert record == loaded.to_record()


def test_long_quantities_round_trip_under_any_context(catalog: lc.Catalog) -> None:
    """A quantity of 29+ digits, or a thread context of 5 digits, still round-trips exactly."""
    sub = lc.Subscription.new("c", catalog=catalog)
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    sub.record_usage(
        "media_processing", D("0.12345678901234567890123456789"), "u-1", sh(2026, 3, 2)
    )
    sub.record_usage("media_processing", D("2345.678"), "u-2", sh(2026, 3, 3))
    with decimal.localcontext() as context:
        context.prec = 5
        loaded = lc.Subscription.from_record(sub.to_record(), catalog=catalog)
    assert sub.to_record() == loaded.to_record()


def test_history_details_are_read_only(catalog: lc.Catalog) -> None:
    """History hands out read-only details: a receipt cannot be rewritten from outside."""
    sub = lc.Subscription.new("c", catalog=catalog)
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    with pytest.raises(TypeError):
        sub.history[0].details["amount"] = "0"  # type: ignore[index]
    assert D("1000.00") == sub.subscribe("basic", order_id="o-1").amount


def test_unapplied_timed_transition_is_corruption(catalog: lc.Catalog) -> None:
    """A trial whose end lies before the mark cannot have been written by the library."""
    sub = lc.Subscription.new("c", catalog=catalog)
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    record = sub.to_record()
    record["mark"] = sh(2026, 5, 1).isoformat()
    with pytest.raises(lc.InvalidInput) as info:
        lc.Subscription.from_record(record, catalog=catalog)
    assert "state" == info.value.field


def test_details_compare_as_a_dict_does_in_any_order() -> None:
    """History details are equal to the same details in another order, or as a dict."""
    from lifecycle.values import Details

    one = Details({"amount": "1", "version": "v"})
    other = Details({"version": "v", "amount": "1"})
    assert one == other
    assert {"version": "v", "amount": "1"} == one
    assert Details({"amount": "2", "version": "v"}) != one
    assert "1" == one["amount"]
    with pytest.raises(KeyError):
        one["credits"]


class _Text(str):
    """A text equal to a record's own, of a type no JSON parser makes."""


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("mark", "mark"),
        ("credits", "credits"),
        ("period/features/0", "period.features"),
        ("history/1/source", "history[1].source"),
        ("history/1/trigger", "history[1].trigger"),
        ("history/0/at", "history[0].at"),
        ("history/0/details/amount", "history[0].details.amount"),
    ],
)
def test_a_text_checked_before_is_refused_as_another_type(
    catalog: lc.Catalog, path: str, field: str
) -> None:
    """Loading keeps the texts it has checked (timestamps, figures, names, steps); a
    value equal to one of them but not a ``str`` is refused all the same."""
    record = _lived(catalog).to_record()
    lc.Subscription.from_record(record, catalog=catalog)  # every text checked and kept
    node: Any = record
    *parents, last = path.split("/")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    bad = _corrupt(record, path, _Text(node[key]))
    with pytest.raises(lc.InvalidInput) as info:
        lc.Subscription.from_record(bad, catalog=catalog)
    assert (field, "record.invalid") == (info.value.field, info.value.code)
    assert record == lc.Subscription.from_record(record, catalog=catalog).to_record()


def test_details_of_a_dict_keep_its_order_and_values() -> None:
    """Details built from a dict (the loader's case) and from another mapping agree."""
    from lifecycle.values import Details

    given = {"version": "v", "amount": "1", "credits": "2"}
    built = Details(given)
    assert list(given.items()) == list(built.items())
    assert list(built.items()) == list(Details(collections.OrderedDict(given)).items())


def test_a_list_of_names_of_any_type_is_refused_by_name(catalog: lc.Catalog) -> None:
    """Names of a type that cannot even be hashed are refused like any other."""

    class Meta(type):
        def __eq__(cls, other: object) -> bool:
            return cls is other

        __hash__ = None  # type: ignore[assignment]

    class Odd(metaclass=Meta):
        pass

    record = _lived(catalog).to_record()
    record["period"] = dict(record["period"], features=[Odd()])
    with pytest.raises(lc.InvalidInput) as info:
        lc.Subscription.from_record(record, catalog=catalog)
    assert "period.features" == info.value.field


def test_refused_records_leave_nothing_behind(catalog: lc.Catalog) -> None:
    """What loading keeps (checked texts) is bounded in length as well as number:
    records with long name lists and long timestamps, refused, hold no memory."""
    import gc
    import tracemalloc

    record = _lived(catalog).to_record()
    tracemalloc.start()
    try:
        for i in range(40):
            names = sorted(f"{i:04d}-{j:04d}" + "x" * 1000 for j in range(100))
            long_time = "2026-02-03T00:00:00." + "0" * 10_000 + f"{i}+00:00"
            for bad in (
                dict(record, period=dict(record["period"], features=names)),
                dict(record, mark=long_time),
            ):
                with pytest.raises(lc.InvalidInput):
                    lc.Subscription.from_record(bad, catalog=catalog)
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 1_000_000  # kept, it was 4 MB of names and 400 KB of timestamps


def test_details_repr_shows_every_detail() -> None:
    """A history entry's repr (a debugger's, a log's) shows all its details, however
    many: only a caller's values in error messages are quoted a few items deep."""
    from lifecycle.values import Details

    given = {f"name_{n}": str(n) for n in range(9)}
    assert f"Details({given!r})" == repr(Details(given))
