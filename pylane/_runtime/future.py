"""CommandFuture: the ``concurrent.futures.Future`` a submit returns.

It knows its command (lane and ticket) and reaches the queue only through
``FutureOwner``, three calls the queue's job table answers: nothing here
depends on the queue itself.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

# Future's own state names (strings).
from concurrent.futures._base import CANCELLED as F_CANCELLED
from concurrent.futures._base import CANCELLED_AND_NOTIFIED as F_CANCELLED_AND_NOTIFIED
from concurrent.futures._base import FINISHED as F_FINISHED
from concurrent.futures._base import PENDING as F_PENDING
from concurrent.futures._base import RUNNING as F_RUNNING
from typing import Any, Callable, Optional, Protocol

from .._lane_core import ffi, lib


class LaneLike(Protocol):
    lane_id: str


class FutureOwner(Protocol):
    """What a future asks of the queue that made it."""

    def command_id(self, ticket: int) -> str:
        """The command id of a ticket."""

    def withdraw(self, lane: Any, ticket: int) -> bool:
        """Takes a waiting command out of its lane: True if it will not run.
        A running command gets its cancel token set instead (False)."""

    def report_cancelled(self, lane: Any, ticket: int) -> None:
        """Announces a withdrawn command (event, metrics)."""


# Guard the lazy creation of futures' conditions, and the state changes made
# while a future has none (see CommandFuture's fast paths). Striped: one
# shared lock made 16 blocking callers and 6 workers queue up behind it
# (a lock convoy with the GIL: 20k instead of 45k commands/s).
_STRIPES = tuple(threading.Lock() for _ in range(64))


def _creation_lock(future: object) -> threading.Lock:
    return _STRIPES[(id(future) >> 4) & 63]
_SETTABLE = (F_PENDING, F_RUNNING)


class _ThreadWaiter(threading.local):
    waiter: Any = None


_thread = _ThreadWaiter()


def _thread_waiter() -> Any:
    """This thread's C waiter (pylane_waiter: a semaphore), made on first
    use and freed with the last reference (the thread's, or a future's that
    still holds it)."""
    waiter = _thread.waiter
    if waiter is None:
        raw = lib.pylane_waiter_new()
        if raw == ffi.NULL:
            raise MemoryError("pylane_waiter_new failed")
        waiter = _thread.waiter = ffi.gc(raw, lib.pylane_waiter_free)
    return waiter

_DONE_STATES = (F_CANCELLED, F_CANCELLED_AND_NOTIFIED, F_FINISHED)
# States no transition leaves (a retry goes back to pending from RUNNING;
# CANCELLED still becomes CANCELLED_AND_NOTIFIED).
_FINAL_STATES = (F_CANCELLED_AND_NOTIFIED, F_FINISHED)


class _SettledCondition:
    """The Condition of a future that reached a final state while it had
    none. ``concurrent.futures.wait`` and ``as_completed`` lock every future
    they are given; building a real Condition for each finished one cost
    about 1.5 us a future, 44% of a 100,000-command flood's time under the
    GIL. Nothing changes a settled future any more, so there is nothing to
    lock and nobody to wake: every method returns at once. Its waiter list
    is the future's own (``_waiters``), appended and removed under the GIL.
    Shared by all such futures; it holds no state."""

    __slots__ = ()

    def __enter__(self) -> bool:
        return True

    def __exit__(self, *_exc: object) -> None:
        return None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return True

    def release(self) -> None:
        return None

    def wait(self, timeout: Optional[float] = None) -> bool:
        return True

    def wait_for(self, predicate: Callable[[], Any], timeout: Optional[float] = None) -> Any:
        return predicate()

    def notify(self, n: int = 1) -> None:
        return None

    def notify_all(self) -> None:
        return None


_SETTLED = _SettledCondition()


class CommandFuture(Future[Any]):
    """A ``concurrent.futures.Future`` that knows its command.

    ``cancel()`` on a command still waiting in its lane (or waiting out a
    retry delay) removes it and returns True. On a running command it sets
    the command's cancel token (see ``pylane.cancel_token``) and returns
    False, as ``Future.cancel`` does: the command decides whether to stop.

    Memory: a million queued commands must fit in a few hundred MB, and a
    plain Future costs about 1.5 KB, mostly its Condition (an RLock and a
    deque). So this future keeps its fields in slots (no per-instance dict)
    and makes its Condition and lists on first use — for most commands, at
    dispatch. ``Future``'s own methods only ever read these three attributes,
    which the properties below provide.
    """

    __slots__ = (
        "_cond", "_exception", "_lane", "_lists", "_owner", "_result", "_state", "_ticket",
        "_waiter",
    )

    def __init__(self, owner: FutureOwner, lane: LaneLike, ticket: int) -> None:
        # Future.__init__ is not called: it would build the Condition now.
        self._state = F_PENDING
        self._result = None
        self._exception = None
        self._cond: Optional[threading.Condition] = None
        # Future's waiter list and done-callbacks, made together on first
        # use: [waiters, callbacks]. One slot for both keeps a future at 128
        # bytes (pymalloc's next size class up is 144), 16 MB a million.
        self._lists: Optional[tuple[list[Any], list[Any]]] = None
        # The thread blocked in result() on its C waiter, if any (see
        # _wait_lean); posted by whoever settles the future.
        self._waiter: Any = None
        self._owner = owner
        self._lane = lane
        self._ticket = ticket

    # Read-only properties in place of Future's attributes (mypy: "cannot
    # override writeable attribute"): Future.__init__, their only writer,
    # is never called, and Future's methods only read them.
    @property
    def _condition(self) -> Any:  # type: ignore[override]
        condition = self._cond
        if condition is None:
            if self._state in _FINAL_STATES:
                # Settled with nobody ever waiting: nothing left to guard.
                return _SETTLED
            with _creation_lock(self):
                condition = self._cond
                if condition is None:
                    if self._state in _FINAL_STATES:
                        return _SETTLED
                    condition = self._cond = threading.Condition()
        return condition

    @property
    def _waiters(self) -> list[Any]:  # type: ignore[override]
        # Future only touches it with the condition held.
        lists = self._lists
        if lists is None:
            lists = self._lists = ([], [])
        return lists[0]

    @property
    def _done_callbacks(self) -> list[Any]:
        # Future touches it with the condition held, or after the state is
        # final (when no one appends any more).
        lists = self._lists
        if lists is None:
            lists = self._lists = ([], [])
        return lists[1]

    # Fast paths for the worker. While nobody has touched the Condition (no
    # result() or wait() in progress, no done-callback), nobody can be
    # waiting, so the state can change under the creation lock alone; anyone
    # who looks later makes the Condition under that same lock and then sees
    # the new state. Otherwise Future's own locked path runs.

    def set_running_or_notify_cancel(self) -> bool:
        if self._cond is None:
            with _creation_lock(self):
                if self._cond is None and self._state == F_PENDING:
                    self._state = F_RUNNING
                    return True
        return super().set_running_or_notify_cancel()

    def set_result(self, result: Any) -> None:
        waiter = self.set_result_wake_later(result)
        if waiter is not None:
            lib.pylane_waiter_post(waiter)

    def set_result_wake_later(self, result: Any) -> Any:
        """set_result, but a thread blocked in result() on its C waiter is
        not woken: the waiter is returned (or None) for the caller to post,
        which a worker does once it has let go of the GIL (see
        pylane_settle_wake_and_wait)."""
        if self._cond is None:
            with _creation_lock(self):
                if self._cond is None and self._state in _SETTABLE:
                    self._result = result
                    self._state = F_FINISHED
                    waiter, self._waiter = self._waiter, None
                    return waiter
        super().set_result(result)
        return None

    def set_exception(self, exception: Optional[BaseException]) -> None:
        if self._cond is None:
            with _creation_lock(self):
                if self._cond is None and self._state in _SETTABLE:
                    self._exception = exception
                    self._state = F_FINISHED
                    waiter, self._waiter = self._waiter, None
                else:
                    waiter = False
            if waiter is not False:
                if waiter is not None:
                    lib.pylane_waiter_post(waiter)
                return
        super().set_exception(exception)

    def _invoke_callbacks(self) -> None:
        # Future's locked paths (a Condition exists) end every change to a
        # final state here, cancel() included: wake a lean waiter too.
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            lib.pylane_waiter_post(waiter)
        super()._invoke_callbacks()  # type: ignore[misc]  # private, not in typeshed

    # Reads of a finished future. FINISHED is final (a retry goes back to
    # pending only from RUNNING) and the value is stored before the state,
    # so a caller that sees FINISHED needs no lock, and no Condition is
    # built just to read a result that is already there (``run()`` does
    # this for every command). Anything else takes Future's locked path.

    def done(self) -> bool:
        return self._state in _DONE_STATES

    def result(self, timeout: Optional[float] = None) -> Any:
        if self._state != F_FINISHED and timeout is None and self._cond is None:
            self._wait_lean()
        if self._state == F_FINISHED:
            error = self._exception
            if error is None:
                return self._result
            try:
                raise error
            finally:
                error = None  # no frame -> error -> traceback -> frame cycle
        return super().result(timeout)

    def _wait_lean(self) -> None:
        """Blocks until the future is done, on this thread's C waiter: no
        Condition, no Python lock juggling on either side, and the worker
        wakes this thread after releasing the GIL. Only for the first
        thread to wait while no Condition exists; anyone else (a second
        waiter, a timeout, wait(), callbacks) makes the Condition, after
        which Future's own paths run and _invoke_callbacks wakes this one."""
        waiter = _thread_waiter()
        with _creation_lock(self):
            if self._cond is not None or self._waiter is not None or \
                    self._state not in _SETTABLE:
                return
            self._waiter = waiter
        wait = lib.pylane_waiter_wait
        # A wait also ends on a signal (Python's handlers run between two
        # waits) or on a post left over from a wait given up that way.
        while self._state not in _DONE_STATES:
            wait(waiter)

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        if self._state == F_FINISHED:
            return self._exception
        return super().exception(timeout)

    @property
    def command_id(self) -> str:
        return self._owner.command_id(self._ticket)

    @property
    def lane_id(self) -> str:
        return self._lane.lane_id

    def cancel(self) -> bool:
        if not self._owner.withdraw(self._lane, self._ticket):
            return super().cancel()
        cancelled = super().cancel()
        self._owner.report_cancelled(self._lane, self._ticket)
        return cancelled

    def back_to_pending(self) -> None:
        """For the queue only: a retry puts the future back to pending, so
        that it can be cancelled while it waits and started again when
        dispatched."""
        with self._condition:
            self._state = F_PENDING
