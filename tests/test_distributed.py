"""LocalDistributedQueue: worker processes, priority, partitioning, errors.

Commands run in other processes, so they are module-level functions here
(the workers import this module). A command that must hold its worker
connects to a socket the test listens on and waits for a byte: the test
knows it started when it accepts, and releases it by sending. Every queue
is shut down at teardown, its processes terminated if need be.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import zlib
from typing import Any, Callable

import pytest

from conftest import WAIT
from pylane import Command
from pylane.distributed import (
    CommandEnvelope,
    CommandSerializationError,
    DistributedQueue,
    HashPartitioner,
    LeastLoadedPartitioner,
    LocalDistributedQueue,
    RemoteCommandError,
    RemoteTraceback,
    RoundRobinPartitioner,
    WorkerCrashedError,
)
from pylane.errors import InvalidConfigError, LaneError, LaneNotFoundError, ShutdownInProgressError

# ---- commands (run in the worker processes) ------------------------------------------

_ORDER = itertools.count()  # per worker process: the order commands ran in


def tagged(tag: str) -> tuple[str, int, int]:
    return tag, next(_ORDER), os.getpid()


def add(a: int, b: int = 0) -> int:
    return a + b


def pid() -> int:
    return os.getpid()


def hold(port: int, tag: str = "held") -> tuple[str, int, int]:
    """Tells the test it started, then waits for its go (or the socket to
    close) before returning."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as conn:
        conn.sendall(b"s")
        conn.settimeout(WAIT * 3)
        conn.recv(1)
    return tagged(tag)


def fail(message: str) -> None:
    raise ValueError(message)


class NeedsTwoArgs(Exception):
    def __init__(self, code: int, detail: str) -> None:  # pickles, cannot be rebuilt
        super().__init__(f"{code}: {detail}")


def raise_unrebuildable() -> None:
    raise NeedsTwoArgs(7, "custom")


def raise_with_a_lock() -> None:
    error = RuntimeError("holds a lock")
    error.lock = threading.Lock()  # type: ignore[attr-defined]
    raise error


def return_a_lock() -> threading.Lock:
    return threading.Lock()


def exit_hard(code: int) -> None:
    os._exit(code)


class Multiply(Command):
    def __init__(self, a: int, b: int) -> None:
        self.a, self.b = a, b

    def execute(self) -> int:
        return self.a * self.b


# ---- helpers -------------------------------------------------------------------------


class Holds:
    """A listening socket for `hold` commands."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.server.settimeout(WAIT)
        self.port = self.server.getsockname()[1]
        self.conns: list[socket.socket] = []

    def started(self) -> socket.socket:
        conn, _ = self.server.accept()
        assert conn.recv(1) == b"s"
        self.conns.append(conn)
        return conn

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.server.close()


@pytest.fixture
def holds() -> Any:
    gate = Holds()
    yield gate
    gate.close()


@pytest.fixture
def make_queue() -> Any:
    made: list[LocalDistributedQueue] = []

    def make(*args: Any, auto: bool = False, **kwargs: Any) -> LocalDistributedQueue:
        if auto:
            queue = LocalDistributedQueue.auto(**kwargs)
        else:
            queue = LocalDistributedQueue(*args, **kwargs)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        queue.shutdown(cancel_pending=True, timeout=WAIT)
        for partition in queue._partitions:
            assert partition.thread is None or not partition.thread.is_alive()
            assert partition.process is None


def worker_pids(queue: LocalDistributedQueue) -> list[int]:
    assert queue.wait_ready(WAIT)
    return [s.pid for s in queue.stats()]


# ---- configuration (no processes) -------------------------------------------------------


@pytest.mark.parametrize("count", [0, -1, "2", True, 1.0])
def test_bad_partition_counts_fail(count: Any) -> None:
    with pytest.raises(InvalidConfigError, match="num_partitions"):
        LocalDistributedQueue(count)


@pytest.mark.parametrize("lanes", [{}, {"a": -1}, {"": 0}, [("a", 0), ("a", 1)]])
def test_bad_lanes_fail(lanes: Any) -> None:
    with pytest.raises(InvalidConfigError):
        LocalDistributedQueue(1, lanes=lanes)


def test_partitioners() -> None:
    envelope = CommandEnvelope("id", "work", "query", b"")
    round_robin = RoundRobinPartitioner()
    assert [round_robin(envelope, [0, 0, 0]) for _ in range(5)] == [0, 1, 2, 0, 1]
    keyed = CommandEnvelope("id", "work", "query", b"", partition_key="user-7")
    assert HashPartitioner()(keyed, [0] * 4) == zlib.crc32(b"user-7") % 4
    assert HashPartitioner()(envelope, [0] * 4) == zlib.crc32(b"work") % 4
    least = LeastLoadedPartitioner()
    assert least(envelope, [3, 0, 5]) == 1
    assert {least(envelope, [0, 0]) for _ in range(4)} == {0, 1}  # ties alternate
    assert least(keyed, [0, 9, 9, 9]) == zlib.crc32(b"user-7") % 4  # a key wins over load


# ---- running commands ---------------------------------------------------------------------


def test_results_exceptions_and_commands(make_queue: Callable) -> None:
    queue = make_queue(1)
    assert isinstance(queue, DistributedQueue)
    assert queue.num_partitions() == 1 and queue.worker_id().startswith("local-")
    assert queue.submit("query", add, 2, b=3).result(WAIT) == 5
    assert queue.submit("query", Multiply(6, 7)).result(WAIT) == 42
    with pytest.raises(ValueError, match="boom") as raised:
        queue.submit("query", fail, "boom").result(WAIT)
    assert isinstance(raised.value.__cause__, RemoteTraceback)
    assert "in fail" in str(raised.value.__cause__)
    assert queue.submit("query", pid).result(WAIT) != os.getpid()


def test_auto_has_one_partition_per_cpu(make_queue: Callable) -> None:
    queue = make_queue(auto=True)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert queue.num_partitions() == cpus
    assert len(set(worker_pids(queue))) == queue.num_partitions()


def test_unpicklable_commands_fail_that_submit_only(make_queue: Callable) -> None:
    queue = make_queue(1)
    local_value = 3
    for command, args in ((lambda: 1, ()), (lambda: local_value, ()), (add, (threading.Lock(),))):
        with pytest.raises(CommandSerializationError, match="cannot be sent") as raised:
            queue.submit("query", command, *args)
        assert isinstance(raised.value, LaneError)
    assert [s.pending for s in queue.stats()] == [0]
    assert queue.submit("query", add, 1, 1).result(WAIT) == 2


def test_unknown_lane_and_bad_key(make_queue: Callable) -> None:
    queue = make_queue(1)
    with pytest.raises(LaneNotFoundError):
        queue.submit("nope", add, 1)
    with pytest.raises(TypeError, match="partition key"):
        queue.submit("query", add, 1, partition_key=1.5)


def test_a_result_that_cannot_be_pickled_fails_its_future(make_queue: Callable) -> None:
    queue = make_queue(1)
    with pytest.raises(CommandSerializationError, match="cannot be pickled back"):
        queue.submit("query", return_a_lock).result(WAIT)
    assert queue.submit("query", add, 4).result(WAIT) == 4


@pytest.mark.parametrize(("command", "text"), [
    (raise_unrebuildable, "NeedsTwoArgs"), (raise_with_a_lock, "holds a lock"),
])
def test_exceptions_that_cannot_cross_become_remote_errors(
        make_queue: Callable, command: Callable, text: str) -> None:
    queue = make_queue(1)
    with pytest.raises(RemoteCommandError, match=text) as raised:
        queue.submit("query", command).result(WAIT)
    assert isinstance(raised.value, LaneError)
    assert command.__name__ in raised.value.remote_traceback


def test_a_crashed_worker_fails_its_command_and_is_replaced(make_queue: Callable) -> None:
    queue = make_queue(1)
    (before,) = worker_pids(queue)
    with pytest.raises(WorkerCrashedError, match="exited with code 3"):
        queue.submit("query", exit_hard, 3).result(WAIT)
    after = queue.submit("query", pid).result(WAIT)
    assert after != before


# ---- priority and partitions ----------------------------------------------------------------


def test_lane_priority_holds_within_a_partition(make_queue: Callable, holds: Holds) -> None:
    queue = make_queue(1)
    blocker = queue.submit("prompt", hold, holds.port)
    release = holds.started()
    submitted = [("prompt", "p1"), ("query", "q1"), ("system", "s1"), ("prompt", "p2"),
                 ("query", "q2"), ("system", "s2")]
    futures = [queue.submit(lane, tagged, tag) for lane, tag in submitted]
    # They wait in their lanes (the engine), not on the busy partition.
    assert sum(queue.lane_stats(lane).pending for lane in queue.lane_ids()) == 6
    assert [s.pending for s in queue.stats()] == [0]
    release.sendall(b"g")
    blocker.result(WAIT)
    ran = sorted((f.result(WAIT) for f in futures), key=lambda r: r[1])
    assert [tag for tag, _order, _pid in ran] == ["s1", "s2", "q1", "q2", "p1", "p2"]


def test_partitions_run_in_parallel_processes(make_queue: Callable, holds: Holds) -> None:
    queue = make_queue(2)
    key_for = {queue.partition_for(k): k for k in map(str, range(20))}
    first = queue.submit("query", hold, holds.port, "a", partition_key=key_for[0])
    second = queue.submit("query", hold, holds.port, "b", partition_key=key_for[1])
    gates = [holds.started(), holds.started()]  # both running at once
    for gate in gates:
        gate.sendall(b"g")
    pids = {first.result(WAIT)[2], second.result(WAIT)[2]}
    assert pids == set(worker_pids(queue)) and len(pids) == 2


def test_a_key_always_goes_to_the_same_partition(make_queue: Callable) -> None:
    queue = make_queue(2)
    pids = worker_pids(queue)
    assert queue.partition_for("abc") == zlib.crc32(b"abc") % 2
    for key in ("alpha", "beta", "gamma", "delta", b"raw", 12345):
        expected = pids[queue.partition_for(key)]
        results = [queue.submit("query", pid, partition_key=key) for _ in range(2)]
        assert [f.result(WAIT) for f in results] == [expected, expected]


def test_unkeyed_work_goes_to_the_least_loaded_partition(make_queue: Callable,
                                                         holds: Holds) -> None:
    queue = make_queue(2)
    pids = worker_pids(queue)
    busy_key = next(k for k in map(str, range(20)) if queue.partition_for(k) == 0)
    blocker = queue.submit("query", hold, holds.port, partition_key=busy_key)
    release = holds.started()
    assert queue.submit("query", pid).result(WAIT) == pids[1]
    release.sendall(b"g")
    assert blocker.result(WAIT)[2] == pids[0]


def test_custom_partitioner_out_of_range_fails_the_command(make_queue: Callable) -> None:
    # The partitioner is asked once the command is dispatched, so its answer
    # fails the command's future rather than the submit.
    queue = make_queue(1, partitioner=lambda envelope, loads: 5)
    with pytest.raises(LaneError, match="out of range"):
        queue.submit("query", add, 1).result(WAIT)
    assert queue.lane_stats("query").failed == 1


def test_a_pinned_partition_out_of_range_fails_the_enqueue(make_queue: Callable) -> None:
    queue = make_queue(1)
    with pytest.raises(LaneError, match="out of range"):
        queue.enqueue(CommandEnvelope("id", "add", "query", b"", partition_id=3))


# ---- cancel and shutdown --------------------------------------------------------------------


def test_a_pending_future_can_be_cancelled(make_queue: Callable, holds: Holds) -> None:
    queue = make_queue(1)
    blocker = queue.submit("query", hold, holds.port)
    release = holds.started()
    doomed = queue.submit("query", tagged, "doomed")
    kept = queue.submit("query", tagged, "kept")
    assert doomed.cancel()
    release.sendall(b"g")
    assert kept.result(WAIT)[0] == "kept"
    assert blocker.result(WAIT)[1] + 1 == kept.result(WAIT)[1]  # nothing ran in between
    assert doomed.cancelled()


def test_close_runs_what_was_queued_then_stops_the_processes() -> None:
    with LocalDistributedQueue(2) as queue:
        futures = [queue.submit("query", add, i) for i in range(6)]
        processes = [p.process for p in queue._partitions]
    assert [f.result(0) for f in futures] == list(range(6))
    assert all(p is None or (not p.is_alive() and p.exitcode == 0) for p in processes)
    with pytest.raises(ShutdownInProgressError):
        queue.submit("query", add, 1)


def test_shutdown_can_cancel_pending_commands(make_queue: Callable, holds: Holds) -> None:
    queue = make_queue(1)
    blocker = queue.submit("query", hold, holds.port)
    release = holds.started()
    pending = [queue.submit("query", add, i) for i in range(3)]
    queue.shutdown(wait=False, cancel_pending=True)
    assert all(f.cancelled() for f in pending)
    release.sendall(b"g")
    assert blocker.result(WAIT)[0] == "held"
    queue.shutdown(timeout=WAIT)


def test_shutdown_timeout_terminates_stuck_workers(make_queue: Callable, holds: Holds) -> None:
    queue = make_queue(1)
    stuck = queue.submit("query", hold, holds.port)
    holds.started()  # never released
    queue.shutdown(timeout=0.2)
    with pytest.raises(WorkerCrashedError, match="terminated"):
        stuck.result(WAIT)
    assert queue._partitions[0].process is None
