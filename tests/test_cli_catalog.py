"""`lifecycle catalog check` and `lifecycle catalog diff`: every change said in words,
with its effect, and (with --db) how many customers hold what it changes."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from lifecycle.cli import main
from lifecycle.store import SqlStore
from tests.conftest import catalog_data, sh

EXAMPLES = Path(__file__).parents[1] / "examples" / "catalog-versions"


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(args), console=Console(file=out, width=300))
    return code, out.getvalue()


def test_check_lists_the_versions_of_a_directory() -> None:
    """A valid directory: exit 0 and each version with the instant it comes into force."""
    code, out = run("catalog", "check", str(EXAMPLES))
    assert 0 == code
    assert "2026-01" in out
    assert "2026-07" in out
    assert "2026-07-01 00:00 (Asia/Shanghai)" in out


def test_check_names_what_is_wrong(tmp_path: Path) -> None:
    """An invalid version: exit 1 and the key at fault."""
    bad = tmp_path / "bad.toml"
    bad.write_text(
        (EXAMPLES / "2026-07.toml").read_text().replace('currency = "CNY"', 'currency = ""')
    )
    code, out = run("catalog", "check", str(bad))
    assert 1 == code
    assert "currency" in out


def test_diff_says_each_change_and_its_effect() -> None:
    """From the shipped version to July's: each change, with who it is for."""
    code, out = run("catalog", "diff", str(EXAMPLES / "2026-01.toml"), str(EXAMPLES))
    assert 0 == code
    lines = [line.strip() for line in out.splitlines()]
    assert any(
        line.startswith("• edition standard: price CNY 3000.00 → CNY 3500.00: new purchases only")
        for line in lines
    )
    assert any(
        "add-on boost-500 removed: no longer sold from 2026-07-01 00:00" in line for line in lines
    )
    assert any(
        "meter media_processing: pay-as-you-go price CNY 0.50 → CNY 0.60: everyone's usage "
        "from 2026-07-01 00:00" in line
        for line in lines
    )


def test_diff_counts_the_customers_holding_what_changes(tmp_path: Path) -> None:
    """With --db, a removal or a change to an edition or add-on says how many customers
    hold it at the new version's instant."""
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    store = SqlStore(url)
    store.create_schema()
    for n in range(3):
        with store.edit(f"c-{n}") as sub:
            sub.subscribe("standard", order_id="o-1", at=sh(2026, 6, 1))
            if n:
                sub.buy_addon("boost-500", order_id="o-2", at=sh(2026, 6, 2))
    with store.edit("short") as sub:
        sub.subscribe("standard", order_id="o-1", term_months=1, at=sh(2026, 1, 1))
    store.close()
    code, out = run(
        "catalog", "diff", str(EXAMPLES / "2026-01.toml"), str(EXAMPLES), "--db", url, "--json"
    )
    assert 0 == code
    [step] = json.loads(out)
    effects = {change["what"]: change["effect"] for change in step["changes"]}
    assert effects["edition standard: credits 8000 → 10000"].endswith("(3 held now)")
    assert effects["add-on boost-500 removed"].endswith("(2 held now)")


def test_diff_refuses_what_versions_may_not_change(tmp_path: Path) -> None:
    """A new version in another currency is marked not allowed, and the exit is 1."""
    other = tmp_path / "usd.toml"
    other.write_text(
        (EXAMPLES / "2026-07.toml").read_text().replace('currency = "CNY"', 'currency = "USD"')
    )
    code, out = run("catalog", "diff", str(EXAMPLES / "2026-01.toml"), str(other))
    assert 1 == code
    assert "not allowed between versions" in out
    assert catalog_data()["currency"] == "CNY"


def test_the_readme_shows_what_the_diff_prints() -> None:
    """The diff the README shows is the diff the command prints."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("$ lifecycle catalog diff examples/catalog-versions/2026-01.toml")[1]
    shown = block.split("```")[0].splitlines()[1:]
    code, out = run("catalog", "diff", str(EXAMPLES / "2026-01.toml"), str(EXAMPLES))
    assert 0 == code
    printed = [line.replace(str(EXAMPLES / "2026-01.toml"), "") for line in out.splitlines()]
    assert [line.rstrip() for line in shown if line.strip()] == [
        line.rstrip() for line in printed if line.strip()
    ]
