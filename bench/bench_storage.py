"""Durable commands: LocalStorage (SQLite, WAL) against in-memory, same work, one run.

    python bench/bench_storage.py            # full run, under a minute
    python bench/bench_storage.py --quick    # smoke test, a few seconds
    python bench/bench_storage.py --json out.json

Rows: no storage (in memory), ``LocalStorage(dir)`` (``sync="normal"``: a
commit survives a killed process) and ``LocalStorage(dir, sync="full")``
(an fsync per commit: survives power loss too).

Columns, each the median of the rounds with the spread (min-max) beside it:

  submits/s      N ``manager.submit`` calls from one thread into a paused
                 lane; with storage each returns only once its command is
                 committed, so this is the durable submit rate;
  pipelined      N submits from one thread then ``concurrent.futures.wait``
                 on all of them: full submit -> run -> complete round trips
                 (with storage: insert, then delete when the command ends);
  sequential     one caller, ``manager.submit(...).result()`` one at a time
                 (N / 5 of them): the latency-bound round trip.

Ratios are LocalStorage / in-memory (below 1: slower). Every round builds a
fresh manager and storage for each row (the row order rotates each round),
warms it up outside the timed region and runs ``gc.collect()`` first. The
command is a no-op ``Command`` subclass carrying a small payload.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import wait
from dataclasses import asdict, dataclass, field
from typing import Optional

from pylane import (
    Command,
    EventEmitter,
    LaneConfig,
    LocalStorage,
    QueueManager,
    QueueManagerBuilder,
)

LANE = "work"
WORKERS = 4
TARGET = 10_000  # durable submits a second with sync=normal (issue 3)
ROWS = ("in-memory", "LocalStorage sync=normal", "LocalStorage sync=full")


class Noop(Command):
    command_type = "noop"

    def __init__(self, n: int) -> None:
        self.n = n
        self.tag = "bench"

    def execute(self) -> int:
        return self.n


@dataclass
class Figures:
    submits: list[float] = field(default_factory=list)
    pipelined: list[float] = field(default_factory=list)
    sequential: list[float] = field(default_factory=list)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build(row: str, directory: str) -> tuple[QueueManager, Optional[LocalStorage]]:
    builder = (QueueManagerBuilder(EventEmitter(16))
               .with_lane(LANE, LaneConfig.new(0, WORKERS), 0)
               .with_max_workers(WORKERS))
    storage = None
    if row != "in-memory":
        storage = LocalStorage(directory, sync="full" if row.endswith("full") else "normal")
        builder.with_storage(storage)
    manager = builder.build()
    manager.start()
    return manager, storage


def one_round(row: str, n: int, sequential: int, figures: Figures) -> None:
    directory = tempfile.mkdtemp(prefix="bench-storage-")
    manager, storage = build(row, directory)
    try:
        for future in [manager.submit(LANE, Noop(i)) for i in range(200)]:  # warm-up
            future.result()
        for i in range(50):
            manager.submit(LANE, Noop(i)).result()
        commands = [Noop(i) for i in range(n)]

        # Durable submits: the lane is paused so only submit is measured.
        manager.pause_lane(LANE)
        gc.collect()
        started = time.perf_counter()
        futures = [manager.submit(LANE, command) for command in commands]
        figures.submits.append(n / (time.perf_counter() - started))
        if storage is not None:
            assert storage.count_commands() == n, "not every submit was stored"
        manager.resume_lane(LANE)
        wait(futures)

        # Pipelined round trips.
        gc.collect()
        started = time.perf_counter()
        futures = [manager.submit(LANE, command) for command in commands]
        wait(futures)
        figures.pipelined.append(n / (time.perf_counter() - started))

        # Sequential round trips.
        gc.collect()
        started = time.perf_counter()
        for command in commands[:sequential]:
            manager.submit(LANE, command).result()
        figures.sequential.append(sequential / (time.perf_counter() - started))

        if storage is not None:
            assert storage.count_commands() == 0, "finished commands left in storage"
    finally:
        manager.shutdown()
        manager.drain(60)
        if storage is not None:
            storage.close()
        shutil.rmtree(directory, ignore_errors=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:,.0f}"
    return f"{median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def ratio(values: list[float], base: list[float]) -> str:
    return f"{median(values) / median(base):.2f}"


def table(results: dict[str, Figures]) -> str:
    base = results["in-memory"]
    lines = [
        "| storage | submits/s | ratio | pipelined round trips/s | ratio "
        "| sequential round trips/s | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in ROWS:
        f = results[row]
        lines.append(
            f"| {row} | {cell(f.submits)} | {ratio(f.submits, base.submits)} "
            f"| {cell(f.pipelined)} | {ratio(f.pipelined, base.pipelined)} "
            f"| {cell(f.sequential)} | {ratio(f.sequential, base.sequential)} |"
        )
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--n", type=int, help="commands per timed batch (default 10000, "
                                              "quick 2000)")
    parser.add_argument("--rounds", type=int, help="rounds (default 3, quick 1)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    n = args.n or (2_000 if args.quick else 10_000)
    rounds = args.rounds or (1 if args.quick else 3)
    sequential = max(1, n // 5)

    results = {row: Figures() for row in ROWS}
    begun = time.perf_counter()
    for round_number in range(rounds):
        order = ROWS[round_number % 3:] + ROWS[:round_number % 3]
        for row in order:
            log(f"round {round_number + 1}/{rounds}: {row}")
            one_round(row, n, sequential, results[row])
    elapsed = time.perf_counter() - begun

    print(f"a3s-lane durable commands: {n:,} commands per batch, {sequential:,} sequential, "
          f"{rounds} round(s), {WORKERS} workers; Python {platform.python_version()} on "
          f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs; {elapsed:.1f} s")
    print()
    print(table(results))
    print()
    normal = median(results["LocalStorage sync=normal"].submits)
    verdict = "met" if normal >= TARGET else "NOT met"
    print(f"Target: >= {TARGET:,} durable submits/s with LocalStorage (sync=normal): "
          f"{normal:,.0f}/s, {verdict}.")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"n": n, "rounds": rounds, "sequential": sequential,
                       "results": {row: asdict(f) for row, f in results.items()}}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
