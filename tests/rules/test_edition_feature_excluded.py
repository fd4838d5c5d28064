"""edition.feature_excluded (Q3): an edition covers only the features its catalog
entry lists (our rule where the FAQ defers to the price list)."""

from typing import Any

import pytest

import lifecycle as lc
from tests.conftest import D, sh


@pytest.fixture
def narrow() -> lc.Catalog:
    """A catalog whose basic edition lacks the advanced effects package."""
    data: dict[str, Any] = {
        "currency": "CNY",
        "trial": {"price": "20.00", "credits": "100"},
        "editions": {
            "basic": {"rank": 1, "price": "10", "credits": "100", "features": ["media"]},
            "pro": {"rank": 2, "price": "50", "credits": "500", "features": ["media", "fx"]},
        },
        "meters": {
            "media": {"feature": "media", "payg_price": "1"},
            "fx": {"feature": "fx", "payg_price": "2"},
        },
    }
    return lc.Catalog.from_dict(data)


def test_feature_in_edition_allowed(narrow: lc.Catalog) -> None:
    """The pro edition lists fx, so its credits pay for it."""
    sub = lc.Subscription.new("c", catalog=narrow)
    sub.subscribe("pro", order_id="o-1", at=sh(2026, 3, 1))
    assert lc.Decision(True, "credits", None) == sub.authorize("fx", at=sh(2026, 3, 1))


def test_feature_not_in_edition_denied(narrow: lc.Catalog) -> None:
    """The basic edition does not list fx: denied, not silently billed."""
    sub = lc.Subscription.new("c", catalog=narrow)
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    decision = sub.authorize("fx", at=sh(2026, 3, 1))
    assert lc.Decision(False, "denied", "edition.feature_excluded") == decision
    s = sub.record_usage("fx", D("2"), usage_id="u-1", at=sh(2026, 3, 1))
    assert (D("2"), "edition.feature_excluded") == (s.denied, s.rule)
    assert D("100") == sub.remaining_credits(sh(2026, 3, 1))
