"""``lifecycle simulate``: replay a scenario on a simulated clock."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import click
from rich.table import Table

from lifecycle import scenario as scenarios
from lifecycle.cli.app import cli, console


@cli.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--catalog",
    type=click.Path(path_type=Path),
    help="A catalog TOML, or a directory of catalog versions, instead of the scenario's own.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the timeline as JSON.")
@click.pass_context
def simulate(ctx: click.Context, scenario: Path, catalog: Path | None, as_json: bool) -> int:
    """Replay SCENARIO on a simulated clock and print its timeline.

    Exit 0 when every expectation holds, 1 when one fails, 2 for a bad file.
    """
    screen = console(ctx)
    try:
        loaded = scenarios.load(scenario, catalog)
    except scenarios.ScenarioError as error:
        click.echo(str(error), err=True)
        return 2
    rows = scenarios.run(loaded)
    failed = sum(1 for row in rows if row.failures)
    zone = loaded.catalog.zone
    if as_json:
        payload = {
            "scenario": str(scenario),
            "customer": loaded.customer,
            "timezone": loaded.catalog.timezone,
            "currency": loaded.catalog.currency,
            "rows": [row.as_json(zone) for row in rows],
            "failed": failed,
        }
        screen.print_json(json.dumps(payload))
    else:
        screen.print(_timeline(loaded, rows))
        for row in rows:
            for failure in row.failures:
                screen.print(f"[red]step {row.step}: {failure}[/red]", highlight=False)
        verdict = (
            f"[red]{failed} step(s) failed their expectations[/red]"
            if failed
            else "[green]every expectation holds[/green]"
        )
        screen.print(verdict)
    return 1 if failed else 0


def _timeline(loaded: scenarios.Scenario, rows: Sequence[scenarios.Row]) -> Table:
    zone = loaded.catalog.zone
    table = Table(
        title=f"{loaded.customer} — {loaded.source} ({loaded.catalog.timezone})",
        show_lines=False,
    )
    table.add_column("#", justify="right")
    table.add_column("local time", no_wrap=True)
    table.add_column("operation")
    table.add_column("state")
    table.add_column(f"amount {loaded.catalog.currency}", justify="right")
    table.add_column("quota / add-ons / payg / denied")
    table.add_column("rule, refusal or note")
    table.add_column("check")
    for row in rows:
        split = (
            " / ".join(str(row.split[k]) for k in ("quota", "addons", "payg", "denied"))
            if row.split
            else ""
        )
        if row.code:
            note = f"[red]refused: {row.code}[/red]"
            if row.faq:
                note += f" ({row.faq}: {row.question})"
        elif row.step is None:
            note = "[dim](auto)[/dim]"
        else:
            note = " ".join(part for part in (row.rule or "", row.detail) if part)
        if row.failures:
            check = "[red]✗ " + "; ".join(row.failures) + "[/red]"
        else:
            check = "[green]✓[/green]" if row.step is not None else ""
        states = (
            row.after.value
            if row.before is row.after
            else f"{row.before.value} → {row.after.value}"
        )
        table.add_row(
            "" if row.step is None else str(row.step),
            f"{row.at.astimezone(zone):%Y-%m-%d %H:%M}",
            row.operation,
            states,
            "" if row.amount is None else str(row.amount),
            split,
            note,
            check,
        )
    return table
