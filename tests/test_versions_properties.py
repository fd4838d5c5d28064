"""Property: under any catalog versions, a subscription's results are the same kept
in memory or saved and loaded between every step, and what it bought keeps the
terms it was bought under."""

from __future__ import annotations

import contextlib
import copy
import json
from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import lifecycle as lc
from tests.conftest import D, catalog_data, sh

CHANGES = st.sampled_from(
    [
        lambda c: c["editions"]["standard"].update(price="3500.00", credits="10000"),
        lambda c: c["editions"]["basic"].update(credits="1500"),
        lambda c: c["meters"]["media_processing"].update(credit_rate="2", payg_price="0.70"),
        lambda c: c["editions"]["standard"]["features"].remove("advanced_video_clip_effects"),
        lambda c: c["editions"].pop("professional"),
        lambda c: c["addons"].pop("boost-500"),
        lambda c: c["meters"].pop("advanced_effects"),
        lambda c: c["trial"].update(price="25.00", credits="150"),
        lambda c: c["editions"]["standard"].update(rank=0),
    ]
)


@st.composite
def catalogs(draw: st.DrawFn) -> lc.CatalogVersions:
    made = [catalog_data()]
    for month in sorted(draw(st.sets(st.integers(2, 11), min_size=1, max_size=3))):
        data = copy.deepcopy(made[-1])
        data["version"], data["effective_from"] = f"2026-{month:02d}", datetime(2026, month, 1)
        for change in draw(st.lists(CHANGES, min_size=1, max_size=2)):
            with contextlib.suppress(KeyError, ValueError):
                change(data)  # a KeyError: removed by an earlier version already
        made.append(data)
    return lc.CatalogVersions([lc.Catalog.from_dict(data) for data in made])


OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(
            ["trial", "subscribe", "addon", "usage", "effects", "unsubscribe", "retry"]
        ),
        st.sampled_from(["basic", "standard", "professional"]),
        st.integers(0, 60 * 24 * 40),
    ),
    min_size=1,
    max_size=25,
)


def _step(sub: lc.Subscription, op: tuple[str, str, int], n: int, at: datetime) -> Any:
    kind, edition, _ = op
    calls = {
        "trial": lambda: sub.purchase_trial(order_id=f"o-{n}", at=at),
        "subscribe": lambda: sub.subscribe(edition, order_id=f"o-{n}", term_months=2, at=at),
        "addon": lambda: sub.buy_addon("boost-500", order_id=f"o-{n}", at=at),
        "usage": lambda: sub.record_usage("media_processing", D(700), f"u-{n}", at),
        "effects": lambda: sub.record_usage("advanced_effects", D(3), f"u-{n}", at),
        "unsubscribe": lambda: sub.unsubscribe(request_id=f"r-{n}", at=at),
        "retry": lambda: sub.record_usage("media_processing", D(700), "u-0", at),
    }
    try:
        return calls[kind]()
    except lc.LifecycleError as error:
        return ("refused", error.code)


def _pinned(sub: lc.Subscription) -> tuple[Any, ...]:
    ledger = sub._ledger
    return (ledger.edition, ledger.period_start, ledger.trial, ledger.last_trial_at)


@settings(max_examples=80)
@given(catalogs(), OPERATIONS)
def test_memory_and_saved_records_agree_and_terms_stay_pinned(
    versions: lc.CatalogVersions, operations: list[tuple[str, str, int]]
) -> None:
    """The same operations on a subscription kept in memory and on one saved and
    loaded before every step give the same results; a period's or trial's terms,
    once bought, never change while it is the current one."""
    kept = lc.Subscription.new("c", catalog=versions)
    saved = lc.Subscription.new("c", catalog=versions)
    at = sh(2026, 1, 5)
    for n, op in enumerate(operations):
        at += timedelta(minutes=op[2])
        saved = lc.Subscription.from_record(
            json.loads(json.dumps(saved.to_record())), catalog=versions
        )
        before = _pinned(kept)
        ours, theirs = _step(kept, op, n, at), _step(saved, op, n, at)
        assert ours == theirs
        after = _pinned(kept)
        if after[1] == before[1]:
            assert after[0] == before[0]  # the same period: the same terms
        if after[3] == before[3]:
            assert after[2] == before[2]  # the same trial: the same terms
        assert kept.to_record() == saved.to_record()
    assert kept.history == saved.history
