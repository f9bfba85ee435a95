"""Cooperative cancellation: each running command has a ``CancelToken``.

Python cannot stop a thread from outside, so a long command should look at
its token now and then (``pylane.cancel_token()`` returns the token of the
command running on this thread) and stop when it is set. It is set when the
command's deadline passes (lane timeout) or when someone cancels the
command while it runs.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

from .errors import CommandCancelledError

__all__ = ["CancelToken", "CommandCancelledError", "cancel_token"]


class CancelToken:
    __slots__ = ("_event", "reason")

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: Optional[str] = None

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: str = "cancelled") -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Sleeps until the token is set or `timeout` passes; True if set.
        Use it instead of ``time.sleep`` inside commands."""
        return self._event.wait(timeout)

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise CommandCancelledError(f"command {self.reason}")


class _Current(threading.local):
    """The job running on each thread (None between commands); its token
    is made only if asked for."""

    job: Any = None


current = _Current()


def cancel_token() -> CancelToken:
    """The token of the command running on this thread. Outside a command, a
    fresh token that is never set."""
    job = getattr(current, "job", None)
    return job.cancel_token() if job is not None else CancelToken()
