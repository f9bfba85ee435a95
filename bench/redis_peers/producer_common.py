"""The producer side of bench/bench_redis.py for the Python systems: one
process, driven by JSON lines on stdin, one JSON line answered on stdout per
request (bullmq_producer.js speaks the same protocol).

    {"op": "bulk", "n": N, "kind": "n", "sleep": 0, "tag": "t", "level": null, "levels": 5,
     "spread": false}
        submits N jobs, tags <tag><i>, level `level` or i % levels, sleep
        `sleep` ms (spread: spread_sleep), as fast as the system's ordinary
        API allows -> {"t0": ns, "t1": ns}
    {"op": "probes", "offsets_ms": [...], "level": 0, "sleep": 0}
        open loop: job k (tag u<k>) submitted at t_start + offsets_ms[k],
        one at a time -> {"probes": [[tag, t0, t1], ...]} (t0 before the
        submit call, t1 after it returned)
    {"op": "each", "jobs": [[tag, level, kind, sleep], ...]}
        one submit after another -> {"t1": [ns, ...]}
    {"op": "quit"}

Times are CLOCK_MONOTONIC in ns, one clock for every process here.
Levels: 0 is the most urgent, as in every system's own mapping (adapters).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable


def spread_sleep(sleep: float, i: int) -> float:
    """Job i's sleep with "spread": from half to one and a half times
    `sleep`, the same sequence in every producer (bullmq_producer.js too), so
    that slots do not finish in step."""
    return round(sleep * (0.5 + (i * 7919 % 1000) / 1000.0), 3)


def payload(kind: str, tag: str, sleep: float) -> dict[str, Any]:
    job: dict[str, Any] = {"k": kind, "g": tag}
    if sleep:
        job["s"] = sleep
    return job


def serve(submit: Callable[[int, dict[str, Any]], Any],
          bulk: Callable[[list[tuple[int, dict[str, Any]]]], Any] | None = None) -> None:
    """`submit(level, payload)` submits one job; `bulk(jobs)` many (default:
    one submit after another)."""
    if bulk is None:
        def bulk(jobs: list[tuple[int, dict[str, Any]]]) -> None:
            for level, job in jobs:
                submit(level, job)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        if op == "quit":
            break
        if op == "bulk":
            n, levels, fixed = request["n"], request.get("levels", 1), request.get("level")
            kind, tag, sleep = request["kind"], request["tag"], request.get("sleep", 0)
            spread = request.get("spread", False)
            jobs = [(fixed if fixed is not None else i % levels,
                     payload(kind, f"{tag}{i}", spread_sleep(sleep, i) if spread else sleep))
                    for i in range(n)]
            t0 = time.monotonic_ns()
            bulk(jobs)
            answer: dict[str, Any] = {"t0": t0, "t1": time.monotonic_ns()}
        elif op == "probes":
            level, sleep = request.get("level", 0), request.get("sleep", 0)
            probes = []
            began = time.monotonic()
            for k, offset in enumerate(request["offsets_ms"]):
                delay = began + offset / 1000.0 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                tag = f"u{k}"
                job = payload("r", tag, sleep)
                t0 = time.monotonic_ns()
                submit(level, job)
                probes.append([tag, t0, time.monotonic_ns()])
            answer = {"probes": probes}
        elif op == "each":
            returned = []
            for tag, level, kind, sleep in request["jobs"]:
                submit(level, payload(kind, tag, sleep))
                returned.append(time.monotonic_ns())
            answer = {"t1": returned}
        else:
            answer = {"error": f"unknown op {op}"}
        print(json.dumps(answer), flush=True)
