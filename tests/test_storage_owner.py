"""One live owner per LocalStorage.

Two live processes on one storage folder would each "recover" the other's
commands and run them twice. The storage holds an OS lock (flock) for its
life: a second opener fails with a StorageError naming the path and the
holder; the kernel drops the lock when the owner dies, so recovery after a
SIGKILL still works. ``readonly=True`` opens it for inspection alongside.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import WAIT
from pylane import Command, LaneConfig, LocalStorage, QueueManagerBuilder, StorageError

ROOT = Path(__file__).resolve().parent.parent

# The case: process A queues 20 commands on a paused lane and lives on.
OWNER = textwrap.dedent("""
    import sys
    sys.path[:0] = [sys.argv[2], sys.argv[3]]
    from pylane import LaneConfig, LocalStorage, QueueManagerBuilder
    from test_storage_owner import Echo
    manager = (QueueManagerBuilder().with_lane("work", LaneConfig.new(1, 2))
               .with_storage(LocalStorage(sys.argv[1])).build())
    manager.start()
    manager.pause_lane("work")
    for n in range(20):
        manager.submit("work", Echo(n))
    print("READY", flush=True)
    sys.stdin.read()  # lives until the test closes stdin or kills it
""")


class Echo(Command):
    command_type = "echo"

    def __init__(self, n: int) -> None:
        self.n = n

    def execute(self) -> int:
        return self.n

    def to_payload(self):
        return {"n": self.n}

    @classmethod
    def from_payload(cls, payload):
        return cls(payload["n"])


def start_owner(path: Path) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(path), str(ROOT), str(ROOT / "tests")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = child.stdout.readline()
    assert line.strip() == "READY", child.stderr.read()
    return child


def test_a_second_process_cannot_own_a_live_storage(tmp_path):
    child = start_owner(tmp_path)
    try:
        with pytest.raises(StorageError) as caught:
            LocalStorage(tmp_path)
        message = str(caught.value)
        assert str(tmp_path) in message
        assert f"pid {child.pid}" in message
        # Nothing of A's was taken: its 20 commands are still stored, once.
        reader = LocalStorage(tmp_path, readonly=True)
        assert reader.count_commands() == 20
        reader.close()
    finally:
        child.kill()
        child.wait(WAIT)


def test_after_a_sigkill_the_next_process_owns_and_recovers(tmp_path):
    child = start_owner(tmp_path)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(WAIT)
    storage = LocalStorage(tmp_path)  # the kernel dropped the dead owner's lock
    builder = QueueManagerBuilder().with_lane("work", LaneConfig.new(1, 2)).with_storage(storage)
    manager = builder.build()
    manager.start()
    try:
        assert sorted(f.result(WAIT) for f in manager.recovered) == list(range(20))
    finally:
        manager.shutdown()
        manager.drain(WAIT)
        storage.close()


def test_a_second_storage_in_one_process_is_refused_until_the_first_closes(tmp_path):
    first = LocalStorage(tmp_path)
    with pytest.raises(StorageError, match="in use by process pid"):
        LocalStorage(tmp_path)
    first.close()
    second = LocalStorage(tmp_path)
    second.close()


def test_readonly_reads_alongside_the_owner_and_refuses_writes(tmp_path):
    owner = LocalStorage(tmp_path)
    reader = LocalStorage(tmp_path, readonly=True)
    try:
        assert reader.count_commands() == 0
        with pytest.raises(StorageError, match="read-only"):
            reader.remove_command("x")
    finally:
        reader.close()
        owner.close()
