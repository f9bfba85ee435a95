"""CommandQueue: lanes on the C engine, a worker pool, futures and events.

How a command flows:
  submit()  — the job goes into ``_jobs`` under a fresh ticket, the ticket into
              its lane in the engine, which wakes one waiting worker;
  worker    — blocks in the engine (GIL released) until the engine hands it
              the most urgent ticket, runs the command, frees the slot
              (``lc_finish``), resolves the future, then settles and waits for
              the next ticket in one engine call.
No thread ever polls: every wait is a condition wait inside the engine.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import uuid
from concurrent.futures import Future
from typing import Any, Callable, Optional, Union

from ._durations import Duration, describe, to_seconds
from ._lane_core import ffi, lib
from .command import Command, command_type_of
from .config import LaneConfig, check_lane_id, check_priority
from .engine import Engine, check
from .errors import (
    InvalidConfigError,
    LaneNotFoundError,
    LaneTimeoutError,
    NotStartedError,
    ShutdownInProgressError,
)
from .events import (
    COMMAND_CANCELLED,
    COMMAND_COMPLETED,
    COMMAND_FAILED,
    COMMAND_STARTED,
    COMMAND_SUBMITTED,
    SHUTDOWN_COMPLETE,
    SHUTDOWN_STARTED,
    CallbackSubscription,
    EventEmitter,
    EventStream,
    LaneEvent,
)
from .stats import LaneStatus, QueueStats

logger = logging.getLogger("pylane.queue")

_DISPATCHED = lib.LC_DISPATCHED
_RUN_INLINE = lib.LC_RUN_INLINE
_COMPLETED = lib.LC_OUTCOME_COMPLETED
_FAILED = lib.LC_OUTCOME_FAILED
_CANCELLED = lib.LC_OUTCOME_CANCELLED
_WAIT_FOREVER = -1

# Default pool: every lane can reach its max, up to this many threads (never
# fewer than the lanes' reservations).
DEFAULT_POOL_CAP = 64


class _Lane:
    __slots__ = ("config", "index", "lane_id", "priority")

    def __init__(self, lane_id: str, index: int, config: LaneConfig, priority: int) -> None:
        self.lane_id = lane_id
        self.index = index
        self.config = config
        self.priority = priority


class CommandFuture(Future):
    """A ``concurrent.futures.Future`` that knows its command. ``cancel()`` on
    a command still waiting in its lane removes it from the lane."""

    def __init__(self, queue: CommandQueue, lane: _Lane, ticket: int) -> None:
        super().__init__()
        self._queue = queue
        self._lane = lane
        self._ticket = ticket

    @property
    def command_id(self) -> str:
        return self._queue._command_id(self._ticket)

    @property
    def lane_id(self) -> str:
        return self._lane.lane_id

    def cancel(self) -> bool:
        """Cancels the command if it has not started: True if it will not run."""
        if not self._queue._withdraw(self._lane, self._ticket):
            return super().cancel()
        cancelled = super().cancel()
        self._queue._emit_cancelled_ticket(self._lane, self._ticket)
        return cancelled


class _Job:
    """One submitted command. ``call`` runs it with no arguments (a Command's
    ``execute``, the callable itself, or a ``functools.partial`` of it);
    ``source`` is what the user gave, for its ``command_type`` label."""

    __slots__ = ("call", "future", "lane", "source", "ticket")

    def __init__(self, call: Callable[[], Any], source: Any, future: CommandFuture,
                 lane: _Lane, ticket: int) -> None:
        self.call = call
        self.source = source
        self.future = future
        self.lane = lane
        self.ticket = ticket

    @property
    def command_type(self) -> str:
        source = self.source
        if isinstance(source, Command):
            return command_type_of(source)
        return getattr(source, "__name__", type(source).__name__)


class CommandQueue:
    """Lanes, the engine and the workers. Usually built by
    ``QueueManagerBuilder``; usable on its own: ``CommandQueue(emitter)``,
    ``register_lane(...)``, ``start()``."""

    def __init__(self, emitter: Optional[EventEmitter] = None,
                 max_workers: Optional[int] = None) -> None:
        if max_workers is not None and (
            not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers < 1
        ):
            raise InvalidConfigError(f"max_workers must be a positive integer, got {max_workers!r}")
        self.emitter = emitter if emitter is not None else EventEmitter()
        self._max_workers = max_workers
        self._engine = Engine(max_workers or 0)
        self._ptr = self._engine.ptr
        self._lanes: dict[str, _Lane] = {}
        self._lanes_by_index: list[_Lane] = []
        self._jobs: dict[int, _Job] = {}
        self._tickets = itertools.count(1)
        # A random, UUID-shaped prefix per queue plus the ticket gives ids
        # that are unique across processes without a uuid4() per command.
        self._id_prefix = str(uuid.uuid4())[:24]
        self._registry_lock = threading.Lock()
        # Reentrant: an event filter run during submit may itself submit.
        self._intake = threading.RLock()
        self._workers: list[threading.Thread] = []
        self._started = False
        self._shutting_down = False
        self._stopped = False

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
            lane = _Lane(lane_id, index, config, priority)
            self._lanes_by_index.append(lane)
            # Copy-on-write: submit reads the dict without a lock.
            self._lanes = {**self._lanes, lane_id: lane}

    def lane_ids(self) -> list[str]:
        return list(self._lanes)

    def _lane(self, lane_id: str) -> _Lane:
        lane = self._lanes.get(lane_id)
        if lane is None:
            raise LaneNotFoundError(lane_id, list(self._lanes))
        return lane

    # ---- lifecycle --------------------------------------------------------

    @property
    def is_started(self) -> bool:
        return self._started

    @property
    def is_shutting_down(self) -> bool:
        return self._shutting_down

    @property
    def worker_count(self) -> int:
        return len(self._workers)

    def _pool_size(self) -> int:
        if self._max_workers is not None:
            return self._max_workers
        lanes = self._lanes_by_index
        wanted = sum(lane.config.max_concurrency for lane in lanes)
        reserved = sum(lane.config.min_concurrency for lane in lanes)
        return max(1, reserved, min(wanted, DEFAULT_POOL_CAP))

    def start(self) -> None:
        """Starts the worker pool. Calling it again does nothing."""
        with self._registry_lock:
            if self._stopped:
                raise ShutdownInProgressError()
            if self._started:
                return
            size = self._pool_size()
            if self._max_workers is None:
                check(lib.lc_set_workers(self._ptr, size), "set worker budget")
            for number in range(size):
                thread = threading.Thread(
                    target=self._work, name=f"pylane-worker-{number}", daemon=True
                )
                self._workers.append(thread)
            self._started = True
        for thread in self._workers:
            thread.start()

    def shutdown(self) -> None:
        """Stops intake; commands already submitted still run. Emits
        ``queue.shutdown.started`` once."""
        with self._intake:
            if self._shutting_down:
                return
            self._shutting_down = True
        self.emitter.emit_new(SHUTDOWN_STARTED, None)

    def drain(self, timeout: Optional[Duration] = None) -> None:
        """Waits until nothing is pending or running. After ``shutdown()`` it
        then stops the workers and ends every event stream. Raises
        ``LaneTimeoutError`` saying what is left when `timeout` passes."""
        seconds = None if timeout is None else to_seconds(timeout, "drain timeout")
        if not self._wait_idle(seconds):
            raise LaneTimeoutError(self._drain_timeout_message(seconds or 0.0))
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

    def _drain_timeout_message(self, seconds: float) -> str:
        stats = self.stats()
        busy = [
            f"{s.lane_id}: {s.pending} pending, {s.active} active"
            for s in stats.lanes if s.pending or s.active
        ]
        return (
            f"drain timed out after {describe(seconds)} with {stats.total_pending} pending and "
            f"{stats.total_active} active ({'; '.join(busy) or 'finishing'})"
        )

    def _stop_workers(self) -> None:
        with self._registry_lock:
            if self._stopped:
                return
            self._stopped = True
        self._engine.stop()
        current = threading.current_thread()
        for thread in self._workers:
            if thread is not current:
                thread.join()
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

    def run(self, lane_id: str, command: Any, *args: Any, **kwargs: Any) -> Any:
        """Submits and waits for the result. When the command would start at
        once anyway, it runs on the calling thread, which saves two thread
        switches; priority and concurrency limits are the same either way."""
        if not self._started:
            raise NotStartedError()
        job = self._new_job(lane_id, command, args, kwargs)
        if self._enqueue(job, lib.lc_submit_or_claim) == _RUN_INLINE:
            self._execute(job)
            lib.lc_settle(self._ptr)
        return job.future.result()

    def _enqueue(self, job: _Job, engine_submit: Callable[..., int]) -> int:
        """Hands the job to the engine (``lc_submit`` or
        ``lc_submit_or_claim``) and returns the engine's code.

        Under the intake lock, so that once ``shutdown()`` has returned no
        submit can still reach the engine (a drain would miss it); the
        ``submitted`` event goes out before the engine can start the job, so
        it always comes before ``started``."""
        ticket = job.ticket
        with self._intake:
            if self._shutting_down:
                raise ShutdownInProgressError()
            if self.emitter._streams:
                self._emit_submitted(job)
            self._jobs[ticket] = job
            rc = engine_submit(self._ptr, job.lane.index, ticket, 0)
            if rc == _RUN_INLINE or rc < 0:
                del self._jobs[ticket]
        check(rc, "submit")
        return rc

    def _new_job(self, lane_id: str, command: Any, args: tuple, kwargs: dict) -> _Job:
        lane = self._lanes.get(lane_id)
        if lane is None:
            raise LaneNotFoundError(lane_id, list(self._lanes))
        # No wrapper object per command: fewer allocations on the hot path.
        if isinstance(command, Command):
            if args or kwargs:
                raise TypeError("arguments can only be passed with a plain callable, not a Command")
            call = command.execute
        elif callable(command):
            call = functools.partial(command, *args, **kwargs) if args or kwargs else command
        else:
            raise TypeError(f"submit() needs a Command or a callable, got {type(command).__name__}")
        ticket = next(self._tickets)
        return _Job(call, command, CommandFuture(self, lane, ticket), lane, ticket)

    def _emit_submitted(self, job: _Job) -> None:
        self.emitter.emit_new(COMMAND_SUBMITTED, {
            "lane_id": job.lane.lane_id,
            "command_id": self._command_id(job.ticket),
            "command_type": job.command_type,
        })

    def _command_id(self, ticket: int) -> str:
        return f"{self._id_prefix}{ticket:012x}"

    # ---- cancel and pause ---------------------------------------------------

    def _withdraw(self, lane: _Lane, ticket: int) -> bool:
        """Takes a still-pending ticket out of its lane; True if it was there.
        Only tickets still in ``_jobs`` can be pending, which spares the
        engine's scan for futures that already started or finished."""
        if ticket not in self._jobs or lib.lc_cancel(self._ptr, lane.index, ticket) != 1:
            return False
        self._jobs.pop(ticket, None)
        return True

    def cancel(self, command_id: str) -> bool:
        """Cancels a pending command by id; False if it already started."""
        prefix = self._id_prefix
        if not command_id.startswith(prefix):
            return False
        try:
            ticket = int(command_id[len(prefix):], 16)
        except ValueError:
            return False
        job = self._jobs.get(ticket)
        return job is not None and job.future.cancel()

    def pause_lane(self, lane_id: str) -> None:
        """Running commands finish; no new ones start until resume_lane."""
        self._engine.pause(self._lane(lane_id).index)

    def resume_lane(self, lane_id: str) -> None:
        self._engine.resume(self._lane(lane_id).index)

    # ---- workers --------------------------------------------------------------

    def _work(self) -> None:
        ptr = self._ptr
        out = ffi.new("lc_dispatch *")
        jobs = self._jobs
        rc = lib.pylane_wait_next(ptr, _WAIT_FOREVER, out)
        while rc == _DISPATCHED:
            job = jobs.pop(out.ticket, None)
            if job is not None:
                self._execute(job)
            else:  # withdrawn between dispatch and here; nothing to run
                lib.lc_finish(ptr, out.lane, _CANCELLED)
            rc = lib.pylane_settle_and_wait(ptr, _WAIT_FOREVER, out)

    def _execute(self, job: _Job) -> None:
        """Runs one dispatched job, frees its slot, then publishes the result.
        The caller settles it in the engine afterwards. Whatever the command
        (or its ``command_type``) raises fails that command alone: the slot
        is freed exactly once and the worker carries on."""
        future = job.future
        lane = job.lane
        emitter = self.emitter
        if not future.set_running_or_notify_cancel():
            lib.lc_finish(self._ptr, lane.index, _CANCELLED)
            self._emit_cancelled(job)
            return
        try:
            if emitter._streams:
                emitter.emit_new(COMMAND_STARTED, {
                    "lane_id": lane.lane_id,
                    "command_id": self._command_id(job.ticket),
                    "command_type": job.command_type,
                })
            result = job.call()
        except BaseException as error:
            # Event, then free the slot, then the result: a subscriber sees
            # this end before the start it makes room for, and a caller that
            # has the result sees the slot already free in stats().
            if emitter._streams:
                emitter.emit_new(COMMAND_FAILED, {
                    "lane_id": lane.lane_id,
                    "command_id": self._command_id(job.ticket),
                    "error": _describe_error(error),
                })
            lib.lc_finish(self._ptr, lane.index, _FAILED)
            future.set_exception(error)
            if not isinstance(error, Exception):  # SystemExit, KeyboardInterrupt
                logger.warning("command %s raised %r", self._command_id(job.ticket), error)
            return
        if emitter._streams:
            emitter.emit_new(COMMAND_COMPLETED, {
                "lane_id": lane.lane_id,
                "command_id": self._command_id(job.ticket),
            })
        lib.lc_finish(self._ptr, lane.index, _COMPLETED)
        future.set_result(result)

    def _emit_cancelled(self, job: _Job) -> None:
        self._emit_cancelled_ticket(job.lane, job.ticket)

    def _emit_cancelled_ticket(self, lane: _Lane, ticket: int) -> None:
        self.emitter.emit_new(COMMAND_CANCELLED, {
            "lane_id": lane.lane_id,
            "command_id": self._command_id(ticket),
        })

    # ---- observation ----------------------------------------------------------

    def stats(self, dead_letter_count: int = 0) -> QueueStats:
        lanes = []
        for lane in self._lanes_by_index:
            s = self._engine.lane_stats(lane.index)
            lanes.append(LaneStatus(
                lane_id=lane.lane_id, priority=lane.priority, pending=s.pending,
                active=s.active, min_concurrency=s.min_concurrency,
                max_concurrency=s.max_concurrency, paused=s.paused, submitted=s.submitted,
                completed=s.completed, failed=s.failed, cancelled=s.cancelled,
            ))
        return QueueStats(
            total_pending=sum(s.pending for s in lanes),
            total_active=sum(s.active for s in lanes),
            dead_letter_count=dead_letter_count,
            lanes=lanes,
        )

    def status(self) -> dict[str, LaneStatus]:
        return {s.lane_id: s for s in self.stats().lanes}

    def subscribe(
        self, callback: Optional[Callable[[LaneEvent], Any]] = None
    ) -> Union[EventStream, CallbackSubscription]:
        if callback is not None:
            return self.emitter.subscribe_callback(callback)
        return self.emitter.subscribe()

    def subscribe_stream(self) -> EventStream:
        return self.emitter.subscribe()

    def subscribe_filtered(self, predicate: Callable[[LaneEvent], bool]) -> EventStream:
        return self.emitter.subscribe_filtered(predicate)


def _describe_error(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
