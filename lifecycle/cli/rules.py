"""``lifecycle rules``: the rules reference in the terminal, or as JSON."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from lifecycle import diagrams as diagram_files
from lifecycle.cli.app import cli, console
from lifecycle.rules import RULES


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.pass_context
def rules(ctx: click.Context, as_json: bool) -> int:
    """Print the rules reference: code, FAQ question, summary, where it acts."""
    screen = console(ctx)
    reference: list[dict[str, Any]] = [
        {
            "code": rule.code,
            "faq": list(rule.faqs),
            "questions": list(rule.questions),
            "summary": rule.summary,
            "acts": diagram_files.rule_acts(rule),
        }
        for rule in RULES
    ]
    if as_json:
        screen.print_json(json.dumps(reference))
        return 0
    table = Table(title="lifecycle rules", show_lines=True)
    table.add_column("code", style="bold", no_wrap=True)
    table.add_column("FAQ")
    table.add_column("rule")
    table.add_column("acts")
    for entry in reference:
        faq = "\n".join(f"{n}. {q}" for n, q in zip(entry["faq"], entry["questions"], strict=True))
        table.add_row(entry["code"], faq or "—", entry["summary"], "\n".join(entry["acts"]))
    screen.print(table)
    return 0
