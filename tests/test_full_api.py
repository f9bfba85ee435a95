"""The full API, the seed's Rust API in Python form: builder, manager,
Command subclasses and callables, futures, run(), queue(), LaneConfig."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

import pytest

from conftest import WAIT
from pylane import (
    Command,
    CommandQueue,
    EventEmitter,
    InvalidArgumentError,
    LaneConfig,
    NotStartedError,
    QueueManager,
    QueueManagerBuilder,
)
from pylane.config import SDK_DEFAULT_MAX_CONCURRENCY


class FetchCommand(Command):
    """The seed's example command, with command_type as a property."""

    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def command_type(self) -> str:
        return "fetch"

    def execute(self):
        return {"url": self.url}


class AttributeTypedCommand(Command):
    command_type = "attr_typed"

    def __init__(self, value):
        self.value = value

    def execute(self):
        return self.value * 2


class MethodTypedCommand(Command):
    def command_type(self):
        return "method_typed"

    def execute(self):
        return "ran"


class UntypedCommand(Command):
    def execute(self):
        return None


class CommandFailure(Exception):
    pass


class FailingCommand(Command):
    command_type = "failing"

    def execute(self):
        raise CommandFailure("command broke")


def test_builder_with_default_lanes_builds_and_runs_the_seed_example(managers):
    emitter = EventEmitter(100)
    manager = QueueManagerBuilder(emitter).with_default_lanes().build()
    managers.track(manager)
    assert isinstance(manager, QueueManager)
    manager.start()

    future = manager.submit("query", FetchCommand("https://example.test/"))
    assert future.result(WAIT) == {"url": "https://example.test/"}

    manager.shutdown()
    manager.drain(5)
    assert [s.lane_id for s in manager.stats().lanes] == [
        "system", "control", "query", "session", "skill", "prompt"]


def test_with_lane_sets_id_concurrency_and_priority(managers):
    manager = managers.build(
        QueueManagerBuilder(EventEmitter(100))
        .with_lane("high", LaneConfig.new(1, 4), 0)
        .with_lane("low", LaneConfig.new(1, 2), 1)
    )
    got = [(s.lane_id, s.priority, s.min_concurrency, s.max_concurrency)
           for s in manager.stats().lanes]
    assert got == [("high", 0, 1, 4), ("low", 1, 1, 2)]
    assert manager.submit("low", lambda: "low ran").result(WAIT) == "low ran"


def test_with_lane_priority_defaults_to_the_configs_priority(managers):
    manager = managers.build(
        QueueManagerBuilder().with_lane("x", LaneConfig.new(0, 2).with_priority(7))
    )
    assert manager.stats().lane("x").priority == 7


@pytest.mark.parametrize(
    ("command", "expected_type", "expected_result"),
    [
        (FetchCommand("u"), "fetch", {"url": "u"}),
        (AttributeTypedCommand(21), "attr_typed", 42),
        (MethodTypedCommand(), "method_typed", "ran"),
        (UntypedCommand(), "UntypedCommand", None),
    ],
    ids=["property", "class-attribute", "method", "default-class-name"],
)
def test_command_subclasses_run_and_report_their_type(managers, command, expected_type,
                                                      expected_result):
    manager = managers.default()
    stream = manager.subscribe_filtered(lambda e: e.key == "queue.command.started")
    assert manager.submit("query", command).result(WAIT) == expected_result
    started = stream.recv(WAIT)
    assert started is not None
    assert started.payload["command_type"] == expected_type


def test_command_without_execute_cannot_be_instantiated():
    class Incomplete(Command):
        command_type = "incomplete"

    with pytest.raises(TypeError):
        Incomplete()


def test_plain_callable_with_args_and_kwargs(managers):
    manager = managers.default()

    def combine(a, b, *, scale=1, offset=0):
        return (a + b) * scale + offset

    assert manager.submit("query", combine, 2, 3).result(WAIT) == 5
    assert manager.submit("query", combine, 2, 3, scale=10, offset=1).result(WAIT) == 51
    assert manager.run("query", combine, 1, 1, scale=3) == 6


def test_submit_many_takes_commands_and_argument_tuples_in_order(managers):
    manager = managers.default()
    futures = manager.submit_many("query", [FetchCommand("u"), (pow, 2, 10), (lambda: 7,)])
    assert [type(future) for future in futures] == [type(futures[0])] * 3
    assert [future.result(WAIT) for future in futures][1:] == [1024, 7]
    with pytest.raises(InvalidArgumentError):
        manager.submit_many("query", [()])
    ids = manager.submit_many("query", [(pow, 2, 3)], results=False)
    assert isinstance(ids[0], str) and ids[0]


def test_arguments_with_a_command_object_are_refused(managers):
    manager = managers.default()
    with pytest.raises(TypeError):
        manager.submit("query", FetchCommand("u"), 1)
    assert manager.stats().lane("query").submitted == 0


def test_non_callable_is_refused(managers):
    manager = managers.default()
    with pytest.raises(TypeError):
        manager.submit("query", 42)
    assert manager.stats().total_pending == 0


def test_submit_returns_a_concurrent_future(managers):
    manager = managers.default()
    future = manager.submit("query", lambda: 1)
    assert isinstance(future, Future)
    assert future.result(WAIT) == 1
    assert future.lane_id == "query"
    assert isinstance(future.command_id, str) and future.command_id


def test_future_works_with_asyncio_wrap_future(managers):
    manager = managers.default()

    async def main():
        first = asyncio.wrap_future(manager.submit("query", FetchCommand("a")))
        second = asyncio.wrap_future(manager.submit("prompt", lambda x: x + 1, 41))
        failing = asyncio.wrap_future(manager.submit("skill", FailingCommand()))
        results = await asyncio.wait_for(
            asyncio.gather(first, second, failing, return_exceptions=True), WAIT)
        return results

    first, second, failing = asyncio.run(main())
    assert first == {"url": "a"}
    assert second == 42
    assert isinstance(failing, CommandFailure)


def test_exception_propagates_through_the_future_with_its_type(managers):
    manager = managers.default()
    future = manager.submit("query", FailingCommand())
    error = future.exception(WAIT)
    assert isinstance(error, CommandFailure)
    assert str(error) == "command broke"
    with pytest.raises(CommandFailure, match="command broke"):
        future.result()


def test_run_blocks_and_returns_or_raises(managers):
    manager = managers.default()
    assert manager.run("query", FetchCommand("r")) == {"url": "r"}
    with pytest.raises(CommandFailure):
        manager.run("query", FailingCommand())
    query = manager.stats().lane("query")
    assert (query.submitted, query.completed, query.failed) == (2, 1, 1)


def test_run_before_start_raises_not_started(managers):
    manager = managers.default(start=False)
    with pytest.raises(NotStartedError):
        manager.run("query", lambda: 1)


def test_submit_before_start_queues_and_runs_once_started(managers):
    manager = managers.default(start=False)
    future = manager.submit("query", lambda: "later")
    assert manager.stats().total_pending == 1
    assert not future.done()
    manager.start()
    assert future.result(WAIT) == "later"


def test_run_waits_its_turn_when_the_lane_is_full(managers, blocker):
    hold = blocker()
    manager = managers.lanes(("solo", 0, 0, 1))
    held = manager.submit("solo", hold)
    assert hold.wait_entered(1)
    submitted = manager.subscribe_filtered(lambda e: e.key == "queue.command.submitted")
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("v", manager.run("solo", max, 3, 9)))
    runner.start()
    assert submitted.recv(WAIT) is not None  # run() has queued its command
    assert manager.stats().lane("solo").pending == 1, "run() did not wait for the only slot"
    assert result == {}
    hold.release()
    runner.join(WAIT)
    assert result == {"v": 9}
    assert held.result(WAIT) == "released"


def test_queue_returns_the_same_command_queue(managers):
    manager = managers.default()
    queue = manager.queue()
    assert isinstance(queue, CommandQueue)
    assert manager.queue() is queue
    assert queue.lane_ids() == ["system", "control", "query", "session", "skill", "prompt"]
    # Work submitted through the queue shows in the manager's stats.
    assert queue.submit("skill", lambda: 5).result(WAIT) == 5
    assert manager.stats().lane("skill").completed == 1


def test_manager_is_a_context_manager(managers):
    manager = managers.track(QueueManagerBuilder().with_default_lanes().build())
    with manager as running:
        assert running is manager
        future = manager.submit("query", lambda: "ctx")
    assert future.result(0) == "ctx"  # __exit__ drained
    assert manager.is_shutting_down()


def test_lane_config_new_default_and_keyword_forms_are_one_class():
    by_new = LaneConfig.new(1, 4)
    by_default = LaneConfig.default()
    by_keywords = LaneConfig("high", priority=0, min_concurrency=1, max_concurrency=4)
    assert type(by_new) is type(by_default) is type(by_keywords) is LaneConfig
    assert by_default == by_new
    assert (by_new.min_concurrency, by_new.max_concurrency) == (1, 4)
    assert by_new.lane_id is None and by_new.priority == 0


def test_lane_config_chained_builders_equal_the_keyword_form():
    chained = LaneConfig.new(1, 4).with_lane_id("high").with_priority(3)
    keywords = LaneConfig("high", priority=3, min_concurrency=1, max_concurrency=4)
    assert chained == keywords
    assert hash(chained) == hash(keywords)
    widened = chained.with_concurrency(2, 8)
    assert (widened.min_concurrency, widened.max_concurrency) == (2, 8)
    # Builders return new objects; the original is unchanged.
    assert (chained.min_concurrency, chained.max_concurrency) == (1, 4)


def test_lane_config_keyword_defaults():
    config = LaneConfig("x")
    assert (config.priority, config.min_concurrency, config.max_concurrency) == (
        0, 1, SDK_DEFAULT_MAX_CONCURRENCY)


def test_sdk_style_config_works_with_the_builder(managers):
    config = LaneConfig("ignored-id", priority=4, min_concurrency=0, max_concurrency=2)
    manager = managers.build(QueueManagerBuilder().with_lane("real", config))
    status = manager.stats().lane("real")
    assert (status.priority, status.min_concurrency, status.max_concurrency) == (4, 0, 2)


def test_start_twice_starts_one_pool(managers):
    manager = managers.lanes(("work", 0, 0, 3))
    count = manager.queue().worker_count()
    assert count == 3
    manager.start()
    assert manager.queue().worker_count() == count
    assert manager.submit("work", lambda: "once").result(WAIT) == "once"
