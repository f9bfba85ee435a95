"""Partitions: CPU-bound commands in worker processes, lane priority kept.

Threads cannot run Python code in parallel (the GIL), so CPU-bound commands
gain nothing from more worker threads. ``LocalDistributedQueue`` runs them in
worker processes, one per partition:

    with LocalDistributedQueue(2) as queue:             # or .auto(): one per CPU
        future = queue.submit("query", crunch, 10_000)  # a concurrent.futures.Future
        print(future.result())

How it works, and why:

- each partition has a priority queue in this process (lane priority, then
  FIFO) and one worker process that runs one command at a time. A thread per
  partition takes the most urgent command, sends it, blocks on the pipe for
  the result and resolves the future, so priority is exact (a command is
  only handed over when the worker is free) and no thread ever polls;
- the partition is chosen when the command is enqueued (the original never
  applied its partitioner): the same ``partition_key`` always goes to the
  same partition (``zlib.crc32``, stable across runs and versions), otherwise
  to the least-loaded partition; a custom ``partitioner`` may decide instead;
- the command and its arguments are pickled by ``submit``, so one that cannot
  be pickled fails that call at once (``CommandSerializationError``) and
  nothing else; a command that raises fails its own future with its
  exception, pickled back with the remote traceback as ``__cause__`` (an
  exception that cannot cross becomes a ``RemoteCommandError`` with its
  repr); a worker that dies fails the command it was running
  (``WorkerCrashedError``) and is replaced;
- processes are started with ``forkserver`` (``spawn`` where that is
  missing), which is safe in a program that has threads, unlike ``fork``.
  Commands must therefore be importable functions (not lambdas or closures).

``DistributedQueue`` is the protocol a queue spanning machines (e.g. on
Redis) would implement; ``LocalDistributedQueue`` is the one-machine version.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Union, runtime_checkable

from ..command import Command, command_type_of
from ..config import DEFAULT_LANES, LaneConfig
from ..errors import (
    CommandSerializationError,
    InvalidConfigError,
    LaneError,
    LaneNotFoundError,
    RemoteCommandError,
    ShutdownInProgressError,
    WorkerCrashedError,
)

logger = logging.getLogger("pylane.distributed")

PartitionKey = Union[str, bytes, int]

_READY = b"ready"
_STOP = b""
_STOP_GRACE = 5.0  # seconds a worker gets to exit before it is terminated


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
    ``(callable, args, kwargs)``."""

    id: str
    command_type: str
    lane_id: str
    payload: bytes
    partition_key: Optional[PartitionKey] = None
    partition_id: Optional[int] = None
    retry_count: int = 0
    created_at: float = field(default_factory=time.time)


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

    def enqueue(self, envelope: CommandEnvelope) -> Future:
        """Assigns a partition (unless ``envelope.partition_id`` is set) and
        queues the command; the future resolves with its result."""
        ...

    def dequeue(self, partition_id: int, timeout: Optional[float] = 0.0
                ) -> Optional[CommandEnvelope]:
        """Takes the most urgent command of a partition; None if there is
        none within `timeout` (None: wait until one comes or the queue
        closes)."""
        ...

    def complete(self, result: CommandResult) -> None:
        """Reports a command's result, resolving its future."""
        ...

    def num_partitions(self) -> int: ...

    def worker_id(self) -> str: ...


# ---- partitioners ---------------------------------------------------------------

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
        raise TypeError(f"partition key must be str, bytes or int, got {type(key).__name__}")
    return zlib.crc32(data)


class LeastLoadedPartitioner:
    """The default: a keyed command goes to ``stable_hash(key) % n``; others
    to the partition with the fewest queued and running commands (ties taken
    in turn, so an idle queue spreads work round-robin)."""

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


# ---- the worker process ------------------------------------------------------------


def _worker_main(conn: Any) -> None:
    """Runs in the worker process: one command at a time, until told to stop
    or the parent goes away."""
    # Ctrl-C reaches the whole process group; the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn.send_bytes(_READY)
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if data == _STOP:
            return
        conn.send_bytes(_run_one(data))


def _run_one(data: bytes) -> bytes:
    started = time.perf_counter()
    try:
        function, args, kwargs = pickle.loads(data)
    except BaseException as error:
        problem = CommandSerializationError(
            f"the worker process could not unpickle the command: {error!r}"
        )
        return _error_reply(problem, "", started)
    try:
        value = function(*args, **kwargs)
    except BaseException as error:  # SystemExit too: it fails this command only
        return _error_reply(error, traceback.format_exc(), started)
    try:
        blob = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        problem = CommandSerializationError(
            f"the command's result ({type(value).__name__}) cannot be pickled back: {error}"
        )
        return _error_reply(problem, "", started)
    return pickle.dumps(("ok", blob, _elapsed_ms(started)), pickle.HIGHEST_PROTOCOL)


def _error_reply(error: BaseException, remote_traceback: str, started: float) -> bytes:
    try:
        blob = pickle.dumps(error, pickle.HIGHEST_PROTOCOL)
        pickle.loads(blob)  # some exceptions pickle but cannot be rebuilt
    except Exception as problem:
        substitute = RemoteCommandError(
            f"{error!r} (the exception could not be pickled back: {problem})", remote_traceback
        )
        blob = pickle.dumps(substitute, pickle.HIGHEST_PROTOCOL)
    return pickle.dumps(("err", blob, remote_traceback, _elapsed_ms(started)),
                        pickle.HIGHEST_PROTOCOL)


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


# ---- the coordinator ---------------------------------------------------------------


class _Partition:
    def __init__(self, index: int, lock: threading.Lock) -> None:
        self.index = index
        self.heap: list[tuple[int, int, CommandEnvelope]] = []
        self.ready = threading.Condition(lock)
        self.process: Any = None
        self.conn: Any = None
        self.running: Optional[CommandEnvelope] = None
        self.started = threading.Event()  # set once a worker is up (or failed to start)
        self.broken: Optional[str] = None  # why no worker could be started
        self.completed = 0
        self.failed = 0
        self.thread: Optional[threading.Thread] = None

    def load(self) -> int:
        if self.broken is not None:
            return sys.maxsize  # never the least loaded
        return len(self.heap) + (self.running is not None)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _lane_priorities(lanes: Any) -> dict[str, int]:
    if lanes is None:
        return {lane_id: priority for lane_id, priority, _maximum in DEFAULT_LANES}
    if isinstance(lanes, Mapping):
        items: Iterable[tuple[Any, Any]] = lanes.items()
    else:
        items = [
            (lane.lane_id, lane.priority) if isinstance(lane, LaneConfig) else tuple(lane)[:2]
            for lane in lanes
        ]
    priorities: dict[str, int] = {}
    for lane_id, priority in items:
        if not isinstance(lane_id, str) or not lane_id:
            raise InvalidConfigError(f"lane id must be a non-empty string, got {lane_id!r}")
        if isinstance(priority, bool) or not isinstance(priority, int) or priority < 0:
            raise InvalidConfigError(
                f"priority for lane {lane_id!r} must be a non-negative integer, got {priority!r}"
            )
        if lane_id in priorities:
            raise InvalidConfigError(f"duplicate lane id {lane_id!r}")
        priorities[lane_id] = priority
    if not priorities:
        raise InvalidConfigError("no lanes")
    return priorities


class LocalDistributedQueue:
    """Runs commands in ``num_partitions`` worker processes.

    ``lanes``: lane id -> priority (lower is more urgent), or ``LaneConfig``s
    with ids, or ``(id, priority)`` pairs; default: the six default lanes.
    ``partitioner(envelope, loads) -> index`` picks a partition (default
    ``LeastLoadedPartitioner``); it runs under the queue's lock, so it must
    not call back into the queue. ``mp_context``: a start method name or a
    multiprocessing context (default ``forkserver``, else ``spawn``).
    """

    def __init__(self, num_partitions: int, *, lanes: Any = None,
                 partitioner: Optional[Partitioner] = None,
                 mp_context: Union[str, Any, None] = None) -> None:
        if isinstance(num_partitions, bool) or not isinstance(num_partitions, int):
            raise InvalidConfigError(
                f"num_partitions must be an integer, got {type(num_partitions).__name__}"
            )
        if num_partitions < 1:
            raise InvalidConfigError(f"num_partitions must be >= 1, got {num_partitions}")
        if partitioner is not None and not callable(partitioner):
            raise InvalidConfigError("partitioner must be callable (envelope, loads) -> index")
        self._priorities = _lane_priorities(lanes)
        self._partitioner: Partitioner = partitioner or LeastLoadedPartitioner()
        self._context = _context(mp_context)
        self._worker_id = f"local-{uuid.uuid4()}"
        self._lock = threading.Lock()
        self._partitions = [_Partition(i, self._lock) for i in range(num_partitions)]
        self._futures: dict[str, Future] = {}
        self._sequence = itertools.count()
        self._closed = False
        self._terminating = False
        for partition in self._partitions:
            partition.thread = threading.Thread(
                target=self._serve, args=(partition,), daemon=True,
                name=f"pylane-partition-{partition.index}",
            )
            partition.thread.start()

    @classmethod
    def auto(cls, **options: Any) -> LocalDistributedQueue:
        """One partition per CPU this process may run on."""
        return cls(_cpu_count(), **options)

    # -- the protocol

    def num_partitions(self) -> int:
        return len(self._partitions)

    def worker_id(self) -> str:
        return self._worker_id

    def is_coordinator(self) -> bool:
        return True

    def is_worker(self) -> bool:
        return True

    def submit(self, lane_id: str, command: Any, *args: Any,
               partition_key: Optional[PartitionKey] = None, **kwargs: Any) -> Future:
        """Queues ``command(*args, **kwargs)`` (or a ``Command``'s
        ``execute()``) in a lane; the same `partition_key` always runs in
        the same partition."""
        if lane_id not in self._priorities:
            raise LaneNotFoundError(lane_id, list(self._priorities))
        if isinstance(command, Command):
            if args or kwargs:
                raise TypeError("arguments can only be passed with a plain callable, not a Command")
            label, call = command_type_of(command), command.execute
        elif callable(command):
            label, call = getattr(command, "__name__", type(command).__name__), command
        else:
            raise TypeError(f"submit() needs a Command or a callable, got {type(command).__name__}")
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
        envelope = CommandEnvelope(
            id=f"{self._worker_id}-{next(self._sequence)}", command_type=label,
            lane_id=lane_id, payload=payload, partition_key=partition_key,
        )
        return self.enqueue(envelope)

    def enqueue(self, envelope: CommandEnvelope) -> Future:
        priority = self._priorities.get(envelope.lane_id)
        if priority is None:
            raise LaneNotFoundError(envelope.lane_id, list(self._priorities))
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise ShutdownInProgressError()
            index = envelope.partition_id
            if index is None:
                index = self._partitioner(envelope, [p.load() for p in self._partitions])
            if isinstance(index, bool) or not isinstance(index, int) or not (
                0 <= index < len(self._partitions)
            ):
                raise LaneError(
                    f"partition {index!r} is out of range: there are {len(self._partitions)}"
                )
            partition = self._partitions[index]
            if partition.broken is not None:
                raise WorkerCrashedError(partition.broken)
            envelope.partition_id = index
            self._futures[envelope.id] = future
            heapq.heappush(partition.heap, (priority, next(self._sequence), envelope))
            partition.ready.notify()
        return future

    def dequeue(self, partition_id: int, timeout: Optional[float] = 0.0
                ) -> Optional[CommandEnvelope]:
        """What each partition's thread calls to feed its worker. Calling it
        yourself takes the command away from the workers: report its outcome
        with ``complete()``."""
        partition = self._partitions[partition_id]
        with self._lock:
            if not partition.heap and timeout != 0:
                partition.ready.wait_for(lambda: partition.heap or self._closed, timeout)
            if not partition.heap:
                return None
            return heapq.heappop(partition.heap)[2]

    def complete(self, result: CommandResult) -> None:
        future = self._futures.pop(result.command_id, None)
        if future is None:
            return
        try:
            if result.ok:
                future.set_result(result.value)
            else:
                future.set_exception(result.error or LaneError("command failed"))
        except InvalidStateError:  # cancelled meanwhile by whoever dequeued it
            pass

    # -- observation

    def stats(self) -> list[PartitionStats]:
        stats = []
        with self._lock:
            for p in self._partitions:
                process = p.process
                stats.append(PartitionStats(
                    partition_id=p.index, pid=None if process is None else process.pid,
                    pending=len(p.heap), running=p.running is not None,
                    completed=p.completed, failed=p.failed,
                    alive=process is not None and process.is_alive(),
                ))
        return stats

    def partition_for(self, key: PartitionKey) -> int:
        """The partition a command with this key goes to by default."""
        return stable_hash(key) % len(self._partitions)

    def wait_ready(self, timeout: Optional[float] = None) -> bool:
        """Waits until every worker process is up (processes start in the
        background; commands submitted meanwhile wait for them)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for partition in self._partitions:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not partition.started.wait(remaining):
                return False
        return all(p.broken is None for p in self._partitions)

    # -- lifecycle

    def shutdown(self, wait: bool = True, *, cancel_pending: bool = False,
                 timeout: Optional[float] = None) -> None:
        """Stops intake. Queued commands still run unless `cancel_pending`;
        with `wait`, returns once the workers have exited. After `timeout`
        seconds, pending commands are cancelled and the workers terminated
        (running commands then fail with ``WorkerCrashedError``)."""
        with self._lock:
            self._closed = True
            dropped = self._drop_pending() if cancel_pending else []
            for partition in self._partitions:
                partition.ready.notify_all()
        for future in dropped:
            future.cancel()
        if not wait:
            return
        if not self._join(timeout):
            with self._lock:
                self._terminating = True
                dropped = self._drop_pending()
                for partition in self._partitions:
                    partition.ready.notify_all()
            for future in dropped:
                future.cancel()
            for partition in self._partitions:
                process = partition.process
                if process is not None and process.is_alive():
                    process.terminate()
            self._join(None)

    def close(self) -> None:
        self.shutdown(wait=True)

    def _drop_pending(self) -> list[Future]:
        dropped = []
        for partition in self._partitions:
            for _priority, _sequence, envelope in partition.heap:
                future = self._futures.pop(envelope.id, None)
                if future is not None:
                    dropped.append(future)
            partition.heap.clear()
        return dropped

    def _join(self, timeout: Optional[float]) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for partition in self._partitions:
            thread = partition.thread
            if thread is None or thread is threading.current_thread():
                continue
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                return False
        return True

    def __enter__(self) -> LocalDistributedQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one thread per partition: start the worker, feed it, read results

    def _serve(self, partition: _Partition) -> None:
        try:
            self._serve_loop(partition)
        except Exception as error:  # a bug or an OS failure: never leave futures hanging
            logger.exception("partition %d stopped", partition.index)
            with self._lock:
                partition.broken = f"partition {partition.index} stopped: {error!r}"
        finally:
            partition.started.set()
            self._stop_worker(partition)
            with self._lock:
                orphans = self._drop_partition(partition)
            for future in orphans:
                _fail(future, WorkerCrashedError(
                    partition.broken or f"partition {partition.index} stopped"))

    def _serve_loop(self, partition: _Partition) -> None:
        while self._start_worker(partition):
            envelope = self.dequeue(partition.index, timeout=None)
            if envelope is None:
                return
            future = self._futures.get(envelope.id)
            if future is None or not future.set_running_or_notify_cancel():
                self._futures.pop(envelope.id, None)
                continue
            self._run_remote(partition, envelope)

    def _drop_partition(self, partition: _Partition) -> list[Future]:
        orphans = []
        for _priority, _sequence, envelope in partition.heap:
            future = self._futures.pop(envelope.id, None)
            if future is not None:
                orphans.append(future)
        partition.heap.clear()
        return orphans

    def _start_worker(self, partition: _Partition) -> bool:
        """Makes sure the partition has a live worker; False when it must
        stop (terminating, or no worker could be started)."""
        if self._terminating:
            return False
        if partition.process is not None and partition.process.is_alive():
            return True
        self._stop_worker(partition)
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main, args=(child_end,), daemon=True,
            name=f"pylane-partition-{partition.index}",
        )
        try:
            process.start()
            child_end.close()
            greeting = parent_end.recv_bytes()
        except (EOFError, OSError) as error:
            if process.pid is not None:
                process.join(_STOP_GRACE)
            message = (
                f"the worker process for partition {partition.index} could not start "
                f"(exit code {process.exitcode}): {error!r}"
            )
            logger.error("%s", message)
            parent_end.close()
            with self._lock:
                partition.broken = message
            partition.started.set()
            return False
        if greeting != _READY:  # pragma: no cover - protocol violation
            raise LaneError(f"unexpected greeting from a worker process: {greeting!r}")
        with self._lock:
            partition.process, partition.conn = process, parent_end
        partition.started.set()
        return True

    def _run_remote(self, partition: _Partition, envelope: CommandEnvelope) -> None:
        conn = partition.conn
        with self._lock:
            partition.running = envelope
        try:
            try:
                conn.send_bytes(envelope.payload)
                reply = conn.recv_bytes()
            except (EOFError, OSError):
                result = self._crashed(partition, envelope)
            else:
                result = self._decode(partition, envelope, reply)
        finally:
            with self._lock:
                partition.running = None
        with self._lock:
            if result.ok:
                partition.completed += 1
            else:
                partition.failed += 1
        self.complete(result)

    def _crashed(self, partition: _Partition, envelope: CommandEnvelope) -> CommandResult:
        process = partition.process
        process.join(_STOP_GRACE)
        how = "was terminated" if self._terminating else f"exited with code {process.exitcode}"
        logger.warning("worker process %s for partition %d %s while running %s (%s)",
                       process.pid, partition.index, how, envelope.command_type, envelope.id)
        error = WorkerCrashedError(
            f"the worker process (pid {process.pid}) for partition {partition.index} {how} "
            f"while running command {envelope.command_type!r} ({envelope.id})"
        )
        return CommandResult(envelope.id, False, error=error, worker_id=self._worker_id)

    def _decode(self, partition: _Partition, envelope: CommandEnvelope,
                reply: bytes) -> CommandResult:
        worker = f"{self._worker_id}/{partition.index}"
        try:
            kind, blob, *rest = pickle.loads(reply)
            if kind == "ok":
                (duration,) = rest
                return CommandResult(envelope.id, True, pickle.loads(blob), None, worker, duration)
            remote_traceback, duration = rest
        except Exception as problem:
            error = CommandSerializationError(
                f"the result of command {envelope.command_type!r} could not be unpickled "
                f"here: {problem!r}"
            )
            return CommandResult(envelope.id, False, error=error, worker_id=worker)
        try:
            error = pickle.loads(blob)
        except Exception as problem:
            error = RemoteCommandError(
                f"command {envelope.command_type!r} raised an exception that could not be "
                f"unpickled here: {problem!r}", remote_traceback,
            )
        if remote_traceback and isinstance(error, BaseException):
            error.__cause__ = RemoteTraceback(f'\n"""\n{remote_traceback}"""')
        return CommandResult(envelope.id, False, error=error, worker_id=worker,
                             duration_ms=duration)

    def _stop_worker(self, partition: _Partition) -> None:
        process, conn = partition.process, partition.conn
        if process is None:
            return
        try:
            if process.is_alive():
                conn.send_bytes(_STOP)
        except OSError:
            pass
        process.join(_STOP_GRACE)
        if process.is_alive():
            logger.warning("worker process %s did not stop; terminating it", process.pid)
            process.terminate()
            process.join(_STOP_GRACE)
            if process.is_alive():
                process.kill()
                process.join()
        conn.close()
        partition.process = partition.conn = None


def _fail(future: Future, error: BaseException) -> None:
    with contextlib.suppress(InvalidStateError):  # cancelled meanwhile
        future.set_exception(error)


def _context(choice: Union[str, Any, None]) -> Any:
    if choice is None:
        methods = multiprocessing.get_all_start_methods()
        choice = "forkserver" if "forkserver" in methods and sys.platform != "darwin" else "spawn"
    if isinstance(choice, str):
        try:
            return multiprocessing.get_context(choice)
        except ValueError as error:
            raise InvalidConfigError(f"unknown multiprocessing start method {choice!r}") from error
    return choice
