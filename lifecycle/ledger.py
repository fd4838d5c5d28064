"""What a subscription holds besides its state: credits, and the terms it bought.

A trial and an Enterprise period keep the terms they were bought under (price,
credits, the edition's rank and features, the trial's exclusions) until they
end, whatever the catalog says later: the ledger carries them, so a record
never needs the catalog it was bought from to still say the same thing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import attrs

from lifecycle.catalog import Edition, TrialPackage
from lifecycle.money import MONEY, ZERO
from lifecycle.states import ENTERPRISE, ENTERPRISE_ACTIVE, TRIAL, State
from lifecycle.values import Transition

HOLDING = frozenset({TRIAL, ENTERPRISE_ACTIVE})
"""The states that hold credits."""

END_OF_TIME = datetime.max.replace(tzinfo=UTC)


@attrs.frozen
class Grant:
    """Add-on credits bought with one order; valid until the period ends (Q6)."""

    package: str
    order_id: str
    credits: Decimal


@attrs.frozen
class Ledger:
    """Credits and the terms in force.

    ``credits`` are the trial's credits in a trial and the base quota under
    Enterprise; outside those states every credit is zero. ``trial`` and
    ``edition`` are the terms the current or last trial and period were bought
    under, kept after they end for the customer's information; the last
    trial's purchase time is kept for ever, for ``trial.once_per_month``.
    """

    credits: Decimal = ZERO
    addons: tuple[Grant, ...] = ()
    trial: TrialPackage | None = None
    trial_end: datetime | None = None
    last_trial_at: datetime | None = None
    edition: Edition | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None

    @property
    def remaining(self) -> Decimal:
        total = self.credits
        for grant in self.addons:
            total = MONEY.add(total, grant.credits)
        return total

    def drawn(self, credits: Decimal, left: tuple[Decimal, ...]) -> Ledger:
        """This ledger with ``credits`` of base quota left and ``left`` in each add-on
        (an add-on with nothing left is dropped), terms kept.

        Built positionally: ``attrs.evolve`` costs several times more, and this
        runs on every usage that draws credits.
        """
        addons = self.addons
        if addons:
            addons = tuple(
                grant
                if credits_left is grant.credits
                else Grant(grant.package, grant.order_id, credits_left)
                for grant, credits_left in zip(addons, left, strict=True)
                if credits_left
            )
        return Ledger(
            credits,
            addons,
            self.trial,
            self.trial_end,
            self.last_trial_at,
            self.edition,
            self.period_start,
            self.period_end,
        )

    def emptied(self) -> Ledger:
        """This ledger with every credit gone (forfeited or lapsed), terms kept."""
        return Ledger(
            ZERO,
            (),
            self.trial,
            self.trial_end,
            self.last_trial_at,
            self.edition,
            self.period_start,
            self.period_end,
        )


EMPTY = Ledger()


def due(state: State, ledger: Ledger, until: datetime) -> tuple[str, datetime] | None:
    """The timed transition due by ``until`` (at most one can be), and its instant."""
    if state is TRIAL and ledger.trial_end is not None and ledger.trial_end <= until:
        return "trial_ended", ledger.trial_end
    if state in ENTERPRISE and ledger.period_end is not None and ledger.period_end <= until:
        return "period_ended", ledger.period_end
    return None


def credit_change(entry: Transition) -> Decimal:
    """How much ``entry`` changed the credit balance, from what its details record."""
    details = entry.details
    change = Decimal(details.get("credits", "0"))
    for taken in ("forfeited", "lapsed"):
        if taken in details:
            change = MONEY.subtract(change, Decimal(details[taken]))
    return change


def edition_terms(entry: Transition) -> Edition:
    """The edition terms a ``subscribe`` history entry bought."""
    details = entry.details
    return Edition(
        name=details["edition"],
        rank=int(details["rank"]),
        price=Decimal(details["amount"]),
        credits=Decimal(details["credits"]),
        features=names(details["features"]),
    )


def trial_terms(entry: Transition, validity_months: int) -> TrialPackage:
    """The trial terms a ``purchase_trial`` history entry bought."""
    details = entry.details
    return TrialPackage(
        price=Decimal(details["amount"]),
        credits=Decimal(details["credits"]),
        validity_months=validity_months,
        excluded_features=names(details["excluded_features"]),
    )


def names(joined: str) -> frozenset[str]:
    """A set of catalog names from a history detail (comma-separated)."""
    return frozenset(name for name in joined.split(",") if name)


def joined(values: frozenset[str]) -> str:
    """A set of catalog names as a history detail: sorted, comma-separated."""
    return ",".join(sorted(values))
