"""The performance targets of issue 6, measured in one run, PASS or MISS each.

    python bench/bench_targets.py                  # full run, ~4 min; writes bench/chart.png
    python bench/bench_targets.py --quick          # smoke run, under a minute, no chart
    python bench/bench_targets.py --json out.json  # also write every figure as JSON

Targets (every ratio comes from figures measured in this same run):

  1. blocking submit from one caller thread >= 2x ThreadPoolExecutor;
  2. 100,000 submits over 10 lanes then wait >= 1.5x ThreadPoolExecutor, and
     16 blocking caller threads >= 1.5x (1 and 2 reuse bench_python.py's
     workloads and alternating rounds);
  3. SDK blocking submit, 1 and 16 caller threads, >= 100x the a3s-lane 0.4.0
     wheel, which runs in its own venv (bench/out/venv-0.4.0, made by pip on
     first use) in a subprocess, for a bounded time per case;
  4. urgency: the time from submitting a `control` command to its start while
     `prompt` keeps every worker it may have busy and 1,000 more wait: p99
     <= 1 ms with I/O-bound prompt jobs. Also measured with CPU-bound ones
     (they hold the GIL), with sys.setswitchinterval(0.0005), with the CPU
     work moved to LocalDistributedQueue processes, and, as the floor the GIL
     sets, a plain threading.Event wake beside the same CPU-bound threads;
  6. memory: 1,000,000 pending no-op commands <= 600 MB RSS for the whole
     process (a fresh subprocess), and RSS flat within 5% over 5,000,000
     commands run through in batches (quick: 500,000).

Targets 5 (C engine) and 7 (Node) are measured by bench/run_c.sh and
node/bench. Progress goes to stderr; one Markdown table per target to stdout.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

from pylane import Lane
from pylane.config import DEFAULT_LANES, default_lane_configs
from pylane.distributed import LocalDistributedQueue
from pylane.stats import LaneStatus

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)

import bench_python as bp  # noqa: E402
import chart  # noqa: E402
from bench_partitions import burn, calibrate  # noqa: E402

OLD_VERSION = "0.4.0"
OLD_VENV = os.path.join(BENCH_DIR, "out", f"venv-{OLD_VERSION}")
DEFAULT_CHART = os.path.join(BENCH_DIR, "chart.png")
SDK_LANE = "query"            # the lane both SDKs submit to in target 3
SDK_PAYLOAD = {"n": 1}        # echoed back by both (no handler registered)
PROBE_LANES = [lane_id for lane_id, _, _ in DEFAULT_LANES if lane_id != "prompt"]
BACKLOG = 1_000               # prompt commands waiting behind the running ones
PENDING_LIMIT_MB = 600.0
FLAT_LIMIT = 0.05
FLAT_RUNS = 3
LATENCY_LIMIT_MS = 1.0


@dataclass(frozen=True)
class Sizes:
    python: bp.Sizes        # targets 1 and 2 (bench_python.py's sizes)
    old_seconds: float      # target 3: time per case for the 0.4.0 wheel
    sdk_ops: int            # target 3: our blocking submits, one caller
    sdk_per_caller: int     # target 3: our blocking submits per caller thread
    probes: int             # target 4: samples per lane with I/O-bound load
    cpu_probes: int         # target 4: at most this many with CPU-bound load...
    cpu_seconds: float      # ...or this long, whichever ends first
    pending: int            # target 6: commands left pending
    run_through: int        # target 6: commands run through
    batch: int


FULL = Sizes(python=bp.FULL, old_seconds=3.0, sdk_ops=20_000, sdk_per_caller=2_000,
             probes=200, cpu_probes=200, cpu_seconds=8.0,
             pending=1_000_000, run_through=5_000_000, batch=50_000)
QUICK = Sizes(python=bp.QUICK, old_seconds=1.0, sdk_ops=5_000, sdk_per_caller=200,
              probes=50, cpu_probes=50, cpu_seconds=1.5,
              pending=1_000_000, run_through=500_000, batch=50_000)


STARTED = time.perf_counter()


def progress(message: str) -> None:
    print(f"  [{time.perf_counter() - STARTED:5.0f} s] {message}", file=sys.stderr, flush=True)


# ---- tables ---------------------------------------------------------------

@dataclass
class Table:
    target: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"### {self.target}", "",
                 "| " + " | ".join(self.headers) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.headers)))
                 + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += self.notes
        return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def ops(value: float) -> str:
    return f"{value:,.0f}"


def spread(s: bp.Spread) -> str:
    return f"{ops(s.median)} ({ops(s.low)} - {ops(s.high)})"


# ---- targets 1 and 2: bench_python.py's workloads ------------------------------

def python_targets(sizes: bp.Sizes, workers: int) -> tuple[list[bp.Row], Table, Table]:
    n, flood, per_caller, rounds = sizes.single, sizes.flood, sizes.per_caller, sizes.rounds
    rows = [
        bp.compare("(a) SDK `Lane.submit(lane, \"noop\", None)` (handler, inline) vs "
                   "`pool.submit(noop).result()` (hand-off)", "ops/s",
                   lambda: bp.tpe_blocking(workers, n), lambda: bp.sdk_submit(workers, n), rounds,
                   bp.INLINE),
        bp.compare("(a) `manager.run(lane, noop)` (inline) vs `pool.submit(noop).result()` "
                   "(hand-off)", "ops/s",
                   lambda: bp.tpe_blocking(workers, n), lambda: bp.lane_run(workers, n), rounds,
                   bp.INLINE),
        bp.compare("(a) `manager.submit(lane, noop).result()` (hand-off to a worker) vs "
                   "`pool.submit(noop).result()`", "ops/s",
                   lambda: bp.tpe_blocking(workers, n),
                   lambda: bp.lane_submit_result(workers, n), rounds, bp.HANDOFF),
        bp.compare(f"(b) {flood:,} submits from 1 thread over 10 lanes, then `wait()`", "ops/s",
                   lambda: bp.tpe_flood(workers, flood), lambda: bp.lane_flood(workers, flood),
                   rounds),
        bp.compare(f"(c) {bp.CALLER_THREADS} caller threads x {per_caller:,} blocking "
                   "`run()` vs `submit().result()`", "ops/s",
                   lambda: bp.tpe_callers(workers, per_caller),
                   lambda: bp.lane_callers(workers, per_caller), rounds),
    ]
    headers = ["workload", "ThreadPoolExecutor ops/s", "a3s-lane ops/s", "ratio", "target",
               "status"]

    def line(row: bp.Row, target: Optional[float]) -> list[str]:
        ratio = row.ratio or 0.0
        status = "info" if target is None else verdict(ratio >= target)
        return [row.workload, spread(row.tpe), spread(row.lane), f"{ratio:.2f}x",
                "-" if target is None else f">= {target:g}x", status]

    t1 = Table("Target 1: blocking submit from one caller thread >= 2x ThreadPoolExecutor",
               headers, [line(rows[0], 2.0), line(rows[1], 2.0), line(rows[2], None)])
    t1.notes.append(
        f"{workers} workers on both sides, 10 lanes; median of {rounds} alternating rounds "
        "(min - max). The blocking submits (`Lane.submit`, `run()`) run the command on the "
        "caller's thread when it may start at once; the `submit().result()` row is the "
        "same hand-off to a worker that ThreadPoolExecutor does, shown for reference.")
    t2 = Table("Target 2: 100,000 submits then wait, and 16 blocking callers, "
               ">= 1.5x ThreadPoolExecutor", headers, [line(rows[3], 1.5), line(rows[4], 1.5)])
    return rows, t1, t2


# ---- target 3: the a3s-lane 0.4.0 wheel, in its own venv and process ----------

OLD_WHEEL_CHILD = r"""
import json, sys, threading, time
import _a3s_lane

threads, seconds = int(sys.argv[1]), float(sys.argv[2])
lane_id, payload = sys.argv[3], json.loads(sys.argv[4])
lane = _a3s_lane.PyLane()
lane.start()
for _ in range(3):
    lane.submit(lane_id, "bench", payload)
counts = [0] * threads
barrier = threading.Barrier(threads + 1)
deadline = [0.0]

def caller(index):
    barrier.wait()
    end, done = deadline[0], 0
    while time.perf_counter() < end:
        lane.submit(lane_id, "bench", payload)
        done += 1
    counts[index] = done

workers = [threading.Thread(target=caller, args=(i,)) for i in range(threads)]
for worker in workers:
    worker.start()
while barrier.n_waiting < threads:
    time.sleep(0.001)
start = time.perf_counter()
deadline[0] = start + seconds
barrier.wait()
for worker in workers:
    worker.join()
elapsed = time.perf_counter() - start
print(json.dumps({"ops": sum(counts), "seconds": elapsed,
                  "ops_per_second": sum(counts) / elapsed}))
sys.stdout.flush()
lane.shutdown()
lane.drain(5)
"""


def venv_python(venv: str) -> str:
    return os.path.join(venv, "Scripts" if os.name == "nt" else "bin", "python")


def old_wheel_python() -> tuple[Optional[str], str]:
    """The python of a venv holding the 0.4.0 wheel, made on first use;
    (None, why) when it cannot be had."""
    python = venv_python(OLD_VENV)

    def importable() -> bool:
        if not os.path.exists(python):
            return False
        check = subprocess.run([python, "-c", "import _a3s_lane"], capture_output=True,
                               timeout=60, check=False)
        return check.returncode == 0

    if importable():
        return python, "reused"
    progress(f"creating {os.path.relpath(OLD_VENV)} with a3s-lane=={OLD_VERSION} (pip)")
    steps = [[sys.executable, "-m", "venv", "--clear", OLD_VENV],
             [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              f"a3s-lane=={OLD_VERSION}"]]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            return None, f"{' '.join(step[:3])}: {error}"
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["failed"]
            return None, f"{' '.join(step[:4])}: {tail[0]}"
    return (python, "installed") if importable() else (None, "_a3s_lane does not import")


def old_wheel_rate(python: str, threads: int, seconds: float) -> dict[str, float]:
    done = subprocess.run(
        [python, "-c", OLD_WHEEL_CHILD, str(threads), str(seconds), SDK_LANE,
         json.dumps(SDK_PAYLOAD)],
        capture_output=True, text=True, timeout=seconds + 120, check=True)
    return json.loads(done.stdout.strip().splitlines()[0])


@contextmanager
def default_sdk_lane() -> Iterator[Lane]:
    lane = Lane()  # the six default lanes, as PyLane() has
    lane.start()
    try:
        yield lane
    finally:
        lane.shutdown()
        lane.drain()


def sdk_one_caller(n: int) -> float:
    with default_sdk_lane() as lane:
        def call() -> None:
            lane.submit(SDK_LANE, "bench", SDK_PAYLOAD)
        bp.repeat(call, bp.warm_count(n))
        return bp.ops_per_second(n, lambda: bp.repeat(call, n))


def sdk_callers(per_thread: int) -> float:
    with default_sdk_lane() as lane:
        def call() -> None:
            lane.submit(SDK_LANE, "bench", SDK_PAYLOAD)
        bp.callers_ops_per_second(call, bp.CALLER_THREADS, bp.warm_count(per_thread))
        return bp.callers_ops_per_second(call, bp.CALLER_THREADS, per_thread)


def old_wheel_target(sizes: Sizes) -> tuple[dict[str, Any], Table]:
    rounds = sizes.python.rounds
    cases = [("1 caller thread", 1, lambda: sdk_one_caller(sizes.sdk_ops)),
             (f"{bp.CALLER_THREADS} caller threads", bp.CALLER_THREADS,
              lambda: sdk_callers(sizes.sdk_per_caller))]
    table = Table(f"Target 3: SDK blocking submit >= 100x the a3s-lane {OLD_VERSION} wheel",
                  ["case", f"{OLD_VERSION} wheel ops/s", "a3s-lane ops/s", "ratio", "target",
                   "status"])
    result: dict[str, Any] = {"cases": []}
    python, how = old_wheel_python()
    result["venv"] = how
    if python is None:
        line = f"SKIP target 3: could not install a3s-lane=={OLD_VERSION} ({how})"
        print(line, file=sys.stderr, flush=True)
        table.notes.append(line)
    for name, threads, ours in cases:
        samples = [ours() for _ in range(rounds)]
        mine = bp.Spread.of(samples)
        old: Optional[dict[str, float]] = None
        if python is not None:
            try:
                old = old_wheel_rate(python, threads, sizes.old_seconds)
            except (subprocess.SubprocessError, ValueError, IndexError) as error:
                table.notes.append(f"SKIP {name}: the {OLD_VERSION} wheel failed ({error})")
        if old is None:
            table.rows.append([name, "skipped", spread(mine), "-", ">= 100x", "SKIP"])
        else:
            ratio = mine.median / old["ops_per_second"]
            table.rows.append([
                name, f"{old['ops_per_second']:,.1f} ({old['ops']:,.0f} in "
                f"{old['seconds']:.1f} s)", spread(mine), f"{ratio:,.0f}x", ">= 100x",
                verdict(ratio >= 100)])
        result["cases"].append({"case": name, "threads": threads, "a3s_lane": asdict(mine),
                                "old_wheel": old})
        progress(f"measured: target 3, {name}")
    table.notes.append(
        f"Both sides: the six default lanes, `submit(\"{SDK_LANE}\", \"bench\", "
        f"{json.dumps(SDK_PAYLOAD)})` with no handler (the payload is echoed back). a3s-lane: "
        f"median of {rounds} rounds (min - max) in this process; {OLD_VERSION}: "
        f"`_a3s_lane.PyLane` in a subprocess of {os.path.relpath(OLD_VENV)}, one run of "
        f"{sizes.old_seconds:g} s per case.")
    return result, table


# ---- target 4: urgency ------------------------------------------------------------

def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest rank."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarise(latencies_us: list[float]) -> dict[str, float]:
    values = sorted(latencies_us)
    return {"n": len(values), "p50": percentile(values, 50), "p90": percentile(values, 90),
            "p99": percentile(values, 99), "max": values[-1] if values else math.nan}


@contextmanager
def switch_interval(seconds: Optional[float]) -> Iterator[None]:
    before = sys.getswitchinterval()
    if seconds is not None:
        sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def spin(stop: threading.Event) -> None:
    """A CPU-bound prompt job: pure Python, holds the GIL until told to stop."""
    while not stop.is_set():
        for _ in range(2_000):
            pass


def probe_starts(lane: Lane, lanes: list[str], per_lane: int, seconds: float,
                 warm: int = 20) -> dict[str, list[float]]:
    """Submits probe commands one at a time, round-robin over `lanes`, and
    returns each one's submit -> start time in microseconds."""
    submit = lane.manager.submit
    clock = time.perf_counter_ns
    found: dict[str, list[float]] = {lane_id: [] for lane_id in lanes}
    starts: list[int] = []

    def probe() -> None:
        starts.append(clock())

    for i in range(warm):
        submit(lanes[i % len(lanes)], probe).result()
    starts.clear()
    deadline = time.perf_counter() + seconds
    for i in range(per_lane * len(lanes)):
        lane_id = lanes[i % len(lanes)]
        began = clock()
        submit(lane_id, probe).result()
        found[lane_id].append((starts[-1] - began) / 1_000.0)
        if time.perf_counter() > deadline and i % len(lanes) == len(lanes) - 1:
            break
    return found


def prompt_status(lane: Lane) -> LaneStatus:
    return next(s for s in lane.stats().lanes if s.lane_id == "prompt")


def wait_for_load(lane: Lane, running: int, pending: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = prompt_status(lane)
        if status.active == running and status.pending == pending:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"prompt did not reach {running} running / {pending} waiting: "
                               f"{status.active} / {status.pending}")
        time.sleep(0.01)


def loaded_lane(widen: bool) -> tuple[Lane, int]:
    """The default lanes, and how many prompt commands can run at once.
    Widened: prompt's max_concurrency is the whole pool, so it takes every
    worker the other lanes' reservations (min_concurrency 1 each) leave."""
    configs = default_lane_configs()
    if not widen:
        prompt = next(c for c in configs if c.lane_id == "prompt")
        return Lane(), prompt.max_concurrency
    pool = sum(c.max_concurrency for c in configs)
    reserved = sum(c.min_concurrency for c in configs if c.lane_id != "prompt")
    configs = [c.with_concurrency(c.min_concurrency, pool) if c.lane_id == "prompt" else c
               for c in configs]
    return Lane.with_lanes(configs, max_workers=pool), pool - reserved


@dataclass
class Scenario:
    name: str
    kind: str                # io | cpu | partitions
    widen: bool
    switch: Optional[float]  # seconds; None leaves the default
    lanes: list[str]
    target: bool             # does the 1 ms target apply?
    label: str = "(GIL-bound)"  # the target column when it does not


def run_scenario(scenario: Scenario, sizes: Sizes) -> dict[str, Any]:
    if scenario.kind == "partitions":
        return run_partitions_scenario(scenario, sizes)
    lane, running = loaded_lane(scenario.widen)
    lane.start()
    stop = threading.Event()
    job: Callable[[], None] = stop.wait if scenario.kind == "io" else (lambda: spin(stop))
    futures = [lane.manager.submit("prompt", job) for _ in range(running + BACKLOG)]
    try:
        wait_for_load(lane, running, BACKLOG)
        with switch_interval(scenario.switch):
            if scenario.kind == "io":
                found = probe_starts(lane, scenario.lanes, sizes.probes, math.inf)
            else:
                found = probe_starts(lane, scenario.lanes, sizes.cpu_probes, sizes.cpu_seconds)
            after = prompt_status(lane)
            floor = gil_floor(sizes) if scenario.kind == "cpu" else None
    finally:
        stop.set()
        wait(futures)
        lane.shutdown()
        lane.drain()
    return {"running": running, "pending_after": after.pending, "active_after": after.active,
            "switch_interval": scenario.switch or sys.getswitchinterval(),
            "lanes": {lane_id: summarise(values) for lane_id, values in found.items()},
            "gil_floor": floor}


def partition_count() -> int:
    return max(1, (os.cpu_count() or 1) - 1)


def run_partitions_scenario(scenario: Scenario, sizes: Sizes) -> dict[str, Any]:
    """The CPU-bound prompt work in LocalDistributedQueue worker processes
    (one per CPU but one, which this process keeps); the probes go to a
    threaded Lane in this process."""
    partitions = partition_count()
    iterations = calibrate(0.02)
    queue = LocalDistributedQueue(partitions)
    try:
        if not queue.wait_ready(60):
            raise RuntimeError("partition worker processes did not start")
        wait([queue.submit("prompt", burn, 1) for _ in range(partitions)])
        futures = [queue.submit("prompt", burn, iterations) for _ in range(partitions + BACKLOG)]
        time.sleep(0.1)
        lane = Lane()
        lane.start()
        try:
            found = probe_starts(lane, scenario.lanes, sizes.probes, sizes.cpu_seconds)
        finally:
            lane.shutdown()
            lane.drain()
        waiting = sum(1 for future in futures if not future.done()) - partitions
    finally:
        queue.shutdown(wait=True, cancel_pending=True)
    return {"running": partitions, "pending_after": waiting, "active_after": partitions,
            "switch_interval": sys.getswitchinterval(),
            "lanes": {lane_id: summarise(values) for lane_id, values in found.items()},
            "gil_floor": None}


def gil_floor(sizes: Sizes) -> dict[str, float]:
    """What the GIL alone costs: how long a plain thread blocked on a
    threading.Event takes to run once set, beside the CPU-bound prompt jobs
    that are still spinning (no queue involved in the timed path)."""
    request, answered = threading.Event(), threading.Event()
    woke: list[int] = []
    quit_flag = [False]

    def waiter() -> None:
        while True:
            request.wait()
            woke.append(time.perf_counter_ns())
            request.clear()
            if quit_flag[0]:
                return
            answered.set()

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    samples: list[float] = []
    deadline = time.perf_counter() + sizes.cpu_seconds / 2
    while len(samples) < sizes.cpu_probes and time.perf_counter() < deadline:
        answered.clear()
        began = time.perf_counter_ns()
        request.set()
        answered.wait()
        samples.append((woke[-1] - began) / 1_000.0)
    quit_flag[0] = True
    request.set()
    thread.join()
    return summarise(samples)


def ms(us: float) -> str:
    return f"{us / 1_000.0:.3f}"


def urgency_target(sizes: Sizes) -> tuple[dict[str, Any], Table]:
    control = ["control"]
    scenarios = [
        Scenario("I/O-bound, default lanes", "io", False, None, control, True),
        Scenario("I/O-bound, prompt widened", "io", True, None, PROBE_LANES, True),
        Scenario("CPU-bound, default lanes", "cpu", False, None, control, False),
        Scenario("CPU-bound, default lanes, switch 0.5 ms", "cpu", False, 0.0005, control, False),
        Scenario("CPU-bound, prompt widened", "cpu", True, None, control, False),
        Scenario("CPU-bound, prompt widened, switch 0.5 ms", "cpu", True, 0.0005, control, False),
        Scenario("CPU-bound in LocalDistributedQueue processes", "partitions", False, None,
                 control, False, "(remedy)"),
    ]
    table = Table(
        "Target 4: `control` submit -> start while `prompt` is busy and 1,000 wait, "
        "p99 <= 1 ms",
        ["prompt work", "prompt running / waiting", "switch interval", "samples", "p50 ms",
         "p90 ms", "p99 ms", "max ms", "GIL floor p50 / p99 ms", "target", "status"])
    result: dict[str, Any] = {}
    for scenario in scenarios:
        measured = run_scenario(scenario, sizes)
        result[scenario.name] = {**asdict(scenario), **measured}
        stats = measured["lanes"]["control"]
        floor = measured["gil_floor"]
        ok = stats["p99"] <= LATENCY_LIMIT_MS * 1_000.0
        table.rows.append([
            scenario.name, f"{measured['running']} / {BACKLOG:,}",
            f"{measured['switch_interval'] * 1_000:g} ms", str(stats["n"]),
            ms(stats["p50"]), ms(stats["p90"]), ms(stats["p99"]), ms(stats["max"]),
            "-" if floor is None else f"{ms(floor['p50'])} / {ms(floor['p99'])}",
            "p99 <= 1 ms" if scenario.target else scenario.label,
            verdict(ok) if scenario.target else f"info ({verdict(ok)})"])
        progress(f"measured: target 4, {scenario.name}")
    table.notes.append(
        "Default lanes: prompt max_concurrency 2 of a 28-worker pool. Widened: prompt's "
        "max_concurrency raised to the whole pool (28 workers), so it runs on every worker "
        "that the other five lanes' reservations (min_concurrency 1 each) leave; control "
        "starts on its reserved worker. One probe at a time: `manager.submit(\"control\", "
        "probe)`, timed from before the submit to the probe's first line, then "
        "`.result()`. I/O-bound jobs wait on a threading.Event; CPU-bound jobs spin in "
        "pure Python until the end. GIL floor: a plain thread blocked on a threading.Event, "
        "timed from `set()` to its first line, beside the same CPU-bound threads (no queue "
        "involved). Partitions: ~20 ms pure-Python commands in "
        f"LocalDistributedQueue({partition_count()}) (a process per CPU but one) with 1,000 "
        "waiting, probes in a default `Lane()` of this process.")
    return result, table


# ---- chart data: start latency per lane under load -------------------------------

def per_lane_latency(urgency: dict[str, Any]) -> dict[str, Any]:
    widened = urgency["I/O-bound, prompt widened"]
    return {"lanes": widened["lanes"], "running": widened["running"]}


# ---- target 6: memory, in fresh subprocesses -------------------------------------

def rss_bytes() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource  # peak, not current: only a fallback off Linux
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def noop() -> None:
    return None


def child_pending(count: int) -> dict[str, Any]:
    lane = Lane()  # default lanes, never started
    submit = lane.manager.submit
    lanes = [lane_id for lane_id, _, _ in DEFAULT_LANES]
    width = len(lanes)
    gc.collect()
    before = rss_bytes()
    began = time.perf_counter()
    futures = [submit(lanes[i % width], noop) for i in range(count)]
    seconds = time.perf_counter() - began
    gc.collect()
    after = rss_bytes()
    pending = lane.stats().total_pending
    del futures
    return {"count": count, "pending": pending, "rss_before": before, "rss_after": after,
            "seconds": seconds}


def malloc_trim() -> bool:
    """Hands glibc's free heap pages back to the OS; False where there is no glibc."""
    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _pymalloc_live_bytes() -> Optional[int]:
    """Bytes in pymalloc's allocated blocks (sys._debugmallocstats, which
    writes to the C-level stderr)."""
    import re
    import tempfile

    with tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        try:
            os.dup2(capture.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    found = re.search(r"# bytes in allocated blocks\s*=\s*([\d,]+)", text)
    return int(found.group(1).replace(",", "")) if found else None


def live_bytes() -> Optional[int]:
    """Memory in use by live allocations, whatever the allocators keep
    around: glibc's in-use heap and mmapped chunks (mallinfo2) plus
    pymalloc's allocated blocks. None where either is not available."""
    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return None
    try:
        mallinfo2 = ctypes.CDLL(name).mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    pymalloc = _pymalloc_live_bytes()
    if pymalloc is None:
        return None
    return info.uordblks + info.hblkhd + pymalloc


def child_run_through(total: int, batch: int, trim_each: int = 0) -> dict[str, Any]:
    """Runs `total` no-op commands in batches (submit `batch`, then wait)
    and samples RSS after each; with `trim_each`, after malloc_trim(0)."""
    lane = Lane()
    lane.start()
    submit = lane.manager.submit
    lanes = [lane_id for lane_id, _, _ in DEFAULT_LANES]
    width = len(lanes)
    samples: list[int] = []
    live: list[Optional[int]] = []
    began = time.perf_counter()
    for _ in range(max(1, total // batch)):
        wait([submit(lanes[i % width], noop) for i in range(batch)])
        gc.collect()
        if trim_each and not malloc_trim():
            return {"unavailable": "malloc_trim (glibc) is not available here"}
        samples.append(rss_bytes())
        live.append(live_bytes())
    seconds = time.perf_counter() - began
    trimmed = rss_bytes() if malloc_trim() else None
    lane.shutdown()
    lane.drain()
    return {"total": batch * len(samples), "batch": batch, "samples": samples,
            "live": None if None in live else live,
            "seconds": seconds, "rss_after_trim": trimmed, "trim_each": bool(trim_each)}


def run_child(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", *args],
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def mb(value: float) -> str:
    return f"{value / 1e6:,.1f}"


def flat_row(flat: dict[str, Any], what: str, target: bool) -> list[str]:
    """RSS drift over a run. The first tenth of the batches is warm-up (the
    allocators' pools and the queue's tables reach their working size);
    the verdict compares the median of the (up to) 5 samples after it with
    the median of the last 5, windows that never overlap."""
    samples = flat["samples"]
    first, last, high, low = samples[0], samples[-1], max(samples), min(samples)
    warm = max(1, len(samples) // 10) if len(samples) > 5 else 0
    window = max(1, min(5, (len(samples) - warm) // 2))
    base = statistics.median(samples[warm:warm + window])
    end = statistics.median(samples[-window:])
    drift = (end - base) / base
    widest = max(abs(value - base) for value in samples[warm:]) / base
    flat.update(warm_batches=warm, window=window, baseline=base, end=end, drift=drift,
                widest=widest, drift_from_first=(last - first) / first)
    figures = (f"RSS after each {flat['batch']:,} batch: first {mb(first)}, last {mb(last)}, "
               f"min {mb(low)}, max {mb(high)} MB ({flat['drift_from_first']:+.1%} last vs "
               f"first); after {warm} warm-up batch{'' if warm == 1 else 'es'}: {mb(base)} -> "
               f"{mb(end)} MB (medians of {window}) = **{drift:+.1%}**, widest sample "
               f"{widest:.1%} off; "
               f"{flat['total'] / flat['seconds']:,.0f} commands/s")
    if flat["rss_after_trim"] is not None and not flat["trim_each"]:
        figures += f"; {mb(flat['rss_after_trim'])} MB after malloc_trim(0) at the end"
    live = flat.get("live")
    if live:
        live_base = statistics.median(live[warm:warm + window])
        live_drift = (statistics.median(live[-window:]) - live_base) / live_base
        flat.update(live_drift=live_drift)
        figures += (f"; live allocations {mb(live_base)} -> {mb(statistics.median(live[-window:]))}"
                    f" MB = {live_drift:+.1%} (range {mb(min(live[warm:]))}-"
                    f"{mb(max(live[warm:]))})")
    ok = abs(drift) <= FLAT_LIMIT
    return [f"{flat['total']:,} no-op commands run through, {len(samples)} batches of "
            f"submit then wait{what}", figures, f"+-{FLAT_LIMIT:.0%}",
            verdict(ok) if target else f"info ({verdict(ok)})"]


def memory_target(sizes: Sizes) -> tuple[dict[str, Any], Table]:
    pending = run_child("pending", str(sizes.pending))
    progress("measured: target 6, pending commands")
    # One run's drift is dominated by where the allocators happen to keep
    # a few MB of the last batch's peak; independent runs, and their median,
    # separate that from growth.
    runs = []
    for number in range(FLAT_RUNS):
        runs.append(run_child("run-through", str(sizes.run_through), str(sizes.batch)))
        progress(f"measured: target 6, run-through {number + 1} of {FLAT_RUNS}")
    trimmed = run_child("run-through", str(max(5 * sizes.batch, sizes.run_through // 10)),
                        str(sizes.batch), "1")
    progress("measured: target 6, run-through with malloc_trim")
    table = Table(f"Target 6: memory: {sizes.pending:,} pending <= {PENDING_LIMIT_MB:g} MB RSS; "
                  f"RSS flat (+-{FLAT_LIMIT:.0%}) over {runs[0]['total']:,} commands",
                  ["case", "figures", "target", "status"])
    per_command = (pending["rss_after"] - pending["rss_before"]) / pending["count"]
    table.rows.append([
        f"{pending['count']:,} no-op commands pending (queue not started)",
        f"RSS {mb(pending['rss_before'])} -> {mb(pending['rss_after'])} MB, "
        f"{per_command:,.0f} bytes per command; submitted in {pending['seconds']:.1f} s",
        f"<= {PENDING_LIMIT_MB:g} MB", verdict(pending["rss_after"] <= PENDING_LIMIT_MB * 1e6)])
    for number, run in enumerate(runs, 1):
        table.rows.append(flat_row(run, f" (run {number} of {FLAT_RUNS})", False))
    drifts = [run["drift"] for run in runs]
    median_drift = statistics.median(drifts)
    after_warm_up = [value for run in runs for value in run["samples"][run["warm_batches"]:]]
    table.rows.append([
        f"the {FLAT_RUNS} runs together",
        f"drift per run {', '.join(f'{d:+.1%}' for d in drifts)}: median "
        f"**{median_drift:+.1%}**; every sample after warm-up within "
        f"{mb(min(after_warm_up))}-{mb(max(after_warm_up))} MB" + (
            "; live allocations per run "
            + ", ".join(f"{run['live_drift']:+.1%}" for run in runs)
            if all("live_drift" in run for run in runs) else ""),
        f"+-{FLAT_LIMIT:.0%}", verdict(abs(median_drift) <= FLAT_LIMIT)])
    if "unavailable" in trimmed:
        table.notes.append(f"(diagnostic row skipped: {trimmed['unavailable']})")
    else:
        table.rows.append(flat_row(trimmed, ", `malloc_trim(0)` before each sample "
                                   "(diagnostic: live memory)", False))
    table.notes.append(
        "Each case runs in a fresh `python` subprocess: the six default lanes (`Lane()`, 28 "
        "workers when started), `manager.submit(lane, noop)` round-robin over them, futures "
        "kept in a list. RSS is the whole process's (`VmRSS`), read after `gc.collect()`. "
        "`malloc_trim(0)` returns glibc's free heap pages to the OS: what it gives back was "
        "free memory the allocator kept, not live objects. Live allocations: glibc's in-use "
        "heap and mmapped chunks (`mallinfo2`) plus pymalloc's allocated blocks "
        "(`sys._debugmallocstats`): what the process holds, whatever the allocators keep "
        "around it.")
    return {"pending": pending, "run_through": runs, "run_through_trimmed": trimmed}, table


# ---- the run ----------------------------------------------------------------------

def environment(sizes: Sizes, workers: int, quick: bool) -> dict[str, Any]:
    return {"python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(), "cpus": os.cpu_count(), "workers": workers,
            "quick": quick, "switch_interval": sys.getswitchinterval(), "sizes": asdict(sizes)}


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes, under a minute; no chart unless --chart is given")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    parser.add_argument("--chart", metavar="PATH",
                        help=f"write the PNG chart here (default: {DEFAULT_CHART} on a full run)")
    parser.add_argument("--no-chart", action="store_true", help="do not draw the chart")
    parser.add_argument("--workers", type=int, default=6,
                        help="worker threads for targets 1 and 2, both sides (default 6)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.child:
        kind, *numbers = args.child
        values = [int(n) for n in numbers]
        result = child_pending(*values) if kind == "pending" else child_run_through(*values)
        print(json.dumps(result))
        return 0
    sizes = QUICK if args.quick else FULL
    env = environment(sizes, args.workers, args.quick)
    started = time.perf_counter()

    rows, t1, t2 = python_targets(sizes.python, args.workers)
    old, t3 = old_wheel_target(sizes)
    urgency, t4 = urgency_target(sizes)
    memory, t6 = memory_target(sizes)
    elapsed = time.perf_counter() - started

    print(f"a3s-lane performance targets (issue 6): Python {env['python']}, {env['cpus']} CPUs, "
          f"{platform.system()}; {'quick' if args.quick else 'full'} run.\n")
    for table in (t1, t2, t3, t4, t6):
        print(table.markdown())
        print()
    document = {
        "environment": env,
        "python_rows": [{"workload": r.workload, "thread_pool_executor": asdict(r.tpe),
                         "a3s_lane": asdict(r.lane), "ratio": r.ratio} for r in rows],
        "old_wheel": old,
        "urgency": urgency,
        "per_lane_latency": per_lane_latency(urgency),
        "memory": memory,
        "tables": {t.target: {"headers": t.headers, "rows": t.rows} for t in (t1, t2, t3, t4, t6)},
        "seconds": elapsed,
    }
    chart_path = args.chart or (None if args.quick else DEFAULT_CHART)
    if chart_path and not args.no_chart:
        written = chart.draw(document, chart_path)
        if written:
            print(f"chart: {written}")
    print(f"({elapsed:.1f} s in total)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
