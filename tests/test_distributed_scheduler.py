"""The distributed queue's scheduling step, driven by hand: no processes,
no threads, time injected (``pylane.distributed.scheduler``).

The coordinator runs exactly these calls: ``submit``, then (its dispatcher)
the engine's pick placed by ``assign``, ``start`` when the partition's worker
is free, ``finish`` when it reports. Here the test plays the workers, so the
rules that depend on time (rate limits, deadline boost) are checked to the
nanosecond.
"""

from __future__ import annotations

from typing import Any, Optional

import pytest

from pylane import LaneConfig, PriorityBoostConfig, RateLimitConfig
from pylane._lane_core import lib
from pylane.config import DEFAULT_LANES
from pylane.distributed import CommandEnvelope, LeastLoadedPartitioner, LocalDistributedQueue
from pylane.distributed.scheduler import (
    COMPLETED,
    FAILED,
    NO_MAX,
    Entry,
    LaneSpec,
    PartitionState,
    Scheduler,
    lane_specs,
)
from pylane.errors import InvalidConfigError, LaneError, WorkerCrashedError

SECOND = 1_000_000_000


def make(partitions: int, *lanes: LaneSpec, partitioner: Any = None) -> Scheduler:
    return Scheduler([PartitionState(i) for i in range(partitions)],
                     partitioner or LeastLoadedPartitioner(), lanes)


def submit(scheduler: Scheduler, lane: str, name: str, now: int = 0,
           pin: Optional[int] = None) -> Entry:
    envelope = CommandEnvelope(name, name, lane, b"", partition_id=pin)
    return scheduler.submit(envelope, now_ns=now)


def dispatch_all(scheduler: Scheduler, now: int = 0) -> list[tuple[str, int]]:
    """Dispatches until nothing may start; (name, partition) in order, each
    started at once if its partition's worker is free."""
    placed = []
    while (entry := scheduler.dispatch(now)) is not None:
        assert entry.error is None, entry.error
        partition = scheduler.partitions[entry.partition]
        if partition.running is None:
            scheduler.start(partition)
        placed.append((entry.envelope.id, entry.partition))
    return placed


def finish(scheduler: Scheduler, entry: Entry) -> None:
    """The entry's worker reports, then takes what waits for it."""
    scheduler.finish(entry, COMPLETED)
    scheduler.start(scheduler.partitions[entry.partition])


# ---- lanes ------------------------------------------------------------------------------


def test_lane_specs_from_every_spelling() -> None:
    assert lane_specs(None) == [LaneSpec(lane_id, p) for lane_id, p, _max in DEFAULT_LANES]
    rate, boost = RateLimitConfig(5, 1.0), PriorityBoostConfig.standard(2.0)
    configs = [LaneConfig("a", 3, 1, 2, rate_limit=rate, priority_boost=boost),
               LaneConfig("b", 1, 0, 4, rate_limit=RateLimitConfig.unlimited())]
    assert lane_specs(configs) == [LaneSpec("a", 3, 1, 2, rate, boost), LaneSpec("b", 1, 0, 4)]
    assert lane_specs({"x": 2, "y": LaneConfig("ignored", 0, 0, 1)}) == [
        LaneSpec("x", 2, 0, NO_MAX), LaneSpec("y", 0, 0, 1)]
    assert lane_specs([("p", 1, "extra fields ignored")]) == [LaneSpec("p", 1)]
    for bad in ({}, {"a": True}, {"a": 2**31}, [("a", 0), ("a", 1)], [(None, 1)]):
        with pytest.raises(InvalidConfigError):
            lane_specs(bad)


def test_reservations_must_fit_in_the_partitions() -> None:
    lanes = [LaneConfig("a", 0, 1, 2), LaneConfig("b", 1, 1, 2)]
    with pytest.raises(InvalidConfigError, match="min_concurrency"):
        LocalDistributedQueue(1, lanes=lanes)  # fails before any process starts


# ---- where a dispatched command goes --------------------------------------------------------


def test_a_command_waiting_for_a_busy_partition_leaves_the_others_working() -> None:
    s = make(2, LaneSpec("q", 0))
    a, b = submit(s, "q", "a", pin=0), submit(s, "q", "b", pin=0)
    c, d = submit(s, "q", "c"), submit(s, "q", "d", pin=0)
    e = submit(s, "q", "e")
    # b waits on busy partition 0 without taking partition 1's slot: c runs there.
    assert dispatch_all(s) == [("a", 0), ("b", 0), ("c", 1)]
    assert [len(p.waiting) for p in s.partitions] == [1, 0]
    finish(s, a)  # partition 0 takes b: still nothing free
    assert dispatch_all(s) == []
    finish(s, c)  # partition 1 frees up: d goes to 0 and waits, e runs on 1
    assert dispatch_all(s) == [("d", 0), ("e", 1)]
    assert s.cancel(d)  # a waiting command can be cancelled; its slot comes back
    assert s.engine.lane_stats(0).cancelled == 1
    for entry in (b, e):
        finish(s, entry)
    assert s.engine.totals() == (0, 0) and not s.entries


def test_a_pinning_partitioner_holds_back_at_most_two_per_partition() -> None:
    s = make(2, LaneSpec("urgent", 0), LaneSpec("bulk", 5), partitioner=lambda e, loads: 0)
    bulk = [submit(s, "bulk", f"b{i}") for i in range(6)]
    assert dispatch_all(s) == [("b0", 0), ("b1", 0), ("b2", 0)]
    assert s.lane_status("bulk").pending == 3  # the rest stay in their lane, in order
    submit(s, "urgent", "u")
    finish(s, bulk[0])
    assert dispatch_all(s) == [("u", 0)]  # u overtakes b3..b5: only b2 is ahead of it


def test_a_partitioner_that_fails_fails_the_command_only() -> None:
    def picky(envelope: CommandEnvelope, loads: Any) -> int:
        if envelope.id == "bad":
            raise RuntimeError("no partition for you")
        return 7 if envelope.id == "far" else 0

    s = make(1, LaneSpec("q", 0), partitioner=picky)
    for name in ("bad", "far", "ok"):
        submit(s, "q", name)
    bad, far, ok = s.dispatch(), s.dispatch(), s.dispatch()
    assert isinstance(bad.error, RuntimeError) and isinstance(far.error, LaneError)
    assert "out of range" in str(far.error)
    assert ok.error is None and ok.partition == 0
    assert s.lane_status("q").failed == 2


def test_a_broken_partition_leaves_the_budget_and_fails_what_is_pinned_to_it() -> None:
    s = make(2, LaneSpec("q", 0))
    running = submit(s, "q", "running", pin=1)
    dispatch_all(s)
    orphans = s.abandon(s.partitions[1], "worker gone", FAILED)
    assert orphans == [running] and s.lane_status("q").failed == 1
    submit(s, "q", "pinned", pin=1)
    assert isinstance(s.dispatch().error, WorkerCrashedError)
    first, second = submit(s, "q", "x"), submit(s, "q", "y")
    assert dispatch_all(s) == [("x", 0)]  # one live partition: one slot
    finish(s, first)
    assert dispatch_all(s) == [("y", 0)] and s.partitions[0].running is second


# ---- rules that depend on time ----------------------------------------------------------


def test_a_rate_limit_with_injected_time() -> None:
    s = make(4, LaneSpec("api", 0, rate_limit=RateLimitConfig(2, 1.0)))
    base = lib.lc_now_ns()  # the bucket was filled on the real clock
    for i in range(5):
        submit(s, "api", f"c{i}", now=base)
    assert dispatch_all(s, base) == [("c0", 0), ("c1", 1)]  # a burst of two
    assert s.lane_status("api").throttled
    assert dispatch_all(s, base + SECOND // 2 - 1) == []
    # One token per half second (a few microseconds more: tokens are floats).
    assert dispatch_all(s, base + SECOND // 2 + 10_000) == [("c2", 2)]
    assert dispatch_all(s, base + SECOND - 10_000) == []
    assert dispatch_all(s, base + SECOND + 20_000) == [("c3", 3)]


@pytest.mark.parametrize(("waited", "first"), [
    (0.1, "urgent"),       # 90% of the deadline left: no boost yet
    (0.8, "urgent"),       # 20% left: boost 3, bulk at 2, still behind urgent's 1
    (0.95, "bulk"),        # 5% left: boost 4, bulk at 1, older than urgent's ticket
    (1.5, "bulk"),         # past its deadline: above every lane
])
def test_deadline_boost_with_injected_time(waited: float, first: str) -> None:
    boost = PriorityBoostConfig.standard(1.0)
    s = make(1, LaneSpec("urgent", 1), LaneSpec("bulk", 5, priority_boost=boost))
    base = lib.lc_now_ns()
    submit(s, "bulk", "bulk", now=base)
    submit(s, "urgent", "urgent", now=base + 1)
    assert s.dispatch(base + int(waited * SECOND)).envelope.id == first
