"""Reading a catalog: TOML or a dict, validated into frozen objects.

A catalog is read from TOML (``load_catalog``) or a dict
(``Catalog.from_dict``). Anything wrong fails here, with a ``CatalogError``
naming the key, never later in the middle of an operation. Unknown keys are
errors too: a misspelt ``credit_rat`` must not silently fall back to a
default. A directory of TOML files is a sequence of versions
(``CatalogVersions``).
"""

from __future__ import annotations

import functools
import os
import tomllib
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lifecycle.catalog.model import AddonPackage, Catalog, Edition, Meter, TrialPackage
from lifecycle.catalog.versions import CatalogVersions
from lifecycle.clock import FIRST_YEAR, LAST_YEAR
from lifecycle.errors import CatalogError, shown
from lifecycle.money import in_range


def load_catalog(path: str | os.PathLike[str]) -> Catalog | CatalogVersions:
    """Read and validate the TOML catalog at ``path``: a file is one ``Catalog``; a
    directory is every ``*.toml`` in it, as one ``CatalogVersions``."""
    source = os.fspath(path)
    if os.path.isdir(source):
        files = sorted(Path(source).glob("*.toml"))
        if not files:
            raise CatalogError("<directory>", "holds no *.toml catalog", source=source)
        return CatalogVersions([_load_file(os.fspath(file)) for file in files])
    return _load_file(source)


def _load_file(source: str) -> Catalog:
    try:
        with open(source, "rb") as file:
            data = tomllib.load(file)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise CatalogError("<file>", f"not valid TOML: {error}", source=source) from None
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) else str(error)
        raise CatalogError("<file>", f"cannot read: {reason}", source=source) from None
    return parse(data, source)


@functools.cache
def default_catalog() -> Catalog:
    """The catalog shipped in the package: the FAQ's trial and rules, placeholder figures."""
    text = resources.files("lifecycle.catalog").joinpath("default_catalog.toml").read_text("utf-8")
    return parse(tomllib.loads(text), "lifecycle/catalog/default_catalog.toml")


# --- validation -------------------------------------------------------------


class _Reader:
    """Reads one table of the catalog, naming every key it complains about."""

    def __init__(self, data: object, path: str, source: str | None) -> None:
        self.path = path
        self.source = source
        if not isinstance(data, Mapping):
            self.fail("", f"expected a table, got {type(data).__name__}")
        self.data: Mapping[str, Any] = data
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, problem: str) -> NoReturn:
        raise CatalogError(
            self.key(name) if name else self.path or "<root>", problem, source=self.source
        )

    def get(self, name: str, default: Any = ...) -> Any:
        self.seen.add(name)
        if name in self.data:
            return self.data[name]
        if default is ...:
            self.fail(name, "is missing")
        return default

    def text(self, name: str, default: Any = ...) -> str:
        value = self.get(name, default)
        if not isinstance(value, str) or not value.strip():
            self.fail(name, f"expected a non-empty string, got {shown(value)}")
        return str(value)

    def integer(self, name: str, default: Any = ..., *, minimum: int, maximum: int) -> int:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, f"expected an integer, got {shown(value)}")
        if not minimum <= value <= maximum:
            self.fail(name, f"must be from {minimum} to {maximum}, got {shown(value)}")
        return int(value)

    def decimal(self, name: str, default: Any = ..., *, positive: bool = False) -> Decimal:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.fail(
                name,
                f'expected a decimal string such as "20.00", got {shown(value)} '
                "(floats are not exact enough for money)",
            )
        try:
            number = Decimal(value)
        except InvalidOperation:
            self.fail(name, f"{shown(value)} is not a decimal number")
        if not number.is_finite():
            self.fail(name, f"{shown(value)} is not a finite number")
        if not in_range(number):
            self.fail(name, f"{shown(value)} is out of range (at most 60 characters, below 1E+31)")
        if number < 0 or (positive and number == 0):
            self.fail(
                name, f"must be {'positive' if positive else 'zero or more'}, got {shown(value)}"
            )
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if not isinstance(value, bool):
            self.fail(name, f"expected true or false, got {shown(value)}")
        return bool(value)

    def names(self, name: str, default: Any = ...) -> list[str]:
        value = self.get(name, default)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(name, f"expected a list of names, got {shown(value)}")
        if len(set(value)) != len(value):
            self.fail(name, "lists a name twice")
        return list(value)

    def table(self, name: str, default: Any = ...) -> dict[str, _Reader]:
        value = self.get(name, default)
        if not isinstance(value, Mapping):
            self.fail(name, f"expected a table, got {type(value).__name__}")
        return {
            str(key): _Reader(entry, self.key(f"{name}.{key}"), self.source)
            for key, entry in value.items()
        }

    def done(self) -> None:
        unknown = sorted(str(key) for key in self.data if key not in self.seen)
        if unknown:
            self.fail(unknown[0], "is not a catalog key (misspelt?)")


def parse(data: Mapping[str, Any], source: str | None) -> Catalog:
    """``data`` (a TOML document's structure) as a validated catalog."""
    root = _Reader(data, "", source)
    currency = root.text("currency")
    timezone = root.text("timezone", "Asia/Shanghai")
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        root.fail("timezone", f"{shown(timezone)} is not a known IANA time zone")
    version = root.get("version", None)
    if version is not None and (not isinstance(version, str) or not version.strip()):
        root.fail("version", f"expected a non-empty string, got {shown(version)}")
    effective_from = _instant(root, "effective_from", zone)
    window = root.integer("idempotency_window_days", 7, minimum=1, maximum=3660)
    late = root.integer("late_arrival_minutes", 60, minimum=0, maximum=3660 * 24 * 60)
    if late >= window * 24 * 60:
        root.fail(
            "late_arrival_minutes",
            f"{late} minutes is not shorter than the idempotency window "
            f"({window} days): a late retry could outlive its key and be applied twice",
        )

    editions: dict[str, Edition] = {}
    ranks: dict[int, str] = {}
    for name, entry in root.table("editions").items():
        rank = entry.integer("rank", minimum=0, maximum=1000)
        if rank in ranks:
            entry.fail("rank", f"{rank} is also the rank of {shown(ranks[rank])}")
        ranks[rank] = name
        editions[name] = Edition(
            name=name,
            rank=rank,
            price=entry.decimal("price"),
            credits=entry.decimal("credits", positive=True),
            features=frozenset(entry.names("features")),
        )
        entry.done()
    if not editions:
        root.fail("editions", "must define at least one edition")
    features = frozenset().union(*(e.features for e in editions.values()))

    trial_table = _Reader(root.get("trial"), "trial", source)
    trial = TrialPackage(
        price=trial_table.decimal("price"),
        credits=trial_table.decimal("credits", positive=True),
        validity_months=trial_table.integer("validity_months", 1, minimum=1, maximum=1200),
        excluded_features=frozenset(
            _known(
                trial_table,
                "excluded_features",
                trial_table.names("excluded_features", []),
                features,
            )
        ),
    )
    trial_table.done()

    addons: dict[str, AddonPackage] = {}
    for name, entry in root.table("addons", {}).items():
        addons[name] = AddonPackage(
            name=name,
            price=entry.decimal("price"),
            credits=entry.decimal("credits", positive=True),
        )
        entry.done()

    meters: dict[str, Meter] = {}
    for name, entry in root.table("meters").items():
        feature = entry.text("feature")
        _known(entry, "feature", [feature], features)
        min_edition = entry.get("min_edition", None)
        if min_edition is not None and (
            not isinstance(min_edition, str) or min_edition not in editions
        ):
            entry.fail("min_edition", f"{shown(min_edition)} names no edition")
        meters[name] = Meter(
            name=name,
            feature=feature,
            credit_rate=entry.decimal("credit_rate", "1", positive=True),
            payg_price=entry.decimal("payg_price"),
            min_edition=min_edition,
            payg_without_subscription=entry.boolean("payg_without_subscription", False),
        )
        entry.done()
    _same_terms_per_feature(root, meters.values())
    root.done()

    return Catalog(
        currency=currency,
        timezone=timezone,
        idempotency_window_days=window,
        late_arrival_minutes=late,
        version=version,
        effective_from=effective_from,
        trial=trial,
        editions=MappingProxyType(editions),
        addons=MappingProxyType(addons),
        meters=MappingProxyType(meters),
        source=source,
    )


def _instant(root: _Reader, name: str, zone: ZoneInfo) -> datetime | None:
    """A TOML date-time: local (read in the catalog's zone), with an offset, or a
    date (midnight, local)."""
    value = root.get(name, None)
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time(0))
    if not isinstance(value, datetime):
        root.fail(
            name, f"expected a TOML date-time such as 2026-07-01T00:00:00, got {shown(value)}"
        )
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        root.fail(name, f"{value.isoformat()} is out of range")
    return value.astimezone(ZoneInfo("UTC"))


def _known(
    reader: _Reader, name: str, values: Iterable[str], features: frozenset[str]
) -> list[str]:
    values = list(values)
    for value in values:
        if value not in features:
            reader.fail(name, f"{shown(value)} is not a feature of any edition")
    return values


def _same_terms_per_feature(root: _Reader, meters: Iterable[Meter]) -> None:
    # NOTE: `authorize` answers per feature, so every meter of one feature must
    # be paid the same way or the answer would depend on which meter is used.
    first: dict[str, Meter] = {}
    for meter in meters:
        other = first.setdefault(meter.feature, meter)
        if (other.min_edition, other.payg_without_subscription) != (
            meter.min_edition,
            meter.payg_without_subscription,
        ):
            root.fail(
                f"meters.{meter.name}",
                f"bills feature {shown(meter.feature)} differently from meters.{other.name} "
                "(min_edition / payg_without_subscription must agree)",
            )
