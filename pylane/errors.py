"""The errors a3s-lane raises: one base class, one subclass per problem.

``LaneError`` derives from ``RuntimeError`` because the original SDK raised
``RuntimeError`` for every engine error; code written against it keeps working.
"""

from __future__ import annotations


class LaneError(RuntimeError):
    """Base class of every error raised by a3s-lane."""


class LaneNotFoundError(LaneError, KeyError):
    """A submit or lane operation named a lane that does not exist."""

    def __init__(self, lane_id: str, known: list[str] | None = None) -> None:
        self.lane_id = lane_id
        message = f"Lane not found: {lane_id}"
        if known:
            message += f" (known lanes: {', '.join(known)})"
        super().__init__(message)

    # KeyError's str() would wrap the message in quotes.
    def __str__(self) -> str:
        return str(self.args[0])


class ShutdownInProgressError(LaneError):
    """A command was submitted after ``shutdown()``."""

    def __init__(self) -> None:
        super().__init__("Queue is shutting down, not accepting new commands")


class NotStartedError(LaneError):
    """A blocking submit or a drain with work pending was made before
    ``start()``: it would wait forever."""

    def __init__(self) -> None:
        super().__init__(
            "Queue is not started: call start() before a blocking submit or drain "
            "(queued submits are accepted and run once started)"
        )


class InvalidConfigError(LaneError, ValueError):
    """A lane or queue configuration is invalid; the message names the field."""

    def __init__(self, message: str) -> None:
        super().__init__(f"Configuration error: {message}")


class LaneTimeoutError(LaneError, TimeoutError):
    """A wait (drain, or later a command's deadline) ran out of time."""


class InvalidArgumentError(LaneError, TypeError):
    """An argument of the wrong kind: a command that is neither a Command
    nor a callable, a command type that is not a string, a lane id that is
    not a string. Also a ``TypeError``, which such calls raised before."""


class InvalidPayloadError(LaneError, ValueError):
    """A payload cannot be carried as JSON (SDK submit)."""


class CommandTimeoutError(LaneTimeoutError):
    """A command's attempt ran past its lane's timeout."""


class CommandCancelledError(LaneError):
    """Raised by ``CancelToken.raise_if_cancelled`` once the token is set."""


class StorageError(LaneError):
    """The storage backend failed or holds data it cannot read."""


class RebuildError(LaneError):
    """A stored command could not be turned back into a command."""


class CommandSerializationError(LaneError):
    """A command, its arguments or its result cannot be pickled, so it cannot
    cross to or from a worker process."""


class RemoteCommandError(LaneError):
    """A command raised an exception that could not be pickled back; this
    carries its repr and the worker's traceback."""

    def __init__(self, message: str, remote_traceback: str = "") -> None:
        super().__init__(message, remote_traceback)
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:
        return str(self.args[0])


class WorkerCrashedError(LaneError):
    """The worker process died (or could not start) while a command was
    assigned to it."""


class LaneDeadlockError(LaneError):
    """A command blocked on another command that can never run: the lane it
    waits on is full of commands blocked the same way, or every worker is.
    Raised at once instead of hanging."""


class QueueForkedError(LaneError):
    """A queue started in one process was used in a child made by fork():
    the child has none of its worker threads. Create (and start) a new queue
    in the child."""

    def __init__(self, parent_pid: int) -> None:
        super().__init__(f"this queue was started in process {parent_pid}; create or start "
                         f"a new one in the child")
        self.parent_pid = parent_pid


class RedisConnectionError(LaneError, ConnectionError):
    """Redis cannot be reached: at start (after a bounded connect timeout) or
    lost mid-run. The message names the URL (without its password). Also a
    ``ConnectionError``."""


class LibraryVersionError(LaneError):
    """Redis already holds a3s-lane functions of a version this package
    cannot use (newer, or too old to replace in place); names both."""

    def __init__(self, loaded: object, ours: int) -> None:
        super().__init__(f"Redis holds the a3s_lane function library version {loaded}; this "
                         f"package ships version {ours} and cannot use or replace it (upgrade "
                         "this package, or FUNCTION DELETE a3s_lane once no worker uses it)")
        self.loaded = loaded
        self.ours = ours


class LaneConfigConflictError(InvalidConfigError):
    """A lane's configuration differs from the one a shared (Redis) queue
    already stores; the message names the lane, the field and both values."""
