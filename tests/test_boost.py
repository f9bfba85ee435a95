"""Deadline boost (issue 4, part 2): ``PriorityBoostConfig`` through
``LaneConfig.with_priority_boost``. The engine lowers a lane's priority
number as its front command ages towards the deadline, and puts it above
every lane once the deadline has passed."""

from __future__ import annotations

import math
import re
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeoutError
from datetime import timedelta

import pytest

from conftest import WAIT, Recorder
from pylane import (
    EventEmitter,
    InvalidConfigError,
    LaneConfig,
    PriorityBoostConfig,
    QueueManagerBuilder,
)

EPS = 0.001  # float rounding of time.monotonic() readings
LATE = 0.05  # how late a dispatch may be on a loaded machine (urgent work keeps it cycling)
LOW_PRIORITY = 5
DEADLINE = 0.4


def first_age_at_or_below(boost: PriorityBoostConfig, base: int, priority: int) -> float:
    """The age (s) from which the boosted lane's effective priority is at
    most `priority`, by the config's own rule (searched in 1 ms steps)."""
    for ms in range(int(boost.deadline * 1000) + 2):
        if boost.priority_at(base, boost.deadline - ms / 1000) <= priority:
            return ms / 1000
    raise AssertionError("never")


@pytest.mark.parametrize(("boost", "urgent_priority", "threshold"), [
    pytest.param(PriorityBoostConfig.standard(DEADLINE), 2, 0.30, id="standard-25%-left"),
    pytest.param(PriorityBoostConfig.standard(DEADLINE), 1, 0.36, id="standard-10%-left"),
    pytest.param(PriorityBoostConfig.standard(DEADLINE), 0, 0.40, id="standard-past-deadline"),
    pytest.param(PriorityBoostConfig.aggressive(DEADLINE), 3, 0.08, id="aggressive-80%-left"),
    pytest.param(PriorityBoostConfig.aggressive(DEADLINE), 1, 0.16, id="aggressive-60%-left"),
])
def test_old_low_priority_command_overtakes_urgent_work_when_its_boost_says(
    managers, blocker, boost, urgent_priority, threshold
):
    """The issue's test. One worker, first held by a blocker. A low-priority
    command (base 5) is queued, then urgent-lane work that never runs dry:
    each urgent command queues the next, so every pick has newer urgent work
    to choose. Urgent work must go first until the low command's boost
    brings it level with the urgent lane (a tie goes to the older command),
    and the low command must go right after that, not before, not much later.
    """
    assert first_age_at_or_below(boost, LOW_PRIORITY, urgent_priority) == pytest.approx(
        threshold, abs=0.0015)
    builder = QueueManagerBuilder(EventEmitter(100))
    builder.with_lane("hold", LaneConfig.new(0, 1), 0)
    builder.with_lane("urgent", LaneConfig.new(0, 1), urgent_priority)
    builder.with_lane("low", LaneConfig.new(0, 1).with_priority_boost(boost), LOW_PRIORITY)
    manager = managers.build(builder.with_max_workers(1))
    hold = blocker()
    manager.submit("hold", hold)
    assert hold.wait_entered()

    order = Recorder()
    low_started = threading.Event()

    def urgent() -> None:
        now = time.monotonic()
        order.append(("urgent", now))
        if not low_started.is_set() and now - queued < 2.0:  # bounded if the boost fails
            manager.submit("urgent", urgent)

    def low() -> None:
        low_started.set()
        order.append(("low", time.monotonic()))

    queued = time.monotonic()  # at or before the low command's enqueue time
    low_future = manager.submit("low", low)
    manager.submit("urgent", urgent)
    hold.release()
    low_future.result(WAIT)

    events = order.items
    names = [name for name, _ in events]
    low_at = names.index("low")
    low_age = events[low_at][1] - queued
    urgent_before = [at - queued for name, at in events[:low_at]]
    assert low_age >= threshold - EPS, (
        f"the low command started at age {low_age:.3f}s, before its boost ({threshold}s)")
    assert low_age <= threshold + LATE, (
        f"the low command started at age {low_age:.3f}s, long after its boost ({threshold}s)")
    # Urgent work really was going first right up to the threshold.
    assert len(urgent_before) >= 5
    assert urgent_before[-1] >= threshold - LATE
    assert all(name == "urgent" for name in names[:low_at])


def test_without_a_boost_low_priority_work_waits(managers, blocker):
    """disabled(): the old low command waits as long as urgent work keeps
    coming, here past the deadline the other tests use."""
    builder = QueueManagerBuilder(EventEmitter(100))
    builder.with_lane("hold", LaneConfig.new(0, 1), 0)
    builder.with_lane("urgent", LaneConfig.new(0, 1), 4)
    builder.with_lane(
        "low", LaneConfig.new(0, 1).with_priority_boost(PriorityBoostConfig.disabled()), 5)
    manager = managers.build(builder.with_max_workers(1))
    hold = blocker()
    manager.submit("hold", hold)
    assert hold.wait_entered()
    order = Recorder()
    queued = time.monotonic()

    def urgent() -> None:
        now = time.monotonic()
        order.append(("urgent", now))
        if now - queued < DEADLINE + 0.1:
            manager.submit("urgent", urgent)

    low_future = manager.submit("low", lambda: order.append(("low", time.monotonic())))
    manager.submit("urgent", urgent)
    hold.release()
    low_future.result(WAIT)
    events = order.items
    assert events[-1][0] == "low"
    assert events[-1][1] - queued >= DEADLINE + 0.1
    assert len(events) > 5


def test_boost_counts_from_the_front_command_only(managers, blocker):
    """A lane's boost follows the age of its front command, and its commands
    keep their order: the old command, past its deadline, goes above a
    priority-0 lane; the young one behind it gets nothing from that."""
    builder = QueueManagerBuilder(EventEmitter(100))
    builder.with_lane("hold", LaneConfig.new(0, 1), 0)
    builder.with_lane("urgent", LaneConfig.new(0, 1), 0)
    builder.with_lane(
        "low", LaneConfig.new(0, 1).with_priority_boost(PriorityBoostConfig.new(0.2)), 5)
    manager = managers.build(builder.with_max_workers(1))
    hold = blocker()
    manager.submit("hold", hold)
    assert hold.wait_entered()
    order = Recorder()
    old = manager.submit("low", order.recording("old"))
    # Wait out the deadline on a future that is not due to finish.
    with pytest.raises(FutureTimeoutError):
        old.result(0.25)
    young = manager.submit("low", order.recording("young"))
    urgent = manager.submit("urgent", order.recording("urgent"))
    hold.release()
    for future in (old, young, urgent):
        future.result(WAIT)
    assert order.items == ["old", "urgent", "young"]


def test_boost_constructors():
    standard = PriorityBoostConfig.standard(300)
    assert standard.enabled and standard.deadline == 300.0
    assert standard.boost_intervals == ((225.0, 1), (150.0, 2), (75.0, 3), (30.0, 4))
    aggressive = PriorityBoostConfig.aggressive(timedelta(seconds=100))
    assert [(pytest.approx(t), b) for t, b in aggressive.boost_intervals] == [
        (80.0, 2), (60.0, 4), (40.0, 6), (20.0, 8)]
    disabled = PriorityBoostConfig.disabled()
    assert not disabled.enabled and disabled.boost_intervals == ()
    assert PriorityBoostConfig() == disabled
    assert PriorityBoostConfig.new(10) == PriorityBoostConfig(True, 10.0, ())
    # with_boost keeps the windows sorted, widest first.
    custom = PriorityBoostConfig.new(10).with_boost(1, 3).with_boost(5, 1).with_boost(2, 2)
    assert custom.boost_intervals == ((5.0, 1), (2.0, 2), (1.0, 3))

    config = LaneConfig.new(1, 2).with_priority_boost(standard)
    assert config.priority_boost == standard
    assert LaneConfig.new(1, 2).priority_boost is None
    sdk = LaneConfig("api", priority=3, priority_boost=standard)
    assert sdk.priority_boost == standard


@pytest.mark.parametrize(("time_left", "expected"), [
    (300, 5), (225.001, 5), (225, 4), (150.001, 4), (150, 3), (75.001, 3), (75, 2),
    (30.001, 2), (30, 1), (0.001, 1), (0, -1), (-5, -1),
])
def test_standard_300s_table(time_left, expected):
    """The reference's table for standard(300 s) on priority 5; past the
    deadline the lane goes above every other (-1, not the original's 0)."""
    assert PriorityBoostConfig.standard(300).priority_at(5, time_left) == expected


def test_priority_at_floor_and_disabled():
    assert PriorityBoostConfig.aggressive(10).priority_at(5, 1) == 0  # 5 - 8, floored
    assert PriorityBoostConfig.aggressive(10).priority_at(5, 0) == -1
    assert PriorityBoostConfig.disabled().priority_at(5, -100) == 5


@pytest.mark.parametrize(("make", "message"), [
    (lambda: PriorityBoostConfig.new(0), "boost deadline must be > 0 and finite"),
    (lambda: PriorityBoostConfig.standard(-1),
     "boost deadline must be a non-negative duration, got -1"),
    (lambda: PriorityBoostConfig.aggressive("5m"),
     "boost deadline must be a number of seconds or a timedelta, got str"),
    (lambda: PriorityBoostConfig.new(10).with_boost(1, -1),
     "boost amount must be an integer in [0, 2**31), got -1"),
    (lambda: PriorityBoostConfig.new(10).with_boost(1, 1.5),
     "boost amount must be an integer in [0, 2**31), got 1.5"),
    (lambda: PriorityBoostConfig.new(10).with_boost(-1, 1),
     "time before deadline must be a non-negative duration, got -1"),
    (lambda: PriorityBoostConfig(True, 10, tuple((float(i), 1) for i in range(9))),
     "at most 8 boost windows"),
    (lambda: LaneConfig.new(0, 1).with_priority_boost(300),
     "priority_boost must be a PriorityBoostConfig, got int"),
])
def test_boost_validation_messages(make, message):
    with pytest.raises(InvalidConfigError, match=re.escape(message)):
        make()


@pytest.mark.parametrize("boost", [
    pytest.param(lambda: PriorityBoostConfig.new(10).with_boost(1, 2**31), id="amount-2**31"),
    pytest.param(lambda: PriorityBoostConfig.standard(math.inf), id="deadline-inf"),
])
def test_out_of_range_boosts_are_config_errors(boost):
    with pytest.raises(InvalidConfigError):
        config = LaneConfig.new(0, 1).with_priority_boost(boost())
        QueueManagerBuilder().with_lane("boosted", config, 0).build()
