"""a3s-lane producer process for bench/bench_redis.py (the project's venv):
joins the queue as a producer only (start(worker=False)) and submits with
manager.submit(lane, "job", payload), one FCALL each, or, for a bulk of jobs,
manager.submit_many(lane, [("job", payload), ...], results=False) per lane
(fire and forget, as the peers' producers: no result comes back); the single
submits' futures resolve in the background, nobody waits on them here.

    python bench/redis_peers/ours_producer.py URL [reserve]"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ours_common import lane
from producer_common import serve


def main() -> None:
    queue = lane(sys.argv[1], reserve="reserve" in sys.argv[2:])
    queue.start(worker=False)
    manager = queue.manager
    lanes = [f"p{level}" for level in range(5)]

    def submit(level: int, payload: dict) -> None:
        manager.submit(lanes[level], "job", payload)

    def bulk(jobs: list[tuple[int, dict]]) -> None:
        # As BullMQ's producer does with addBulk: many jobs per round trip.
        # (submit_many takes one lane: each chunk of 1,000, as BullMQ's, is
        # split by lane.)
        for start in range(0, len(jobs), 1000):
            by_level: dict[int, list[tuple[str, dict]]] = {}
            for level, job in jobs[start:start + 1000]:
                by_level.setdefault(level, []).append(("job", job))
            for level in sorted(by_level):
                manager.submit_many(lanes[level], by_level[level], results=False)

    serve(submit, bulk)
    manager.close()


if __name__ == "__main__":
    main()
