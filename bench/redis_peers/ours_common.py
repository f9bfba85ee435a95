"""a3s-lane's side of bench/bench_redis.py: the queue both its worker
processes and its producer process name. Five lanes, p0 (most urgent) to p4,
no reservation (min_concurrency 0, as the peers have none), each allowed
every slot (max_concurrency 10); Redis mode, queue "bench". With
``reserve``, p0 keeps one of the 10 slots for itself (min_concurrency 1):
the lanes' own answer to urgent work behind a backlog, which the peers do
not have (the bench shows it as a row of its own)."""

from __future__ import annotations

from typing import Any, Optional

from pylane import Lane, LaneConfig

QUEUE = "bench"
LEVELS = 5
SLOTS_TOTAL = 10


def lane(url: str, max_workers: Optional[int] = None, reserve: bool = False) -> Any:
    configs = [LaneConfig(f"p{level}", priority=level,
                          min_concurrency=1 if reserve and level == 0 else 0,
                          max_concurrency=SLOTS_TOTAL) for level in range(LEVELS)]
    return Lane.with_lanes(configs, max_workers=max_workers, redis=url, queue=QUEUE)
