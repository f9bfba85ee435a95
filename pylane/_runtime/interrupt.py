"""Raising an exception inside another thread's running Python code.

CPython's per-thread asynchronous exception (``PyThreadState_SetAsyncExc``)
is delivered at the target thread's next bytecode boundary: a pure-Python
loop stops there, ``finally:`` blocks and context managers run. A thread
blocked in one long C call (``time.sleep(60)``, a socket read) only sees it
when the call returns. Only timeouts use this, and only while the thread is
inside the command (see ``timeouts.py`` for how it is aimed).
"""

from __future__ import annotations

import ctypes

from ..errors import CommandTimeoutError

_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
_set_async_exc.restype = ctypes.c_int


class DeadlineInterrupt(CommandTimeoutError):
    """Raised inside a command that is still running at its lane's deadline.
    A ``CommandTimeoutError``: ``except CommandTimeoutError`` catches it."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(args or ("command interrupted at its deadline",)))


def interrupt(thread_id: int) -> bool:
    """Schedules a ``DeadlineInterrupt`` in the thread; False if the thread
    no longer exists."""
    modified: int = _set_async_exc(thread_id, DeadlineInterrupt)  # restype c_int
    return modified == 1


def withdraw_interrupt(thread_id: int) -> None:
    """Cancels an interrupt the thread has not received yet (none: no-op)."""
    _set_async_exc(thread_id, ctypes.py_object())
