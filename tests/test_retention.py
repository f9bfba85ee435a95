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


def boom():
    raise KeyError("gone")


def test_reading_a_finished_future_builds_no_condition(managers):
    """A Condition is an RLock and a deque per command; a future read after
    it finished must not make one (run() reads every result that way)."""
    manager = managers.lanes(("only", 0, 0, 1))
    ok = manager.submit("only", abs, -3)
    failed = manager.submit("only", boom)
    manager.drain(WAIT)
    assert ok.done() and failed.done()
    assert ok.result() == 3 and ok.exception() is None
    error = failed.exception()
    assert isinstance(error, KeyError)
    try:
        failed.result()
    except KeyError as raised:
        assert raised is error and raised.__traceback__ is not None
    else:
        raise AssertionError("result() of a failed command must raise")
    assert ok._cond is None and failed._cond is None
