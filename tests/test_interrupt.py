"""Timeouts that really stop Python work.

At the deadline a ``DeadlineInterrupt`` (a ``CommandTimeoutError``) is raised
inside the running command: a pure-Python loop and a loop of short sleeps
stop there, their ``finally:`` blocks and context managers run, and the slot
stays counted until the thread has left, so a lane never runs more than its
max. A single long C call cannot be interrupted: the thread is abandoned
after the lane's grace. The interrupt never lands outside its command.
"""

from __future__ import annotations

import threading
import time

import pytest

from conftest import WAIT
from pylane import CommandTimeoutError, LaneConfig, QueueManagerBuilder

DEADLINE = 0.1


class Concurrency:
    """Counts how many commands are inside their body at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self) -> Concurrency:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


def timed_manager(managers, max_concurrency=1, grace=1.0, workers=4):
    config = LaneConfig.new(0, max_concurrency).with_timeout(DEADLINE, grace=grace)
    return managers.build(QueueManagerBuilder().with_lane("work", config, 0)
                          .with_lane("other", LaneConfig.new(0, 4), 1)
                          .with_max_workers(workers))


def test_a_pure_python_loop_stops_at_its_deadline_and_its_finally_runs(managers):
    manager = timed_manager(managers)
    cleaned = threading.Event()
    spun = []

    def busy():
        n = 0
        try:
            while True:
                n += 1
        finally:
            spun.append(n)
            cleaned.set()

    started = time.monotonic()
    future = manager.submit("work", busy)
    assert isinstance(future.exception(WAIT), CommandTimeoutError)
    assert cleaned.wait(WAIT), "the loop was not interrupted"
    assert time.monotonic() - started < DEADLINE + 0.9  # well inside the 1 s grace
    manager.drain(WAIT)
    stats = manager.stats()
    assert stats.abandoned_total == 0  # it stopped: nothing to abandon
    assert stats.lane("work").timed_out == 1 and stats.lane("work").active == 0
    assert spun and spun[0] > 0


def test_a_sleep_loop_stops_at_its_deadline_and_context_managers_exit(managers):
    manager = timed_manager(managers)
    exited = threading.Event()

    class Resource:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            exited.set()

    def sleeper():
        with Resource():
            for _ in range(1000):
                time.sleep(0.005)
        return "slept through"

    future = manager.submit("work", sleeper)
    assert isinstance(future.exception(WAIT), CommandTimeoutError)
    assert exited.wait(WAIT)
    manager.drain(WAIT)
    assert manager.stats().abandoned_total == 0


def test_interrupted_commands_never_overlap_beyond_the_lane_max(managers):
    manager = timed_manager(managers, max_concurrency=2, workers=6)
    inside = Concurrency()

    def spin():
        with inside:
            deadline = time.monotonic() + 5 * DEADLINE
            while time.monotonic() < deadline:  # interrupted long before this ends
                pass
        return "too late"

    futures = [manager.submit("work", spin) for _ in range(8)]
    for future in futures:
        assert isinstance(future.exception(WAIT), CommandTimeoutError)
    manager.drain(WAIT)
    assert inside.peak <= 2, f"{inside.peak} commands ran at once in a max-2 lane"
    assert manager.stats().abandoned_total == 0


def test_a_c_call_that_cannot_be_interrupted_is_abandoned_after_the_grace(managers, gates):
    grace = 0.2
    manager = timed_manager(managers, grace=grace, workers=1)
    gate = gates.new()
    stream = manager.subscribe()
    entered = threading.Event()

    def stuck_in_c():
        entered.set()
        gate.wait(WAIT * 3)  # one C call: the interrupt waits for it to return
        return "late"

    started = time.monotonic()
    future = manager.submit("work", stuck_in_c)
    assert isinstance(future.exception(WAIT), CommandTimeoutError)
    failed_at = time.monotonic() - started
    # The slot is held through the grace, then freed: the next command runs.
    assert manager.submit("work", lambda: "next").result(WAIT) == "next"
    freed_at = time.monotonic() - started
    assert freed_at >= DEADLINE + grace * 0.9 > failed_at
    keys = [e.key for e in stream.drain()]
    assert "queue.command.abandoned" in keys
    stats = manager.stats()
    assert stats.abandoned_threads == 1 and stats.abandoned_total == 1
    gate.set()


def test_the_interrupt_never_lands_outside_its_command(managers):
    """Commands that end right around their deadline, then more commands on
    the same workers: no interrupt may surface in a later command, in a
    done-callback, or kill a worker."""
    manager = timed_manager(managers, max_concurrency=2, workers=2)
    results = []
    callbacks_ok = []

    def near_deadline(i):
        end = time.monotonic() + DEADLINE * (0.9 + (i % 5) * 0.05)
        while time.monotonic() < end:
            pass
        return i

    futures = [manager.submit("work", near_deadline, i) for i in range(20)]
    for future in futures:
        future.add_done_callback(lambda f: callbacks_ok.append(True))
    for future in futures:
        error = future.exception(WAIT)
        assert error is None or isinstance(error, CommandTimeoutError)
    # Plain commands afterwards, on the same two workers, see nothing.
    for i in range(200):
        results.append(manager.submit("other", lambda i=i: i).result(WAIT))
    assert results == list(range(200))
    manager.drain(WAIT)
    assert len(callbacks_ok) == 20
    assert manager.queue().worker_count() == 2
    assert manager.stats().abandoned_total == 0


@pytest.mark.parametrize("swallow", [True, False])
def test_a_command_that_swallows_the_interrupt_is_abandoned_not_overlapped(managers, swallow):
    grace = 0.2
    manager = timed_manager(managers, grace=grace, workers=2)
    inside = Concurrency()
    stop = threading.Event()

    def stubborn():
        with inside:
            while not stop.is_set():
                try:
                    time.sleep(0.005)
                except CommandTimeoutError:
                    if not swallow:
                        raise
        return "late"

    first = manager.submit("work", stubborn)
    assert isinstance(first.exception(WAIT), CommandTimeoutError)
    second = manager.submit("work", lambda: inside.now)
    # While the first is inside and within its grace, nothing else runs in
    # this max-1 lane; after the grace the slot is freed (abandoned).
    assert second.result(WAIT) == (1 if swallow else 0)
    stop.set()
    manager.drain(WAIT)
    assert manager.stats().abandoned_total == (1 if swallow else 0)
