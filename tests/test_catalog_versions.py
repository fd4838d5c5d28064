"""Catalog versions: each change has the effect it states, for a customer who bought
before the new version and one who bought after, across the boundary, through trial
ends, period ends, sweeps, retries, and round trips through the record and the store.

Version 2026-01 is the shipped catalog, in force from 1 January 2026; version
2026-07 makes one change and is in force from 1 July 2026 00:00 in Shanghai.
"before" buys on 15 June, "after" on 15 July.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import lifecycle as lc
from lifecycle.store import SqlStore
from tests.conftest import D, catalog_data, sh

BOUNDARY = sh(2026, 7, 1, 0)
BEFORE, AFTER = sh(2026, 6, 15), sh(2026, 7, 15)


def versions(change: Callable[[dict[str, Any]], None]) -> lc.CatalogVersions:
    first = catalog_data()
    second = copy.deepcopy(first)
    second["version"], second["effective_from"] = "2026-07", datetime(2026, 7, 1, 0, 0)
    change(second)
    return lc.CatalogVersions([lc.Catalog.from_dict(first), lc.Catalog.from_dict(second)])


class Life:
    """One customer's life under catalog versions, kept in memory, reloaded from its
    record before every step, or kept in a store (an edit per step, swept)."""

    def __init__(self, mode: str, catalog: lc.CatalogVersions, customer: str, url: str) -> None:
        self.mode, self.catalog, self.customer = mode, catalog, customer
        self.sub = lc.Subscription.new(customer, catalog=catalog)
        self.store = SqlStore(url, catalog=catalog) if mode == "store" else None
        if self.store is not None:
            self.store.create_schema()

    def do(self, step: Callable[[lc.Subscription], Any]) -> Any:
        if self.store is not None:
            with self.store.edit(self.customer) as sub:
                return step(sub)
        if self.mode == "record":
            record = json.loads(json.dumps(self.sub.to_record()))
            self.sub = lc.Subscription.from_record(record, catalog=self.catalog)
        return step(self.sub)

    def read(self) -> lc.Subscription:
        if self.store is not None:
            loaded = self.store.load(self.customer)
            assert loaded is not None
            return loaded
        return self.sub

    def sweep(self, now: datetime) -> None:
        if self.store is not None:
            assert not self.store.sweep(now).failed
        else:
            self.do(lambda sub: sub.advance(now))

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


@pytest.fixture(params=["memory", "record", "store"])
def life(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Life]]:
    made: list[Life] = []

    def make(catalog: lc.CatalogVersions, customer: str = "c") -> Life:
        url = f"sqlite:///{tmp_path / 'versions.db'}"
        made.append(Life(request.param, catalog, customer, url))
        return made[-1]

    yield make
    for one in made:
        one.close()


def test_an_edition_price_change_is_for_new_purchases(life: Callable[..., Life]) -> None:
    """Standard costs 3500 from July: bought in June it cost 3000 (and a retry of that
    order in July still answers 3000), bought in July 3500."""
    catalog = versions(lambda c: c["editions"]["standard"].update(price="3500.00"))
    before, after = life(catalog, "before"), life(catalog, "after")
    paid = before.do(lambda s: s.subscribe("standard", order_id="o-1", at=BEFORE))
    again = before.do(lambda s: s.subscribe("standard", order_id="o-1", at=AFTER))
    later = after.do(lambda s: s.subscribe("standard", order_id="o-1", at=AFTER))
    assert (D("3000.00"), D("3000.00"), True, D("3500.00")) == (
        paid.amount,
        again.amount,
        again.replayed,
        later.amount,
    )


def test_an_edition_credits_change_keeps_existing_periods(life: Callable[..., Life]) -> None:
    """Standard grants 10000 credits from July: June's subscriber keeps its 8000 through
    July and until its period ends; July's gets 10000."""
    catalog = versions(lambda c: c["editions"]["standard"].update(credits="10000"))
    before, after = life(catalog, "before"), life(catalog, "after")
    before.do(lambda s: s.subscribe("standard", order_id="o-1", term_months=3, at=BEFORE))
    before.do(lambda s: s.record_usage("media_processing", D(10), "u-1", sh(2026, 8, 1)))
    after.do(lambda s: s.subscribe("standard", order_id="o-1", at=AFTER))
    assert (D(7990), D(10000)) == (
        before.read().remaining_credits(sh(2026, 8, 1)),
        after.read().remaining_credits(sh(2026, 8, 1)),
    )
    before.sweep(sh(2026, 9, 16))
    assert lc.State.EXPIRED == before.read().state_at(sh(2026, 9, 16))
    assert "8000" == before.read().history[0].details["credits"]


def test_a_credit_rate_change_is_everyones_usage_from_the_instant(
    life: Callable[..., Life],
) -> None:
    """Media processing costs 2 credits a unit from July: the same subscriber's usage
    in June draws 1 a unit, its usage in July 2."""
    catalog = versions(lambda c: c["meters"]["media_processing"].update(credit_rate="2"))
    before = life(catalog)
    before.do(lambda s: s.subscribe("standard", order_id="o-1", at=BEFORE))
    june = before.do(
        lambda s: s.record_usage("media_processing", D(10), "u-1", sh(2026, 6, 30, 23, 59))
    )
    july = before.do(lambda s: s.record_usage("media_processing", D(10), "u-2", BOUNDARY))
    assert (D(10), D(20)) == (june.credits, july.credits)


def test_a_payg_price_change_is_everyones_usage_from_the_instant(
    life: Callable[..., Life],
) -> None:
    """Pay-as-you-go media processing costs 0.60 from July: overage in June is billed
    0.50 a unit, in July 0.60, for the same subscriber."""
    catalog = versions(lambda c: c["meters"]["media_processing"].update(payg_price="0.60"))
    before = life(catalog)
    before.do(lambda s: s.subscribe("basic", order_id="o-1", at=BEFORE))
    june = before.do(lambda s: s.record_usage("media_processing", D(2010), "u-1", sh(2026, 6, 20)))
    july = before.do(lambda s: s.record_usage("media_processing", D(10), "u-2", sh(2026, 7, 2)))
    assert (D(10), D("5.00"), D("6.00")) == (june.payg, june.amount, july.amount)


def test_a_features_change_keeps_what_was_bought(life: Callable[..., Life]) -> None:
    """Standard loses advanced effects from July: June's subscriber keeps them until its
    period ends; July's is refused them (edition.feature_excluded)."""

    def change(c: dict[str, Any]) -> None:
        c["editions"]["standard"]["features"].remove("advanced_video_clip_effects")

    catalog = versions(change)
    before, after = life(catalog, "before"), life(catalog, "after")
    before.do(lambda s: s.subscribe("standard", order_id="o-1", at=BEFORE))
    after.do(lambda s: s.subscribe("standard", order_id="o-1", at=AFTER))
    kept = before.do(lambda s: s.record_usage("advanced_effects", D(1), "u-1", sh(2026, 8, 1)))
    lost = after.do(lambda s: s.record_usage("advanced_effects", D(1), "u-1", sh(2026, 8, 1)))
    assert (D(1), None) == (kept.quota, kept.rule)
    assert (D(1), "edition.feature_excluded") == (lost.denied, lost.rule)
    assert before.read().authorize("advanced_video_clip_effects", sh(2026, 8, 1)).allowed
    assert not after.read().authorize("advanced_video_clip_effects", sh(2026, 8, 1)).allowed


def test_a_rank_change_keeps_the_customers_rank_the_threshold_follows(
    life: Callable[..., Life],
) -> None:
    """Standard's rank falls below Basic's from July (Real-time Conversational AI still
    needs Standard or higher): June's Basic subscriber keeps its rank 1, now above
    Standard's, so its credits pay for it in July; they did not in June."""

    def change(c: dict[str, Any]) -> None:
        c["editions"]["standard"]["rank"] = 0

    catalog = versions(change)
    before = life(catalog)
    before.do(lambda s: s.subscribe("basic", order_id="o-1", at=BEFORE))
    june = before.do(lambda s: s.record_usage("rtc_ai", D(1), "u-1", sh(2026, 6, 20)))
    july = before.do(lambda s: s.record_usage("rtc_ai", D(1), "u-2", sh(2026, 7, 2)))
    assert ("rtc_ai.standard_or_higher", D(1)) == (june.rule, june.payg)
    assert (None, D(1)) == (july.rule, july.quota)
    assert "1" == before.read().history[0].details["rank"]


def test_a_removed_add_on_is_not_sold_but_runs_to_its_end(life: Callable[..., Life]) -> None:
    """boost-500 is retired in July: bought in June its credits last until the period
    ends, a retry of that order is still answered; buying it in July is
    catalog.unknown_package naming the version."""
    catalog = versions(lambda c: c["addons"].pop("boost-500"))
    before = life(catalog)
    before.do(lambda s: s.subscribe("basic", order_id="o-1", term_months=2, at=BEFORE))
    before.do(lambda s: s.buy_addon("boost-500", order_id="o-2", at=sh(2026, 6, 20)))
    again = before.do(lambda s: s.buy_addon("boost-500", order_id="o-2", at=sh(2026, 7, 2)))
    used = before.do(lambda s: s.record_usage("media_processing", D(2100), "u-1", sh(2026, 7, 3)))
    assert (True, D(2000), D(100)) == (again.replayed, used.quota, used.addons)
    with pytest.raises(lc.InvalidInput) as info:
        before.do(lambda s: s.buy_addon("boost-500", order_id="o-3", at=sh(2026, 7, 4)))
    assert "catalog.unknown_package" == info.value.code
    assert "catalog version 2026-07" in str(info.value)


def test_a_removed_meter_refuses_new_usage_and_answers_old(life: Callable[..., Life]) -> None:
    """The advanced effects meter is removed in July: usage settled in June is answered
    with its settlement when retried in July; new usage is catalog.unknown_meter."""

    def change(c: dict[str, Any]) -> None:
        del c["meters"]["advanced_effects"]

    catalog = versions(change)
    before = life(catalog)
    before.do(lambda s: s.subscribe("standard", order_id="o-1", at=BEFORE))
    first = before.do(
        lambda s: s.record_usage("advanced_effects", D(3), "u-1", sh(2026, 6, 30, 23, 30))
    )
    again = before.do(
        lambda s: s.record_usage("advanced_effects", D(3), "u-1", sh(2026, 7, 1, 0, 10))
    )
    assert (first, True) == (again, again.replayed)
    with pytest.raises(lc.InvalidInput) as info:
        before.do(lambda s: s.record_usage("advanced_effects", D(3), "u-2", sh(2026, 7, 2)))
    assert ("catalog.unknown_meter", "meter") == (info.value.code, info.value.field)


def test_an_added_edition_is_sold_from_its_instant(life: Callable[..., Life]) -> None:
    """An edition new in July cannot be bought in June (unknown to 2026-01) and can in July."""

    def change(c: dict[str, Any]) -> None:
        c["editions"]["ultimate"] = {
            **c["editions"]["professional"],
            "rank": 9,
            "price": "20000.00",
        }

    catalog = versions(change)
    customer = life(catalog)
    with pytest.raises(lc.InvalidInput) as info:
        customer.do(lambda s: s.subscribe("ultimate", order_id="o-1", at=BEFORE))
    assert "catalog version 2026-01" in str(info.value)
    bought = customer.do(lambda s: s.subscribe("ultimate", order_id="o-2", at=AFTER))
    assert D("20000.00") == bought.amount


def test_a_removed_edition_keeps_its_subscribers_to_the_end(life: Callable[..., Life]) -> None:
    """Professional is withdrawn in July: June's subscriber uses its credits, reads,
    retries its order and expires as before; nobody can buy it in July."""
    catalog = versions(lambda c: c["editions"].pop("professional"))
    before = life(catalog, "before")
    before.do(lambda s: s.subscribe("professional", order_id="o-1", term_months=2, at=BEFORE))
    used = before.do(lambda s: s.record_usage("media_processing", D(5), "u-1", sh(2026, 7, 20)))
    again = before.do(
        lambda s: s.subscribe("professional", order_id="o-1", term_months=2, at=sh(2026, 7, 20))
    )
    assert (D(5), True) == (used.quota, again.replayed)
    assert before.read().authorize("media_processing", sh(2026, 7, 21)).allowed
    before.sweep(sh(2026, 8, 16))
    assert lc.State.EXPIRED == before.read().state_at(sh(2026, 8, 16))
    if before.store is not None:
        handed: list[str] = []
        while before.store.drain_outbox(lambda m: handed.append(m.trigger)):
            pass
        assert ["subscribe", "period_ended"] == handed
    after = life(catalog, "after")
    with pytest.raises(lc.InvalidInput) as info:
        after.do(lambda s: s.subscribe("professional", order_id="o-1", at=AFTER))
    assert "catalog.unknown_edition" == info.value.code


def test_a_trial_change_is_for_new_trials(life: Callable[..., Life]) -> None:
    """The trial costs 25 and grants 150 credits from July: a trial bought on 30 June
    keeps 100 credits past the boundary and to its end; July's costs 25."""

    def change(c: dict[str, Any]) -> None:
        c["trial"].update(price="25.00", credits="150")

    catalog = versions(change)
    before, after = life(catalog, "before"), life(catalog, "after")
    june = before.do(lambda s: s.purchase_trial(order_id="o-1", at=sh(2026, 6, 30)))
    july = after.do(lambda s: s.purchase_trial(order_id="o-1", at=AFTER))
    used = before.do(lambda s: s.record_usage("media_processing", D(120), "u-1", sh(2026, 7, 5)))
    assert (D("20.00"), D("25.00"), D(100), D(20)) == (
        june.amount,
        july.amount,
        used.quota,
        used.denied,
    )
    before.sweep(sh(2026, 8, 1))
    assert lc.State.TRIAL_EXHAUSTED == before.read().state_at(sh(2026, 8, 1))


def test_versions_must_agree_on_time_and_money() -> None:
    """Versions of another currency, zone, window or allowance, or two at one instant,
    or of one name, are CatalogError naming the key."""
    for key, value in (
        ("currency", "USD"),
        ("timezone", "Europe/Berlin"),
        ("idempotency_window_days", 8),
        ("late_arrival_minutes", 30),
        ("effective_from", datetime(2026, 1, 1, 0, 0)),
        ("version", "2026-01"),
    ):
        with pytest.raises(lc.CatalogError) as info:
            versions(lambda c, key=key, value=value: c.__setitem__(key, value))
        assert key == info.value.key


def test_a_directory_loads_as_versions_and_a_file_as_one() -> None:
    """load_catalog of the example directory gives both versions in order; of one file,
    a Catalog; the version in force is the one whose instant has come."""
    loaded = lc.load_catalog(Path(__file__).parents[1] / "examples" / "catalog-versions")
    assert isinstance(loaded, lc.CatalogVersions)
    assert ["2026-01", "2026-07"] == [v.version for v in loaded.versions]
    assert "2026-01" == loaded.at(sh(2026, 6, 30, 23, 59)).version
    assert "2026-07" == loaded.at(BOUNDARY).version
    assert "2026-01" == loaded.at(sh(2025, 1, 1)).version  # the first is in force before it
    one = lc.load_catalog(
        Path(__file__).parents[1] / "examples" / "catalog-versions" / "2026-07.toml"
    )
    assert isinstance(one, lc.Catalog)
