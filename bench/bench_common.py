"""What the Python benches of issue 14 share: the three kinds of work, the
alternating-rounds method and the spread of a figure.

Method: every side runs once per round, the order of the sides rotating from
round to round; each figure is the median of its rounds with the spread
(min-max); ratios are of medians from the same run. Never best-of.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pylane import EventEmitter, Lane, LaneConfig, QueueManager, QueueManagerBuilder

# ---- the three kinds of work ----------------------------------------------

# A ~1 KB JSON document, as an API payload might be.
DOCUMENT = json.dumps({
    "session": "4f9c2a7e-5b1d-4c8e-9a3f-2d6b7e1c0f85",
    "model": "a-model-name",
    "messages": [{"role": "user" if i % 2 else "assistant",
                  "content": f"message number {i}: " + "lorem ipsum " * 4}
                 for i in range(12)],
    "options": {"temperature": 0.2, "max_tokens": 512, "stream": False},
})


def noop() -> None:
    return None


def json_job() -> str:
    """json.loads + json.dumps of the ~1 KB document."""
    return json.dumps(json.loads(DOCUMENT))


def sleep_job() -> None:
    """1 ms of I/O-like waiting (the GIL is free meanwhile)."""
    time.sleep(0.001)


@dataclass(frozen=True)
class Work:
    name: str
    label: str
    call: Callable[[], Any]
    # The same work as an SDK handler (it gets the payload).
    handler: Callable[[Any], Any]


WORKS = (
    Work("noop", "no-op", noop, lambda payload: None),
    Work("json", f"1 KB JSON ({len(DOCUMENT):,} bytes: loads + dumps)", json_job,
         lambda payload: json_job()),
    Work("sleep", "1 ms sleep", sleep_job, lambda payload: sleep_job()),
)


# ---- figures ----------------------------------------------------------------

@dataclass
class Spread:
    median: float
    low: float
    high: float
    samples: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, samples: Sequence[float]) -> Spread:
        values = list(samples)
        return cls(statistics.median(values), min(values), max(values), values)


def ratio(ours: Spread, theirs: Spread) -> float:
    return ours.median / theirs.median if theirs.median else float("nan")


def alternate(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, Spread]:
    """Runs every side once per round; the first side moves one place every
    round, so no side always runs first (or right after another)."""
    names = list(sides)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for number in range(rounds):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            samples[name].append(sides[name]())
    return {name: Spread.of(values) for name, values in samples.items()}


def ops(value: float) -> str:
    return f"{value:,.0f}"


def cell(spread: Spread, fmt: Callable[[float], str] = ops) -> str:
    return f"{fmt(spread.median)} ({fmt(spread.low)}-{fmt(spread.high)})"


def markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


STARTED = time.perf_counter()


def progress(message: str) -> None:
    print(f"  [{time.perf_counter() - STARTED:5.0f} s] {message}", file=sys.stderr, flush=True)


# ---- the sides every Python bench builds, fresh for each round --------------

LANES = [f"lane{priority}" for priority in range(10)]


@contextmanager
def thread_pool(workers: int) -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        # ThreadPoolExecutor starts threads lazily; make all of them exist.
        wait([pool.submit(time.sleep, 0.01) for _ in range(workers)])
        yield pool
    finally:
        pool.shutdown(wait=True)


@contextmanager
def sdk_lane(workers: int, command_type: str, handler: Callable[[Any], Any]) -> Iterator[Lane]:
    """The SDK's Lane over LANES (min 0, max `workers` each), `handler`
    registered for `command_type`; shut down and drained at the end."""
    configs = [LaneConfig(lane_id, priority=priority, min_concurrency=0, max_concurrency=workers)
               for priority, lane_id in enumerate(LANES)]
    lane = Lane.with_lanes(configs, max_workers=workers)
    lane.register_handler(command_type, handler)
    lane.start()
    try:
        yield lane
    finally:
        lane.shutdown()
        lane.drain()


@contextmanager
def lane_manager(workers: int) -> Iterator[QueueManager]:
    builder = QueueManagerBuilder(EventEmitter()).with_max_workers(workers)
    for priority, lane_id in enumerate(LANES):
        builder.with_lane(lane_id, LaneConfig.new(0, workers), priority)
    manager = builder.build()
    manager.start()
    try:
        yield manager
    finally:
        manager.shutdown()
        manager.drain()
