"""``LocalDistributedQueue``: CPU-bound commands in worker processes, every
lane rule kept.

This process schedules; the worker processes only execute. Every command is
a ticket in one C engine whose worker budget is the worker processes'
slots (``scheduler.py``), so the lane rules hold across partitions exactly
as in one process. One dispatcher thread blocks on the engine until a
command may start and has the partitioner pick its worker process (by
default: the same ``partition_key``, the same partition; otherwise the
least-loaded one). One thread per partition (``processes.py``) starts its
worker, sends it one command at a time and blocks on the pipe for the
result. Nothing polls.

Commands are pickled by ``submit``: one that cannot be pickled fails that
call (``CommandSerializationError``) and nothing else. A command that raises
fails its own future with its exception and the remote traceback as
``__cause__``; a worker that dies fails the command it was running
(``WorkerCrashedError``) and is replaced. Processes start with
``forkserver`` (``spawn`` where missing), safe in a threaded program, so
commands must be importable functions, not lambdas or closures.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import pickle
import threading
import time
import uuid
from concurrent.futures import Future, InvalidStateError
from typing import Any, Optional, Union

from .._lane_core import ffi, lib
from ..command import Command, command_type_of
from ..errors import (
    CommandSerializationError,
    InvalidConfigError,
    LaneError,
    ShutdownInProgressError,
    WorkerCrashedError,
)
from ..stats import LaneStatus
from .processes import Partition, cpu_count, start_context
from .protocol import (
    CommandEnvelope,
    CommandResult,
    LeastLoadedPartitioner,
    Partitioner,
    PartitionKey,
    PartitionStats,
    stable_hash,
)
from .scheduler import CANCELLED, CLAIMED, COMPLETED, FAILED, Entry, Scheduler, lane_specs

logger = logging.getLogger("pylane.distributed")


class LocalDistributedQueue:
    """Runs commands in ``num_partitions`` worker processes.

    ``lanes``: lane id -> priority (lower is more urgent) or ``LaneConfig``,
    or ``LaneConfig``s with ids, or ``(id, priority)`` pairs; default: the
    six default lanes (priorities only). A ``LaneConfig`` brings its
    min/max_concurrency, rate limit and priority boost; reservations must
    fit in ``num_partitions``. ``partitioner(envelope, loads) -> index``
    picks the worker process for each dispatched command (default
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
        specs = lane_specs(lanes)
        context = start_context(mp_context)
        self._worker_id = f"local-{uuid.uuid4()}"
        self._lock = threading.Lock()
        self._partitions = [Partition(i, self._lock, context) for i in range(num_partitions)]
        self._scheduler = Scheduler(self._partitions, partitioner or LeastLoadedPartitioner(),
                                    specs)
        self._sequence = itertools.count()
        self._closed = False       # no more submits
        self._stopped = False      # the engine is stopped: nothing more will start
        self._terminating = False  # the shutdown timeout passed
        self._dispatcher = threading.Thread(target=self._dispatch, daemon=True,
                                            name="pylane-dispatcher")
        self._dispatcher.start()
        for partition in self._partitions:
            partition.thread = threading.Thread(
                target=self._serve, args=(partition,), daemon=True,
                name=f"pylane-partition-{partition.index}",
            )
            partition.thread.start()

    @classmethod
    def auto(cls, **options: Any) -> LocalDistributedQueue:
        """One partition per CPU this process may run on."""
        return cls(cpu_count(), **options)

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
        self._scheduler.lane_index(lane_id)  # LaneNotFoundError before any pickling
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
        self._scheduler.lane_index(envelope.lane_id)
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise ShutdownInProgressError()
            if envelope.partition_id is not None:
                pinned = self._scheduler.partition(envelope.partition_id)
                if pinned.broken is not None:
                    raise WorkerCrashedError(pinned.broken)
            entry = self._scheduler.submit(envelope, future)
        # Cancelling the future takes the command out of its lane.
        future.add_done_callback(functools.partial(self._withdraw, entry.ticket))
        return future

    def dequeue(self, partition_id: int, timeout: Optional[float] = 0.0
                ) -> Optional[CommandEnvelope]:
        """Claims the command that goes next under the lane rules, as the
        worker of `partition_id` would. It holds a slot (the workers get one
        fewer) until you report its outcome with ``complete()``."""
        self._scheduler.partition(partition_id)
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        out = ffi.new("lc_dispatch *")
        while True:
            wait_ns = -1 if deadline is None else max(0, int((deadline - time.monotonic()) * 1e9))
            if lib.pylane_wait_next(self._scheduler.ptr, wait_ns, out) != lib.LC_DISPATCHED:
                return None
            with self._lock:
                entry = self._scheduler.claim(out.ticket, out.enqueued_ns, partition_id)
            if entry.future is None or _start(entry.future):
                return entry.envelope
            self._end(entry, CANCELLED)

    def complete(self, result: CommandResult) -> None:
        with self._lock:
            entry = self._scheduler.find(result.command_id)
            if entry is None:
                return
            if entry.state == CLAIMED:
                self._scheduler.finish(entry, COMPLETED if result.ok else FAILED)
                self._stop_if_done()
            else:  # reported for a command still queued here: it will not run
                self._scheduler.cancel(entry)
        if entry.future is not None:
            _settle(entry.future, result)

    # -- lanes

    def pause_lane(self, lane_id: str) -> None:
        """Running commands finish; none of the lane's start until resume_lane."""
        self._scheduler.pause(lane_id)

    def resume_lane(self, lane_id: str) -> None:
        self._scheduler.resume(lane_id)

    def cancel(self, command_id: str) -> bool:
        """Cancels a command that has not started (as its future's
        ``cancel()`` does): True if it will not run."""
        with self._lock:
            entry = self._scheduler.find(command_id)
        return entry is not None and entry.future is not None and entry.future.cancel()

    # -- observation

    def lane_ids(self) -> list[str]:
        return self._scheduler.lane_ids()

    def lane_stats(self, lane_id: str) -> LaneStatus:
        """The lane as the engine sees it: pending, active, counters."""
        return self._scheduler.lane_status(lane_id)

    def stats(self) -> list[PartitionStats]:
        stats = []
        with self._lock:
            for p in self._partitions:
                process = p.process
                stats.append(PartitionStats(
                    partition_id=p.index, pid=None if process is None else process.pid,
                    pending=len(p.waiting), running=p.running is not None,
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
        """Stops intake. Queued commands still run unless `cancel_pending`
        (those of a paused lane wait for ``resume_lane``); with `wait`,
        returns once the workers have exited. After `timeout` seconds,
        pending commands are cancelled and the workers terminated (running
        commands then fail with ``WorkerCrashedError``)."""
        with self._lock:
            self._closed = True
            dropped = self._scheduler.drop_waiting() if cancel_pending else []
            self._stop_if_done()
        for entry in dropped:
            _cancel(entry.future)
        if not wait:
            return
        if not self._join(timeout):
            with self._lock:
                self._terminating = True
                dropped = self._scheduler.drop_waiting()
                self._stop()
            for entry in dropped:
                _cancel(entry.future)
            for partition in self._partitions:
                partition.terminate()
            self._join(None)

    def close(self) -> None:
        self.shutdown(wait=True)

    def __enter__(self) -> LocalDistributedQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stop_if_done(self) -> None:
        """Under the lock: once closed and nothing is left, stop."""
        if self._closed and not self._stopped and not self._scheduler.entries:
            self._stop()

    def _stop(self) -> None:
        self._stopped = True
        self._scheduler.engine.stop()  # the dispatcher's wait returns
        for partition in self._partitions:
            partition.ready.notify_all()

    def _join(self, timeout: Optional[float]) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in (self._dispatcher, *(p.thread for p in self._partitions)):
            if thread is None or thread is threading.current_thread():
                continue
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                return False
        return True

    def _withdraw(self, ticket: int, future: Future) -> None:
        if not future.cancelled():
            return
        with self._lock:
            entry = self._scheduler.entries.get(ticket)
            if entry is not None and entry.future is future:
                self._scheduler.cancel(entry)
                self._stop_if_done()

    def _end(self, entry: Any, outcome: int) -> None:
        with self._lock:
            self._scheduler.finish(entry, outcome)
            self._stop_if_done()

    # -- the dispatcher: the engine says what starts, the partitioner where

    def _dispatch(self) -> None:
        out = ffi.new("lc_dispatch *")
        ptr = self._scheduler.ptr
        try:
            while lib.pylane_wait_next(ptr, -1, out) == lib.LC_DISPATCHED:
                with self._lock:
                    entry = self._scheduler.assign(out.ticket, out.enqueued_ns)
                    dropped = entry.error is None and self._terminating
                    if dropped:  # no partition will start it any more
                        self._scheduler.cancel(entry)
                    elif entry.error is None:
                        self._partitions[entry.partition].ready.notify()
                    self._stop_if_done()
                if dropped:
                    _cancel(entry.future)
                elif entry.error is not None:
                    _fail(entry.future, entry.error)
        except BaseException as error:  # a bug: never leave futures hanging
            logger.exception("the dispatcher stopped")
            with self._lock:
                self._closed = True
                lost = self._scheduler.drop_waiting()
                self._stop()
            for entry in lost:
                _fail(entry.future, LaneError(f"the dispatcher stopped: {error!r}"))

    # -- one thread per partition: start the worker, feed it, read results

    def _serve(self, partition: Partition) -> None:
        try:
            self._serve_loop(partition)
        except Exception as error:  # a bug or an OS failure: never leave futures hanging
            logger.exception("partition %d stopped", partition.index)
            with self._lock:
                partition.broken = f"partition {partition.index} stopped: {error!r}"
        finally:
            partition.started.set()
            partition.stop_worker()
            with self._lock:
                reason = None if self._stopped else (
                    partition.broken or f"partition {partition.index} stopped")
                outcome = CANCELLED if reason is None else FAILED
                orphans = self._scheduler.abandon(partition, reason, outcome)
                self._stop_if_done()
            for entry in orphans:
                if reason is None:
                    _cancel(entry.future)
                else:
                    _fail(entry.future, WorkerCrashedError(reason))

    def _serve_loop(self, partition: Partition) -> None:
        scheduler = self._scheduler
        entry: Optional[Entry] = None
        while not self._terminating and partition.ensure_worker():
            if entry is None:
                with self._lock:
                    while not partition.waiting and not self._stopped:
                        partition.ready.wait()
                    entry = scheduler.start(partition)
                if entry is None:
                    return
            if entry.future is not None and not _start(entry.future):
                done, result = entry, None
                outcome = CANCELLED
            else:
                done, result = entry, partition.run(entry.envelope, self._worker_id)
                outcome = COMPLETED if result.ok else FAILED
            with self._lock:
                scheduler.finish(done, outcome, settle=False)
                entry, failed = self._take_next(partition)
                scheduler.settle()
                self._stop_if_done()
            if result is not None and done.future is not None:
                _settle(done.future, result)
            for lost in failed:
                _fail(lost.future, lost.error)  # type: ignore[arg-type]

    def _take_next(self, partition: Partition) -> tuple[Optional[Entry], list[Entry]]:
        """Under the lock, once the partition's worker is free: its next
        command. One placed here already, else the dispatcher's step, taken
        on this thread (the dispatcher is not woken for this worker's slot,
        see ``Scheduler.finish``): dispatch until a command lands here or
        none may start. Also returns the commands that could not be placed."""
        failed: list[Entry] = []
        entry = self._scheduler.start(partition)
        while entry is None and not self._stopped:
            placed = self._scheduler.dispatch()
            if placed is None:
                break
            if placed.error is not None:
                failed.append(placed)
            elif placed.partition == partition.index:
                entry = self._scheduler.start(partition)
            else:
                self._partitions[placed.partition].ready.notify()
        return entry, failed


def _start(future: Future) -> bool:
    """Marks the future running; False if it was cancelled (or already
    resolved by ``complete()``)."""
    try:
        return future.set_running_or_notify_cancel()
    except RuntimeError:
        return False


def _settle(future: Future, result: CommandResult) -> None:
    with contextlib.suppress(InvalidStateError):  # cancelled or reported meanwhile
        if result.ok:
            future.set_result(result.value)
        else:
            future.set_exception(result.error or LaneError("command failed"))


def _fail(future: Optional[Future], error: BaseException) -> None:
    if future is not None:
        with contextlib.suppress(InvalidStateError):  # cancelled meanwhile
            future.set_exception(error)


def _cancel(future: Optional[Future]) -> None:
    if future is not None:
        future.cancel()
