"""Metrics recorded by a running queue (issue 4, item 4).

The engine counts submitted and completed commands and times each start's
queue wait and each completed run; ``EngineMetricsFeed`` hands these to
``QueueMetrics`` in batches, when the engine says a batch is due and before
every read. Rarer outcomes (failed, timeout, retried, dead-lettered,
cancelled) are recorded where they happen. These tests check the numbers a
user reads through a real queue, including past the point where batches are
bucketed in C, and what happens with bad metrics input.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import CancelledError, wait
from typing import Any, Optional

import pytest

from conftest import WAIT
from pylane import InvalidConfigError, LaneConfig, QueueManagerBuilder, RetryPolicy
from pylane._lane_core import ffi, lib
from pylane._runtime.engine import Engine
from pylane._runtime.metrics_feed import EngineMetricsFeed
from pylane.durable.dead_letters import DeadLetterQueue
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
    GAUGE_NAMES,
    HISTOGRAM_NAMES,
    HistogramStats,
    LocalMetrics,
    MetricsBackend,
    MetricsSnapshot,
    QueueMetrics,
    _bucket_keys,
    lane_metric,
)


def metered(managers: Any, metrics: Any, *lanes: tuple[str, LaneConfig, int],
            max_workers: int = 4, dlq: Optional[DeadLetterQueue] = None) -> Any:
    builder = QueueManagerBuilder().with_max_workers(max_workers).with_metrics(metrics)
    for lane_id, config, priority in lanes:
        builder.with_lane(lane_id, config, priority)
    if dlq is not None:
        builder.with_dlq(dlq)
    return managers.build(builder)


def boom() -> None:
    raise ValueError("boom")


class MinimalBackend(MetricsBackend):
    """A subclass with only the eight abstract methods: everything a queue
    records reaches it through the base class's default ``bind_*``."""

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

    def snapshot(self) -> MetricsSnapshot:
        return MetricsSnapshot(dict(self.counters), dict(self.gauges), {
            name: HistogramStats(len(v), sum(v), min(v), max(v), sum(v) / len(v))
            for name, v in self.samples.items()})

    def reset(self) -> None:
        self.counters.clear()
        self.gauges.clear()
        self.samples.clear()

    def get_counter(self, name: str) -> Optional[int]:
        return self.counters.get(name)

    def get_gauge(self, name: str) -> Optional[float]:
        return self.gauges.get(name)

    def get_histogram_stats(self, name: str) -> Optional[HistogramStats]:
        return self.snapshot().histograms.get(name)


@pytest.fixture(params=["local", "minimal subclass"])
def any_metrics(request: pytest.FixtureRequest) -> QueueMetrics:
    """The same numbers from LocalMetrics and from a MetricsBackend subclass
    that implements only the basic methods (the default bind_* at work)."""
    if request.param == "local":
        return QueueMetrics.local()
    return QueueMetrics(MinimalBackend())


def test_counts_and_histograms_through_a_queue(managers: Any, any_metrics: QueueMetrics
                                               ) -> None:
    metrics = any_metrics
    manager = metered(managers, metrics, ("query", LaneConfig.new(0, 2), 1),
                      ("prompt", LaneConfig.new(0, 2), 2))
    for n in range(30):
        assert manager.submit("query", pow, n, 2).result(WAIT) == n * n
    for n in range(5):
        assert manager.run("prompt", abs, -n) == n  # inline runs count the same
    failed = manager.submit("prompt", boom)
    with pytest.raises(ValueError):
        failed.result(WAIT)
    manager.drain(WAIT)

    snap = metrics.snapshot()
    assert snap.counter(COMMANDS_SUBMITTED, "query") == 30
    assert snap.counter(COMMANDS_COMPLETED, "query") == 30
    assert snap.counter(COMMANDS_SUBMITTED, "prompt") == 6
    assert snap.counter(COMMANDS_COMPLETED, "prompt") == 5
    assert snap.counter(COMMANDS_FAILED, "prompt") == 1
    assert snap.counter(COMMANDS_SUBMITTED) == 36  # overall = sum over lanes
    assert snap.counter(COMMANDS_COMPLETED) == 35
    # One wait sample per start; one run sample per completed or failed run.
    assert snap.histogram(COMMAND_WAIT_TIME, "query").count == 30
    assert snap.histogram(COMMAND_WAIT_TIME, "prompt").count == 6
    assert snap.histogram(COMMAND_LATENCY, "query").count == 30
    assert snap.histogram(COMMAND_LATENCY, "prompt").count == 6
    assert snap.histogram(COMMAND_LATENCY).count == 36
    assert snap.gauges["lane.queue.depth.query"] == 0
    assert snap.gauges["lane.queue.active.query"] == 0


def test_rare_outcomes_are_counted(managers: Any, blocker: Any, any_metrics: QueueMetrics
                                   ) -> None:
    metrics = any_metrics
    dlq = DeadLetterQueue(10)
    manager = metered(
        managers, metrics,
        ("retrying", LaneConfig.new(0, 1).with_retry_policy(RetryPolicy.fixed(1, 0.001)), 1),
        ("slow", LaneConfig.new(0, 1).with_timeout(0.05), 2),
        ("held", LaneConfig.new(0, 1), 3),
        dlq=dlq,
    )
    retried = manager.submit("retrying", boom)
    with pytest.raises(ValueError):
        retried.result(WAIT)
    hold = blocker()
    timed_out = manager.submit("slow", hold)
    with pytest.raises(Exception, match="timed out"):
        timed_out.result(WAIT)
    hold.release()
    held = blocker()
    manager.submit("held", held)
    assert held.wait_entered()
    waiting = manager.submit("held", abs, -1)
    assert waiting.cancel()
    with pytest.raises(CancelledError):
        waiting.result(0)
    held.release()
    manager.drain(WAIT)

    snap = metrics.snapshot()
    assert snap.counter(COMMANDS_RETRIED, "retrying") == 1
    assert snap.counter(COMMANDS_FAILED, "retrying") == 1
    assert snap.counter(COMMANDS_DEAD_LETTERED, "retrying") == 1
    assert snap.histogram(COMMAND_WAIT_TIME, "retrying").count == 2  # both attempts started
    assert snap.histogram(COMMAND_LATENCY, "retrying").count == 1  # the final failure
    assert snap.counter(COMMANDS_TIMEOUT, "slow") == 1
    assert snap.histogram(COMMAND_LATENCY, "slow").min == pytest.approx(50.0)
    assert snap.counter(COMMANDS_CANCELLED, "held") == 1
    assert snap.counter(COMMANDS_SUBMITTED, "held") == 2
    assert snap.counter(COMMANDS_COMPLETED, "held") == 1
    # Every counter and histogram a queue has came through, and each lane's
    # gauges and histograms.
    assert set(COUNTER_NAMES) <= set(snap.counters)
    for lane in ("retrying", "slow", "held"):
        assert {lane_metric(name, lane) for name in GAUGE_NAMES} <= set(snap.gauges)
        for name in HISTOGRAM_NAMES:
            assert snap.histogram(name).count > 0 and snap.histogram(name, lane).count > 0


def test_sample_values_measure_the_wait_and_the_run(managers: Any, blocker: Any) -> None:
    metrics = QueueMetrics.local()
    manager = metered(managers, metrics, ("one", LaneConfig.new(0, 1), 1))
    first = blocker()
    manager.submit("one", first)
    assert first.wait_entered()
    queued_at = time.perf_counter()
    behind = manager.submit("one", time.sleep, 0.03)  # the measured quantity
    time.sleep(0.02)  # it waits at least this long: the worker is held
    first.release()
    behind.result(WAIT)
    waited_ms = (time.perf_counter() - queued_at) * 1000
    snap = metrics.snapshot()
    wait_stats = snap.histogram(COMMAND_WAIT_TIME, "one")
    assert wait_stats.count == 2
    assert 20.0 <= wait_stats.max <= waited_ms
    run = snap.histogram(COMMAND_LATENCY, "one")
    assert run.count == 2
    assert 30.0 <= run.max < waited_ms  # the sleep, not the time in the queue


def test_batches_reach_the_backend_without_reads_and_stay_exact(managers: Any) -> None:
    """Past the engine's batch size and the histograms' exact range: the
    backend gets data while commands run (nobody reads), and a read then
    gives exact counts and bucketed percentiles."""
    metrics = QueueMetrics.local()
    backend = metrics.backend()
    manager = metered(managers, metrics, *[(f"lane{i}", LaneConfig.new(0, 4), i)
                                           for i in range(3)])
    total = 12_000
    wait([manager.submit(f"lane{n % 3}", abs, n) for n in range(total)], timeout=WAIT)
    manager.drain(WAIT)
    # Read the backend directly: no refresh. Batches were handed over on the way.
    pushed = backend.get_counter(COMMANDS_COMPLETED) or 0
    assert pushed > total // 2
    snap = metrics.snapshot()
    assert snap.counter(COMMANDS_SUBMITTED) == total
    assert snap.counter(COMMANDS_COMPLETED) == total
    for i in range(3):
        assert snap.counter(COMMANDS_COMPLETED, f"lane{i}") == total // 3
    latency = snap.histogram(COMMAND_LATENCY)
    assert latency.count == total
    assert latency.count > EXACT_SAMPLES
    assert 0 < latency.min <= latency.p50 <= latency.p99 <= latency.max
    assert snap.histogram(COMMAND_WAIT_TIME).count == total


def test_c_buckets_match_the_python_histogram_keys() -> None:
    values = [0.0, 1e-6, 0.0042, 0.5, 1.0, 1.02, 3.3, 17.25, 999.9, 123456.7]
    keys = ffi.new("uint32_t[]", len(values))
    counts = ffi.new("uint64_t[]", len(values))
    taken = ffi.new("double[4]")
    buckets = ffi.gc(lib.lc_buckets_new(), lib.lc_buckets_free)
    assert lib.lc_buckets_add_ms(buckets, ffi.new("double[]", values), len(values)) == 0
    distinct = lib.lc_buckets_take(buckets, keys, counts, len(values), taken)
    summary = taken + 1  # sum, min, max
    assert distinct == len(values)
    assert sorted(keys[0:distinct]) == sorted(_bucket_keys(values))
    assert (summary[0], summary[1], summary[2]) == (sum(values), 0.0, 123456.7)


def test_bucketed_and_exact_histograms_agree() -> None:
    """The same samples give the same stats whether recorded one by one in
    Python or counted in C buckets and merged when read."""
    samples = [0.01 * (n % 500) + 0.001 * n for n in range(5000)]
    one_by_one = LocalMetrics()
    for value in samples:
        one_by_one.record_histogram("h", value)
    merged = QueueMetrics.local()
    histogram = merged.local_histograms("lane")
    assert histogram is not None
    batch = ffi.new("double[]", samples)
    histogram[1].add_bucketed(batch, 3000)  # two batches, merged when read
    histogram[1].add_bucketed(batch + 3000, len(samples) - 3000)
    assert histogram[1].exact_room() == 0
    expected = one_by_one.get_histogram_stats("h")
    got = merged.snapshot().histogram(COMMAND_LATENCY, "lane")
    assert got.count == expected.count
    assert (got.min, got.max) == (expected.min, expected.max)
    assert got.sum == pytest.approx(expected.sum)
    for p in ("p50", "p90", "p95", "p99"):
        assert getattr(got, p) == pytest.approx(getattr(expected, p), rel=0.01)


class CountingBackend:
    """A backend with only the protocol's methods: QueueMetrics must name
    each lane itself and may pass counts above 1."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self.increments: list[int] = []
        self.samples: dict[str, list[float]] = {}

    def increment_counter(self, name: str, value: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + value
        self.increments.append(value)

    def set_gauge(self, name: str, value: float) -> None:
        pass

    def record_histogram(self, name: str, value: float) -> None:
        self.samples.setdefault(name, []).append(value)

    def snapshot(self) -> MetricsSnapshot:
        return MetricsSnapshot(counters=dict(self.counters))

    def reset(self) -> None:
        self.counters.clear()

    def get_counter(self, name: str) -> Optional[int]:
        return self.counters.get(name)

    def get_gauge(self, name: str) -> Optional[float]:
        return None

    def get_histogram_stats(self, name: str) -> None:
        return None


def test_a_plain_backend_gets_batched_counts_and_every_sample(managers: Any) -> None:
    backend = CountingBackend()
    manager = metered(managers, QueueMetrics(backend), ("query", LaneConfig.new(0, 2), 1))
    wait([manager.submit("query", abs, -n) for n in range(50)], timeout=WAIT)
    manager.drain(WAIT)
    snap = manager.metrics().snapshot()
    assert snap.counters[f"{COMMANDS_SUBMITTED}.query"] == 50
    assert snap.counters[COMMANDS_COMPLETED] == 50
    assert len(backend.samples[f"{COMMAND_LATENCY}.query"]) == 50
    assert len(backend.samples[COMMAND_WAIT_TIME]) == 50
    assert max(backend.increments) > 1  # handed over in batches, not one by one


def test_a_bare_backend_is_wrapped_and_anything_else_refused(managers: Any) -> None:
    backend = LocalMetrics()
    manager = metered(managers, backend, ("query", LaneConfig.new(0, 1), 1))
    assert manager.submit("query", abs, -2).result(WAIT) == 2
    wrapped = manager.metrics()
    assert isinstance(wrapped, QueueMetrics) and wrapped.backend() is backend
    assert wrapped.snapshot().counter(COMMANDS_COMPLETED, "query") == 1
    with pytest.raises(InvalidConfigError, match=r"QueueMetrics or a MetricsBackend.*str"):
        QueueManagerBuilder().with_metrics("statsd")  # type: ignore[arg-type]


def test_a_failing_refresher_is_logged_and_the_others_still_run(
        caplog: pytest.LogCaptureFixture) -> None:
    metrics = QueueMetrics.local()
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("source gone")

    metrics.add_refresher(broken)
    metrics.add_refresher(lambda: ran.append("second"))
    with caplog.at_level(logging.ERROR, logger="pylane.metrics"):
        metrics.snapshot()
    assert ran == ["second"]
    assert "refresher failed" in caplog.text and "source gone" in caplog.text
    metrics.remove_refresher(broken)
    caplog.clear()
    metrics.snapshot()
    assert ran == ["second", "second"] and not caplog.text


def test_feed_reports_samples_lost_to_a_full_log(caplog: pytest.LogCaptureFixture) -> None:
    """Nobody collected while 8 commands left 16 samples in a log of at
    most 4: 12 are lost, counted and logged, and the counters are still
    exact."""
    engine = Engine(0)
    assert engine.add_lane(0, 0, 1) == 0

    class FakeLane:
        lane_id = "only"

    metrics = QueueMetrics.local()
    feed = EngineMetricsFeed(engine.ptr, [FakeLane()], metrics, max_buffered=4)
    for ticket in range(8):
        engine.submit(0, ticket)
        assert engine.try_next() == (0, ticket)
        assert lib.lc_finish_timed(engine.ptr, 0, lib.LC_OUTCOME_COMPLETED, 1_000_000) >= 0
        lib.lc_settle(engine.ptr)
    with caplog.at_level(logging.WARNING, logger="pylane.metrics"):
        feed.collect()
    assert feed.dropped == 12
    assert "12 samples lost" in caplog.text
    snap = metrics.snapshot()
    assert snap.counter(COMMANDS_COMPLETED, "only") == 8
    assert snap.histogram(COMMAND_WAIT_TIME, "only").count + \
        snap.histogram(COMMAND_LATENCY, "only").count == 4


class BrokenBackend(CountingBackend):
    """Every recording raises, as a misconfigured exporter might."""

    def increment_counter(self, name: str, value: int = 1) -> None:
        raise RuntimeError("exporter down")

    def record_histogram(self, name: str, value: float) -> None:
        raise RuntimeError("exporter down")


def test_a_raising_backend_costs_no_command_its_end(managers: Any,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Failures, retries and dead letters call hooks on the worker; a hook
    that raises must not leave the command's slot taken."""
    dlq = DeadLetterQueue(10)
    retrying = LaneConfig.new(0, 1).with_retry_policy(RetryPolicy.fixed(1, 0.001))
    with caplog.at_level(logging.ERROR):
        manager = metered(managers, QueueMetrics(BrokenBackend()), ("query", retrying, 1),
                          dlq=dlq)
        failed = manager.submit("query", boom)
        with pytest.raises(ValueError):
            failed.result(WAIT)
        assert manager.submit("query", abs, -5).result(WAIT) == 5
        manager.drain(WAIT)  # nothing left active
    assert len(dlq) == 1
    assert "metrics hook record_failure failed" in caplog.text
    assert "exporter down" in caplog.text


def test_a_stopped_queue_hands_over_and_lets_go(managers: Any) -> None:
    """One QueueMetrics over many short-lived queues: each stopped queue's
    numbers stay, and it is no longer refreshed (nor kept alive)."""
    metrics = QueueMetrics.local()
    for round_number in range(3):
        manager = metered(managers, metrics, ("query", LaneConfig.new(0, 1), 1))
        assert manager.submit("query", abs, -round_number).result(WAIT) == round_number
        manager.shutdown()
        manager.drain(WAIT)
        assert metrics._refreshers == ()
    snap = metrics.snapshot()
    assert snap.counter(COMMANDS_COMPLETED, "query") == 3
    assert snap.histogram(COMMAND_LATENCY, "query").count == 3
