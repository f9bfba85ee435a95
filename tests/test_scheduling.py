"""Scheduling through the threaded queue: priority beats arrival order, FIFO
inside a lane, max_concurrency caps, min_concurrency reservations, cancel,
pause and resume."""

from __future__ import annotations

import threading

import pytest

from conftest import WAIT, Recorder, recv_until


def test_control_starts_before_100_queued_prompts(managers, blocker):
    """Two workers, both held by prompt blockers; 100 prompts queue up, then
    one control command. The first worker freed must take the control."""
    manager = managers.lanes(("control", 1, 0, 2), ("prompt", 5, 0, 2), max_workers=2)
    first, second = blocker(), blocker()
    held = [manager.submit("prompt", first), manager.submit("prompt", second)]
    assert first.wait_entered(1) and second.wait_entered(1)

    order = Recorder()
    prompts = [manager.submit("prompt", order.recording(f"p{i}")) for i in range(100)]
    control = manager.submit("control", order.recording("control"))
    assert manager.stats().lane("prompt").pending == 100

    first.release()  # one worker frees up; the other stays held
    assert control.result(WAIT) == "control"
    assert order.items[0] == "control"

    second.release()
    for future in prompts + held:
        future.result(WAIT)
    assert order.items == ["control"] + [f"p{i}" for i in range(100)]


def test_control_starts_at_once_while_prompts_saturate_default_lanes(managers, blocker):
    """Default lanes, pool 7 (one reservation per lane plus one spare that
    prompt takes for its second slot): a prompt flood never delays control."""
    manager = managers.default(max_workers=7)
    hold = blocker()
    prompts = [manager.submit("prompt", hold) for _ in range(20)]
    assert hold.wait_entered(2)
    control = manager.submit("control", lambda: "control ran")
    assert control.result(WAIT) == "control ran"
    prompt = manager.stats().lane("prompt")
    assert (prompt.active, prompt.pending) == (2, 18)
    hold.release()
    for future in prompts:
        assert future.result(WAIT) == "released"


def test_reservations_cap_a_lane_below_its_max_when_the_pool_is_tight(managers, blocker):
    """Pool 6 with the six default lanes: every worker is some lane's
    reservation, so prompt (max 2) runs only 1 and the rest still start."""
    manager = managers.default(max_workers=6)
    hold = blocker()
    prompts = [manager.submit("prompt", hold) for _ in range(5)]
    assert hold.wait_entered(1)
    for lane_id in ("system", "control", "query", "session", "skill"):
        assert manager.submit(lane_id, lambda name=lane_id: name).result(WAIT) == lane_id
    prompt = manager.stats().lane("prompt")
    assert (prompt.active, prompt.pending) == (1, 4)
    hold.release()
    for future in prompts:
        assert future.result(WAIT) == "released"


def test_fifo_inside_a_lane(managers, blocker):
    manager = managers.lanes(("line", 0, 0, 1))
    hold = blocker()
    held = manager.submit("line", hold)
    assert hold.wait_entered(1)
    order = Recorder()
    futures = [manager.submit("line", order.recording(i)) for i in range(50)]
    hold.release()
    for future in [*futures, held]:
        future.result(WAIT)
    assert order.items == list(range(50))


def test_more_urgent_lane_goes_first_whatever_the_submission_order(managers, blocker):
    manager = managers.lanes(("low", 9, 0, 5), ("mid", 5, 0, 5), ("high", 0, 0, 5),
                             max_workers=1)
    hold = blocker()
    held = manager.submit("low", hold)
    assert hold.wait_entered(1)
    order = Recorder()
    futures = [
        manager.submit("low", order.recording("l1")),
        manager.submit("mid", order.recording("m1")),
        manager.submit("high", order.recording("h1")),
        manager.submit("low", order.recording("l2")),
        manager.submit("high", order.recording("h2")),
        manager.submit("mid", order.recording("m2")),
    ]
    hold.release()
    for future in [*futures, held]:
        future.result(WAIT)
    assert order.items == ["h1", "h2", "m1", "m2", "l1", "l2"]


class ConcurrencyProbe:
    """Counts commands inside a lane at once; remembers the peak."""

    def __init__(self, gate: threading.Event, full_at: int) -> None:
        self._lock = threading.Lock()
        self.inside = 0
        self.peak = 0
        self.gate = gate
        self.full_at = full_at
        self.full = threading.Event()

    def __call__(self) -> None:
        with self._lock:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            if self.inside >= self.full_at:
                self.full.set()
        try:
            self.gate.wait(WAIT)
        finally:
            with self._lock:
                self.inside -= 1


@pytest.mark.parametrize("maximum", [1, 3, 7])
def test_max_concurrency_is_never_exceeded(managers, gates, maximum):
    # A pool far larger than the lane's max: only the lane's cap can hold it.
    manager = managers.lanes(("capped", 0, 0, maximum), ("other", 1, 0, 16), max_workers=16)
    gate = gates.new()
    probe = ConcurrencyProbe(gate, full_at=maximum)
    futures = [manager.submit("capped", probe) for _ in range(120)]
    assert probe.full.wait(WAIT), "the lane never reached its max"
    # Idle workers are free, and another lane's command still gets one.
    assert manager.submit("other", lambda: "free").result(WAIT) == "free"
    status = manager.stats().lane("capped")
    assert status.active == maximum
    assert status.pending == 120 - maximum
    assert probe.inside == maximum
    gate.set()
    for future in futures:
        future.result(WAIT)
    assert probe.peak == maximum


def test_min_concurrency_reservation_lets_the_reserved_lane_start(managers, blocker):
    """Pool 3; lane A (prio 0, min 0, max 3) has plenty of work; lane B
    (prio 5, min 1, max 1) must still start at once: A may use only 2."""
    manager = managers.lanes(("A", 0, 0, 3), ("B", 5, 1, 1), max_workers=3)
    hold = blocker()
    a_futures = [manager.submit("A", hold) for _ in range(10)]
    assert hold.wait_entered(2)
    a = manager.stats().lane("A")
    assert (a.active, a.pending) == (2, 8), "A took the worker reserved for B"

    b = manager.submit("B", lambda: "B ran")
    assert b.result(WAIT) == "B ran"  # while A still holds 2 and has 8 pending
    a = manager.stats().lane("A")
    assert (a.active, a.pending) == (2, 8)

    hold.release()
    for future in a_futures:
        assert future.result(WAIT) == "released"


def test_cancel_of_a_pending_future_removes_it(managers, blocker):
    manager = managers.lanes(("solo", 0, 0, 1))
    stream = manager.subscribe_filtered(lambda e: e.key == "queue.command.cancelled")
    hold = blocker()
    held = manager.submit("solo", hold)
    assert hold.wait_entered(1)
    ran = threading.Event()
    victim = manager.submit("solo", ran.set)
    survivor = manager.submit("solo", lambda: "survived")
    assert manager.stats().lane("solo").pending == 2

    assert victim.cancel() is True
    assert victim.cancelled()
    status = manager.stats().lane("solo")
    assert (status.pending, status.cancelled) == (1, 1)
    event = stream.recv(WAIT)
    assert event is not None
    assert event.payload == {"lane_id": "solo", "command_id": victim.command_id}

    hold.release()
    assert survivor.result(WAIT) == "survived"
    assert held.result(WAIT) == "released"
    manager.drain(WAIT)
    assert not ran.is_set(), "a cancelled command ran"
    status = manager.stats().lane("solo")
    assert (status.submitted, status.completed, status.cancelled) == (3, 2, 1)


def test_cancel_of_a_running_or_finished_future_returns_false(managers, blocker):
    manager = managers.lanes(("solo", 0, 0, 1))
    done = manager.submit("solo", lambda: "done")
    assert done.result(WAIT) == "done"
    assert done.cancel() is False
    hold = blocker()
    running = manager.submit("solo", hold)
    assert hold.wait_entered(1)
    assert running.cancel() is False
    assert not running.cancelled()
    hold.release()
    assert running.result(WAIT) == "released"
    assert manager.stats().lane("solo").cancelled == 0


def test_cancel_by_command_id(managers, blocker):
    manager = managers.lanes(("solo", 0, 0, 1))
    stream = manager.subscribe()
    hold = blocker()
    held = manager.submit("solo", hold)
    assert hold.wait_entered(1)
    victim = manager.submit("solo", lambda: "should not run")

    assert manager.cancel(held.command_id) is False  # running
    assert manager.cancel(victim.command_id) is True
    assert victim.cancelled()
    assert manager.cancel(victim.command_id) is False  # already cancelled
    assert manager.cancel("not-a-command-id") is False
    assert manager.stats().lane("solo").pending == 0
    cancelled = recv_until(stream, lambda e: e.key == "queue.command.cancelled")[-1]
    assert cancelled.payload["command_id"] == victim.command_id

    hold.release()
    assert held.result(WAIT) == "released"


def test_pause_holds_a_lane_and_resume_releases_it_in_order(managers):
    manager = managers.lanes(("paused", 0, 0, 4), ("other", 1, 0, 4))
    manager.pause_lane("paused")
    assert manager.stats().lane("paused").paused is True
    order = Recorder()
    held = [manager.submit("paused", order.recording(i)) for i in range(5)]
    # Another lane still runs; by the time it finishes the paused lane's
    # commands would have been dispatched too, had the pause not held them.
    assert manager.submit("other", lambda: "other ran").result(WAIT) == "other ran"
    status = manager.stats().lane("paused")
    assert (status.pending, status.active) == (5, 0)
    assert not any(f.done() for f in held)
    assert order.items == []

    manager.resume_lane("paused")
    assert manager.stats().lane("paused").paused is False
    for future in held:
        future.result(WAIT)
    assert sorted(order.items) == list(range(5))


def test_pause_lets_running_commands_finish(managers, blocker):
    manager = managers.lanes(("work", 0, 0, 1))
    hold = blocker()
    running = manager.submit("work", hold)
    assert hold.wait_entered(1)
    manager.pause_lane("work")
    queued = manager.submit("work", lambda: "after resume")
    hold.release()
    assert running.result(WAIT) == "released"
    assert manager.stats().lane("work").pending == 1
    assert not queued.done()
    manager.resume_lane("work")
    assert queued.result(WAIT) == "after resume"


def test_blocking_run_from_many_threads_honours_max_concurrency(managers, gates):
    """run() may execute on the calling thread; the lane's cap still holds."""
    manager = managers.lanes(("capped", 0, 0, 2))
    gate = gates.new()
    probe = ConcurrencyProbe(gate, full_at=2)
    results = []
    callers = [threading.Thread(target=lambda: results.append(manager.run("capped", probe)))
               for _ in range(8)]
    for caller in callers:
        caller.start()
    assert probe.full.wait(WAIT)
    # All eight calls are in: two run, six wait in the lane.
    assert manager.stats().lane("capped").active == 2
    gate.set()
    for caller in callers:
        caller.join(WAIT)
    assert len(results) == 8
    assert probe.peak == 2


def test_blocking_run_waits_while_its_lane_is_paused(managers):
    manager = managers.lanes(("held", 0, 0, 2))
    manager.pause_lane("held")
    submitted = manager.subscribe_filtered(lambda e: e.key == "queue.command.submitted")
    results = []
    caller = threading.Thread(target=lambda: results.append(manager.run("held", lambda: "ran")))
    caller.start()
    assert submitted.recv(WAIT) is not None
    status = manager.stats().lane("held")
    assert (status.pending, status.active) == (1, 0), "run() ran in a paused lane"
    assert results == []
    manager.resume_lane("held")
    caller.join(WAIT)
    assert results == ["ran"]
