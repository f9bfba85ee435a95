"""Running dispatched commands: one attempt, its outcome, retries, timeouts.

``Execution`` is the half of ``CommandQueue`` that workers use; it is a
separate class only to keep each file about one thing. Every attempt ends in
exactly one of: success, a retry (the engine holds the ticket for the back-off
delay), or a terminal failure (dead letter, ``failed`` or ``timeout``).

Order at the end of an attempt, and why:
  1. events first, so a subscriber sees an end before the start it allows;
  2. ``lc_finish`` frees the slot, so a caller holding the result never sees
     its command still counted as active;
  3. the future is resolved;
  4. the caller of ``_execute`` settles the ticket in the engine, after which
     ``drain`` may return.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Optional

from .._durations import describe
from .._lane_core import ffi, lib
from ..cancel import current
from ..durable.dead_letters import DeadLetter, DeadLetterQueue
from ..durable.storage import Storage, StoredDeadLetter
from ..errors import CommandTimeoutError
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
from .jobs import DONE, QUEUED, RUNNING, TIMED_OUT, Job, Lane
from .metrics_feed import EngineMetricsFeed
from .pool import WorkerPool
from .timeouts import DeadlineWatcher

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


def describe_error(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class Execution:
    """Mixed into CommandQueue, which provides the state below."""

    emitter: EventEmitter
    _ptr: Any
    _jobs: dict[int, Job]
    _lanes: dict[str, Lane]
    _command_id_of: Callable[[int], str]
    _storage: Optional[Storage]
    _dlq: Optional[DeadLetterQueue]
    _metrics: Any
    _alerts: Any
    _feed: Optional[EngineMetricsFeed]
    _timed: bool
    _state_lock: threading.Lock
    _deadlines: DeadlineWatcher
    _pool: WorkerPool

    def _check_pressure(self, lane: Lane) -> None:
        raise NotImplementedError  # CommandQueue's

    def _save(self, job: Job, last_attempt: bool = False) -> None:
        raise NotImplementedError  # CommandQueue's

    # ---- the worker loop ------------------------------------------------------

    def _work(self) -> None:
        ptr = self._ptr
        out = ffi.new("lc_dispatch *")
        jobs = self._jobs
        rc = lib.pylane_wait_next(ptr, _WAIT_FOREVER, out)
        while rc == _DISPATCHED:
            job = jobs.get(out.ticket)
            if job is None:  # cannot happen: a dispatched ticket's job is kept
                logger.error("dispatched ticket %d has no job", out.ticket)
                lib.lc_finish(ptr, out.lane, _CANCELLED)
            elif not self._execute(job):
                return  # abandoned after a timeout; a replacement has taken over
            # Drop it before sleeping: an idle worker must not keep the last
            # command (its arguments, its result) alive.
            job = None
            rc = lib.pylane_settle_and_wait(ptr, _WAIT_FOREVER, out)

    def _execute(self, job: Job) -> bool:
        """Runs one attempt of a dispatched job and ends it. The caller then
        settles it in the engine. Returns False when the attempt timed out
        while running: its end was handled by the deadline, and this thread
        is abandoned (it must neither settle nor take more work)."""
        future = job.future
        lane = job.lane
        if not future.set_running_or_notify_cancel():
            self._end_cancelled(job)
            return True
        job.state = RUNNING
        if lane.pressure_threshold is not None:
            self._check_pressure(lane)  # a dispatch may have emptied the lane
        attempt = job.attempt
        emitter = self.emitter
        timeout = lane.timeout
        if timeout is not None:
            job.thread = threading.current_thread()
            self._deadlines.watch(time.monotonic() + timeout, (job, attempt))
        current.job = job
        # The clock only when someone records run times: it is on the hot
        # path. (The queue wait is timed by the engine at dispatch.)
        timed = self._timed
        started = _clock() if timed else 0
        try:
            if emitter.streams:
                emitter.emit_new(COMMAND_STARTED, {
                    "lane_id": lane.lane_id,
                    "command_id": self._command_id_of(job.ticket),
                    "command_type": job.command_type,
                })
            result = job.call()
        except BaseException as error:
            failure: Optional[BaseException] = error
        else:
            failure = None
        finally:
            current.job = None
        run_ns = _clock() - started if timed else _NOT_TIMED
        if self._alerts is not None:
            self._alerts.check_latency(lane.lane_id, run_ns / 1e6)
        if timeout is not None:
            with self._state_lock:
                if job.state != RUNNING or job.attempt != attempt:
                    self._pool.returned(threading.current_thread())
                    return False
                job.state = DONE
        if failure is None:
            self._succeed(job, result, run_ns)
        else:
            if not isinstance(failure, Exception):  # SystemExit, KeyboardInterrupt
                logger.warning("command %s raised %r", self._command_id_of(job.ticket), failure)
            self._fail_attempt(job, failure, max(run_ns, 0) / 1e9, timed_out=False)
        return True

    # ---- how an attempt ends --------------------------------------------------

    def _finish(self, lane: Lane, outcome: int, run_ns: int = _NOT_TIMED) -> bool:
        """Ends the attempt in the engine (which records its run time when
        metrics are on); True when the engine's samples are due to be
        handed to the metrics, which the caller does once the command's
        future is resolved, so no caller waits for the hand-over."""
        return lib.lc_finish_timed(self._ptr, lane.index, outcome, run_ns) == _SAMPLES_DUE

    def _hand_over_metrics(self) -> None:
        if self._feed is not None:
            try:
                self._feed.collect(wait=False)
            except Exception:
                logger.exception("handing metrics over failed; the queue goes on")

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
        rc = lib.lc_finish_timed(self._ptr, lane.index, _COMPLETED, run_ns)
        job.future.set_result(result)
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
                                 command_id)
        self.emitter.emit_new(COMMAND_RETRY, {
            "lane_id": lane.lane_id, "command_id": command_id, "attempt": job.attempt,
        })
        if self._metrics is not None:
            self._record("record_retry", lane.lane_id)
        job.state = QUEUED
        job.future.back_to_pending()
        self._jobs[job.ticket] = job
        due = self._finish(lane, _RETRIED)
        # The engine holds the back-off as a delayed entry: no thread sleeps.
        due_ns = lib.lc_now_ns() + int(delay * 1e9)
        if lib.lc_retry_at(self._ptr, lane.index, job.ticket, due_ns) < 0:
            self._jobs.pop(job.ticket, None)
            job.future.set_running_or_notify_cancel()
            job.future.set_exception(MemoryError("engine could not queue the retry"))
        if due:
            self._hand_over_metrics()

    def _fail_for_good(self, job: Job, error: BaseException, run_seconds: float,
                       timed_out: bool) -> None:
        lane = job.lane
        command_id = self._command_id_of(job.ticket)
        text = describe_error(error)
        self._jobs.pop(job.ticket, None)
        if job.stored:
            self._forget_stored(job)
        self._dead_letter(job, command_id, text)
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
        due = self._finish(lane, _FAILED)
        job.future.set_exception(error)
        if due:
            self._hand_over_metrics()

    def _dead_letter(self, job: Job, command_id: str, error: str) -> None:
        if self._dlq is None and not job.stored:
            return
        letter = DeadLetter(command_id, job.command_type, job.lane.lane_id, error, job.attempt + 1)
        self._record_dead_letter(letter)

    def _record_dead_letter(self, letter: DeadLetter) -> None:
        """Keeps a dead letter in the DLQ and, with storage, on disk."""
        if self._dlq is not None:
            self._dlq.push(letter)
        if self._storage is not None:
            try:
                self._storage.save_dead_letter(StoredDeadLetter(
                    letter.command_id, letter.command_type, letter.lane_id, letter.error,
                    letter.attempts, letter.failed_at,
                ))
            except Exception:
                logger.exception("could not store the dead letter of %s", letter.command_id)
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
        if self._finish(job.lane, _CANCELLED):
            self._hand_over_metrics()

    def _end_cancelled_while_running(self, job: Job, error: BaseException) -> None:
        """A running command that stopped after its token was cancelled: no
        retry, no dead letter; its future carries what it raised."""
        self._jobs.pop(job.ticket, None)
        if job.stored:
            self._forget_stored(job)
        self._emit_cancelled_ticket(job.lane, job.ticket)
        due = self._finish(job.lane, _CANCELLED)
        job.future.set_exception(error)
        if due:
            self._hand_over_metrics()

    def _forget_stored(self, job: Job) -> None:
        """Removes an ended command from storage. A storage error must not
        cost the result or the slot: the command has run; at worst it runs
        again after a restart (at-least-once), which the log says."""
        command_id = self._command_id_of(job.ticket)
        try:
            self._storage.remove_command(command_id)
        except Exception:
            logger.exception("could not remove ended command %s from storage; it may run "
                             "again after a restart", command_id)

    def _emit_cancelled_ticket(self, lane: Lane, ticket: int) -> None:
        if self._metrics is not None:
            self._record("record_cancel", lane.lane_id)
        self.emitter.emit_new(COMMAND_CANCELLED, {
            "lane_id": lane.lane_id,
            "command_id": self._command_id_of(ticket),
        })

    # ---- timeouts -----------------------------------------------------------------

    def _on_deadline(self, item: tuple[Job, int]) -> None:
        """The deadline thread: ends an attempt that is still running past its
        lane's timeout. Python cannot stop the thread, so: the command's token
        is set (it may stop by itself), the attempt fails with
        CommandTimeoutError (or is retried), its slot is freed, and a new
        worker replaces the one left running it, which is counted as
        abandoned until its call returns."""
        job, attempt = item
        with self._state_lock:
            if job.state != RUNNING or job.attempt != attempt:
                return  # finished in time, or already retried
            job.state = TIMED_OUT
            self._pool.abandon(job.thread)
        job.cancel_token().cancel("timed out")
        timeout = job.lane.timeout or 0.0
        error = CommandTimeoutError(f"Command timed out after {describe(timeout)}")
        self._fail_attempt(job, error, timeout, timed_out=True)
        lib.lc_settle(self._ptr)
        self._pool.spawn()
