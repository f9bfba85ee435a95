"""What recording metrics costs: no-op throughput with and without
``QueueMetrics.local()``, same work, one run.

    python bench/bench_metrics.py            # about 30 s
    python bench/bench_metrics.py --quick    # smoke run

Workloads (6 workers, 10 lanes, as bench_python.py):
  flood    100,000 no-op submits from one thread, then wait for all;
  blocking one caller, blocking ``run()`` of a no-op (runs inline).
Rounds alternate the two sides; medians are compared. Target: overhead
<= 5% on the no-op flood.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import wait
from contextlib import contextmanager
from typing import Any, Callable, Optional

from pylane import LaneConfig, QueueManager, QueueManagerBuilder
from pylane.metrics import QueueMetrics

LANES = [f"lane{priority}" for priority in range(10)]
WORKERS = 6


def noop() -> None:
    return None


@contextmanager
def manager(metrics: Optional[QueueMetrics]) -> Iterator[QueueManager]:
    builder = QueueManagerBuilder().with_max_workers(WORKERS)
    for priority, lane_id in enumerate(LANES):
        builder.with_lane(lane_id, LaneConfig.new(0, WORKERS), priority)
    if metrics is not None:
        builder.with_metrics(metrics)
    built = builder.build()
    built.start()
    try:
        yield built
    finally:
        built.shutdown()
        built.drain()


def flood(m: QueueManager, n: int) -> None:
    wait([m.submit(LANES[i % 10], noop) for i in range(n)])


def blocking(m: QueueManager, n: int) -> None:
    for _ in range(n):
        m.run(LANES[0], noop)


def ops_per_second(body: Callable[[QueueManager, int], None], n: int, with_metrics: bool) -> float:
    with manager(QueueMetrics.local() if with_metrics else None) as m:
        body(m, max(200, n // 10))  # warm up
        gc.collect()
        start = time.perf_counter()
        body(m, n)
        return n / (time.perf_counter() - start)


def compare(body: Callable[[QueueManager, int], None], n: int, rounds: int) -> dict[str, Any]:
    plain: list[float] = []
    measured: list[float] = []
    for number in range(rounds):
        order = (False, True) if number % 2 == 0 else (True, False)
        for with_metrics in order:
            (measured if with_metrics else plain).append(ops_per_second(body, n, with_metrics))
    without, with_ = statistics.median(plain), statistics.median(measured)
    return {"without": without, "with": with_, "overhead": 1.0 - with_ / without}


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer operations and rounds")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else 7
    rows = [
        ("flood: 100,000 submits, then wait" if not args.quick else "flood: 20,000 submits",
         compare(flood, 20_000 if args.quick else 100_000, rounds)),
        ("blocking run() from one caller", compare(blocking, 5_000 if args.quick else 20_000,
                                                   rounds)),
    ]
    print(f"QueueMetrics.local() overhead, {WORKERS} workers, median of {rounds} rounds\n")
    print("| workload | without metrics ops/s | with metrics ops/s | overhead |")
    print("|---|---:|---:|---:|")
    for name, row in rows:
        print(f"| {name} | {row['without']:,.0f} | {row['with']:,.0f} | "
              f"{row['overhead'] * 100:.1f}% |")


if __name__ == "__main__":
    main()
