"""Breaks an adversarial pass found, each pinned: durations the runtime cannot
represent, retry policies that cannot be computed, faults on a worker's own
bookkeeping path, and raw exceptions where a clear ``LaneError`` is due.

The rule these tests hold: every input either works or raises a
``LaneError`` subclass naming the problem; no background thread of ours dies;
a command always ends (its future resolves, its slot frees) whatever fails
around it.
"""

from __future__ import annotations

import logging
import math
import threading
import time

import pytest

from conftest import WAIT
from pylane import (
    DeadLetterQueue,
    InvalidConfigError,
    InvalidPayloadError,
    LaneConfig,
    LaneError,
    PriorityBoostConfig,
    QueueManagerBuilder,
    RateLimitConfig,
    RetryPolicy,
)
from pylane._runtime.timeouts import DeadlineWatcher

HUGE_DURATIONS = [math.inf, 1e10, 1e300, 10**400]
BAD_NUMBERS = [math.nan, -1, "a", None, True]


# ---- 1. durations the runtime cannot represent ------------------------------------


@pytest.mark.parametrize("value", HUGE_DURATIONS)
def test_a_timeout_beyond_what_the_runtime_holds_is_refused(value):
    with pytest.raises(InvalidConfigError, match="timeout") as caught:
        LaneConfig.new(1, 2).with_timeout(value)
    assert "at most" in str(caught.value)


@pytest.mark.parametrize("value", HUGE_DURATIONS)
def test_other_durations_beyond_the_runtime_are_refused(value):
    for make in (
        lambda: RateLimitConfig.new(5, value),
        lambda: PriorityBoostConfig.new(value),
        lambda: RetryPolicy.fixed(2, value),
        lambda: RetryPolicy(2, 0.1, value),
    ):
        with pytest.raises(InvalidConfigError):
            make()


def test_the_deadline_thread_survives_a_deadline_it_cannot_wait_for():
    fired: list[str] = []
    done = threading.Event()

    def on_expire(item):
        fired.append(item)
        done.set()

    watcher = DeadlineWatcher(on_expire)
    try:
        watcher.watch(time.monotonic() + 1e300, "never")  # cannot be waited for directly
        watcher.watch(time.monotonic() + 0.01, "soon")
        assert done.wait(WAIT), "the deadline thread died"
        assert fired == ["soon"]
    finally:
        watcher.stop()


def test_the_deadline_thread_survives_a_handler_that_raises():
    calls: list[str] = []
    second = threading.Event()

    def on_expire(item):
        calls.append(item)
        if item == "first":
            raise RuntimeError("handler broke")
        second.set()

    watcher = DeadlineWatcher(on_expire)
    try:
        watcher.watch(time.monotonic(), "first")
        watcher.watch(time.monotonic() + 0.01, "second")
        assert second.wait(WAIT)
        assert calls == ["first", "second"]
    finally:
        watcher.stop()


# ---- 2. retry policies that cannot be computed ----------------------------------------


@pytest.mark.parametrize("make", [
    lambda: RetryPolicy.fixed(2, float("inf")),
    lambda: RetryPolicy.fixed(2, 1e12),
    lambda: RetryPolicy(2, math.nan, math.nan),
    lambda: RetryPolicy(2, "a", "a"),
    lambda: RetryPolicy(2, 0.1, 1.0, math.nan),
    lambda: RetryPolicy(2, 0.1, 1.0, math.inf),
    lambda: RetryPolicy(2, 0.1, 1.0, "x"),
    lambda: RetryPolicy(2**40, 0.1, 1.0),
    lambda: RetryPolicy(2, -1.0, 1.0),
])
def test_a_retry_policy_that_cannot_be_computed_is_refused(make):
    with pytest.raises(InvalidConfigError):
        make()


def test_a_huge_multiplier_is_capped_not_overflowed():
    policy = RetryPolicy(5, 0.001, 0.002, 1e200)
    assert [policy.delay_for_attempt(k) for k in range(1, 6)] == [0.001] + [0.002] * 4


def test_a_huge_multiplier_retries_and_ends(managers):
    policy = RetryPolicy(3, 0.0, 0.001, 1e200)
    manager = managers.build(QueueManagerBuilder().with_lane(
        "work", LaneConfig.new(1, 2).with_retry_policy(policy)))
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise ValueError("again")
        return "ok"

    assert manager.submit("work", flaky).result(WAIT) == "ok"
    assert len(calls) == 4


# ---- the worker's own bookkeeping fails: the command still ends --------------------


class BrokenDeadLetters(DeadLetterQueue):
    def push(self, letter):
        raise RuntimeError("dead letter store is down")


class BrokenAlerts:
    def check_latency(self, lane_id, latency_ms):
        raise RuntimeError("alerts broke")

    def check_queue_depth(self, lane_id, depth):
        return None


@pytest.mark.parametrize("fault", ["dlq", "alerts"])
def test_a_fault_while_ending_a_command_fails_it_and_keeps_the_worker(managers, fault):
    builder = QueueManagerBuilder().with_lane("work", LaneConfig.new(1, 1)).with_max_workers(1)
    if fault == "dlq":
        builder.with_dlq(BrokenDeadLetters(10))
    else:
        builder.with_alerts(BrokenAlerts())
    manager = managers.build(builder)

    def fails():
        raise ValueError("the command's own error")

    first = manager.submit("work", fails)
    error = first.exception(WAIT)
    assert isinstance(error, (ValueError, LaneError))
    # The one worker is alive and the slot is free: the next command runs.
    assert manager.submit("work", lambda: "next").result(WAIT) == "next"
    manager.drain(WAIT)
    stats = manager.stats()
    assert stats.total_active == 0 and stats.total_pending == 0
    assert manager.queue().worker_count() == 1


# ---- 5. raw errors where a clear one is due ------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: LaneConfig.new(1, 2**32),
    lambda: LaneConfig.new(2**32, 2**32),
    lambda: LaneConfig("x", priority=0, min_concurrency=1, max_concurrency=2**40),
    lambda: QueueManagerBuilder().with_max_workers(2**32),
    lambda: LaneConfig.new(1, 2).with_pressure_threshold(2**64),
    lambda: DeadLetterQueue(2**70),
])
def test_counts_beyond_the_engine_are_refused_by_name(make):
    with pytest.raises(InvalidConfigError, match="must be"):
        make()


@pytest.mark.parametrize("timeout", [math.inf, 1e300, 10**400])
def test_drain_with_an_endless_timeout_means_no_limit(managers, timeout):
    manager = managers.build(QueueManagerBuilder().with_lane("work", LaneConfig.new(1, 2)))
    future = manager.submit("work", lambda: "done")
    manager.drain(timeout)
    assert future.result(0) == "done"


@pytest.mark.parametrize("bad", [None, 123, 1.5, b"id", object()])
def test_cancel_of_a_value_that_is_not_an_id_is_false(managers, bad):
    manager = managers.default()
    assert manager.cancel(bad) is False


def test_a_deeply_nested_payload_is_an_invalid_payload(managers):
    lane = managers.sdk()
    payload: list = []
    for _ in range(100_000):
        payload = [payload]
    with pytest.raises(InvalidPayloadError, match="nest"):
        lane.submit("query", "echo", payload)
    assert lane.submit("query", "echo", {"after": 1}) == {"after": 1}


def test_log_records_about_a_command_carry_its_lane_id_and_type(managers, caplog):
    manager = managers.build(QueueManagerBuilder().with_lane("work", LaneConfig.new(1, 1))
                             .with_dlq(BrokenDeadLetters(10)))

    def fails():
        raise ValueError("boom")

    caplog.set_level(logging.ERROR, logger="pylane.queue")
    future = manager.submit("work", fails)
    future.exception(WAIT)
    manager.drain(WAIT)
    [record] = [r for r in caplog.records if "could not be ended" in r.getMessage()
                or "ending command" in r.getMessage()]
    assert record.lane_id == "work"
    assert record.command_id == future.command_id
    assert record.command_type == "fails"
