"""Cooperative cancellation: each running command has a ``CancelToken``.

Python cannot stop a thread from outside, so a long command should look at
its token now and then (``pylane.cancel_token()`` returns the token of the
command running on this thread) and stop when it is set. It is set when the
command's deadline passes (lane timeout) or when someone cancels the
command while it runs.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

from .errors import CommandCancelledError

logger = logging.getLogger("pylane.queue")

__all__ = ["CancelToken", "CommandCancelledError", "cancel_token"]


class CancelToken:
    """Set when its command is cancelled while running or passes its
    deadline. Lock rule: ``_lock`` guards ``reason`` and ``_callbacks``
    while the token is being set; callbacks run outside it, once each."""

    __slots__ = ("_callbacks", "_event", "_lock", "reason")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: Optional[list[Callable[[str], Any]]] = None
        self.reason: Optional[str] = None

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: str = "cancelled") -> None:
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            callbacks, self._callbacks = self._callbacks, None
        for callback in callbacks or ():
            _call_safely(callback, reason)

    def add_callback(self, callback: Callable[[str], Any]) -> None:
        """Calls ``callback(reason)`` when the token is set (at once if it
        already is), on the thread that sets it. An async command uses this
        to cancel its coroutine. A callback that raises is logged."""
        with self._lock:
            if not self._event.is_set():
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                return
        _call_safely(callback, self.reason or "cancelled")

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Sleeps until the token is set or `timeout` passes; True if set.
        Use it instead of ``time.sleep`` inside commands."""
        return self._event.wait(timeout)

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise CommandCancelledError(f"command {self.reason}")


def _call_safely(callback: Callable[[str], Any], reason: str) -> None:
    try:
        callback(reason)
    except Exception:
        logger.exception("cancel callback raised")


class _Current(threading.local):
    """The job running on each thread (None between commands); its token
    is made only if asked for."""

    job: Any = None


current = _Current()


def cancel_token() -> CancelToken:
    """The token of the command running on this thread. Outside a command, a
    fresh token that is never set."""
    job = current.job
    return job.cancel_token() if job is not None else CancelToken()
