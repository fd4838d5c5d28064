"""``lifecycle journey``: one customer's path drawn over the lifecycle."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from rich.table import Table

from lifecycle import diagrams
from lifecycle.catalog import AnyCatalog, default_catalog, load_catalog
from lifecycle.cli.app import cli, console
from lifecycle.cli.worker import sync_url
from lifecycle.errors import LifecycleError, shown
from lifecycle.journey import Journey, journey, overlay
from lifecycle.states import EDGES
from lifecycle.subscription import Subscription
from lifecycle.values import Transition

AUTOMATIC = frozenset(edge.trigger for edge in EDGES if edge.automatic)


@cli.command(name="journey")
@click.argument("record", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--db", "url", metavar="URL", help="Read the customer from this store instead.")
@click.option("--customer", metavar="ID", help="The customer to read with --db.")
@click.option(
    "--at",
    "at_text",
    metavar="TIME",
    help="ISO 8601; without an offset, a local time in the catalog's zone (default: now).",
)
@click.option(
    "--catalog",
    type=click.Path(exists=True, path_type=Path),
    help="A catalog file or directory of versions (default: the shipped catalog).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory for journey-<customer>.mmd and .svg.",
)
@click.pass_context
def journey_command(
    ctx: click.Context,
    record: Path | None,
    url: str | None,
    customer: str | None,
    at_text: str | None,
    catalog: Path | None,
    out: Path,
) -> int:
    """Draw a customer's path through the lifecycle and print its timeline.

    RECORD is a JSON file of ``to_record()``; or give --db URL --customer ID.
    The drawing (Mermaid and SVG) highlights each transition taken, noted with
    its count and dates, and marks the state at --at. Exit 2 for bad input.
    """
    screen = console(ctx)
    try:
        chosen = load_catalog(catalog) if catalog else default_catalog()
        sub = _subscription(record, url, customer, chosen)
        at = _instant(at_text, chosen)
        path = journey(sub, at)
    except LifecycleError as error:
        raise _BadInput(str(error)) from None
    drawn = overlay(path, chosen.zone)
    graph = diagrams.extract()
    stem = "journey-" + re.sub(r"[^A-Za-z0-9._-]", "_", path.customer_id)
    out.mkdir(parents=True, exist_ok=True)
    mermaid_path, svg_path = out / f"{stem}.mmd", out / f"{stem}.svg"
    mermaid_path.write_text(diagrams.mermaid(graph, drawn), encoding="utf-8")
    try:
        svg_path.write_text(diagrams.svg(diagrams.dot(graph, drawn)), encoding="utf-8")
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None
    screen.print(_timeline(path, chosen))
    screen.print(f"wrote {mermaid_path} and {svg_path}", highlight=False)
    return 0


class _BadInput(click.ClickException):
    exit_code = 2


def _subscription(
    record: Path | None, url: str | None, customer: str | None, catalog: AnyCatalog
) -> Subscription:
    if (record is None) == (url is None):
        raise _BadInput("give either RECORD or --db URL --customer ID")
    if url is not None:
        if customer is None:
            raise _BadInput("--db needs --customer ID")
        return _stored(url, customer, catalog)
    assert record is not None
    try:
        data: Any = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise _BadInput(f"{record}: not a JSON record ({error})") from None
    if not isinstance(data, dict):
        raise _BadInput(f"{record}: a record is a JSON object, from to_record()")
    try:
        return Subscription.from_record(data, catalog=catalog)
    except LifecycleError as error:
        raise _BadInput(f"{record}: {error}") from None


def _stored(url: str, customer: str, catalog: AnyCatalog) -> Subscription:
    from lifecycle.store import SqlStore

    store = SqlStore(sync_url(url), catalog=catalog)
    try:
        snapshot = store.load(customer)
        if snapshot is None:
            raise _BadInput(f"no customer {shown(customer)} in {store}")
        return Subscription.from_record(snapshot.to_record(), catalog=catalog)
    finally:
        store.close()


def _instant(text: str | None, catalog: AnyCatalog) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise _BadInput(f"--at: {shown(text)} is not an ISO 8601 time") from None
    return found if found.tzinfo is not None else found.replace(tzinfo=catalog.zone)


def _timeline(path: Journey, catalog: AnyCatalog) -> Table:
    zone = catalog.zone
    local = path.at.astimezone(zone)
    table = Table(
        title=f"{path.customer_id}: {path.current.value} at {local:%Y-%m-%d %H:%M} "
        f"({catalog.timezone})"
    )
    table.add_column("#", justify="right")
    table.add_column("local time", no_wrap=True)
    table.add_column("operation")
    table.add_column("state")
    table.add_column("key")
    table.add_column("details")
    for step in path.steps:
        late = (
            f" (asked {step.requested_at.astimezone(zone):%H:%M})"
            if step.requested_at != step.at
            else ""
        )
        automatic = step.trigger in AUTOMATIC
        table.add_row(
            str(step.seq),
            f"{step.at.astimezone(zone):%Y-%m-%d %H:%M}{late}",
            f"[dim](auto)[/dim] {step.trigger}" if automatic else step.trigger,
            f"{step.source.value} → {step.dest.value}",
            step.key or "",
            _details(step, zone),
        )
    return table


SHOWN = ("edition", "package", "amount", "credits", "lapsed", "forfeited", "trial_end",
         "period_end")  # fmt: skip
"""The details a timeline shows, in this order (the record keeps them all)."""


def _details(step: Transition, zone: ZoneInfo) -> str:
    parts = []
    for name in SHOWN:
        value = step.details.get(name)
        if value is None or (name == "forfeited" and value in ("0", "0.00")):
            continue
        if name.endswith("_end"):
            with contextlib.suppress(ValueError):  # shown as written if not a time
                value = f"{datetime.fromisoformat(value).astimezone(zone):%Y-%m-%d %H:%M}"
        parts.append(f"{name.replace('_', ' ')} {value}")
    return ", ".join(parts)
