"""``lifecycle diagrams``: the state diagrams and rules reference, from the table."""

from __future__ import annotations

from pathlib import Path

import click

from lifecycle import diagrams as diagram_files
from lifecycle.cli.app import cli, console


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
@click.option(
    "--docs",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("docs"),
    show_default=True,
    help="A directory whose Markdown files' generated blocks to keep current too.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 naming each stale file.")
@click.pass_context
def diagrams(ctx: click.Context, out: Path, readme: Path, docs: Path, check: bool) -> int:
    """Generate the state diagrams and the rules reference from the engine's table.

    Also fills each ``<!-- generated:NAME -->`` block (diagram, states,
    transitions, rules, problems) of the README and of the docs' Markdown.
    """
    screen = console(ctx)
    stale = diagram_files.stale(out)
    pages = [readme] if readme.exists() else []
    if docs.is_dir():
        pages += sorted(p for p in docs.rglob("*.md") if "_build" not in p.parts)
    updates = {}
    for page in pages:
        text = page.read_text(encoding="utf-8")
        current = diagram_files.fill_blocks(text)
        if current != text:
            stale.append((page, "its generated blocks differ from the table"))
            updates[page] = current
    if check:
        for path, why in stale:
            screen.print(f"stale: {path}: {why}", highlight=False)
        if not stale:
            screen.print(f"up to date: {out}/, {readme} and {docs}/", highlight=False)
        return 1 if stale else 0
    for path in diagram_files.write(out):
        screen.print(f"wrote {path}", highlight=False)
    for page, current in updates.items():
        page.write_text(current, encoding="utf-8")
        screen.print(f"updated {page}", highlight=False)
    return 0
