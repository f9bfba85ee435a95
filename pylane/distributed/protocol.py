"""What a distributed queue is made of: envelopes, results, partitioners, stats.

Plain data and small callables, shared by the coordinator and its tests; no
engine, no processes, no threads. ``pack`` turns a callable into an
envelope. ``DistributedQueue`` is the protocol a queue spanning machines
(e.g. on Redis) would implement; ``LocalDistributedQueue``
(``coordinator.py``) is the one-machine version.
"""

from __future__ import annotations

import itertools
import pickle
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Union, runtime_checkable

from ..command import Command, command_type_of
from ..errors import CommandSerializationError, InvalidArgumentError

PartitionKey = Union[str, bytes, int]


class RemoteTraceback(Exception):
    """Set as ``__cause__`` of an exception raised in a worker process, so
    the traceback printed here shows where it was raised there."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


@dataclass
class CommandEnvelope:
    """A command on its way to a partition. ``payload`` is the pickled
    ``(callable, args, kwargs)``; ``partition_id``, when set before the
    command is queued, pins it to that partition (the partitioner is not
    asked)."""

    id: str
    command_type: str
    lane_id: str
    payload: bytes
    partition_key: Optional[PartitionKey] = None
    partition_id: Optional[int] = None
    retry_count: int = 0
    created_at: float = field(default_factory=time.time)


def pack(command_id: str, lane_id: str, command: Any, args: tuple[Any, ...],
         kwargs: dict[str, Any], partition_key: Optional[PartitionKey] = None
         ) -> CommandEnvelope:
    """The envelope for ``command(*args, **kwargs)`` (or a ``Command``'s
    ``execute()``): pickled here, so a command that cannot cross to a worker
    process fails now (``CommandSerializationError``), and a bad key too."""
    if isinstance(command, Command):
        if args or kwargs:
            raise InvalidArgumentError("arguments can only be passed with a plain "
                                    "callable, not a Command")
        label, call = command_type_of(command), command.execute
    elif callable(command):
        label, call = getattr(command, "__name__", type(command).__name__), command
    else:
        raise InvalidArgumentError("submit() needs a Command or a callable, got "
                                f"{type(command).__name__}")
    if partition_key is not None:
        stable_hash(partition_key)  # a bad key fails here, not in the partitioner
    try:
        payload = pickle.dumps((call, args, kwargs), pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        raise CommandSerializationError(
            f"command {label!r} for lane {lane_id!r} cannot be sent to a worker process "
            f"(it must be picklable: a module-level function or class, with picklable "
            f"arguments): {error}"
        ) from error
    return CommandEnvelope(command_id, label, lane_id, payload, partition_key=partition_key)


@dataclass
class CommandResult:
    command_id: str
    ok: bool
    value: Any = None
    error: Optional[BaseException] = None
    worker_id: str = ""
    duration_ms: float = 0.0


@dataclass(frozen=True)
class PartitionStats:
    """One worker process. ``pending``: commands the scheduler has already
    dispatched to this partition that wait for its worker (a keyed command
    whose partition is busy); commands not yet dispatched wait in their lane,
    see ``LocalDistributedQueue.lane_stats``."""

    partition_id: int
    pid: Optional[int]
    pending: int
    running: bool
    completed: int
    failed: int
    alive: bool


@runtime_checkable
class DistributedQueue(Protocol):
    """A queue whose commands run in partitions, possibly elsewhere."""

    def enqueue(self, envelope: CommandEnvelope) -> Future[Any]:
        """Queues the command in its lane; the future resolves with its
        result."""
        ...

    def dequeue(self, partition_id: int, timeout: Optional[float] = 0.0
                ) -> Optional[CommandEnvelope]:
        """Claims the command that goes next under the lane rules, to run on
        `partition_id`; None if there is none within `timeout` (None: wait
        until one comes or the queue stops). The claim holds a slot until
        ``complete()`` reports its result."""
        ...

    def complete(self, result: CommandResult) -> None:
        """Reports a command's result, resolving its future."""
        ...

    def num_partitions(self) -> int: ...

    def worker_id(self) -> str: ...


# ---- partitioners ---------------------------------------------------------------
#
# The lane rules decide which command runs next; a partitioner only decides
# which worker process runs it. It is called once the command is dispatched,
# with each partition's load (running plus dispatched-and-waiting), under the
# queue's lock: it must not call back into the queue.

Partitioner = Callable[[CommandEnvelope, Sequence[int]], int]


def stable_hash(key: PartitionKey) -> int:
    """CRC-32 of the key's bytes: the same in every process and version
    (Python's ``hash()`` of a str is salted per process)."""
    if isinstance(key, bytes):
        data = key
    elif isinstance(key, str):
        data = key.encode("utf-8")
    elif isinstance(key, int) and not isinstance(key, bool):
        data = str(key).encode("ascii")
    else:
        raise InvalidArgumentError("partition key must be str, bytes or int, "
                                f"got {type(key).__name__}")
    return zlib.crc32(data)


class LeastLoadedPartitioner:
    """The default: a keyed command goes to ``stable_hash(key) % n``; others
    to the partition with the fewest running and waiting commands (ties
    taken in turn, so an idle queue spreads work round-robin)."""

    def __init__(self) -> None:
        self._turn = itertools.count()

    def __call__(self, envelope: CommandEnvelope, loads: Sequence[int]) -> int:
        n = len(loads)
        if envelope.partition_key is not None:
            return stable_hash(envelope.partition_key) % n
        start = next(self._turn) % n
        return min(((start + i) % n for i in range(n)), key=loads.__getitem__)


class RoundRobinPartitioner:
    """0, 1, 2, ..., n-1, 0, ... whatever the keys and loads."""

    def __init__(self) -> None:
        self._turn = itertools.count()

    def __call__(self, envelope: CommandEnvelope, loads: Sequence[int]) -> int:
        return next(self._turn) % len(loads)


class HashPartitioner:
    """By ``partition_key``, or by command type when there is no key."""

    def __call__(self, envelope: CommandEnvelope, loads: Sequence[int]) -> int:
        key = envelope.partition_key
        return stable_hash(envelope.command_type if key is None else key) % len(loads)
