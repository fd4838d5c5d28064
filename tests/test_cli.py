"""The `lifecycle` command: rules, simulate, exit codes, JSON."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle.cli import main
from lifecycle.rules import RULES

EXAMPLES = sorted(
    p for p in (Path(__file__).parent.parent / "examples").glob("*.toml") if "catalog" not in p.name
)


def test_rules_json_lists_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    """`lifecycle rules --json` gives every rule with its FAQ questions and where it acts."""
    assert 0 == main(["rules", "--json"])
    reference = json.loads(capsys.readouterr().out)
    assert [rule.code for rule in RULES] == [entry["code"] for entry in reference]
    q7 = next(entry for entry in reference if entry["code"] == "rtc_ai.standard_or_higher")
    assert ["Q7"] == q7["faq"]
    assert q7["questions"][0].startswith("Can I use my subscription")


def test_rules_table(capsys: pytest.CaptureFixture[str]) -> None:
    """`lifecycle rules` prints a table naming each code."""
    assert 0 == main(["rules"])
    out = capsys.readouterr().out
    for rule in RULES:
        assert rule.code in out


def test_examples_cover_every_faq_question() -> None:
    """There is one example per FAQ question, Q1 to Q7, and the journey."""
    names = [p.name for p in EXAMPLES]
    assert "journey.toml" in names
    for number in range(1, 8):
        assert any(name.startswith(f"q{number}-") for name in names)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_replays(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each example's expectations all hold."""
    assert 0 == main(["simulate", str(example)]), capsys.readouterr().out


def _scenario(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return path


TRIAL = """
customer = "c"
[[steps]]
at = 2026-03-01T10:00:00
op = "purchase_trial"
order_id = "o-1"
"""


def test_failed_expectation_exits_1_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong expectation exits 1; the row says what was expected and what happened."""
    path = _scenario(tmp_path, TRIAL + 'expect = { amount = "19.00", state = "trial" }\n')
    assert 1 == main(["simulate", str(path), "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert ["expected amount 19.00, got 20.00"] == payload["rows"][0]["failures"]
    assert 1 == payload["failed"]


def test_unexpected_refusal_and_expected_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refusal where success was expected fails; an expected one passes and names the FAQ."""
    text = (
        TRIAL
        + """
[[steps]]
at = 2026-03-02T10:00:00
op = "purchase_trial"
order_id = "o-2"
expect = { refused = "transition.not_allowed" }

[[steps]]
at = 2026-03-03T10:00:00
op = "buy_addon"
package = "boost-500"
order_id = "o-3"
expect = { state = "enterprise-active" }
"""
    )
    assert 1 == main(["simulate", str(_scenario(tmp_path, text)), "--json"])
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert ([], "transition.not_allowed") == (rows[1]["failures"], rows[1]["refused"])
    assert ["expected success, refused by addon.enterprise_only"] == rows[2]["failures"]
    assert ("Q1", "What are the scenarios for subscription add-on packages?") == (
        rows[2]["faq"],
        rows[2]["question"],
    )


def test_timed_transitions_get_rows_of_their_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial end between two steps is its own row at its own instant, before the next step."""
    text = (
        TRIAL
        + """
[[steps]]
at = "2026-05-01T08:00:00+08:00"
op = "read"
what = "credits"
expect = { credits = "0", state = "trial-exhausted" }
"""
    )
    assert 0 == main(["simulate", str(_scenario(tmp_path, text)), "--json"])
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [1, None, 2] == [row["step"] for row in rows]
    assert ("trial_ended", "2026-04-01T10:00:00+08:00") == (
        rows[1]["operation"],
        rows[1]["local_time"],
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("customer = 'c'\n", "`steps` must be a non-empty list"),
        ("steps = 3\n", "`customer` must name the customer"),
        ("customer = 'c'\n[[steps]]\nop = 'teleport'\n", "step 1: `op` must be one of"),
        (
            "customer = 'c'\n[[steps]]\nop = 'subscribe'\nat = 2026-01-01\n",
            "step 1: subscribe needs",
        ),
        ("customer = 'c'\n[[steps]]\nop = 'advance'\nat = 'soon'\n", "step 1: `at` = 'soon'"),
        (
            "customer = 'c'\n[[steps]]\nop = 'advance'\nat = 2026-01-01\nexpect = {quota='1'}\n",
            "step 1: advance cannot expect `quota`",
        ),
        (
            "customer = 'c'\n[[steps]]\nop = 'advance'\nat = 2026-01-01\ncolour = 1\n",
            "step 1: advance takes no `colour`",
        ),
        (
            "customer = 'c'\ncatalog = 'absent.toml'\n[[steps]]\nop = 'advance'\nat = 2026-01-01\n",
            "catalog:",
        ),
        ("customer = \n", "not valid TOML"),
    ],
)
def test_bad_scenario_exits_2_naming_file_and_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    """A bad scenario file exits 2 with `file: step N: what is wrong` and no traceback."""
    path = _scenario(tmp_path, text)
    assert 2 == main(["simulate", str(path)])
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: ")
    assert problem in err
    assert "Traceback" not in err


def test_python_dash_m_runs_the_same_program(tmp_path: Path) -> None:
    """`python -m lifecycle` is the command, exit code included."""
    path = _scenario(tmp_path, TRIAL + 'expect = { amount = "1" }\n')
    done = subprocess.run(
        [sys.executable, "-m", "lifecycle", "simulate", str(path)], capture_output=True, text=True
    )
    assert 1 == done.returncode
    assert "expected amount 1, got 20.00" in done.stdout


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown subcommand exits 2 with click's usage message."""
    assert 2 == main(["teleport"])
    assert "No such command" in capsys.readouterr().err
