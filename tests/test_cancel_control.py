"""Issue 3, items 6 and 7: cancellation, lane control and graceful shutdown.

``future.cancel()`` on a pending command removes it from its lane (and from
storage), emits ``queue.command.cancelled`` and returns True; commands can be
cancelled by id; a running command is cancelled cooperatively through its
token; ``pause_lane`` / ``resume_lane``. ``shutdown()`` stops intake
(``queue.shutdown.started``); ``drain(timeout)`` waits for pending and
active work and, on timeout, raises an error that says what is left.
"""

from __future__ import annotations

import threading
import time

import pytest

from conftest import WAIT, Recorder
from pylane import (
    Command,
    EventEmitter,
    LaneConfig,
    LaneError,
    LaneNotFoundError,
    LaneTimeoutError,
    QueueManagerBuilder,
    RetryPolicy,
    ShutdownInProgressError,
)
from pylane.cancel import CancelToken, CommandCancelledError, cancel_token
from pylane.durable.storage import LocalStorage
from pylane.execution import CommandTimeoutError


class Value(Command):
    command_type = "value"

    def __init__(self, value):
        self.value = value

    def execute(self):
        return self.value


def control_manager(managers, *, storage=None, policy=None, max_concurrency=1, dlq=None):
    config = LaneConfig.new(0, max_concurrency)
    if policy is not None:
        config = config.with_retry_policy(policy)
    builder = (QueueManagerBuilder(EventEmitter(1000))
               .with_lane("work", config, 0)
               .with_lane("other", LaneConfig.new(0, 1), 1))
    if storage is not None:
        builder.with_storage(storage)
    if dlq is not None:
        builder.with_dlq(dlq)
    return managers.build(builder)


class Cooperative:
    """Runs until its token is set, then stops the way the test asks."""

    def __init__(self, stop="raise"):
        self.stop = stop
        self.entered = threading.Event()
        self.calls = 0
        self.reasons = []

    def __call__(self):
        self.calls += 1
        token = cancel_token()
        self.entered.set()
        if not token.wait(WAIT):
            return "never cancelled"
        self.reasons.append(token.reason)
        if self.stop == "raise":
            token.raise_if_cancelled()
        return "stopped"


# ---- cancelling pending commands ----------------------------------------------------------


def test_cancel_removes_a_pending_command(managers, blocker):
    manager = control_manager(managers)
    stream = manager.subscribe()
    hold = blocker()
    running = manager.submit("work", hold)
    assert hold.wait_entered()
    ran = Recorder()
    victim = manager.submit("work", ran.recording("victim"))
    survivor = manager.submit("work", ran.recording("survivor"))
    assert manager.stats().lane("work").pending == 2

    assert victim.cancel() is True
    assert victim.cancelled() and victim.done()
    status = manager.stats().lane("work")
    assert (status.pending, status.cancelled) == (1, 1)
    cancelled = [e.payload for e in stream.drain() if e.key == "queue.command.cancelled"]
    assert cancelled == [{"lane_id": "work", "command_id": victim.command_id}]

    hold.release()
    assert running.result(WAIT) == "released"
    assert survivor.result(WAIT) == "survivor"
    manager.drain(WAIT)
    assert ran.items == ["survivor"]
    # Cancelling again changes nothing and emits nothing.
    assert victim.cancel() is True
    assert [e for e in stream.drain() if e.key == "queue.command.cancelled"] == []
    assert manager.stats().lane("work").cancelled == 1


def test_cancel_removes_the_command_from_storage(managers, tmp_path, blocker):
    storage = LocalStorage(tmp_path)
    manager = control_manager(managers, storage=storage)
    manager.pause_lane("work")
    keep = manager.submit("work", Value("keep"))
    drop = manager.submit("work", Value("drop"))
    assert storage.count_commands() == 2
    assert drop.cancel()
    assert [r.id for r in storage.load_commands()] == [keep.command_id]
    manager.resume_lane("work")
    assert keep.result(WAIT) == "keep"
    assert storage.count_commands() == 0


def test_cancel_by_command_id(managers):
    manager = control_manager(managers)
    manager.pause_lane("work")
    stream = manager.subscribe_filtered(lambda e: e.key == "queue.command.cancelled")
    future = manager.submit("work", lambda: "never")
    assert manager.cancel(future.command_id) is True
    assert future.cancelled()
    assert stream.try_recv().payload["command_id"] == future.command_id
    assert manager.cancel(future.command_id) is False  # already gone
    assert manager.cancel("no-such-id") is False
    assert manager.cancel("") is False
    manager.resume_lane("work")
    done = manager.submit("work", lambda: 1)
    assert done.result(WAIT) == 1
    assert manager.cancel(done.command_id) is False  # finished commands cannot be cancelled


def test_cancel_a_completed_future_returns_false(managers):
    manager = control_manager(managers)
    future = manager.submit("work", lambda: 3)
    assert future.result(WAIT) == 3
    assert future.cancel() is False
    assert future.result(0) == 3


def test_cancelling_many_pending_commands_leaves_the_rest_in_order(managers, blocker):
    manager = control_manager(managers)
    hold = blocker()
    running = manager.submit("work", hold)
    assert hold.wait_entered()
    ran = Recorder()
    futures = [manager.submit("work", ran.recording(n)) for n in range(30)]
    for n in range(0, 30, 3):
        assert futures[n].cancel()
    hold.release()
    running.result(WAIT)
    manager.drain(WAIT)
    assert ran.items == [n for n in range(30) if n % 3]
    status = manager.stats().lane("work")
    assert (status.cancelled, status.completed) == (10, 21)


# ---- cancelling running commands ------------------------------------------------------------


def test_a_running_command_is_cancelled_through_its_token(managers):
    manager = control_manager(managers)
    stream = manager.subscribe()
    command = Cooperative(stop="raise")
    future = manager.submit("work", command)
    assert command.entered.wait(WAIT)
    assert future.cancel() is False  # it is running: it decides
    error = future.exception(WAIT)
    assert isinstance(error, CommandCancelledError) and isinstance(error, LaneError)
    assert command.reasons == ["cancelled"]
    keys = [e.key for e in stream.drain()
            if (e.payload or {}).get("command_id") == future.command_id]
    # It stopped because it was cancelled: the end is reported as such.
    assert keys[-1] == "queue.command.cancelled"


def test_a_running_command_can_also_just_return(managers):
    manager = control_manager(managers)
    command = Cooperative(stop="return")
    future = manager.submit("work", command)
    assert command.entered.wait(WAIT)
    assert manager.cancel(future.command_id) is False
    assert future.result(WAIT) == "stopped"


def test_cancel_token_outside_a_command_is_inert():
    token = cancel_token()
    assert isinstance(token, CancelToken)
    assert not token.cancelled
    token.raise_if_cancelled()
    assert token.wait(0) is False
    token.cancel("by hand")
    token.cancel("second reason ignored")
    assert token.cancelled and token.reason == "by hand"
    with pytest.raises(CommandCancelledError, match="by hand"):
        token.raise_if_cancelled()


def test_each_command_has_its_own_token(managers, blocker):
    manager = control_manager(managers, max_concurrency=2)
    first, second = Cooperative(stop="return"), Cooperative(stop="return")
    a = manager.submit("work", first)
    b = manager.submit("work", second)
    assert first.entered.wait(WAIT) and second.entered.wait(WAIT)
    a.cancel()
    assert a.result(WAIT) == "stopped"
    assert not b.done()
    b.cancel()
    assert b.result(WAIT) == "stopped"


def test_a_cancelled_running_command_is_not_retried(managers):
    manager = control_manager(managers, policy=RetryPolicy.fixed(2, 0.01), dlq=10)
    stream = manager.subscribe()
    command = Cooperative(stop="raise")
    future = manager.submit("work", command)
    assert command.entered.wait(WAIT)
    future.cancel()
    future.exception(WAIT)
    manager.drain(WAIT)
    keys = [e.key for e in stream.drain()]
    assert command.calls == 1
    assert "queue.command.retry" not in keys
    assert manager.dlq().list() == []


# ---- pause and resume -------------------------------------------------------------------------


def test_a_paused_lane_starts_nothing_until_resumed(managers):
    manager = control_manager(managers, max_concurrency=3)
    ran = Recorder()
    manager.pause_lane("work")
    futures = [manager.submit("work", ran.recording(n)) for n in range(3)]
    # Another lane keeps running meanwhile.
    assert manager.submit("other", lambda: "other").result(WAIT) == "other"
    status = manager.stats().lane("work")
    assert status.paused and (status.pending, status.active) == (3, 0)
    assert ran.items == []
    manager.resume_lane("work")
    assert [f.result(WAIT) for f in futures] == [0, 1, 2]
    assert not manager.stats().lane("work").paused


def test_pausing_lets_running_commands_finish(managers, blocker):
    manager = control_manager(managers, max_concurrency=2)
    hold = blocker()
    running = manager.submit("work", hold)
    assert hold.wait_entered()
    manager.pause_lane("work")
    queued = manager.submit("work", lambda: "queued")
    hold.release()
    assert running.result(WAIT) == "released"
    assert manager.submit("other", lambda: 0).result(WAIT) == 0
    assert not queued.done()
    assert manager.stats().lane("work").pending == 1
    manager.resume_lane("work")
    assert queued.result(WAIT) == "queued"


def test_cancel_while_paused(managers):
    manager = control_manager(managers)
    manager.pause_lane("work")
    future = manager.submit("work", lambda: 1)
    assert future.cancel()
    manager.resume_lane("work")
    manager.drain(WAIT)
    assert manager.stats().lane("work").completed == 0


def test_pause_and_resume_are_idempotent_and_check_the_lane(managers):
    manager = control_manager(managers)
    manager.pause_lane("work")
    manager.pause_lane("work")
    manager.resume_lane("work")
    manager.resume_lane("work")
    assert manager.submit("work", lambda: 1).result(WAIT) == 1
    with pytest.raises(LaneNotFoundError):
        manager.pause_lane("nope")
    with pytest.raises(LaneNotFoundError):
        manager.resume_lane("nope")


def test_sdk_pause_resume_and_cancel(managers):
    lane = managers.sdk([LaneConfig("x", priority=0, max_concurrency=1)])
    lane.pause_lane("x")
    future = lane.submit_async("x", "t", {"v": 1})
    assert not future.done()
    assert lane.manager.cancel(future.command_id)
    kept = lane.submit_async("x", "t", {"v": 2})
    lane.resume_lane("x")
    assert kept.result(WAIT) == {"v": 2}


# ---- shutdown and drain ----------------------------------------------------------------------


def test_shutdown_stops_intake_and_emits_started_once(managers, tmp_path):
    storage = LocalStorage(tmp_path)
    manager = control_manager(managers, storage=storage)
    stream = manager.subscribe()
    running = manager.submit("work", Value("running"))
    pending = manager.submit("work", Value("pending"))
    manager.shutdown()
    manager.shutdown()
    assert manager.is_shutting_down()
    with pytest.raises(ShutdownInProgressError):
        manager.submit("work", Value("late"))
    with pytest.raises(ShutdownInProgressError):
        manager.submit("other", Value("late too"))
    manager.drain(WAIT)
    assert running.result(0) == "running" and pending.result(0) == "pending"
    keys = [e.key for e in stream.drain()]
    assert keys.count("queue.shutdown.started") == 1
    assert keys[-1] == "queue.shutdown.complete"
    assert keys.index("queue.shutdown.started") < keys.index("queue.shutdown.complete")
    assert storage.count_commands() == 0


def test_drain_timeout_says_what_is_left(managers, blocker):
    manager = control_manager(managers)
    hold = blocker()
    running = manager.submit("work", hold)
    assert hold.wait_entered()
    queued = [manager.submit("work", lambda: None) for _ in range(2)]
    manager.shutdown()
    started = time.monotonic()
    with pytest.raises(LaneTimeoutError) as caught:
        manager.drain(0.2)
    elapsed = time.monotonic() - started
    error = caught.value
    assert isinstance(error, LaneError)
    assert not isinstance(error, CommandTimeoutError)  # not "command timed out" (X6)
    message = str(error)
    assert "2 pending" in message and "1 active" in message and "work" in message
    assert "200ms" in message
    assert 0.19 <= elapsed < WAIT
    hold.release()
    manager.drain(WAIT)
    assert running.result(0) == "released"
    assert all(f.done() for f in queued)


def test_drain_with_nothing_to_do_returns_at_once(managers):
    manager = control_manager(managers)
    started = time.monotonic()
    manager.drain(WAIT)
    manager.drain(0)
    assert time.monotonic() - started < WAIT / 2


def test_drain_returns_when_the_last_command_ends(managers, blocker):
    manager = control_manager(managers)
    hold = blocker()
    future = manager.submit("work", hold)
    assert hold.wait_entered()
    returned = threading.Event()
    outcome = []

    def drain():
        try:
            manager.drain(WAIT)
        except Exception as error:  # reported below
            outcome.append(error)
        returned.set()

    drainer = threading.Thread(target=drain)
    drainer.start()
    assert not returned.wait(0.1)  # waiting, the command still runs
    hold.release()
    assert returned.wait(WAIT)
    drainer.join(WAIT)
    assert outcome == [] and future.done()


def test_a_negative_drain_timeout_is_refused(managers):
    manager = control_manager(managers)
    with pytest.raises(LaneError, match="drain timeout"):
        manager.drain(-1)
