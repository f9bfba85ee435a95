"""Graceful shutdown: shutdown() stops intake, commands already accepted still
run, drain() returns once every accepted command has finished."""

from __future__ import annotations

import sys
import threading

from conftest import WAIT
from pylane import EventEmitter, LaneConfig, QueueManagerBuilder, ShutdownInProgressError


def test_pending_commands_still_run_after_shutdown(managers, blocker):
    manager = managers.lanes(("work", 0, 0, 1))
    hold = blocker()
    running = manager.submit("work", hold)
    assert hold.wait_entered(1)
    queued = [manager.submit("work", lambda i=i: i) for i in range(5)]
    manager.shutdown()
    assert manager.is_shutting_down()
    hold.release()
    manager.drain(WAIT)
    # drain returned: everything accepted has a result already.
    assert running.done() and running.result() == "released"
    assert [f.result(0) for f in queued] == list(range(5))
    status = manager.stats().lane("work")
    assert (status.pending, status.active, status.completed) == (0, 0, 6)


def test_drain_without_shutdown_keeps_the_queue_open(managers):
    manager = managers.lanes(("work", 0, 0, 2))
    assert manager.submit("work", lambda: 1).result(WAIT) == 1
    manager.drain(WAIT)
    assert not manager.is_shutting_down()
    assert manager.submit("work", lambda: 2).result(WAIT) == 2


def test_drain_stops_the_worker_threads(managers):
    manager = managers.lanes(("work", 0, 0, 3))
    manager.submit("work", lambda: None).result(WAIT)
    workers = [t for t in threading.enumerate() if t.name.startswith("pylane-worker-")]
    assert len(workers) >= 3
    manager.shutdown()
    manager.drain(WAIT)
    assert not any(t.is_alive() for t in workers)


def _submit_until_refused(manager, futures, lock, enough, start):
    start.wait(WAIT)
    while True:
        try:
            future = manager.submit("work", lambda: None)
        except ShutdownInProgressError:
            return
        with lock:
            futures.append(future)
            if len(futures) >= 100:
                enough.set()


def _one_shutdown_race() -> int:
    """Four threads submit while the main thread shuts down and drains;
    returns how many accepted commands were left unresolved."""
    manager = QueueManagerBuilder(EventEmitter(10)).with_lane(
        "work", LaneConfig.new(0, 4), 0).build()
    manager.start()
    futures, lock, enough = [], threading.Lock(), threading.Event()
    start = threading.Barrier(5)
    threads = [threading.Thread(target=_submit_until_refused,
                                args=(manager, futures, lock, enough, start))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        start.wait(WAIT)
        assert enough.wait(WAIT)
    finally:
        manager.shutdown()
        try:
            manager.drain(WAIT)
        finally:
            for thread in threads:
                thread.join(WAIT)
    return sum(1 for future in futures if not future.done())


def test_every_accepted_submit_resolves_when_racing_shutdown():
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # many interleavings: the race shows in a few rounds
    try:
        for round_number in range(100):
            lost = _one_shutdown_race()
            assert lost == 0, (
                f"round {round_number}: {lost} accepted commands never ran after "
                f"shutdown() + drain() returned")
    finally:
        sys.setswitchinterval(previous)
