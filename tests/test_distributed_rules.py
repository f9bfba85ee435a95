"""LocalDistributedQueue keeps every lane rule across worker processes.

Each test fails with a per-partition scheduler (commands queued per process,
ordered by priority there): the rules are measured by the commands
themselves (start and end times on the machine-wide monotonic clock, the
order they ran in, whether one finished while another was held), not only by
the engine's counters. Commands that hold a worker use the socket gate of
test_distributed.py; every wait has a timeout.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import pytest
from test_distributed import Holds, hold, pid, tagged

from conftest import WAIT
from pylane import LaneConfig, PriorityBoostConfig, RateLimitConfig
from pylane.distributed import LocalDistributedQueue

# ---- commands (run in the worker processes) ------------------------------------------


def span(seconds: float) -> tuple[float, float, int]:
    """Works for `seconds`; returns when it started and ended."""
    started = time.monotonic()
    time.sleep(seconds)
    return started, time.monotonic(), os.getpid()


def stamp() -> float:
    return time.monotonic()


# ---- fixtures ------------------------------------------------------------------------


@pytest.fixture
def holds() -> Any:
    gate = Holds()
    yield gate
    gate.close()


@pytest.fixture
def make_queue() -> Any:
    made: list[LocalDistributedQueue] = []

    def make(*args: Any, **kwargs: Any) -> LocalDistributedQueue:
        queue = LocalDistributedQueue(*args, **kwargs)
        made.append(queue)
        assert queue.wait_ready(WAIT)
        return queue

    yield make
    for queue in made:
        queue.shutdown(cancel_pending=True, timeout=WAIT)
        assert all(p.process is None for p in queue._partitions)


def capped(lane_id: str, priority: int, maximum: int, minimum: int = 0,
           **options: Any) -> LaneConfig:
    return LaneConfig(lane_id, priority, minimum, maximum, **options)


# ---- the rules -------------------------------------------------------------------------


def test_max_concurrency_holds_across_partitions(make_queue: Callable) -> None:
    queue = make_queue(2, lanes=[capped("one", 0, 1), capped("other", 1, 2)])
    ones = [queue.submit("one", span, 0.05) for _ in range(3)]
    others = [queue.submit("other", span, 0.05) for _ in range(2)]
    runs = sorted(f.result(WAIT) for f in ones)
    # A command's end is stamped before its result is sent, and the next one
    # is dispatched only once that result is in: no overlap, whatever the load.
    for before, after in zip(runs, runs[1:]):
        assert after[0] >= before[1], f"lane 'one' (max 1) ran two at once: {runs}"
    assert all(f.result(WAIT) for f in others)
    assert queue.lane_stats("one").completed == 3


def test_a_min_concurrency_reservation_holds(make_queue: Callable, holds: Holds) -> None:
    # 2 processes; lane B reserves one, so the more urgent lane A may run only one.
    queue = make_queue(2, lanes=[capped("A", 0, 2), capped("B", 5, 1, minimum=1)])
    first = queue.submit("A", hold, holds.port, "a1")
    second = queue.submit("A", hold, holds.port, "a2")
    gate = holds.started()
    reserved = queue.submit("B", tagged, "b1")
    assert reserved.result(WAIT)[0] == "b1"  # ran while A held its one process
    assert (queue.lane_stats("A").active, queue.lane_stats("A").pending) == (1, 1)
    gate.sendall(b"g")
    holds.started().sendall(b"g")
    assert sorted([first.result(WAIT)[0], second.result(WAIT)[0]]) == ["a1", "a2"]


def test_a_paused_lane_starts_nothing_until_resumed(make_queue: Callable) -> None:
    queue = make_queue(2)
    queue.pause_lane("prompt")
    paused = [queue.submit("prompt", tagged, f"p{i}") for i in range(2)]
    assert queue.submit("query", tagged, "q").result(WAIT)[0] == "q"
    status = queue.lane_stats("prompt")
    assert (status.paused, status.pending, status.active) == (True, 2, 0)
    assert not any(f.done() for f in paused)
    queue.resume_lane("prompt")
    assert [f.result(WAIT)[0] for f in paused] == ["p0", "p1"]


def test_a_rate_limit_spaces_the_starts(make_queue: Callable) -> None:
    window = 0.2
    queue = make_queue(2, lanes=[capped("api", 0, 2, rate_limit=RateLimitConfig(1, window))])
    submitted = time.monotonic()
    starts = sorted(f.result(WAIT) for f in [queue.submit("api", stamp) for _ in range(3)])
    # The k-th start cannot come before k windows after the submit (a loaded
    # machine can only make a start later); unlimited, all three start at once.
    for k, started in enumerate(starts):
        assert started >= submitted + k * window - 0.005, (k, started - submitted)


def test_a_deadline_boost_reorders_across_lanes(make_queue: Callable, holds: Holds) -> None:
    boost = PriorityBoostConfig.new(0.1)  # past 0.1 s waiting, above every lane
    queue = make_queue(1, lanes=[capped("urgent", 1, 2), capped("bulk", 5, 1,
                                                                 priority_boost=boost)])
    blocker = queue.submit("urgent", hold, holds.port)
    gate = holds.started()
    submitted = time.monotonic()
    bulk = queue.submit("bulk", tagged, "bulk")
    urgent = queue.submit("urgent", tagged, "urgent")
    time.sleep(max(0.0, submitted + 0.15 - time.monotonic()))  # past bulk's deadline
    gate.sendall(b"g")
    blocker.result(WAIT)
    assert bulk.result(WAIT)[1] < urgent.result(WAIT)[1]  # the worker ran bulk first


def test_fifo_inside_a_lane_across_partitions(make_queue: Callable, holds: Holds) -> None:
    queue = make_queue(2)
    blockers = [queue.submit("query", hold, holds.port, f"h{i}") for i in range(2)]
    gates = [holds.started(), holds.started()]
    futures = [queue.submit("query", tagged, f"c{i}") for i in range(4)]
    gates[0].sendall(b"g")  # one process frees up; the other stays held
    done = [f.result(WAIT) for f in futures]
    assert [tag for tag, _order, _pid in sorted(done, key=lambda r: r[1])] == [
        "c0", "c1", "c2", "c3"]
    assert len({p for _tag, _order, p in done}) == 1
    gates[1].sendall(b"g")
    assert all(f.result(WAIT)[0].startswith("h") for f in blockers)


def test_cancel_takes_a_pending_command_out_of_its_lane(make_queue: Callable,
                                                        holds: Holds) -> None:
    queue = make_queue(2, lanes=[capped("one", 0, 1)])
    blocker = queue.submit("one", hold, holds.port)
    gate = holds.started()
    doomed = queue.submit("one", tagged, "doomed")  # waits for the lane, not a process
    kept = queue.submit("one", tagged, "kept")
    assert doomed.cancel()
    status = queue.lane_stats("one")
    assert (status.pending, status.cancelled) == (1, 1)
    gate.sendall(b"g")
    assert kept.result(WAIT)[0] == "kept" and blocker.result(WAIT)[0] == "held"
    assert doomed.cancelled()
    status = queue.lane_stats("one")
    assert (status.completed, status.cancelled, status.pending) == (2, 1, 0)


# ---- partitions: where, not when ---------------------------------------------------------


def test_a_keyed_command_waits_for_its_partition_without_idling_the_other(
        make_queue: Callable, holds: Holds) -> None:
    queue = make_queue(2)
    pids = [s.pid for s in queue.stats()]
    key = next(k for k in map(str, range(20)) if queue.partition_for(k) == 0)
    blocker = queue.submit("query", hold, holds.port, partition_key=key)
    gate = holds.started()
    keyed = queue.submit("query", tagged, "keyed", partition_key=key)
    assert queue.submit("query", pid).result(WAIT) == pids[1]  # not held back by `keyed`
    assert [s.pending for s in queue.stats()] == [1, 0]  # keyed waits on partition 0
    assert keyed.cancel()
    assert [s.pending for s in queue.stats()] == [0, 0]
    assert queue.submit("query", pid).result(WAIT) == pids[1]
    gate.sendall(b"g")
    assert blocker.result(WAIT)[2] == pids[0]
    assert queue.lane_stats("query").cancelled == 1


def test_queue_commands_and_id_cancel(make_queue: Callable, holds: Holds) -> None:
    queue = make_queue(1)
    assert not queue.cancel("no-such-id")
    assert queue.dequeue(0, timeout=0) is None
    queue.pause_lane("query")
    queue.submit("query", tagged, "x")
    assert queue.dequeue(0, timeout=0.01) is None  # paused: nothing may start
    (command_id,) = [e.envelope.id for e in queue._scheduler.entries.values()]
    assert queue.cancel(command_id)
    assert queue.lane_stats("query").cancelled == 1


def test_worker_processes_do_not_import_pylane(make_queue: Callable) -> None:
    queue = make_queue(1)
    # eval is a builtin: running it imports nothing, so this sees what the
    # worker process itself loaded.
    loaded = queue.submit("query", eval, "[m for m in __import__('sys').modules "
                                         "if m.startswith('pylane')]").result(WAIT)
    assert loaded == []
