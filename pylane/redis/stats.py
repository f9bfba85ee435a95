"""What ``stats()`` of a Redis queue returns: today's ``QueueStats`` and
``LaneStatus``, cluster-wide, plus what only a shared queue has: live
workers, why a lane with pending work waits, late acks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..stats import LaneStatus, QueueStats


@dataclass(frozen=True)
class WorkerStatus:
    worker_id: str
    slots: int
    active: int  # commands it holds now
    types: tuple[str, ...]  # command types it has handlers for
    lease_left: float  # seconds until its lease expires (negative: about to be reaped)
    beat_age: float  # seconds since its last heartbeat
    info: str = ""


@dataclass(frozen=True, repr=False)
class RedisLaneStatus(LaneStatus):
    dispatched: int = 0
    requeued: int = 0  # given back by a worker that died (lease expired)
    waiting: str = ""  # why pending commands do not start now ("" when they can)


@dataclass(frozen=True, repr=False)
class RedisQueueStats(QueueStats):
    slots: int = 0  # the live workers' slots
    workers: tuple[WorkerStatus, ...] = field(default_factory=tuple)
    late_acks: int = 0  # acks refused because the lease had moved (ran again elsewhere)


def from_reply(raw: dict[str, Any]) -> RedisQueueStats:
    lanes: list[LaneStatus] = [
        RedisLaneStatus(
            lane_id=s["lane_id"], priority=int(s["priority"]), pending=int(s["pending"]),
            active=int(s["active"]), min_concurrency=int(s["min"]),
            max_concurrency=int(s["max"]), paused=bool(s["paused"]),
            submitted=int(s["submitted"]), completed=int(s["completed"]),
            failed=int(s["failed"]), cancelled=int(s["cancelled"]), delayed=int(s["delayed"]),
            retried=int(s["retried"]), timed_out=int(s["timed_out"]),
            dead_lettered=int(s["dead_lettered"]), throttled=bool(s["throttled"]),
            dispatched=int(s["dispatched"]), requeued=int(s["requeued"]),
            waiting=s.get("waiting") or "",
        )
        for s in raw["lanes"]
    ]
    workers = tuple(
        WorkerStatus(
            worker_id=w["worker_id"], slots=int(w["slots"]), active=int(w["active"]),
            types=tuple(json.loads(w["types"]) or ()),
            lease_left=float(w["lease_left_ms"]) / 1000.0,
            beat_age=float(w["beat_age_ms"]) / 1000.0, info=w.get("info") or "",
        )
        for w in raw["workers"]
    )
    return RedisQueueStats(
        total_pending=sum(s.pending for s in lanes),
        total_active=sum(s.active for s in lanes),
        dead_letter_count=int(raw["dead_letters"]),
        lanes=lanes,
        total_delayed=int(raw["delayed"]),
        slots=int(raw["slots"]),
        workers=workers,
        late_acks=int(raw["late_acks"]),
    )
