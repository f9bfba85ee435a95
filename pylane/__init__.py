"""a3s-lane: a lane-based priority command queue on a small C engine.

Two surfaces over one engine: the full API (``QueueManagerBuilder``,
``QueueManager``, ``Command``, ``EventEmitter``...) and the SDK surface
(``Lane``, ``LaneConfig``) documented by the original a3s-lane README.
"""

from .command import Command, FunctionCommand, JsonCommand
from .config import DEFAULT_LANES, LaneConfig
from .errors import (
    InvalidConfigError,
    InvalidPayloadError,
    LaneError,
    LaneNotFoundError,
    LaneTimeoutError,
    NotStartedError,
    ShutdownInProgressError,
)
from .events import EventEmitter, EventStream, LaneEvent
from .manager import QueueManager, QueueManagerBuilder
from .queue import CommandFuture, CommandQueue
from .sdk import Lane
from .stats import LaneStatus, QueueStats

__all__ = [
    "DEFAULT_LANES",
    "Command",
    "CommandFuture",
    "CommandQueue",
    "EventEmitter",
    "EventStream",
    "FunctionCommand",
    "InvalidConfigError",
    "InvalidPayloadError",
    "JsonCommand",
    "Lane",
    "LaneConfig",
    "LaneError",
    "LaneEvent",
    "LaneNotFoundError",
    "LaneStatus",
    "LaneTimeoutError",
    "NotStartedError",
    "QueueManager",
    "QueueManagerBuilder",
    "QueueStats",
    "ShutdownInProgressError",
]
