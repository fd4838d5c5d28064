"""The catalog: loaded from TOML or a dict, validated with errors naming the key."""

import copy
import tomllib
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

import lifecycle as lc


def _data() -> dict[str, Any]:
    text = resources.files("lifecycle.catalog").joinpath("default_catalog.toml").read_text("utf-8")
    return tomllib.loads(text)


def test_default_catalog_has_the_faqs_trial() -> None:
    """The shipped catalog sells the trial at CNY 20 and excludes the FAQ's two features."""
    catalog = lc.default_catalog()
    assert ("CNY", "Asia/Shanghai", 7) == (
        catalog.currency,
        catalog.timezone,
        catalog.idempotency_window_days,
    )
    assert Decimal("20.00") == catalog.trial.price
    assert 1 == catalog.trial.validity_months
    assert frozenset({"dedicated_customer_service", "advanced_video_clip_effects"}) == (
        catalog.trial.excluded_features
    )
    assert ["basic", "standard", "professional"] == sorted(
        catalog.editions, key=lambda name: catalog.editions[name].rank
    )


def test_load_catalog_reads_a_file(tmp_path: Path) -> None:
    """load_catalog reads the same TOML as the shipped one into an equal catalog."""
    path = tmp_path / "catalog.toml"
    path.write_bytes(
        resources.files("lifecycle.catalog").joinpath("default_catalog.toml").read_bytes()
    )
    loaded = lc.load_catalog(path)
    default = lc.default_catalog()
    assert (default.trial, dict(default.editions), dict(default.meters)) == (
        loaded.trial,
        dict(loaded.editions),
        dict(loaded.meters),
    )
    assert str(path) == loaded.source


def test_defaults_for_optional_keys() -> None:
    """Time zone, window and trial validity default to the SPEC's values."""
    data = _data()
    del data["timezone"], data["idempotency_window_days"], data["trial"]["validity_months"]
    catalog = lc.Catalog.from_dict(data)
    assert ("Asia/Shanghai", 7, 1) == (
        catalog.timezone,
        catalog.idempotency_window_days,
        catalog.trial.validity_months,
    )


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return data


BROKEN = [
    ("currency", KeyError, "currency"),
    ("timezone", "Mars/Olympus_Mons", "timezone"),
    ("idempotency_window_days", 0, "idempotency_window_days"),
    ("idempotency_window_days", "7", "idempotency_window_days"),
    ("trial.price", "-1", "trial.price"),
    ("trial.price", 20.0, "trial.price"),
    ("trial.price", "twenty", "trial.price"),
    ("trial.credits", "0", "trial.credits"),
    ("trial.credits", "NaN", "trial.credits"),
    ("trial.validity_months", 0, "trial.validity_months"),
    ("trial.excluded_features", ["teleportation"], "trial.excluded_features"),
    ("trial.colour", "blue", "trial.colour"),
    ("editions.basic.price", "-0.01", "editions.basic.price"),
    ("editions.basic.rank", 2, "editions.standard.rank"),
    ("editions.basic.features", "media_processing", "editions.basic.features"),
    ("editions.basic.credits", KeyError, "editions.basic.credits"),
    ("editions", {}, "editions"),
    ("addons.boost-500.credits", "-500", "addons.boost-500.credits"),
    ("meters.media_processing.feature", "teleportation", "meters.media_processing.feature"),
    ("meters.media_processing.credit_rat", "1", "meters.media_processing.credit_rat"),
    ("meters.media_processing.credit_rate", "0", "meters.media_processing.credit_rate"),
    ("meters.media_processing.payg_price", "Infinity", "meters.media_processing.payg_price"),
    ("meters.rtc_ai.min_edition", "gold", "meters.rtc_ai.min_edition"),
    ("meters.rtc_ai.payg_without_subscription", "yes", "meters.rtc_ai.payg_without_subscription"),
    ("trial", "free", "trial"),
    ("surprise", 1, "surprise"),
]


@pytest.mark.parametrize(("path", "value", "key"), BROKEN)
def test_broken_catalog_names_the_key(path: str, value: Any, key: str) -> None:
    """Each kind of broken catalog raises CatalogError whose message names the key."""
    with pytest.raises(lc.CatalogError) as info:
        lc.Catalog.from_dict(_set(_data(), path, value))
    assert key == info.value.key
    assert repr(key) in str(info.value)
    assert "catalog.invalid" == info.value.code


def test_meters_of_one_feature_must_agree() -> None:
    """Two meters of one feature billed differently would make authorize ambiguous."""
    data = _data()
    data["meters"]["rtc_ai_cheap"] = {
        "feature": "realtime_conversational_ai",
        "payg_price": "0.10",
    }
    with pytest.raises(lc.CatalogError, match="rtc_ai_cheap"):
        lc.Catalog.from_dict(data)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    """A missing file or invalid TOML is a CatalogError naming the file."""
    with pytest.raises(lc.CatalogError, match="cannot read"):
        lc.load_catalog(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("currency = \n")
    with pytest.raises(lc.CatalogError, match="not valid TOML") as info:
        lc.load_catalog(bad)
    assert str(bad) in str(info.value)


@pytest.mark.parametrize(
    ("lookup", "code"),
    [
        ("edition", "catalog.unknown_edition"),
        ("addon", "catalog.unknown_package"),
        ("meter", "catalog.unknown_meter"),
        ("feature", "catalog.unknown_feature"),
    ],
)
def test_unknown_names_are_invalid_input(lookup: str, code: str) -> None:
    """Looking up a name the catalog lacks is InvalidInput with a stable code."""
    with pytest.raises(lc.InvalidInput) as info:
        getattr(lc.default_catalog(), lookup)("gold")
    assert code == info.value.code
    assert isinstance(info.value, ValueError)
    assert "'gold'" in str(info.value)


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [
        ("meters.rtc_ai.min_edition", ["standard"], "meters.rtc_ai.min_edition"),
        ("meters.rtc_ai.min_edition", {}, "meters.rtc_ai.min_edition"),
        ("timezone", "America", "timezone"),
        ("idempotency_window_days", 3_000_000, "idempotency_window_days"),
        ("idempotency_window_days", 10**10, "idempotency_window_days"),
        ("trial.validity_months", 100_000, "trial.validity_months"),
        ("editions.basic.price", "1E+40", "editions.basic.price"),
    ],
)
def test_hostile_catalog_values_are_catalog_errors(path: str, value: Any, key: str) -> None:
    """Values that once escaped as TypeError, OSError or OverflowError are CatalogErrors."""
    with pytest.raises(lc.CatalogError) as info:
        lc.Catalog.from_dict(_set(_data(), path, value))
    assert key == info.value.key


def test_non_string_keys_beside_a_misspelt_one() -> None:
    """A table mixing non-string and unknown keys still gets a CatalogError."""
    data = _data()
    data["trial"][1] = "x"
    data["trial"]["colour"] = "red"
    with pytest.raises(lc.CatalogError):
        lc.Catalog.from_dict(data)


def test_unopenable_path_is_a_catalog_error() -> None:
    """A path the OS refuses to open (a NUL byte) is a CatalogError too."""
    with pytest.raises(lc.CatalogError, match="cannot read"):
        lc.load_catalog("a\x00b")
