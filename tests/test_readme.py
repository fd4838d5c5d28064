"""The README stays true: its tables match the code, its commands match CI."""

import re
from pathlib import Path

import lifecycle as lc
from lifecycle.rules import RULES

README = (Path(__file__).parent.parent / "README.md").read_text("utf-8")


def test_rules_table_matches_the_rule_objects() -> None:
    """Every rule appears in the README's table with its FAQ and summary, in order."""
    block = README.split("<!-- generated:rules -->")[1].split("<!-- /generated:rules -->")[0]
    rows = re.findall(r"^\| `([a-z_.]+)` \| ([^|]+) \| ([^|]+) \|$", block, re.MULTILINE)
    table = [(code, faq.strip(), summary.strip()) for code, faq, summary in rows]
    assert [(rule.code, rule.faq or "—", rule.summary) for rule in RULES] == table


def test_states_table_matches_the_enum() -> None:
    """Every state appears in the README's states table with its value."""
    rows = re.findall(r"^\| `State\.([A-Z_]+)` \| `([a-z-]+)` \|", README, re.MULTILINE)
    assert [(state.name, state.value) for state in lc.State] == rows


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run reads the test command out of the README, so the two cannot drift."""
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text("utf-8")
    assert "<!-- test-command -->" in README
    assert "test-command" in ci
