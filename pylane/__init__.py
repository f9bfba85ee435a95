"""a3s-lane: a lane-based priority command queue on a small C engine.

Two surfaces over one engine: the full API (``QueueManagerBuilder``,
``QueueManager``, ``Command``, ``EventEmitter``...) and the SDK surface
(``Lane``, ``LaneConfig``) documented by the original a3s-lane README.
"""

from .boost import PriorityBoostConfig
from .cancel import CancelToken, CommandCancelledError, cancel_token
from .command import Command, FunctionCommand, JsonCommand
from .config import DEFAULT_LANES, LaneConfig
from .dlq import DeadLetter, DeadLetterQueue
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
from .execution import CommandTimeoutError
from .manager import QueueManager, QueueManagerBuilder
from .queue import CommandFuture, CommandQueue
from .ratelimit import RateLimitConfig
from .retry import RetryPolicy
from .sdk import Lane
from .stats import LaneStatus, QueueStats
from .storage import LocalStorage, Storage, StorageError, StoredCommand, StoredDeadLetter

__all__ = [
    "DEFAULT_LANES",
    "CancelToken",
    "Command",
    "CommandCancelledError",
    "CommandFuture",
    "CommandQueue",
    "CommandTimeoutError",
    "DeadLetter",
    "DeadLetterQueue",
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
    "LocalStorage",
    "NotStartedError",
    "PriorityBoostConfig",
    "QueueManager",
    "QueueManagerBuilder",
    "QueueStats",
    "RateLimitConfig",
    "RetryPolicy",
    "ShutdownInProgressError",
    "Storage",
    "StorageError",
    "StoredCommand",
    "StoredDeadLetter",
    "cancel_token",
]
