"""Event order across threads: a command's submitted event comes before its
started event, and a command's end is reported before the start that its
freed slot allowed.

Both races sit in a window between an engine call (which lets another
worker go) and the emit that should precede what that worker does. The tests
widen the window deterministically: a subscriber's filter runs on the
emitting thread, so a filter that, at the right event, waits a little for the
other worker's move turns "sometimes" into "always". When the emit is moved
before the engine call, the other worker cannot move, the wait runs out
(HOOK_WAIT) and the order comes out right.
"""

from __future__ import annotations

import threading

import pytest

from conftest import WAIT

SUBMITTED = "queue.command.submitted"
STARTED = "queue.command.started"
COMPLETED = "queue.command.completed"
FAILED = "queue.command.failed"

# How long the hook holds the emitting thread; only spent when the order is right.
HOOK_WAIT = 0.5


def all_events(stream):
    return list(iter(stream.try_recv, None))


def test_submitted_comes_before_started_with_an_idle_worker(managers):
    manager = managers.lanes(("work", 0, 0, 1))
    submitter = threading.current_thread()
    executed = threading.Event()

    def hold_submit_emit(event):
        if event.key == SUBMITTED and threading.current_thread() is submitter:
            executed.wait(HOOK_WAIT)  # with the bug the worker runs the command meanwhile
        return True

    stream = manager.subscribe_filtered(hold_submit_emit)
    future = manager.submit("work", executed.set)
    future.result(WAIT)
    manager.drain(WAIT)  # every event has been emitted
    keys = [e.key for e in all_events(stream)]
    assert keys == [SUBMITTED, STARTED, COMPLETED]


@pytest.mark.parametrize("first_fails", [False, True], ids=["completed", "failed"])
def test_end_of_a_command_comes_before_the_start_it_allows(managers, first_fails):
    # Lane max 1, but "other" brings the pool to 4 idle workers.
    manager = managers.lanes(("solo", 0, 0, 1), ("other", 1, 0, 3))
    second_started = threading.Event()

    def first():
        if first_fails:
            raise RuntimeError("first fails")

    def hold_end_emit(event):
        if event.key in (COMPLETED, FAILED):
            second_started.wait(HOOK_WAIT)  # with the bug the next command starts meanwhile
        return True

    manager.pause_lane("solo")
    one = manager.submit("solo", first)
    two = manager.submit("solo", second_started.set)
    stream = manager.subscribe_filtered(hold_end_emit)
    manager.resume_lane("solo")
    one.exception(WAIT)
    two.result(WAIT)
    manager.drain(WAIT)

    running = peak = 0
    timeline = []
    for event in all_events(stream):
        timeline.append(event.key)
        if event.key == STARTED:
            running += 1
            peak = max(peak, running)
        elif event.key in (COMPLETED, FAILED):
            running -= 1
    assert peak == 1, f"events show 2 commands running in a max-1 lane: {timeline}"
