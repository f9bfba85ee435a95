"""Running dispatched commands: one attempt, its outcome, retries.

``Execution`` is the half of ``CommandQueue`` that workers use; it is a
separate class only to keep each file about one thing (deadlines are in
timeouts.py). Every attempt ends exactly once, in one of: success, a retry
(the engine holds the ticket for the back-off delay), or a terminal failure
(dead letter, ``failed`` or ``timeout``). If ending it fails (a dead letter
queue, storage, alerts or metrics backend that raises), the command fails
with a ``LaneError`` saying so, its slot is freed and the worker goes on.

Order at the end of an attempt, and why:
  1. events first, so a subscriber sees an end before the start it allows;
  2. ``lc_finish`` frees the slot, so a caller holding the result never sees
     its command still counted as active;
  3. the future is resolved;
  4. the caller of ``_execute`` settles the ticket in the engine, after which
     ``drain`` may return.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import types
from concurrent.futures import Future, InvalidStateError
from typing import Any, Callable, Optional, Protocol

from .._lane_core import ffi, lib
from ..cancel import current
from ..durable.dead_letters import DeadLetter, DeadLetterQueue
from ..durable.storage import Storage, StoredDeadLetter, move_to_dead_letters
from ..errors import LaneError
from ..events import (
    COMMAND_CANCELLED,
    COMMAND_COMPLETED,
    COMMAND_DEAD_LETTERED,
    COMMAND_FAILED,
    COMMAND_RETRY,
    COMMAND_STARTED,
    COMMAND_TIMEOUT,
    EventEmitter,
)
from ..metrics import QueueMetrics
from .aio import EventLoopThread
from .jobs import ABANDONED, DONE, QUEUED, RUNNING, TIMED_OUT, Job, Lane
from .metrics_feed import EngineMetricsFeed
from .pool import WorkerPool
from .timeouts import Timeouts

logger = logging.getLogger("pylane.queue")

_DISPATCHED = lib.LC_DISPATCHED
_COMPLETED = lib.LC_OUTCOME_COMPLETED
_FAILED = lib.LC_OUTCOME_FAILED
_CANCELLED = lib.LC_OUTCOME_CANCELLED
_RETRIED = lib.LC_OUTCOME_RETRIED
_SAMPLES_DUE = lib.LC_SAMPLES_DUE
_NOT_TIMED = -1  # lc_finish_timed: no run-time sample
_clock = time.perf_counter_ns
_WAIT_FOREVER = -1
_NULL = ffi.NULL
_COROUTINE = types.CoroutineType


def describe_error(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _Save(Protocol):
    """``Intake._save``."""

    def __call__(self, job: Job, last_attempt: bool = ...) -> None: ...


class Execution(Timeouts):
    """Mixed into CommandQueue, which provides the state below. (Only
    annotations: a stub method here would shadow the real one in the MRO.)"""

    emitter: EventEmitter
    _ptr: Any
    _jobs: dict[int, Job]
    _lanes: dict[str, Lane]
    _command_id_of: Callable[[int], str]
    _storage: Optional[Storage]
    _dlq: Optional[DeadLetterQueue]
    _metrics: Optional[QueueMetrics]
    _alerts: Any
    _feed: Optional[EngineMetricsFeed]
    _timed: bool
    _pool: WorkerPool
    _aio: EventLoopThread

    _check_pressure: Callable[[Lane], None]
    _save: _Save
    # ---- the worker loop ------------------------------------------------------

    def _work(self) -> None:
        ptr = self._ptr
        out = ffi.new("lc_dispatch *")
        jobs = self._jobs
        rc = lib.pylane_wait_next(ptr, _WAIT_FOREVER, out)
        while rc == _DISPATCHED:
            wake = None
            job = jobs.get(out.ticket)
            if job is None:  # cannot happen: a dispatched ticket's job is kept
                logger.error("dispatched ticket %d has no job", out.ticket)
                lib.lc_finish(ptr, out.lane, _CANCELLED)
            elif not self._execute(job):
                return  # abandoned after a timeout; a replacement has taken over
            else:
                wake, job.wake = job.wake, None
            # Drop it before sleeping: an idle worker must not keep the last
            # command (its arguments, its result) alive.
            job = None
            # Wakes the thread blocked on the result (if any) once this one
            # has let go of the GIL, unless it has more work.
            rc = lib.pylane_settle_wake_and_wait(ptr, wake or _NULL, _WAIT_FOREVER, out)

    def _execute(self, job: Job) -> bool:
        """Runs one attempt of a dispatched job and ends it. The caller then
        settles it in the engine. Returns False when this thread was
        abandoned at the end of a timeout's grace: the attempt was ended
        for it, and it must neither settle nor take more work."""
        future = job.future
        lane = job.lane
        if not future.set_running_or_notify_cancel():
            self._end_cancelled(job)
            return True
        job.state = RUNNING
        job.finished = False
        if lane.pressure_threshold is not None:
            self._check_pressure(lane)  # a dispatch may have emptied the lane
        attempt = job.attempt
        emitter = self.emitter
        timeout = lane.timeout
        if emitter.streams:
            emitter.emit_new(COMMAND_STARTED, {
                "lane_id": lane.lane_id,
                "command_id": self._command_id_of(job.ticket),
                "command_type": job.command_type,
            })
        current.job = job
        # The clock only when someone records run times: it is on the hot
        # path. (The queue wait is timed by the engine at dispatch.)
        timed = self._timed
        started = _clock() if timed else 0
        if timeout is None:
            try:
                result = job.call()
                if type(result) is _COROUTINE:
                    result = self._aio.run(result, job.cancel_token())
            except BaseException as error:
                failure: Optional[BaseException] = error
            else:
                failure = None
            finally:
                current.job = None
            timed_out = False
        else:
            job.thread = threading.current_thread()
            job.interrupted = False
            self._deadlines.watch(time.monotonic() + timeout, (False, job, attempt))
            try:
                result, failure, seen = self._call_timed(job, attempt)
            finally:
                current.job = None
            if seen == ABANDONED:
                self._pool.returned(job.thread)
                return False
            timed_out = seen == TIMED_OUT
        run_ns = _clock() - started if timed else _NOT_TIMED
        try:
            if self._alerts is not None:
                self._alert("check_latency", lane.lane_id, run_ns / 1e6)
            if timed_out:
                self._end_timed_out(job)
            elif failure is None:
                self._succeed(job, result, run_ns)
            else:
                if not isinstance(failure, Exception):  # SystemExit, KeyboardInterrupt
                    logger.warning("command %s raised %r", self._command_id_of(job.ticket),
                                   failure, extra=self._log_fields(job))
                self._fail_attempt(job, failure, max(run_ns, 0) / 1e9, timed_out=False)
        except Exception as fault:
            self._end_after_fault(job, fault)
        return True

    def _log_fields(self, job: Job) -> dict[str, str]:
        """Structured fields for log records about a command (``extra=``):
        a formatter can use %(lane_id)s, %(command_id)s, %(command_type)s."""
        return {"lane_id": job.lane.lane_id, "command_id": self._command_id_of(job.ticket),
                "command_type": job.command_type}

    def _end_after_fault(self, job: Job, fault: BaseException) -> None:
        """Ending an attempt raised (our bookkeeping, or a backend the user
        gave us). The command must still end exactly once: the engine is
        told (unless it already was), the future fails with a LaneError
        naming the fault, and the worker goes on."""
        command_id = self._command_id_of(job.ticket)
        logger.error("ending command %s failed; it fails with the fault", command_id,
                     exc_info=fault, extra=self._log_fields(job))
        try:
            self._jobs.pop(job.ticket, None)
            job.state = DONE
            if not job.finished:
                job.finished = True
                lib.lc_finish_timed(self._ptr, job.lane.index, _FAILED, _NOT_TIMED)
            error = LaneError(f"command {command_id} could not be ended cleanly: "
                              f"{describe_error(fault)}")
            error.__cause__ = fault
            _fail_future(job.future, error)
        except Exception:
            logger.exception("could not end command %s after a fault", command_id,
                             extra=self._log_fields(job))

    # ---- how an attempt ends --------------------------------------------------

    def _finish(self, job: Job, outcome: int, run_ns: int = _NOT_TIMED) -> bool:
        """Ends the attempt in the engine (which records its run time when
        metrics are on); True when the engine's samples are due to be
        handed to the metrics, which the caller does once the command's
        future is resolved, so no caller waits for the hand-over."""
        job.finished = True
        return lib.lc_finish_timed(self._ptr, job.lane.index, outcome, run_ns) == _SAMPLES_DUE

    def _hand_over_metrics(self) -> None:
        if self._feed is not None:
            try:
                self._feed.collect(wait=False)
            except Exception:
                logger.exception("handing metrics over failed; the queue goes on")

    def _alert(self, check: str, *args: Any) -> None:
        """Runs an alert check. Alerts observe; one that raises is logged
        and costs no command its result."""
        try:
            getattr(self._alerts, check)(*args)
        except Exception:
            logger.exception("alert check %s failed; the queue goes on", check)

    def _record(self, hook: str, *args: Any) -> None:
        """Calls a metrics hook. A backend that raises must not cost the
        command its end (a worker would leave its slot taken for good):
        the error is logged and the command goes on."""
        try:
            getattr(self._metrics, hook)(*args)
        except Exception:
            logger.exception("metrics hook %s failed; the queue goes on", hook)

    def _succeed(self, job: Job, result: Any, run_ns: int) -> None:
        lane = job.lane
        self._jobs.pop(job.ticket, None)
        if job.stored:
            self._forget_stored(job)
        if self.emitter.streams:
            self.emitter.emit_new(COMMAND_COMPLETED, {
                "lane_id": lane.lane_id,
                "command_id": self._command_id_of(job.ticket),
            })
        job.state = DONE
        # _finish inlined: this runs once per command.
        job.finished = True
        rc = lib.lc_finish_timed(self._ptr, lane.index, _COMPLETED, run_ns)
        # A thread blocked on the result is woken by the caller of
        # _execute (see _work and CommandQueue.run).
        job.wake = job.future.set_result_wake_later(result)
        if rc == _SAMPLES_DUE:
            self._hand_over_metrics()

    def _fail_attempt(self, job: Job, error: BaseException, run_seconds: float,
                      timed_out: bool) -> None:
        """Retries the job if its lane's policy allows, else fails it for good."""
        lane = job.lane
        policy = lane.retry
        token = job.token
        if not timed_out and token is not None and token.cancelled:
            # It stopped because someone cancelled it: that is final.
            self._end_cancelled_while_running(job, error)
        elif policy is not None and policy.should_retry(job.attempt):
            self._retry(job, policy.delay_for_attempt(job.attempt + 1))
        else:
            self._fail_for_good(job, error, run_seconds, timed_out)

    def _retry(self, job: Job, delay: float) -> None:
        lane = job.lane
        job.attempt += 1
        job.token = None  # each attempt starts uncancelled
        command_id = self._command_id_of(job.ticket)
        if job.stored:
            try:
                self._save(job, last_attempt=True)
            except Exception:
                logger.exception("could not store the retry count of %s; retrying anyway",
                                 command_id, extra=self._log_fields(job))
        self.emitter.emit_new(COMMAND_RETRY, {
            "lane_id": lane.lane_id, "command_id": command_id, "attempt": job.attempt,
        })
        if self._metrics is not None:
            self._record("record_retry", lane.lane_id)
        job.state = QUEUED
        job.future.back_to_pending()
        self._jobs[job.ticket] = job
        # The delay is computed before the slot is freed: a fault here ends
        # the command through _end_after_fault with the engine untold.
        due_ns = lib.lc_now_ns() + int(delay * 1e9)
        due = self._finish(job, _RETRIED)
        # The engine holds the back-off as a delayed entry: no thread sleeps.
        if lib.lc_retry_at(self._ptr, lane.index, job.ticket, due_ns) < 0:
            self._jobs.pop(job.ticket, None)
            job.future.set_running_or_notify_cancel()
            _fail_future(job.future, MemoryError("engine could not queue the retry"))
        if due:
            self._hand_over_metrics()

    def _fail_for_good(self, job: Job, error: BaseException, run_seconds: float,
                       timed_out: bool) -> None:
        self._record_failure(job, error, run_seconds, timed_out)
        due = self._finish(job, _FAILED)
        # At a deadline the future may have failed already (see timeouts.py).
        _fail_future(job.future, error)
        if due:
            self._hand_over_metrics()

    def _record_failure(self, job: Job, error: BaseException, run_seconds: float,
                        timed_out: bool) -> None:
        """Everything a final failure leaves behind but the freed slot: the
        dead letter, the event, metrics and counters."""
        lane = job.lane
        command_id = self._command_id_of(job.ticket)
        text = describe_error(error)
        self._jobs.pop(job.ticket, None)
        self._dead_letter(job, command_id, text)  # moves a stored command, atomically
        key = COMMAND_TIMEOUT if timed_out else COMMAND_FAILED
        self.emitter.emit_new(key, {"lane_id": lane.lane_id, "command_id": command_id,
                                    "error": text})
        if self._metrics is not None:
            if timed_out:
                self._record("record_timeout", lane.lane_id, run_seconds)
            else:
                self._record("record_failure", lane.lane_id, run_seconds)
        if timed_out:
            lane.counters["timed_out"] += 1

    def _dead_letter(self, job: Job, command_id: str, error: str) -> None:
        if self._dlq is None and not job.stored:
            return
        letter = DeadLetter(command_id, job.command_type, job.lane.lane_id, error, job.attempt + 1)
        self._record_dead_letter(letter, stored=job.stored)

    def _record_dead_letter(self, letter: DeadLetter, stored: bool = False) -> None:
        """Keeps a dead letter in the DLQ and, with storage, on disk. A
        `stored` command moves from the commands to the dead letters in one
        step, so a crash leaves it in one table or the other, never neither."""
        if self._storage is not None:
            on_disk = StoredDeadLetter(letter.command_id, letter.command_type, letter.lane_id,
                                       letter.error, letter.attempts, letter.failed_at)
            try:
                if stored:
                    move_to_dead_letters(self._storage, letter.command_id, on_disk)
                else:
                    self._storage.save_dead_letter(on_disk)
            except Exception:
                logger.exception("could not store the dead letter of %s; it may run again "
                                 "after a restart", letter.command_id, extra={
                                     "lane_id": letter.lane_id, "command_id": letter.command_id,
                                     "command_type": letter.command_type})
        if self._dlq is not None:
            self._dlq.push(letter)
        lane = self._lanes.get(letter.lane_id)
        if lane is not None:
            lane.counters["dead_lettered"] += 1
        self.emitter.emit_new(COMMAND_DEAD_LETTERED, {
            "lane_id": letter.lane_id, "command_id": letter.command_id,
            "command_type": letter.command_type,
        })
        if self._metrics is not None:
            self._record("record_dead_letter", letter.lane_id)

    def _end_cancelled(self, job: Job) -> None:
        """A job whose future was cancelled after the engine dispatched it."""
        self._jobs.pop(job.ticket, None)
        if job.stored:
            self._forget_stored(job)
        job.state = DONE
        self._emit_cancelled_ticket(job.lane, job.ticket)
        if self._finish(job, _CANCELLED):
            self._hand_over_metrics()

    def _end_cancelled_while_running(self, job: Job, error: BaseException) -> None:
        """A running command that stopped after its token was cancelled: no
        retry, no dead letter; its future carries what it raised."""
        self._jobs.pop(job.ticket, None)
        if job.stored:
            self._forget_stored(job)
        self._emit_cancelled_ticket(job.lane, job.ticket)
        due = self._finish(job, _CANCELLED)
        _fail_future(job.future, error)
        if due:
            self._hand_over_metrics()

    def _forget_stored(self, job: Job) -> None:
        """Removes an ended command from storage. A storage error must not
        cost the result or the slot: the command has run; at worst it runs
        again after a restart (at-least-once), which the log says."""
        command_id = self._command_id_of(job.ticket)
        storage = self._storage
        assert storage is not None  # only a stored job is forgotten: there is storage
        try:
            storage.remove_command(command_id)
        except Exception:
            logger.exception("could not remove ended command %s from storage; it may run "
                             "again after a restart", command_id, extra=self._log_fields(job))

    def _emit_cancelled_ticket(self, lane: Lane, ticket: int) -> None:
        if self._metrics is not None:
            self._record("record_cancel", lane.lane_id)
        self.emitter.emit_new(COMMAND_CANCELLED, {
            "lane_id": lane.lane_id,
            "command_id": self._command_id_of(ticket),
        })


def _fail_future(future: Future[Any], error: BaseException) -> None:
    """Fails a future unless it has ended already (a timed-out command's
    future fails at the deadline; its attempt may end later)."""
    with contextlib.suppress(InvalidStateError):
        future.set_exception(error)
