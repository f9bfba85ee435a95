"""Errors: one LaneError hierarchy, bad input fails only its own call with a
message naming the problem, failing commands fail only their own future."""

from __future__ import annotations

import inspect

import pytest

import pylane
from conftest import WAIT
from pylane import (
    EventEmitter,
    InvalidConfigError,
    InvalidPayloadError,
    Lane,
    LaneConfig,
    LaneError,
    LaneNotFoundError,
    LaneTimeoutError,
    NotStartedError,
    QueueManagerBuilder,
    ShutdownInProgressError,
)

# ---- the hierarchy -------------------------------------------------------------


def test_lane_error_is_a_runtime_error():
    assert issubclass(LaneError, RuntimeError)


def test_every_exported_error_subclasses_lane_error():
    errors = [getattr(pylane, name) for name in pylane.__all__
              if inspect.isclass(getattr(pylane, name))
              and issubclass(getattr(pylane, name), BaseException)]
    assert len(errors) >= 7
    for error in errors:
        assert issubclass(error, LaneError), error


@pytest.mark.parametrize(("error", "also"), [
    (LaneNotFoundError, KeyError),
    (InvalidConfigError, ValueError),
    (InvalidPayloadError, ValueError),
    (LaneTimeoutError, TimeoutError),
    (ShutdownInProgressError, LaneError),
    (NotStartedError, LaneError),
])
def test_errors_also_subclass_the_matching_builtin(error, also):
    assert issubclass(error, also)


# ---- unknown lane ----------------------------------------------------------------


def test_unknown_lane_raises_naming_the_lane_and_changes_nothing(managers):
    manager = managers.default()
    before = manager.stats()
    stream = manager.subscribe()
    with pytest.raises(LaneNotFoundError, match="no-such-lane") as caught:
        manager.submit("no-such-lane", lambda: None)
    assert caught.value.lane_id == "no-such-lane"
    assert "'" not in str(caught.value)[:5]  # not KeyError's quoted repr
    after = manager.stats()
    assert [(s.lane_id, s.submitted, s.pending) for s in after.lanes] == [
        (s.lane_id, s.submitted, s.pending) for s in before.lanes]
    assert stream.try_recv() is None
    assert manager.submit("query", lambda: "still fine").result(WAIT) == "still fine"


def test_unknown_lane_in_run_pause_and_resume(managers):
    manager = managers.default()
    for call in (lambda: manager.run("ghost", lambda: None),
                 lambda: manager.pause_lane("ghost"),
                 lambda: manager.resume_lane("ghost")):
        with pytest.raises(LaneNotFoundError, match="ghost"):
            call()


def test_unknown_lane_in_the_sdk(managers):
    lane = managers.sdk()
    with pytest.raises(LaneNotFoundError, match="nowhere"):
        lane.submit("nowhere", "cmd", {})
    assert lane.stats().total_pending == 0


# ---- lifecycle -----------------------------------------------------------------


def test_submit_after_shutdown_is_refused(managers):
    manager = managers.default()
    manager.shutdown()
    with pytest.raises(ShutdownInProgressError):
        manager.submit("query", lambda: None)
    with pytest.raises(ShutdownInProgressError):
        manager.run("query", lambda: None)
    assert manager.stats().lane("query").submitted == 0


def test_sdk_submit_after_shutdown_is_refused(managers):
    lane = managers.sdk()
    lane.shutdown()
    with pytest.raises(ShutdownInProgressError):
        lane.submit("query", "late", {})


def test_submit_after_drain_is_refused_and_start_cannot_restart(managers):
    manager = managers.default()
    manager.shutdown()
    manager.drain(WAIT)
    with pytest.raises(ShutdownInProgressError):
        manager.submit("query", lambda: None)
    with pytest.raises(ShutdownInProgressError):
        manager.start()


# ---- invalid configuration ------------------------------------------------------


@pytest.mark.parametrize(("make", "words"), [
    (lambda: LaneConfig.new(0, 0), ["max_concurrency", "0"]),
    (lambda: LaneConfig("x", max_concurrency=0), ["max_concurrency"]),
    (lambda: LaneConfig.new(3, 2), ["min_concurrency", "3", "max_concurrency", "2"]),
    (lambda: LaneConfig("x", min_concurrency=5, max_concurrency=4), ["min_concurrency", "'x'"]),
    (lambda: LaneConfig.new(-1, 2), ["min_concurrency"]),
    (lambda: LaneConfig.new(1.5, 2), ["min_concurrency", "integer"]),
    (lambda: LaneConfig.new(1, "4"), ["max_concurrency", "integer"]),
    (lambda: LaneConfig("x", priority=-1), ["priority", "-1"]),
    (lambda: LaneConfig("x", priority=1.5), ["priority", "float"]),
    (lambda: LaneConfig("x", priority="1"), ["priority", "str"]),
    (lambda: LaneConfig("x", priority=True), ["priority", "bool"]),
    (lambda: LaneConfig("x", priority=2**31), ["priority"]),
    (lambda: LaneConfig("", priority=0), ["lane id", "empty"]),
    (lambda: LaneConfig(5, priority=0), ["lane id", "string"]),
    (lambda: LaneConfig.new(1, 4).with_priority(-3), ["priority"]),
], ids=["max-0", "sdk-max-0", "min-gt-max", "sdk-min-gt-max", "negative-min", "float-min",
        "str-max", "negative-priority", "float-priority", "str-priority", "bool-priority",
        "huge-priority", "empty-id", "int-id", "chained-negative-priority"])
def test_invalid_lane_config_names_the_problem(make, words):
    with pytest.raises(InvalidConfigError) as caught:
        make()
    message = str(caught.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


@pytest.mark.parametrize(("priority", "type_name"), [(1.5, "float"), ("1", "str"),
                                                     (True, "bool"), (-1, "-1")])
def test_builder_refuses_bad_priorities(priority, type_name):
    builder = QueueManagerBuilder()
    with pytest.raises(InvalidConfigError, match="priority") as caught:
        builder.with_lane("lane-a", LaneConfig.new(1, 2), priority)
    assert type_name in str(caught.value)
    assert "lane-a" in str(caught.value)


def test_builder_refuses_an_empty_lane_id():
    with pytest.raises(InvalidConfigError, match="lane id must not be empty"):
        QueueManagerBuilder().with_lane("", LaneConfig.new(1, 2), 0)


def test_builder_refuses_a_duplicate_lane_id():
    builder = QueueManagerBuilder().with_lane("twice", LaneConfig.new(1, 2), 0)
    with pytest.raises(InvalidConfigError, match="duplicate lane id 'twice'"):
        builder.with_lane("twice", LaneConfig.new(1, 3), 1)


def test_builder_refuses_a_default_lane_added_again():
    builder = QueueManagerBuilder().with_default_lanes()
    with pytest.raises(InvalidConfigError, match="'query'"):
        builder.with_lane("query", LaneConfig.new(1, 2), 0)


def test_with_lanes_refuses_a_duplicate_lane_id():
    with pytest.raises(InvalidConfigError, match="duplicate lane id 'same'"):
        Lane.with_lanes([
            LaneConfig("same", priority=0, min_concurrency=1, max_concurrency=2),
            LaneConfig("same", priority=1, min_concurrency=1, max_concurrency=2),
        ])


def test_with_lanes_refuses_a_config_without_id_and_non_configs():
    with pytest.raises(InvalidConfigError, match="lane_id"):
        Lane.with_lanes([LaneConfig.new(1, 2)])
    with pytest.raises(InvalidConfigError, match="LaneConfig"):
        Lane.with_lanes([{"lane_id": "dict", "priority": 0}])


def test_builder_refuses_a_config_that_is_not_a_lane_config():
    with pytest.raises(InvalidConfigError, match="LaneConfig"):
        QueueManagerBuilder().with_lane("x", (1, 2), 0)


def test_max_workers_below_the_reservations_is_refused():
    # The six default lanes reserve one worker each.
    builder = QueueManagerBuilder(EventEmitter(10)).with_default_lanes().with_max_workers(5)
    with pytest.raises(InvalidConfigError) as caught:
        builder.build()
    message = str(caught.value)
    assert "min_concurrency" in message and "5" in message


def test_max_workers_below_the_reservations_is_refused_in_the_sdk():
    with pytest.raises(InvalidConfigError, match="min_concurrency"):
        Lane.with_lanes([LaneConfig("a", min_concurrency=2, max_concurrency=2),
                         LaneConfig("b", min_concurrency=2, max_concurrency=2)],
                        max_workers=3)


@pytest.mark.parametrize("workers", [0, -1, 2.0, True, "4"])
def test_max_workers_must_be_a_positive_integer(workers):
    with pytest.raises(InvalidConfigError, match="max_workers"):
        QueueManagerBuilder().with_max_workers(workers)


def test_build_without_lanes_is_refused():
    with pytest.raises(InvalidConfigError, match="no lanes"):
        QueueManagerBuilder().build()


@pytest.mark.parametrize("timeout", [-1, float("nan"), "5"])
def test_drain_refuses_a_bad_timeout(managers, timeout):
    manager = managers.default()
    with pytest.raises(InvalidConfigError, match="drain timeout"):
        manager.drain(timeout)


# ---- failing commands --------------------------------------------------------------


class Exploded(Exception):
    pass


def test_a_raising_handler_fails_only_its_own_future(managers, blocker):
    manager = managers.lanes(("work", 0, 0, 4))
    stream = manager.subscribe_filtered(lambda e: e.key == "queue.command.failed")
    hold = blocker()
    neighbours = [manager.submit("work", hold) for _ in range(3)]
    assert hold.wait_entered(3)

    def explode():
        raise Exploded("handler exploded: id 42")

    doomed = manager.submit("work", explode)
    error = doomed.exception(WAIT)
    assert isinstance(error, Exploded)
    assert not any(f.done() for f in neighbours)
    hold.release()
    assert [f.result(WAIT) for f in neighbours] == ["released"] * 3
    after = manager.submit("work", lambda: "after")
    assert after.result(WAIT) == "after"

    event = stream.recv(WAIT)
    assert event is not None
    assert event.payload["command_id"] == doomed.command_id
    assert "handler exploded: id 42" in event.payload["error"]
    status = manager.stats().lane("work")
    assert (status.completed, status.failed) == (4, 1)


def test_a_raising_sdk_handler_fails_only_its_submit(managers):
    lane = managers.sdk()
    lane.register_handler("explode", lambda payload: (_ for _ in ()).throw(Exploded("sdk")))
    failures = lane.subscribe_filtered(["queue.command.failed"])
    with pytest.raises(Exploded, match="sdk"):
        lane.submit("skill", "explode", {})
    assert lane.submit("skill", "echo", {"ok": True}) == {"ok": True}
    event = failures.recv(timeout_ms=WAIT * 1000)
    assert event is not None and "sdk" in event.payload["error"]


def test_base_exception_from_a_command_fails_its_future_not_the_worker(managers):
    manager = managers.lanes(("work", 0, 0, 1), max_workers=1)

    def exits():
        raise SystemExit(3)

    future = manager.submit("work", exits)
    assert isinstance(future.exception(WAIT), SystemExit)
    # The only worker survived.
    assert manager.submit("work", lambda: "alive").result(WAIT) == "alive"


# ---- drain timeout -----------------------------------------------------------------


def test_drain_timeout_says_what_is_left(managers, blocker):
    manager = managers.lanes(("stuck", 0, 0, 1), ("idle", 1, 0, 1))
    hold = blocker()
    manager.submit("stuck", hold)
    manager.submit("stuck", lambda: None)
    manager.submit("stuck", lambda: None)
    assert hold.wait_entered(1)
    with pytest.raises(LaneTimeoutError) as caught:
        manager.drain(0.05)
    message = str(caught.value)
    assert "2 pending" in message
    assert "1 active" in message
    assert "stuck" in message
    assert "idle" not in message
    hold.release()
    manager.drain(WAIT)  # and it drains once released


def test_drain_with_work_before_start_raises_not_started(managers):
    manager = managers.default(start=False)
    manager.submit("query", lambda: None)
    with pytest.raises(NotStartedError):
        manager.drain(0.01)


class UnlabelledCommand(pylane.Command):
    """A command whose command_type itself raises."""

    @property
    def command_type(self):
        raise AttributeError("label not set")

    def execute(self):
        return "executed"


def test_a_raising_command_type_never_leaves_a_phantom_command(managers):
    manager = managers.lanes(("work", 0, 0, 1))
    manager.subscribe()
    try:
        future = manager.submit("work", UnlabelledCommand())
    except Exception:
        manager.drain(WAIT)
        status = manager.stats().lane("work")
        assert status.submitted == 0, (
            f"submit raised, yet the command was queued and run: {status!r}, "
            f"completed={status.completed} failed={status.failed}")
    else:
        future.exception(WAIT)  # either outcome is fine, as long as it has a future
    assert manager.submit("work", lambda: "fine").result(WAIT) == "fine"
