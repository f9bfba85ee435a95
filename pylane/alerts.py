"""Alerts on queue depth and command latency, with callbacks.

What changed from the original, and why:

- an alert fires when a lane *crosses into* a level, not on every check
  while it stays there (the original fired on every check above a
  threshold, so a backed-up lane flooded the callbacks). Levels only
  escalate (Warning, then Critical) until the value drops below the warning
  threshold; then an ``INFO`` alert says it recovered and the next crossing
  fires again (hysteresis: no flapping between Warning and Critical);
- callbacks run after the manager's lock is released, on the thread that
  called ``check_*``, so a slow callback never blocks other checks; one that
  raises is logged and the others still run;
- the last alerts are kept (``recent_alerts()``) for inspection.

Thread-safe: any thread may call ``check_*`` and ``add_callback``.
"""

from __future__ import annotations

import enum
import logging
import math
import sys
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Optional

from .errors import InvalidConfigError

logger = logging.getLogger("pylane.alerts")

QUEUE_DEPTH = "queue_depth"
LATENCY = "latency"


class AlertLevel(enum.IntEnum):
    """Ordered: ``INFO < WARNING < CRITICAL``. INFO marks a recovery."""

    INFO = 0
    WARNING = 1
    CRITICAL = 2

    def __str__(self) -> str:
        return self.name.capitalize()


@dataclass(frozen=True)
class Alert:
    level: AlertLevel
    lane_id: str
    message: str
    current_value: float
    threshold: float
    time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    kind: str = QUEUE_DEPTH  # QUEUE_DEPTH or LATENCY


def _check_thresholds(name: str, warning: float, critical: float) -> None:
    for label, value in (("warning", warning), ("critical", critical)):
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or (isinstance(value, float) and math.isnan(value))):
            raise InvalidConfigError(f"{name} {label} threshold must be a number, got {value!r}")
        if value < 0:
            raise InvalidConfigError(f"{name} {label} threshold must be >= 0, got {value}")
    if warning > critical:
        raise InvalidConfigError(
            f"{name} warning threshold ({warning}) exceeds the critical threshold ({critical})"
        )


@dataclass(frozen=True)
class QueueDepthAlertConfig:
    """Pending commands per lane. Default: disabled."""

    warning_threshold: int = sys.maxsize
    critical_threshold: int = sys.maxsize
    enabled: bool = False

    def __post_init__(self) -> None:
        _check_thresholds("queue depth", self.warning_threshold, self.critical_threshold)

    @classmethod
    def new(cls, warning_threshold: int, critical_threshold: int) -> QueueDepthAlertConfig:
        return cls(warning_threshold, critical_threshold, True)

    @classmethod
    def disabled(cls) -> QueueDepthAlertConfig:
        return cls()


@dataclass(frozen=True)
class LatencyAlertConfig:
    """Command latency in milliseconds. Default: disabled."""

    warning_threshold_ms: float = math.inf
    critical_threshold_ms: float = math.inf
    enabled: bool = False

    def __post_init__(self) -> None:
        _check_thresholds("latency", self.warning_threshold_ms, self.critical_threshold_ms)

    @classmethod
    def new(cls, warning_threshold_ms: float, critical_threshold_ms: float) -> LatencyAlertConfig:
        return cls(warning_threshold_ms, critical_threshold_ms, True)

    @classmethod
    def disabled(cls) -> LatencyAlertConfig:
        return cls()


AlertCallback = Callable[[Alert], object]


class AlertManager:
    """Checks values against thresholds and tells the callbacks about level
    changes. ``history`` bounds ``recent_alerts()``."""

    def __init__(self, history: int = 100) -> None:
        if isinstance(history, bool) or not isinstance(history, int) or history < 0:
            raise InvalidConfigError(f"alert history must be a non-negative int, got {history!r}")
        self._lock = threading.Lock()
        self._depth = QueueDepthAlertConfig.disabled()
        self._latency = LatencyAlertConfig.disabled()
        self._callbacks: tuple[AlertCallback, ...] = ()  # copy-on-write
        # (kind, lane) -> the highest level reached since the last recovery
        self._levels: dict[tuple[str, str], AlertLevel] = {}
        self._active: dict[tuple[str, str], Alert] = {}
        self._recent: deque[Alert] = deque(maxlen=history)

    @classmethod
    def with_queue_depth_alerts(cls, warning: int, critical: int) -> AlertManager:
        manager = cls()
        manager.set_queue_depth_config(QueueDepthAlertConfig.new(warning, critical))
        return manager

    @classmethod
    def with_latency_alerts(cls, warning_ms: float, critical_ms: float) -> AlertManager:
        manager = cls()
        manager.set_latency_config(LatencyAlertConfig.new(warning_ms, critical_ms))
        return manager

    # -- configuration

    def set_queue_depth_config(self, config: QueueDepthAlertConfig) -> AlertManager:
        if not isinstance(config, QueueDepthAlertConfig):
            raise InvalidConfigError(
                f"expected a QueueDepthAlertConfig, got {type(config).__name__}"
            )
        with self._lock:
            self._depth = config
        return self

    def set_latency_config(self, config: LatencyAlertConfig) -> AlertManager:
        if not isinstance(config, LatencyAlertConfig):
            raise InvalidConfigError(f"expected a LatencyAlertConfig, got {type(config).__name__}")
        with self._lock:
            self._latency = config
        return self

    def queue_depth_config(self) -> QueueDepthAlertConfig:
        return self._depth

    def latency_config(self) -> LatencyAlertConfig:
        return self._latency

    def add_callback(self, callback: AlertCallback) -> AlertCallback:
        """Registers `callback` (also usable as a decorator). Callbacks are
        called in registration order, outside any lock, on the checking
        thread; alerts from different threads may interleave."""
        if not callable(callback):
            raise InvalidConfigError("alert callback must be callable, got "
                                  f"{type(callback).__name__}")
        with self._lock:
            self._callbacks = (*self._callbacks, callback)
        return callback

    def remove_callback(self, callback: AlertCallback) -> bool:
        with self._lock:
            kept = tuple(c for c in self._callbacks if c is not callback)
            removed = len(kept) != len(self._callbacks)
            self._callbacks = kept
        return removed

    # -- checks

    def check_queue_depth(self, lane_id: str, depth: int) -> Optional[Alert]:
        """Returns the alert fired by this check, if any."""
        config = self._depth
        if not config.enabled:
            return None
        return self._check(
            QUEUE_DEPTH, lane_id, float(depth),
            float(config.warning_threshold), float(config.critical_threshold),
        )

    def check_latency(self, lane_id: str, latency_ms: float) -> Optional[Alert]:
        """Returns the alert fired by this check, if any."""
        config = self._latency
        if not config.enabled:
            return None
        return self._check(
            LATENCY, lane_id, float(latency_ms),
            config.warning_threshold_ms, config.critical_threshold_ms,
        )

    def _check(self, kind: str, lane_id: str, value: float,
               warning: float, critical: float) -> Optional[Alert]:
        if value >= critical:
            level: Optional[AlertLevel] = AlertLevel.CRITICAL
        elif value >= warning:
            level = AlertLevel.WARNING
        else:
            level = None
        key = (kind, lane_id)
        with self._lock:
            current = self._levels.get(key)
            if level is not None and (current is None or level > current):
                threshold = critical if level is AlertLevel.CRITICAL else warning
                alert = Alert(level, lane_id, _message(kind, level, value, threshold),
                              value, threshold, kind=kind)
                self._levels[key] = level
                self._active[key] = alert
            elif level is None and current is not None:
                alert = Alert(AlertLevel.INFO, lane_id,
                              _message(kind, AlertLevel.INFO, value, warning),
                              value, warning, kind=kind)
                del self._levels[key]
                del self._active[key]
            else:
                return None
            self._recent.append(alert)
            callbacks = self._callbacks
        self._deliver(alert, callbacks)
        return alert

    def _deliver(self, alert: Alert, callbacks: Iterable[AlertCallback]) -> None:
        for callback in callbacks:
            try:
                callback(alert)
            except Exception:
                logger.exception("alert callback %r raised on %s; the other callbacks still run",
                                 callback, alert.message)

    # -- state

    def recent_alerts(self, limit: Optional[int] = None) -> list[Alert]:
        """The last alerts fired, oldest first."""
        with self._lock:
            alerts = list(self._recent)
        return alerts if limit is None else alerts[-limit:] if limit > 0 else []

    def active_alerts(self) -> list[Alert]:
        """The alert that raised each (kind, lane) still above its warning
        threshold."""
        with self._lock:
            return list(self._active.values())

    def level(self, lane_id: str, kind: str = QUEUE_DEPTH) -> Optional[AlertLevel]:
        """The level a lane is at for `kind`, None when below warning."""
        with self._lock:
            return self._levels.get((kind, lane_id))

    def clear(self) -> None:
        """Forgets levels and history (callbacks and configs stay)."""
        with self._lock:
            self._levels.clear()
            self._active.clear()
            self._recent.clear()


def _message(kind: str, level: AlertLevel, value: float, threshold: float) -> str:
    if kind == LATENCY:
        if level is AlertLevel.INFO:
            return f"Latency recovered: {value:.2f}ms (below warning threshold: {threshold:.2f}ms)"
        return f"Latency {level.name.lower()}: {value:.2f}ms (threshold: {threshold:.2f}ms)"
    if level is AlertLevel.INFO:
        return f"Queue depth recovered: {value:g} (below warning threshold: {threshold:g})"
    return f"Queue depth {level.name.lower()}: {value:g} (threshold: {threshold:g})"
