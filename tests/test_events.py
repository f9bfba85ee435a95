"""Events: keys and payloads as the seed's table documents them, order per
command, timestamps, and isolation of slow or failing subscribers."""

from __future__ import annotations

import logging
import re
import threading
from datetime import datetime, timedelta, timezone

import pytest

from conftest import WAIT, Recorder
from pylane import EventEmitter, LaneEvent

SUBMITTED = "queue.command.submitted"
STARTED = "queue.command.started"
COMPLETED = "queue.command.completed"
FAILED = "queue.command.failed"
CANCELLED = "queue.command.cancelled"
SHUTDOWN = "queue.shutdown.started"
SHUTDOWN_COMPLETE = "queue.shutdown.complete"

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|\+00:00)$")


class Broken(Exception):
    pass


def events_by_command(events):
    grouped: dict[str, list] = {}
    for event in events:
        if event.payload and "command_id" in event.payload:
            grouped.setdefault(event.payload["command_id"], []).append(event)
    return grouped


def test_payload_fields_of_submitted_started_completed(managers):
    manager = managers.lanes(("work", 0, 0, 2))
    stream = manager.subscribe()

    def typed():
        return "ok"

    future = manager.submit("work", typed)
    assert future.result(WAIT) == "ok"
    manager.drain(WAIT)  # every event has been emitted
    events = stream.drain()
    by_key = {e.key: e for e in events}
    assert len(events) == 3
    assert set(by_key) == {SUBMITTED, STARTED, COMPLETED}
    command_id = future.command_id
    assert by_key[SUBMITTED].payload == {
        "lane_id": "work", "command_id": command_id, "command_type": "typed"}
    assert by_key[STARTED].payload == {
        "lane_id": "work", "command_id": command_id, "command_type": "typed"}
    assert by_key[COMPLETED].payload == {"lane_id": "work", "command_id": command_id}


def test_failed_event_carries_the_error_text(managers):
    manager = managers.lanes(("work", 0, 0, 2))
    stream = manager.subscribe_filtered(lambda e: e.key == FAILED)

    def breaks():
        raise Broken("disk on fire")

    future = manager.submit("work", breaks)
    assert isinstance(future.exception(WAIT), Broken)
    event = stream.recv(WAIT)
    assert event is not None
    assert set(event.payload) == {"lane_id", "command_id", "error"}
    assert event.payload["lane_id"] == "work"
    assert event.payload["command_id"] == future.command_id
    assert "disk on fire" in event.payload["error"]
    assert "Broken" in event.payload["error"]


def test_shutdown_started_has_no_payload_and_is_emitted_once(managers):
    manager = managers.default()
    stream = manager.subscribe()
    manager.shutdown()
    manager.shutdown()
    manager.drain(WAIT)
    events = list(stream)  # ends: the stream closes after shutdown + drain
    assert [e.key for e in events][:1] == [SHUTDOWN]
    assert events[0].payload is None
    # Only our extra end-of-shutdown event may follow.
    assert [e.key for e in events[1:]] in ([], [SHUTDOWN_COMPLETE])


def test_each_command_goes_submitted_started_then_completed_or_failed(managers, blocker):
    """Commands queued behind a held worker, so every submit has returned
    before any of them can start."""
    manager = managers.lanes(("work", 0, 0, 1))
    hold = blocker()
    held = manager.submit("work", hold)
    assert hold.wait_entered(1)
    stream = manager.subscribe()

    def boom():
        raise Broken("x")

    futures = [manager.submit("work", boom if i % 3 == 0 else (lambda: None))
               for i in range(30)]
    hold.release()
    held.result(WAIT)
    for future in futures:
        future.exception(WAIT)
    manager.drain(WAIT)
    grouped = events_by_command(stream.drain())
    for i, future in enumerate(futures):
        keys = [e.key for e in grouped[future.command_id]]
        end = FAILED if i % 3 == 0 else COMPLETED
        assert keys == [SUBMITTED, STARTED, end], f"command {i}: {keys}"


def test_cancelled_event_payload(managers, blocker):
    manager = managers.lanes(("work", 0, 0, 1))
    hold = blocker()
    held = manager.submit("work", hold)
    assert hold.wait_entered(1)
    stream = manager.subscribe_filtered(lambda e: e.key == CANCELLED)
    victim = manager.submit("work", lambda: None)
    assert victim.cancel()
    event = stream.recv(WAIT)
    assert event is not None
    assert event.payload == {"lane_id": "work", "command_id": victim.command_id}
    hold.release()
    held.result(WAIT)


def test_timestamp_is_rfc3339_utc_and_current(managers):
    manager = managers.default()
    stream = manager.subscribe()
    before = datetime.now(timezone.utc)
    manager.submit("query", lambda: None).result(WAIT)
    event = stream.recv(WAIT)
    after = datetime.now(timezone.utc)
    assert event is not None
    assert RFC3339_UTC.match(event.timestamp), event.timestamp
    parsed = datetime.fromisoformat(event.timestamp.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0)
    slack = timedelta(milliseconds=5)
    assert before - slack <= parsed <= after + slack
    assert abs(event.time - parsed) < timedelta(microseconds=2)
    assert event.to_dict() == {"key": event.key, "payload": event.payload,
                               "timestamp": event.timestamp}


def test_timestamp_format_of_a_known_instant():
    event = LaneEvent("k", None, time_ns=1_700_000_000_123_456_789)
    assert event.timestamp == "2023-11-14T22:13:20.123456789+00:00"
    assert RFC3339_UTC.match(event.timestamp)


def test_unread_stream_never_blocks_scheduling_and_keeps_the_newest(managers):
    # One worker, so completions (and their events) come strictly in order.
    manager = managers.lanes(("work", 0, 0, 1), ("other", 1, 0, 1), capacity=10,
                             max_workers=1)
    everything = manager.subscribe()  # nobody reads it
    completions = manager.subscribe_filtered(lambda e: e.key == COMPLETED)  # nor this
    futures = [manager.submit("work", lambda i=i: i) for i in range(1000)]
    assert [f.result(WAIT) for f in futures] == list(range(1000))
    manager.drain(WAIT)  # every event has been emitted

    assert completions.dropped == 990
    assert len(completions) == 10
    kept = completions.drain()
    assert [e.payload["command_id"] for e in kept] == [f.command_id for f in futures[-10:]]

    assert everything.dropped == 3000 - 10
    newest = everything.drain()
    assert len(newest) == 10
    assert newest[-1].key == COMPLETED
    assert newest[-1].payload["command_id"] == futures[-1].command_id


def test_blocked_callback_subscriber_never_blocks_scheduling(managers, gates):
    manager = managers.lanes(("work", 0, 0, 2), capacity=10)
    gate = gates.new()
    got_first = threading.Event()

    def stuck(event):
        got_first.set()
        gate.wait(WAIT)

    subscription = manager.subscribe(stuck)
    futures = [manager.submit("work", lambda i=i: i) for i in range(500)]
    assert got_first.wait(WAIT)
    assert [f.result(WAIT) for f in futures] == list(range(500))
    assert subscription.stream.dropped > 0
    gate.set()
    subscription.close(WAIT)


def test_raising_callback_is_logged_and_keeps_receiving(managers, caplog):
    caplog.set_level(logging.ERROR, logger="pylane.events")
    manager = managers.lanes(("work", 0, 0, 1))
    received = Recorder()

    def callback(event):
        first = not received.items
        received.append(event.key)
        if first:
            raise Broken("callback bug")

    subscription = manager.subscribe(callback)
    manager.submit("work", lambda: None).result(WAIT)
    assert received.wait_len(3)
    assert sorted(received.items) == sorted([SUBMITTED, STARTED, COMPLETED])
    records = [r for r in caplog.records if r.name == "pylane.events"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert records[0].exc_info and records[0].exc_info[0] is Broken
    assert received.items[0] in records[0].getMessage()

    manager.submit("work", lambda: None).result(WAIT)  # later events still arrive
    assert received.wait_len(6)
    assert sorted(received.items[3:]) == sorted([SUBMITTED, STARTED, COMPLETED])
    assert len([r for r in caplog.records if r.name == "pylane.events"]) == 1
    subscription.close(WAIT)


def test_raising_filter_is_isolated(managers, caplog):
    caplog.set_level(logging.ERROR, logger="pylane.events")
    manager = managers.lanes(("work", 0, 0, 1))

    def picky(event):
        if event.key == STARTED:
            raise Broken("filter bug")
        return True

    filtered = manager.subscribe_filtered(picky)
    everything = manager.subscribe()
    future = manager.submit("work", lambda: "fine")
    assert future.result(WAIT) == "fine"
    manager.drain(WAIT)  # every event has been emitted
    assert sorted(e.key for e in everything.drain()) == sorted(
        [SUBMITTED, STARTED, COMPLETED])
    assert sorted(e.key for e in filtered.drain()) == sorted([SUBMITTED, COMPLETED])
    messages = [r.getMessage() for r in caplog.records if r.name == "pylane.events"]
    assert len(messages) == 1 and STARTED in messages[0]


def test_iteration_ends_after_shutdown_and_drain(managers):
    manager = managers.lanes(("work", 0, 0, 1))
    stream = manager.subscribe()
    keys = []
    reader = threading.Thread(target=lambda: keys.extend(e.key for e in stream))
    reader.start()
    manager.submit("work", lambda: None).result(WAIT)
    manager.shutdown()
    manager.drain(WAIT)
    reader.join(WAIT)
    assert not reader.is_alive(), "iteration did not end after shutdown + drain"
    # (the order of a command's own events is checked elsewhere)
    assert sorted(keys[:3]) == sorted([SUBMITTED, STARTED, COMPLETED])
    assert keys[3] == SHUTDOWN
    assert keys[4:] in ([], [SHUTDOWN_COMPLETE])
    assert stream.closed


def test_close_wakes_a_blocked_recv_and_stops_delivery(managers):
    manager = managers.lanes(("work", 0, 0, 1))
    stream = manager.subscribe()
    result = []
    waiter = threading.Thread(target=lambda: result.append(stream.recv(WAIT)))
    waiter.start()
    stream.close()
    waiter.join(WAIT)
    assert not waiter.is_alive()
    assert result == [None]
    assert stream.closed

    manager.submit("work", lambda: None).result(WAIT)
    manager.drain(WAIT)
    assert len(stream) == 0
    assert stream.recv(WAIT) is None  # returns at once: closed and empty
    assert list(stream) == []


def test_close_keeps_what_was_buffered(managers):
    manager = managers.lanes(("work", 0, 0, 1))
    with manager.subscribe() as stream:
        manager.submit("work", lambda: None).result(WAIT)
        manager.drain(WAIT)
    assert stream.closed
    assert sorted(e.key for e in stream) == sorted([SUBMITTED, STARTED, COMPLETED])


def test_emitter_capacity_must_be_positive():
    with pytest.raises(ValueError, match="capacity"):
        EventEmitter(0)


def test_subscribing_after_drain_gives_a_stream_that_ends(managers):
    manager = managers.lanes(("work", 0, 0, 1))
    manager.shutdown()
    manager.drain(WAIT)
    stream = manager.subscribe()
    keys = []
    reader = threading.Thread(target=lambda: keys.extend(e.key for e in stream), daemon=True)
    reader.start()
    try:
        reader.join(1.0)  # bounded: the iteration should end at once
        assert not reader.is_alive(), "iterating a finished queue's stream never ends"
        assert stream.closed
    finally:
        stream.close()  # frees the reader if it is stuck
        reader.join(WAIT)


def test_drain_returns_every_buffered_event_in_order_and_empties_the_buffer():
    emitter = EventEmitter(10)
    stream = emitter.subscribe()
    assert stream.drain() == []  # nothing buffered: an empty list, at once
    for n in range(3):
        emitter.emit(LaneEvent(f"k{n}", {"n": n}))
    events = stream.drain()
    assert [(e.key, e.payload) for e in events] == [("k0", {"n": 0}), ("k1", {"n": 1}),
                                                    ("k2", {"n": 2})]
    assert len(stream) == 0 and stream.drain() == [] and stream.try_recv() is None
    emitter.emit(LaneEvent("k3"))
    assert [e.key for e in stream.drain()] == ["k3"]


def test_drain_never_waits_and_keeps_what_a_closed_stream_holds():
    emitter = EventEmitter(10)
    stream = emitter.subscribe()
    emitter.emit(LaneEvent("kept"))
    stream.close()
    emitter.emit(LaneEvent("after close"))
    assert [e.key for e in stream.drain()] == ["kept"]
    assert stream.drain() == []


def test_drain_respects_the_filter_and_the_capacity():
    emitter = EventEmitter(3)
    stream = emitter.subscribe_filtered(lambda event: event.key != "skip")
    for n in range(5):
        emitter.emit(LaneEvent("skip"))
        emitter.emit(LaneEvent(f"k{n}"))
    assert [e.key for e in stream.drain()] == ["k2", "k3", "k4"]
    assert stream.dropped == 2


def test_drain_while_another_thread_emits_loses_and_repeats_nothing():
    emitter = EventEmitter(100_000)
    stream = emitter.subscribe()
    total = 20_000
    done = threading.Event()

    def emit_all():
        for n in range(total):
            emitter.emit(LaneEvent("k", {"n": n}))
        done.set()

    thread = threading.Thread(target=emit_all)
    thread.start()
    seen = []
    while not done.is_set():
        seen.extend(e.payload["n"] for e in stream.drain())
    thread.join(WAIT)
    seen.extend(e.payload["n"] for e in stream.drain())
    assert seen == list(range(total))


def test_drain_after_a_command_resolves_holds_its_events(managers):
    manager = managers.lanes(("work", 0, 0, 2))
    stream = manager.subscribe()
    future = manager.submit("work", lambda: "ok")
    assert future.result(WAIT) == "ok"
    events = stream.drain()
    assert [e.key for e in events] == [SUBMITTED, STARTED, COMPLETED]
    assert {e.payload["command_id"] for e in events} == {future.command_id}
