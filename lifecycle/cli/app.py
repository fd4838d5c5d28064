"""The ``lifecycle`` command's group, its console, and ``main``.

Each command is a module of this package (``diagrams``, ``rules``,
``simulate``, ``catalog``, ``worker``, ``journey``); they register on ``cli``
when imported.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """The IMS subscription lifecycle: diagrams, rules, a time-travel simulator,
    catalog versions, the store's worker, a customer's journey."""
    ctx.ensure_object(dict)


def console(ctx: click.Context) -> Console:
    found = ctx.obj.get("console")
    if isinstance(found, Console):
        return found
    made = Console()
    # NOTE: piped to a file or a CI log, a timeline wrapped at 80 columns is
    # unreadable; a terminal keeps its own width.
    return made if made.is_terminal else Console(width=160)


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
