"""Worker processes (tests/redis_chaos_worker.py) for the chaos and crash
tests, started and stopped (or SIGKILLed) by PID, and what their runs and
the queue's event stream say afterwards. Every wait is bounded."""

from __future__ import annotations

import contextlib
import json
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from pylane.redis.events import events_of

WORKER = Path(__file__).with_name("redis_chaos_worker.py")
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


def kill_process(process: subprocess.Popen[str], timeout: float = STOP_TIMEOUT) -> None:
    """SIGKILL: no leave, no ack; its lease has to run out."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout)


def stop_process(process: subprocess.Popen[str], timeout: float = STOP_TIMEOUT) -> None:
    """Closes its stdin (a worker or agent then leaves the queue and exits);
    terminates it, then kills it, if it does not within `timeout` each."""
    if process.poll() is not None:
        return
    try:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout)
        return
    except (subprocess.TimeoutExpired, OSError):
        pass
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


class WorkerProcess:
    """One worker process; ``id`` is its worker id in the queue."""

    def __init__(self, url: str, queue: str, slots: int, lease: float,
                 lanes: list[list[Any]], log: Optional[Path] = None) -> None:
        with contextlib.ExitStack() as files:  # the child has its own copy of the file
            stderr = files.enter_context(open(log, "a")) if log is not None else None
            self.process = subprocess.Popen(
                [sys.executable, str(WORKER), url, queue, str(slots), str(lease),
                 json.dumps(lanes)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
        self.id = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self) -> WorkerProcess:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], READY_TIMEOUT)
        line = self.process.stdout.readline() if ready else ""
        assert line.startswith("ready "), f"worker {self.pid} did not start: {line!r}"
        self.id = line.split(" ", 1)[1].strip()
        return self

    def kill(self) -> None:
        kill_process(self.process)

    def stop(self) -> None:
        stop_process(self.process)


class Fleet:
    """The test's worker processes; ``stop_all()`` at teardown."""

    def __init__(self, url: str, queue: str, slots: int, lease: float,
                 lanes: list[list[Any]], log: Optional[Path] = None) -> None:
        """`log`: a file the workers' stderr (their log) goes to."""
        self.args = (url, queue, slots, lease, lanes)
        self.log = log
        self.all: list[WorkerProcess] = []

    def spawn(self, count: int = 1) -> list[WorkerProcess]:
        batch = [WorkerProcess(*self.args, log=self.log) for _ in range(count)]
        self.all.extend(batch)
        return [worker.wait_ready() for worker in batch]

    def stop_all(self) -> None:
        for worker in self.all:
            worker.stop()


def runs_per_command(store: Any, queue: str) -> Counter[int]:
    """How many times each command's handler began (fields "<n>:<run id>")."""
    return Counter(int(field.split(b":", 1)[0]) for field in store.hkeys(f"test:{queue}:runs"))


def events(store: Any, queue: str) -> list[tuple[int, str, dict[str, Any]]]:
    """The queue's whole event stream: (Redis ms, key, data), in order."""
    out = []
    key = f"a3s:{{{queue}}}:events"
    last = "-"
    while True:
        batch = store.xrange(key, min=last, count=10_000)
        if last != "-":
            batch = batch[1:]
        if not batch:
            return out
        for entry_id, fields in batch:
            for event in events_of(entry_id, fields):  # a Lua call's events, in order
                out.append((int(entry_id.split(b"-")[0]), event.key, event.payload))
        last = batch[-1][0].decode()


def front_violations(stream: list[tuple[int, str, dict[str, Any]]]) -> list[str]:
    """Commands given back by a lost worker must start before anything that
    waited behind them in their lane: while a lane owes such commands, the
    next start in that lane must be one of them."""
    owed: dict[str, set[str]] = {}
    problems = []
    for _ms, key, data in stream:
        if key == "queue.command.requeued":
            owed.setdefault(data["lane_id"], set()).add(data["command_id"])
        elif key == "queue.command.started":
            waiting = owed.get(data["lane_id"])
            if waiting:
                if data["command_id"] in waiting:
                    waiting.discard(data["command_id"])
                else:
                    problems.append(f"{data['command_id']} started in {data['lane_id']} before "
                                    f"the requeued {sorted(waiting)}")
    return problems


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def first(stream: list[tuple[int, str, dict[str, Any]]], key: str,
          **match: Any) -> Optional[tuple[int, str, dict[str, Any]]]:
    for entry in stream:
        if entry[1] == key and all(entry[2].get(k) == v for k, v in match.items()):
            return entry
    return None
