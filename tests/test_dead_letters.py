"""Issue 3, item 3: the dead letter queue.

``DeadLetterQueue(capacity)``: ``push/pop/list/clear/len``, oldest evicted
when full and evictions counted. Attached through the builder's
``with_dlq`` (a capacity or a DLQ) or ``CommandQueue.with_dlq(emitter,
dlq)``. A command that exhausts its retries is dead-lettered with its id,
type, lane, error, attempts and time, and ``queue.command.dead_lettered``
comes before the terminal ``failed`` event.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest

from conftest import WAIT
from pylane import (
    Command,
    CommandQueue,
    EventEmitter,
    InvalidConfigError,
    LaneConfig,
    QueueManager,
    QueueManagerBuilder,
    RetryPolicy,
)
from pylane.durable.dead_letters import DeadLetter, DeadLetterQueue


def letter(n, lane="work"):
    return DeadLetter(f"id-{n}", "type", lane, f"error {n}", 1)


class Explode(Command):
    command_type = "explode"

    def __init__(self, message):
        self.message = message

    def execute(self):
        raise RuntimeError(self.message)


def dlq_manager(managers, dlq, policy=None, max_concurrency=2):
    config = LaneConfig.new(0, max_concurrency)
    if policy is not None:
        config = config.with_retry_policy(policy)
    builder = QueueManagerBuilder(EventEmitter(1000)).with_lane("work", config, 0)
    if dlq is not None:
        builder.with_dlq(dlq)
    return managers.build(builder)


# ---- the queue of letters ---------------------------------------------------------


def test_push_list_len_pop_clear():
    dlq = DeadLetterQueue(10)
    assert len(dlq) == 0 and dlq.is_empty() and dlq.list() == []
    assert dlq.pop() is None
    for n in range(3):
        dlq.push(letter(n))
    assert len(dlq) == 3 and not dlq.is_empty()
    assert [x.command_id for x in dlq.list()] == ["id-0", "id-1", "id-2"]
    assert dlq.pop().command_id == "id-0"
    assert [x.command_id for x in dlq.list()] == ["id-1", "id-2"]
    dlq.clear()
    assert len(dlq) == 0 and dlq.list() == []
    assert dlq.evicted == 0


def test_list_is_a_copy():
    dlq = DeadLetterQueue(10)
    dlq.push(letter(1))
    copy = dlq.list()
    copy.clear()
    assert len(dlq) == 1


def test_the_oldest_is_evicted_when_full_and_counted():
    dlq = DeadLetterQueue(3)
    for n in range(5):
        dlq.push(letter(n))
    assert len(dlq) == 3
    assert [x.command_id for x in dlq.list()] == ["id-2", "id-3", "id-4"]
    assert dlq.evicted == 2
    assert dlq.capacity == 3


def test_a_capacity_of_one_keeps_the_newest():
    dlq = DeadLetterQueue(1)
    dlq.push(letter(1))
    dlq.push(letter(2))
    assert [x.command_id for x in dlq.list()] == ["id-2"]
    assert dlq.evicted == 1


@pytest.mark.parametrize("capacity", [0, -1, 1.5, "10", True])
def test_invalid_capacity_is_refused(capacity):
    with pytest.raises(InvalidConfigError, match="capacity"):
        DeadLetterQueue(capacity)


def test_concurrent_pushes_lose_nothing():
    dlq = DeadLetterQueue(100)
    start = threading.Barrier(8)

    def push_many(base):
        start.wait(WAIT)
        for n in range(1000):
            dlq.push(letter(base + n))

    threads = [threading.Thread(target=push_many, args=(t * 1000,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert len(dlq) == 100
    assert dlq.evicted == 7900
    assert len({x.command_id for x in dlq.list()}) == 100


# ---- wiring ---------------------------------------------------------------------------


def test_builder_takes_a_capacity_or_a_dlq(managers):
    manager = dlq_manager(managers, 5)
    assert isinstance(manager.dlq(), DeadLetterQueue)
    assert manager.dlq().capacity == 5
    mine = DeadLetterQueue(7)
    manager = dlq_manager(managers, mine)
    assert manager.dlq() is mine
    assert manager.queue().dlq() is mine


def test_builder_refuses_an_invalid_capacity():
    with pytest.raises(InvalidConfigError):
        QueueManagerBuilder().with_dlq(0)


def test_command_queue_with_dlq(managers):
    dlq = DeadLetterQueue(4)
    emitter = EventEmitter(100)
    queue = CommandQueue.with_dlq(emitter, dlq)
    assert queue.dlq() is dlq and queue.emitter is emitter
    queue.register_lane("work", LaneConfig.new(0, 1))
    managers.track(QueueManager(queue))
    queue.start()
    future = queue.submit("work", Explode("standalone"))
    assert isinstance(future.exception(WAIT), RuntimeError)
    [dead] = dlq.list()
    assert dead.command_id == future.command_id
    assert queue.stats().dead_letter_count == 1


def test_command_queue_with_dlq_refuses_other_objects():
    with pytest.raises(InvalidConfigError, match="DeadLetterQueue"):
        CommandQueue.with_dlq(EventEmitter(), 10)


# ---- what gets dead-lettered ------------------------------------------------------


def test_an_exhausted_command_is_dead_lettered_with_its_details(managers):
    manager = dlq_manager(managers, 10, RetryPolicy.fixed(2, 0.01))
    before = datetime.now(timezone.utc)
    future = manager.submit("work", Explode("no luck"))
    error = future.exception(WAIT)
    after = datetime.now(timezone.utc)
    assert isinstance(error, RuntimeError)
    [dead] = manager.dlq().list()
    assert dead.command_id == future.command_id
    assert dead.command_type == "explode"
    assert dead.lane_id == "work"
    assert dead.error == "RuntimeError: no luck"
    assert dead.attempts == 3
    assert dead.failed_at.tzinfo is not None
    assert before <= dead.failed_at <= after
    stats = manager.stats()
    assert stats.dead_letter_count == 1
    assert stats.lane("work").dead_lettered == 1


def test_a_callable_is_dead_lettered_under_its_name(managers):
    manager = dlq_manager(managers, 10)

    def broken_job():
        raise KeyError("k")

    future = manager.submit("work", broken_job)
    assert isinstance(future.exception(WAIT), KeyError)
    [dead] = manager.dlq().list()
    assert dead.command_type == "broken_job"
    assert dead.attempts == 1
    assert dead.error.startswith("KeyError")


def test_dead_lettered_comes_before_failed(managers):
    manager = dlq_manager(managers, 10, RetryPolicy.fixed(1, 0.01))
    stream = manager.subscribe()
    future = manager.submit("work", Explode("x"))
    future.exception(WAIT)
    keys = [e.key for e in stream.drain()
            if (e.payload or {}).get("command_id") == future.command_id]
    assert keys == [
        "queue.command.submitted", "queue.command.started", "queue.command.retry",
        "queue.command.started", "queue.command.dead_lettered", "queue.command.failed"]


def test_dead_lettered_event_payload(managers):
    manager = dlq_manager(managers, 10)
    stream = manager.subscribe_filtered(lambda e: e.key == "queue.command.dead_lettered")
    future = manager.submit("work", Explode("x"))
    future.exception(WAIT)
    event = stream.try_recv()
    assert event.payload == {"lane_id": "work", "command_id": future.command_id,
                             "command_type": "explode"}


def test_a_full_dlq_evicts_the_oldest_letter(managers):
    manager = dlq_manager(managers, 2, max_concurrency=1)
    futures = [manager.submit("work", Explode(f"n{n}")) for n in range(3)]
    for future in futures:
        future.exception(WAIT)
    dlq = manager.dlq()
    assert [x.command_id for x in dlq.list()] == [f.command_id for f in futures[1:]]
    assert dlq.evicted == 1
    stats = manager.stats()
    assert stats.dead_letter_count == 2
    assert stats.lane("work").dead_lettered == 3


def test_without_a_dlq_nothing_is_dead_lettered(managers):
    manager = dlq_manager(managers, None)
    stream = manager.subscribe()
    future = manager.submit("work", Explode("x"))
    future.exception(WAIT)
    keys = [e.key for e in stream.drain()]
    assert "queue.command.dead_lettered" not in keys
    assert "queue.command.failed" in keys
    assert manager.dlq() is None
    stats = manager.stats()
    assert stats.dead_letter_count == 0 and stats.lane("work").dead_lettered == 0


def test_successes_retried_successes_and_cancels_are_not_dead_lettered(managers, blocker):
    manager = dlq_manager(managers, 10, RetryPolicy.fixed(1, 0.01), max_concurrency=1)
    calls = []

    def fail_once():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first")
        return "second"

    assert manager.submit("work", lambda: 1).result(WAIT) == 1
    assert manager.submit("work", fail_once).result(WAIT) == "second"
    hold = blocker()
    running = manager.submit("work", hold)
    assert hold.wait_entered()
    waiting = manager.submit("work", lambda: 2)
    assert waiting.cancel()
    hold.release()
    running.result(WAIT)
    manager.drain(WAIT)
    assert manager.dlq().list() == []
    assert manager.stats().dead_letter_count == 0
