"""Dramatiq's side of bench/bench_redis.py (bench/.peers-venv): the Redis
broker with its defaults. Dramatiq's priority is an actor's: a worker runs
the messages it has prefetched (2 per thread) most urgent first (lower number
first), but the Redis queue itself is FIFO. So a level is an actor,
job_p<level>, of priority <level>, all on one queue.

    dramatiq dramatiq_app --processes 1 --threads 10   (bench_redis.py starts it)
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from jobs import URL, run_job

LEVELS = 5

broker = RedisBroker(url=URL)
dramatiq.set_broker(broker)


def _actor(level: int):  # one function per actor
    def job(payload: dict) -> None:
        run_job(payload)
    job.__name__ = f"job_p{level}"
    return dramatiq.actor(job, actor_name=f"job_p{level}", priority=level)


actors = [_actor(level) for level in range(LEVELS)]
