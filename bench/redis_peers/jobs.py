"""The job body every Python system of bench/bench_redis.py runs (a3s-lane,
Celery, Dramatiq); bullmq_worker.js has the same in Node.

A job's payload is a dict: ``k`` its kind, ``g`` its tag, ``s`` a sleep in ms.

    n   no-op (throughput): counts itself done
    r   records its start: reads CLOCK_MONOTONIC first thing, sleeps ``s``
        ms, then keeps "tag start_ns end_ns" for the driver
    g   a gate: INCR bench:gates, then waits (BLPOP bench:gate, at most
        GATE_LIMIT s) so that every slot is busy while the driver queues a mix

Nothing in a job body talks to Redis (except a gate): the done count and the
records go to Redis from one flusher thread per process, every FLUSH_EVERY
seconds, in one pipeline. So every system runs the same work, and the
measurement costs each the same (next to nothing).

CLOCK_MONOTONIC is one clock for every process of the machine (Node's
process.hrtime reads it too): the driver compares a start read here with a
submit time read in a producer process.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Optional

import redis

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DONE_KEY = "bench:done"
REC_KEY = "bench:rec"
GATE_KEY = "bench:gate"
GATES_KEY = "bench:gates"
FLUSH_EVERY = 0.002
GATE_LIMIT = 60


class Recorder:
    """One per process (a fork gets its own: Celery's prefork children)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.done = 0
        self.records: list[str] = []
        self.client = redis.Redis.from_url(URL)
        thread = threading.Thread(target=self._flush_loop, name="bench-flusher", daemon=True)
        thread.start()

    def _flush_loop(self) -> None:
        while True:
            time.sleep(FLUSH_EVERY)
            with self.lock:
                done, self.done = self.done, 0
                records, self.records = self.records, []
            if not done and not records:
                continue
            try:
                pipe = self.client.pipeline(transaction=False)
                if records:
                    pipe.rpush(REC_KEY, *records)
                if done:
                    pipe.incrby(DONE_KEY, done)
                pipe.execute()
            except redis.RedisError:
                pass  # the driver is flushing or stopping Redis: the round is over

    def finished(self, record: Optional[str]) -> None:
        with self.lock:
            self.done += 1
            if record is not None:
                self.records.append(record)


_recorder: Optional[Recorder] = None
_recorder_lock = threading.Lock()
_local = threading.local()


def recorder() -> Recorder:
    global _recorder
    current = _recorder
    if current is None or current.pid != os.getpid():
        with _recorder_lock:
            if _recorder is None or _recorder.pid != os.getpid():
                _recorder = Recorder()
            current = _recorder
    return current


def _gate_client() -> Any:
    client = getattr(_local, "client", None)
    if client is None or getattr(_local, "pid", None) != os.getpid():
        # redis-py's default socket timeout (5 s) would end a long BLPOP early
        client = redis.Redis.from_url(URL, socket_timeout=GATE_LIMIT + 10)
        _local.client, _local.pid = client, os.getpid()
    return client


def run_job(payload: dict[str, Any]) -> None:
    start = time.monotonic_ns()
    kind = payload["k"]
    if kind == "n":
        recorder().finished(None)
        return None
    if kind == "g":
        client = _gate_client()
        client.incr(GATES_KEY)
        client.blpop([GATE_KEY], timeout=GATE_LIMIT)
        recorder().finished(None)
        return None
    sleep_ms = payload.get("s") or 0
    if sleep_ms:
        time.sleep(sleep_ms / 1000.0)
    recorder().finished(f"{payload['g']} {start} {time.monotonic_ns()}")
    return None
