"""What a catalog holds: prices, quotas and names, as frozen objects.

A catalog is one version of the vendor's offer (``version``, in force from
``effective_from``); ``CatalogVersions`` (``versions.py``) is a sequence of
them. Parsing and validation are in ``parse.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import attrs

from lifecycle.errors import InvalidInput, shown
from lifecycle.money import MONEY


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
    """One validated version of the catalog. Build one with ``from_dict`` or
    ``load_catalog``.

    ``version`` names it and ``effective_from`` is the instant it comes into
    force (both optional for a catalog used alone). A catalog is also the
    simplest sequence of versions: ``at(when)`` is itself.
    """

    currency: str
    timezone: str
    idempotency_window_days: int
    trial: TrialPackage
    editions: Mapping[str, Edition]
    addons: Mapping[str, AddonPackage]
    meters: Mapping[str, Meter]
    source: str | None = None
    late_arrival_minutes: int = 60
    version: str | None = None
    effective_from: datetime | None = None
    zone: ZoneInfo = attrs.field(init=False, repr=False)
    window: timedelta = attrs.field(init=False, repr=False)
    late_arrival: timedelta = attrs.field(init=False, repr=False)
    features: frozenset[str] = attrs.field(init=False, repr=False)
    trial_price: str = attrs.field(init=False, repr=False)
    _by_feature: Mapping[str, Meter] = attrs.field(init=False, repr=False)
    trial_texts: Mapping[str, str] = attrs.field(init=False, repr=False)
    """The trial's terms as a ``purchase_trial`` history entry's details write them."""
    edition_texts: Mapping[str, Mapping[str, str]] = attrs.field(init=False, repr=False)
    """Each edition's terms as a ``subscribe`` history entry's details write them."""
    addon_texts: Mapping[str, Mapping[str, str]] = attrs.field(init=False, repr=False)
    """Each add-on's terms as a ``buy_addon`` history entry's details write them."""

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
        # NOTE: written once here and shared by every history entry that quotes
        # them: a subscription holds these strings by reference, not a copy each.
        text, version = MONEY.to_sci_string, self.version or ""
        trial = self.trial
        object.__setattr__(
            self,
            "trial_texts",
            MappingProxyType(
                {
                    "amount": text(trial.price),
                    "credits": text(trial.credits),
                    "excluded_features": ",".join(sorted(trial.excluded_features)),
                    "version": version,
                }
            ),
        )
        editions = {
            name: MappingProxyType(
                {
                    "amount": text(edition.price),
                    "credits": text(edition.credits),
                    "rank": str(edition.rank),
                    "features": ",".join(sorted(edition.features)),
                    "version": version,
                }
            )
            for name, edition in self.editions.items()
        }
        object.__setattr__(self, "edition_texts", MappingProxyType(editions))
        addons = {
            name: MappingProxyType(
                {"amount": text(addon.price), "credits": text(addon.credits), "version": version}
            )
            for name, addon in self.addons.items()
        }
        object.__setattr__(self, "addon_texts", MappingProxyType(addons))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> Catalog:
        """Validate ``data`` (the TOML's structure) into a catalog."""
        from lifecycle.catalog.parse import parse

        return parse(data, source)

    @property
    def versions(self) -> tuple[Catalog, ...]:
        return (self,)

    def at(self, when: datetime) -> Catalog:
        """The version in force at ``when``: a catalog alone is always in force."""
        return self

    @property
    def named(self) -> str:
        """How messages name this version: ``version 2026-07 (in force from …)``."""
        if self.version is None:
            return "the catalog"
        if self.effective_from is None:
            return f"catalog version {self.version}"
        local = self.effective_from.astimezone(self.zone)
        return f"catalog version {self.version} (in force from {local:%Y-%m-%d %H:%M})"

    def edition(self, name: object) -> Edition:
        """The edition called ``name``, or ``InvalidInput`` (``catalog.unknown_edition``)."""
        return self._lookup(self.editions, name, "edition", "catalog.unknown_edition")

    def addon(self, name: object) -> AddonPackage:
        """The add-on package called ``name``, or ``InvalidInput``."""
        return self._lookup(self.addons, name, "package", "catalog.unknown_package")

    def meter(self, name: object) -> Meter:
        """The meter called ``name``, or ``InvalidInput`` (``catalog.unknown_meter``)."""
        return self._lookup(self.meters, name, "meter", "catalog.unknown_meter")

    def feature(self, name: object, *, also: frozenset[str] = frozenset()) -> str:
        """``name`` if it is a feature of some edition (or of ``also``: the features a
        customer's own terms name), else ``InvalidInput``."""
        if isinstance(name, str) and (name in self.features or name in also):
            return name
        raise InvalidInput(
            "feature",
            f"{shown(name)} is not in {self.named}; known: {', '.join(sorted(self.features))}",
            code="catalog.unknown_feature",
        )

    def meter_for(self, feature: str) -> Meter | None:
        """The meter that bills ``feature``, or None for a feature with no meter."""
        return self._by_feature.get(feature)

    def rank(self, edition: str) -> int:
        return self.editions[edition].rank

    def _lookup(self, table: Mapping[str, T], name: object, field: str, code: str) -> T:
        if isinstance(name, str) and name in table:
            return table[name]
        raise InvalidInput(
            field,
            f"{shown(name)} is not in {self.named}; known: {', '.join(sorted(table))}",
            code=code,
        )


T = TypeVar("T")
