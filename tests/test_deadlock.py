"""A deadlock that names itself: a command that blocking-submits (run(), the
SDK's submit) to a lane whose every slot is held by commands blocked the same
way — or while every worker is — can never finish. ThreadPoolExecutor hangs
there for good; we raise LaneDeadlockError at once and withdraw the nested
command."""

from __future__ import annotations

import threading

import pytest

from conftest import WAIT
from pylane import LaneConfig, LaneDeadlockError, QueueManagerBuilder


def build(managers, max_concurrency, workers=8, timeout=None):
    config = LaneConfig.new(0, max_concurrency)
    if timeout is not None:
        config = config.with_timeout(timeout)
    return managers.build(QueueManagerBuilder().with_lane("work", config, 0)
                          .with_lane("other", LaneConfig.new(0, 4), 1)
                          .with_max_workers(workers))


def test_a_command_waiting_on_its_own_full_lane_raises_at_once(managers):
    manager = build(managers, max_concurrency=1)

    def parent():
        return manager.run("work", lambda: "child")

    error = manager.submit("work", parent).exception(WAIT)
    assert isinstance(error, LaneDeadlockError)
    assert "'work'" in str(error) and "1 of 1" in str(error)
    manager.drain(WAIT)
    stats = manager.stats().lane("work")
    assert stats.pending == 0 and stats.active == 0  # the child was withdrawn


def test_the_last_of_a_lane_to_block_raises_and_the_others_finish(managers):
    manager = build(managers, max_concurrency=2)
    both_in = threading.Barrier(2, timeout=WAIT)

    def parent(n):
        both_in.wait()  # both slots are held before either submits
        return manager.run("work", lambda: f"child {n}")

    futures = [manager.submit("work", parent, n) for n in range(2)]
    outcomes = [f.exception(WAIT) or f.result(0) for f in futures]
    deadlocks = [o for o in outcomes if isinstance(o, LaneDeadlockError)]
    results = [o for o in outcomes if not isinstance(o, Exception)]
    # One of them is told at once; its slot frees, so the other's child runs.
    assert len(deadlocks) == 1 and len(results) == 1
    assert results[0].startswith("child ")


def test_a_lane_with_room_is_no_deadlock(managers):
    manager = build(managers, max_concurrency=2)
    assert manager.submit("work", lambda: manager.run("work", lambda: 7)).result(WAIT) == 7
    assert manager.submit("work", lambda: manager.run("other", lambda: 8)).result(WAIT) == 8


def test_every_worker_blocked_is_a_deadlock(managers):
    manager = build(managers, max_concurrency=4, workers=2)
    both_in = threading.Barrier(2, timeout=WAIT)

    def parent():
        both_in.wait()
        return manager.run("other", lambda: "child")

    futures = [manager.submit("work", parent) for _ in range(2)]
    outcomes = [f.exception(WAIT) for f in futures]
    assert any(isinstance(o, LaneDeadlockError) and "all 2 workers" in str(o)
               for o in outcomes)


def test_a_timed_lane_is_never_a_certain_deadlock(managers):
    manager = build(managers, max_concurrency=1, timeout=0.2)

    def parent():
        return manager.run("work", lambda: "child")

    # Its timeout ends the wait: a timeout, not a deadlock error.
    error = manager.submit("work", parent).exception(WAIT)
    assert not isinstance(error, LaneDeadlockError)


@pytest.mark.parametrize("surface", ["sdk"])
def test_the_sdk_blocking_submit_is_covered_too(managers, surface):
    lane = managers.sdk([LaneConfig("solo", priority=0, max_concurrency=1)])
    lane.register_handler("parent", lambda payload: lane.submit("solo", "child", payload))
    with pytest.raises(LaneDeadlockError):
        lane.submit("solo", "parent", {"n": 1})
