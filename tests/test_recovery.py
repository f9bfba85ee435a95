"""Issue 3, items 4, 7 and 8: recovery at start.

Commands a previous process left in storage are rebuilt (registered factory,
the Command class by its import path, or an SDK JSON command) and re-run at
``start()`` (at-least-once), keeping their ids and attempt counts; their
futures are in ``manager.recovered``. What cannot be rebuilt becomes a dead
letter with the reason; a corrupt row is skipped, counted and reported
(``queue.storage.corrupt`` event and a log record) while the other rows
recover. Commands still pending when a drain times out stay in storage for
the next start.

"A previous process" is simulated by writing rows with ``LocalStorage`` or by
a manager that is shut down while its lane is paused; the real thing, with
SIGKILL, is test_crash_recovery.py.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import uuid

import pytest

from conftest import WAIT, Recorder
from pylane import (
    Command,
    EventEmitter,
    LaneConfig,
    LaneTimeoutError,
    QueueManagerBuilder,
    RetryPolicy,
)
from pylane.durable.registry import kind_of
from pylane.durable.storage import LocalStorage, StoredCommand, StoredDeadLetter

# Commands rebuilt from storage cannot carry a Recorder; they name one.
SINKS: dict[str, Recorder] = {}

RECOVERED = "queue.storage.recovered"
CORRUPT = "queue.storage.corrupt"


@pytest.fixture
def sink():
    name = uuid.uuid4().hex
    SINKS[name] = Recorder()
    yield name
    del SINKS[name]


class Note(Command):
    command_type = "note"

    def __init__(self, sink, value):
        self.sink = sink
        self.value = value

    def execute(self):
        SINKS[self.sink].append(self.value)
        return self.value


class AlwaysFails(Command):
    command_type = "always_fails"

    def __init__(self, sink):
        self.sink = sink

    def execute(self):
        SINKS[self.sink].append("attempt")
        raise RuntimeError("still failing")


class Custom(Command):
    """State that is not its __dict__: to_payload / from_payload overridden."""

    command_type = "custom"

    def __init__(self, sink, numbers):
        self._sink = sink
        self._numbers = tuple(numbers)

    def to_payload(self):
        return {"s": self._sink, "n": list(self._numbers)}

    @classmethod
    def from_payload(cls, payload):
        return cls(payload["s"], payload["n"])

    def execute(self):
        SINKS[self._sink].append(sum(self._numbers))
        return sum(self._numbers)


def builder_for(storage, *, policy=None, dlq=None, lane="work", max_concurrency=1):
    config = LaneConfig.new(0, max_concurrency)
    if policy is not None:
        config = config.with_retry_policy(policy)
    builder = QueueManagerBuilder(EventEmitter(1000)).with_lane(lane, config, 0)
    builder.with_storage(storage)
    if dlq is not None:
        builder.with_dlq(dlq)
    return builder


def start_with_stream(managers, builder):
    """Builds, subscribes, then starts: recovery happens inside start()."""
    manager = managers.build(builder, start=False)
    stream = manager.subscribe()
    manager.start()
    return manager, stream


def previous_process(path, records):
    storage = LocalStorage(path)
    for record in records:
        storage.save_command(record)
    storage.close()


def crash(manager):
    """The end of a simulated process: its storage lets go, as the kernel
    drops a dead process's lock (a second live owner is refused)."""
    queue = manager.manager.queue() if hasattr(manager, "manager") else manager.queue()
    queue.storage().close()


def note_row(command_id, sink, value, lane_id="work", **fields):
    return StoredCommand(command_id, "note", lane_id, {"sink": sink, "value": value},
                         kind=kind_of(Note), **fields)


# ---- re-running what was left --------------------------------------------------------


def test_pending_commands_at_a_timed_out_drain_stay_stored_and_rerun_at_next_start(
        managers, tmp_path, sink):
    first = managers.build(builder_for(LocalStorage(tmp_path)))
    first.pause_lane("work")  # nothing gets to run in the "first process"
    futures = [first.submit("work", Note(sink, n)) for n in range(5)]
    first.shutdown()
    with pytest.raises(LaneTimeoutError, match="5 pending") as caught:
        first.drain(0.2)
    assert "work" in str(caught.value)
    crash(first)
    left = LocalStorage(tmp_path, readonly=True)
    assert [r.id for r in left.load_commands()] == [f.command_id for f in futures]
    left.close()

    second, stream = start_with_stream(managers, builder_for(LocalStorage(tmp_path)))
    assert [f.result(WAIT) for f in second.recovered] == [0, 1, 2, 3, 4]
    assert SINKS[sink].items == [0, 1, 2, 3, 4]  # oldest first, each once
    events = stream.drain()
    report = [e.payload for e in events if e.key == RECOVERED]
    assert report == [{"recovered": 5, "corrupt": 0, "unrecoverable": 0}]
    started = [e.payload["command_id"] for e in events if e.key == "queue.command.started"]
    assert started == [f.command_id for f in futures]  # they keep their ids
    assert [f.command_id for f in second.recovered] == started
    assert second.queue().storage().count_commands() == 0

    for future in futures:  # the first manager never ran them
        assert future.cancel()


def test_sdk_commands_recover_with_no_extra_code(managers, tmp_path):
    def double(payload):
        return payload["n"] * 2

    first = managers.sdk([LaneConfig("x", priority=0, max_concurrency=1)],
                         storage=LocalStorage(tmp_path))
    first.register_handler("double", double)
    first.pause_lane("x")
    futures = [first.submit_async("x", "double", {"n": n}) for n in range(3)]
    echo = first.submit_async("x", "unhandled", {"keep": [1, "two"]})
    first.shutdown()
    with pytest.raises(LaneTimeoutError):
        first.drain(0.1)
    crash(first)

    second = managers.sdk([LaneConfig("x", priority=0, max_concurrency=1)],
                          storage=LocalStorage(tmp_path), start=False)
    second.register_handler("double", double)  # what the application does at startup anyway
    second.start()
    results = [f.result(WAIT) for f in second.manager.recovered]
    assert results == [0, 2, 4, {"keep": [1, "two"]}]
    for future in [*futures, echo]:
        assert future.cancel()


def test_a_handler_registered_after_start_is_found_by_recovered_commands(managers, tmp_path):
    previous_process(tmp_path, [StoredCommand("j1", "late", "x", {"v": 7}, kind="json")])
    lane = managers.sdk([LaneConfig("x", priority=0)], storage=LocalStorage(tmp_path),
                        start=False)
    lane.pause_lane("x")
    lane.start()
    lane.register_handler("late", lambda payload: payload["v"] + 1)
    lane.resume_lane("x")
    [future] = lane.manager.recovered
    assert future.result(WAIT) == 8


def test_rows_are_rebuilt_by_class_path_in_order(managers, tmp_path, sink):
    previous_process(tmp_path, [note_row(f"id{n}", sink, n) for n in range(4)] + [
        StoredCommand("c1", "custom", "work", {"s": sink, "n": [1, 2, 3]}, kind=kind_of(Custom)),
    ])
    manager, _ = start_with_stream(managers, builder_for(LocalStorage(tmp_path)))
    assert [f.result(WAIT) for f in manager.recovered] == [0, 1, 2, 3, 6]
    assert SINKS[sink].items == [0, 1, 2, 3, 6]
    assert [f.command_id for f in manager.recovered] == ["id0", "id1", "id2", "id3", "c1"]


def test_custom_to_payload_round_trips_through_a_restart(managers, tmp_path, sink):
    first = managers.build(builder_for(LocalStorage(tmp_path)))
    first.pause_lane("work")
    future = first.submit("work", Custom(sink, [4, 5]))
    [row] = first.queue().storage().load_commands()
    assert row.payload == {"s": sink, "n": [4, 5]}
    crash(first)
    second = managers.build(builder_for(LocalStorage(tmp_path)))
    assert [f.result(WAIT) for f in second.recovered] == [9]
    assert future.cancel()


def test_a_registered_factory_rebuilds_by_command_type(managers, tmp_path, sink):
    previous_process(tmp_path, [
        StoredCommand("f1", "legacy", "work", {"value": 41}),  # no kind at all
        # A factory wins over the class path.
        StoredCommand("f2", "note", "work", {"sink": sink, "value": 1}, kind=kind_of(Note)),
    ])
    builder = builder_for(LocalStorage(tmp_path))
    builder.register_command("legacy", lambda payload: Note(sink, payload["value"] + 1))
    builder.register_command("note", lambda payload: Note(payload["sink"], "from factory"))
    manager = managers.build(builder)
    assert [f.result(WAIT) for f in manager.recovered] == [42, "from factory"]


def test_manager_register_command_before_start(managers, tmp_path, sink):
    previous_process(tmp_path, [StoredCommand("m1", "later", "work", {"v": 3})])
    manager = managers.build(builder_for(LocalStorage(tmp_path)), start=False)
    manager.register_command("later", lambda payload: Note(sink, payload["v"]))
    manager.start()
    assert [f.result(WAIT) for f in manager.recovered] == [3]


def test_a_class_in_a_module_not_yet_imported_is_imported(managers, tmp_path, monkeypatch,
                                                         sink):
    module = f"recovery_plugin_{uuid.uuid4().hex[:12]}"
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / f"{module}.py").write_text(
        "from pylane import Command\n"
        "class Job(Command):\n"
        "    command_type = 'plugin_job'\n"
        "    def __init__(self, x):\n"
        "        self.x = x\n"
        "    def execute(self):\n"
        "        return ('plugin', self.x)\n"
    )
    monkeypatch.syspath_prepend(str(code_dir))
    assert module not in sys.modules
    previous_process(tmp_path / "db", [
        StoredCommand("p1", "plugin_job", "work", {"x": 5}, kind=f"{module}:Job")])
    try:
        manager = managers.build(builder_for(LocalStorage(tmp_path / "db")))
        assert [f.result(WAIT) for f in manager.recovered] == [("plugin", 5)]
    finally:
        sys.modules.pop(module, None)


def test_the_attempt_count_survives_a_restart(managers, tmp_path, sink):
    # One attempt had already failed before the crash: with max_retries 3,
    # two more retries are left (attempts 2 and 3), then the dead letter.
    previous_process(tmp_path, [
        StoredCommand("r1", "always_fails", "work", {"sink": sink}, retry_count=1,
                      kind=kind_of(AlwaysFails))])
    builder = builder_for(LocalStorage(tmp_path), policy=RetryPolicy.fixed(3, 0.01), dlq=10)
    manager, stream = start_with_stream(managers, builder)
    [future] = manager.recovered
    assert isinstance(future.exception(WAIT), RuntimeError)
    assert len(SINKS[sink].items) == 3
    retries = [e.payload["attempt"] for e in stream.drain() if e.key == "queue.command.retry"]
    assert retries == [2, 3]
    [letter] = manager.dlq().list()
    assert (letter.command_id, letter.attempts) == ("r1", 4)


def test_a_recovered_command_can_be_cancelled_by_id(managers, tmp_path, sink):
    previous_process(tmp_path, [note_row("keep", sink, 1), note_row("drop", sink, 2)])
    manager = managers.build(builder_for(LocalStorage(tmp_path)), start=False)
    manager.pause_lane("work")
    stream = manager.subscribe()
    manager.start()
    assert manager.cancel("drop") is True
    assert [r.id for r in manager.queue().storage().load_commands()] == ["keep"]
    cancelled = [e.payload for e in stream.drain() if e.key == "queue.command.cancelled"]
    assert cancelled == [{"lane_id": "work", "command_id": "drop"}]
    manager.resume_lane("work")
    keep, drop = manager.recovered
    assert keep.result(WAIT) == 1 and drop.cancelled()
    manager.drain(WAIT)
    assert SINKS[sink].items == [1]


def test_nothing_stored_means_nothing_recovered_and_no_report(managers, tmp_path):
    manager, stream = start_with_stream(managers, builder_for(LocalStorage(tmp_path)))
    assert manager.recovered == []
    assert [e for e in stream.drain() if e.key == RECOVERED] == []


def test_a_custom_backend_recovers_through_the_protocol(managers, sink):
    from test_storage import MemoryStorage

    storage = MemoryStorage()
    storage.save_command(note_row("mem1", sink, "from memory"))
    manager = managers.build(builder_for(storage))
    assert [f.result(WAIT) for f in manager.recovered] == ["from memory"]
    assert storage.load_commands() == []


# ---- dead letters across restarts -------------------------------------------------------


def test_stored_dead_letters_are_reloaded_into_the_dlq(managers, tmp_path, sink):
    first = managers.build(builder_for(LocalStorage(tmp_path), dlq=10))
    future = first.submit("work", AlwaysFails(sink))
    future.exception(WAIT)
    [original] = first.dlq().list()
    crash(first)

    second = managers.build(builder_for(LocalStorage(tmp_path), dlq=10))
    [reloaded] = second.dlq().list()
    assert reloaded.command_id == future.command_id == original.command_id
    assert (reloaded.command_type, reloaded.lane_id, reloaded.error, reloaded.attempts) == (
        "always_fails", "work", "RuntimeError: still failing", 1)
    assert reloaded.failed_at == original.failed_at
    assert second.stats().dead_letter_count == 1


# ---- what cannot be rebuilt ------------------------------------------------------------


class BadFromPayload(Command):
    command_type = "bad_from_payload"

    @classmethod
    def from_payload(cls, payload):
        raise KeyError("missing field")

    def execute(self):
        return None


def test_what_cannot_be_rebuilt_is_dead_lettered_with_the_reason(
        managers, tmp_path, sink, caplog):
    previous_process(tmp_path, [
        note_row("good", sink, "fine"),
        StoredCommand("no-module", "ghost", "work", {}, kind="no_such_module_xq:Ghost"),
        StoredCommand("no-class", "ghost", "work", {}, kind="pylane:NoSuchCommand"),
        StoredCommand("no-kind", "unknown_type", "work", {}),
        note_row("no-lane", sink, 1, lane_id="gone"),
        StoredCommand("raises", "bad_from_payload", "work", {}, kind=kind_of(BadFromPayload)),
        StoredCommand("not-cmd", "not_a_command", "work", {}),
    ])
    builder = builder_for(LocalStorage(tmp_path), dlq=20)
    builder.register_command("not_a_command", lambda payload: "a string")
    caplog.set_level(logging.ERROR, logger="pylane.recovery")
    manager, stream = start_with_stream(managers, builder)

    assert [f.result(WAIT) for f in manager.recovered] == ["fine"]
    events = stream.drain()
    report = [e.payload for e in events if e.key == RECOVERED]
    assert report == [{"recovered": 1, "corrupt": 0, "unrecoverable": 6}]
    letters = {x.command_id: x for x in manager.dlq().list()}
    assert set(letters) == {"no-module", "no-class", "no-kind", "no-lane", "raises", "not-cmd"}
    assert "no_such_module_xq" in letters["no-module"].error
    assert "NoSuchCommand" in letters["no-class"].error
    assert "unknown_type" in letters["no-kind"].error
    assert "gone" in letters["no-lane"].error
    assert "KeyError" in letters["raises"].error
    assert "str" in letters["not-cmd"].error
    assert letters["no-lane"].lane_id == "gone"
    dead_events = {e.payload["command_id"] for e in events
                   if e.key == "queue.command.dead_lettered"}
    assert dead_events == set(letters)
    # Stored as dead letters, no longer as commands: nothing is silently dropped.
    storage = manager.queue().storage()
    assert {x.command_id for x in storage.load_dead_letters()} == set(letters)
    manager.drain(WAIT)
    assert storage.count_commands() == 0
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "pylane.recovery")
    for command_id in letters:
        assert command_id in logged


def test_unrebuildable_commands_are_stored_as_dead_letters_without_a_dlq(managers, tmp_path):
    previous_process(tmp_path, [StoredCommand("orphan", "unknown", "work", {"a": 1})])
    manager = managers.build(builder_for(LocalStorage(tmp_path)))
    assert manager.recovered == []
    [letter] = manager.queue().storage().load_dead_letters()
    assert letter.command_id == "orphan" and "unknown" in letter.error
    assert manager.queue().storage().count_commands() == 0


# ---- corrupt rows -------------------------------------------------------------------------


def corrupt(path, command_id, **columns):
    db = sqlite3.connect(path / "lane.sqlite3", isolation_level=None)
    for column, value in columns.items():
        db.execute(f"UPDATE commands SET {column} = ? WHERE id = ?", (value, command_id))
    db.close()


def test_a_corrupt_row_is_skipped_counted_and_reported(managers, tmp_path, sink, caplog):
    previous_process(tmp_path, [note_row(f"id{n}", sink, n) for n in range(5)])
    corrupt(tmp_path, "id1", payload="{not json")
    corrupt(tmp_path, "id3", retry_count="three")
    corrupt(tmp_path, "id4", created_at="yesterday-ish")
    caplog.set_level(logging.ERROR)
    manager, stream = start_with_stream(managers, builder_for(LocalStorage(tmp_path), dlq=10))

    assert [f.result(WAIT) for f in manager.recovered] == [0, 2]
    assert SINKS[sink].items == [0, 2]
    events = stream.drain()
    corrupt_events = [e.payload for e in events if e.key == CORRUPT]
    assert sorted(p["command_id"] for p in corrupt_events) == ["id1", "id3", "id4"]
    assert all(p["error"] for p in corrupt_events)
    report = [e.payload for e in events if e.key == RECOVERED]
    assert report == [{"recovered": 2, "corrupt": 3, "unrecoverable": 0}]
    logged = " ".join(r.getMessage() for r in caplog.records)
    for command_id in ("id1", "id3", "id4"):
        assert command_id in logged
    assert sorted(x.command_id for x in manager.dlq().list()) == ["id1", "id3", "id4"]
    assert all("unreadable" in x.error for x in manager.dlq().list())

    # Reported once: the bad rows are gone from the commands table, kept as dead letters.
    storage = manager.queue().storage()
    manager.drain(WAIT)
    assert storage.count_commands() == 0
    assert len(storage.load_dead_letters()) == 3
    crash(manager)
    again, stream = start_with_stream(managers, builder_for(LocalStorage(tmp_path)))
    assert again.recovered == []
    assert [e for e in stream.drain() if e.key in (CORRUPT, RECOVERED)] == []


def test_corrupt_rows_are_listed_by_load_commands(tmp_path):
    previous_process(tmp_path, [note_row("a", "s", 1), note_row("b", "s", 2)])
    corrupt(tmp_path, "a", payload="\x00\x01")
    storage = LocalStorage(tmp_path)
    assert [c.id for c in storage.load_commands()] == ["b"]
    assert [row for row, _ in storage.last_load.corrupt] == ["a"]
    storage.close()


# ---- a manager's own submits before start() ------------------------------------------------


def test_submits_made_before_start_run_once(managers, tmp_path, sink):
    manager = managers.build(builder_for(LocalStorage(tmp_path)), start=False)
    futures = [manager.submit("work", Note(sink, n)) for n in range(3)]
    manager.start()
    assert [f.result(WAIT) for f in futures] == [0, 1, 2]
    manager.drain(WAIT)
    assert SINKS[sink].items == [0, 1, 2]
    assert manager.recovered == []


def test_dead_letter_rows_written_by_hand_are_loaded(managers, tmp_path):
    storage = LocalStorage(tmp_path)
    storage.save_dead_letter(StoredDeadLetter("x1", "t", "work", "boom", 3))
    storage.close()
    manager = managers.build(builder_for(LocalStorage(tmp_path), dlq=5))
    [letter] = manager.dlq().list()
    assert (letter.command_id, letter.error, letter.attempts) == ("x1", "boom", 3)
