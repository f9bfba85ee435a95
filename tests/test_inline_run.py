"""run() on the caller's thread without a job (pylane/_runtime/inline.py):
what a command run that way still gets — its slot counted, its outcome
counted, its cancel token, failures ended as on the full path — and that
anything watching commands sends run() down the full path."""

from __future__ import annotations

import threading

import pytest

from conftest import WAIT
from pylane import DeadLetterQueue, EventEmitter, LaneConfig, QueueManagerBuilder, cancel_token
from pylane.errors import ShutdownInProgressError


def test_it_runs_on_the_caller_thread_and_holds_a_slot_while_it_runs(managers):
    manager = managers.lanes(("work", 0, 0, 2), max_workers=2)
    seen = []

    def command() -> str:
        seen.append((threading.get_ident(), manager.stats().lane("work").active))
        return "done"

    assert manager.run("work", command) == "done"
    assert seen == [(threading.get_ident(), 1)]
    stats = manager.stats().lane("work")
    assert (stats.active, stats.completed) == (0, 1)


def test_its_cancel_token_is_one_per_command(managers):
    manager = managers.lanes(("work", 0, 0, 2), max_workers=2)

    def command() -> bool:
        return cancel_token() is cancel_token()

    assert manager.run("work", command) is True


def test_a_failure_is_counted_dead_lettered_and_raised(managers):
    builder = QueueManagerBuilder(EventEmitter()).with_lane("work", LaneConfig.new(0, 2), 0)
    manager = managers.build(builder.with_max_workers(2).with_dlq(DeadLetterQueue(10)), True)

    def command() -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        manager.run("work", command)
    stats = manager.stats().lane("work")
    assert (stats.active, stats.failed) == (0, 1)
    letters = manager.dlq().list()
    assert [(letter.lane_id, letter.error) for letter in letters] == [
        ("work", "ValueError: broken")]


def test_subscribers_still_see_every_event(managers):
    manager = managers.lanes(("work", 0, 0, 2), max_workers=2)
    events = manager.subscribe()
    assert manager.run("work", lambda: 1) == 1
    keys = [events.recv(timeout_ms=int(WAIT * 1000)).key for _ in range(3)]
    assert keys == ["queue.command.submitted", "queue.command.started",
                    "queue.command.completed"]


def test_after_shutdown_it_is_refused(managers):
    manager = managers.lanes(("work", 0, 0, 2), max_workers=2)
    manager.shutdown()
    with pytest.raises(ShutdownInProgressError):
        manager.run("work", lambda: 1)


def test_a_full_lane_hands_the_command_to_a_worker(managers, blocker):
    manager = managers.lanes(("work", 0, 0, 1), max_workers=2)
    hold = blocker()
    held = manager.submit("work", hold)
    assert hold.wait_entered(1)
    done = []
    caller = threading.Thread(target=lambda: done.append(manager.run("work", lambda: "later")))
    caller.start()
    hold.release()
    caller.join(WAIT)
    assert done == ["later"] and held.result(WAIT) == "released"
