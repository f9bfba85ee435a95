"""Hand-off, caller-runs and reservations: ours, the strongest peer and the
floor, on the same work, in one run (issue 14, targets 1-3).

    .venv/bin/python bench/bench_handoff.py            # about 2.5 minutes
    .venv/bin/python bench/bench_handoff.py --quick    # about 40 s (smoke run)
    .venv/bin/python bench/bench_handoff.py --json out.json

Three tables, each over three kinds of work (a no-op, a 1 KB JSON job, a
1 ms sleep); the reservation table has its own load (bench_reservation.py):

1. Worker hand-off: `manager.submit(lane, work).result()` — the command runs
   on a worker thread — against `ThreadPoolExecutor.submit(work).result()`
   with the same worker count, and the floor: the leanest two-thread
   hand-off CPython allows (workers blocked in `SimpleQueue.get()`, the
   caller blocked on a plain lock the worker releases). 1 and 16 callers.
2. Caller-runs: `manager.run(lane, work)` and the SDK's `Lane.submit` run
   the command on the caller's thread when a slot is free. Their floor:
   a `threading.BoundedSemaphore` acquire, a direct call, a release (for the
   SDK plus the `json.loads(json.dumps(payload))` copy it makes by design).
   ThreadPoolExecutor is shown beside them although its path differs (a
   hand-off to a worker).
3. A reservation under CPU-bound load (see bench_reservation.py).

Each trial builds its side fresh, warms it up, then counts completed calls
for a fixed time. Method: see bench_common.py (alternating rounds, medians
with min-max, ratios of medians from the same run).
"""

from __future__ import annotations

import _thread
import argparse
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from queue import SimpleQueue
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_reservation
from bench_common import (
    LANES,
    STARTED,
    WORKS,
    Work,
    alternate,
    cell,
    lane_manager,
    markdown,
    progress,
    ratio,
    sdk_lane,
    thread_pool,
)

FIRST_LANE = LANES[0]
SDK_PAYLOAD = {"n": 1}
TARGET_HANDOFF = {1: 1.3, 16: 1.2}
TARGET_RUN = 0.6
TARGET_SDK = 0.35


@dataclass(frozen=True)
class Sizes:
    rounds: int
    seconds: float          # timed part of one trial
    warm_seconds: float
    reservation: bench_reservation.Sizes


FULL = Sizes(rounds=5, seconds=0.3, warm_seconds=0.05, reservation=bench_reservation.FULL)
QUICK = Sizes(rounds=3, seconds=0.1, warm_seconds=0.02, reservation=bench_reservation.QUICK)


# ---- timing: calls completed in a fixed time ---------------------------------

def calls_per_second(call: Callable[[], Any], callers: int, seconds: float,
                     warm_seconds: float) -> float:
    """`callers` threads call `call` back to back for `seconds` (after a
    warm-up); completed calls per second of wall time."""
    if callers == 1:
        _run_for(call, warm_seconds)
        began = time.perf_counter()
        done = _run_for(call, seconds)
        return done / (time.perf_counter() - began)
    counts = [0] * callers
    start = threading.Barrier(callers + 1)
    stop_at = [0.0]

    def caller(index: int) -> None:
        _run_for(call, warm_seconds)
        start.wait()
        counts[index] = _run_until(call, stop_at[0])

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    for thread in threads:
        thread.start()
    while start.n_waiting < callers:
        time.sleep(0.001)
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - began)


def _run_for(call: Callable[[], Any], seconds: float) -> int:
    return _run_until(call, time.perf_counter() + seconds)


def _run_until(call: Callable[[], Any], deadline: float) -> int:
    """Calls in batches of 8 between clock reads (the same for every side)."""
    clock = time.perf_counter
    done = 0
    while clock() < deadline:
        call(); call(); call(); call(); call(); call(); call(); call()  # noqa: E702
        done += 8
    return done


# ---- the sides, each built fresh per trial ------------------------------------

class HandoffFloor:
    """The leanest two-thread hand-off in CPython: workers block in
    `SimpleQueue.get()` (C, GIL released); the caller puts the call and a
    held plain lock, and blocks acquiring it again; the worker runs the call,
    stores the result and releases the lock. No futures, no exceptions
    carried, no bookkeeping."""

    def __init__(self, workers: int) -> None:
        self._queue: SimpleQueue[Optional[list[Any]]] = SimpleQueue()
        self._threads = [threading.Thread(target=self._work) for _ in range(workers)]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        get = self._queue.get
        while (item := get()) is not None:
            item[2] = item[0]()
            item[1].release()

    def call(self, function: Callable[[], Any]) -> Any:
        lock = _thread.allocate_lock()
        lock.acquire()
        item = [function, lock, None]
        self._queue.put(item)
        lock.acquire()
        return item[2]

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()


@contextmanager
def handoff_floor(workers: int) -> Iterator[HandoffFloor]:
    floor = HandoffFloor(workers)
    try:
        yield floor
    finally:
        floor.close()


# ---- table 1: worker hand-off ---------------------------------------------------

def handoff_sides(work: Work, workers: int, callers: int,
                  sizes: Sizes) -> dict[str, Callable[[], float]]:
    run = work.call

    def measure(call: Callable[[], Any]) -> float:
        return calls_per_second(call, callers, sizes.seconds, sizes.warm_seconds)

    def floor() -> float:
        with handoff_floor(workers) as bare:
            return measure(lambda: bare.call(run))

    def tpe() -> float:
        with thread_pool(workers) as pool:
            submit = pool.submit
            return measure(lambda: submit(run).result())

    def ours() -> float:
        with lane_manager(workers) as manager:
            submit = manager.submit
            return measure(lambda: submit(FIRST_LANE, run).result())

    return {"floor": floor, "tpe": tpe, "ours": ours}


def handoff_table(sizes: Sizes, workers: int) -> tuple[str, list[dict[str, Any]]]:
    rows, records = [], []
    for callers in (1, 16):
        for work in WORKS:
            found = alternate(handoff_sides(work, workers, callers, sizes), sizes.rounds)
            to_tpe = ratio(found["ours"], found["tpe"])
            target = TARGET_HANDOFF[callers]
            rows.append([
                work.label, str(callers), cell(found["floor"]), cell(found["tpe"]),
                cell(found["ours"]), f"**{to_tpe:.2f}x**",
                f"{ratio(found['ours'], found['floor']):.2f}x",
                f">= {target:g}x: {'PASS' if to_tpe >= target else 'MISS'}"
                if work.name == "noop" else "-"])
            records.append({"callers": callers, "work": work.name,
                            **{side: asdict(spread) for side, spread in found.items()}})
            progress(f"hand-off: {work.name}, {callers} caller(s)")
    headers = ["work", "callers", "floor: bare hand-off calls/s",
               "ThreadPoolExecutor `submit().result()`", "ours `submit().result()`",
               "ours / TPE", "ours / floor", "target (no-op)"]
    notes = (f"{workers} workers on every side; medians of {sizes.rounds} alternating rounds "
             "(min-max); every side hands the command to a worker thread and blocks until "
             "it has run. Floor: workers blocked in `SimpleQueue.get()`, the caller on a "
             "plain lock the worker releases.")
    return markdown(headers, rows) + "\n\n" + notes, records


# ---- table 2: caller-runs -----------------------------------------------------------

def caller_runs_sides(work: Work, workers: int, sizes: Sizes) -> dict[str, Callable[[], float]]:
    run, handler = work.call, work.handler
    payload = SDK_PAYLOAD

    def measure(call: Callable[[], Any]) -> float:
        return calls_per_second(call, 1, sizes.seconds, sizes.warm_seconds)

    def floor() -> float:
        slots = threading.BoundedSemaphore(workers)

        def call() -> Any:
            with slots:
                return run()
        return measure(call)

    def sdk_floor() -> float:
        slots = threading.BoundedSemaphore(workers)
        loads, dumps = json.loads, json.dumps

        def call() -> Any:
            with slots:
                return handler(loads(dumps(payload)))
        return measure(call)

    def ours_run() -> float:
        with lane_manager(workers) as manager:
            run_inline = manager.run
            return measure(lambda: run_inline(FIRST_LANE, run))

    def sdk() -> float:
        with sdk_lane(workers, "work", work.handler) as lane:
            submit = lane.submit
            return measure(lambda: submit(FIRST_LANE, "work", payload))

    def tpe() -> float:
        with thread_pool(workers) as pool:
            submit = pool.submit
            return measure(lambda: submit(run).result())

    return {"floor": floor, "run": ours_run, "sdk_floor": sdk_floor, "sdk": sdk, "tpe": tpe}


def caller_runs_table(sizes: Sizes, workers: int) -> tuple[str, list[dict[str, Any]]]:
    rows, records = [], []
    for work in WORKS:
        found = alternate(caller_runs_sides(work, workers, sizes), sizes.rounds)
        run_ratio = ratio(found["run"], found["floor"])
        sdk_ratio = ratio(found["sdk"], found["sdk_floor"])
        noop = work.name == "noop"
        rows.append([
            work.label, cell(found["floor"]), cell(found["run"]), f"**{run_ratio:.2f}x**"
            + (f" ({'PASS' if run_ratio >= TARGET_RUN else 'MISS'})" if noop else ""),
            cell(found["sdk_floor"]), cell(found["sdk"]), f"**{sdk_ratio:.2f}x**"
            + (f" ({'PASS' if sdk_ratio >= TARGET_SDK else 'MISS'})" if noop else ""),
            cell(found["tpe"]), f"{ratio(found['run'], found['tpe']):.2f}x"])
        records.append({"work": work.name,
                        **{side: asdict(spread) for side, spread in found.items()}})
        progress(f"caller-runs: {work.name}")
    headers = ["work", "floor: semaphore + call, calls/s", "ours `run()` (inline)",
               "run / floor (target >= 0.6x)", "SDK floor: semaphore + JSON copy + handler",
               "SDK `Lane.submit` (inline)", "SDK / its floor (target >= 0.35x)",
               "ThreadPoolExecutor `submit().result()` (hand-off)", "run / TPE"]
    notes = ("One caller. `run()` and `Lane.submit` run the command on the caller's thread "
             "(a slot is free); ThreadPoolExecutor has no such path and hands it to a worker, "
             "so its column compares different paths. Floor: `with BoundedSemaphore(6): "
             "work()`; the SDK's floor adds the `json.loads(json.dumps(payload))` copy the "
             f"SDK makes by design (payload {json.dumps(SDK_PAYLOAD)}).")
    return markdown(headers, rows) + "\n\n" + notes, records


# ---- main -------------------------------------------------------------------------

def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter trials (smoke run)")
    parser.add_argument("--rounds", type=int, help="rounds per figure (default 5, quick 3)")
    parser.add_argument("--workers", type=int, default=6,
                        help="worker threads on the hand-off sides (default 6)")
    parser.add_argument("--only", choices=["handoff", "caller-runs", "reservation"],
                        help="one table only")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.rounds is not None:
        sizes = Sizes(**{**asdict(sizes), "rounds": max(1, args.rounds),
                         "reservation": sizes.reservation})
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the start\n")
    document: dict[str, Any] = {"sizes": asdict(sizes), "workers": args.workers}
    if args.only in (None, "handoff"):
        table, document["handoff"] = handoff_table(sizes, args.workers)
        print("### 1. Worker hand-off: `submit().result()`\n\n" + table + "\n", flush=True)
    if args.only in (None, "caller-runs"):
        table, document["caller_runs"] = caller_runs_table(sizes, args.workers)
        print("### 2. Caller-runs: `run()` and SDK `Lane.submit`\n\n" + table + "\n", flush=True)
    if args.only in (None, "reservation"):
        table, document["reservation"] = bench_reservation.reservation_table(sizes.reservation)
        print("### 3. A reserved worker under CPU-bound load\n\n" + table + "\n", flush=True)
    print(f"({time.perf_counter() - STARTED:.0f} s in all; load average "
          f"{os.getloadavg()[0]:.1f} at the end)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
