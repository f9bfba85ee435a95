"""CommandQueue: lanes on the C engine, a worker pool, futures and events.

How a command flows:
  submit()  — the job goes into the job table under a fresh ticket (and, with
              storage, to disk first), the ticket into its lane in the engine,
              which wakes one waiting worker;
  worker    — blocks in the engine (GIL released) until the engine hands it
              the most urgent ticket, runs the command and ends the attempt
              (see execution.py), then settles and waits in one engine call.
No thread ever polls: every wait is a condition wait, in the engine or on the
deadline heap.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import weakref
from typing import Any, Callable, Optional, Union, overload

from .._checks import check_lane_id, check_priority, check_workers
from .._durations import Duration, to_seconds
from .._lane_core import lib
from ..cancel import current
from ..command import Command
from ..config import LaneConfig
from ..durable.dead_letters import DeadLetterQueue
from ..durable.registry import CommandRegistry
from ..durable.storage import Storage
from ..errors import (
    InvalidConfigError,
    LaneNotFoundError,
    LaneTimeoutError,
    NotStartedError,
    QueueForkedError,
    ShutdownInProgressError,
)
from ..events import (
    SHUTDOWN_COMPLETE,
    SHUTDOWN_STARTED,
    CallbackSubscription,
    EventEmitter,
    EventStream,
    LaneEvent,
)
from ..metrics import QueueMetrics, as_queue_metrics
from ..stats import QueueStats
from .aio import EventLoopThread
from .engine import Engine, check
from .execution import Execution
from .future import CommandFuture
from .inline import NOT_CLAIMED, InlineRun
from .intake import Intake, call_of
from .jobs import RUNNING, JobTable, Lane
from .metrics_feed import EngineMetricsFeed
from .observe import drain_timeout_message, queue_stats
from .pool import WorkerPool
from .timeouts import DeadlineWatcher

logger = logging.getLogger("pylane.queue")

# Queues started in this process, for the fork() hook below.
_STARTED: weakref.WeakSet[CommandQueue] = weakref.WeakSet()
_PID = os.getpid()

_RUN_INLINE = lib.LC_RUN_INLINE

# Default pool: every lane can reach its max, up to this many threads (never
# fewer than the lanes' reservations).
DEFAULT_POOL_CAP = 64


class CommandQueue(Intake, InlineRun, Execution):
    """Lanes, the engine and the workers. Usually built by
    ``QueueManagerBuilder``; usable on its own: ``CommandQueue(emitter)``,
    ``register_lane(...)``, ``start()``."""

    def __init__(self, emitter: Optional[EventEmitter] = None,
                 max_workers: Optional[int] = None, *,
                 storage: Optional[Storage] = None,
                 dlq: Optional[DeadLetterQueue] = None,
                 metrics: Optional[QueueMetrics] = None,
                 alerts: Any = None) -> None:
        if max_workers is not None:
            check_workers(max_workers)
        if storage is not None and not isinstance(storage, Storage):
            raise InvalidConfigError(
                f"storage must implement the Storage protocol, got {type(storage).__name__}"
            )
        if dlq is not None and not isinstance(dlq, DeadLetterQueue):
            raise InvalidConfigError(f"dlq must be a DeadLetterQueue, got {type(dlq).__name__}")
        metrics = as_queue_metrics(metrics)
        self.emitter = emitter if emitter is not None else EventEmitter()
        self._max_workers = max_workers
        self._engine = Engine(max_workers or 0)
        self._ptr = self._engine.ptr
        self._storage = storage
        self._dlq = dlq
        if dlq is not None and storage is not None:
            dlq.bind_storage(storage)
        self._metrics = metrics
        self._alerts = alerts
        # Run times are measured only when someone consumes them.
        self._timed = metrics is not None or alerts is not None
        # Nothing queue-wide watches a command run inline (see inline.py).
        self._inline = storage is None and alerts is None
        self._lanes_by_index: list[Lane] = []
        # With metrics the engine counts and times commands itself; the feed
        # hands its numbers to `metrics` in batches and before every read.
        self._feed: Optional[EngineMetricsFeed] = None
        if metrics is not None:
            self._feed = EngineMetricsFeed(self._ptr, self._lanes_by_index, metrics)
            metrics.add_refresher(self._feed.collect)
        self.registry = CommandRegistry()
        # SDK handlers by command type, for JsonCommands rebuilt from storage.
        self.json_handlers: dict[str, Callable[[Any], Any]] = {}
        self._lanes: dict[str, Lane] = {}
        self._table = JobTable(self._withdraw, self._emit_cancelled_ticket)
        self._jobs = self._table.live  # the hot paths' direct reference
        self._command_id_of = self._table.command_id
        # Lock rules. _registry_lock: lanes, start/stop state. _intake:
        # orders submits against shutdown (reentrant: an event filter run
        # during submit may itself submit). _state_lock: a job's RUNNING ->
        # DONE / TIMED_OUT transition (a worker finishing against the
        # deadline thread) and a lane's pressure flag. Order: _state_lock
        # before the pool's own lock; no engine call waits under any of them.
        self._registry_lock = threading.Lock()
        self._intake = threading.RLock()
        self._state_lock = threading.Lock()
        self._deadlines = DeadlineWatcher(self._on_deadline)
        self._pool = WorkerPool(self._work)
        self._aio = EventLoopThread()  # for async commands, started at the first
        self._self_blocked: dict[int, int] = {}
        self._blocked_workers = 0
        # Set in a child made by fork() after start(): the pid of the parent
        # (the child has the queue's memory but none of its threads).
        self._forked_from = 0
        self._started = False
        self._shutting_down = False
        self._stopped = False
        self.recovered: list[CommandFuture] = []

    @classmethod
    def with_dlq(cls, emitter: Optional[EventEmitter], dlq: DeadLetterQueue,
                 **options: Any) -> CommandQueue:
        """The original's ``CommandQueue::with_dlq(emitter, dlq)``."""
        return cls(emitter, dlq=dlq, **options)

    # Accessors are methods, as in the original API (``manager.queue()``,
    # ``manager.dlq()``); plain data (``emitter``, ``recovered``) are attributes.

    def metrics(self) -> Optional[QueueMetrics]:
        return self._metrics

    def storage(self) -> Optional[Storage]:
        return self._storage

    def dlq(self) -> Optional[DeadLetterQueue]:
        return self._dlq

    def register_command(self, command_type: str, factory: Callable[[Any], Command]) -> None:
        """How to rebuild a stored command of this type: ``factory(payload)``."""
        self.registry.register(command_type, factory)

    # ---- lanes ------------------------------------------------------------

    def register_lane(
        self, lane_id: str, config: LaneConfig, priority: Optional[int] = None
    ) -> None:
        """Adds a lane. ``priority`` defaults to ``config.priority``. A
        duplicate id is an error (the original silently replaced the lane)."""
        lane_id = check_lane_id(lane_id)
        if not isinstance(config, LaneConfig):
            raise InvalidConfigError(
                f"config for lane {lane_id!r} must be a LaneConfig, got {type(config).__name__}"
            )
        priority = check_priority(config.priority if priority is None else priority, lane_id)
        with self._registry_lock:
            if lane_id in self._lanes:
                raise InvalidConfigError(f"duplicate lane id {lane_id!r}")
            index = self._engine.add_lane(priority, config.min_concurrency, config.max_concurrency)
            rate = config.rate_limit
            if rate is not None and not rate.is_unlimited:
                self._engine.set_rate_limit(index, rate.max_commands, rate.window)
            boost = config.priority_boost
            if boost is not None and boost.enabled:
                self._engine.set_boost(index, boost.deadline, boost.boost_intervals)
            lane = Lane(lane_id, index, config, priority)
            self._lanes_by_index.append(lane)
            # Copy-on-write: submit reads the dict without a lock.
            self._lanes = {**self._lanes, lane_id: lane}

    def lane_ids(self) -> list[str]:
        return list(self._lanes)

    def _lane(self, lane_id: str) -> Lane:
        lane = self._lanes.get(lane_id) if isinstance(lane_id, str) else None
        if lane is None:
            raise LaneNotFoundError(lane_id, list(self._lanes))
        return lane

    # ---- lifecycle --------------------------------------------------------

    def is_started(self) -> bool:
        return self._started

    def is_shutting_down(self) -> bool:
        return self._shutting_down

    def worker_count(self) -> int:
        """Workers taking commands (not counting abandoned ones)."""
        return self._pool.alive

    def _pool_size(self) -> int:
        if self._max_workers is not None:
            return self._max_workers
        lanes = self._lanes_by_index
        wanted = sum(lane.config.max_concurrency for lane in lanes)
        reserved = sum(lane.config.min_concurrency for lane in lanes)
        return max(1, reserved, min(wanted, DEFAULT_POOL_CAP))

    def start(self) -> None:
        """Recovers what a previous process left in storage, then starts the
        worker pool. Calling it again does nothing."""
        if self._forked_from:
            raise self._forked_error()
        with self._registry_lock:
            if self._stopped:
                raise ShutdownInProgressError()
            if self._started:
                return
            size = self._pool_size()
            _STARTED.add(self)
            if self._max_workers is None:
                check(lib.lc_set_workers(self._ptr, size), "set worker budget")
            self._started = True
        if self._storage is not None:
            self._recover(self._storage)
        for _ in range(size):
            self._pool.spawn()

    def shutdown(self) -> None:
        """Stops intake; commands already submitted still run. Emits
        ``queue.shutdown.started`` once."""
        self._check_process()
        with self._intake:
            if self._shutting_down:
                return
            self._shutting_down = True
        self.emitter.emit_new(SHUTDOWN_STARTED, None)

    def drain(self, timeout: Optional[Duration] = None) -> None:
        """Waits until nothing is pending, waiting out a retry delay, or
        running. After ``shutdown()`` it then stops the workers and ends every
        event stream. Raises ``LaneTimeoutError`` saying what is left when
        `timeout` passes; what is left stays in storage for the next start."""
        self._check_process()
        seconds = None if timeout is None else to_seconds(timeout, "drain timeout",
                                                          endless_ok=True)
        if seconds == math.inf:
            seconds = None  # longer than anything can wait: no limit
        if not self._wait_idle(seconds):
            raise LaneTimeoutError(drain_timeout_message(self.stats(), seconds or 0.0))
        if self._shutting_down:
            self._stop_workers()

    def _wait_idle(self, seconds: Optional[float]) -> bool:
        if not self._started:
            pending, _ = self._engine.totals()
            if pending:
                raise NotStartedError()  # nothing could ever run them
            return True
        # Waits in slices so Ctrl-C (handled between slices) stays responsive.
        deadline = None if seconds is None else lib.lc_now_ns() + int(seconds * 1e9)
        while True:
            slice_ns = 250_000_000
            if deadline is not None:
                slice_ns = max(0, min(slice_ns, deadline - lib.lc_now_ns()))
            if lib.pylane_wait_idle(self._ptr, slice_ns):
                return True
            if deadline is not None and lib.lc_now_ns() >= deadline:
                return False

    def _stop_workers(self) -> None:
        with self._registry_lock:
            if self._stopped:
                return
            self._stopped = True
        self._pool.stop()
        self._engine.stop()
        self._deadlines.stop()
        self._pool.join()
        self._aio.stop()
        if self._feed is not None:
            # Last hand-over, then let go: a QueueMetrics that outlives the
            # queue must not keep its engine alive, nor refresh it forever.
            try:
                self._feed.collect()
            except Exception:
                logger.exception("the last metrics hand-over failed; the queue stops anyway")
            assert self._metrics is not None  # the feed is made only with metrics
            self._metrics.remove_refresher(self._feed.collect)
        # The original defined this event and never sent it.
        self.emitter.emit_new(SHUTDOWN_COMPLETE, None)
        self.emitter.close_all()

    # ---- submit -----------------------------------------------------------

    def submit(self, lane_id: str, command: Any, *args: Any, **kwargs: Any) -> CommandFuture:
        """Queues a command (or a callable with its arguments) in a lane and
        returns a future of its result."""
        job = self._new_job(lane_id, command, args, kwargs)
        self._enqueue(job, lib.lc_submit)
        return job.future

    async def asubmit(self, lane_id: str, command: Any, *args: Any, **kwargs: Any) -> Any:
        """Submits and awaits the result, from asyncio code. Cancelling the
        awaiting task cancels the command: a waiting one is withdrawn, a
        running one gets its cancel token set (an async command's coroutine
        is cancelled with it)."""
        return await asyncio.wrap_future(self.submit(lane_id, command, *args, **kwargs))

    def run(self, lane_id: str, command: Any, *args: Any, **kwargs: Any) -> Any:
        """Submits and waits for the result. When the command would start at
        once anyway, it runs on the calling thread, which saves two thread
        switches; priority and concurrency limits are the same either way.
        (Not in lanes with a timeout: there the caller must be able to give
        up at the deadline, so a worker runs it.)"""
        if not self._started:
            raise NotStartedError()
        if self._forked_from:
            raise self._forked_error()
        lane = self._lane_of(lane_id)
        call = call_of(command, args, kwargs)
        if lane.inline and self._inline and not self.emitter.streams:
            result = self._run_claimed(lane, call, command)
            if result is not NOT_CLAIMED:
                return result
        job = self._table.new_job(call, command, lane)
        engine_submit = lib.lc_submit if lane.timeout is not None else lib.lc_submit_or_claim
        if self._enqueue(job, engine_submit) == _RUN_INLINE:
            self._execute(job)
            lib.lc_settle(self._ptr)
            if job.wake is not None:  # nobody else holds this future: never, in fact
                lib.pylane_waiter_post(job.wake)
                job.wake = None
            return job.future.result()
        caller = current.job
        # (Lane objects are the queue's own: the caller is a command of ours,
        # run by a worker or inline.)
        if caller is not None and self._lanes.get(caller.lane.lane_id) is caller.lane:
            return self._wait_nested(caller, job)  # a command of ours waits on another
        return job.future.result()

    # ---- fork() ----------------------------------------------------------------

    def _check_process(self) -> None:
        if self._forked_from:
            raise self._forked_error()

    def _forked_error(self) -> Exception:
        return QueueForkedError(self._forked_from)

    def _after_fork_in_child(self, parent_pid: int) -> None:
        """In a child made by fork(): the engine may have been copied with
        its lock held by a parent thread, and no worker exists here, so the
        queue refuses every use with QueueForkedError (create a new queue
        in the child) instead of hanging."""
        self._forked_from = parent_pid

    # ---- cancel and pause ---------------------------------------------------

    def _withdraw(self, lane: Lane, ticket: int) -> bool:
        """Takes a still-waiting ticket out of its lane (or out of its retry
        delay); True if it was there. A running command gets its cancel
        token set instead."""
        job = self._jobs.get(ticket)
        if job is None:
            return False
        if job.state == RUNNING:
            job.cancel_token().cancel("cancelled")
            return False
        if lib.lc_cancel(self._ptr, lane.index, ticket) != 1:
            return False
        self._jobs.pop(ticket, None)
        if lane.pressure_threshold is not None:
            self._check_pressure(lane)
        if job.stored:
            self._forget_stored(job)
        return True

    def cancel(self, command_id: str) -> bool:
        """Cancels a command by id: True if it will not run. A running
        command gets its cancel token set (and False is returned). An id
        this queue does not know (or not a string) gives False."""
        self._check_process()
        job = self._table.find(command_id)
        return job is not None and job.future.cancel()

    def pause_lane(self, lane_id: str) -> None:
        """Running commands finish; no new ones start until resume_lane."""
        self._check_process()
        self._engine.pause(self._lane(lane_id).index)

    def resume_lane(self, lane_id: str) -> None:
        self._check_process()
        self._engine.resume(self._lane(lane_id).index)

    # ---- observation ----------------------------------------------------------

    def stats(self) -> QueueStats:
        self._check_process()
        return queue_stats(self._engine, self._lanes_by_index, self._dlq, self._pool)

    @overload
    def subscribe(self, callback: None = None) -> EventStream: ...

    @overload
    def subscribe(self, callback: Callable[[LaneEvent], Any]) -> CallbackSubscription: ...

    def subscribe(
        self, callback: Optional[Callable[[LaneEvent], Any]] = None
    ) -> Union[EventStream, CallbackSubscription]:
        if callback is not None:
            return self.emitter.subscribe_callback(callback)
        return self.emitter.subscribe()

    def subscribe_filtered(self, predicate: Callable[[LaneEvent], bool]) -> EventStream:
        return self.emitter.subscribe_filtered(predicate)


def _after_fork_in_child() -> None:
    global _PID
    parent, _PID = _PID, os.getpid()
    for queue in list(_STARTED):
        queue._after_fork_in_child(parent)
    _STARTED.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
