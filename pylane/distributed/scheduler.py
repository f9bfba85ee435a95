"""The coordinator's scheduling step: the C engine decides, partitions execute.

Every queued command is a ticket in one C engine (``pylane._runtime.engine``)
whose worker budget is the number of worker-process slots, so the engine's
rules hold across partitions exactly as in one process: priority with
deadline boost, FIFO inside a lane, each lane's max_concurrency and rate
limit, min_concurrency reservations, pause and resume, cancel of what has
not started. When the engine dispatches a ticket, the partitioner chooses
the worker process that runs it.

A partitioner may choose a busy partition (a keyed command whose partition
is running something else): the command then waits there, in line, and the
engine counts it as active, as it counts a command a worker thread has taken
but not yet begun. So that one such wait does not leave another worker
process idle, each busy partition with a command waiting gives the engine
one slot more (the first waiting command's); a second command waiting on the
same partition takes a slot like a running one. So a partitioner that pins
work can hold back at most a few dispatched commands per partition, and
every rule holds as the engine counts it: a waiting command counts as
active, and a lane's max, rate and pause apply when the engine dispatches.

``Scheduler`` holds no lock and starts no thread: the coordinator calls it
under its own lock, except for the blocking wait on the engine (the engine is
thread-safe). Tests drive it directly with injected time (``submit`` and
``dispatch`` take ``now_ns``) to replay the shared scenario files.
"""

from __future__ import annotations

import itertools
import sys
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Optional

from .._lane_core import ffi, lib
from .._runtime.engine import Engine, check
from ..config import DEFAULT_LANES, LaneConfig
from ..errors import InvalidConfigError, LaneError, LaneNotFoundError, WorkerCrashedError
from ..lanes.boost import PriorityBoostConfig
from ..lanes.rate_limit import RateLimitConfig
from ..stats import LaneStatus
from .protocol import CommandEnvelope, Partitioner

NO_MAX = 2**32 - 1  # a lane without its own max: only the worker processes bound it
COMPLETED = lib.LC_OUTCOME_COMPLETED
FAILED = lib.LC_OUTCOME_FAILED
CANCELLED = lib.LC_OUTCOME_CANCELLED

# Where a command is (Entry.state).
PENDING = "pending"    # in its lane, in the engine
ASSIGNED = "assigned"  # dispatched to a partition, waiting for its worker
RUNNING = "running"    # sent to the partition's worker
CLAIMED = "claimed"    # taken by dequeue(): whoever took it reports it with complete()
DONE = "done"


@dataclass(frozen=True)
class LaneSpec:
    lane_id: str
    priority: int
    min_concurrency: int = 0
    max_concurrency: int = NO_MAX
    rate_limit: Optional[RateLimitConfig] = None
    priority_boost: Optional[PriorityBoostConfig] = None


def lane_specs(lanes: Any) -> list[LaneSpec]:
    """``lanes`` as ``LocalDistributedQueue`` takes it: lane id -> priority or
    ``LaneConfig``; or ``LaneConfig``s with ids; or ``(id, priority)`` pairs;
    None for the six default lanes. Only a ``LaneConfig`` brings
    min/max_concurrency, a rate limit or a boost; other lanes have no
    reservation and no max of their own."""
    if lanes is None:
        items: Iterable[tuple[Any, Any]] = [(lane_id, p) for lane_id, p, _max in DEFAULT_LANES]
    elif isinstance(lanes, Mapping):
        items = lanes.items()
    else:
        items = [(lane.lane_id, lane) if isinstance(lane, LaneConfig) else tuple(lane)[:2]
                 for lane in lanes]
    specs: dict[str, LaneSpec] = {}
    for lane_id, value in items:
        if not isinstance(lane_id, str) or not lane_id:
            raise InvalidConfigError(f"lane id must be a non-empty string, got {lane_id!r}")
        if lane_id in specs:
            raise InvalidConfigError(f"duplicate lane id {lane_id!r}")
        if isinstance(value, LaneConfig):
            rate, boost = value.rate_limit, value.priority_boost
            specs[lane_id] = LaneSpec(
                lane_id, value.priority, value.min_concurrency, value.max_concurrency,
                None if rate is None or rate.is_unlimited else rate,
                boost if boost is not None and boost.enabled else None,
            )
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
            raise InvalidConfigError(
                f"priority for lane {lane_id!r} must be a non-negative integer, got {value!r}"
            )
        specs[lane_id] = LaneSpec(lane_id, value)
    if not specs:
        raise InvalidConfigError("no lanes")
    return list(specs.values())


class Entry:
    """One command from submit to its end."""

    __slots__ = ("enqueued_ns", "envelope", "error", "future", "lane", "partition", "state",
                 "ticket")

    def __init__(self, ticket: int, lane: int, envelope: CommandEnvelope,
                 future: Optional[Future[Any]]) -> None:
        self.ticket = ticket
        self.lane = lane
        self.envelope = envelope
        self.future = future
        self.state = PENDING
        self.partition: Optional[int] = None
        self.enqueued_ns = 0
        self.error: Optional[BaseException] = None  # why it could not be placed

    @property
    def placed_on(self) -> int:
        """The partition it is placed on: for an entry ``assign`` placed (no
        ``error``) or ``claim`` took, so ASSIGNED, RUNNING or CLAIMED."""
        index = self.partition
        assert index is not None, f"command {self.envelope.id} is not placed ({self.state})"
        return index


class PartitionState:
    """One worker process, as the scheduler sees it."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.waiting: deque[Entry] = deque()  # dispatched here, worker busy
        self.running: Optional[Entry] = None
        self.broken: Optional[str] = None  # why it has no worker (none will come)
        self.completed = 0
        self.failed = 0

    def load(self) -> int:
        if self.broken is not None:
            return sys.maxsize  # never the least loaded
        return len(self.waiting) + (self.running is not None)


class Scheduler:
    """Lanes and tickets in one C engine; which partition runs what."""

    def __init__(self, partitions: Sequence[PartitionState], partitioner: Partitioner,
                 lanes: Iterable[LaneSpec] = ()) -> None:
        self.partitions = list(partitions)
        self.engine = Engine(len(self.partitions))
        self.ptr = self.engine.ptr
        self.entries: dict[int, Entry] = {}  # by ticket
        self._by_id: dict[str, Entry] = {}
        self._partitioner = partitioner
        self._lanes: dict[str, int] = {}
        self._tickets = itertools.count(1)
        self._reserved = 0
        self._budget = len(self.partitions)
        self._out = ffi.new("lc_dispatch *")
        for spec in lanes:
            self.add_lane(spec)

    # -- lanes

    def add_lane(self, spec: LaneSpec) -> int:
        if spec.lane_id in self._lanes:
            raise InvalidConfigError(f"duplicate lane id {spec.lane_id!r}")
        index = self.engine.add_lane(spec.priority, spec.min_concurrency, spec.max_concurrency)
        if spec.rate_limit is not None:
            self.engine.set_rate_limit(index, spec.rate_limit.max_commands,
                                       spec.rate_limit.window)
        if spec.priority_boost is not None:
            self.engine.set_boost(index, spec.priority_boost.deadline,
                                  spec.priority_boost.boost_intervals)
        self._reserved += spec.min_concurrency
        self._lanes[spec.lane_id] = index
        return index

    def lane_ids(self) -> list[str]:
        return list(self._lanes)

    def lane_index(self, lane_id: str) -> int:
        index = self._lanes.get(lane_id)
        if index is None:
            raise LaneNotFoundError(lane_id, list(self._lanes))
        return index

    def pause(self, lane_id: str) -> None:
        self.engine.pause(self.lane_index(lane_id))

    def resume(self, lane_id: str) -> None:
        self.engine.resume(self.lane_index(lane_id))

    def lane_status(self, lane_id: str) -> LaneStatus:
        s = self.engine.lane_stats(self.lane_index(lane_id))
        return LaneStatus(
            lane_id=lane_id, priority=s.priority, pending=s.pending, active=s.active,
            min_concurrency=s.min_concurrency, max_concurrency=s.max_concurrency,
            paused=s.paused, submitted=s.submitted, completed=s.completed, failed=s.failed,
            cancelled=s.cancelled, throttled=s.throttled,
        )

    # -- a command's way: submit, dispatch + assign, start, finish

    def find(self, command_id: str) -> Optional[Entry]:
        return self._by_id.get(command_id)

    def submit(self, envelope: CommandEnvelope, future: Optional[Future[Any]] = None,
               now_ns: int = 0) -> Entry:
        """Queues the command at the back of its lane (`now_ns` 0: the clock)."""
        lane = self.lane_index(envelope.lane_id)
        entry = Entry(next(self._tickets), lane, envelope, future)
        check(lib.lc_submit(self.ptr, lane, entry.ticket, now_ns), "submit")
        self.entries[entry.ticket] = entry
        self._by_id[envelope.id] = entry
        return entry

    def dispatch(self, now_ns: int = 0) -> Optional[Entry]:
        """The engine's next command, assigned to a partition; None if
        nothing may start now. (The coordinator's dispatcher waits on the
        engine instead, then calls ``assign``.)"""
        if check(lib.lc_try_next(self.ptr, now_ns, self._out), "dispatch") != lib.LC_DISPATCHED:
            return None
        return self.assign(self._out.ticket, self._out.enqueued_ns)

    def assign(self, ticket: int, enqueued_ns: int) -> Entry:
        """Places a dispatched ticket on the partition the partitioner (or the
        envelope's ``partition_id``) chooses. If there is none to choose, the
        command ends as failed and ``entry.error`` says why."""
        entry = self.entries[ticket]
        entry.enqueued_ns = enqueued_ns
        index = entry.envelope.partition_id
        try:
            if index is None:
                index = self._partitioner(entry.envelope, [p.load() for p in self.partitions])
            partition = self.partition(index)
            if partition.broken is not None:
                raise WorkerCrashedError(partition.broken)
        except Exception as error:
            entry.error = error
            self._end(entry, FAILED)
            return entry
        entry.partition = entry.envelope.partition_id = index
        entry.state = ASSIGNED
        partition.waiting.append(entry)
        self._sync_budget()
        return entry

    def claim(self, ticket: int, enqueued_ns: int, partition: int) -> Entry:
        """A dispatched ticket taken by ``dequeue()`` rather than a worker."""
        entry = self.entries[ticket]
        entry.enqueued_ns = enqueued_ns
        entry.partition = entry.envelope.partition_id = partition
        entry.state = CLAIMED
        return entry

    def start(self, partition: PartitionState) -> Optional[Entry]:
        """The partition's worker is free: the next command waiting for it."""
        if not partition.waiting:
            return None
        entry = partition.waiting.popleft()
        entry.state = RUNNING
        partition.running = entry
        return entry

    def finish(self, entry: Entry, outcome: int, settle: bool = True) -> None:
        """A running (or claimed) command ended: frees its slot. With
        `settle` False the engine wakes nobody for it (``lc_finish``): the
        caller dispatches for the freed worker itself, then calls
        ``settle()``."""
        if entry.state == RUNNING:
            partition = self.partitions[entry.placed_on]
            partition.running = None
            if outcome == COMPLETED:
                partition.completed += 1
            elif outcome == FAILED:
                partition.failed += 1
            self._sync_budget()  # before the engine hands out the slot
        elif entry.state != CLAIMED:
            raise LaneError(f"command {entry.envelope.id} is not running ({entry.state})")
        self._end(entry, outcome, settle)

    def settle(self) -> None:
        """Ends a ``finish(settle=False)``: wakes a waiting dispatcher if work
        is left."""
        lib.lc_settle(self.ptr)

    def cancel(self, entry: Entry) -> bool:
        """Withdraws a command that has not started; False if it has (or if the
        engine dispatched it a moment ago: whoever starts it finds its future
        cancelled)."""
        if entry.state == PENDING:
            if not check(lib.lc_cancel(self.ptr, entry.lane, entry.ticket), "cancel"):
                return False
            self._forget(entry)
            return True
        if entry.state == ASSIGNED:
            self.partitions[entry.placed_on].waiting.remove(entry)
            self._sync_budget()
            self._end(entry, CANCELLED)
            return True
        return False

    def drop_waiting(self) -> list[Entry]:
        """Cancels every command that has not started; returns them."""
        return [entry for entry in list(self.entries.values())
                if entry.state in (PENDING, ASSIGNED) and self.cancel(entry)]

    def abandon(self, partition: PartitionState, broken: Optional[str],
                outcome: int) -> list[Entry]:
        """The partition's thread is gone (`broken`: and no worker will come):
        what was placed on it ends with `outcome`; returns those commands."""
        if broken is not None and partition.broken is None:
            partition.broken = broken
        orphans = list(partition.waiting)
        partition.waiting.clear()
        if partition.running is not None:
            orphans.append(partition.running)
            partition.running = None
        self._sync_budget()
        for entry in orphans:
            self._end(entry, outcome)
        return orphans

    def partition(self, index: Any) -> PartitionState:
        if isinstance(index, bool) or not isinstance(index, int) or not (
            0 <= index < len(self.partitions)
        ):
            raise LaneError(
                f"partition {index!r} is out of range: there are {len(self.partitions)}"
            )
        return self.partitions[index]

    # -- internals

    def _end(self, entry: Entry, outcome: int, wake: bool = True) -> None:
        end = lib.lc_complete if wake else lib.lc_finish
        check(end(self.ptr, entry.lane, outcome), "complete")
        self._forget(entry)

    def _forget(self, entry: Entry) -> None:
        entry.state = DONE
        self.entries.pop(entry.ticket, None)
        if self._by_id.get(entry.envelope.id) is entry:
            del self._by_id[entry.envelope.id]

    def _sync_budget(self) -> None:
        """Budget = live partitions + busy partitions with a command waiting
        (see the module docstring). Never below the lanes' reservations, nor
        0, which would mean unbounded."""
        alive = extra = 0
        for p in self.partitions:
            if p.broken is None:
                alive += 1
                if len(p.waiting) + (p.running is not None) > 1:
                    extra += 1
        target = max(alive + extra, self._reserved, 1)
        if target != self._budget:
            check(lib.lc_set_workers(self.ptr, target), "set workers")
            self._budget = target
