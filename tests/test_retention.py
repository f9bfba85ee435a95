"""Finished commands are not kept alive by the queue."""

from __future__ import annotations

import gc
import weakref

from conftest import WAIT


class Result:
    """Something a command returns (weak-referenceable, unlike an int)."""


def test_an_idle_worker_does_not_keep_the_last_command_alive(managers):
    manager = managers.lanes(("only", 0, 0, 1))
    future = manager.submit("only", Result)
    result = weakref.ref(future.result(WAIT))
    command = weakref.ref(future)
    del future
    manager.drain(WAIT)  # idle: the worker has settled and gone back to sleep
    gc.collect()
    assert result() is None
    assert command() is None
