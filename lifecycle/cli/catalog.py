"""``lifecycle catalog check`` and ``lifecycle catalog diff``: catalog versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from lifecycle.catalog import Catalog, CatalogVersions, load_catalog
from lifecycle.catalog.diff import diff, when
from lifecycle.cli.app import cli, console
from lifecycle.errors import CatalogError, LifecycleError


@cli.group()
def catalog() -> None:
    """Validate catalogs and say what a new version changes."""


def _load(path: Path) -> Catalog | CatalogVersions:
    try:
        return load_catalog(path)
    except CatalogError as error:
        raise click.ClickException(str(error)) from None


@catalog.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.pass_context
def check(ctx: click.Context, path: Path) -> int:
    """Validate PATH (a TOML file, or a directory of versions); list the versions."""
    screen = console(ctx)
    try:
        loaded = load_catalog(path)
    except CatalogError as error:
        screen.print(f"[red]invalid:[/red] {error}", highlight=False)
        return 1
    table = Table(title=f"{path}: {len(loaded.versions)} version(s), valid")
    for column in ("version", "in force from", "editions", "add-ons", "meters", "file"):
        table.add_column(column)
    for version in loaded.versions:
        table.add_row(
            version.version or "—",
            when(version),
            ", ".join(version.editions),
            ", ".join(version.addons) or "—",
            ", ".join(version.meters),
            version.source or "",
        )
    screen.print(table)
    return 0


@catalog.command(name="diff")
@click.argument("old", type=click.Path(exists=True, path_type=Path))
@click.argument("new", type=click.Path(exists=True, path_type=Path))
@click.option("--db", metavar="URL", help="count the customers each change affects in this store")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.pass_context
def diff_command(ctx: click.Context, old: Path, new: Path, db: str | None, as_json: bool) -> int:
    """Each change from OLD to NEW and its effect. OLD and NEW are catalog files, or
    directories of versions (the latest of OLD against each later one of NEW)."""
    screen = console(ctx)
    before, after = _load(old), _load(new)
    pairs = _pairs(before, after)
    store = None
    if db is not None:
        from lifecycle.store import SqlStore
        from lifecycle.store.holdings import held

        try:
            store = SqlStore(db, catalog=after)
        except LifecycleError as error:
            raise click.ClickException(str(error)) from None
    report: list[dict[str, Any]] = []
    allowed = True
    for first, second in pairs:
        changes = diff(first, second)
        rows = []
        for change in changes:
            effect = change.effect
            if store is not None and change.held is not None and second.effective_from:
                try:
                    kind, name = change.held
                    count = held(store, kind, name, second.effective_from)  # type: ignore[arg-type]
                except LifecycleError as error:
                    raise click.ClickException(str(error)) from None
                effect += f" ({count} held now)"
            rows.append({**change.to_dict(), "effect": effect})
            allowed &= change.allowed
        report.append({"from": first.version, "to": second.version, "changes": rows})
    if store is not None:
        store.close()
    if as_json:
        screen.print_json(json.dumps(report))
        return 0 if allowed else 1
    for (first, second), part in zip(pairs, report, strict=True):
        screen.print(
            f"[bold]{first.version or old} → {second.version or new}[/bold], "
            f"in force from {when(second)}",
            highlight=False,
        )
        if not part["changes"]:
            screen.print("  no change", highlight=False)
        for row in part["changes"]:
            mark = "[red]✗[/red]" if not row["allowed"] else "•"
            screen.print(f"  {mark} {row['what']}: {row['effect']}", highlight=False)
    return 0 if allowed else 1


def _pairs(
    before: Catalog | CatalogVersions, after: Catalog | CatalogVersions
) -> list[tuple[Catalog, Catalog]]:
    """The versions to compare: OLD's latest with NEW's first that follows it, and
    so on through NEW (a directory that grew by one version gives one pair)."""
    start = before.versions[-1]
    later = [v for v in after.versions if v.version != start.version]
    if start.effective_from is not None:
        later = [
            v for v in later if v.effective_from is None or v.effective_from > start.effective_from
        ]
    if not later:
        later = [after.versions[-1]]
    pairs, previous = [], start
    for version in later:
        pairs.append((previous, version))
        previous = version
    return pairs
