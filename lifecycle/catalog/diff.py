"""What a new catalog version changes, and for whom, in words a product manager reads.

Every change has a stated effect, the same one the engine gives it: what a
customer bought keeps its terms until it ends (so a change to a trial, an
edition or an add-on is for new purchases only); what is priced per use
follows the version in force (so a change to a meter is everyone's usage from
the new version's instant); what is removed can no longer be bought or used,
while what was bought of it runs to its end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from lifecycle.catalog.model import Catalog
from lifecycle.catalog.versions import SHARED
from lifecycle.money import MONEY


@attrs.frozen
class Change:
    """One difference between two versions: ``what`` changed and its ``effect``.

    ``held`` names what existing customers may hold of it (``("edition",
    "standard")``, ``("package", "boost-500")``) where a count of them says who
    is affected; ``allowed`` is False for a change versions may not make.
    """

    what: str
    effect: str
    held: tuple[str, str] | None = None
    allowed: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "effect": self.effect,
            "held": list(self.held) if self.held else None,
            "allowed": self.allowed,
        }


def _text(value: object) -> str:
    if isinstance(value, frozenset):
        return ", ".join(sorted(value)) or "none"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "as_tuple"):
        return MONEY.to_sci_string(value)  # type: ignore[arg-type]
    return str(value)


def when(catalog: Catalog) -> str:
    """The instant a version comes into force, on the catalog's own clock."""
    if catalog.effective_from is None:
        return "the moment it is used"
    local = catalog.effective_from.astimezone(catalog.zone)
    return f"{local:%Y-%m-%d %H:%M} ({catalog.timezone})"


MONEY_FIELDS = frozenset({"price", "payg_price"})


def _fields(
    old: Any,
    new: Any,
    fields: Mapping[str, str],
    label: str,
    effect: str,
    held: tuple[str, str] | None = None,
    currency: str = "",
) -> list[Change]:
    changes = []
    for field, name in fields.items():
        before, after = getattr(old, field), getattr(new, field)
        if before != after:
            unit = f"{currency} " if field in MONEY_FIELDS else ""
            what = f"{label}: {name} {unit}{_text(before)} → {unit}{_text(after)}"
            changes.append(Change(what, effect, held))
    return changes


def _named(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    kind: str,
    label: str,
    added: str,
    removed: str,
    changed: Callable[[Any, Any], list[Change]],
) -> list[Change]:
    changes = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            changes.append(Change(f"{label} {name} added", added))
        elif name not in new:
            changes.append(Change(f"{label} {name} removed", removed, (kind, name)))
        else:
            changes.extend(changed(old[name], new[name]))
    return changes


def diff(old: Catalog, new: Catalog) -> list[Change]:
    """Every change from ``old`` to ``new``, with its effect."""
    at = when(new)
    purchases = f"new purchases only, from {at}"
    usage = f"everyone's usage from {at}"
    changes = [
        Change(
            f"{name}: {getattr(old, name)!r} → {getattr(new, name)!r}",
            "not allowed between versions: versions share their currency, time zone, "
            "idempotency window and late-arrival allowance",
            allowed=False,
        )
        for name in SHARED
        if getattr(old, name) != getattr(new, name)
    ]
    changes += _fields(
        old.trial,
        new.trial,
        {
            "price": "price",
            "credits": "credits",
            "validity_months": "validity (months)",
            "excluded_features": "excluded features",
        },
        "trial",
        f"new trials only, from {at}; a trial bought before keeps its terms until it ends",
        currency=new.currency,
    )
    changes += _named(
        old.editions,
        new.editions,
        "edition",
        "edition",
        f"sold from {at}",
        f"no longer sold from {at}; existing periods keep their terms until they end",
        lambda a, b: _fields(
            a,
            b,
            {"price": "price", "credits": "credits", "rank": "rank", "features": "features"},
            f"edition {a.name}",
            f"{purchases}; existing periods keep their terms until they end",
            ("edition", a.name),
            new.currency,
        ),
    )
    changes += _named(
        old.addons,
        new.addons,
        "package",
        "add-on",
        f"sold from {at}",
        f"no longer sold from {at}; add-ons already bought keep their credits until "
        "their period ends",
        lambda a, b: _fields(
            a,
            b,
            {"price": "price", "credits": "credits"},
            f"add-on {a.name}",
            f"{purchases}; add-ons already bought keep theirs",
            ("package", a.name),
            new.currency,
        ),
    )
    changes += _named(
        old.meters,
        new.meters,
        "meter",
        "meter",
        f"usage of it is settled from {at}",
        f"usage of it is refused from {at} (catalog.unknown_meter); usage settled "
        "before keeps its settlement, and its retries are answered with it",
        lambda a, b: _fields(
            a,
            b,
            {
                "feature": "feature",
                "credit_rate": "credit rate",
                "payg_price": "pay-as-you-go price",
                "min_edition": "lowest edition paying with credits",
                "payg_without_subscription": "pay-as-you-go without a subscription",
            },
            f"meter {a.name}",
            usage,
            currency=new.currency,
        ),
    )
    return changes
