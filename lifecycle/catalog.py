"""The catalog: prices, quotas and names as data, validated at load.

A catalog is read from TOML (``load_catalog``) or a dict
(``Catalog.from_dict``) into frozen objects. Anything wrong fails here, with a
``CatalogError`` naming the key, never later in the middle of an operation.
Unknown keys are errors too: a misspelt ``credit_rat`` must not silently fall
back to a default.
"""

from __future__ import annotations

import functools
import os
import tomllib
from collections.abc import Iterable, Mapping
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from importlib import resources
from types import MappingProxyType
from typing import Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from lifecycle.errors import CatalogError, InvalidInput
from lifecycle.money import MONEY, in_range


@attrs.frozen
class TrialPackage:
    """The monthly feature trial package (FAQ Q2)."""

    price: Decimal
    credits: Decimal
    validity_months: int
    excluded_features: frozenset[str]


@attrs.frozen
class Edition:
    """An Enterprise Edition; ``rank`` orders editions ("Standard and higher")."""

    name: str
    rank: int
    price: Decimal
    credits: Decimal
    features: frozenset[str]


@attrs.frozen
class AddonPackage:
    """A subscription add-on package: extra credits for the current period (Q1, Q6)."""

    name: str
    price: Decimal
    credits: Decimal


@attrs.frozen
class Meter:
    """What usage is measured in: one unit costs ``credit_rate`` credits.

    ``min_edition`` is the lowest edition whose credits may pay for it;
    ``payg_without_subscription`` bills it pay-as-you-go wherever credits may
    not pay (Real-time Conversational AI, Q7).
    """

    name: str
    feature: str
    credit_rate: Decimal
    payg_price: Decimal
    min_edition: str | None = None
    payg_without_subscription: bool = False


@attrs.frozen(eq=False)
class Catalog:
    """A validated catalog. Build one with ``from_dict`` or ``load_catalog``."""

    currency: str
    timezone: str
    idempotency_window_days: int
    trial: TrialPackage
    editions: Mapping[str, Edition]
    addons: Mapping[str, AddonPackage]
    meters: Mapping[str, Meter]
    source: str | None = None
    late_arrival_minutes: int = 60
    zone: ZoneInfo = attrs.field(init=False, repr=False)
    window: timedelta = attrs.field(init=False, repr=False)
    late_arrival: timedelta = attrs.field(init=False, repr=False)
    features: frozenset[str] = attrs.field(init=False, repr=False)
    trial_price: str = attrs.field(init=False, repr=False)
    _by_feature: Mapping[str, Meter] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # Derived once here so no operation pays for them.
        object.__setattr__(self, "zone", ZoneInfo(self.timezone))
        object.__setattr__(self, "window", timedelta(days=self.idempotency_window_days))
        object.__setattr__(self, "late_arrival", timedelta(minutes=self.late_arrival_minutes))
        features = frozenset().union(*(e.features for e in self.editions.values()))
        object.__setattr__(self, "features", features)
        price = MONEY.to_sci_string(self.trial.price)
        object.__setattr__(self, "trial_price", f"{self.currency} {price}")
        by_feature: dict[str, Meter] = {}
        for meter in self.meters.values():
            by_feature.setdefault(meter.feature, meter)
        object.__setattr__(self, "_by_feature", MappingProxyType(by_feature))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> Catalog:
        """Validate ``data`` (the TOML's structure) into a catalog."""
        return _parse(data, source)

    def edition(self, name: object) -> Edition:
        """The edition called ``name``, or ``InvalidInput`` (``catalog.unknown_edition``)."""
        return _lookup(self.editions, name, "edition", "catalog.unknown_edition")

    def addon(self, name: object) -> AddonPackage:
        """The add-on package called ``name``, or ``InvalidInput``."""
        return _lookup(self.addons, name, "package", "catalog.unknown_package")

    def meter(self, name: object) -> Meter:
        """The meter called ``name``, or ``InvalidInput`` (``catalog.unknown_meter``)."""
        return _lookup(self.meters, name, "meter", "catalog.unknown_meter")

    def feature(self, name: object) -> str:
        """``name`` if it is a feature of some edition, else ``InvalidInput``."""
        if isinstance(name, str) and name in self.features:
            return name
        raise InvalidInput(
            "feature",
            f"{name!r} is not in the catalog; known: {', '.join(sorted(self.features))}",
            code="catalog.unknown_feature",
        )

    def meter_for(self, feature: str) -> Meter | None:
        """The meter that bills ``feature``, or None for a feature with no meter."""
        return self._by_feature.get(feature)

    def rank(self, edition: str) -> int:
        return self.editions[edition].rank


T = TypeVar("T")


def _lookup(table: Mapping[str, T], name: object, field: str, code: str) -> T:
    if isinstance(name, str) and name in table:
        return table[name]
    raise InvalidInput(
        field,
        f"{name!r} is not in the catalog; known: {', '.join(sorted(table))}",
        code=code,
    )


def load_catalog(path: str | os.PathLike[str]) -> Catalog:
    """Read and validate the TOML catalog at ``path``."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as file:
            data = tomllib.load(file)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise CatalogError("<file>", f"not valid TOML: {error}", source=source) from None
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) else str(error)
        raise CatalogError("<file>", f"cannot read: {reason}", source=source) from None
    return _parse(data, source)


@functools.cache
def default_catalog() -> Catalog:
    """The catalog shipped in the package: the FAQ's trial and rules, placeholder figures."""
    text = resources.files("lifecycle").joinpath("default_catalog.toml").read_text("utf-8")
    return _parse(tomllib.loads(text), "lifecycle/default_catalog.toml")


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
            self.fail(name, f"expected a non-empty string, got {value!r}")
        return str(value)

    def integer(self, name: str, default: Any = ..., *, minimum: int, maximum: int) -> int:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, f"expected an integer, got {value!r}")
        if not minimum <= value <= maximum:
            self.fail(name, f"must be from {minimum} to {maximum}, got {value}")
        return int(value)

    def decimal(self, name: str, default: Any = ..., *, positive: bool = False) -> Decimal:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.fail(
                name,
                f'expected a decimal string such as "20.00", got {value!r} '
                "(floats are not exact enough for money)",
            )
        try:
            number = Decimal(value)
        except InvalidOperation:
            self.fail(name, f"{value!r} is not a decimal number")
        if not number.is_finite():
            self.fail(name, f"{value!r} is not a finite number")
        if not in_range(number):
            self.fail(name, f"{value!r} is out of range (at most 60 characters, below 1E+31)")
        if number < 0 or (positive and number == 0):
            self.fail(name, f"must be {'positive' if positive else 'zero or more'}, got {value!r}")
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if not isinstance(value, bool):
            self.fail(name, f"expected true or false, got {value!r}")
        return bool(value)

    def names(self, name: str, default: Any = ...) -> list[str]:
        value = self.get(name, default)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(name, f"expected a list of names, got {value!r}")
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


def _parse(data: Mapping[str, Any], source: str | None) -> Catalog:
    root = _Reader(data, "", source)
    currency = root.text("currency")
    timezone = root.text("timezone", "Asia/Shanghai")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        root.fail("timezone", f"{timezone!r} is not a known IANA time zone")
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
            entry.fail("rank", f"{rank} is also the rank of {ranks[rank]!r}")
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
            entry.fail("min_edition", f"{min_edition!r} names no edition")
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
        trial=trial,
        editions=MappingProxyType(editions),
        addons=MappingProxyType(addons),
        meters=MappingProxyType(meters),
        source=source,
    )


def _known(
    reader: _Reader, name: str, values: Iterable[str], features: frozenset[str]
) -> list[str]:
    values = list(values)
    for value in values:
        if value not in features:
            reader.fail(name, f"{value!r} is not a feature of any edition")
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
                f"bills feature {meter.feature!r} differently from meters.{other.name} "
                "(min_edition / payg_without_subscription must agree)",
            )
