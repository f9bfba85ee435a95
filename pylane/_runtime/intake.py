"""Intake: how a submit becomes a job in the engine, and the checks on the
way (storage first, pressure, alerts); how what a previous process left in
storage is queued again at start; and the one wait that can deadlock.

``Intake`` is mixed into ``CommandQueue``, as ``Execution`` is: one class,
kept in files about one thing each.
"""

from __future__ import annotations

import functools
import logging
import threading
import types
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Protocol

from .._lane_core import lib
from ..command import Command
from ..durable.dead_letters import DeadLetter, DeadLetterQueue
from ..durable.registry import CommandRegistry
from ..durable.storage import Storage, StoredCommand
from ..errors import (
    InvalidArgumentError,
    InvalidPayloadError,
    LaneDeadlockError,
    LaneNotFoundError,
    ShutdownInProgressError,
)
from ..events import (
    COMMAND_SUBMITTED,
    LANE_IDLE,
    LANE_PRESSURE,
    STORAGE_CORRUPT,
    STORAGE_RECOVERED,
    EventEmitter,
)
from . import recovery
from .engine import Engine, check
from .future import CommandFuture
from .jobs import Job, JobTable, Lane
from .pool import WorkerPool

recovery_log = logging.getLogger("pylane.recovery")

_RUN_INLINE = lib.LC_RUN_INLINE
# Callables that cannot be a Command.
_PLAIN_CALLABLES = frozenset({
    types.FunctionType, types.BuiltinFunctionType, types.MethodType, functools.partial,
})


def call_of(command: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[], Any]:
    """What runs a submitted command: a Command's ``execute``, or the
    callable with its arguments bound. No wrapper object per command: fewer
    allocations on the hot path. Plain functions skip the ABC check (a
    Python-level call per miss)."""
    if type(command) not in _PLAIN_CALLABLES and isinstance(command, Command):
        if args or kwargs:
            raise InvalidArgumentError("arguments can only be passed with a plain "
                                       "callable, not a Command")
        call: Callable[[], Any] = command.execute
        return call
    if callable(command):
        return functools.partial(command, *args, **kwargs) if args or kwargs else command
    raise InvalidArgumentError("submit() needs a Command or a callable, got "
                               f"{type(command).__name__}")


class _RecordDeadLetter(Protocol):
    """``Execution._record_dead_letter``."""

    def __call__(self, letter: DeadLetter, stored: bool = ...) -> None: ...


class _Alert(Protocol):
    """``Execution._alert``: runs ``AlertManager.<check>(*args)``."""

    def __call__(self, check: str, *args: Any) -> None: ...


class Intake:
    """Mixed into CommandQueue, which provides the state below. (Only
    annotations: a stub method here would shadow the real one in the MRO.)"""

    emitter: EventEmitter
    _ptr: Any
    _engine: Engine
    _jobs: dict[int, Job]
    _table: JobTable
    _lanes: dict[str, Lane]
    _storage: Optional[Storage]
    _alerts: Any
    _intake: threading.RLock
    _state_lock: threading.Lock
    _shutting_down: bool
    _command_id_of: Callable[[int], str]
    # Commands of this queue blocked in a nested blocking submit (run()) that
    # no timeout can end, under _state_lock: by lane for those waiting on a
    # command of their own lane, and the workers blocked in all.
    _self_blocked: dict[int, int]
    _blocked_workers: int
    _pool: WorkerPool
    _forked_from: int
    _dlq: Optional[DeadLetterQueue]
    registry: CommandRegistry
    json_handlers: dict[str, Callable[[Any], Any]]
    recovered: list[CommandFuture]
    _record_dead_letter: _RecordDeadLetter

    _forked_error: Callable[[], Exception]
    _alert: _Alert
    worker_count: Callable[[], int]
    def _new_job(self, lane_id: str, command: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> Job:
        if self._forked_from:
            raise self._forked_error()
        lane = self._lane_of(lane_id)
        return self._table.new_job(call_of(command, args, kwargs), command, lane)

    def _lane_of(self, lane_id: str) -> Lane:
        try:
            lane = self._lanes.get(lane_id)
        except TypeError:  # unhashable: not a lane id either
            lane = None
        if lane is None:
            raise LaneNotFoundError(lane_id, list(self._lanes))
        return lane

    def _enqueue(self, job: Job, engine_submit: Callable[[Any, int, int, int], int]) -> int:
        """Hands the job to the engine (``lc_submit`` or
        ``lc_submit_or_claim``) and returns the engine's code.

        With storage the command is on disk before the engine sees it, so it
        is durable once submit returns. Under the intake lock, so that once
        ``shutdown()`` has returned no submit can still reach the engine (a
        drain would miss it); the ``submitted`` event goes out before the
        engine can start the job, so it always comes before ``started``."""
        ticket = job.ticket
        if self._storage is not None:
            if self._shutting_down:
                raise ShutdownInProgressError()
            self._save(job)
        try:
            with self._intake:
                if self._shutting_down:
                    raise ShutdownInProgressError()
                if self.emitter.streams:
                    self._emit_submitted(job)
                self._jobs[ticket] = job
                rc = engine_submit(self._ptr, job.lane.index, ticket, 0)
                if rc == _RUN_INLINE or rc < 0:
                    del self._jobs[ticket]
            check(rc, "submit")
        except BaseException:
            if job.stored:
                # _save() above stored it: only with storage.
                assert self._storage is not None
                self._storage.remove_command(self._command_id_of(ticket))
            raise
        if self._alerts is not None:
            self._alert("check_queue_depth",
                        job.lane.lane_id, lib.lc_lane_pending(self._ptr, job.lane.index))
        if job.lane.pressure_threshold is not None:
            self._check_pressure(job.lane)
        return rc

    def _check_pressure(self, lane: Lane) -> None:
        """``queue.lane.pressure`` on the first crossing of pending >=
        threshold, ``queue.lane.idle`` when pending is back to 0 after it;
        nothing in between. Checked on every change of the lane's pending
        count (submit, dispatch, cancel), not on a timer as the original did,
        so no crossing is missed."""
        with self._state_lock:
            # Read under the lock: a count read before it could be stale by
            # the time it is compared, and mark a lane pressured at 0.
            pending = lib.lc_lane_pending(self._ptr, lane.index)
            threshold = lane.pressure_threshold
            # Callers check it first; a lane's threshold never changes.
            assert threshold is not None
            if not lane.pressured and pending >= threshold:
                lane.pressured = True
                key = LANE_PRESSURE
            elif lane.pressured and pending == 0:
                lane.pressured = False
                key = LANE_IDLE
            else:
                return
            # Under the lock, so that pressure and idle reach subscribers in order.
            self.emitter.emit_new(key, {"lane_id": lane.lane_id})

    def _save(self, job: Job, last_attempt: bool = False) -> None:
        """Writes the job to storage (insert, or update its retry count).
        Only called with storage: at submit, and for a retry of a stored job."""
        storage = self._storage
        assert storage is not None
        source = job.source
        if not isinstance(source, Command):
            raise InvalidPayloadError(
                "a plain callable cannot be stored: with storage, submit a Command "
                "(its to_payload() is saved and from_payload() rebuilds it after a restart)"
            )
        storage.save_command(StoredCommand(
            id=self._command_id_of(job.ticket), command_type=job.command_type,
            lane_id=job.lane.lane_id, payload=source.to_payload(), retry_count=job.attempt,
            last_attempt_at=datetime.now(timezone.utc) if last_attempt else None,
            kind=source.storage_kind,
        ))
        job.stored = True

    def _emit_submitted(self, job: Job) -> None:
        self.emitter.emit_new(COMMAND_SUBMITTED, {
            "lane_id": job.lane.lane_id,
            "command_id": self._command_id_of(job.ticket),
            "command_type": job.command_type,
        })

    # ---- recovery at start ------------------------------------------------------

    def _recover(self, storage: Storage) -> None:
        """Queues again what a previous process left in storage (see
        recovery.py); what cannot run again becomes a dead letter."""
        todo = recovery.plan(storage, self._lanes, self.registry, self.json_handlers,
                             self._table.is_own, with_dead_letters=self._dlq is not None)
        dlq = self._dlq
        for letter in todo.restored_letters:
            # plan() restores dead letters only with_dead_letters, i.e. with a DLQ.
            assert dlq is not None
            dlq.push(letter)
        for letter in todo.lost:
            recovery_log.error("stored command %s (%s in %s) cannot be recovered: %s",
                               letter.command_id, letter.command_type, letter.lane_id,
                               letter.error, extra={
                                   "lane_id": letter.lane_id, "command_id": letter.command_id,
                                   "command_type": letter.command_type})
            self._record_dead_letter(letter, stored=True)
        for row_id, reason in todo.corrupt:
            self.emitter.emit_new(STORAGE_CORRUPT, {"command_id": row_id, "error": reason})
        for command_id, reason in todo.corrupt_letters:
            self.emitter.emit_new(STORAGE_CORRUPT, {"command_id": command_id, "error": reason,
                                                    "dead_letter": True})
        for item in todo.requeue:
            command = item.command
            job = self._table.adopt(item.stored.id, command.execute, command, item.lane)
            job.attempt = item.stored.retry_count
            job.stored = True
            self._jobs[job.ticket] = job
            rc = lib.lc_submit(self._ptr, item.lane.index, job.ticket, 0)
            if rc < 0:
                self._jobs.pop(job.ticket, None)
                check(rc, "recover")
            self.recovered.append(job.future)
        unrecoverable = len(todo.lost) - len(todo.corrupt)
        if todo.lost or todo.requeue:
            recovery_log.info(
                "recovered %d stored commands (%d unreadable, %d could not be rebuilt)",
                len(todo.requeue), len(todo.corrupt), unrecoverable)
            self.emitter.emit_new(STORAGE_RECOVERED, {
                "recovered": len(todo.requeue), "corrupt": len(todo.corrupt),
                "unrecoverable": unrecoverable,
            })

    # ---- a command waiting on another -----------------------------------------

    def _wait_nested(self, caller: Job, job: Job) -> Any:
        """A command of this queue blocks on a command it submitted. If that
        can never finish — every slot of the lane it waits on is held by
        commands blocked the same way on that lane, or every worker is
        blocked — raise LaneDeadlockError now instead of hanging (the queued
        command is withdrawn). ThreadPoolExecutor hangs here for good."""
        target = job.lane
        # A timeout ends a wait in a timed lane: such waits are never certain.
        if caller.lane.timeout is not None:
            return job.future.result()
        same_lane = caller.lane is target
        on_worker = self._pool.owns(threading.current_thread())
        with self._state_lock:
            if same_lane:
                self._self_blocked[target.index] = self._self_blocked.get(target.index, 0) + 1
            if on_worker:
                self._blocked_workers += 1
            why = self._deadlocked(target, same_lane)
        try:
            if why:
                job.future.cancel()
                raise LaneDeadlockError(why)
            return job.future.result()
        finally:
            with self._state_lock:
                if same_lane:
                    self._self_blocked[target.index] -= 1
                if on_worker:
                    self._blocked_workers -= 1

    def _deadlocked(self, target: Lane, same_lane: bool) -> str:
        """Why the wait just counted can never end ('' if it can). Under
        _state_lock."""
        if same_lane:
            stats = self._engine.lane_stats(target.index)
            blocked = self._self_blocked.get(target.index, 0)
            if stats.active >= stats.max_concurrency and blocked >= stats.active:
                return (f"every slot of lane {target.lane_id!r} ({stats.active} of "
                        f"{stats.max_concurrency}) is held by a command blocked waiting on "
                        f"another command of that lane, which can never start")
        workers = self.worker_count()
        if self._blocked_workers >= workers:
            return (f"all {workers} workers are held by commands blocked waiting on other "
                    f"commands, which no worker is left to run")
        return ""
