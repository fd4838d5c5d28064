"""A sequence of catalog versions, each in force from its ``effective_from``.

Prices change, editions are retired, meters are added: each change is a new
version, in force from an instant. An operation uses the version in force at
the instant it takes effect; what a customer bought keeps the terms it was
bought under (the subscription carries them), so an old version need not
exist for its customers to load. The earliest version is also in force before
its ``effective_from``: there is no time without prices.

The versions share what governs time and money across them: currency, time
zone, idempotency window and late-arrival allowance.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from lifecycle.catalog.model import Catalog
from lifecycle.errors import CatalogError, shown

SHARED = ("currency", "timezone", "idempotency_window_days", "late_arrival_minutes")
"""What every version must agree on."""


class CatalogVersions:
    """Catalog versions in order of ``effective_from``; ``at(when)`` is the one in force."""

    __slots__ = ("_starts", "versions")

    versions: tuple[Catalog, ...]

    def __init__(self, versions: Iterable[Catalog]) -> None:
        chosen = list(versions)
        if not chosen:
            raise CatalogError("<versions>", "expected at least one catalog version")
        for catalog in chosen:
            if not isinstance(catalog, Catalog):
                raise CatalogError("<versions>", f"expected Catalogs, got {type(catalog).__name__}")
            if len(chosen) > 1 and (catalog.version is None or catalog.effective_from is None):
                raise CatalogError(
                    "version" if catalog.version is None else "effective_from",
                    "is missing: each of several versions names itself and when it "
                    "comes into force",
                    source=catalog.source,
                )
        chosen.sort(key=_start)
        first = chosen[0]
        for catalog in chosen[1:]:
            for name in SHARED:
                if getattr(catalog, name) != getattr(first, name):
                    raise CatalogError(
                        name,
                        f"is {shown(getattr(catalog, name))} in version {catalog.version} but "
                        f"{shown(getattr(first, name))} in version {first.version}: versions "
                        "share their currency, time zone, window and allowance",
                        source=catalog.source,
                    )
        for before, after in itertools.pairwise(chosen):
            if before.version == after.version:
                raise CatalogError(
                    "version", f"{shown(after.version)} names two versions", source=after.source
                )
            if before.effective_from == after.effective_from:
                raise CatalogError(
                    "effective_from",
                    f"versions {before.version} and {after.version} both come into force "
                    f"at {_start(after).isoformat()}",
                    source=after.source,
                )
        self.versions = tuple(chosen)
        self._starts = [_start(catalog) for catalog in chosen]

    def __repr__(self) -> str:
        named = ", ".join(f"{c.version}@{_start(c).date()}" for c in self.versions)
        return f"CatalogVersions({named})"

    def __iter__(self) -> Iterator[Catalog]:
        return iter(self.versions)

    def __len__(self) -> int:
        return len(self.versions)

    def at(self, when: datetime) -> Catalog:
        """The version in force at ``when`` (the earliest, before it begins)."""
        index = bisect.bisect_right(self._starts, when) - 1
        return self.versions[max(index, 0)]

    @property
    def latest(self) -> Catalog:
        return self.versions[-1]

    # What all versions share, read from the first.

    @property
    def currency(self) -> str:
        return self.versions[0].currency

    @property
    def timezone(self) -> str:
        return self.versions[0].timezone

    @property
    def zone(self) -> ZoneInfo:
        return self.versions[0].zone

    @property
    def window(self) -> timedelta:
        return self.versions[0].window

    @property
    def late_arrival(self) -> timedelta:
        return self.versions[0].late_arrival

    @property
    def source(self) -> str | None:
        return self.versions[0].source


_BEGINNING = datetime.min.replace(tzinfo=ZoneInfo("UTC"))


def _start(catalog: Catalog) -> datetime:
    return catalog.effective_from or _BEGINNING
