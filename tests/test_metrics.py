"""QueueMetrics and LocalMetrics: names, values, bounded histograms, threads."""

from __future__ import annotations

import math
import random
import sys
import threading
from typing import Any, Callable

import pytest

from conftest import WAIT
from pylane import InvalidConfigError
from pylane.metrics import (
    COMMAND_LATENCY,
    COMMAND_WAIT_TIME,
    COMMANDS_CANCELLED,
    COMMANDS_COMPLETED,
    COMMANDS_DEAD_LETTERED,
    COMMANDS_FAILED,
    COMMANDS_RETRIED,
    COMMANDS_SUBMITTED,
    COMMANDS_TIMEOUT,
    COUNTER_NAMES,
    EXACT_SAMPLES,
    HISTOGRAM_NAMES,
    QUEUE_ACTIVE,
    QUEUE_DEPTH,
    HistogramStats,
    LocalMetrics,
    MetricsBackend,
    MetricsSnapshot,
    QueueMetrics,
)


def exact_percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(len(ordered) * p), len(ordered) - 1)]


# ---- LocalMetrics -------------------------------------------------------------------


def test_counter_is_absent_then_adds() -> None:
    metrics = LocalMetrics()
    assert metrics.get_counter("c") is None
    metrics.increment_counter("c", 1)
    assert metrics.get_counter("c") == 1
    metrics.increment_counter("c", 5)
    assert metrics.get_counter("c") == 6
    assert metrics.get_counter("c") == 6  # reading does not change it


def test_counter_rejects_negative_and_non_int_increments() -> None:
    metrics = LocalMetrics()
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError):
            metrics.increment_counter("c", bad)
    assert metrics.get_counter("c") is None


def test_gauge_overwrites() -> None:
    metrics = LocalMetrics()
    assert metrics.get_gauge("g") is None
    metrics.set_gauge("g", 42.5)
    assert metrics.get_gauge("g") == 42.5
    metrics.set_gauge("g", 100)
    assert metrics.get_gauge("g") == 100.0


def test_histogram_summary() -> None:
    metrics = LocalMetrics()
    for value in (10, 20, 30):
        metrics.record_histogram("h", value)
    stats = metrics.get_histogram_stats("h")
    assert stats is not None
    assert (stats.count, stats.sum, stats.min, stats.max, stats.mean) == (3, 60, 10, 30, 20)
    assert stats.p50 == 20


def test_small_histogram_percentiles_are_exact() -> None:
    metrics = LocalMetrics()
    for value in range(1, 101):
        metrics.record_histogram("h", value)
    stats = metrics.get_histogram_stats("h")
    assert (stats.p50, stats.p90, stats.p95, stats.p99) == (51, 91, 96, 100)
    assert stats.percentiles.p90 == 91


@pytest.mark.parametrize("distribution", ["lognormal", "uniform", "signed"])
def test_large_histogram_percentiles_within_one_percent(distribution: str) -> None:
    rng = random.Random(7)
    draw = {
        "lognormal": lambda: rng.lognormvariate(1.0, 1.5),
        "uniform": lambda: rng.uniform(0.0, 1000.0),
        "signed": lambda: rng.uniform(-500.0, 500.0),
    }[distribution]
    samples = [draw() for _ in range(20 * EXACT_SAMPLES)]
    metrics = LocalMetrics()
    for value in samples:
        metrics.record_histogram("h", value)
    stats = metrics.get_histogram_stats("h")
    assert stats.count == len(samples)
    assert stats.sum == pytest.approx(math.fsum(samples))
    assert (stats.min, stats.max) == (min(samples), max(samples))
    for name, p in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)):
        expected = exact_percentile(samples, p)
        assert getattr(stats, name) == pytest.approx(expected, rel=0.01), name


def test_histogram_memory_is_bounded() -> None:
    """The original kept every sample (O2); here the raw buffer never grows
    past EXACT_SAMPLES + 1 and buckets depend on the range, not the count."""
    metrics = LocalMetrics()
    rng = random.Random(3)
    for _ in range(100 * EXACT_SAMPLES):
        metrics.record_histogram("h", rng.uniform(1.0, 1024.0))  # 10 powers of two
    histogram = metrics._histograms["h"]
    assert len(histogram._raw) <= EXACT_SAMPLES + 1
    assert len(histogram._buckets) <= 64 * 10 + 1
    assert metrics.get_histogram_stats("h").count == 100 * EXACT_SAMPLES


def test_empty_histogram_reports_zeros_not_extreme_floats() -> None:
    stats = HistogramStats()
    assert (stats.count, stats.sum, stats.min, stats.max, stats.mean) == (0, 0, 0, 0, 0)
    assert (stats.p50, stats.p90, stats.p95, stats.p99) == (0, 0, 0, 0)
    assert MetricsSnapshot().histogram("never") == HistogramStats()
    metrics = QueueMetrics.local()
    assert metrics.snapshot().histogram(COMMAND_LATENCY) == HistogramStats()


def test_nan_samples_are_ignored() -> None:
    metrics = LocalMetrics()
    for value in (1.0, float("nan"), 3.0):
        metrics.record_histogram("h", value)
    stats = metrics.get_histogram_stats("h")
    assert (stats.count, stats.sum) == (2, 4.0)


def test_reset_clears_everything() -> None:
    metrics = LocalMetrics()
    metrics.increment_counter("c", 2)
    metrics.set_gauge("g", 1)
    metrics.record_histogram("h", 1)
    metrics.reset()
    assert metrics.get_counter("c") is None
    assert metrics.get_gauge("g") is None
    assert metrics.get_histogram_stats("h") is None
    assert metrics.snapshot() == MetricsSnapshot()
    metrics.increment_counter("c")
    assert metrics.get_counter("c") == 1


def test_snapshot_holds_all_three_kinds() -> None:
    metrics = LocalMetrics()
    metrics.increment_counter("c", 3)
    metrics.set_gauge("g", 2.5)
    metrics.record_histogram("h", 4)
    snap = metrics.snapshot()
    assert snap.counters == {"c": 3}
    assert snap.gauges == {"g": 2.5}
    assert snap.histograms["h"].count == 1


def test_local_metrics_is_a_backend() -> None:
    assert isinstance(LocalMetrics(), MetricsBackend)


# ---- QueueMetrics ---------------------------------------------------------------------


def test_record_submit_counts_per_lane_and_overall() -> None:
    metrics = QueueMetrics.local()
    for lane in ("query", "query", "system"):
        metrics.record_submit(lane)
    snap = metrics.snapshot()
    assert snap.counters[COMMANDS_SUBMITTED] == 3
    assert snap.counters[f"{COMMANDS_SUBMITTED}.query"] == 2
    assert snap.counters[f"{COMMANDS_SUBMITTED}.system"] == 1
    assert snap.counter(COMMANDS_SUBMITTED, "query") == 2


def test_record_complete_counts_and_records_latency_in_ms() -> None:
    metrics = QueueMetrics.local()
    metrics.record_complete("query", 0.050)
    metrics.record_complete("query", 0.100)
    snap = metrics.snapshot()
    assert snap.counters[COMMANDS_COMPLETED] == 2
    for name in (COMMAND_LATENCY, f"{COMMAND_LATENCY}.query"):
        assert snap.histograms[name].count == 2
        assert snap.histograms[name].mean == pytest.approx(75.0)


def test_record_start_records_wait_time_in_ms() -> None:
    metrics = QueueMetrics.local()
    metrics.record_start("prompt", 0.025)
    metrics.record_start("prompt", 0.075)
    snap = metrics.snapshot()
    assert snap.histograms[COMMAND_WAIT_TIME].mean == pytest.approx(50.0)
    assert snap.histogram(COMMAND_WAIT_TIME, "prompt").count == 2


@pytest.mark.parametrize(("hook", "name", "args"), [
    ("record_failure", COMMANDS_FAILED, (0.01,)),
    ("record_timeout", COMMANDS_TIMEOUT, (0.01,)),
    ("record_retry", COMMANDS_RETRIED, ()),
    ("record_dead_letter", COMMANDS_DEAD_LETTERED, ()),
    ("record_cancel", COMMANDS_CANCELLED, ()),
])
def test_outcome_counters(hook: str, name: str, args: tuple) -> None:
    metrics = QueueMetrics.local()
    getattr(metrics, hook)("skill", *args)
    getattr(metrics, hook)("skill", *args)
    snap = metrics.snapshot()
    assert snap.counters[name] == 2
    assert snap.counters[f"{name}.skill"] == 2
    assert COMMANDS_COMPLETED not in snap.counters


def test_failures_and_timeouts_record_run_time() -> None:
    metrics = QueueMetrics.local()
    metrics.record_failure("query", 0.002)
    metrics.record_timeout("query", 0.004)
    metrics.record_failure("query")  # no run time: counted, no sample
    assert metrics.snapshot().histograms[COMMAND_LATENCY].count == 2


def test_gauges_per_lane_only() -> None:
    metrics = QueueMetrics.local()
    metrics.set_queue_depth("query", 5)
    metrics.set_queue_depth("prompt", 2)
    metrics.set_active_commands("query", 3)
    gauges = metrics.snapshot().gauges
    assert gauges == {"lane.queue.depth.query": 5.0, "lane.queue.depth.prompt": 2.0,
                      "lane.queue.active.query": 3.0}


def test_bind_gauges_refreshes_from_the_source_on_snapshot() -> None:
    metrics = QueueMetrics.local()
    state = {"query": (4, 1), "prompt": (0, 2)}
    metrics.bind_gauges(lambda: [(lane, p, a) for lane, (p, a) in state.items()])
    gauges = metrics.snapshot().gauges
    assert gauges["lane.queue.depth.query"] == 4
    assert gauges["lane.queue.active.prompt"] == 2
    state["query"] = (0, 0)
    assert metrics.snapshot().gauges["lane.queue.depth.query"] == 0


def test_queue_metrics_over_one_backend_share_it() -> None:
    backend = LocalMetrics()
    first, second = QueueMetrics(backend), QueueMetrics(backend)
    first.record_submit("query")
    second.record_submit("query")
    assert first.backend() is backend
    assert backend.get_counter(COMMANDS_SUBMITTED) == 2
    assert second.snapshot().counters[f"{COMMANDS_SUBMITTED}.query"] == 2


def test_reset_then_hooks_keep_recording() -> None:
    metrics = QueueMetrics.local()
    metrics.record_submit("query")
    metrics.record_complete("query", 0.01)
    metrics.reset()
    assert metrics.snapshot() == MetricsSnapshot()
    metrics.record_submit("query")
    metrics.record_complete("query", 0.02)
    snap = metrics.snapshot()
    assert snap.counters[COMMANDS_SUBMITTED] == 1
    assert snap.histograms[COMMAND_LATENCY].mean == pytest.approx(20.0)


class RecordingBackend:
    """A minimal third-party backend: the eight methods, no bind_*."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self.gauges: dict[str, float] = {}
        self.samples: dict[str, list[float]] = {}

    def increment_counter(self, name: str, value: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + value

    def set_gauge(self, name: str, value: float) -> None:
        self.gauges[name] = value

    def record_histogram(self, name: str, value: float) -> None:
        self.samples.setdefault(name, []).append(value)

    def get_counter(self, name: str) -> int | None:
        return self.counters.get(name)

    def get_gauge(self, name: str) -> float | None:
        return self.gauges.get(name)

    def get_histogram_stats(self, name: str) -> HistogramStats | None:
        return None

    def snapshot(self) -> MetricsSnapshot:
        return MetricsSnapshot(dict(self.counters), dict(self.gauges), {})

    def reset(self) -> None:
        self.counters.clear()


def test_a_custom_backend_gets_lane_and_overall_names() -> None:
    backend = RecordingBackend()
    assert isinstance(backend, MetricsBackend)
    metrics = QueueMetrics(backend)
    metrics.record_submit("query")
    metrics.record_start("query", 0.001)
    metrics.record_complete("query", 0.002)
    metrics.set_queue_depth("query", 7)
    assert backend.counters == {
        f"{COMMANDS_SUBMITTED}.query": 1, COMMANDS_SUBMITTED: 1,
        f"{COMMANDS_COMPLETED}.query": 1, COMMANDS_COMPLETED: 1,
    }
    assert backend.samples[f"{COMMAND_WAIT_TIME}.query"] == [1.0]
    assert backend.samples[COMMAND_LATENCY] == [2.0]
    assert backend.gauges == {"lane.queue.depth.query": 7}
    assert metrics.snapshot().counters[COMMANDS_SUBMITTED] == 1


# ---- MetricsBackend: the base class's bind_* ------------------------------------------


class BasicBackend(RecordingBackend, MetricsBackend):
    """RecordingBackend as a MetricsBackend subclass: the basic methods only."""


def every_hook(metrics: QueueMetrics, lane: str) -> None:
    """Each hook and batch a queue calls, once (durations 1..7 ms)."""
    metrics.record_submit(lane)
    metrics.add_counts(lane, 2, 3)
    metrics.record_start(lane, 0.001)
    metrics.record_wait_times(lane, [2.0, 3.0])
    metrics.record_complete(lane, 0.004)
    metrics.record_run_times(lane, [5.0])
    metrics.record_failure(lane, 0.006)
    metrics.record_timeout(lane, 0.007)
    metrics.record_retry(lane)
    metrics.record_dead_letter(lane)
    metrics.record_cancel(lane)
    metrics.set_queue_depth(lane, 8)
    metrics.set_active_commands(lane, 9)


EVERY_COUNT = {COMMANDS_SUBMITTED: 3, COMMANDS_COMPLETED: 4, COMMANDS_FAILED: 1,
               COMMANDS_TIMEOUT: 1, COMMANDS_RETRIED: 1, COMMANDS_DEAD_LETTERED: 1,
               COMMANDS_CANCELLED: 1}
EVERY_SAMPLE = {COMMAND_WAIT_TIME: [1.0, 2.0, 3.0], COMMAND_LATENCY: [4.0, 5.0, 6.0, 7.0]}


def rounded(values: dict[Any, Any]) -> dict[Any, Any]:
    """Sample lists rounded (seconds * 1000 is not always exact)."""
    return {k: [round(x, 9) for x in v] if isinstance(v, list) else v
            for k, v in values.items()}


def test_a_subclass_with_only_the_basic_methods_gets_every_metric() -> None:
    """The default bind_* record each lane's name and the overall name
    through increment_counter / record_histogram / set_gauge."""
    backend = BasicBackend()
    metrics = QueueMetrics(backend)
    every_hook(metrics, "query")
    assert set(EVERY_COUNT) == set(COUNTER_NAMES)
    assert backend.counters == {**EVERY_COUNT,
                                **{f"{n}.query": v for n, v in EVERY_COUNT.items()}}
    assert set(EVERY_SAMPLE) == set(HISTOGRAM_NAMES)
    assert rounded(backend.samples) == {
        **EVERY_SAMPLE, **{f"{n}.query": v for n, v in EVERY_SAMPLE.items()}}
    assert backend.gauges == {f"{QUEUE_DEPTH}.query": 8, f"{QUEUE_ACTIVE}.query": 9}
    assert metrics.backend() is backend
    assert metrics.local_histograms("query") is None  # lists, not C buckets


class LaneKeyBackend(BasicBackend):
    """Overrides one bind_* per family so a lane is a key, not a name
    suffix; the basic methods must then never be called."""

    def __init__(self) -> None:
        super().__init__()
        self.points: dict[tuple[str, str], Any] = {}

    def bind_counter_adder(self, name: str, lane_id: str) -> Callable[[int], None]:
        def add(n: int) -> None:
            self.points[name, lane_id] = self.points.get((name, lane_id), 0) + n

        return add

    def bind_histogram(self, name: str, lane_id: str) -> Callable[[float], None]:
        return self.points.setdefault((name, lane_id), []).append

    def bind_gauge(self, name: str, lane_id: str) -> Callable[[float], None]:
        return lambda value: self.points.__setitem__((name, lane_id), value)


def test_overridden_bind_methods_are_used_and_their_family_follows() -> None:
    """bind_counter defaults to bind_counter_adder and bind_histogram_many
    to bind_histogram, so overriding those three covers every hook."""
    backend = LaneKeyBackend()
    every_hook(QueueMetrics(backend), "query")
    assert (backend.counters, backend.samples, backend.gauges) == ({}, {}, {})
    assert rounded(backend.points) == {
        **{(n, "query"): v for n, v in EVERY_COUNT.items()},
        **{(n, "query"): v for n, v in EVERY_SAMPLE.items()},
        (QUEUE_DEPTH, "query"): 8, (QUEUE_ACTIVE, "query"): 9,
    }


@pytest.mark.parametrize(("method", "hook", "args"), [
    ("bind_counter", "record_retry", ()),
    ("bind_counter_adder", "add_counts", (2, 0)),
    ("bind_histogram", "record_start", (0.001,)),
    ("bind_histogram_many", "record_run_times", ([1.0, 2.0],)),
    ("bind_gauge", "set_queue_depth", (4,)),
])
def test_each_overridden_bind_method_is_the_one_called(method: str, hook: str,
                                                       args: tuple) -> None:
    used: list[tuple[str, str, tuple]] = []

    def override(self: BasicBackend, name: str, lane_id: str) -> Callable[..., None]:
        default = getattr(MetricsBackend, method)(self, name, lane_id)

        def call(*values: Any) -> None:
            used.append((name, lane_id, values))
            default(*values)

        return call

    backend = type("Overriding", (BasicBackend,), {method: override})()
    metrics = QueueMetrics(backend)
    getattr(metrics, hook)("query", *args)
    assert [lane for _, lane, _ in used] == ["query"]
    assert backend.counters or backend.samples or backend.gauges  # and still recorded


class OldStyleBackend(RecordingBackend):
    """Not a subclass, with the original protocol's optional bind_counter."""

    def __init__(self) -> None:
        super().__init__()
        self.bound_adds = 0
        self.refresh: Any = None

    def bind_counter(self, name: str, lane_id: str) -> Callable[[], None]:
        def add_one() -> None:
            self.bound_adds += 1

        return add_one

    def set_refresher(self, refresh: Any) -> None:
        self.refresh = refresh


def test_a_backend_that_does_not_subclass_is_adopted_with_its_own_binds() -> None:
    backend = OldStyleBackend()
    assert isinstance(backend, MetricsBackend)
    metrics = QueueMetrics(backend)
    assert metrics.backend() is backend and backend.refresh == metrics.refresh
    metrics.record_submit("query")
    metrics.add_counts("query", 3, 2)  # its bind_counter, 5 times
    metrics.record_start("query", 0.001)  # no bind_histogram: the default
    assert backend.bound_adds == 6
    assert backend.counters == {}
    assert backend.samples == {f"{COMMAND_WAIT_TIME}.query": [1.0], COMMAND_WAIT_TIME: [1.0]}


def test_an_object_lacking_backend_methods_is_refused_by_name() -> None:
    class HalfBackend:
        def increment_counter(self, name: str, value: int = 1) -> None: ...

    assert not isinstance(HalfBackend(), MetricsBackend)
    with pytest.raises(InvalidConfigError, match=r"set_gauge.*HalfBackend"):
        QueueMetrics(HalfBackend())  # type: ignore[arg-type]


def test_hooks_lose_nothing_under_threads() -> None:
    metrics = QueueMetrics.local()
    threads, per_thread = 8, 5000
    barrier = threading.Barrier(threads)
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible

    def hammer(index: int) -> None:
        lane = "query" if index % 2 else "prompt"
        barrier.wait(WAIT)
        for _ in range(per_thread):
            metrics.record_submit(lane)
            metrics.record_start(lane, 0.001)
            metrics.record_complete(lane, 0.002)

    try:
        workers = [threading.Thread(target=hammer, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(WAIT * 3)
            assert not worker.is_alive()
    finally:
        sys.setswitchinterval(previous)
    snap = metrics.snapshot()
    total = threads * per_thread
    assert snap.counters[COMMANDS_SUBMITTED] == total
    assert snap.counters[f"{COMMANDS_COMPLETED}.query"] == total // 2
    assert snap.histograms[COMMAND_LATENCY].count == total
    assert snap.histograms[COMMAND_WAIT_TIME].count == total
    assert snap.histograms[COMMAND_LATENCY].p99 == pytest.approx(2.0, rel=0.01)
