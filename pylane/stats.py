"""Snapshots of queue state: ``QueueStats`` with one ``LaneStatus`` per lane.

Field names follow the original SDK (``lane_id``, ``pending``, ``active``,
``min_concurrency``, ``max_concurrency``; ``total_pending``,
``total_active``); the counters are ours.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class LaneStatus:
    lane_id: str
    priority: int
    pending: int
    active: int
    min_concurrency: int
    max_concurrency: int
    paused: bool = False
    submitted: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    delayed: int = 0  # waiting out a retry delay
    retried: int = 0
    timed_out: int = 0
    dead_lettered: int = 0
    throttled: bool = False  # out of rate-limit tokens right now

    # The Rust names.
    @property
    def min(self) -> int:
        return self.min_concurrency

    @property
    def max(self) -> int:
        return self.max_concurrency

    def __repr__(self) -> str:
        return (
            f"LaneStatus(lane_id={self.lane_id!r}, pending={self.pending}, active={self.active}, "
            f"min={self.min_concurrency}, max={self.max_concurrency})"
        )


@dataclass(frozen=True)
class QueueStats:
    total_pending: int
    total_active: int
    dead_letter_count: int = 0
    lanes: list[LaneStatus] = field(default_factory=list)
    total_delayed: int = 0  # waiting out a retry delay
    abandoned_threads: int = 0  # still running a command that timed out
    abandoned_total: int = 0

    def lane(self, lane_id: str) -> Optional[LaneStatus]:
        for status in self.lanes:
            if status.lane_id == lane_id:
                return status
        return None

    def by_lane(self) -> dict[str, LaneStatus]:
        return {status.lane_id: status for status in self.lanes}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __repr__(self) -> str:
        return (
            f"QueueStats(pending={self.total_pending}, active={self.total_active}, "
            f"lanes={len(self.lanes)})"
        )
