"""a3s-lane worker process for bench/bench_redis.py (the project's venv):

    python bench/redis_peers/ours_worker.py URL SLOTS [reserve]

Joins the Redis queue with SLOTS slots, runs jobs.run_job for the command
type "job", prints "ready" and runs until stdin closes or it is killed."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from jobs import run_job
from ours_common import lane


def main() -> None:
    url, slots = sys.argv[1], int(sys.argv[2])
    queue = lane(url, max_workers=slots, reserve="reserve" in sys.argv[3:])
    queue.register_handler("job", run_job)
    queue.start()
    print("ready", flush=True)
    sys.stdin.read()
    queue.manager.close()


if __name__ == "__main__":
    main()
