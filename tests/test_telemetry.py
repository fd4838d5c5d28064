"""OpenTelemetry: spans and metrics through the API, seen by an SDK the test sets up;
and nothing at all, not even an import error, without the API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import lifecycle as lc
from lifecycle.store import SqlStore
from tests.conftest import D, sh

SPANS = InMemorySpanExporter()
READER = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def sdk() -> None:
    """The SDK an application would set up; the library's proxies find it."""
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(SPANS))
    trace.set_tracer_provider(tracing)
    metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


def _points(name: str) -> list[Any]:
    data = READER.get_metrics_data()
    assert data is not None
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def test_operations_are_counted_by_outcome_and_rule(tmp_path: Path) -> None:
    """An ok, a replay, a refusal by rule, an overage by rule: each counted, and the
    pay-as-you-go amount by meter and currency."""
    sub = lc.Subscription.new("c")
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    sub.subscribe("basic", order_id="o-1", at=sh(2026, 3, 1))
    with pytest.raises(lc.RuleViolation):
        sub.purchase_trial(order_id="o-2", at=sh(2026, 3, 2))
    sub.record_usage("media_processing", D(2010), "u-1", sh(2026, 3, 3))
    counted = {
        (p.attributes["operation"], p.attributes["outcome"], p.attributes.get("rule")): p.value
        for p in _points("lifecycle.operations")
    }
    assert counted[("subscribe", "ok", None)] >= 1
    assert counted[("subscribe", "replayed", None)] >= 1
    assert counted[("purchase_trial", "refused", "transition.not_allowed")] >= 1
    assert counted[("record_usage", "ok", "quota.payg_overage")] >= 1
    payg = {
        (p.attributes["meter"], p.attributes["currency"]): p.value
        for p in _points("lifecycle.payg.amount")
    }
    assert payg[("media_processing", "CNY")] >= 5.0


def test_edits_sweeps_and_drains_make_spans(tmp_path: Path) -> None:
    """A span per edit, per sweep batch and per drain batch, with what they did; the
    outbox lag is measured at delivery."""
    store = SqlStore(f"sqlite:///{tmp_path / 'otel.db'}")
    store.create_schema()
    with store.edit("c") as sub:
        sub.purchase_trial(order_id="o-1", at=sh(2026, 3, 1))
    store.sweep(sh(2026, 4, 10))
    store.drain_outbox(lambda message: None)
    store.close()
    spans = SPANS.get_finished_spans()
    by_name = {span.name: span for span in spans}
    assert "c" == by_name["lifecycle.edit"].attributes["lifecycle.customer_id"]
    assert [("due", 1), ("keys", 0)] == [
        (s.attributes["lifecycle.job"], s.attributes["lifecycle.applied"])
        for s in spans
        if s.name == "lifecycle.sweep.batch"
    ]
    assert 2 == by_name["lifecycle.drain.batch"].attributes["lifecycle.delivered"]
    assert sum(p.count for p in _points("lifecycle.outbox.lag")) >= 2


def test_without_the_api_nothing_is_imported_and_all_works() -> None:
    """With opentelemetry absent, the library imports and runs as ever."""
    script = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "import lifecycle as lc, lifecycle.telemetry as t\n"
        "assert not t.ENABLED\n"
        "sub = lc.Subscription.new('c')\n"
        "sub.purchase_trial(order_id='o-1')\n"
        "print(sub.state.value)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert (0, "trial") == (result.returncode, result.stdout.strip()), result.stderr
