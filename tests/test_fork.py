"""fork() after start(): the child has the queue's memory but none of its
threads (and perhaps an engine lock held by a parent thread). Every use in
the child raises QueueForkedError at once — never a hang; the parent's queue
goes on untouched; a new queue in the child works."""

from __future__ import annotations

import json
import os

import pytest

from conftest import WAIT
from pylane import LaneConfig, QueueForkedError, QueueManagerBuilder

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")


def in_child(body) -> dict:
    """Runs body() in a forked child; returns what it reported (JSON)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running atexit/teardown
        os.close(read)
        try:
            report = body()
        except BaseException as error:
            report = {"crashed": f"{type(error).__name__}: {error}"}
        os.write(write, json.dumps(report).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), f"child died: {status}"
    return json.loads(data)


def test_every_use_in_the_child_raises_and_the_parent_goes_on(managers):
    manager = managers.build(QueueManagerBuilder().with_lane("work", LaneConfig.new(1, 2)))
    assert manager.run("work", lambda: "before") == "before"

    def child():
        seen = {}
        for name, use in [
            ("submit", lambda: manager.submit("work", lambda: 1).result(WAIT)),
            ("run", lambda: manager.run("work", lambda: 1)),
            ("stats", manager.stats),
            ("drain", lambda: manager.drain(1)),
            ("pause", lambda: manager.pause_lane("work")),
            ("cancel", lambda: manager.cancel("x")),
            ("shutdown", manager.shutdown),
        ]:
            try:
                use()
                seen[name] = "worked"
            except QueueForkedError as error:
                seen[name] = str(error)
        fresh = QueueManagerBuilder().with_lane("work", LaneConfig.new(1, 2)).build()
        fresh.start()
        seen["fresh"] = fresh.submit("work", lambda: "child ok").result(WAIT)
        fresh.shutdown()
        fresh.drain(WAIT)
        return seen

    seen = in_child(child)
    assert "crashed" not in seen, seen
    expected = f"this queue was started in process {os.getpid()}"
    for name in ("submit", "run", "stats", "drain", "pause", "cancel", "shutdown"):
        assert expected in seen[name], (name, seen[name])
    assert seen["fresh"] == "child ok"
    # The parent's queue is untouched.
    assert manager.submit("work", lambda: "after").result(WAIT) == "after"


def test_a_queue_built_but_not_started_before_fork_works_in_the_child(managers):
    manager = QueueManagerBuilder().with_lane("work", LaneConfig.new(1, 2)).build()

    def child():
        manager.start()
        value = manager.submit("work", lambda: 41 + 1).result(WAIT)
        manager.shutdown()
        manager.drain(WAIT)
        return {"value": value}

    assert in_child(child) == {"value": 42}
