"""QueueMonitor: thresholds, events, alerts, and a thread that stops."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from conftest import WAIT
from pylane.alerts import AlertLevel, AlertManager
from pylane.errors import InvalidConfigError
from pylane.events import EventEmitter
from pylane.metrics import QueueMetrics
from pylane.monitor import (
    MONITOR_RECOVERED,
    MONITOR_WARNING,
    MonitorConfig,
    MonitorWarning,
    QueueMonitor,
)
from pylane.stats import LaneStatus, QueueStats


class FakeQueue:
    """Just what the monitor may use: stats(), emitter, is_shutting_down()."""

    def __init__(self, **lanes: tuple[int, int]) -> None:
        self.emitter = EventEmitter(100)
        self.shutting_down = False
        self.lanes = dict(lanes)  # lane -> (pending, active)
        self.fail_next = False

    def is_shutting_down(self) -> bool:
        return self.shutting_down

    def stats(self) -> QueueStats:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("stats broke")
        statuses = [
            LaneStatus(lane_id, priority, pending, active, 1, 10)
            for priority, (lane_id, (pending, active)) in enumerate(self.lanes.items())
        ]
        return QueueStats(sum(s.pending for s in statuses), sum(s.active for s in statuses),
                          lanes=statuses)


@pytest.fixture
def monitors() -> Any:
    started: list[QueueMonitor] = []
    yield started
    for monitor in started:
        monitor.stop(WAIT)


def test_config_defaults_are_the_originals() -> None:
    config = MonitorConfig()
    assert (config.interval, config.pending_warning_threshold,
            config.active_warning_threshold) == (10.0, 100, 50)
    text = repr(MonitorConfig(interval=timedelta(milliseconds=500)))
    assert "interval=0.5" in text and "pending_warning_threshold=100" in text


@pytest.mark.parametrize("options", [
    {"interval": 0}, {"interval": -1}, {"interval": "5"},
    {"pending_warning_threshold": 0}, {"active_warning_threshold": 1.5},
])
def test_bad_config_fails(options: dict) -> None:
    with pytest.raises(InvalidConfigError):
        MonitorConfig(**options)


def test_no_warnings_below_thresholds() -> None:
    queue = FakeQueue(query=(2, 1))
    monitor = QueueMonitor(queue, MonitorConfig(1, pending_warning_threshold=3,
                                                active_warning_threshold=2))
    assert monitor.check_health() == []
    assert monitor.last_stats.total_pending == 2


def test_warning_at_the_exact_threshold() -> None:
    queue = FakeQueue(query=(3, 2), prompt=(0, 0))
    monitor = QueueMonitor(queue, MonitorConfig(1, pending_warning_threshold=3,
                                                active_warning_threshold=2))
    assert monitor.check_health() == [
        MonitorWarning("query", "pending", 3, 3), MonitorWarning("query", "active", 2, 2),
    ]


def test_events_on_crossing_and_recovery_only() -> None:
    queue = FakeQueue(query=(5, 0))
    stream = queue.emitter.subscribe()
    monitor = QueueMonitor(queue, MonitorConfig(1, pending_warning_threshold=5))
    monitor.check_health()
    monitor.check_health()  # still above: no second event
    queue.lanes["query"] = (1, 0)
    monitor.check_health()
    queue.lanes["query"] = (6, 0)
    monitor.check_health()
    events = [stream.try_recv() for _ in range(4)]
    assert [(e.key, e.payload["value"]) for e in events if e] == [
        (MONITOR_WARNING, 5), (MONITOR_RECOVERED, 1), (MONITOR_WARNING, 6),
    ]
    assert events[0].payload == {"lane_id": "query", "metric": "pending", "value": 5,
                                 "threshold": 5}


def test_an_explicit_emitter_is_used() -> None:
    queue = FakeQueue(query=(0, 9))
    emitter = EventEmitter(10)
    stream = emitter.subscribe()
    own = queue.emitter.subscribe()
    config = MonitorConfig(1, active_warning_threshold=9)
    QueueMonitor(queue, config, emitter=emitter).check_health()
    assert stream.try_recv().payload["metric"] == "active"
    assert own.try_recv() is None


def test_feeds_alerts_and_metrics() -> None:
    queue = FakeQueue(query=(150, 2), prompt=(3, 0))
    alerts = AlertManager.with_queue_depth_alerts(100, 200)
    metrics = QueueMetrics.local()
    monitor = QueueMonitor(queue, MonitorConfig(1), alerts=alerts, metrics=metrics)
    monitor.check_health()
    monitor.check_health()
    assert [(a.lane_id, a.level) for a in alerts.recent_alerts()] == [
        ("query", AlertLevel.WARNING),
    ]
    gauges = metrics.snapshot().gauges
    assert gauges["lane.queue.depth.query"] == 150
    assert gauges["lane.queue.active.query"] == 2


def test_thread_ticks_at_once_and_on_the_interval(monitors: list) -> None:
    queue = FakeQueue(query=(0, 0))
    monitor = QueueMonitor(queue, MonitorConfig(interval=0.01))
    monitors.append(monitor)
    monitor.start()
    monitor.start()  # a second start does nothing
    assert monitor.wait_ticks(3, WAIT)
    assert monitor.is_running


def test_stop_returns_promptly_with_a_long_interval(monitors: list) -> None:
    monitor = QueueMonitor(FakeQueue(query=(0, 0)), MonitorConfig(interval=3600))
    monitors.append(monitor)
    monitor.start()
    assert monitor.wait_ticks(1, WAIT)  # the first tick runs at once
    began = time.monotonic()
    monitor.stop(WAIT)
    assert not monitor.is_running
    assert time.monotonic() - began < WAIT / 2
    assert monitor.ticks == 1


def test_stops_by_itself_when_the_queue_shuts_down(monitors: list) -> None:
    queue = FakeQueue(query=(0, 0))
    monitor = QueueMonitor(queue, MonitorConfig(interval=0.01))
    monitors.append(monitor)
    monitor.start()
    assert monitor.wait_ticks(1, WAIT)
    queue.shutting_down = True
    monitor._thread.join(WAIT)
    assert not monitor.is_running


def test_a_failing_tick_is_logged_and_the_monitor_goes_on(monitors: list,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    queue = FakeQueue(query=(0, 0))
    queue.fail_next = True
    monitor = QueueMonitor(queue, MonitorConfig(interval=0.01))
    monitors.append(monitor)
    monitor.start()
    assert monitor.wait_ticks(1, WAIT)
    assert "queue monitor tick failed" in caplog.text


def test_context_manager_stops_the_thread() -> None:
    with QueueMonitor(FakeQueue(query=(0, 0)), MonitorConfig(interval=3600)) as monitor:
        assert monitor.wait_ticks(1, WAIT)
    assert not monitor.is_running


def test_with_a_real_queue(managers: Any) -> None:
    manager = managers.lanes(("query", 0, 1, 2), ("prompt", 1, 1, 2))
    queue = manager.queue()
    manager.pause_lane("query")
    futures = [manager.submit("query", lambda: None) for _ in range(3)]
    warnings = queue.emitter.subscribe_filtered(lambda e: e.key == MONITOR_WARNING)
    monitor = QueueMonitor(queue, MonitorConfig(interval=3600, pending_warning_threshold=3))
    assert monitor.stats().total_pending == 3
    with monitor:
        event = warnings.recv(WAIT)
    assert event is not None
    assert event.payload == {"lane_id": "query", "metric": "pending", "value": 3, "threshold": 3}
    manager.resume_lane("query")
    for future in futures:
        future.result(WAIT)
    assert QueueMonitor(manager).stats().total_pending == 0  # a manager works too


def test_monitor_thread_ends_when_a_real_queue_shuts_down(managers: Any) -> None:
    manager = managers.lanes(("query", 0, 1, 2))
    monitor = QueueMonitor(manager.queue(), MonitorConfig(interval=0.01))
    monitor.start()
    try:
        assert monitor.wait_ticks(1, WAIT)
        manager.shutdown()
        thread = monitor._thread
        assert isinstance(thread, threading.Thread)
        thread.join(WAIT)
        assert not thread.is_alive()
    finally:
        monitor.stop(WAIT)
