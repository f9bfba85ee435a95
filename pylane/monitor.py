"""A background monitor: reads the queue's stats on an interval and warns.

The original's monitor only logged, could not be stopped and ignored its
alert manager. This one, on each tick (the first right at ``start()``):

- keeps the stats it read (``last_stats``);
- for each lane whose pending count reaches ``pending_warning_threshold``
  or active count reaches ``active_warning_threshold``, emits
  ``queue.monitor.warning`` once when the lane crosses the threshold (and
  ``queue.monitor.recovered`` when it drops back), and logs it;
- feeds every lane's pending count to ``AlertManager.check_queue_depth``
  and, when given a ``QueueMetrics``, sets its depth and active gauges.

The thread sleeps in ``Event.wait(interval)``, so it costs nothing between
ticks, ``stop()`` wakes it at once, and it ends by itself once the queue
is shutting down.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Optional, Union

from ._durations import to_seconds
from .errors import InvalidConfigError
from .stats import QueueStats

logger = logging.getLogger("pylane.monitor")

MONITOR_WARNING = "queue.monitor.warning"
MONITOR_RECOVERED = "queue.monitor.recovered"
PENDING = "pending"
ACTIVE = "active"


@dataclass
class MonitorConfig:
    """``interval`` is seconds or a ``timedelta`` (stored as seconds).
    Defaults are the original's: 10 s, 100 pending, 50 active."""

    interval: Union[float, timedelta] = 10.0
    pending_warning_threshold: int = 100
    active_warning_threshold: int = 50

    def __post_init__(self) -> None:
        self.interval = to_seconds(self.interval, "monitor interval")
        if self.interval <= 0:
            raise InvalidConfigError("monitor interval must be greater than 0")
        for name in ("pending_warning_threshold", "active_warning_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidConfigError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class MonitorWarning:
    lane_id: str
    metric: str  # "pending" or "active"
    value: int
    threshold: int

    def payload(self) -> dict[str, Any]:
        return {"lane_id": self.lane_id, "metric": self.metric, "value": self.value,
                "threshold": self.threshold}


class QueueMonitor:
    """Watches a ``CommandQueue`` (it uses only ``stats()``, ``emitter`` and
    ``is_shutting_down()``). ``emitter`` defaults to the queue's; ``alerts``
    (an ``AlertManager``) and ``metrics`` (a ``QueueMetrics``) are optional."""

    def __init__(self, queue: Any, config: Optional[MonitorConfig] = None,
                 alerts: Any = None, emitter: Any = None, *, metrics: Any = None) -> None:
        if config is not None and not isinstance(config, MonitorConfig):
            raise InvalidConfigError(f"config must be a MonitorConfig, got {type(config).__name__}")
        if not hasattr(queue, "emitter") and callable(getattr(queue, "queue", None)):
            queue = queue.queue()  # a QueueManager: watch its CommandQueue
        self._queue = queue
        self.config = config if config is not None else MonitorConfig()
        self._alerts = alerts
        self._metrics = metrics
        self._emitter = emitter if emitter is not None else getattr(queue, "emitter", None)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._ticked = threading.Condition()
        self._ticks = 0
        self._last_stats: Optional[QueueStats] = None
        self._warned: set[tuple[str, str]] = set()  # (lane, metric) above threshold

    @classmethod
    def with_config(cls, queue: Any, config: MonitorConfig) -> QueueMonitor:
        return cls(queue, config)

    # -- lifecycle

    def start(self) -> None:
        """Starts the monitor thread; does nothing if it is running."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="pylane-monitor", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: Optional[float] = None) -> None:
        """Stops the thread and waits for it (at most `timeout` seconds)."""
        with self._lock:
            thread = self._thread
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def is_running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def __enter__(self) -> QueueMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            shutting_down = self._queue.is_shutting_down()
            if callable(shutting_down):  # a method on some queue types
                shutting_down = shutting_down()
            if shutting_down:
                logger.debug("queue is shutting down; monitor stops")
                return
            try:
                self.check_health()
            except Exception:  # keep watching: the next tick may succeed
                logger.exception("queue monitor tick failed")
            interval = self.config.interval
            assert not isinstance(interval, timedelta)  # __post_init__ made it seconds
            if stop.wait(interval):
                return

    # -- one tick

    def check_health(self) -> list[MonitorWarning]:
        """Runs one check now and returns the lanes over a threshold."""
        stats = self._queue.stats()
        config = self.config
        readings: dict[tuple[str, str], MonitorWarning] = {}
        for lane in stats.lanes:
            logger.debug("lane %s: %d pending, %d active (max %d)",
                         lane.lane_id, lane.pending, lane.active, lane.max_concurrency)
            readings[(lane.lane_id, PENDING)] = MonitorWarning(
                lane.lane_id, PENDING, lane.pending, config.pending_warning_threshold)
            readings[(lane.lane_id, ACTIVE)] = MonitorWarning(
                lane.lane_id, ACTIVE, lane.active, config.active_warning_threshold)
            if self._alerts is not None:
                self._alerts.check_queue_depth(lane.lane_id, lane.pending)
            if self._metrics is not None:
                self._metrics.set_queue_depth(lane.lane_id, lane.pending)
                self._metrics.set_active_commands(lane.lane_id, lane.active)
        over = {key for key, reading in readings.items() if reading.value >= reading.threshold}
        with self._lock:  # one tick's transitions at a time, events outside
            crossed = [readings[key] for key in readings if key in over - self._warned]
            recovered = [readings[key] for key in readings if key in self._warned - over]
            self._warned = over
        for warning in crossed:
            logger.warning("lane %s: %s %d reached the warning threshold %d",
                           warning.lane_id, warning.metric, warning.value, warning.threshold)
            self._emit(MONITOR_WARNING, warning)
        for warning in recovered:
            logger.info("lane %s: %s back to %d, below the warning threshold %d",
                        warning.lane_id, warning.metric, warning.value, warning.threshold)
            self._emit(MONITOR_RECOVERED, warning)
        with self._ticked:
            self._last_stats = stats
            self._ticks += 1
            self._ticked.notify_all()
        return [readings[key] for key in readings if key in over]

    def _emit(self, key: str, warning: MonitorWarning) -> None:
        if self._emitter is not None:
            self._emitter.emit_new(key, warning.payload())

    # -- reading

    def stats(self) -> QueueStats:
        """The queue's stats now (the original computed them afresh too)."""
        stats: QueueStats = self._queue.stats()
        return stats

    @property
    def last_stats(self) -> Optional[QueueStats]:
        """The stats read by the latest tick, None before the first."""
        return self._last_stats

    @property
    def ticks(self) -> int:
        return self._ticks

    def wait_ticks(self, count: int, timeout: Optional[float] = None) -> bool:
        """Waits until `count` ticks have run in all; False on timeout."""
        with self._ticked:
            return self._ticked.wait_for(lambda: self._ticks >= count, timeout)
