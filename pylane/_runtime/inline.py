"""Caller-runs, the lean way: ``run()`` of a command that may start at once
runs it on the calling thread without a job, a future or a ticket.

``run()`` already ran such a command inline, but through the whole job
machinery: a ``Job`` and a ``CommandFuture`` made, the ticket entered into
and taken out of the job table, the future's state moved three times under
its lock, the result read back from it — about 40% of a no-op ``run()``
(py-spy). None of it is observable when nothing watches the command: no
event subscriber, no storage, no alerts, and a lane without timeout, retry
policy or pressure threshold. Then the engine is only asked for a slot
(``lc_try_claim``), the call runs, and the slot is given back. Anything
else (or no free slot) takes the full path in ``CommandQueue.run``.

A command that fails takes the full path's failure handling (dead letter,
``failed`` event, metrics), on a job made for it then: failures are rare,
and they then end exactly as they would have.
"""

from __future__ import annotations

import logging
import threading
import time
import types
from typing import Any, Callable, Optional, Protocol

from .._lane_core import lib
from ..cancel import CancelToken, current
from ..errors import ShutdownInProgressError
from .aio import EventLoopThread
from .jobs import RUNNING, Job, JobTable, Lane

logger = logging.getLogger("pylane.queue")

_RUN_INLINE = lib.LC_RUN_INLINE
_COMPLETED = lib.LC_OUTCOME_COMPLETED
_SAMPLES_DUE = lib.LC_SAMPLES_DUE
_NOT_TIMED = -1
_COROUTINE = types.CoroutineType
_clock = time.perf_counter_ns

# Returned by _run_claimed when no slot was free: the caller takes the full path.
NOT_CLAIMED: Any = object()


class InlineCommand:
    """What ``pylane.cancel.current.job`` holds while a command runs inline:
    its lane (nested ``run()`` calls look at it for deadlocks) and its cancel
    token, made only if asked for."""

    __slots__ = ("lane", "token")

    def __init__(self, lane: Lane) -> None:
        self.lane = lane
        self.token: Optional[CancelToken] = None

    def cancel_token(self) -> CancelToken:
        token = self.token
        if token is None:
            token = self.token = CancelToken()
        return token


class _FailAttempt(Protocol):
    """``Execution._fail_attempt``."""

    def __call__(self, job: Job, error: BaseException, run_seconds: float,
                 timed_out: bool) -> None: ...


class InlineRun:
    """Mixed into CommandQueue, which provides the state below. (Only
    annotations: a stub method here would shadow the real one in the MRO.)"""

    _ptr: Any
    _intake: threading.RLock
    _shutting_down: bool
    _timed: bool
    _table: JobTable
    _aio: EventLoopThread
    _fail_attempt: _FailAttempt
    _end_after_fault: Callable[[Job, BaseException], None]
    _hand_over_metrics: Callable[[], None]

    def _run_claimed(self, lane: Lane, call: Callable[[], Any], source: Any) -> Any:
        """Runs `call` here if the lane has a slot it may take now (the same
        rule as a submit that would start at once); else NOT_CLAIMED.
        Only for a lane and a queue where nothing observes the command (see
        the module's docstring)."""
        ptr = self._ptr
        index = lane.index
        # Under the intake lock, as a submit: once shutdown() has returned,
        # nothing new reaches the engine.
        with self._intake:
            if self._shutting_down:
                raise ShutdownInProgressError()
            if lib.lc_try_claim(ptr, index) != _RUN_INLINE:
                return NOT_CLAIMED
        running = InlineCommand(lane)
        timed = self._timed
        current.job = running
        started = _clock() if timed else 0
        try:
            result = call()
            if type(result) is _COROUTINE:
                result = self._aio.run(result, running.cancel_token())
        except BaseException as error:
            current.job = None
            return self._inline_failed(lane, call, source, running, error,
                                       _clock() - started if timed else 0)
        current.job = None
        run_ns = _clock() - started if timed else _NOT_TIMED
        due = lib.lc_finish_timed(ptr, index, _COMPLETED, run_ns) == _SAMPLES_DUE
        if due:
            self._hand_over_metrics()
        lib.lc_settle(ptr)
        return result

    def _inline_failed(self, lane: Lane, call: Callable[[], Any], source: Any,
                       running: InlineCommand, error: BaseException, run_ns: int) -> Any:
        """Ends a failed inline command as the full path would (it has a
        lane without retries): a job is made for it now, and the error is
        raised from its future."""
        job = self._table.new_job(call, source, lane)
        job.token = running.token
        job.state = RUNNING
        job.future.set_running_or_notify_cancel()
        try:
            if not isinstance(error, Exception):  # SystemExit, KeyboardInterrupt
                logger.warning("command %s raised %r", self._table.command_id(job.ticket), error)
            self._fail_attempt(job, error, max(run_ns, 0) / 1e9, timed_out=False)
        except Exception as fault:
            self._end_after_fault(job, fault)
        lib.lc_settle(self._ptr)
        return job.future.result()
