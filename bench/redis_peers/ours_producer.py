"""a3s-lane producer process for bench/bench_redis.py (the project's venv):
joins the queue as a producer only (start(worker=False)) and submits with
manager.submit(lane, "job", payload), one FCALL each; the futures resolve
in the background (the results waiter), nobody waits on them here.

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

    serve(submit)
    manager.close()


if __name__ == "__main__":
    main()
