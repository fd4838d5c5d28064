"""`lifecycle worker`: sweeps and drains on a schedule until SIGTERM or SIGINT, logs
what it did, and exits 0; the handler may be a coroutine function."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lifecycle.store import SqlStore
from tests.conftest import sh

ROOT = Path(__file__).parents[2]


def _customers(url: str) -> None:
    store = SqlStore(url)
    store.create_schema()
    for n in range(3):
        with store.edit(f"c-{n}") as sub:
            sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1, 12, n))
    store.close()


def _start(url: str, out: Path, handler: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lifecycle",
            "worker",
            "--db",
            url,
            "--handler",
            handler,
            "--every",
            "100ms",
            *extra,
        ],
        cwd=ROOT,
        env={**os.environ, "LIFECYCLE_TEST_OUT": str(out), "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(out: Path, lines: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if out.exists() and len(out.read_text().splitlines()) >= lines:
            break
        time.sleep(0.05)
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize(
    "handler", ["tests.cli.handlers:record", "tests.cli.handlers:record_async"]
)
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_the_worker_sweeps_drains_and_stops_cleanly(
    tmp_path: Path, handler: str, stop: signal.Signals
) -> None:
    """Three trials that ended long ago: the worker applies their ends, hands out all
    six messages, and on a signal exits 0, having logged what it did."""
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    _customers(url)
    out = tmp_path / "handed.jsonl"
    process = _start(url, out, handler)
    handed = _wait_for(out, 6)
    process.send_signal(stop)
    _, log = process.communicate(timeout=60)
    assert 0 == process.returncode, log
    assert 6 == len(handed)
    assert {"purchase_trial", "trial_ended"} == {m["trigger"] for m in handed}
    assert "swept: 3 transitions applied" in log
    assert "delivered" in log
    assert "worker stopped" in log


def test_two_workers_side_by_side_hand_each_message_out_once(tmp_path: Path, pg_url: str) -> None:
    """Two workers on one PostgreSQL database: every message handed out once."""
    from tests.store.conftest import empty_postgresql

    url = empty_postgresql(pg_url)
    _customers(url)
    out = tmp_path / "handed.jsonl"
    workers = [_start(url, out, "tests.cli.handlers:record") for _ in range(2)]
    handed = _wait_for(out, 6)
    time.sleep(0.5)
    for process in workers:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
        assert 0 == process.returncode
    handed = [json.loads(line) for line in out.read_text().splitlines()]
    assert 6 == len({(m["customer_id"], m["seq"]) for m in handed}) == len(handed)


def test_a_bad_handler_or_duration_is_named(tmp_path: Path) -> None:
    """A handler that cannot be imported, a duration that is not one, a limit out of
    range, a log level that is none: exit 2 naming it, before any round."""
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    SqlStore(url).create_schema()
    for args, named in (
        (["--handler", "no.such.module:fn"], "cannot import"),
        (["--handler", "tests.cli.handlers:record", "--every", "soon"], "duration"),
        (["--handler", "tests.cli.handlers:record", "--limit", "0"], "--limit"),
        (["--handler", "tests.cli.handlers:record", "--log-level", "loud"], "--log-level"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "lifecycle", "worker", "--db", url, "--once", *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert 2 == result.returncode
        assert named in result.stderr


HANDLER = ("--handler", "tests.cli.handlers:record")


def _once(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lifecycle", "worker", "--db", url, "--once", *HANDLER],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LIFECYCLE_TEST_OUT": os.devnull},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_once_says_whether_its_round_did_its_work(tmp_path: Path) -> None:
    """--once, for cron: exit 0 when the round got through, 1 when it failed (no
    schema); a SQLite file that is not there is refused (exit 2) and not made."""
    missing = tmp_path / "typo.db"
    refused = _once(f"sqlite:///{missing}")
    assert (2, False) == (refused.returncode, missing.exists())
    assert "no such SQLite file" in refused.stderr
    empty = tmp_path / "empty.db"
    empty.touch()
    failed = _once(f"sqlite:///{empty}")
    assert 1 == failed.returncode
    assert "round failed" in failed.stderr
    _customers(f"sqlite:///{empty}")
    done = _once(f"sqlite:///{empty}")
    assert 0 == done.returncode
    assert "transitions.core" not in done.stderr  # its INFO lines are not the worker's
