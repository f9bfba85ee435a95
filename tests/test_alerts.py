"""AlertManager: thresholds, de-duplication with hysteresis, callbacks."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone

import pytest

from conftest import WAIT
from pylane.alerts import (
    LATENCY,
    QUEUE_DEPTH,
    Alert,
    AlertLevel,
    AlertManager,
    LatencyAlertConfig,
    QueueDepthAlertConfig,
)
from pylane.errors import InvalidConfigError


def collecting(manager: AlertManager) -> list[Alert]:
    seen: list[Alert] = []
    manager.add_callback(seen.append)
    return seen


def test_levels_are_ordered() -> None:
    assert AlertLevel.INFO < AlertLevel.WARNING < AlertLevel.CRITICAL
    assert str(AlertLevel.CRITICAL) == "Critical"


def test_configs() -> None:
    depth = QueueDepthAlertConfig.new(50, 100)
    assert (depth.warning_threshold, depth.critical_threshold, depth.enabled) == (50, 100, True)
    assert not QueueDepthAlertConfig.disabled().enabled
    assert QueueDepthAlertConfig() == QueueDepthAlertConfig.disabled()
    latency = LatencyAlertConfig.new(100.0, 500.0)
    assert (latency.warning_threshold_ms, latency.critical_threshold_ms) == (100.0, 500.0)
    assert latency.enabled and not LatencyAlertConfig().enabled


@pytest.mark.parametrize("thresholds", [(200, 100), (-1, 10), (float("nan"), 1), ("1", 2)])
def test_bad_thresholds_fail_at_build_time(thresholds: tuple) -> None:
    with pytest.raises(InvalidConfigError):
        QueueDepthAlertConfig.new(*thresholds)
    with pytest.raises(InvalidConfigError):
        AlertManager.with_latency_alerts(*thresholds)


def test_a_new_manager_is_disabled() -> None:
    manager = AlertManager()
    seen = collecting(manager)
    assert not manager.queue_depth_config().enabled
    assert not manager.latency_config().enabled
    assert manager.check_queue_depth("query", 10**9) is None
    assert manager.check_latency("query", 1e9) is None
    assert seen == []


def test_constructors_enable_one_kind_each() -> None:
    depth = AlertManager.with_queue_depth_alerts(50, 100)
    assert depth.queue_depth_config() == QueueDepthAlertConfig.new(50, 100)
    assert not depth.latency_config().enabled
    latency = AlertManager.with_latency_alerts(100, 500)
    assert latency.latency_config() == LatencyAlertConfig.new(100, 500)
    assert not latency.queue_depth_config().enabled
    both = AlertManager().set_queue_depth_config(QueueDepthAlertConfig.new(1, 2))
    both.set_latency_config(LatencyAlertConfig.new(3, 4))
    assert both.queue_depth_config().enabled and both.latency_config().enabled


@pytest.mark.parametrize(("depth", "level"), [
    (50, None), (99, None), (100, AlertLevel.WARNING), (150, AlertLevel.WARNING),
    (200, AlertLevel.CRITICAL), (250, AlertLevel.CRITICAL),
])
def test_queue_depth_levels(depth: int, level: AlertLevel | None) -> None:
    manager = AlertManager.with_queue_depth_alerts(100, 200)
    alert = manager.check_queue_depth("query", depth)
    assert (alert.level if alert else None) == level
    if alert:
        assert alert.lane_id == "query"
        assert alert.kind == QUEUE_DEPTH
        assert alert.current_value == depth
        assert alert.threshold == (200 if level is AlertLevel.CRITICAL else 100)
        assert alert.time.tzinfo is timezone.utc
        assert abs((datetime.now(timezone.utc) - alert.time).total_seconds()) < 60


def test_messages_follow_the_original_templates() -> None:
    depth = AlertManager.with_queue_depth_alerts(100, 200)
    assert depth.check_queue_depth("q", 150).message == "Queue depth warning: 150 (threshold: 100)"
    assert depth.check_queue_depth("q", 250).message == "Queue depth critical: 250 (threshold: 200)"
    latency = AlertManager.with_latency_alerts(100, 500)
    assert latency.check_latency("q", 250).message == (
        "Latency warning: 250.00ms (threshold: 100.00ms)"
    )
    assert latency.check_latency("q", 600).kind == LATENCY


def test_an_alert_fires_on_crossing_not_on_every_check() -> None:
    manager = AlertManager.with_queue_depth_alerts(100, 200)
    seen = collecting(manager)
    for depth in (150, 160, 150, 250, 260, 150, 250, 120):
        manager.check_queue_depth("query", depth)
    # warning once, critical once; dropping back to warning (still above it)
    # and rising again fire nothing: levels only escalate until recovery.
    assert [(a.level, a.current_value) for a in seen] == [
        (AlertLevel.WARNING, 150), (AlertLevel.CRITICAL, 250),
    ]
    assert manager.level("query") is AlertLevel.CRITICAL


def test_recovery_below_warning_rearms_the_alert() -> None:
    manager = AlertManager.with_queue_depth_alerts(100, 200)
    seen = collecting(manager)
    for depth in (150, 10, 5, 150):
        manager.check_queue_depth("query", depth)
    assert [a.level for a in seen] == [AlertLevel.WARNING, AlertLevel.INFO, AlertLevel.WARNING]
    assert seen[1].message == "Queue depth recovered: 10 (below warning threshold: 100)"
    assert manager.level("query") is AlertLevel.WARNING


def test_lanes_and_kinds_are_tracked_separately() -> None:
    manager = AlertManager.with_queue_depth_alerts(100, 200)
    manager.set_latency_config(LatencyAlertConfig.new(10, 20))
    seen = collecting(manager)
    manager.check_queue_depth("query", 150)
    manager.check_queue_depth("prompt", 150)
    manager.check_latency("query", 15)
    assert [(a.kind, a.lane_id) for a in seen] == [
        (QUEUE_DEPTH, "query"), (QUEUE_DEPTH, "prompt"), (LATENCY, "query"),
    ]
    assert {(a.kind, a.lane_id) for a in manager.active_alerts()} == {
        (QUEUE_DEPTH, "query"), (QUEUE_DEPTH, "prompt"), (LATENCY, "query"),
    }


def test_callbacks_run_in_order_once_each() -> None:
    manager = AlertManager.with_queue_depth_alerts(1, 2)
    calls: list[str] = []
    manager.add_callback(lambda a: calls.append("first"))
    manager.add_callback(lambda a: calls.append("second"))
    manager.check_queue_depth("query", 1)
    assert calls == ["first", "second"]


def test_a_raising_callback_is_logged_and_isolated(caplog: pytest.LogCaptureFixture) -> None:
    manager = AlertManager.with_queue_depth_alerts(1, 2)

    def broken(alert: Alert) -> None:
        raise RuntimeError("callback bug")

    manager.add_callback(broken)
    seen = collecting(manager)
    with caplog.at_level(logging.ERROR, logger="pylane.alerts"):
        alert = manager.check_queue_depth("query", 5)
    assert alert is not None and seen == [alert]
    assert "callback bug" in caplog.text
    assert manager.remove_callback(broken)
    assert not manager.remove_callback(broken)


def test_callbacks_run_outside_the_lock() -> None:
    """A callback may call back into the manager (the original held its
    locks during callbacks)."""
    manager = AlertManager.with_queue_depth_alerts(1, 10)
    inner: list[object] = []

    def reentrant(alert: Alert) -> None:
        manager.recent_alerts()
        if alert.lane_id == "query":
            inner.append(manager.check_queue_depth("prompt", 20))

    manager.add_callback(reentrant)
    worker = threading.Thread(target=manager.check_queue_depth, args=("query", 5), daemon=True)
    worker.start()
    worker.join(WAIT)
    assert not worker.is_alive(), "a callback calling the manager deadlocked"
    assert inner[0].level is AlertLevel.CRITICAL


def test_concurrent_checks_fire_one_alert() -> None:
    manager = AlertManager.with_queue_depth_alerts(10, 1000)
    seen = collecting(manager)
    barrier = threading.Barrier(8)

    def check() -> None:
        barrier.wait(WAIT)
        for _ in range(200):
            manager.check_queue_depth("query", 50)

    threads = [threading.Thread(target=check) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert len(seen) == 1


def test_recent_alerts_are_bounded() -> None:
    manager = AlertManager(history=3)
    manager.set_queue_depth_config(QueueDepthAlertConfig.new(1, 100))
    for lane in ("a", "b", "c", "d"):
        manager.check_queue_depth(lane, 5)
    assert [a.lane_id for a in manager.recent_alerts()] == ["b", "c", "d"]
    assert [a.lane_id for a in manager.recent_alerts(limit=1)] == ["d"]
    manager.clear()
    assert manager.recent_alerts() == [] and manager.active_alerts() == []
