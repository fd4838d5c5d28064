"""Costs of the engine's hot paths, each beside a baseline measured in the same run.

    python benchmarks/ops.py [--quick]

Baselines: a bare guarded trigger on a shared ``transitions`` machine (for
``record_usage``) and a plain attrs object holding the same fields as a
subscription (for ``Subscription.new``, ``from_record`` and memory). Ratios,
not absolute times, are compared with the targets, so a slow machine does not
fail them; the exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import timeit
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
from transitions import Machine

import lifecycle as lc

START = datetime(2026, 1, 1, tzinfo=UTC)


@attrs.define
class Plain:
    """The baseline: a plain attrs object with a subscription's fields."""

    customer_id: str
    catalog: object
    clock: object
    state: str = "none"
    ledger: object = None
    mark: object = None
    history: list[Any] = attrs.Factory(list)
    orders: dict[str, Any] = attrs.Factory(dict)
    requests: dict[str, Any] = attrs.Factory(dict)
    usage: dict[str, Any] = attrs.Factory(dict)
    queue: object = None


class _Model:
    def __init__(self) -> None:
        self.state = "active"


def _guard(event: Any) -> bool:
    return event.kwargs["amount"] > 0


def paired_us(
    ours: Callable[[], object], base: Callable[[], object], number: int, repeat: int = 15
) -> tuple[float, float]:
    """Best times of `ours` and `base`, measured alternately so that a noisy
    neighbour slows both alike rather than one of them."""
    mine, theirs = [], []
    for _ in range(repeat):
        mine.append(timeit.timeit(ours, number=number))
        theirs.append(timeit.timeit(base, number=number))
    return min(mine) / number * 1e6, min(theirs) / number * 1e6


def record_usage_us(number: int, repeat: int = 7) -> tuple[float, float]:
    """``record_usage`` on a live subscription, and a bare guarded trigger on a
    shared ``transitions`` machine, measured alternately."""
    machine = Machine(
        model=None,
        states=["active", "exhausted"],
        initial=None,
        transitions=[
            {"trigger": "use", "source": "active", "dest": "active", "conditions": [_guard]}
        ],
        auto_transitions=False,
        send_event=True,
    )
    event, model, amount = machine.events["use"], _Model(), Decimal("0.001")
    catalog = lc.default_catalog()
    # 10 s apart: a run spans days, so the 7-day window's pruning is included
    times = [START + timedelta(seconds=10 * i) for i in range(number * repeat)]
    ids = [f"u-{i}" for i in range(len(times))]
    ours, base = [], []
    sub = lc.Subscription.new("bench", catalog=catalog)
    sub.subscribe("professional", order_id="o-1", at=START)
    calls = iter(zip(ids, times, strict=True))
    record = sub.record_usage

    def one() -> None:
        usage_id, at = next(calls)
        record("media_processing", amount, usage_id, at)

    for _ in range(repeat):
        ours.append(timeit.timeit(one, number=number))
        base.append(timeit.timeit(lambda: event.trigger(model, amount=amount), number=number))
    return min(ours) / number * 1e6, min(base) / number * 1e6


def new_us(number: int) -> tuple[float, float]:
    catalog = lc.default_catalog()
    return paired_us(
        lambda: lc.Subscription.new("cust-42", catalog=catalog),
        lambda: Plain("cust-42", catalog, None),
        number,
    )


def lived(catalog: lc.Catalog, usages: int = 5) -> lc.Subscription:
    """A typical subscription: a trial, then Enterprise with an add-on and some usage."""
    sub = lc.Subscription.new("cust-42", catalog=catalog)
    sub.purchase_trial(order_id="o-1", at=START)
    sub.subscribe("standard", order_id="o-2", at=START + timedelta(days=3))
    sub.buy_addon("boost-500", order_id="o-3", at=START + timedelta(days=4))
    for i in range(usages):
        at = START + timedelta(days=5, hours=i)
        sub.record_usage("media_processing", Decimal("1.5"), f"u-{i}", at=at)
    return sub


def from_record_us(number: int, usages: int) -> tuple[float, float, int]:
    """``from_record`` of a lived record (trial, Enterprise, add-on, ``usages``
    remembered usage keys), beside a plain attrs object built from its fields."""
    catalog = lc.default_catalog()
    record = lived(catalog, usages).to_record()
    ours, plain = paired_us(
        lambda: lc.Subscription.from_record(record, catalog=catalog),
        lambda: Plain(
            record["customer_id"],
            catalog,
            None,
            record["state"],
            record["credits"],
            record["mark"],
            record["history"],
        ),
        number,
    )
    return ours, plain, len(record["history"])


def bytes_each(make: Callable[[], object], count: int = 2000) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    kept = [make() for _ in range(count)]
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    size = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    del kept
    return (size - sys.getsizeof([None] * count)) / count


def record_sizes() -> list[tuple[str, int]]:
    """JSON bytes of a record after a week, a month and a year of hourly usage."""
    catalog = lc.default_catalog()
    sub = lc.Subscription.new("cust-42", catalog=catalog)
    sub.subscribe("professional", order_id="o-1", term_months=24, at=START)
    marks = {24 * 7: "1 week", 24 * 30: "1 month", 24 * 365: "1 year"}
    sizes = []
    for hour in range(24 * 365):
        at = START + timedelta(hours=hour)
        sub.record_usage("media_processing", Decimal("0.25"), f"usage-{hour:08d}", at=at)
        if hour + 1 in marks:
            sizes.append((marks[hour + 1], len(json.dumps(sub.to_record()))))
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args(argv)
    n = 2000 if args.quick else 20000

    catalog = lc.default_catalog()
    usage, trigger = record_usage_us(n)
    new, plain_new = new_us(n * 5)
    load, plain_load, entries = from_record_us(n // 4, usages=0)
    keyed, _, _ = from_record_us(n // 20, usages=100)
    memory_new = bytes_each(lambda: lc.Subscription.new("cust-42", catalog=catalog))
    memory_lived = bytes_each(lambda: lived(catalog, usages=0), count=300)
    memory_keys = (bytes_each(lambda: lived(catalog, usages=50), count=100) - memory_lived) / 50
    memory_plain = bytes_each(lambda: Plain("cust-42", catalog, None))
    sizes = record_sizes()

    # (figure, ours, baseline, its value, unit, target, what the target bounds)
    rows = [
        ("record_usage", usage, "bare guarded trigger", trigger, "µs", 1.0, "ratio"),
        ("Subscription.new", new, "plain attrs object", plain_new, "µs", 2.0, "ratio"),
        (
            f"from_record ({entries} history entries)",
            load,
            "plain attrs object",
            plain_load,
            "µs",
            25.0,
            "ratio",
        ),
        (
            "memory: trial, Enterprise, add-on",
            memory_lived,
            "plain attrs object",
            memory_plain,
            "B",
            2048,
            "bytes",
        ),
    ]
    failed = False
    print(f"{'figure':<36} {'ours':>10}  {'baseline':<20} {'':>10} {'ratio':>7}  target")
    for name, ours, base_name, base, unit, target, bounds in rows:
        ratio = ours / base
        missed = (ratio if bounds == "ratio" else ours) > target
        failed |= missed
        shown = f"<= {target:g}x" if bounds == "ratio" else f"<= {target:g} B"
        print(
            f"{name:<36} {ours:7.2f} {unit:<2}  {base_name:<20} {base:7.2f} {unit:<2} "
            f"{ratio:6.2f}x  {shown} {'MISSED' if missed else 'ok'}"
        )
    print()
    per_key = (keyed - load) / 100
    print(f"{'from_record: each remembered usage key adds':<52} {per_key:8.2f} µs")
    print(f"{'memory: a new subscription':<52} {memory_new:8.0f} B")
    print(f"{'memory: each remembered usage key adds':<52} {memory_keys:8.0f} B")
    print()
    print(f"{'record size, hourly usage (7-day window)':<52} {'bytes':>8}")
    for label, size in sizes:
        print(f"{label:<52} {size:8d}")
    flat = sizes[-1][1] <= sizes[0][1] * 1.05
    failed |= not flat
    print(f"target: a year's record within 5% of a week's: {'ok' if flat else 'MISSED'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
