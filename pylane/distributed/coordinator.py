"""``LocalDistributedQueue``: CPU-bound commands in worker processes, every
lane rule kept.

This process schedules; the worker processes only execute. Every command is
a ticket in one C engine whose worker budget is the worker processes'
slots (``scheduler.py``), so the lane rules hold across partitions exactly
as in one process. A dispatcher thread blocks on the engine until a command
may start and has the partitioner pick its worker process (by default: the
same ``partition_key``, the same partition; otherwise the least-loaded
one); a thread per partition feeds its worker one command at a time
(``threads.py``, ``processes.py``). Nothing polls. This module is the
queue's face: submit, cancel, pause, stats, shutdown.

Commands are pickled by ``submit``: one that cannot be pickled fails that
call (``CommandSerializationError``) and nothing else. A command that raises
fails its own future with its exception and the remote traceback as
``__cause__``; a worker that dies fails the command it was running
(``WorkerCrashedError``) and is replaced. Processes start with
``forkserver`` (``spawn`` where missing), safe in a threaded program, so
commands must be importable functions, not lambdas or closures.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import time
import uuid
from concurrent.futures import Future
from typing import Any, Optional, Union

from .._lane_core import ffi, lib
from ..errors import (
    InvalidConfigError,
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
    pack,
    stable_hash,
)
from .scheduler import CANCELLED, CLAIMED, COMPLETED, FAILED, Scheduler, lane_specs
from .threads import Threads, drop_future, settle_future, start_future

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
        self._threads = Threads(self._scheduler, self._partitions, self._lock, self._worker_id)
        self._threads.start()

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
               partition_key: Optional[PartitionKey] = None, **kwargs: Any) -> Future[Any]:
        """Queues ``command(*args, **kwargs)`` (or a ``Command``'s
        ``execute()``) in a lane; the same `partition_key` always runs in
        the same partition."""
        self._scheduler.lane_index(lane_id)  # LaneNotFoundError before any pickling
        envelope = pack(f"{self._worker_id}-{next(self._sequence)}", lane_id, command, args,
                        kwargs, partition_key)
        return self.enqueue(envelope)

    def enqueue(self, envelope: CommandEnvelope) -> Future[Any]:
        self._scheduler.lane_index(envelope.lane_id)
        future: Future[Any] = Future()
        with self._lock:
            if self._threads.closed:
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
            if entry.future is None or start_future(entry.future):
                return entry.envelope
            self._threads.end(entry, CANCELLED)

    def complete(self, result: CommandResult) -> None:
        with self._lock:
            entry = self._scheduler.find(result.command_id)
            if entry is None:
                return
            if entry.state == CLAIMED:
                self._scheduler.finish(entry, COMPLETED if result.ok else FAILED)
                self._threads.stop_if_done()
            else:  # reported for a command still queued here: it will not run
                self._scheduler.cancel(entry)
        if entry.future is not None:
            settle_future(entry.future, result)

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
            self._threads.closed = True
            dropped = self._scheduler.drop_waiting() if cancel_pending else []
            self._threads.stop_if_done()
        for entry in dropped:
            drop_future(entry.future)
        if not wait:
            return
        if not self._threads.join(timeout):
            with self._lock:
                self._threads.terminating = True
                dropped = self._scheduler.drop_waiting()
                self._threads.stop()
            for entry in dropped:
                drop_future(entry.future)
            for partition in self._partitions:
                partition.terminate()
            self._threads.join(None)

    def close(self) -> None:
        self.shutdown(wait=True)

    def __enter__(self) -> LocalDistributedQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _withdraw(self, ticket: int, future: Future[Any]) -> None:
        if not future.cancelled():
            return
        with self._lock:
            entry = self._scheduler.entries.get(ticket)
            if entry is not None and entry.future is future:
                self._scheduler.cancel(entry)
                self._threads.stop_if_done()
