"""Per-attempt timeouts.

At the deadline the caller's future fails with ``CommandTimeoutError`` (a
``LaneError``), ``queue.command.timeout`` is emitted with the error text, the
command's cancel token is set and the error is raised inside the running
Python code (see test_interrupt.py). The slot stays taken until the thread
leaves the command; a thread still inside after the lane's grace (blocked in
a C call) is abandoned: ``queue.command.abandoned``, its slot freed (a hung
call never wedges its lane), the pool topped up, the thread counted in stats.

Hung commands block on a gate (``threading.Event``, a C wait the interrupt
cannot stop) that the test's teardown opens; nothing here sleeps to wait for
an outcome.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import wait
from datetime import timedelta

import pytest

from conftest import WAIT, recv_until
from pylane import (
    Command,
    EventEmitter,
    InvalidConfigError,
    LaneConfig,
    LaneError,
    LaneTimeoutError,
    QueueManagerBuilder,
    RetryPolicy,
)
from pylane.cancel import cancel_token
from pylane.durable.storage import LocalStorage
from pylane.execution import CommandTimeoutError

TIMEOUT = 0.2
GRACE = 0.1  # for commands that hang in C: abandoned soon after the deadline
ABANDONED = "queue.command.abandoned"


def wait_abandoned(stream, count):
    """Waits for `count` abandoned events; returns them."""
    seen = []
    while len(seen) < count:
        seen.append(recv_until(stream, lambda e: e.key == ABANDONED)[-1])
    return seen


def keys_for(events, command_id):
    return [e.key for e in events if (e.payload or {}).get("command_id") == command_id]


class Hang:
    """A command body that ignores its token and blocks on a gate; records
    the thread it runs on."""

    def __init__(self, gates):
        self.gate = gates.new()
        self.threads = []
        self._cond = threading.Condition()

    def __call__(self):
        with self._cond:
            self.threads.append(threading.current_thread())
            self._cond.notify_all()
        self.gate.wait(WAIT * 3)
        return "late"

    def wait_started(self, count=1):
        with self._cond:
            return self._cond.wait_for(lambda: len(self.threads) >= count, WAIT)


@pytest.fixture
def timeout_manager(managers):
    def build(config, *, max_workers=None, dlq=None, extra_lanes=(), grace=None):
        if grace is not None:
            config = config.with_timeout(config.timeout, grace=grace)
        builder = QueueManagerBuilder(EventEmitter(1000)).with_lane("slow", config, 0)
        for lane_id, lane_config in extra_lanes:
            builder.with_lane(lane_id, lane_config, 1)
        if max_workers is not None:
            builder.with_max_workers(max_workers)
        if dlq is not None:
            builder.with_dlq(dlq)
        return managers.build(builder)

    return build


# ---- configuration ------------------------------------------------------------


def test_with_timeout_takes_seconds_or_timedelta():
    assert LaneConfig.new(0, 1).with_timeout(0.25).timeout == 0.25
    assert LaneConfig.new(0, 1).with_timeout(2).timeout == 2.0
    assert LaneConfig.new(0, 1).with_timeout(timedelta(milliseconds=250)).timeout == 0.25
    assert LaneConfig.new(0, 1).with_timeout(0.25).with_timeout(None).timeout is None
    assert LaneConfig.new(0, 1).timeout is None


def test_sdk_timeout_secs_is_the_same_setting():
    config = LaneConfig("x", priority=0, timeout_secs=5)
    assert config.timeout == 5.0 and config.timeout_secs == 5.0
    assert LaneConfig("x", timeout_secs=timedelta(seconds=1.5)).timeout == 1.5
    assert LaneConfig("x", timeout_secs=0.5) == LaneConfig.new(1, 10).with_lane_id(
        "x").with_timeout(0.5)


@pytest.mark.parametrize("bad", [0, -1, -0.5, float("nan"), "5", True, timedelta(seconds=-1)])
def test_invalid_timeouts_fail_at_configuration(bad):
    with pytest.raises(InvalidConfigError, match="timeout"):
        LaneConfig.new(0, 1).with_timeout(bad)
    with pytest.raises(InvalidConfigError, match="timeout"):
        LaneConfig("x", timeout_secs=bad)


def test_timeout_and_timeout_secs_together_are_refused():
    with pytest.raises(InvalidConfigError):
        LaneConfig("x", timeout=1, timeout_secs=1)


# ---- what happens at the deadline ---------------------------------------------


def test_hung_command_fails_with_a_timeout_error_and_event(timeout_manager, gates):
    manager = timeout_manager(LaneConfig.new(0, 1).with_timeout(TIMEOUT), grace=GRACE)
    stream = manager.subscribe()
    watch = manager.subscribe()
    hang = Hang(gates)
    future = manager.submit("slow", hang)
    error = future.exception(WAIT)
    assert isinstance(error, CommandTimeoutError)
    assert isinstance(error, LaneTimeoutError)
    assert isinstance(error, LaneError)
    assert isinstance(error, TimeoutError)
    assert "timed out" in str(error) and "200ms" in str(error)
    assert hang.threads[0].is_alive()  # it really is still hung

    events = stream.drain()
    mine = [e for e in events if (e.payload or {}).get("command_id") == future.command_id]
    assert [e.key for e in mine] == [
        "queue.command.submitted", "queue.command.started", "queue.command.timeout"]
    timeout_event = mine[-1]
    assert timeout_event.payload["lane_id"] == "slow"
    assert "timed out" in timeout_event.payload["error"]
    # Not before the deadline: the attempt ran at least the lane's timeout.
    started = mine[1]
    assert (timeout_event.time_ns - started.time_ns) / 1e9 >= TIMEOUT * 0.95

    # The slot is freed once the grace ends with the thread still inside.
    [abandoned] = wait_abandoned(watch, 1)
    assert abandoned.payload["command_id"] == future.command_id
    assert (abandoned.time_ns - timeout_event.time_ns) / 1e9 >= GRACE * 0.9
    status = manager.stats().lane("slow")
    assert status.timed_out == 1
    assert status.active == 0 and status.pending == 0
    assert status.completed == 0


def test_cancel_token_is_set_so_a_command_can_stop_cooperatively(timeout_manager):
    manager = timeout_manager(LaneConfig.new(0, 1).with_timeout(TIMEOUT))
    stream = manager.subscribe()
    seen = []
    returned = threading.Event()

    def cooperative():
        token = cancel_token()
        seen.append(token.cancelled)
        try:
            seen.append(token.wait(WAIT))  # returns as soon as the deadline sets it
        finally:
            returned.set()
        return "stopped early"

    future = manager.submit("slow", cooperative)
    assert isinstance(future.exception(WAIT), CommandTimeoutError)
    assert returned.wait(WAIT), "the command did not see its token"
    # The token's wait returned at the deadline; the interrupt, raised right
    # after it, may land before its result is stored.
    assert seen in ([False], [False, True])
    # The late return changes nothing: the outcome stays the timeout.
    assert isinstance(future.exception(0), CommandTimeoutError)
    assert "queue.command.completed" not in keys_for(stream.drain(), future.command_id)
    manager.drain(WAIT)
    stats = manager.stats()
    # It left within the grace: its worker goes on, nothing was abandoned.
    assert stats.abandoned_threads == 0 and stats.abandoned_total == 0
    assert stats.lane("slow").completed == 0
    assert stats.lane("slow").timed_out == 1


def test_a_hung_call_does_not_wedge_its_lane(timeout_manager, gates):
    # One worker, one slot: only a freed slot and a replacement worker let
    # the second command run while the first is still hung.
    manager = timeout_manager(LaneConfig.new(0, 1).with_timeout(TIMEOUT),
                              max_workers=1, grace=GRACE)
    hang = Hang(gates)
    hung = manager.submit("slow", hang)
    assert isinstance(hung.exception(WAIT), CommandTimeoutError)
    assert manager.submit("slow", lambda: "next").result(WAIT) == "next"
    assert hang.threads[0].is_alive()
    stats = manager.stats()
    assert stats.abandoned_threads == 1
    assert stats.abandoned_total == 1

    hang.gate.set()
    hang.threads[0].join(WAIT)
    assert not hang.threads[0].is_alive()
    stats = manager.stats()
    assert stats.abandoned_threads == 0
    assert stats.abandoned_total == 1
    assert manager.submit("slow", lambda: "again").result(WAIT) == "again"


def test_the_pool_keeps_its_size_after_timeouts(timeout_manager, gates, blocker):
    # A pool of 2; both workers get stuck in hung calls that time out. Two
    # commands must then still be able to run at the same time.
    manager = timeout_manager(
        LaneConfig.new(0, 2).with_timeout(TIMEOUT), max_workers=2,
        extra_lanes=[("free", LaneConfig.new(0, 2))], grace=GRACE)
    watch = manager.subscribe()
    hang = Hang(gates)
    hung = [manager.submit("slow", hang) for _ in range(2)]
    assert hang.wait_started(2)
    for future in hung:
        assert isinstance(future.exception(WAIT), CommandTimeoutError)
    wait_abandoned(watch, 2)
    assert manager.stats().abandoned_threads == 2

    hold = blocker()
    running = [manager.submit("free", hold) for _ in range(2)]
    assert hold.wait_entered(2), "the pool lost workers to the hung calls"
    hold.release()
    assert [f.result(WAIT) for f in running] == ["released", "released"]
    assert all(t.is_alive() for t in hang.threads)
    stats = manager.stats()
    assert stats.abandoned_threads == 2 and stats.abandoned_total == 2


def test_commands_that_finish_in_time_are_untouched(timeout_manager):
    manager = timeout_manager(LaneConfig.new(0, 2).with_timeout(5))
    futures = [manager.submit("slow", lambda i=i: i * 2) for i in range(20)]
    assert [f.result(WAIT) for f in futures] == [i * 2 for i in range(20)]
    assert manager.run("slow", lambda: "blocking") == "blocking"
    stats = manager.stats()
    assert stats.abandoned_total == 0
    assert stats.lane("slow").timed_out == 0
    assert stats.lane("slow").completed == 21


def test_blocking_run_in_a_timeout_lane_raises_the_timeout(timeout_manager, gates):
    manager = timeout_manager(LaneConfig.new(0, 1).with_timeout(TIMEOUT))
    started = time.monotonic()
    with pytest.raises(CommandTimeoutError):
        manager.run("slow", Hang(gates))
    assert time.monotonic() - started < WAIT


def test_sdk_timeout_secs_fails_a_blocking_submit(managers, gates):
    gate = gates.new()
    lane = managers.sdk([LaneConfig("x", priority=0, max_concurrency=1, timeout_secs=TIMEOUT)])
    lane.register_handler("hang", lambda payload: gate.wait(WAIT * 3))
    with pytest.raises(CommandTimeoutError):
        lane.submit("x", "hang", {"n": 1})
    # The lane is not wedged by the hung handler.
    assert lane.submit("x", "echo", {"a": 1}) == {"a": 1}
    assert lane.stats().lane("x").timed_out == 1
    assert lane.stats().abandoned_threads == 1


def test_sdk_lane_with_timeout_and_retries(managers):
    calls = []

    def flaky(payload):
        calls.append(payload)
        if len(calls) == 1:
            cancel_token().wait(WAIT)  # the first attempt hangs until its deadline
        return len(calls)

    lane = managers.sdk([LaneConfig(
        "x", priority=0, max_concurrency=1, timeout_secs=TIMEOUT,
        retry_policy=RetryPolicy.fixed(1, 0.01))])
    lane.register_handler("flaky", flaky)
    assert lane.submit("x", "flaky", "p") == 2
    assert calls == ["p", "p"]


# ---- timeouts and retries --------------------------------------------------------


def test_a_timed_out_attempt_is_retried_and_the_future_resolves_once(timeout_manager):
    config = LaneConfig.new(0, 2).with_timeout(TIMEOUT).with_retry_policy(
        RetryPolicy.fixed(2, 0.05))
    manager = timeout_manager(config)
    stream = manager.subscribe()
    attempts = []

    def slow_then_fast():
        attempts.append(threading.current_thread())
        if len(attempts) == 1:
            cancel_token().wait(WAIT)
            return "first (too late)"
        return "second"

    future = manager.submit("slow", slow_then_fast)
    resolutions = []
    future.add_done_callback(resolutions.append)
    assert future.result(WAIT) == "second"
    assert len(resolutions) == 1
    events = stream.drain()
    assert keys_for(events, future.command_id) == [
        "queue.command.submitted", "queue.command.started", "queue.command.retry",
        "queue.command.started", "queue.command.completed"]
    retry = next(e for e in events if e.key == "queue.command.retry")
    assert retry.payload["attempt"] == 1
    status = manager.stats().lane("slow")
    assert status.retried == 1 and status.timed_out == 0 and status.completed == 1


def test_a_retried_attempt_gets_a_fresh_cancel_token(timeout_manager):
    """A cooperative command would stop at once on every retry after a timeout."""
    config = LaneConfig.new(0, 1).with_timeout(TIMEOUT).with_retry_policy(
        RetryPolicy.fixed(1, 0.01))
    manager = timeout_manager(config)
    seen = []

    def command():
        token = cancel_token()
        seen.append(token.cancelled)
        if len(seen) == 1:
            token.wait(WAIT)
            return "too late"
        return "fresh" if not token.cancelled else "born cancelled"

    assert manager.submit("slow", command).result(WAIT) == "fresh"
    assert seen == [False, False]


def test_timeouts_exhausting_retries_dead_letter_then_emit_timeout(timeout_manager, gates):
    config = LaneConfig.new(0, 2).with_timeout(TIMEOUT).with_retry_policy(
        RetryPolicy.fixed(1, 0.01))
    manager = timeout_manager(config, dlq=10, grace=GRACE)
    stream = manager.subscribe()
    watch = manager.subscribe()
    hang = Hang(gates)
    future = manager.submit("slow", hang)
    error = future.exception(WAIT)
    assert isinstance(error, CommandTimeoutError)
    assert len(hang.threads) == 2  # both attempts ran
    wait_abandoned(watch, 2)  # and neither came back within the grace

    events = [e for e in stream.drain() if e.key != ABANDONED]
    assert keys_for(events, future.command_id) == [
        "queue.command.submitted", "queue.command.started", "queue.command.retry",
        "queue.command.started", "queue.command.dead_lettered", "queue.command.timeout"]
    assert "queue.command.failed" not in [e.key for e in events]

    [letter] = manager.dlq().list()
    assert letter.command_id == future.command_id
    assert letter.lane_id == "slow"
    assert letter.attempts == 2
    assert "timed out" in letter.error
    stats = manager.stats()
    assert stats.dead_letter_count == 1
    assert stats.abandoned_total == 2 and stats.abandoned_threads == 2
    status = stats.lane("slow")
    assert (status.timed_out, status.dead_lettered, status.retried) == (1, 1, 1)


# ---- the deadline racing the end of the command ----------------------------------


def test_commands_ending_around_their_deadline_resolve_exactly_once(timeout_manager):
    """Many commands whose run time straddles a 5 ms deadline: each must end
    in exactly one of result / timeout, with matching events and stats."""
    config = LaneConfig.new(0, 4).with_timeout(0.005)
    manager = timeout_manager(config, max_workers=4)
    stream = manager.subscribe()
    rng = random.Random(1234)
    durations = [rng.uniform(0.0, 0.010) for _ in range(200)]
    never = threading.Event()

    def spin(seconds, value):
        never.wait(seconds)  # the command's "work": blocks, without holding the GIL
        return value

    futures = [manager.submit("slow", spin, d, i) for i, d in enumerate(durations)]
    _, not_done = wait(futures, WAIT * 2)
    assert not not_done
    manager.drain(WAIT)
    completed = timed_out = 0
    for i, future in enumerate(futures):
        error = future.exception(0)
        if error is None:
            assert future.result(0) == i
            completed += 1
        else:
            assert isinstance(error, CommandTimeoutError), error
            timed_out += 1
    assert completed + timed_out == len(futures)
    print(f"{completed} completed, {timed_out} timed out")

    events = stream.drain()
    ends = {}
    for event in events:
        if event.key in ("queue.command.completed", "queue.command.timeout",
                         "queue.command.failed"):
            command_id = event.payload["command_id"]
            assert command_id not in ends, f"{command_id} ended twice"
            ends[command_id] = event.key
    for future in futures:
        expected = ("queue.command.completed" if future.exception(0) is None
                    else "queue.command.timeout")
        assert ends[future.command_id] == expected
    status = manager.stats().lane("slow")
    assert status.completed == completed
    assert status.timed_out == timed_out
    assert status.active == 0 and status.pending == 0
    # Every late command came back well within the grace: none abandoned.
    assert manager.stats().abandoned_total == 0


def test_drain_right_after_a_timeout_stops_cleanly(monkeypatch):
    """Found while testing (fixed since): drain joined a replacement worker
    that was listed but not started yet ('cannot join thread before it is
    started')."""
    # The replacement worker's start() is held (at most 1 s) until the drain
    # has run, which opens the window deterministically.
    real_start = threading.Thread.start
    armed, entered, gate = threading.Event(), threading.Event(), threading.Event()

    def held_start(thread):
        if armed.is_set() and thread.name.startswith("pylane-worker-"):
            entered.set()
            gate.wait(1.0)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", held_start)
    manager = QueueManagerBuilder(EventEmitter(10)).with_lane(
        "slow", LaneConfig.new(0, 1).with_timeout(0.05, grace=0.05), 0).build()
    manager.start()
    armed.set()
    hang = threading.Event()
    try:
        future = manager.submit("slow", hang.wait, WAIT)
        assert isinstance(future.exception(WAIT), CommandTimeoutError)
        assert entered.wait(WAIT), "no replacement worker was started"
        manager.shutdown()
        manager.drain(WAIT)
    finally:
        gate.set()
        hang.set()


# ---- timeouts with storage ----------------------------------------------------------------

_GATES: dict[str, threading.Event] = {}


class StoredHang(Command):
    """A storable command that blocks on a gate named in its payload."""

    command_type = "stored_hang"

    def __init__(self, gate):
        self.gate = gate

    def execute(self):
        _GATES[self.gate].wait(WAIT * 3)
        return "late"


def test_a_timed_out_stored_command_leaves_storage_and_is_dead_lettered(managers, tmp_path):
    name = f"gate-{id(tmp_path)}"
    _GATES[name] = threading.Event()
    storage = LocalStorage(tmp_path)
    config = LaneConfig.new(0, 1).with_timeout(TIMEOUT, grace=GRACE).with_retry_policy(
        RetryPolicy.fixed(1, 0.01))
    manager = managers.build(QueueManagerBuilder(EventEmitter(100)).with_lane(
        "slow", config, 0).with_storage(storage))
    try:
        future = manager.submit("slow", StoredHang(name))
        assert isinstance(future.exception(WAIT), CommandTimeoutError)
        assert storage.count_commands() == 0
        [letter] = storage.load_dead_letters()
        assert letter.command_id == future.command_id
        assert letter.attempts == 2 and "timed out" in letter.error
    finally:
        _GATES.pop(name).set()
