"""Pressure events (issue 4, part 3): with ``with_pressure_threshold(n)`` a
lane emits ``queue.lane.pressure`` when its pending count first reaches n and
``queue.lane.idle`` when it is back to 0 after that, nothing in between. The
original checked only once per 10 ms scheduler pass and missed crossings
that resolved within a tick (V1); here every change of the pending count is
checked, so the events are synchronous with the submit, dispatch or cancel
that caused them."""

from __future__ import annotations

import re

import pytest

from conftest import WAIT, Recorder
from pylane import EventEmitter, InvalidConfigError, LaneConfig, QueueManagerBuilder
from pylane.events import COMMAND_STARTED, LANE_IDLE, LANE_PRESSURE


def build(managers, *lanes, max_workers=1, capacity=1000):
    """A started manager with lanes given as (id, priority, LaneConfig)."""
    builder = QueueManagerBuilder(EventEmitter(capacity))
    for lane_id, priority, config in lanes:
        builder.with_lane(lane_id, config, priority)
    return managers.build(builder.with_max_workers(max_workers))


def pressure_events(manager):
    return manager.subscribe_filtered(lambda event: event.key in (LANE_PRESSURE, LANE_IDLE))


def drained(stream) -> list[tuple[str, dict]]:
    """Every event the stream holds now, as (key, payload)."""
    events = []
    while (event := stream.try_recv()) is not None:
        events.append((event.key, event.payload))
    return events


def held_lane(managers, blocker, threshold, max_concurrency=1):
    """A one-worker manager whose lane "work" has the threshold, its worker
    held by a blocker in another lane."""
    manager = build(
        managers,
        ("hold", 0, LaneConfig.new(0, 1)),
        ("work", 1, LaneConfig.new(0, max_concurrency).with_pressure_threshold(threshold)),
    )
    hold = blocker()
    held = manager.submit("hold", hold)
    assert hold.wait_entered()
    return manager, hold, held


def test_pressure_on_first_crossing_idle_on_return_to_zero(managers, blocker):
    """Pressure exactly when the 5th command is pending, one event however
    many follow, one idle when the lane empties; and again after that."""
    manager, hold, held = held_lane(managers, blocker, threshold=5)
    stream = pressure_events(manager)
    pressure = (LANE_PRESSURE, {"lane_id": "work"})
    idle = (LANE_IDLE, {"lane_id": "work"})
    for round_ in range(2):
        if round_:  # hold the worker again
            hold = blocker()
            held = manager.submit("hold", hold)
            assert hold.wait_entered()
        futures = [manager.submit("work", lambda: None) for _ in range(4)]
        assert drained(stream) == []
        futures.append(manager.submit("work", lambda: None))
        assert drained(stream) == [pressure]
        futures += [manager.submit("work", lambda: None) for _ in range(20)]
        assert drained(stream) == []
        assert manager.stats().lane("work").pending == 25

        hold.release()
        for future in [held, *futures]:
            future.result(WAIT)
        event = stream.recv(WAIT)
        assert (event.key, event.payload) == idle
        manager.drain(WAIT)
        assert drained(stream) == []


def test_no_repeat_while_pending_moves_above_zero(managers, blocker):
    """After pressure, pending drops (not to 0) and rises past the threshold
    again: nothing. Idle comes only at 0."""
    manager, hold, held = held_lane(managers, blocker, threshold=3)
    stream = pressure_events(manager)
    second = blocker()
    futures = [manager.submit("work", second)]
    futures += [manager.submit("work", lambda: None) for _ in range(2)]
    assert [key for key, _ in drained(stream)] == [LANE_PRESSURE]
    hold.release()
    assert second.wait_entered()  # pending 3 -> 2
    assert manager.stats().lane("work").pending == 2
    futures += [manager.submit("work", lambda: None) for _ in range(3)]  # 2 -> 5
    assert manager.stats().lane("work").pending == 5
    assert drained(stream) == []
    second.release()
    for future in [held, *futures]:
        future.result(WAIT)
    assert stream.recv(WAIT).key == LANE_IDLE
    manager.drain(WAIT)
    assert drained(stream) == []


def test_idle_is_emitted_when_the_last_pending_command_is_dispatched(managers, blocker):
    """With one worker the order is deterministic: idle comes after the
    second-to-last command started and before the last one starts, i.e. the
    moment pending reached 0."""
    manager, hold, held = held_lane(managers, blocker, threshold=2)
    stream = manager.subscribe()
    futures = [manager.submit("work", lambda: None) for _ in range(10)]
    hold.release()
    for future in [held, *futures]:
        future.result(WAIT)
    manager.drain(WAIT)
    events = []
    while (event := stream.try_recv()) is not None:
        events.append(event)
    assert stream.dropped == 0
    keys = [event.key for event in events]
    assert keys.count(LANE_PRESSURE) == 1 and keys.count(LANE_IDLE) == 1

    def started(future) -> int:
        return next(i for i, event in enumerate(events)
                    if event.key == COMMAND_STARTED
                    and event.payload["command_id"] == future.command_id)

    # Pressure came with the second submit, before anything in "work" started.
    assert keys.index(LANE_PRESSURE) < started(futures[0])
    assert started(futures[-2]) < keys.index(LANE_IDLE) < started(futures[-1])


def test_pressure_counts_pending_not_active(managers, blocker):
    """Three running commands do not count; the second queued one does."""
    manager = build(
        managers, ("work", 0, LaneConfig.new(0, 3).with_pressure_threshold(2)), max_workers=3)
    stream = pressure_events(manager)
    running = blocker()
    futures = []
    for count in range(1, 4):
        futures.append(manager.submit("work", running))
        assert running.wait_entered(count)
    futures.append(manager.submit("work", lambda: None))
    assert manager.stats().lane("work").active == 3
    assert drained(stream) == []
    futures.append(manager.submit("work", lambda: None))
    assert [key for key, _ in drained(stream)] == [LANE_PRESSURE]
    running.release()
    for future in futures:
        future.result(WAIT)
    assert stream.recv(WAIT).key == LANE_IDLE


def test_cancelling_the_pending_commands_emits_idle(managers, blocker):
    """Idle also comes when cancels empty the lane: at the last cancel."""
    manager, hold, held = held_lane(managers, blocker, threshold=3)
    stream = pressure_events(manager)
    order = Recorder()
    futures = [manager.submit("work", order.recording(i)) for i in range(4)]
    assert [key for key, _ in drained(stream)] == [LANE_PRESSURE]
    for future in futures[:-1]:
        assert future.cancel()
        assert drained(stream) == []
    assert futures[-1].cancel()
    assert drained(stream) == [(LANE_IDLE, {"lane_id": "work"})]
    hold.release()
    held.result(WAIT)
    manager.drain(WAIT)
    assert order.items == []
    assert drained(stream) == []


def test_lanes_are_watched_separately(managers, blocker):
    """Each lane has its own threshold and state; a lane without one never
    emits. The payload names the lane."""
    manager = build(
        managers,
        ("hold", 0, LaneConfig.new(0, 1)),
        ("a", 1, LaneConfig.new(0, 1).with_pressure_threshold(2)),
        ("b", 2, LaneConfig.new(0, 1).with_pressure_threshold(3)),
        ("plain", 3, LaneConfig.new(0, 1)),
    )
    hold = blocker()
    held = manager.submit("hold", hold)
    assert hold.wait_entered()
    stream = pressure_events(manager)
    futures = [manager.submit("plain", lambda: None) for _ in range(50)]
    futures += [manager.submit("b", lambda: None) for _ in range(2)]
    futures += [manager.submit("a", lambda: None) for _ in range(2)]
    assert drained(stream) == [(LANE_PRESSURE, {"lane_id": "a"})]
    futures.append(manager.submit("b", lambda: None))
    assert drained(stream) == [(LANE_PRESSURE, {"lane_id": "b"})]
    hold.release()
    for future in [held, *futures]:
        future.result(WAIT)
    manager.drain(WAIT)
    # Lanes drain in priority order: "a" empties first.
    assert drained(stream) == [(LANE_IDLE, {"lane_id": "a"}), (LANE_IDLE, {"lane_id": "b"})]


@pytest.mark.parametrize(("make", "message"), [
    (lambda: LaneConfig.new(0, 1).with_pressure_threshold(0),
     "pressure_threshold must be >= 1, got 0"),
    (lambda: LaneConfig.new(0, 1).with_pressure_threshold("3"),
     "pressure_threshold must be an integer, got str"),
    (lambda: LaneConfig.new(0, 1).with_pressure_threshold(True),
     "pressure_threshold must be an integer, got bool"),
    (lambda: LaneConfig("api", pressure_threshold=-2),
     "pressure_threshold must be >= 1, got -2"),
])
def test_pressure_threshold_validation_messages(make, message):
    with pytest.raises(InvalidConfigError, match=re.escape(message)):
        make()


def test_with_pressure_threshold_returns_a_copy():
    base = LaneConfig.new(1, 4)
    config = base.with_pressure_threshold(7)
    assert config.pressure_threshold == 7
    assert base.pressure_threshold is None
    assert (config.min_concurrency, config.max_concurrency) == (1, 4)
