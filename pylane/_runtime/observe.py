"""What a queue reports about itself: its stats, read from the engine, and
the message of a drain that ran out of time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from .._durations import describe
from ..durable.dead_letters import DeadLetterQueue
from ..stats import LaneStatus, QueueStats
from .engine import Engine
from .jobs import Lane
from .pool import WorkerPool


def queue_stats(engine: Engine, lanes: Sequence[Lane], dlq: Optional[DeadLetterQueue],
                pool: WorkerPool) -> QueueStats:
    statuses = []
    for lane in lanes:
        s = engine.lane_stats(lane.index)
        statuses.append(LaneStatus(
            lane_id=lane.lane_id, priority=lane.priority, pending=s.pending,
            active=s.active, min_concurrency=s.min_concurrency,
            max_concurrency=s.max_concurrency, paused=s.paused, submitted=s.submitted,
            completed=s.completed, failed=s.failed, cancelled=s.cancelled,
            delayed=s.delayed, retried=s.retried, throttled=s.throttled,
            timed_out=lane.counters["timed_out"],
            dead_lettered=lane.counters["dead_lettered"],
        ))
    return QueueStats(
        total_pending=sum(s.pending for s in statuses),
        total_active=sum(s.active for s in statuses),
        dead_letter_count=len(dlq) if dlq is not None else 0,
        lanes=statuses,
        total_delayed=sum(s.delayed for s in statuses),
        abandoned_threads=pool.abandoned,
        abandoned_total=pool.abandoned_total,
    )


def drain_timeout_message(stats: QueueStats, seconds: float) -> str:
    """What is left when a drain gives up, lane by lane."""
    busy = [
        f"{s.lane_id}: {s.pending} pending, {s.delayed} retrying, {s.active} active"
        for s in stats.lanes if s.pending or s.active or s.delayed
    ]
    return (
        f"drain timed out after {describe(seconds)} with {stats.total_pending} pending, "
        f"{stats.total_delayed} waiting to retry and {stats.total_active} active "
        f"({'; '.join(busy) or 'finishing'})"
    )
