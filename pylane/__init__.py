"""a3s-lane: a lane-based priority command queue on a small C engine.

Two surfaces over one engine: the full API (``QueueManagerBuilder``,
``QueueManager``, ``Command``, ``EventEmitter``...) and the SDK surface
(``Lane``, ``LaneConfig``) documented by the original a3s-lane README.
Every public class is importable from here; the optional heavy parts
(OpenTelemetry, process partitions) are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._runtime.future import CommandFuture
from ._runtime.queue import CommandQueue
from .cancel import CancelToken, cancel_token
from .command import Command, FunctionCommand, JsonCommand
from .config import DEFAULT_LANES, LaneConfig
from .durable import (
    DeadLetter,
    DeadLetterQueue,
    LocalStorage,
    Storage,
    StoredCommand,
    StoredDeadLetter,
)
from .errors import (
    CommandCancelledError,
    CommandSerializationError,
    CommandTimeoutError,
    InvalidArgumentError,
    InvalidConfigError,
    InvalidPayloadError,
    LaneConfigConflictError,
    LaneDeadlockError,
    LaneError,
    LaneNotFoundError,
    LaneTimeoutError,
    LibraryVersionError,
    NotStartedError,
    QueueForkedError,
    RebuildError,
    RedisConnectionError,
    RemoteCommandError,
    ShutdownInProgressError,
    StorageError,
    WorkerCrashedError,
)
from .events import EventEmitter, EventStream, LaneEvent
from .lanes import PriorityBoostConfig, RateLimitConfig, RetryPolicy
from .manager import QueueManager, QueueManagerBuilder
from .metrics import LocalMetrics, MetricsBackend, MetricsSnapshot, QueueMetrics
from .sdk import Lane
from .stats import LaneStatus, QueueStats

if TYPE_CHECKING:
    from .alerts import Alert, AlertLevel, AlertManager, LatencyAlertConfig, QueueDepthAlertConfig
    from .distributed import DistributedQueue, LocalDistributedQueue
    from .monitor import MonitorConfig, QueueMonitor
    from .otel import OtelMetricsBackend

# Public names imported on first use: name -> module.
_LAZY = {
    "Alert": ".alerts",
    "AlertLevel": ".alerts",
    "AlertManager": ".alerts",
    "LatencyAlertConfig": ".alerts",
    "QueueDepthAlertConfig": ".alerts",
    "DistributedQueue": ".distributed",
    "LocalDistributedQueue": ".distributed",
    "MonitorConfig": ".monitor",
    "QueueMonitor": ".monitor",
    "OtelMetricsBackend": ".otel",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pylane' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "DEFAULT_LANES",
    "Alert",
    "AlertLevel",
    "AlertManager",
    "CancelToken",
    "Command",
    "CommandCancelledError",
    "CommandFuture",
    "CommandQueue",
    "CommandSerializationError",
    "CommandTimeoutError",
    "DeadLetter",
    "DeadLetterQueue",
    "DistributedQueue",
    "EventEmitter",
    "EventStream",
    "FunctionCommand",
    "InvalidArgumentError",
    "InvalidConfigError",
    "InvalidPayloadError",
    "JsonCommand",
    "Lane",
    "LaneConfig",
    "LaneConfigConflictError",
    "LaneDeadlockError",
    "LaneError",
    "LaneEvent",
    "LaneNotFoundError",
    "LaneStatus",
    "LaneTimeoutError",
    "LatencyAlertConfig",
    "LibraryVersionError",
    "LocalDistributedQueue",
    "LocalMetrics",
    "LocalStorage",
    "MetricsBackend",
    "MetricsSnapshot",
    "MonitorConfig",
    "NotStartedError",
    "OtelMetricsBackend",
    "PriorityBoostConfig",
    "QueueDepthAlertConfig",
    "QueueForkedError",
    "QueueManager",
    "QueueManagerBuilder",
    "QueueMetrics",
    "QueueMonitor",
    "QueueStats",
    "RateLimitConfig",
    "RebuildError",
    "RedisConnectionError",
    "RemoteCommandError",
    "RetryPolicy",
    "ShutdownInProgressError",
    "Storage",
    "StorageError",
    "StoredCommand",
    "StoredDeadLetter",
    "WorkerCrashedError",
    "cancel_token",
]
