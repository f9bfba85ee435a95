"""Celery's side of bench/bench_redis.py (bench/.peers-venv): Redis broker,
no result backend, the default prefetch (worker_prefetch_multiplier 4), and
priorities as Celery documents them for Redis ("Redis Message Priorities"):
one list per priority step, 0 the most urgent. A level is a priority.

    celery -A celery_app worker -P prefork -c 10 ...   (bench_redis.py starts it)
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from celery import Celery
from jobs import URL, run_job

app = Celery("bench", broker=URL)
app.conf.update(
    broker_transport_options={"priority_steps": list(range(10)), "sep": ":",
                              "queue_order_strategy": "priority"},
    task_ignore_result=True,
    worker_hijack_root_logger=False,
)


@app.task(name="job")
def job(payload: dict) -> None:
    run_job(payload)
