"""a3s-lane against concurrent.futures.ThreadPoolExecutor, same work, one run.

    python bench/bench_python.py            # full run, about a minute
    python bench/bench_python.py --quick    # smoke test, well under 20 s
    python bench/bench_python.py --json out.json

Throughput of no-op commands: blocking submits, a flood, many callers, idle
CPU. The table's `path` column says where each side runs the command: our
blocking `run()` / `Lane.submit` run it on the caller's thread when a slot is
free (inline), ThreadPoolExecutor always hands it to a worker. The hand-off
against hand-off comparison, with floors and three kinds of work, is
bench_handoff.py's.

Workloads (the same number of worker threads on both sides, default 6, which
is ThreadPoolExecutor's default on 2 cores):

  (a) one caller, blocking submit of a no-op, one at a time;
  (b) 100,000 no-op submits from one thread (over 10 lanes for a3s-lane),
      then concurrent.futures.wait() on all of them;
  (c) 16 caller threads, each making blocking submits;
  idle: process CPU time used while both sit idle for a second.

Each figure is the median of several rounds that alternate the two sides
(the order flips every round), with the spread (min-max) beside it. Every
round builds a fresh executor or manager and warms it up outside the timed
region. The ratio is a3s-lane / ThreadPoolExecutor: above 1, a3s-lane is
faster.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import wait
from dataclasses import asdict, dataclass

from bench_common import LANES, Spread, lane_manager, noop, sdk_lane, thread_pool

FIRST_LANE = LANES[0]
CALLER_THREADS = 16


@dataclass(frozen=True)
class Sizes:
    rounds: int
    single: int          # (a) blocking calls from one caller
    flood: int           # (b) submits before the wait
    per_caller: int      # (c) blocking calls per caller thread
    idle_seconds: float  # idle window
    idle_rounds: int


FULL = Sizes(rounds=5, single=20_000, flood=100_000, per_caller=2_000,
             idle_seconds=1.0, idle_rounds=3)
QUICK = Sizes(rounds=3, single=5_000, flood=20_000, per_caller=200,
              idle_seconds=0.5, idle_rounds=2)


# ---- timing helpers --------------------------------------------------------

def ops_per_second(ops: int, body: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    body()
    return ops / (time.perf_counter() - start)


def warm_count(ops: int) -> int:
    return max(200, ops // 10)


def repeat(call: Callable[[], object], times: int) -> None:
    for _ in range(times):
        call()


def callers_ops_per_second(call: Callable[[], object], threads: int, per_thread: int) -> float:
    """`threads` threads each make `per_thread` calls; the clock starts when
    all of them are parked at the barrier and stops when the last ends."""
    barrier = threading.Barrier(threads + 1)

    def caller() -> None:
        barrier.wait()
        repeat(call, per_thread)

    workers = [threading.Thread(target=caller) for _ in range(threads)]
    for worker in workers:
        worker.start()
    while barrier.n_waiting < threads:
        time.sleep(0.001)
    gc.collect()
    start = time.perf_counter()
    barrier.wait()
    for worker in workers:
        worker.join()
    return threads * per_thread / (time.perf_counter() - start)


def idle_cpu_seconds(window: float) -> float:
    """Process CPU seconds (all threads) per second of wall time spent idle."""
    time.sleep(0.05)
    start = time.process_time()
    time.sleep(window)
    return (time.process_time() - start) / window


# ---- one trial per side and workload: build, warm up, measure, tear down ---

def tpe_blocking(workers: int, n: int) -> float:
    with thread_pool(workers) as pool:
        def call() -> None:
            pool.submit(noop).result()
        repeat(call, warm_count(n))
        return ops_per_second(n, lambda: repeat(call, n))


def lane_run(workers: int, n: int) -> float:
    with lane_manager(workers) as manager:
        def call() -> None:
            manager.run(FIRST_LANE, noop)
        repeat(call, warm_count(n))
        return ops_per_second(n, lambda: repeat(call, n))


def lane_submit_result(workers: int, n: int) -> float:
    with lane_manager(workers) as manager:
        def call() -> None:
            manager.submit(FIRST_LANE, noop).result()
        repeat(call, warm_count(n))
        return ops_per_second(n, lambda: repeat(call, n))


def sdk_submit(workers: int, n: int) -> float:
    with sdk_lane(workers, "noop", lambda payload: None) as lane:
        def call() -> None:
            lane.submit(FIRST_LANE, "noop", None)
        repeat(call, warm_count(n))
        return ops_per_second(n, lambda: repeat(call, n))


def tpe_flood(workers: int, n: int) -> float:
    with thread_pool(workers) as pool:
        def flood(count: int) -> None:
            submit = pool.submit
            wait([submit(noop) for _ in range(count)])
        flood(warm_count(n))
        return ops_per_second(n, lambda: flood(n))


def lane_flood(workers: int, n: int) -> float:
    with lane_manager(workers) as manager:
        def flood(count: int) -> None:
            submit = manager.submit
            lanes = LANES
            width = len(lanes)
            wait([submit(lanes[i % width], noop) for i in range(count)])
        flood(warm_count(n))
        return ops_per_second(n, lambda: flood(n))


def tpe_callers(workers: int, per_thread: int) -> float:
    with thread_pool(workers) as pool:
        def call() -> None:
            pool.submit(noop).result()
        callers_ops_per_second(call, CALLER_THREADS, warm_count(per_thread))
        return callers_ops_per_second(call, CALLER_THREADS, per_thread)


def lane_callers(workers: int, per_thread: int) -> float:
    with lane_manager(workers) as manager:
        def call() -> None:
            manager.run(FIRST_LANE, noop)
        callers_ops_per_second(call, CALLER_THREADS, warm_count(per_thread))
        return callers_ops_per_second(call, CALLER_THREADS, per_thread)


def tpe_idle(workers: int, window: float) -> float:
    with thread_pool(workers) as pool:
        repeat(lambda: pool.submit(noop).result(), 200)
        return idle_cpu_seconds(window)


def lane_idle(workers: int, window: float) -> float:
    with lane_manager(workers) as manager:
        repeat(lambda: manager.run(FIRST_LANE, noop), 200)
        wait([manager.submit(lane_id, noop) for lane_id in LANES])
        return idle_cpu_seconds(window)


# ---- comparison ------------------------------------------------------------

INLINE = "ours inline (caller-runs), TPE hand-off"
HANDOFF = "both hand-off to a worker"
FLOOD = "both queue, workers run"


@dataclass
class Row:
    workload: str
    unit: str
    tpe: Spread
    lane: Spread
    path: str = ""

    @property
    def ratio(self) -> float | None:
        if self.unit != "ops/s" or not self.tpe.median:
            return None
        return self.lane.median / self.tpe.median


def compare(workload: str, unit: str, tpe: Callable[[], float], lane: Callable[[], float],
            rounds: int, path: str = "") -> Row:
    """Alternates the two sides, flipping which goes first every round."""
    tpe_samples: list[float] = []
    lane_samples: list[float] = []
    for round_number in range(rounds):
        order = [(tpe, tpe_samples), (lane, lane_samples)]
        if round_number % 2:
            order.reverse()
        for trial, samples in order:
            samples.append(trial())
    row = Row(workload, unit, Spread.of(tpe_samples), Spread.of(lane_samples), path)
    print(f"  measured: {workload}", file=sys.stderr, flush=True)
    return row


def run_all(sizes: Sizes, workers: int) -> list[Row]:
    n, flood, per_caller = sizes.single, sizes.flood, sizes.per_caller
    rounds = sizes.rounds
    window = sizes.idle_seconds
    return [
        compare("(a) 1 caller, blocking: `pool.submit(noop).result()` vs `manager.run(lane, noop)`",
                "ops/s", lambda: tpe_blocking(workers, n), lambda: lane_run(workers, n), rounds,
                INLINE),
        compare("(a) 1 caller, blocking: vs SDK `Lane.submit(lane, \"noop\", None)` (handler)",
                "ops/s", lambda: tpe_blocking(workers, n), lambda: sdk_submit(workers, n), rounds,
                INLINE),
        compare("(a) 1 caller, blocking: vs `manager.submit(lane, noop).result()`",
                "ops/s", lambda: tpe_blocking(workers, n),
                lambda: lane_submit_result(workers, n), rounds, HANDOFF),
        compare(f"(b) {flood:,} submits from 1 thread (10 lanes), then `wait()`",
                "ops/s", lambda: tpe_flood(workers, flood), lambda: lane_flood(workers, flood),
                rounds, FLOOD),
        compare(f"(c) {CALLER_THREADS} caller threads x {per_caller:,} blocking submits "
                "(`submit().result()` vs `run()`)",
                "ops/s", lambda: tpe_callers(workers, per_caller),
                lambda: lane_callers(workers, per_caller), rounds,
                "ours inline while slots are free, else hand-off; TPE hand-off"),
        compare("idle: process CPU s per 1 s idle (lower is better)",
                "cpu-s/s", lambda: tpe_idle(workers, window), lambda: lane_idle(workers, window),
                sizes.idle_rounds),
    ]


# ---- output ----------------------------------------------------------------

def format_value(value: float, unit: str) -> str:
    return f"{value:.4f}" if unit != "ops/s" else f"{value:,.0f}"


def format_cell(spread: Spread, unit: str) -> str:
    return (f"{format_value(spread.median, unit)} "
            f"({format_value(spread.low, unit)} - {format_value(spread.high, unit)})")


def markdown_table(rows: list[Row]) -> str:
    lines = [
        "| workload | path | ThreadPoolExecutor ops/s | a3s-lane ops/s | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        ratio = "n/a" if row.ratio is None else f"{row.ratio:.2f}x"
        lines.append(f"| {row.workload} | {row.path or '-'} | {format_cell(row.tpe, row.unit)} | "
                     f"{format_cell(row.lane, row.unit)} | {ratio} |")
    return "\n".join(lines)


def environment(sizes: Sizes, workers: int, quick: bool) -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "workers": workers,
        "quick": quick,
        "sizes": asdict(sizes),
    }


def write_json(path: str, env: dict[str, object], rows: list[Row]) -> None:
    document = {
        "environment": env,
        "results": [
            {
                "workload": row.workload,
                "unit": row.unit,
                "thread_pool_executor": asdict(row.tpe),
                "a3s_lane": asdict(row.lane),
                "ratio": row.ratio,
                "path": row.path,
            }
            for row in rows
        ],
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer operations and rounds (smoke test, < 20 s)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    parser.add_argument("--rounds", type=int, help="rounds per measurement (default 5; quick 3)")
    parser.add_argument("--workers", type=int, default=6,
                        help="worker threads on both sides (default 6)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.rounds is not None:
        sizes = Sizes(**{**asdict(sizes), "rounds": max(1, args.rounds)})
    env = environment(sizes, args.workers, args.quick)
    started = time.perf_counter()
    rows = run_all(sizes, args.workers)
    elapsed = time.perf_counter() - started

    print(f"a3s-lane vs ThreadPoolExecutor: Python {env['python']}, {env['cpus']} CPUs, "
          f"{args.workers} workers each; median of {sizes.rounds} rounds "
          f"(idle: {sizes.idle_rounds}) with (min - max); ratio = a3s-lane / TPE.\n")
    print(markdown_table(rows))
    print(f"\n({elapsed:.1f} s in total)")
    if args.json:
        write_json(args.json, env, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
