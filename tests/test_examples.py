"""The example the README's main command runs works and tells the journey."""

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent.parent / "examples" / "journey.py"


def test_journey_walks_every_stage(capsys: pytest.CaptureFixture[str]) -> None:
    """The journey exits 0 and passes through each state the issue names."""
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(EXAMPLE), run_name="__main__")
    assert 0 == info.value.code
    out = capsys.readouterr().out
    for state in (
        "trial",
        "trial-exhausted",
        "enterprise-active",
        "quota-exhausted-payg",
        "unsubscribed",
    ):
        assert f" {state} " in out
    assert "[quota.payg_overage]" in out
    assert "refused: purchase_trial refused" in out
