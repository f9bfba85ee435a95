"""Issue 3, item 2: retry policies.

``RetryPolicy.exponential(n)`` (100 ms, x2, capped at 30 s), ``fixed(n, d)``
and ``none()``. Failed attempts are retried with ``queue.command.retry``
(``attempt``); the back-off is a delayed entry held by the C engine, never a
sleeping thread; the caller's future resolves once, with the final outcome;
``drain`` waits for retries that are still due (defect X1 of the original).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from conftest import WAIT
from pylane import (
    EventEmitter,
    InvalidConfigError,
    LaneConfig,
    LaneTimeoutError,
    QueueManagerBuilder,
    RetryPolicy,
)


def mine(events, command_id):
    return [e for e in events if (e.payload or {}).get("command_id") == command_id]


def retry_manager(managers, policy, *, max_concurrency=2, max_workers=None, dlq=None):
    config = LaneConfig.new(0, max_concurrency)
    if policy is not None:
        config = config.with_retry_policy(policy)
    builder = QueueManagerBuilder(EventEmitter(1000)).with_lane("work", config, 0)
    if max_workers is not None:
        builder.with_max_workers(max_workers)
    if dlq is not None:
        builder.with_dlq(dlq)
    return managers.build(builder)


class Flaky:
    """Fails its first `failures` calls with ValueError, then returns `result`."""

    def __init__(self, failures, result="ok"):
        self.failures = failures
        self.result = result
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            self.calls += 1
            call = self.calls
        if call <= self.failures:
            raise ValueError(f"boom {call}")
        return self.result


# ---- the policies ---------------------------------------------------------------


def test_exponential_starts_at_100ms_doubles_and_caps_at_30s():
    policy = RetryPolicy.exponential(5)
    assert policy.max_retries == 5
    assert [policy.delay_for_attempt(k) for k in range(1, 6)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6])
    assert policy.delay_for_attempt(0) == 0
    long = RetryPolicy.exponential(20)
    assert long.delay_for_attempt(9) == pytest.approx(25.6)
    assert long.delay_for_attempt(10) == 30.0
    assert long.delay_for_attempt(20) == 30.0


def test_fixed_delay_in_seconds_or_timedelta():
    policy = RetryPolicy.fixed(3, 0.25)
    assert policy.max_retries == 3
    assert [policy.delay_for_attempt(k) for k in range(1, 6)] == [0.25] * 5
    assert policy.delay_for_attempt(0) == 0
    assert RetryPolicy.fixed(3, timedelta(milliseconds=250)) == policy
    # Sub-millisecond precision is kept (the original truncated to whole ms, X2).
    assert RetryPolicy.fixed(1, 0.0005).delay_for_attempt(1) == 0.0005


def test_none_never_retries():
    policy = RetryPolicy.none()
    assert policy.max_retries == 0
    assert not policy.should_retry(0)
    assert policy.delay_for_attempt(1) == 0


def test_should_retry_counts_failed_attempts():
    policy = RetryPolicy.fixed(2, 0.1)
    assert [policy.should_retry(a) for a in range(4)] == [True, True, False, False]


@pytest.mark.parametrize("make", [
    lambda: RetryPolicy.fixed(-1, 0.1),
    lambda: RetryPolicy.fixed(1, -0.1),
    lambda: RetryPolicy.fixed(1, "1s"),
    lambda: RetryPolicy.exponential(-2),
    lambda: RetryPolicy.exponential(1.5),
    lambda: RetryPolicy(1, 0.1, 1.0, 0.5),
    lambda: RetryPolicy(1, 2.0, 1.0, 2.0),
])
def test_invalid_policies_fail_at_configuration(make):
    with pytest.raises(InvalidConfigError):
        make()


def test_with_retry_policy_refuses_other_objects():
    with pytest.raises(InvalidConfigError, match="RetryPolicy"):
        LaneConfig.new(0, 1).with_retry_policy(3)


# ---- retries in a queue -----------------------------------------------------------


def test_failures_are_retried_until_success(managers):
    manager = retry_manager(managers, RetryPolicy.fixed(3, 0.01))
    stream = manager.subscribe()
    flaky = Flaky(2)
    future = manager.submit("work", flaky)
    resolutions = []
    future.add_done_callback(resolutions.append)
    assert future.result(WAIT) == "ok"
    assert flaky.calls == 3
    assert len(resolutions) == 1

    events = mine(stream.drain(), future.command_id)
    assert [e.key for e in events] == [
        "queue.command.submitted",
        "queue.command.started", "queue.command.retry",
        "queue.command.started", "queue.command.retry",
        "queue.command.started", "queue.command.completed",
    ]
    retries = [e.payload for e in events if e.key == "queue.command.retry"]
    assert [r["attempt"] for r in retries] == [1, 2]
    assert all(isinstance(r["attempt"], int) and r["lane_id"] == "work" for r in retries)
    status = manager.stats().lane("work")
    assert (status.retried, status.completed, status.delayed, status.pending) == (2, 1, 0, 0)


def test_exhausted_retries_fail_with_the_original_error(managers):
    manager = retry_manager(managers, RetryPolicy.fixed(2, 0.01))
    stream = manager.subscribe()
    flaky = Flaky(100)
    future = manager.submit("work", flaky)
    error = future.exception(WAIT)
    assert isinstance(error, ValueError) and str(error) == "boom 3"
    assert flaky.calls == 3  # max_retries + 1 attempts

    keys = [e.key for e in mine(stream.drain(), future.command_id)]
    assert keys.count("queue.command.retry") == 2
    assert keys[-1] == "queue.command.failed"
    assert "queue.command.dead_lettered" not in keys  # no DLQ configured
    status = manager.stats().lane("work")
    assert status.retried == 2 and status.completed == 0


def test_failed_event_carries_the_final_error_text(managers):
    manager = retry_manager(managers, RetryPolicy.fixed(1, 0.01))
    stream = manager.subscribe_filtered(lambda e: e.key == "queue.command.failed")
    future = manager.submit("work", Flaky(100))
    future.exception(WAIT)
    event = stream.try_recv()
    assert event.payload == {"lane_id": "work", "command_id": future.command_id,
                             "error": "ValueError: boom 2"}


@pytest.mark.parametrize("policy", [None, RetryPolicy.none()])
def test_without_retries_a_failure_is_final(managers, policy):
    manager = retry_manager(managers, policy)
    stream = manager.subscribe()
    flaky = Flaky(1)
    future = manager.submit("work", flaky)
    assert isinstance(future.exception(WAIT), ValueError)
    assert flaky.calls == 1
    keys = [e.key for e in mine(stream.drain(), future.command_id)]
    assert keys == ["queue.command.submitted", "queue.command.started", "queue.command.failed"]


def test_the_back_off_is_held_by_the_engine_not_by_a_thread(managers):
    # One worker. While A waits out a 30 s back-off, that worker must be free
    # to run B; A's wait is a delayed entry in the engine, which also counts it.
    manager = retry_manager(managers, RetryPolicy.fixed(1, 30.0), max_concurrency=1,
                            max_workers=1)
    stream = manager.subscribe()
    a = manager.submit("work", Flaky(1))
    retry = stream.recv(WAIT)
    while retry is not None and retry.key != "queue.command.retry":
        retry = stream.recv(WAIT)
    assert retry is not None and retry.payload["command_id"] == a.command_id

    stats = manager.stats()
    status = stats.lane("work")
    assert (status.delayed, status.pending, status.active) == (1, 0, 0)
    assert stats.total_delayed == 1
    assert not a.done()

    assert manager.submit("work", lambda: "b").result(WAIT) == "b"
    assert not a.done()

    # A command waiting out its back-off can be cancelled.
    assert a.cancel() is True
    assert a.cancelled()
    status = manager.stats().lane("work")
    assert (status.delayed, status.cancelled) == (0, 1)
    cancelled = [e for e in stream.drain() if e.key == "queue.command.cancelled"]
    assert [e.payload["command_id"] for e in cancelled] == [a.command_id]


def test_drain_does_not_return_while_a_retry_is_due(managers):
    manager = retry_manager(managers, RetryPolicy.fixed(1, 30.0))
    stream = manager.subscribe_filtered(lambda e: e.key == "queue.command.retry")
    future = manager.submit("work", Flaky(1))
    assert stream.recv(WAIT) is not None
    with pytest.raises(LaneTimeoutError, match="1 waiting to retry"):
        manager.drain(0.2)
    assert future.cancel()
    manager.drain(WAIT)


def test_drain_returns_after_the_retried_command_finished(managers):
    manager = retry_manager(managers, RetryPolicy.fixed(2, 0.05))
    futures = [manager.submit("work", Flaky(2, result=i)) for i in range(3)]
    manager.drain(WAIT)
    # drain returned: every back-off was waited out and every result is set.
    assert [f.result(0) for f in futures] == [0, 1, 2]
    assert manager.stats().lane("work").retried == 6


def test_the_retry_delay_is_honoured(managers):
    manager = retry_manager(managers, RetryPolicy.exponential(2))  # 100 ms, then 200 ms
    stream = manager.subscribe()
    future = manager.submit("work", Flaky(2))
    assert future.result(WAIT) == "ok"
    events = mine(stream.drain(), future.command_id)
    keyed = [(e.key, e.time_ns) for e in events]
    gaps = []
    for (key, when), (next_key, next_when) in zip(keyed, keyed[1:]):
        if key == "queue.command.retry":
            assert next_key == "queue.command.started"
            gaps.append((next_when - when) / 1e9)
    assert len(gaps) == 2
    assert gaps[0] >= 0.1 * 0.95
    assert gaps[1] >= 0.2 * 0.95


def test_many_retrying_commands_each_resolve_once_with_their_own_outcome(managers):
    manager = retry_manager(managers, RetryPolicy.fixed(2, 0.001), max_concurrency=4)
    stream = manager.subscribe_filtered(lambda e: e.key == "queue.command.retry")
    commands = [Flaky(i % 4, result=i) for i in range(120)]  # 3 failures is one too many
    futures = [manager.submit("work", c) for c in commands]
    counts = [0] * len(futures)
    for i, future in enumerate(futures):
        future.add_done_callback(lambda _f, i=i: counts.__setitem__(i, counts[i] + 1))
    manager.drain(WAIT)
    for i, future in enumerate(futures):
        if i % 4 == 3:
            assert isinstance(future.exception(0), ValueError)
            assert commands[i].calls == 3
        else:
            assert future.result(0) == i
            assert commands[i].calls == i % 4 + 1
    assert counts == [1] * len(futures)
    expected_retries = sum(min(i % 4, 2) for i in range(120))
    assert len(stream.drain()) == expected_retries
    status = manager.stats().lane("work")
    assert status.retried == expected_retries
    assert status.completed == 90
    assert (status.pending, status.active, status.delayed) == (0, 0, 0)


def test_a_retry_keeps_the_command_id_and_respects_the_lane_limit(managers, blocker):
    manager = retry_manager(managers, RetryPolicy.fixed(1, 0.01), max_concurrency=1)
    hold = blocker()
    running = manager.submit("work", hold)
    assert hold.wait_entered()
    flaky = Flaky(1)
    stream = manager.subscribe()
    future = manager.submit("work", flaky)
    assert flaky.calls == 0  # the lane is full: max_concurrency 1
    hold.release()
    assert running.result(WAIT) == "released"
    assert future.result(WAIT) == "ok"
    started = [e for e in stream.drain() if e.key == "queue.command.started"]
    assert [e.payload["command_id"] for e in started] == [future.command_id] * 2
