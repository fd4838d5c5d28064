"""``lifecycle worker``: the store's scheduled work, until told to stop.

Every ``--every`` it sweeps (trial and period ends due, usage keys and
delivered messages past their time) and drains the outbox to ``--handler``,
until SIGTERM or SIGINT; then it finishes the batch in hand and exits 0.
Several workers side by side share the work safely (the store sees to it).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import re
import signal
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa

from lifecycle.cli.app import cli
from lifecycle.errors import LifecycleError, shown
from lifecycle.inputs import MAX_DRAIN_LIMIT

log = logging.getLogger("lifecycle.worker")

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
_SYNC = {"sqlite+aiosqlite": "sqlite", "postgresql+psycopg_async": "postgresql+psycopg"}


def sync_url(url: str) -> sa.URL | str:
    """``url`` with an async driver swapped for its synchronous one: the worker
    and ``journey`` take the URL an order service's async store uses."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return url  # the store names what is wrong with it
    if parsed.drivername in _SYNC:
        return parsed.set(drivername=_SYNC[parsed.drivername])
    return parsed


def every(text: str) -> timedelta:
    """``30s``, ``5m``, ``1h``, ``500ms``: how long a worker waits between rounds."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*", text)
    if not found or float(found.group(1)) <= 0:
        raise click.BadParameter(f"{shown(text)}: expected a duration such as 30s, 5m, 1h or 500ms")
    return timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])


def load_handler(spec: str) -> Callable[[Any], object]:
    """``package.module:function``, imported."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise click.BadParameter(f"{shown(spec)}: expected package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise click.BadParameter(f"{shown(spec)}: cannot import {module_name}: {error}") from None
    handler = getattr(module, name, None)
    if not callable(handler):
        raise click.BadParameter(f"{shown(spec)}: {module_name} has no function {name}")
    return handler  # type: ignore[no-any-return]


@cli.command()
@click.option("--db", "url", required=True, metavar="URL", help="The store's database URL.")
@click.option(
    "--handler",
    "spec",
    required=True,
    metavar="MODULE:FUNCTION",
    help="Receives each OutboxMessage (a coroutine function is awaited).",
)
@click.option("--every", "pause", default="30s", show_default=True, help="Time between rounds.")
@click.option(
    "--catalog",
    type=click.Path(exists=True, path_type=Path),
    help="A catalog file or directory of versions (default: the shipped catalog).",
)
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(1, MAX_DRAIN_LIMIT),
    help="Messages per claim.",
)
@click.option(
    "--once",
    is_flag=True,
    help="Run one round and exit (for cron): 0 if it did its work, 1 if it failed.",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
)
def worker(
    url: str,
    spec: str,
    pause: str,
    catalog: Path | None,
    limit: int,
    once: bool,
    log_level: str,
) -> int:
    """Sweep and drain the outbox on a schedule until SIGTERM or SIGINT."""
    from lifecycle.catalog import load_catalog
    from lifecycle.store import SqlStore

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if log_level.upper() != "DEBUG":
        # NOTE: transitions logs each state change it makes at INFO: two lines per
        # customer swept, of no use to whoever reads a worker's log.
        logging.getLogger("transitions").setLevel(logging.WARNING)
    wait = every(pause)
    handler = _blocking(load_handler(spec))
    _existing(url)
    try:
        store = SqlStore(sync_url(url), catalog=load_catalog(catalog) if catalog else None)
    except LifecycleError as error:
        raise click.ClickException(str(error)) from None
    stop = threading.Event()
    previous = {
        number: signal.signal(number, lambda *_: stop.set())
        for number in (signal.SIGTERM, signal.SIGINT)
    }
    log.info("worker started on %s, every %s", store, pause)
    done = True
    try:
        while not stop.is_set():
            done = _round(store, handler, limit, stop)
            if once:
                break
            stop.wait(wait.total_seconds())
    finally:
        for number, before in previous.items():
            signal.signal(number, before)
        store.close()
    log.info("worker stopped")
    return 1 if once and not done else 0  # NOTE: a stopped service exits 0, whatever


def _existing(url: str) -> None:
    """A SQLite file the worker is pointed at must be there: SQLite would make an
    empty one for a mistyped path, and every round would then fail."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return  # the store names what is wrong with it
    path = parsed.database or ""
    on_disk = path not in ("", ":memory:") and not path.startswith("file:")
    if parsed.get_backend_name() == "sqlite" and on_disk and not Path(path).exists():
        raise click.BadParameter(f"no such SQLite file: {path}", param_hint="'--db'")


def _round(store: Any, handler: Callable[[Any], object], limit: int, stop: threading.Event) -> bool:
    """One sweep, then drains until the outbox has nothing more (or a stop is asked:
    the batch in hand is finished first); whether it got through."""
    try:
        report = store.sweep(store._now())
        if report.applied or report.keys_deleted or report.messages_deleted:
            log.info(
                "swept: %s transitions applied, %s usage keys and %s messages deleted",
                report.applied,
                report.keys_deleted,
                report.messages_deleted,
            )
        for failure in report.failed:
            log.warning("not swept: %s: %s: %s", failure.customer_id, failure.code, failure.message)
        delivered = 0
        while not stop.is_set():
            handed = store.drain_outbox(handler, limit=limit)
            delivered += handed
            if not handed:
                break
        if delivered:
            log.info("delivered %s messages", delivered)
    except LifecycleError as error:
        # NOTE: the database away, or a lock held too long: log it and try again
        # next round; the worker does not die of what a retry can cure.
        log.error("round failed: %s (%s)", error, error.code)
        return False
    return True


def _blocking(handler: Callable[[Any], object]) -> Callable[[Any], object]:
    """A coroutine function handler runs on an event loop of the worker's own."""
    if not inspect.iscoroutinefunction(handler):
        return handler
    runner = asyncio.Runner()

    def run(message: Any) -> object:
        return runner.run(handler(message))

    return run
