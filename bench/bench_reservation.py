"""A reserved worker must never make urgent work slower (issue 14, target 3).

    .venv/bin/python bench/bench_reservation.py [--quick]

Ten workers run `prompt` commands with a backlog behind them; a probe
thread submits `control` commands one at a time and times each from just
before its submit to its first line. Prompt work is either CPU-bound (a
calibrated ~2 ms pure-Python loop: it holds the GIL) or I/O-bound (a 2 ms
sleep: the GIL is free). Three sides, the same ten prompt workers each:

  ours, reserved      — pool of 11: prompt (priority 5, max 10) and control
                        (priority 0, min_concurrency 1: one worker kept free);
  ours, no reservation — pool of 10, control min_concurrency 0: it waits for a
                        prompt worker to finish, which then takes it first;
  PriorityQueue pool  — ten threads on a `queue.PriorityQueue` of (priority,
                        sequence, call), the hand-written peer; control
                        waits for a thread to finish its prompt job.

The probe thread, like every thread, needs the GIL to submit: under
CPU-bound load it may lose the GIL between its clock read and its submit,
which every side pays alike (it shows in the p99 of all three).
"""

from __future__ import annotations

import argparse
import itertools
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_common import Spread, alternate, cell, markdown, progress
from bench_partitions import burn

from pylane import EventEmitter, LaneConfig, QueueManagerBuilder

PROMPT_WORKERS = 10
PROMPT_SECONDS = 0.002
IO_LIMIT_MS = 1.0


@dataclass(frozen=True)
class Sizes:
    rounds: int
    probes: int         # per side and round, at most...
    seconds: float      # ...or this long, whichever ends first
    gap_seconds: float  # between probes


# Under CPU-bound load a probe takes ~100 ms of wall time: the probe thread
# waits for the GIL behind ten CPU-bound threads after each of its waits
# (as would any thread), hence the time limit.
FULL = Sizes(rounds=5, probes=150, seconds=3.0, gap_seconds=0.0)
QUICK = Sizes(rounds=3, probes=60, seconds=1.0, gap_seconds=0.0)


class Load:
    """The prompt work of one side: its job, the backlog to queue, and a
    flag that turns every job still queued into a no-op when the
    measurement ends."""

    def __init__(self, kind: str, iterations: int, seconds: float) -> None:
        self.kind = kind
        self.stop = threading.Event()
        # The threads that have started a prompt job (a set's add is atomic
        # under the GIL): the probes start once all ten are busy.
        self.threads: set[int] = set()
        stopped = self.stop.is_set
        seen = self.threads.add
        ident = threading.get_ident

        def job() -> None:
            seen(ident())
            if stopped():
                return
            if kind == "cpu":
                burn(iterations)
            else:
                time.sleep(PROMPT_SECONDS)
        self.job = job
        # Enough to outlast the probes twice over: CPU-bound jobs run one at
        # a time (the GIL), I/O-bound ones ten at a time.
        per_second = 1 / PROMPT_SECONDS * (1 if kind == "cpu" else PROMPT_WORKERS)
        self.backlog = int(per_second * (seconds + 2.0) * 2)


def calibrate_cpu(seconds: float) -> int:
    """Iterations of `burn` that take `seconds` of this thread's CPU time
    (wall time would count what the machine's other tenants take)."""
    iterations = 20_000
    while True:
        began = time.thread_time()
        burn(iterations)
        spent = time.thread_time() - began
        if spent > 0.02:
            return max(1, int(iterations * seconds / spent))
        iterations *= 2


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))]


def probe_latencies(submit_and_wait: Callable[[Callable[[], None]], None],
                    sizes: Sizes) -> list[float]:
    """Microseconds from just before each control submit to its first line."""
    clock = time.perf_counter_ns
    started = [0]

    def probe() -> None:
        started[0] = clock()

    for _ in range(10):  # warm-up
        submit_and_wait(probe)
    found: list[float] = []
    deadline = time.perf_counter() + sizes.seconds
    while len(found) < sizes.probes and time.perf_counter() < deadline:
        if sizes.gap_seconds:
            time.sleep(sizes.gap_seconds)
        began = clock()
        submit_and_wait(probe)
        found.append((started[0] - began) / 1_000.0)
    return found


def wait_until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.002)


# ---- the sides -----------------------------------------------------------------

def ours(load: Load, sizes: Sizes, reserved: bool) -> list[float]:
    builder = QueueManagerBuilder(EventEmitter()).with_max_workers(
        PROMPT_WORKERS + (1 if reserved else 0))
    builder.with_lane("control", LaneConfig.new(1 if reserved else 0, 1), 0)
    builder.with_lane("prompt", LaneConfig.new(0, PROMPT_WORKERS), 5)
    manager = builder.build()
    manager.start()
    try:
        for _ in range(load.backlog):
            manager.submit("prompt", load.job)
        wait_until(lambda: len(load.threads) == PROMPT_WORKERS, "prompt to fill its workers")
        submit = manager.submit
        found = probe_latencies(lambda probe: submit("control", probe).result(), sizes)
        if manager.stats().lane("prompt").pending == 0:
            raise RuntimeError("the prompt backlog ran dry during the probes")
        return found
    finally:
        load.stop.set()
        manager.shutdown()
        manager.drain()


class PriorityPool:
    """The hand-written peer: threads taking (priority, sequence, call,
    done) from one PriorityQueue; `done` (a held lock or None) is released
    after the call."""

    def __init__(self, threads: int) -> None:
        self.queue: queue.PriorityQueue[tuple[int, int, Optional[Callable[[], Any]], Any]] = (
            queue.PriorityQueue())
        self.sequence = itertools.count()
        self.threads = [threading.Thread(target=self._work) for _ in range(threads)]
        for thread in self.threads:
            thread.start()

    def _work(self) -> None:
        get = self.queue.get
        while True:
            _, _, call, done = get()
            if call is None:
                return
            call()
            if done is not None:
                done.release()

    def submit(self, priority: int, call: Callable[[], Any], done: Any = None) -> None:
        self.queue.put((priority, next(self.sequence), call, done))

    def close(self) -> None:
        for _ in self.threads:
            self.queue.put((1 << 30, next(self.sequence), None, None))
        for thread in self.threads:
            thread.join()


@contextmanager
def priority_pool(threads: int) -> Iterator[PriorityPool]:
    pool = PriorityPool(threads)
    try:
        yield pool
    finally:
        pool.close()


def peer(load: Load, sizes: Sizes) -> list[float]:
    with priority_pool(PROMPT_WORKERS) as pool:
        try:
            for _ in range(load.backlog):
                pool.submit(5, load.job)
            wait_until(lambda: len(load.threads) == PROMPT_WORKERS, "the pool to fill")

            def submit_and_wait(probe: Callable[[], None]) -> None:
                done = threading.Lock()
                done.acquire()
                pool.submit(0, probe, done)
                done.acquire()
            found = probe_latencies(submit_and_wait, sizes)
            if pool.queue.qsize() == 0:
                raise RuntimeError("the prompt backlog ran dry during the probes")
            return found
        finally:
            load.stop.set()


# ---- the table -------------------------------------------------------------------

SIDES = {
    "reserved": "ours, control reserved (pool 11, min_concurrency 1)",
    "shared": "ours, no reservation (pool 10)",
    "peer": "PriorityQueue + 10 threads",
}


def measure(kind: str, sizes: Sizes, iterations: int) -> dict[str, dict[str, Spread]]:
    """Per side: the p50, p99 and max of each round, as spreads (ms)."""
    rounds: dict[str, list[list[float]]] = {side: [] for side in SIDES}

    def side(name: str) -> Callable[[], float]:
        def trial() -> float:
            load = Load(kind, iterations, sizes.seconds)
            if name == "peer":
                found = peer(load, sizes)
            else:
                found = ours(load, sizes, reserved=name == "reserved")
            rounds[name].append(found)
            return 0.0
        return trial

    alternate({name: side(name) for name in SIDES}, sizes.rounds)
    return {name: {
        "probes": Spread.of([len(r) for r in found]),
        "pooled_p99": Spread.of([percentile([v for r in found for v in r], 99) / 1_000]),
        "p50": Spread.of([percentile(r, 50) / 1_000 for r in found]),
        "p99": Spread.of([percentile(r, 99) / 1_000 for r in found]),
        "max": Spread.of([max(r) / 1_000 for r in found]),
    } for name, found in rounds.items()}


def ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def reservation_table(sizes: Sizes) -> tuple[str, dict[str, Any]]:
    iterations = calibrate_cpu(PROMPT_SECONDS)
    rows: list[list[str]] = []
    record: dict[str, Any] = {"iterations": iterations}
    for kind, label in (("cpu", "CPU-bound 2 ms"), ("io", "I/O-bound 2 ms sleep")):
        found = measure(kind, sizes, iterations)
        record[kind] = {name: {k: asdict(v) for k, v in spreads.items()}
                        for name, spreads in found.items()}
        mine = found["reserved"]["pooled_p99"].median
        if kind == "cpu":
            others = (found["shared"]["pooled_p99"].median, found["peer"]["pooled_p99"].median)
            ok = mine <= min(others)
            goal = "p99 <= no reservation's and <= PriorityQueue's"
        else:
            ok = mine <= IO_LIMIT_MS
            goal = f"p99 <= {IO_LIMIT_MS:g} ms"
        for name, title in SIDES.items():
            spreads = found[name]
            verdict = f"{goal}: {'PASS' if ok else 'MISS'}" if name == "reserved" else ""
            rows.append([label, title, f"{spreads['probes'].median:.0f}",
                         cell(spreads["p50"], ms), cell(spreads["p99"], ms),
                         ms(spreads["pooled_p99"].median), cell(spreads["max"], ms), verdict])
        progress(f"reservation: {kind}")
    headers = ["prompt work", "side", "probes per round", "control start p50 ms", "p99 ms",
               "p99 of all rounds' probes, ms", "max ms", "target (on all rounds' p99)"]
    notes = ("Ten prompt workers busy with a backlog (queued before the probes, enough to "
             f"outlast them); up to {sizes.probes} control probes per "
             f"round (or {sizes.seconds:g} s: under CPU-bound load each takes ~100 ms, the probe "
             "thread waiting for the GIL after every wait of its own), "
             "one at a time, each timed from just before its submit to its first line; medians "
             f"over {sizes.rounds} alternating rounds of each round's percentile (min-max). "
             "Under CPU-bound load a round holds few probes, so its p99 is its maximum: the "
             "verdict uses the p99 of all rounds' probes together. "
             f"CPU-bound: {iterations:,} iterations of a pure-Python loop (2 ms of CPU).")
    return markdown(headers, rows) + "\n\n" + notes, record


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    table, _ = reservation_table(QUICK if args.quick else FULL)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
