"""A worker process for test_redis_chaos.py and test_redis_crash.py:

    python tests/redis_chaos_worker.py URL QUEUE SLOTS LEASE LANES_JSON

LANES_JSON: [[lane_id, priority, min, max], ...]. It joins the queue with
SLOTS slots, prints "ready <worker id>" and runs until its stdin closes or it
is killed (the tests SIGKILL it).

Handler "work" {"n", "sleep"}: records the run as the field "<n>:<run id>"
of the hash test:<queue>:runs (every run counts, also one whose worker dies
before it acknowledges; a field, not a counter, so that writing it again
after a lost reply counts once), sleeps, and returns n. While Redis is down
(test_redis_crash.py kills it) the handler retries that write, bounded.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any

import redis

from pylane import LaneConfig, QueueManagerBuilder

RETRY_FOR = 60.0  # seconds a handler keeps trying to count its run while Redis is down


def main() -> None:
    url, queue, slots, lease, lanes = sys.argv[1:6]
    store = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    runs = f"test:{queue}:runs"
    builder = QueueManagerBuilder()
    for lane_id, priority, minimum, maximum in json.loads(lanes):
        builder.with_lane(lane_id, LaneConfig.new(minimum, maximum), priority)
    manager = (builder.with_max_workers(int(slots))
               .with_redis(url, queue=queue, lease=float(lease), events_max=1_000_000,
                           max_lost=1000).build())

    def work(payload: dict[str, Any]) -> int:
        deadline = time.monotonic() + RETRY_FOR
        run = uuid.uuid4().hex[:12]
        while True:
            try:
                store.hset(runs, f"{payload['n']}:{run}", 1)
                break
            except (redis.ConnectionError, redis.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # Redis restarting: bounded by RETRY_FOR
        time.sleep(payload.get("sleep", 0))
        return int(payload["n"])

    manager.queue().json_handlers["work"] = work
    manager.start()
    worker = manager.queue()._worker
    print(f"ready {worker.id if worker else ''}", flush=True)
    sys.stdin.read()
    manager.close()


if __name__ == "__main__":
    main()
