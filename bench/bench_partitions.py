"""CPU-bound throughput: threads versus LocalDistributedQueue partitions.

Each command is a pure-Python loop of about 20 ms. Threads share one GIL, so
more worker threads cannot run them faster than one core; partitions are
worker processes, so they can. Prints a Markdown table:

    python bench/bench_partitions.py            # 40 commands, median of 3 rounds
    python bench/bench_partitions.py --quick    # 16 commands, 1 round (CI smoke test)

Worker processes are started and warmed up before the clock starts; each
round times submitting every command and waiting for all results.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import wait
from typing import Callable

from pylane import LaneConfig, QueueManagerBuilder
from pylane.distributed import LocalDistributedQueue


def burn(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


def calibrate(target_seconds: float) -> int:
    """Iterations of `burn` that take about `target_seconds` here."""
    iterations = 20_000
    while True:
        began = time.perf_counter()
        burn(iterations)
        elapsed = time.perf_counter() - began
        if elapsed > 0.005:
            return max(1, int(iterations * target_seconds / elapsed))
        iterations *= 4


def run_threads(commands: int, iterations: int, threads: int) -> float:
    builder = QueueManagerBuilder().with_lane("cpu", LaneConfig.new(1, threads), 0)
    manager = builder.with_max_workers(threads).build()
    manager.start()
    try:
        manager.submit("cpu", burn, 1).result()  # warm up
        began = time.perf_counter()
        futures = [manager.submit("cpu", burn, iterations) for _ in range(commands)]
        wait(futures)
        elapsed = time.perf_counter() - began
        for future in futures:
            future.result()
        return elapsed
    finally:
        manager.shutdown()
        manager.drain()


def run_partitions(commands: int, iterations: int, partitions: int) -> float:
    with LocalDistributedQueue(partitions, lanes={"cpu": 0}) as queue:
        if not queue.wait_ready(60):
            raise RuntimeError("worker processes did not start")
        keys = {queue.partition_for(str(k)): str(k) for k in range(64)}
        wait([queue.submit("cpu", burn, 1, partition_key=key) for key in keys.values()])
        began = time.perf_counter()
        futures = [queue.submit("cpu", burn, iterations) for _ in range(commands)]
        wait(futures)
        elapsed = time.perf_counter() - began
        for future in futures:
            future.result()
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 commands, 1 round")
    parser.add_argument("--commands", type=int, help="commands per round (default 40)")
    parser.add_argument("--rounds", type=int, help="rounds, median reported (default 3)")
    parser.add_argument("--ms", type=float, default=20.0, help="work per command in ms")
    args = parser.parse_args()
    commands = args.commands or (16 if args.quick else 40)
    rounds = args.rounds or (1 if args.quick else 3)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    iterations = calibrate(args.ms / 1000.0)
    threads = max(2, cpus or 1)
    started = time.perf_counter()

    runners: list[tuple[str, Callable[[], float]]] = [
        (f"threads: QueueManager, {threads} workers",
         lambda: run_threads(commands, iterations, threads)),
        ("LocalDistributedQueue(1)", lambda: run_partitions(commands, iterations, 1)),
        ("LocalDistributedQueue(2)", lambda: run_partitions(commands, iterations, 2)),
    ]
    results: dict[str, list[float]] = {name: [] for name, _ in runners}
    for number in range(rounds):
        order = runners if number % 2 == 0 else runners[::-1]  # neither side always first
        for name, run in order:
            results[name].append(run())
            print(f"round {number + 1}: {name}: {results[name][-1]:.3f} s", file=sys.stderr)

    baseline = commands / statistics.median(results[runners[0][0]])
    print(f"{commands} commands of ~{args.ms:g} ms pure-Python work, {cpus} CPUs, "
          f"median of {rounds} round(s)\n")
    print("| runner | wall s | commands/s | vs threads |")
    print("|---|---:|---:|---:|")
    for name, _ in runners:
        seconds = statistics.median(results[name])
        rate = commands / seconds
        print(f"| {name} | {seconds:.3f} | {rate:.1f} | {rate / baseline:.2f}x |")
    print(f"\n({time.perf_counter() - started:.1f} s in total)")


if __name__ == "__main__":
    main()
