"""The producer process of bench/bench_redis.py for Celery and Dramatiq
(bench/.peers-venv), speaking producer_common's protocol:

    python bench/redis_peers/peer_producer.py celery|dramatiq

Celery: task.apply_async(args=[payload], priority=level) on one producer
held for the whole run (app.producer_or_acquire). Dramatiq:
actors[level].send(payload). Both one message at a time: neither has a bulk
enqueue in its ordinary API."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from producer_common import serve


def main() -> None:
    system = sys.argv[1]
    if system == "celery":
        from celery_app import app, job

        with app.producer_or_acquire() as producer:
            def submit(level: int, payload: dict) -> None:
                job.apply_async(args=[payload], priority=level, producer=producer)

            serve(submit)
    elif system == "dramatiq":
        from dramatiq_app import actors

        def submit(level: int, payload: dict) -> None:
            actors[level].send(payload)

        serve(submit)
    else:
        raise SystemExit(f"unknown system {system!r}")


if __name__ == "__main__":
    main()
