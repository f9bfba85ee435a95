"""Command timeouts: one timer thread for every deadline, and what happens
at a deadline (``Timeouts``, below).

One heap of (deadline, item) and one thread sleeping on a condition until the
earliest deadline: no thread per command and no polling. Items whose command
finished in time are simply found stale when their deadline comes (the
callback checks), which keeps ``watch`` to one heap push.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import threading
import time
import types
from concurrent.futures import InvalidStateError
from typing import Any, Callable, Optional, Protocol

from .._durations import describe
from .._lane_core import lib
from ..errors import CommandTimeoutError
from ..events import COMMAND_ABANDONED, EventEmitter
from .aio import EventLoopThread
from .interrupt import DeadlineInterrupt, interrupt, withdraw_interrupt
from .jobs import ABANDONED, DONE, RUNNING, TIMED_OUT, Job
from .pool import WorkerPool

logger = logging.getLogger("pylane.timeouts")

# One wait's longest timeout, well inside threading.TIMEOUT_MAX.
_LONGEST_WAIT = 3600.0


class DeadlineWatcher:
    def __init__(self, on_expire: Callable[[Any], None], name: str = "pylane-deadlines") -> None:
        self._on_expire = on_expire
        self._name = name
        self._heap: list[tuple[float, int, Any]] = []
        self._order = itertools.count()
        self._wakeup = threading.Condition(threading.Lock())
        self._thread: Optional[threading.Thread] = None
        self._stopped = False

    def watch(self, deadline: float, item: Any) -> None:
        """Calls ``on_expire(item)`` at `deadline` (``time.monotonic`` seconds)."""
        with self._wakeup:
            heapq.heappush(self._heap, (deadline, next(self._order), item))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif self._heap[0][2] is item:
                self._wakeup.notify()  # the new item is now the earliest

    def stop(self) -> None:
        with self._wakeup:
            self._stopped = True
            self._heap.clear()
            self._wakeup.notify()

    def _run(self) -> None:
        # Nothing may end this thread but stop(): every lane's timeouts hang
        # on it. Waits are capped (a deadline too far away to wait for in one
        # call is waited for in steps) and a failing handler is logged.
        with self._wakeup:
            while not self._stopped:
                if not self._heap:
                    self._wakeup.wait()
                    continue
                deadline, _, item = self._heap[0]
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    self._wakeup.wait(min(remaining, _LONGEST_WAIT))
                    continue
                heapq.heappop(self._heap)
                self._wakeup.release()
                try:
                    self._on_expire(item)
                except Exception:
                    logger.exception("deadline handler failed")
                finally:
                    self._wakeup.acquire()


class _RecordFailure(Protocol):
    """``Execution._record_failure``: `timed_out` is passed by keyword."""

    def __call__(self, job: Job, error: BaseException, run_seconds: float,
                 timed_out: bool) -> None: ...


class _Finish(Protocol):
    """``Execution._finish``: True when the engine's samples are due."""

    def __call__(self, job: Job, outcome: int, run_ns: int = ...) -> bool: ...


class Timeouts:
    """Mixed into CommandQueue (through Execution): runs commands of lanes
    with a timeout, and ends them at their deadline.

    At the deadline (the watcher thread): the job goes TIMED_OUT, its cancel
    token is set and a ``DeadlineInterrupt`` is raised inside the running
    command; when no retry follows, the caller's future fails now. The slot
    stays taken: concurrency stays honest. The attempt then ends once, by
    whichever comes first:
      - the worker leaves the command (it stopped at the interrupt, or it
        returned anyway): it ends the attempt and goes on serving;
      - the grace passes (the thread is stuck in a C call): the job goes
        ABANDONED, the attempt ends, the slot frees, the pool gets a new
        worker, and the old thread exits whenever the call returns.

    Aiming: an interrupt is sent only while ``job.in_command`` (set and
    cleared under the state lock around the call), at most once per attempt;
    the worker withdraws one not yet delivered as it leaves, and catches one
    that lands in its own code between the command's return and that
    withdrawal. So it never lands between commands or in another command.
    """

    _state_lock: threading.Lock
    _deadlines: DeadlineWatcher
    _pool: WorkerPool
    _ptr: Any
    _jobs: dict[int, Job]
    _aio: EventLoopThread
    _log_fields: Callable[[Job], dict[str, str]]
    _command_id_of: Callable[[int], str]
    emitter: EventEmitter

    _retry: Callable[[Job, float], None]
    _record_failure: _RecordFailure
    _finish: _Finish
    _hand_over_metrics: Callable[[], None]
    _end_after_fault: Callable[[Job, BaseException], None]
    def _call_timed(self, job: Job, attempt: int) -> tuple[Any, Optional[BaseException], int]:
        """Runs the command; returns (result, failure, state seen on leaving)."""
        result: Any = None
        failure: Optional[BaseException] = None
        called = False
        seen = -1
        while True:
            # Every line of this loop is covered by the except below: an
            # interrupt that lands after the command returned (in this frame)
            # is caught here, and the loop finishes leaving.
            try:
                if not called:
                    called = True
                    with self._state_lock:
                        job.in_command = job.state == RUNNING and job.attempt == attempt
                    if job.in_command:
                        try:
                            result = job.call()
                            if type(result) is types.CoroutineType:
                                result = self._aio.run(result, job.cancel_token())
                        except BaseException as error:
                            failure = error
                if seen < 0:
                    with self._state_lock:
                        job.in_command = False
                        seen = job.state
                        if seen in (RUNNING, TIMED_OUT) and job.attempt == attempt:
                            job.state = DONE  # this worker ends the attempt
                        sent = job.interrupted
                    if sent:
                        withdraw_interrupt(threading.get_ident())
                return result, failure, seen
            except DeadlineInterrupt as late:
                if failure is None:
                    failure = late

    def _on_deadline(self, item: tuple[bool, Job, int]) -> None:
        """The watcher thread, at a deadline or at the end of a grace."""
        grace_over, job, attempt = item
        try:
            if grace_over:
                self._abandon(job, attempt)
            else:
                self._interrupt(job, attempt)
        except Exception as fault:
            self._end_after_fault(job, fault)

    def _interrupt(self, job: Job, attempt: int) -> None:
        lane = job.lane
        with self._state_lock:
            if job.state != RUNNING or job.attempt != attempt:
                return  # finished in time, or already retried
            job.state = TIMED_OUT
            job.cancel_token().cancel("timed out")
            if job.in_command and job.thread is not None and job.thread.ident is not None:
                job.interrupted = interrupt(job.thread.ident)
        if not _retries(job):
            # Final: the caller, the dead letter and the subscribers learn it
            # now; only the slot waits for the thread (see _end_timed_out).
            timeout = lane.timeout or 0.0
            error = timeout_error(timeout)
            self._record_failure(job, error, timeout, timed_out=True)
            with contextlib.suppress(InvalidStateError):
                job.future.set_exception(error)
        self._deadlines.watch(time.monotonic() + lane.grace, (True, job, attempt))

    def _abandon(self, job: Job, attempt: int) -> None:
        with self._state_lock:
            if job.state != TIMED_OUT or job.attempt != attempt:
                return  # the worker left in time and ends the attempt itself
            job.state = ABANDONED
            self._pool.abandon(job.thread)
        command_id = self._command_id_of(job.ticket)
        logger.warning("command %s of lane %s still running %s after its deadline: its "
                       "thread is abandoned and replaced", command_id, job.lane.lane_id,
                       describe(job.lane.grace), extra=self._log_fields(job))
        self.emitter.emit_new(COMMAND_ABANDONED, {
            "lane_id": job.lane.lane_id, "command_id": command_id, "grace": job.lane.grace,
        })
        self._end_timed_out(job)
        lib.lc_settle(self._ptr)
        self._pool.spawn()

    def _end_timed_out(self, job: Job) -> None:
        """Ends a timed-out attempt once its thread has left the command or
        been abandoned: the slot frees, and the retry (if any) is queued."""
        policy = job.lane.retry
        if policy is not None and _retries(job):
            self._retry(job, policy.delay_for_attempt(job.attempt + 1))
            return
        self._jobs.pop(job.ticket, None)
        if self._finish(job, lib.LC_OUTCOME_FAILED):
            self._hand_over_metrics()


def _retries(job: Job) -> bool:
    """Whether a timed-out attempt is followed by a retry (decided the same
    way at the deadline and at the end: the attempt count has not moved)."""
    policy = job.lane.retry
    return policy is not None and policy.should_retry(job.attempt)


def timeout_error(timeout: float) -> CommandTimeoutError:
    return CommandTimeoutError(f"Command timed out after {describe(timeout)}")
