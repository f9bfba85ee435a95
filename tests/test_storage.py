"""Issue 3, items 4 and 8: storage and bad input.

``Storage`` is a protocol (``save_command``, ``load_commands``,
``remove_command``, ``save_dead_letter``, ``load_dead_letters``,
``clear_all``...) and ``LocalStorage(path)`` keeps it in SQLite (WAL). A
command is on disk when ``submit`` returns (id, lane, type, payload,
attempts, times) and gone once it ends; dead letters are stored. Bad input
fails the one call with a clear error and writes nothing; a database that
cannot be opened fails at build with its path in the message.

Recovery at start is in test_recovery.py.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from concurrent.futures import wait
from datetime import datetime, timedelta, timezone

import pytest

from conftest import WAIT
from pylane import (
    Command,
    EventEmitter,
    InvalidConfigError,
    InvalidPayloadError,
    LaneConfig,
    LaneError,
    QueueManagerBuilder,
    RetryPolicy,
)
from pylane.durable.dead_letters import DeadLetterQueue
from pylane.durable.registry import kind_of
from pylane.durable.storage import (
    LocalStorage,
    Storage,
    StorageError,
    StoredCommand,
    StoredDeadLetter,
)


class Add(Command):
    command_type = "add"

    def __init__(self, a, b):
        self.a = a
        self.b = b

    def execute(self):
        return self.a + self.b


class Fails(Command):
    command_type = "fails"

    def __init__(self, message):
        self.message = message

    def execute(self):
        raise ValueError(self.message)


class Holds(Command):
    """Carries something JSON cannot hold."""

    def __init__(self, thing):
        self.thing = thing

    def execute(self):
        return None


class MemoryStorage:
    """A custom backend: implements the protocol without subclassing."""

    def __init__(self):
        self.commands = {}
        self.letters = []
        self.removed = []
        self.lock = threading.Lock()

    def save_command(self, command):
        with self.lock:
            self.commands[command.id] = command

    def load_commands(self):
        with self.lock:
            return list(self.commands.values())

    def remove_command(self, command_id):
        with self.lock:
            self.commands.pop(command_id, None)
            self.removed.append(command_id)

    def save_dead_letter(self, letter):
        with self.lock:
            self.letters.append(letter)

    def load_dead_letters(self):
        with self.lock:
            return list(self.letters)

    def clear_dead_letters(self):
        with self.lock:
            self.letters.clear()

    def clear_all(self):
        with self.lock:
            self.commands.clear()
            self.letters.clear()


def storage_manager(managers, storage, *, policy=None, dlq=None, max_concurrency=2,
                    start=True):
    config = LaneConfig.new(0, max_concurrency)
    if policy is not None:
        config = config.with_retry_policy(policy)
    builder = QueueManagerBuilder(EventEmitter(1000)).with_lane("work", config, 0)
    builder.with_storage(storage)
    if dlq is not None:
        builder.with_dlq(dlq)
    return managers.build(builder, start=start)


def rows(path):
    """What is on disk, read through a connection of our own."""
    reader = LocalStorage(path, readonly=True)
    try:
        return reader.load_commands()
    finally:
        reader.close()


# ---- LocalStorage on its own ---------------------------------------------------------


def test_a_directory_gets_a_database_file_in_wal_mode(tmp_path):
    storage = LocalStorage(tmp_path / "state")
    assert storage.path == tmp_path / "state" / "lane.sqlite3"
    assert storage.path.exists()
    with sqlite3.connect(storage.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    storage.close()


@pytest.mark.parametrize("name", ["queue.db", "queue.sqlite", "queue.sqlite3"])
def test_a_database_file_path_is_used_as_is(tmp_path, name):
    storage = LocalStorage(tmp_path / name)
    assert storage.path == tmp_path / name
    assert (tmp_path / name).exists()
    storage.close()


def test_sync_modes(tmp_path):
    normal = LocalStorage(tmp_path / "n.db")
    full = LocalStorage(tmp_path / "f.db", sync="full")
    assert normal._db.execute("PRAGMA synchronous").fetchone()[0] == 1
    assert full._db.execute("PRAGMA synchronous").fetchone()[0] == 2
    normal.close()
    full.close()
    with pytest.raises(StorageError, match="sync"):
        LocalStorage(tmp_path / "x.db", sync="sometimes")


def test_commands_round_trip_with_every_field(tmp_path):
    storage = LocalStorage(tmp_path)
    created = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    attempted = created + timedelta(seconds=1)
    payload = {"text": "h\u00e9llo \u2603", "big": 2**62, "nested": [1, {"a": None}], "f": 0.5}
    storage.save_command(StoredCommand("c1", "t1", "lane1", payload, 2, created, attempted, "m:K"))
    storage.save_command(StoredCommand("c2", "t2", "lane2", None))
    storage.close()

    reopened = LocalStorage(tmp_path)  # survives closing and reopening
    first, second = reopened.load_commands()  # oldest first
    assert first == StoredCommand("c1", "t1", "lane1", payload, 2, created, attempted, "m:K")
    assert second.id == "c2" and second.payload is None and second.retry_count == 0
    assert second.last_attempt_at is None and second.created_at.tzinfo is not None
    assert reopened.last_load.corrupt == []
    reopened.close()


def test_save_replaces_by_id_and_keeps_the_order(tmp_path):
    storage = LocalStorage(tmp_path)
    for name in ("a", "b", "c"):
        storage.save_command(StoredCommand(name, "t", "l", {"v": 0}))
    storage.save_command(StoredCommand("a", "t", "l", {"v": 1}, retry_count=3))
    loaded = storage.load_commands()
    assert [c.id for c in loaded] == ["a", "b", "c"]
    assert (loaded[0].payload, loaded[0].retry_count) == ({"v": 1}, 3)
    assert storage.count_commands() == 3
    storage.remove_command("b")
    storage.remove_command("not-there")  # not an error
    assert [c.id for c in storage.load_commands()] == ["a", "c"]
    storage.close()


def test_dead_letters_round_trip_in_insertion_order(tmp_path):
    storage = LocalStorage(tmp_path)
    when = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
    letters = [StoredDeadLetter(f"id{n}", "t", "l", f"err {n}", n + 1, when) for n in range(3)]
    for item in letters:
        storage.save_dead_letter(item)
    storage.save_command(StoredCommand("c", "t", "l", {}))
    assert storage.load_dead_letters() == letters
    storage.clear_dead_letters()
    assert storage.load_dead_letters() == []
    assert storage.count_commands() == 1
    storage.save_dead_letter(letters[0])
    storage.clear_all()
    assert storage.load_commands() == [] and storage.load_dead_letters() == []
    storage.close()


def test_an_unserialisable_payload_writes_nothing(tmp_path):
    storage = LocalStorage(tmp_path)
    for payload in ({"x": object()}, {"x": math.nan}, {"x": math.inf}, {1j: 1}):
        with pytest.raises(InvalidPayloadError, match="JSON"):
            storage.save_command(StoredCommand("bad", "t", "l", payload))
    assert storage.count_commands() == 0
    storage.close()


def test_local_storage_implements_the_protocol(tmp_path):
    storage = LocalStorage(tmp_path)
    assert isinstance(storage, Storage)
    assert isinstance(MemoryStorage(), Storage)
    assert not isinstance(object(), Storage)
    storage.close()


# ---- unreadable and locked databases ---------------------------------------------------


def test_a_file_that_is_not_a_database_fails_with_its_path(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite" * 500)
    with pytest.raises(StorageError, match=r"garbage\.db") as caught:
        LocalStorage(path)
    assert isinstance(caught.value, LaneError)
    assert str(path) in str(caught.value)


def test_a_path_that_cannot_be_created_fails_with_its_path(tmp_path):
    blocker_file = tmp_path / "a-file"
    blocker_file.write_text("not a directory")
    target = blocker_file / "state"
    with pytest.raises(StorageError) as caught:
        LocalStorage(target)
    assert str(target) in str(caught.value)


def test_a_locked_database_fails_at_build_with_its_path(tmp_path):
    # Another process holds an exclusive lock on a (rollback-journal) database.
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE other (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageError, match="locked") as caught:
            LocalStorage(path)
        assert str(path) in str(caught.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_locked_wal_database_fails_at_build(tmp_path):
    path = tmp_path / "wal.db"
    LocalStorage(path).close()  # a database in WAL mode with our tables
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageError, match="locked"):
            storage = LocalStorage(path)
            QueueManagerBuilder().with_lane("work", LaneConfig.new(0, 1)).with_storage(
                storage).build()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# ---- wiring -------------------------------------------------------------------------


def test_the_builder_refuses_what_is_not_a_storage():
    class Partial:
        def save_command(self, command):
            pass

    with pytest.raises(InvalidConfigError, match="Storage protocol"):
        QueueManagerBuilder().with_storage(Partial())
    with pytest.raises(InvalidConfigError, match="Storage protocol"):
        QueueManagerBuilder().with_storage("/tmp/path")


def test_sdk_lane_takes_storage_and_dlq(managers, tmp_path):
    storage = LocalStorage(tmp_path)
    lane = managers.sdk([LaneConfig("x", priority=0)], storage=storage, dlq=3)
    assert lane.manager.queue().storage() is storage
    assert lane.manager.dlq().capacity == 3
    assert lane.submit("x", "echo", {"a": 1}) == {"a": 1}
    assert storage.count_commands() == 0


# ---- a queue with storage ----------------------------------------------------------------


def test_a_command_is_on_disk_when_submit_returns(managers, tmp_path):
    storage = LocalStorage(tmp_path)
    manager = storage_manager(managers, storage)
    manager.pause_lane("work")
    before = datetime.now(timezone.utc)
    future = manager.submit("work", Add(2, 3))
    [row] = rows(tmp_path)  # read by another connection, as a new process would
    assert row.id == future.command_id
    assert row.command_type == "add"
    assert row.lane_id == "work"
    assert row.payload == {"a": 2, "b": 3}
    assert row.retry_count == 0
    assert row.last_attempt_at is None
    assert before - timedelta(seconds=1) <= row.created_at <= datetime.now(timezone.utc)
    assert row.kind == kind_of(Add)
    manager.resume_lane("work")
    assert future.result(WAIT) == 5
    assert rows(tmp_path) == []  # removed once it ended


def test_an_ended_command_is_gone_from_disk_whatever_its_outcome(managers, tmp_path, blocker):
    storage = LocalStorage(tmp_path)
    manager = storage_manager(managers, storage, max_concurrency=1)
    ok = manager.submit("work", Add(1, 1))
    bad = manager.submit("work", Fails("nope"))
    assert ok.result(WAIT) == 2
    assert isinstance(bad.exception(WAIT), ValueError)
    manager.pause_lane("work")
    cancelled = manager.submit("work", Add(0, 0))
    assert storage.count_commands() == 1
    assert cancelled.cancel()
    assert storage.count_commands() == 0
    manager.resume_lane("work")
    manager.drain(WAIT)
    assert rows(tmp_path) == []


def test_many_durable_commands_all_end_and_leave_nothing(managers, tmp_path):
    storage = LocalStorage(tmp_path)
    manager = storage_manager(managers, storage, max_concurrency=4)
    futures = [manager.submit("work", Add(i, i)) for i in range(500)]
    _, not_done = wait(futures, WAIT)
    assert not not_done
    assert [f.result() for f in futures] == [2 * i for i in range(500)]
    assert storage.count_commands() == 0


def test_a_retry_updates_the_attempts_on_disk(managers, tmp_path):
    storage = LocalStorage(tmp_path)
    manager = storage_manager(managers, storage, policy=RetryPolicy.fixed(1, 30.0))
    stream = manager.subscribe_filtered(lambda e: e.key == "queue.command.retry")
    future = manager.submit("work", Fails("once"))
    assert stream.recv(WAIT) is not None
    [row] = rows(tmp_path)
    assert row.id == future.command_id
    assert row.retry_count == 1
    assert row.last_attempt_at is not None
    assert row.payload == {"message": "once"}
    assert future.cancel()  # a command waiting out its back-off
    assert rows(tmp_path) == []


def test_a_dead_letter_is_stored(managers, tmp_path):
    storage = LocalStorage(tmp_path)
    manager = storage_manager(managers, storage, policy=RetryPolicy.fixed(1, 0.01), dlq=5)
    future = manager.submit("work", Fails("for good"))
    assert isinstance(future.exception(WAIT), ValueError)
    [stored] = storage.load_dead_letters()
    assert stored.command_id == future.command_id
    assert stored.command_type == "fails"
    assert stored.lane_id == "work"
    assert stored.error == "ValueError: for good"
    assert stored.attempts == 2
    assert stored.failed_at.tzinfo is not None
    [kept] = manager.dlq().list()
    assert (kept.command_id, kept.attempts) == (stored.command_id, 2)
    assert storage.count_commands() == 0


def test_dead_letters_are_stored_even_without_a_dlq(managers, tmp_path):
    storage = LocalStorage(tmp_path)
    manager = storage_manager(managers, storage)
    future = manager.submit("work", Fails("x"))
    future.exception(WAIT)
    assert [x.command_id for x in storage.load_dead_letters()] == [future.command_id]


def test_a_custom_backend_plugs_in(managers):
    storage = MemoryStorage()
    manager = storage_manager(managers, storage, max_concurrency=1)
    manager.pause_lane("work")
    future = manager.submit("work", Add(4, 5))
    [stored] = storage.load_commands()
    assert (stored.id, stored.command_type, stored.payload) == (
        future.command_id, "add", {"a": 4, "b": 5})
    manager.resume_lane("work")
    assert future.result(WAIT) == 9
    assert storage.load_commands() == [] and storage.removed == [future.command_id]
    failed = manager.submit("work", Fails("custom"))
    failed.exception(WAIT)
    assert [x.command_id for x in storage.load_dead_letters()] == [failed.command_id]


# ---- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize("thing", [object(), math.nan, {1, 2}, b"bytes"])
def test_an_unserialisable_payload_fails_that_submit_and_writes_nothing(
        managers, tmp_path, thing):
    storage = LocalStorage(tmp_path)
    manager = storage_manager(managers, storage)
    stream = manager.subscribe()
    with pytest.raises(InvalidPayloadError, match="JSON"):
        manager.submit("work", Holds(thing))
    assert storage.count_commands() == 0
    assert stream.try_recv() is None  # not even a submitted event
    status = manager.stats().lane("work")
    assert (status.submitted, status.pending) == (0, 0)
    # The queue is intact.
    assert manager.submit("work", Add(1, 2)).result(WAIT) == 3
    assert storage.count_commands() == 0


def test_concurrent_durable_submits_from_many_threads(managers, tmp_path):
    storage = LocalStorage(tmp_path)
    manager = storage_manager(managers, storage, max_concurrency=4)
    futures = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def submit_many(index):
        start.wait(WAIT)
        for n in range(100):
            futures[index].append(manager.submit("work", Add(index, n)))

    threads = [threading.Thread(target=submit_many, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    flat = [f for chunk in futures for f in chunk]
    assert len(flat) == 800
    _, not_done = wait(flat, WAIT)
    assert not not_done
    for index, chunk in enumerate(futures):
        assert [f.result() for f in chunk] == [index + n for n in range(100)]
    assert len({f.command_id for f in flat}) == 800
    assert storage.count_commands() == 0


def test_a_plain_callable_cannot_be_stored(managers, tmp_path):
    storage = LocalStorage(tmp_path)
    manager = storage_manager(managers, storage)
    with pytest.raises(InvalidPayloadError, match="Command"):
        manager.submit("work", lambda: 1)
    with pytest.raises(InvalidPayloadError):
        manager.submit("work", print, "x")
    assert storage.count_commands() == 0
    assert manager.stats().lane("work").submitted == 0


def test_sdk_bad_payloads_fail_the_submit_and_write_nothing(managers, tmp_path):
    storage = LocalStorage(tmp_path)
    lane = managers.sdk([LaneConfig("x", priority=0)], storage=storage)
    for payload in ({"a": object()}, {"a": math.nan}, [math.inf]):
        with pytest.raises(InvalidPayloadError):
            lane.submit_async("x", "t", payload)
        with pytest.raises(InvalidPayloadError):
            lane.submit("x", "t", payload)
    assert storage.count_commands() == 0
    assert lane.submit("x", "t", {"fine": True}) == {"fine": True}


def test_a_storage_error_at_submit_fails_that_submit_alone(managers):
    class Refuses(MemoryStorage):
        refuse = True

        def save_command(self, command):
            if self.refuse:
                raise StorageError("disk full")
            super().save_command(command)

    storage = Refuses()
    manager = storage_manager(managers, storage)
    stream = manager.subscribe()
    with pytest.raises(StorageError, match="disk full"):
        manager.submit("work", Add(1, 1))
    assert stream.try_recv() is None
    assert manager.stats().lane("work").submitted == 0
    storage.refuse = False
    assert manager.submit("work", Add(1, 1)).result(WAIT) == 2


def test_a_submit_refused_after_shutdown_writes_nothing(managers, tmp_path):
    from pylane import ShutdownInProgressError

    storage = LocalStorage(tmp_path)
    manager = storage_manager(managers, storage)
    manager.shutdown()
    with pytest.raises(ShutdownInProgressError):
        manager.submit("work", Add(1, 1))
    assert storage.count_commands() == 0


def test_a_storage_error_after_a_command_ran_does_not_lose_the_future_or_the_slot():
    class RemoveFails(MemoryStorage):
        def remove_command(self, command_id):
            raise StorageError("disk gone")

    # Not tracked by `managers`: with the bug, its drain would never return.
    manager = QueueManagerBuilder(EventEmitter()).with_lane(
        "work", LaneConfig.new(0, 1), 0).with_storage(RemoveFails()).build()
    manager.start()
    future = manager.submit("work", Add(1, 2))
    done, _ = wait([future], 2)
    assert future in done, "the future never resolved"
    assert manager.stats().lane("work").active == 0
    manager.shutdown()
    manager.drain(2)


# ---- the DLQ and its stored letters stay in step ----------------------------------------


def fail_for_good(manager, count):
    futures = [manager.submit("work", Fails(f"letter {n}")) for n in range(count)]
    for future in futures:
        assert isinstance(future.exception(WAIT), ValueError)
    return [f.command_id for f in futures]


def stored_ids(storage):
    return [x.command_id for x in storage.load_dead_letters()]


def restart(managers, storage, capacity):
    dlq = DeadLetterQueue(capacity)
    storage_manager(managers, storage, dlq=dlq)
    return dlq


def test_pop_and_clear_remove_stored_letters_too(managers, tmp_path):
    storage = LocalStorage(tmp_path)
    dlq = DeadLetterQueue(10)
    manager = storage_manager(managers, storage, dlq=dlq, max_concurrency=1)
    ids = fail_for_good(manager, 3)
    assert stored_ids(storage) == ids
    assert dlq.pop().command_id == ids[0]
    assert stored_ids(storage) == ids[1:]
    assert [x.command_id for x in restart(managers, storage, 10).list()] == ids[1:]
    dlq.clear()
    assert stored_ids(storage) == []
    assert len(restart(managers, storage, 10)) == 0  # a cleared letter does not come back


def test_evicted_letters_leave_storage_so_it_stays_within_capacity(managers, tmp_path):
    storage = LocalStorage(tmp_path)
    dlq = DeadLetterQueue(2)
    manager = storage_manager(managers, storage, dlq=dlq, max_concurrency=1)
    ids = fail_for_good(manager, 5)
    assert dlq.evicted == 3
    assert stored_ids(storage) == ids[-2:]
    again = restart(managers, storage, 2)
    assert [x.command_id for x in again.list()] == ids[-2:] and again.evicted == 0


def test_a_storage_without_remove_dead_letter_keeps_them_and_clear_still_works(managers):
    storage = MemoryStorage()
    dlq = DeadLetterQueue(10)
    manager = storage_manager(managers, storage, dlq=dlq, max_concurrency=1)
    ids = fail_for_good(manager, 2)
    assert dlq.pop().command_id == ids[0]
    assert stored_ids(storage) == ids  # it cannot remove one letter
    dlq.clear()
    assert stored_ids(storage) == []
