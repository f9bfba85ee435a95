"""OtelMetricsBackend, read back through the OpenTelemetry SDK's in-memory
reader (the SDK is a test dependency only)."""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest

from conftest import WAIT
from pylane.metrics import (
    COMMAND_LATENCY,
    COMMAND_WAIT_TIME,
    COMMANDS_COMPLETED,
    COMMANDS_SUBMITTED,
    QUEUE_DEPTH,
    MetricsBackend,
    QueueMetrics,
)


@pytest.fixture
def otel() -> Any:
    pytest.importorskip("opentelemetry.sdk.metrics")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield reader, provider.get_meter("a3s-lane-test")
    provider.shutdown()


def collect(reader: Any) -> dict[str, tuple[str, list[Any]]]:
    """instrument name -> (unit, data points)"""
    found: dict[str, tuple[str, list[Any]]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = (metric.unit, list(metric.data.data_points))
    return found


def by_lane(points: list[Any]) -> dict[Any, Any]:
    return {dict(p.attributes).get("lane"): p for p in points}


def backend_for(meter: Any, **options: Any) -> Any:
    from pylane.otel import OtelMetricsBackend

    return OtelMetricsBackend(meter, **options)


def test_counters_carry_the_lane_as_an_attribute(otel: Any) -> None:
    reader, meter = otel
    metrics = QueueMetrics(backend_for(meter))
    for lane in ("query", "query", "system"):
        metrics.record_submit(lane)
    found = collect(reader)
    unit, points = found[COMMANDS_SUBMITTED]
    assert unit == "{command}"
    values = {lane: p.value for lane, p in by_lane(points).items()}
    assert values == {"query": 2, "system": 1}
    assert f"{COMMANDS_SUBMITTED}.query" not in found  # no name suffix, no double count


def test_gauges_are_set_not_accumulated(otel: Any) -> None:
    reader, meter = otel
    metrics = QueueMetrics(backend_for(meter))
    metrics.set_queue_depth("query", 5)
    metrics.set_queue_depth("query", 3)
    metrics.set_queue_depth("prompt", 1)
    unit, points = collect(reader)[QUEUE_DEPTH]
    assert unit == "{command}"
    assert {lane: p.value for lane, p in by_lane(points).items()} == {"query": 3, "prompt": 1}


class MeterWithoutSyncGauge:
    """An API older than the synchronous Gauge: everything but create_gauge."""

    def __init__(self, meter: Any) -> None:
        self._meter = meter

    def __getattr__(self, name: str) -> Any:
        if name == "create_gauge":
            raise AttributeError(name)
        return getattr(self._meter, name)


def test_gauges_fall_back_to_an_observable_gauge(otel: Any) -> None:
    reader, meter = otel
    backend = backend_for(MeterWithoutSyncGauge(meter))
    metrics = QueueMetrics(backend)
    metrics.set_active_commands("query", 4)
    metrics.set_active_commands("query", 2)
    backend.set_gauge("plain", 7.5)
    backend.set_gauge("plain", 1.5)
    found = collect(reader)
    assert {lane: p.value for lane, p in by_lane(found["lane.queue.active"][1]).items()} == {
        "query": 2
    }
    assert [p.value for p in found["plain"][1]] == [1.5]


def test_histograms_in_milliseconds(otel: Any) -> None:
    reader, meter = otel
    metrics = QueueMetrics(backend_for(meter))
    metrics.record_complete("query", 0.050)
    metrics.record_complete("query", 0.100)
    metrics.record_start("prompt", 0.002)
    found = collect(reader)
    unit, points = found[COMMAND_LATENCY]
    assert unit == "ms"
    point = by_lane(points)["query"]
    assert (point.count, point.sum) == (2, pytest.approx(150.0))
    assert point.min == pytest.approx(50.0)
    assert by_lane(found[COMMAND_WAIT_TIME][1])["prompt"].count == 1


def test_direct_calls_use_the_name_as_given(otel: Any) -> None:
    reader, meter = otel
    backend = backend_for(meter)
    assert MetricsBackend in type(backend).__mro__  # a subclass: no adapter around it
    backend.increment_counter("jobs.done", 2)
    backend.increment_counter("jobs.done", 3)
    backend.record_histogram("job.time_ms", 12.0)
    found = collect(reader)
    assert [p.value for p in found["jobs.done"][1]] == [5]
    assert found["job.time_ms"][0] == "ms"


def test_the_local_copy_answers_snapshot_and_getters(otel: Any) -> None:
    _reader, meter = otel
    backend = backend_for(meter)
    metrics = QueueMetrics(backend)
    metrics.record_submit("query")
    metrics.record_submit("prompt")
    metrics.record_complete("query", 0.010)
    snap = metrics.snapshot()
    assert snap.counters[COMMANDS_SUBMITTED] == 2
    assert snap.counters[f"{COMMANDS_SUBMITTED}.query"] == 1
    assert snap.histograms[COMMAND_LATENCY].mean == pytest.approx(10.0)
    assert backend.get_counter(COMMANDS_SUBMITTED) == 2
    backend.reset()
    assert backend.get_counter(COMMANDS_SUBMITTED) is None


def test_without_the_local_copy_getters_are_empty(otel: Any) -> None:
    reader, meter = otel
    backend = backend_for(meter, keep_local=False)
    metrics = QueueMetrics(backend)
    metrics.record_submit("query")
    assert backend.get_counter(COMMANDS_SUBMITTED) is None
    assert metrics.snapshot().counters == {}
    assert by_lane(collect(reader)[COMMANDS_SUBMITTED][1])["query"].value == 1


def test_default_meter_works_with_the_api_alone() -> None:
    pytest.importorskip("opentelemetry.metrics")
    from pylane.otel import OtelMetricsBackend

    metrics = QueueMetrics(OtelMetricsBackend())  # the global (no-op) meter
    metrics.record_submit("query")
    metrics.set_queue_depth("query", 1)
    assert metrics.snapshot().counters[COMMANDS_SUBMITTED] == 1


def test_missing_api_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from pylane.otel import OtelMetricsBackend

    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # makes the import fail
    with pytest.raises(ImportError, match="pip install opentelemetry-api"):
        OtelMetricsBackend()


def test_exported_counters_stay_cumulative_across_reset(otel: Any) -> None:
    reader, meter = otel
    metrics = QueueMetrics(backend_for(meter))
    metrics.record_submit("query")
    metrics.record_submit("query")
    metrics.reset()
    metrics.record_submit("query")
    assert metrics.snapshot().counters[COMMANDS_SUBMITTED] == 1
    assert by_lane(collect(reader)[COMMANDS_SUBMITTED][1])["query"].value == 3


def test_bound_gauges_are_read_from_the_queue_at_collection(otel: Any) -> None:
    """No snapshot() needed; a lane first seen during collection must not
    deadlock (the SDK holds its lock while it runs callbacks)."""
    reader, meter = otel
    metrics = QueueMetrics(backend_for(meter))
    state = {"fresh": (4, 1)}
    metrics.bind_gauges(lambda: [(lane, p, a) for lane, (p, a) in state.items()])
    found: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: found.update(collect(reader)), daemon=True)
    worker.start()
    worker.join(WAIT)
    assert not worker.is_alive(), "collecting deadlocked"
    assert by_lane(found[QUEUE_DEPTH][1])["fresh"].value == 4
    assert by_lane(found["lane.queue.active"][1])["fresh"].value == 1
    state["fresh"] = (0, 0)
    assert by_lane(collect(reader)[QUEUE_DEPTH][1])["fresh"].value == 0


def test_a_queue_is_collected_without_any_snapshot(otel: Any, managers: Any) -> None:
    """What the engine counted and timed reaches the reader at collection:
    counters, both histograms and the gauges, per lane."""
    from pylane import LaneConfig, QueueManagerBuilder

    reader, meter = otel
    metrics = QueueMetrics(backend_for(meter, keep_local=False))
    builder = QueueManagerBuilder().with_max_workers(2).with_metrics(metrics)
    builder.with_lane("query", LaneConfig.new(0, 2), 1)
    manager = managers.build(builder)
    for n in range(25):
        manager.submit("query", abs, -n).result(WAIT)
    with pytest.raises(ValueError):
        manager.submit("query", int, "not a number").result(WAIT)
    manager.drain(WAIT)
    found = collect(reader)
    assert by_lane(found[COMMANDS_SUBMITTED][1])["query"].value == 26
    assert by_lane(found[COMMANDS_COMPLETED][1])["query"].value == 25
    assert by_lane(found["lane.commands.failed"][1])["query"].value == 1
    assert by_lane(found[COMMAND_WAIT_TIME][1])["query"].count == 26
    unit, points = found[COMMAND_LATENCY]
    assert unit == "ms" and by_lane(points)["query"].count == 26
    assert by_lane(found[QUEUE_DEPTH][1])["query"].value == 0
    # Nothing new: the next collection reports the same cumulative totals.
    assert by_lane(collect(reader)[COMMANDS_COMPLETED][1])["query"].value == 25
