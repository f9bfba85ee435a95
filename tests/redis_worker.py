"""A worker process for test_redis_cluster.py:

    python tests/redis_worker.py URL QUEUE SLOTS LEASE LANES_JSON [TYPES]

LANES_JSON: [[lane_id, priority, min, max], ...]; TYPES: more command types,
comma-separated, run like "record". It joins the queue with
SLOTS slots and handlers that measure themselves in Redis, prints "ready",
and runs until its stdin closes (or it is killed).

Handlers (the test's keys live under "test:<queue>:"):
  record   {"tag", "lane", "hold"?, "sleep"?} INCR conc:<lane> and RPUSH its
           value to peaks:<lane> (the concurrency the command itself saw),
           RPUSH the tag to order, then holds (BLPOP gate, bounded) or
           sleeps, DECR; returns {"tag", "pid"}
  whoami   returns the worker's pid
"""

from __future__ import annotations

import json
import os
import sys
import time

import redis

from pylane import LaneConfig, QueueManagerBuilder

HOLD_LIMIT = 30  # seconds a held command waits for its gate at most


def main() -> None:
    url, queue, slots, lease, lanes = sys.argv[1:6]
    extra_types = [t for t in (sys.argv[6] if len(sys.argv) > 6 else "").split(",") if t]
    store = redis.Redis.from_url(url)
    prefix = f"test:{queue}"
    builder = QueueManagerBuilder()
    for lane_id, priority, minimum, maximum in json.loads(lanes):
        builder.with_lane(lane_id, LaneConfig.new(minimum, maximum), priority)
    manager = (builder.with_max_workers(int(slots))
               .with_redis(url, queue=queue, lease=float(lease)).build())

    def record(payload: dict) -> dict:
        lane = payload.get("lane", "")
        now = store.incr(f"{prefix}:conc:{lane}")
        store.rpush(f"{prefix}:peaks:{lane}", now)
        store.rpush(f"{prefix}:order", payload["tag"])
        try:
            if payload.get("hold"):
                store.blpop([f"{prefix}:gate"], timeout=HOLD_LIMIT)
            elif payload.get("sleep"):
                time.sleep(payload["sleep"])
        finally:
            store.decr(f"{prefix}:conc:{lane}")
        return {"tag": payload["tag"], "pid": os.getpid()}

    handlers = manager.queue().json_handlers
    handlers["record"] = record
    handlers["whoami"] = lambda _payload: os.getpid()
    for command_type in extra_types:
        handlers[command_type] = record
    manager.start()
    print("ready", flush=True)
    sys.stdin.read()
    manager.close()


if __name__ == "__main__":
    main()
