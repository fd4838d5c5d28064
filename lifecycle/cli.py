"""The ``lifecycle`` command: diagrams, the rules reference, and the simulator.

``main(argv=None) -> int`` is the whole program, callable from tests; the
console script and ``python -m lifecycle`` only hand its result to
``sys.exit``. Output goes to the ``rich`` console passed in (standard output
by default).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from lifecycle import diagrams as diagram_files
from lifecycle import scenario as scenarios
from lifecycle.rules import RULES


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """The IMS subscription lifecycle: diagrams, rules and a time-travel simulator."""
    ctx.ensure_object(dict)


def _console(ctx: click.Context) -> Console:
    console = ctx.obj.get("console")
    if isinstance(console, Console):
        return console
    console = Console()
    # NOTE: piped to a file or a CI log, a timeline wrapped at 80 columns is
    # unreadable; a terminal keeps its own width.
    return console if console.is_terminal else Console(width=160)


@cli.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("diagrams"),
    show_default=True,
    help="Directory for lifecycle.mmd, .dot, .svg and README.md.",
)
@click.option(
    "--readme",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("README.md"),
    show_default=True,
    help="A Markdown file whose generated blocks (diagram, states, rules) to keep current.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 naming each stale file.")
@click.pass_context
def diagrams(ctx: click.Context, out: Path, readme: Path, check: bool) -> int:
    """Generate the state diagrams and the rules reference from the engine's table."""
    console = _console(ctx)
    stale = diagram_files.stale(out)
    current = None
    if readme.exists():
        text = readme.read_text(encoding="utf-8")
        current = diagram_files.fill_blocks(text)
        if current != text:
            stale.append((readme, "its generated blocks differ from the table"))
    if check:
        for path, why in stale:
            console.print(f"stale: {path}: {why}", highlight=False)
        if not stale:
            console.print(f"up to date: {out}/ and {readme}", highlight=False)
        return 1 if stale else 0
    for path in diagram_files.write(out):
        console.print(f"wrote {path}", highlight=False)
    if current is not None and current != readme.read_text(encoding="utf-8"):
        readme.write_text(current, encoding="utf-8")
        console.print(f"updated {readme}", highlight=False)
    return 0


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.pass_context
def rules(ctx: click.Context, as_json: bool) -> int:
    """Print the rules reference: code, FAQ question, summary, where it acts."""
    console = _console(ctx)
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
        console.print_json(json.dumps(reference))
        return 0
    table = Table(title="lifecycle rules", show_lines=True)
    table.add_column("code", style="bold", no_wrap=True)
    table.add_column("FAQ")
    table.add_column("rule")
    table.add_column("acts")
    for entry in reference:
        faq = "\n".join(f"{n}. {q}" for n, q in zip(entry["faq"], entry["questions"], strict=True))
        table.add_row(entry["code"], faq or "—", entry["summary"], "\n".join(entry["acts"]))
    console.print(table)
    return 0


@cli.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--catalog",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A catalog TOML to use instead of the scenario's own.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the timeline as JSON.")
@click.pass_context
def simulate(ctx: click.Context, scenario: Path, catalog: Path | None, as_json: bool) -> int:
    """Replay SCENARIO on a simulated clock and print its timeline.

    Exit 0 when every expectation holds, 1 when one fails, 2 for a bad file.
    """
    console = _console(ctx)
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
        console.print_json(json.dumps(payload))
    else:
        console.print(_timeline(loaded, rows))
        for row in rows:
            for failure in row.failures:
                console.print(f"[red]step {row.step}: {failure}[/red]", highlight=False)
        verdict = (
            f"[red]{failed} step(s) failed their expectations[/red]"
            if failed
            else "[green]every expectation holds[/green]"
        )
        console.print(verdict)
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


def main(argv: Sequence[str] | None = None, *, console: Console | None = None) -> int:
    """Run the ``lifecycle`` command with ``argv`` (default: ``sys.argv[1:]``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    obj: dict[str, Any] = {"console": console}
    try:
        result = cli.main(args=args, prog_name="lifecycle", obj=obj, standalone_mode=False)
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.exceptions.Abort:
        return 1
    return result if isinstance(result, int) else 0


def run() -> None:
    """The console script's entry point."""
    sys.exit(main())
