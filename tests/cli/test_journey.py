"""`lifecycle journey`: a customer's path drawn over the lifecycle, from a record or
a store, at any time, with its timeline; bad input named, nothing changed."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

import lifecycle as lc
from lifecycle import diagrams
from lifecycle.cli import main
from lifecycle.store import SqlStore
from tests.conftest import sh


def _customer(sub: lc.Subscription) -> None:
    """A trial that runs out, Enterprise for a month, two add-ons."""
    sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    sub.subscribe("basic", order_id="o-2", term_months=1, at=sh(2026, 4, 5))
    sub.buy_addon("boost-500", order_id="o-3", at=sh(2026, 4, 6))
    sub.buy_addon("boost-500", order_id="o-4", at=sh(2026, 4, 7))


def _record(tmp_path: Path) -> Path:
    sub = lc.Subscription.new("cust-7", catalog=lc.default_catalog(), clock=lambda: sh(2026, 3, 1))
    _customer(sub)
    path = tmp_path / "cust-7.json"
    path.write_text(json.dumps(sub.to_record()))
    return path


def _run(*args: str) -> tuple[int, str]:
    screen = io.StringIO()
    code = main(["journey", *args], console=Console(file=screen, width=200))
    return code, screen.getvalue()


def _taken(mermaid: str) -> list[str]:
    """The labels of the edges drawn thick (linkStyle), in order."""
    edges = [line for line in mermaid.splitlines() if re.search(r"(-->|-\.->)\|", line)]
    styled = re.search(r"linkStyle ([\d,]+) ", mermaid)
    assert styled is not None
    return [edges[int(n) - 1].split('|"')[1].split('"|')[0] for n in styled.group(1).split(",")]


def test_a_records_journey_is_drawn_with_dates_counts_and_the_state_now(
    tmp_path: Path,
) -> None:
    """Each transition taken is highlighted with its dates (and a count when taken
    more than once); the state at --at is marked; the timeline lists each step."""
    record = _record(tmp_path)
    before = record.read_text()
    code, printed = _run(str(record), "--at", "2026-04-20T09:00", "--out", str(tmp_path))
    assert 0 == code
    mermaid = (tmp_path / "journey-cust-7.mmd").read_text()
    assert "class enterprise_active current" in mermaid
    assert [
        "purchase_trial [trial.once_per_month, trial.no_discount]: 2026-03-01",
        "subscribe: 2026-04-05",
        "buy_addon: 2 times: 2026-04-06, 2026-04-07",
        "(auto) trial credits reach zero<br/>(auto) trial validity ends: 2026-04-01",
    ] == _taken(mermaid)
    svg = (tmp_path / "journey-cust-7.svg").read_text()
    assert diagrams.svg_stamp(svg) is not None
    assert "#c62828" in svg
    for trigger in ("purchase_trial", "trial_ended", "subscribe", "buy_addon"):
        assert trigger in printed
    assert "cust-7: enterprise-active at 2026-04-20 09:00" in printed
    assert before == record.read_text()


def test_at_a_past_time_shows_the_path_until_then(tmp_path: Path) -> None:
    code, _ = _run(str(_record(tmp_path)), "--at", "2026-03-10T00:00+08:00", "--out", str(tmp_path))
    mermaid = (tmp_path / "journey-cust-7.mmd").read_text()
    assert 0 == code
    assert "class trial current" in mermaid
    assert ["purchase_trial [trial.once_per_month, trial.no_discount]: 2026-03-01"] == _taken(
        mermaid
    )


def test_after_the_mark_due_transitions_are_shown_as_a_read_shows_them(tmp_path: Path) -> None:
    """The period ended on 5 May: at 1 June the customer is expired, by an automatic
    edge, although the record was written in April."""
    code, printed = _run(str(_record(tmp_path)), "--at", "2026-06-01T00:00", "--out", str(tmp_path))
    mermaid = (tmp_path / "journey-cust-7.mmd").read_text()
    assert 0 == code
    assert "class expired current" in mermaid
    assert "(auto) validity period ends: 2026-05-05" in _taken(mermaid)
    assert "period_ended" in printed


def test_a_stored_customers_journey_is_the_records(
    tmp_path: Path, pg_url: str, backend: str
) -> None:
    """--db URL --customer ID draws what the record draws, on SQLite and PostgreSQL,
    and an async URL is read with its synchronous driver."""
    url = f"sqlite:///{tmp_path}/s.db" if backend == "sqlite" else pg_url
    store = SqlStore(url)
    store.create_schema()
    with store.edit("cust-7") as sub:
        _customer(sub)  # type: ignore[arg-type]
    store.close()
    async_url = url.replace("sqlite:", "sqlite+aiosqlite:").replace("+psycopg:", "+psycopg_async:")
    stored, from_record = tmp_path / "stored", tmp_path / "record"
    at = "2026-06-01T00:00"
    assert 0 == _run("--db", async_url, "--customer", "cust-7", "--at", at, "--out", str(stored))[0]
    assert 0 == _run(str(_record(tmp_path)), "--at", at, "--out", str(from_record))[0]
    assert (from_record / "journey-cust-7.mmd").read_text() == (
        stored / "journey-cust-7.mmd"
    ).read_text()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "give either RECORD or --db URL --customer ID"),
        (("--db", "sqlite:///x.db"), "--db needs --customer ID"),
        (("{record}", "--at", "next tuesday"), "'next tuesday' is not an ISO 8601 time"),
        (("{tmp}/absent.json",), "not a JSON record"),
        (("{tmp}/list.json",), "a record is a JSON object"),
        (("{tmp}/bad.json",), "bad.json: state: 7 is not a state"),
        (("--db", "sqlite:///{tmp}/empty.db", "--customer", "nobody"), "no customer 'nobody'"),
    ],
)
def test_bad_input_is_named_and_nothing_is_written(
    tmp_path: Path, args: tuple[str, ...], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    record = _record(tmp_path)
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "bad.json").write_text(json.dumps({**json.loads(record.read_text()), "state": 7}))
    if "empty.db" in " ".join(args):
        SqlStore(f"sqlite:///{tmp_path}/empty.db").create_schema()
    out = tmp_path / "out"
    given = [a.format(record=record, tmp=tmp_path) for a in args]
    code, _ = _run(*given, "--out", str(out))
    assert 2 == code
    assert says in capsys.readouterr().err
    assert not out.exists()
