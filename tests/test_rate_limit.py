"""Rate limits (issue 4, part 1): ``RateLimitConfig`` through
``LaneConfig.with_rate_limit``, a token bucket per lane in the engine,
checked at dispatch. The bucket starts full, so a burst of N goes at once and
the rest follow one per window/N; a lane out of tokens never blocks the other
lanes, and workers sleep until its next token instead of polling."""

from __future__ import annotations

import math
import re
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeoutError
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import WAIT
from pylane import (
    EventEmitter,
    InvalidConfigError,
    LaneConfig,
    QueueManagerBuilder,
    RateLimitConfig,
)

# Commands record their start on time.monotonic(), the engine's clock
# (CLOCK_MONOTONIC); EPS covers the float rounding of those readings.
EPS = 0.001
# How late a start may be: thread wake-ups on a loaded machine (-n auto).
LATE = 0.15


def build(managers, *lanes, max_workers=None):
    """A started manager with lanes given as (id, priority, LaneConfig)."""
    builder = QueueManagerBuilder(EventEmitter(100))
    for lane_id, priority, config in lanes:
        builder.with_lane(lane_id, config, priority)
    if max_workers is not None:
        builder.with_max_workers(max_workers)
    return managers.build(builder)


def limited(rate: RateLimitConfig, max_concurrency: int = 8) -> LaneConfig:
    return LaneConfig.new(0, max_concurrency).with_rate_limit(rate)


def start_offsets(futures, t0: float) -> list[float]:
    """Each command returns time.monotonic() at its start: the sorted starts,
    in seconds after t0."""
    return sorted(future.result(WAIT) - t0 for future in futures)


def test_50_per_second_over_2_seconds(managers):
    """The issue's test: 150 commands into a 50/s lane. The bucket allows 50
    at once and 50 more per second, so the k-th start can never come before
    (k - 50) / 50 s after the first submit; and they do not come much later:
    the last of N starts at about (N - 50) / 50 = 2 s."""
    count = 150
    manager = build(managers, ("limited", 0, limited(RateLimitConfig.per_second(50))))
    t0 = time.monotonic()
    futures = [manager.submit("limited", time.monotonic) for _ in range(count)]
    starts = start_offsets(futures, t0)

    for k, start in enumerate(starts, 1):
        earliest = max(0.0, (k - 50) / 50)
        assert start >= earliest - EPS, f"start #{k} at {start:.3f}s, before its token"
    # Counted at checkpoints: never above the allowance, at most LATE behind it.
    for at in (0.0, 0.5, 1.0, 1.5, 2.0 - EPS):
        started = sum(start <= at for start in starts)
        allowed = 50 + math.floor(50 * at)
        assert started <= allowed, f"{started} started by {at}s, the bucket allows {allowed}"
        due_by = 0 if at < LATE else 50 + math.floor(50 * (at - LATE))
        assert started >= min(due_by, count), f"only {started} started by {at}s"
    assert starts[49] < LATE, "the first 50 (the full bucket) go at once"
    expected_last = (count - 50) / 50
    assert expected_last - EPS <= starts[-1] <= expected_last + LATE
    status = manager.stats().lane("limited")
    assert (status.pending, status.completed) == (0, count)


def test_per_minute_window(managers):
    """per_minute(300) is 5 per second: 300 at once, then one per 200 ms."""
    manager = build(managers, ("limited", 0, limited(RateLimitConfig.per_minute(300))))
    t0 = time.monotonic()
    futures = [manager.submit("limited", time.monotonic) for _ in range(302)]
    starts = start_offsets(futures, t0)
    assert starts[299] < LATE
    assert 0.2 - EPS <= starts[300] <= 0.2 + LATE
    assert 0.4 - EPS <= starts[301] <= 0.4 + LATE


def test_a_throttled_lane_never_blocks_other_lanes(managers):
    """One worker. The most urgent lane gets one command an hour: after it,
    its queued commands wait, and the less urgent lane's work all runs."""
    manager = build(
        managers,
        ("limited", 0, limited(RateLimitConfig.per_hour(1))),
        ("other", 5, LaneConfig.new(0, 4)),
        max_workers=1,
    )
    assert manager.submit("limited", lambda: "first").result(WAIT) == "first"
    waiting = [manager.submit("limited", lambda: "too soon") for _ in range(3)]
    others = [manager.submit("other", lambda i=i: i) for i in range(20)]
    assert [future.result(WAIT) for future in others] == list(range(20))
    status = manager.stats().lane("limited")
    assert status.throttled
    assert (status.pending, status.active, status.completed) == (3, 0, 1)
    assert not any(future.done() for future in waiting)
    # Commands queued after the others ran still go: the worker is not stuck.
    assert manager.submit("other", lambda: "late").result(WAIT) == "late"
    assert all(future.cancel() for future in waiting)  # an hour is too long to drain


def test_the_limit_is_checked_at_dispatch_not_at_submit(managers):
    """Submitting never blocks or fails on an empty bucket: the commands queue."""
    manager = build(managers, ("limited", 0, limited(RateLimitConfig.per_hour(2))))
    submitted = time.monotonic()
    futures = [manager.submit("limited", lambda i=i: i) for i in range(50)]
    assert time.monotonic() - submitted < 1.0
    assert [futures[0].result(WAIT), futures[1].result(WAIT)] == [0, 1]
    status = manager.stats().lane("limited")
    assert (status.submitted, status.pending, status.completed) == (50, 48, 2)
    assert all(future.cancel() for future in futures[2:])


def voluntary_switches(threads: list[threading.Thread]) -> int:
    """Times the threads went to sleep (Linux /proc): a polling loop adds one
    per tick."""
    total = 0
    for thread in threads:
        status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
        total += int(re.search(r"voluntary_ctxt_switches:\s+(\d+)", status).group(1))
    return total


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_waiting_for_a_token_does_not_poll(managers):
    """One command per 1.5 s. While the second waits for its token the worker
    sleeps on the engine's next-wake time: the process uses ~no CPU, the
    worker wakes a handful of times (not every 10 ms), and the command starts
    when the token is due."""
    before = set(threading.enumerate())
    manager = build(
        managers, ("limited", 0, limited(RateLimitConfig.new(1, 1.5), 1)), max_workers=1
    )
    workers = [t for t in threading.enumerate() if t not in before]
    assert len(workers) == 1
    first_start = manager.submit("limited", time.monotonic).result(WAIT)
    second = manager.submit("limited", time.monotonic)

    cpu_before = time.process_time()
    switches_before = voluntary_switches(workers)
    with pytest.raises(FutureTimeoutError):
        second.result(1.0)  # the token is 1.5 s after the first start
    cpu = time.process_time() - cpu_before
    switches = voluntary_switches(workers) - switches_before
    waited = second.result(WAIT) - first_start

    assert cpu < 0.020, f"process used {cpu * 1000:.1f} ms CPU while waiting for a token"
    assert switches <= 5, f"the worker woke {switches} times in 1 s"
    assert 1.5 - EPS <= waited <= 1.5 + LATE


def test_unlimited_runs_everything_at_once(managers):
    """unlimited() (the original's overflowed on its u64::MAX capacity, R3)
    and a lane without a limit behave the same."""
    manager = build(
        managers,
        ("unlimited", 0, limited(RateLimitConfig.unlimited())),
        ("plain", 1, LaneConfig.new(0, 8)),
    )
    t0 = time.monotonic()
    futures = [manager.submit(lane, time.monotonic) for lane in ("unlimited", "plain")
               for _ in range(500)]
    starts = start_offsets(futures, t0)
    assert starts[-1] < 2.0
    assert not manager.stats().lane("unlimited").throttled


def test_rate_limit_constructors():
    assert RateLimitConfig.per_second(5) == RateLimitConfig(5, 1.0)
    assert RateLimitConfig.per_minute(5) == RateLimitConfig(5, 60.0)
    assert RateLimitConfig.per_hour(5) == RateLimitConfig(5, 3600.0)
    assert RateLimitConfig.new(5, timedelta(milliseconds=250)) == RateLimitConfig(5, 0.25)
    assert RateLimitConfig.new(5, 2) == RateLimitConfig(5, 2.0)
    assert RateLimitConfig.unlimited().is_unlimited
    assert RateLimitConfig.unlimited().max_commands == 0
    assert not RateLimitConfig.per_second(1).is_unlimited

    base = LaneConfig.new(1, 4)
    config = base.with_rate_limit(RateLimitConfig.per_second(5))
    assert config.rate_limit == RateLimitConfig.per_second(5)
    assert base.rate_limit is None  # with_* returns a copy
    assert (config.min_concurrency, config.max_concurrency) == (1, 4)
    sdk = LaneConfig("api", priority=2, rate_limit=RateLimitConfig.per_minute(10))
    assert sdk.rate_limit == RateLimitConfig.per_minute(10)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: RateLimitConfig.per_second(-1), "max_commands must be >= 0, got -1"),
    (lambda: RateLimitConfig.per_minute(2.5), "max_commands must be an integer, got float"),
    (lambda: RateLimitConfig.per_hour(True), "max_commands must be an integer, got bool"),
    (lambda: RateLimitConfig.new(5, 0), "rate limit window must be at least 1 ns"),
    (lambda: RateLimitConfig.new(5, -1),
     "rate limit window must be a non-negative duration, got -1"),
    (lambda: RateLimitConfig.new(5, "1s"),
     "rate limit window must be a number of seconds or a timedelta, got str"),
    (lambda: LaneConfig.new(0, 1).with_rate_limit(10),
     "rate_limit must be a RateLimitConfig, got int"),
    (lambda: LaneConfig("api", rate_limit="10/s"),
     "rate_limit must be a RateLimitConfig, got str"),
])
def test_rate_limit_validation_messages(make, message):
    with pytest.raises(InvalidConfigError, match=re.escape(message)):
        make()


@pytest.mark.parametrize("rate", [
    pytest.param(lambda: RateLimitConfig.per_second(2**64), id="max_commands-2**64"),
    pytest.param(lambda: RateLimitConfig.new(1, math.inf), id="window-inf"),
])
def test_out_of_range_rate_limits_are_config_errors(rate):
    with pytest.raises(InvalidConfigError):
        config = LaneConfig.new(0, 1).with_rate_limit(rate())
        QueueManagerBuilder().with_lane("limited", config, 0).build()
