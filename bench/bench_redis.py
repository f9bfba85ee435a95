"""a3s-lane's Redis mode against BullMQ, Celery and Dramatiq, on one local
redis-server, in one run:

    .venv/bin/python bench/bench_redis.py             # 3 rounds, about 4 minutes
    .venv/bin/python bench/bench_redis.py --quick     # a short run, under 2 minutes
    .venv/bin/python bench/bench_redis.py --json out.json

The first run installs the peers, bench-only and git-ignored: BullMQ (and
ioredis) into bench/redis_peers/node_modules (npm), Celery and Dramatiq into
bench/.peers-venv (python -m venv + pip). Needs redis-server 7 and Node 18+.

Each system runs the same job body (bench/redis_peers/jobs.py, in Node:
bullmq_worker.js) with 10 slots in total, in worker processes of its own,
and a producer process of its own, on one redis-server (FLUSHALL between
systems). Levels 0 (most urgent) to 4, in each system's own priorities:

    a3s-lane  2 worker processes x 5 slots (Redis mode), lanes p0..p4
              (min_concurrency 0, max 10); "a3s-lane (p0 reserved)": the
              same with min_concurrency 1 on p0
    BullMQ    1 Node worker, concurrency 10, priority = level + 1
    Celery    prefork, -c 10, default prefetch (x4), priority = level
              (Redis priority lists, as Celery's docs set them up)
    Dramatiq  1 process x 10 threads, actor priority = level (Redis is FIFO;
              the worker orders what it prefetched)

Per system and round, three phases:

    1 throughput: N no-op jobs over the 5 levels, from "submit the first" to
      "all N done" (the bodies' done counts, flushed every 2 ms)
    2 urgent start behind a backlog: B level-4 jobs sleeping 10-30 ms (20 ms
      on average: --slow-ms; spread so that the slots do not finish in step)
      keep every slot busy; P level-0 jobs go one at a time, open loop, 5-10
      ms apart; submit -> first line of the body, p50 / p90 / p99
    3 order: 10 gate jobs hold every slot, M jobs of 20 ms at random levels
      are queued, the gates open; out-of-order starts are counted here and
      in phase 2

A start is out of order when a job's body starts although a more urgent job
had been waiting (its submit had returned) for GRACE_MS (5 ms) already, and
that job starts only after this one's body has ended: a more urgent job kept
waiting one whole job more. Closer calls are not counted: ten slots pick at
nearly the same moment, a job picked just before the urgent one came starts
its body just after, and no system reports when it picked.

Rounds alternate the systems (the first system moves one place each round);
each figure is the median over the rounds with the spread (min-max); every
ratio comes from this one run. Progress goes to stderr, the tables to stdout.
Every process the bench starts (redis-server, workers, producers) is stopped
by its PID (workers and producers run in sessions of their own and are
stopped by their process group, which holds what they forked) at the end,
on error or Ctrl-C too.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import platform
import random
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

import redis

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS = BENCH / "redis_peers"
PEERS_VENV = BENCH / ".peers-venv"
sys.path.insert(0, str(ROOT / "tests"))

from redis_server import RedisServer  # noqa: E402

LEVELS = 5
SLOW_MS = 20  # default length of a "slow" job (--slow-ms)
GRACE_MS = 5  # see "out of order" above
GATES = 10
GATE_WAIT = 2.0  # seconds for every slot to take a gate
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 5.0
POLL = 0.002
CLK_TCK = os.sysconf("SC_CLK_TCK")
SCRIPT_COMMANDS = ("fcall", "fcall_ro", "evalsha", "eval", "evalsha_ro", "eval_ro")

FULL = {"jobs": 20_000, "backlog": 2_000, "probes": 200, "mix": 500, "rounds": 3,
        "slow_ms": SLOW_MS}
QUICK = {"jobs": 3_000, "backlog": 600, "probes": 40, "mix": 150, "rounds": 3,
         "slow_ms": SLOW_MS}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- processes ---------------------------------------------------------------


class Proc:
    """A child in a session of its own (its pid is its process group id), so
    that stopping it stops what it forked (Celery's pool, Dramatiq's worker
    process) and nothing else."""

    live: ClassVar[list[Proc]] = []

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path,
                 cwd: Optional[Path] = None) -> None:
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed by stop())
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self._log, env=env,
                                        cwd=str(cwd) if cwd else None, start_new_session=True)
        Proc.live.append(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    def readline(self, timeout: float) -> str:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"{self.name}: no answer within {timeout:.0f} s ({self.tail()})")
        line = self.process.stdout.readline().decode()
        if not line:
            raise RuntimeError(f"{self.name} exited ({self.tail()})")
        return line

    def send(self, request: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.flush()

    def answer(self, timeout: float) -> dict[str, Any]:
        while True:
            line = self.readline(timeout)
            try:
                answer: dict[str, Any] = json.loads(line)
                return answer
            except json.JSONDecodeError:
                continue  # a library printing to stdout

    def wait_for(self, marker: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            line = self.readline(max(0.1, deadline - time.monotonic()))
            if marker in line:
                return

    def tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "no log"
        return f"log {self.log_path}: ..." + text[-600:].replace("\n", " | ")

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL to what is left of it after
        STOP_TIMEOUT."""
        if self in Proc.live:
            Proc.live.remove(self)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and _group_alive(self.pid):
            self.process.poll()  # reaps the leader, whose zombie would keep the group
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(STOP_TIMEOUT)
        self._log.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def stop_all() -> None:
    for proc in list(Proc.live):
        proc.stop()


# ---- CPU time from /proc -----------------------------------------------------------


def _stat(pid: str) -> Optional[list[str]]:
    try:
        with open(f"/proc/{pid}/stat") as file:
            text = file.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def cpu_of_groups(pgids: list[int]) -> float:
    """CPU seconds (user + system) of every live process in these groups."""
    wanted = set(pgids)
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fields = _stat(pid)
        if fields and int(fields[2]) in wanted:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def cpu_of_pid(pid: int) -> float:
    fields = _stat(str(pid))
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / CLK_TCK


# ---- the systems ---------------------------------------------------------------------


@dataclass
class System:
    name: str
    notes: str
    workers: Callable[[str], list[tuple[str, list[str], Optional[Path], Optional[str]]]]
    producer: Callable[[str], list[str]]
    versions: str = ""


def peers_python() -> str:
    return str(PEERS_VENV / "bin" / "python")


OURS = "a3s-lane"
OURS_RESERVED = "a3s-lane (p0 reserved)"
OURS_NODE = "a3s-lane (Node)"
OURS_NODE_RESERVED = "a3s-lane (Node; p0 reserved)"
NAMES = (OURS, OURS_RESERVED, OURS_NODE, OURS_NODE_RESERVED, "BullMQ", "Celery", "Dramatiq")
OURS_ALL = (OURS, OURS_RESERVED, OURS_NODE, OURS_NODE_RESERVED)
NODE_SDK = ROOT / "node"


def systems(celery_pool: str, py_workers: tuple[int, int] = (1, 10)) -> list[System]:
    py = sys.executable
    processes, slots = py_workers

    def ours(reserve: bool) -> tuple[Callable[[str], list[Any]], Callable[[str], list[str]]]:
        extra = ["reserve"] if reserve else []
        return ((lambda url: [(f"ours-worker-{i}", [py, str(PEERS / "ours_worker.py"), url,
                                                   str(slots), *extra], None, "ready")
                              for i in range(processes)]),
                (lambda url: [py, str(PEERS / "ours_producer.py"), url, *extra]))

    def ours_node(reserve: bool) -> tuple[Callable[[str], list[Any]], Callable[[str], list[str]]]:
        extra = ["reserve"] if reserve else []
        # A3S_BENCH_NODE_FLAGS / A3S_BENCH_NODE_PRODUCER_FLAGS: extra node flags for
        # the worker / the producer (--cpu-prof --cpu-prof-dir=DIR, ...)
        flags = os.environ.get("A3S_BENCH_NODE_FLAGS", "").split()
        producer_flags = os.environ.get("A3S_BENCH_NODE_PRODUCER_FLAGS", "").split()
        return ((lambda url: [("ours-node-worker", ["node", *flags,
                                                    str(PEERS / "ours_node_worker.js"), url,
                                                    "10", *extra], None, "ready")]),
                (lambda url: ["node", *producer_flags, str(PEERS / "ours_node_producer.js"),
                              url, *extra]))

    ours_notes = (f"Redis mode, {processes} worker process(es) x {slots} slots (one courier "
                  "each: a claim for every free slot carries every finished command's ack; "
                  "the no-op jobs, once seen quick, run on the courier's thread, slow ones "
                  "on slot threads), lanes p0..p4 (min 0, max 10); Lua picks strictly by "
                  "priority, no prefetch; "
                  "producer: submit_many(results=False) for bulks (one a3s_submit_many per "
                  "lane and chunk of 1,000), submit for urgent and mix jobs")
    return [
        System(OURS, ours_notes, *ours(False)),
        System(OURS_RESERVED, "the same, but lane p0 has min_concurrency 1: one slot is kept "
               "for it, the backlog runs on 9 (a rule the peers do not have)", *ours(True)),
        System(OURS_NODE, "the Node SDK in Redis mode (the same Lua): 1 worker process x 10 "
               "slots (one courier: a claim for every free slot carries every finished "
               "command's ack), lanes p0..p4 (min 0, max 10); producer: runMany(results: "
               "false) for bulks (one a3s_submit_many per 500), a runMany of one for urgent "
               "and mix jobs",
               *ours_node(False)),
        System(OURS_NODE_RESERVED, "the same, but lane p0 has min_concurrency 1: one slot is "
               "kept for it (a rule the peers do not have)", *ours_node(True)),
        System("BullMQ", "1 Node worker, concurrency 10, default options; priority = level + 1; "
               "producer: addBulk (chunks of 1,000), add for urgent and mix jobs",
               lambda url: [("bullmq-worker", ["node", str(PEERS / "bullmq_worker.js"), url, "10"],
                             None, "ready")],
               lambda url: ["node", str(PEERS / "bullmq_producer.js"), url]),
        System("Celery", f"{celery_pool} pool -c 10, default prefetch (x4: 40 messages), "
               "Redis priority lists 0-9 as Celery documents them, no result backend; "
               "producer: apply_async",
               lambda url: [("celery-worker",
                             [str(PEERS_VENV / "bin" / "celery"), "-A", "celery_app", "worker",
                              "-P", celery_pool, "-c", "10", "--without-gossip",
                              "--without-mingle", "--without-heartbeat", "-l", "warning"],
                             PEERS, None)],
               lambda url: [peers_python(), str(PEERS / "peer_producer.py"), "celery"]),
        System("Dramatiq", "1 process x 10 threads, default prefetch (2 per thread); priority "
               "is an actor's and orders only what a worker prefetched (the Redis queue is "
               "FIFO); producer: send",
               lambda url: [("dramatiq-worker",
                             [str(PEERS_VENV / "bin" / "dramatiq"), "dramatiq_app",
                              "--processes", "1", "--threads", "10", "--path", str(PEERS)],
                             PEERS, None)],
               lambda url: [peers_python(), str(PEERS / "peer_producer.py"), "dramatiq"]),
    ]


def ensure_peers(names: list[str]) -> None:
    """Installs the peers on first use, bench-only, into git-ignored folders."""
    if {OURS_NODE, OURS_NODE_RESERVED} & set(names) and not (
            NODE_SDK / "node_modules" / "redis").is_dir():
        raise SystemExit("the Node systems run the repository's node/ package: "
                         "cd node && npm install first")
    if "BullMQ" in names and not (PEERS / "node_modules" / "bullmq").is_dir():
        if shutil.which("npm") is None:
            raise SystemExit("BullMQ needs Node 18+ and npm on PATH")
        log("first use: installing BullMQ (latest) into bench/redis_peers/node_modules "
            "(npm install --prefix bench/redis_peers) ...")
        subprocess.run(["npm", "install", "--prefix", str(PEERS), "--no-package-lock",
                        "--no-audit", "--no-fund"], check=True, timeout=600,
                       stdout=sys.stderr)
    if {"Celery", "Dramatiq"} & set(names):
        python = PEERS_VENV / "bin" / "python"
        ok = python.exists() and subprocess.run(
            [str(python), "-c", "import celery, dramatiq, redis"],
            capture_output=True).returncode == 0
        if not ok:
            log("first use: installing Celery and Dramatiq into bench/.peers-venv "
                "(python -m venv + pip install -r bench/redis_peers/requirements.txt) ...")
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True,
                               timeout=300)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "-r",
                            str(PEERS / "requirements.txt")], check=True, timeout=600,
                           stdout=sys.stderr)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    with contextlib.suppress(OSError, IndexError, subprocess.TimeoutExpired):
        found["redis-server"] = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True,
            timeout=10).stdout.split("v=")[1].split()[0]
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        found["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True,
                                       timeout=10).stdout.strip()
    for package in ("bullmq", "ioredis"):
        path = PEERS / "node_modules" / package / "package.json"
        if path.exists():
            found[package] = json.loads(path.read_text())["version"]
    if (PEERS_VENV / "bin" / "python").exists():
        out = subprocess.run([peers_python(), "-c",
                              "import celery, dramatiq, kombu, redis; print(celery.__version__,"
                              " dramatiq.__version__, kombu.__version__, redis.__version__)"],
                             capture_output=True, text=True, timeout=30).stdout.split()
        if len(out) == 4:
            found.update(celery=out[0], dramatiq=out[1], kombu=out[2], **{"redis-py": out[3]})
    try:
        import tomllib
        found["a3s-lane"] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
            "version"]
    except (OSError, KeyError, ImportError):
        pass
    return found


# ---- one system, one round ---------------------------------------------------------------


@dataclass
class RoundResult:
    rate: Optional[float] = None
    submit_rate: Optional[float] = None
    p50: Optional[float] = None
    p90: Optional[float] = None
    p99: Optional[float] = None
    floor_p99: Optional[float] = None  # see slot_floor
    probes_lost: int = 0
    ooo_backlog: Optional[int] = None
    ooo_mix: Optional[int] = None
    backlog_outlasted: Optional[bool] = None
    cpu: dict[str, float] = field(default_factory=dict)  # us per job, throughput phase
    scripts_per_job: Optional[float] = None
    gates_late: int = 0
    busy: Optional[float] = None
    profile: dict[str, tuple[float, float]] = field(default_factory=dict)
    error: str = ""


class Session:
    """One system's processes on the flushed Redis, for one round."""

    def __init__(self, system: System, server: RedisServer, logdir: Path) -> None:
        self.system = system
        self.server = server
        self.logdir = logdir
        self.r = redis.Redis.from_url(server.url)
        self.workers: list[Proc] = []
        self.producer: Optional[Proc] = None

    def __enter__(self) -> Session:
        self.r.flushall()
        env = {**os.environ, "BENCH_REDIS_URL": self.server.url, "PYTHONUNBUFFERED": "1"}
        specs = self.system.workers(self.server.url)
        for name, argv, cwd, _marker in specs:
            self.workers.append(Proc(name, argv, env, self.logdir, cwd))
        for proc, (_name, _argv, _cwd, marker) in zip(self.workers, specs):
            if marker:  # else the warm-up's jobs tell when it is ready
                proc.wait_for(marker, READY_TIMEOUT)
        self.producer = Proc(f"{self.system.name}-producer", self.system.producer(self.server.url),
                             env, self.logdir, PEERS)
        self.producer.answer(READY_TIMEOUT)  # {"ready": true}
        return self

    def __exit__(self, *exc: object) -> None:
        if self.producer is not None:
            with contextlib.suppress(OSError):
                self.producer.send({"op": "quit"})
            self.producer.stop()
        for proc in self.workers:
            proc.stop()
        try:
            self.r.flushall()
        finally:
            self.r.close()

    # ---- helpers ----

    def request(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.producer is not None
        self.producer.send(request)
        return self.producer.answer(timeout)

    def reset(self) -> None:
        self.r.delete("bench:done", "bench:rec", "bench:gate", "bench:gates")

    def wait_count(self, key: str, target: int, timeout: float) -> int:
        """Polls `key` every POLL s until it reaches `target`; the
        CLOCK_MONOTONIC ns when it was seen."""
        deadline = time.monotonic() + timeout
        while True:
            value = int(self.r.get(key) or 0)
            if value >= target:
                return time.monotonic_ns()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.system.name}: {key} at {value} of {target} after "
                                   f"{timeout:.0f} s")
            self.check_alive()
            time.sleep(POLL)

    def check_alive(self) -> None:
        for proc in [*self.workers, self.producer]:
            if proc is not None and proc.process.poll() is not None:
                raise RuntimeError(f"{proc.name} exited ({proc.tail()})")

    def records(self) -> dict[str, tuple[int, int]]:
        found = {}
        for raw in self.r.lrange("bench:rec", 0, -1):
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            tag, start, end = text.split()
            found[tag] = (int(start), int(end))
        return found

    def pgids(self) -> list[int]:
        return [proc.pid for proc in self.workers]

    # ---- warm-up and phases ----

    def warm_up(self, jobs: int = 200) -> None:
        self.reset()
        self.request({"op": "bulk", "n": jobs, "kind": "n", "tag": "w", "levels": LEVELS},
                     READY_TIMEOUT)
        self.wait_count("bench:done", jobs, READY_TIMEOUT)
        time.sleep(0.05)
        self.reset()

    def throughput(self, jobs: int, result: RoundResult) -> None:
        self.reset()
        assert self.producer is not None
        cpu0 = (cpu_of_pid(self.server.pid), cpu_of_groups(self.pgids()),
                cpu_of_groups([self.producer.pid]))
        stats0 = self.r.info("commandstats")
        self.producer.send({"op": "bulk", "n": jobs, "kind": "n", "tag": "t",
                            "levels": LEVELS})
        end = self.wait_count("bench:done", jobs, max(120.0, jobs / 100.0))
        cpu1 = (cpu_of_pid(self.server.pid), cpu_of_groups(self.pgids()),
                cpu_of_groups([self.producer.pid]))
        stats1 = self.r.info("commandstats")
        answer = self.producer.answer(60.0)
        t0, t1 = int(answer["t0"]), int(answer["t1"])
        result.rate = jobs / ((end - t0) / 1e9)
        result.submit_rate = jobs / ((t1 - t0) / 1e9)
        result.cpu = {name: (after - before) / jobs * 1e6
                      for name, before, after in zip(("redis", "workers", "producer"), cpu0, cpu1)}
        result.profile = {}
        for name, after in stats1.items():
            before = stats0.get(name, {"calls": 0, "usec": 0})
            calls, usec = after["calls"] - before["calls"], after["usec"] - before["usec"]
            if calls:
                result.profile[name.removeprefix("cmdstat_")] = (calls / jobs, usec / jobs)
        result.scripts_per_job = sum(result.profile.get(name, (0.0, 0.0))[0]
                                     for name in SCRIPT_COMMANDS)

    def urgent(self, backlog: int, offsets: list[float], slow_ms: int,
               result: RoundResult) -> None:
        self.reset()
        self.request({"op": "bulk", "n": backlog, "kind": "r", "sleep": slow_ms, "tag": "b",
                      "level": LEVELS - 1, "spread": True}, max(120.0, backlog / 100.0))
        self.wait_count("bench:done", GATES, 60.0)  # every slot has been busy
        answer = self.request({"op": "probes", "offsets_ms": offsets, "level": 0},
                              60.0 + offsets[-1] / 1000.0)
        probes = [(tag, int(t0), int(t1)) for tag, t0, t1 in answer["probes"]]
        total = backlog + len(probes)
        try:
            self.wait_count("bench:done", total, 60.0 + backlog * slow_ms / 1000.0)
        except TimeoutError as error:
            log(f"  {error}")
        time.sleep(0.02)
        records = self.records()
        latencies = []
        for tag, t0, _t1 in probes:
            if tag in records:
                latencies.append((records[tag][0] - t0) / 1e6)
            else:
                result.probes_lost += 1
        if latencies:
            result.p50, result.p90, result.p99 = (percentile(latencies, q)
                                                  for q in (50, 90, 99))
        urgent = [(t1, records.get(tag, (None, None))[0]) for tag, _t0, t1 in probes]
        lower = [records[f"b{i}"] for i in range(backlog) if f"b{i}" in records]
        floors = slot_floor(lower, [t0 for _tag, t0, _t1 in probes])
        if floors:
            result.floor_p99 = percentile(floors, 99)
        result.ooo_backlog = out_of_order_starts(lower, urgent)
        first_probe = min(t0 for _tag, t0, _t1 in probes)
        last_probe = max(t1 for _tag, _t0, t1 in probes)
        result.backlog_outlasted = sum(1 for start, _end in lower if start > last_probe) >= GATES
        # How busy the slots were while the urgent jobs went: backlog jobs
        # started in that window against what 10 busy slots start.
        window = (last_probe - first_probe) / 1e9
        started = sum(1 for start, _end in lower if first_probe <= start <= last_probe)
        if window > 0:
            result.busy = started / (window * 10 * 1000.0 / slow_ms)

    def order(self, mix: int, seed: int, slow_ms: int, result: RoundResult) -> None:
        self.reset()
        self.request({"op": "each", "jobs": [[f"g{i}", 0, "g", 0] for i in range(GATES)]}, 60.0)
        try:
            self.wait_count("bench:gates", GATES, GATE_WAIT)
        except TimeoutError:
            # A slot stayed idle with a gate waiting (a lost wake-up): go on,
            # the next submit wakes it and it takes the waiting gate first.
            result.gates_late += 1
        rng = random.Random(seed)
        levels = [rng.randrange(LEVELS) for _ in range(mix)]
        answer = self.request({"op": "each", "jobs": [[f"m{i}", level, "r", slow_ms]
                                                      for i, level in enumerate(levels)]},
                              max(120.0, mix / 50.0))
        self.r.rpush("bench:gate", *([1] * GATES))
        try:
            self.wait_count("bench:done", GATES + mix, 60.0 + mix * slow_ms / 1000.0)
        except TimeoutError as error:
            log(f"  {error}")
        time.sleep(0.02)
        records = self.records()
        returned = [int(t) for t in answer["t1"]]
        jobs = [(levels[i], returned[i], records.get(f"m{i}")) for i in range(mix)]
        count = 0
        for level, _t1, span in jobs:
            if span is None:
                continue
            more_urgent = [(t1, other[0] if other else None)
                           for other_level, t1, other in jobs if other_level < level]
            count += out_of_order_starts([span], more_urgent)
        result.ooo_mix = count


def slot_floor(backlog: list[tuple[int, int]], submits: list[int],
               slots: int = 10) -> list[float]:
    """The least start latency (ms) any scheduler could give each urgent
    job without preempting a running one or keeping a slot free: 0 when a
    slot was idle at its submit, else the time until the first of the
    running backlog jobs ended (from the jobs' own start and end records).
    The same for every system: it depends only on when that system's
    backlog jobs happened to end."""
    floors = []
    for t0 in submits:
        ends = [end for start, end in backlog if start <= t0 < end]
        floors.append(0.0 if len(ends) < slots else (min(ends) - t0) / 1e6)
    return floors


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def out_of_order_starts(lower: list[tuple[int, int]],
                        urgent: list[tuple[int, Optional[int]]]) -> int:
    """How many of the `lower` jobs (start, end) started although one of
    the more `urgent` jobs (submit returned, start or None) had been waiting
    for a job length already and kept waiting past their end."""
    grace = GRACE_MS * 1_000_000
    count = 0
    for start, end in lower:
        for returned, started in urgent:
            if returned + grace <= start and (started is None or started > end):
                count += 1
                break
    return count


def run_system(system: System, server: RedisServer, logdir: Path, sizes: dict[str, int],
               offsets: list[float], seed: int) -> RoundResult:
    result = RoundResult()
    try:
        with Session(system, server, logdir) as session:
            session.warm_up()
            log(f"  {system.name}: throughput, {sizes['jobs']:,} no-op jobs")
            session.throughput(sizes["jobs"], result)
            log(f"  {system.name}: {result.rate:,.0f} jobs/s; urgent starts behind "
                f"{sizes['backlog']:,} jobs of {sizes['slow_ms']} ms")
            session.urgent(sizes["backlog"], offsets, sizes["slow_ms"], result)
            log(f"  {system.name}: p50 {with_unit(fmt_ms(result.p50))}, p99 "
                f"{with_unit(fmt_ms(result.p99))}, {result.ooo_backlog} out of order; "
                f"order of {sizes['mix']} jobs")
            session.order(sizes["mix"], seed, sizes["slow_ms"], result)
            log(f"  {system.name}: {result.ooo_mix} out of order")
    except Exception as error:  # a failed round is reported, the run goes on
        result.error = f"{type(error).__name__}: {error}"
        log(f"  {system.name} FAILED: {result.error}")
    return result


# ---- report ---------------------------------------------------------------------------


def fmt_ms(value: Optional[float]) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def median_of(values: Sequence[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def spread(values: Sequence[Optional[float]], fmt: Callable[[float], str]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    return f"{fmt(statistics.median(present))} ({fmt(min(present))}-{fmt(max(present))})"


def with_unit(text: str) -> str:
    return text if text.endswith(" s") else f"{text} ms"


def fmt_latencies(p50: Optional[float], p90: Optional[float], p99: Optional[float],
                  p99s: list[float]) -> str:
    """"p50 / p90 / p99 (p99's min-max) unit", in seconds when one is."""
    present = [v for v in (p50, p90, p99, *p99s) if v is not None]
    if not present:
        return "-"
    scale, unit = (1000.0, "s") if max(present) >= 1000 else (1.0, "ms")

    def one(value: Optional[float]) -> str:
        if value is None:
            return "-"
        value /= scale
        return f"{value:.3g}" if value < 100 else f"{value:.0f}"

    text = f"{one(p50)} / {one(p90)} / {one(p99)}"
    if len(p99s) > 1:
        text += f" ({one(min(p99s))}-{one(max(p99s))})"
    return f"{text} {unit}"


IGNORED = ("get", "incrby", "info")  # the bench's own: the driver's polls, the flushers


def report(names: list[str], notes: dict[str, str], results: dict[str, list[RoundResult]],
           sizes: dict[str, int], info: dict[str, Any]) -> str:
    def med(name: str, pick: Callable[[RoundResult], Optional[float]]) -> Optional[float]:
        return median_of([pick(r) for r in results.get(name, [])])

    bull = med("BullMQ", lambda r: r.rate)
    bull_p99 = med("BullMQ", lambda r: r.p99)
    slow = sizes["slow_ms"]
    lines = [
        f"{sizes['rounds']} rounds; medians (min-max) over the rounds. Throughput: "
        f"{sizes['jobs']:,} no-op jobs over {LEVELS} levels, first submit to last done. "
        f"Urgent start: {sizes['probes']} level-0 jobs one at a time, 5-10 ms apart, behind "
        f"{sizes['backlog']:,} level-4 jobs of {slow / 2:g}-{slow * 1.5:g} ms; submit -> "
        f"first line of the job. "
        f"Out-of-order starts: in that phase / among {sizes['mix']} jobs of {slow} ms at "
        f"random levels queued while {GATES} gate jobs held every slot.",
        "",
        "| system | jobs/s | ratio to BullMQ | urgent start p50 / p90 / p99 | floor p99 | "
        "out-of-order starts (backlog / mix) | notes |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    for name in names:
        rs = results.get(name, [])
        rate = med(name, lambda r: r.rate)
        ratio = f"{rate / bull:.2f}x" if rate and bull else "-"
        p50 = med(name, lambda r: r.p50)
        p90 = med(name, lambda r: r.p90)
        p99 = med(name, lambda r: r.p99)
        p99s = [r.p99 for r in rs if r.p99 is not None]
        latency = fmt_latencies(p50, p90, p99, p99s)
        backlog = [r.ooo_backlog for r in rs if r.ooo_backlog is not None]
        mix = [r.ooo_mix for r in rs if r.ooo_mix is not None]
        ooo_text = f"{fmt_count(median_of(backlog))} / {fmt_count(median_of(mix))}"
        if backlog and mix and (min(backlog) != max(backlog) or min(mix) != max(mix)):
            ooo_text += (f" ({min(backlog):,}-{max(backlog):,} / {min(mix):,}-{max(mix):,})")
        note = notes[name]
        failed = [r.error for r in rs if r.error]
        if failed:
            note += f"; **FAILED rounds: {len(failed)}** ({failed[0][:160]})"
        lost = sum(r.probes_lost for r in rs)
        if lost:
            note += f"; {lost} urgent jobs had not started when the phase ended"
        busy = med(name, lambda r: r.busy)
        if busy is not None and busy < 0.85:
            note += (f"; the backlog kept its slots only {busy:.0%} busy (it cannot start "
                     f"10 jobs of {slow} ms every {slow} ms)")
        late = sum(r.gates_late for r in rs)
        if late:
            note += (f"; in {late} round(s) a slot stayed idle for {GATE_WAIT:.0f} s while a "
                     f"gate job waited (a lost wake-up, see bench/README.md)")
        if any(r.backlog_outlasted is False for r in rs):
            note += "; the backlog ran out before the last urgent job in some rounds"
        floor = med(name, lambda r: r.floor_p99)
        floor_text = "-" if floor is None else with_unit(fmt_ms(floor))
        lines.append(f"| {name} | {spread([r.rate for r in rs], lambda v: f'{v:,.0f}')} | "
                     f"{ratio} | {latency} | {floor_text} | {ooo_text} | {note} |")
    lines += [
        "",
        "Where the throughput phase spends CPU (µs of CPU per job: redis-server, every "
        "worker process, the producer process; medians), what it asks of Redis (commands per "
        "job, those run inside Lua scripts included; Lua calls = FCALL / EVALSHA), and the "
        "producer's own submit rate:",
        "",
        "| system | redis-server µs/job | workers µs/job | producer µs/job | total µs/job | "
        "Redis commands/job | Lua calls/job | submit rate, jobs/s | top Redis commands by "
        "time: calls/job, µs/job |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in names:
        rs = [r for r in results.get(name, []) if r.cpu]
        cells = [median_of([r.cpu.get(part) for r in rs])
                 for part in ("redis", "workers", "producer")]
        total = median_of([sum(r.cpu.values()) for r in rs])
        commands = median_of([sum(c for k, (c, _u) in r.profile.items() if k not in IGNORED)
                              for r in rs])
        scripts = median_of([r.scripts_per_job for r in rs])
        submit = median_of([r.submit_rate for r in rs])
        top = ""
        if rs:
            last = rs[len(rs) // 2].profile
            ranked = sorted(((u, c, k) for k, (c, u) in last.items() if k not in IGNORED),
                            reverse=True)[:5]
            top = ", ".join(f"{k} {c:.2f}, {u:.1f}" for u, c, k in ranked)
        lines.append(f"| {name} | " + " | ".join(fmt_num(c) for c in cells)
                     + f" | {fmt_num(total)} | {fmt_num(commands, 1)} | {fmt_num(scripts, 2)} | "
                     f"{fmt_num(submit, 0, True)} | {top} |")
    lines += ["", "| target | goal | measured | met? |", "|---|---|---|---|"]
    for name in OURS_ALL:
        if name not in names:
            continue
        rate = med(name, lambda r: r.rate)
        p99 = med(name, lambda r: r.p99)
        label = "" if name == OURS else f" ({name})"
        if rate and bull:
            lines.append(f"| throughput with priorities{label} | >= 1.5x BullMQ | "
                         f"{rate / bull:.2f}x ({rate:,.0f} vs {bull:,.0f} jobs/s) | "
                         f"{yes(rate / bull >= 1.5)} |")
        if p99 is not None and bull_p99:
            floor = med(name, lambda r: r.floor_p99)
            beside = (f"; floor p99 {with_unit(fmt_ms(floor))}: the first busy slot to end"
                      if floor else "")
            lines.append(f"| urgent-start p99 behind a backlog{label} | <= 0.25x BullMQ | "
                         f"{p99 / bull_p99:.2f}x ({with_unit(fmt_ms(p99))} vs "
                         f"{with_unit(fmt_ms(bull_p99))}{beside}) | "
                         f"{yes(p99 / bull_p99 <= 0.25)} |")
        ooo = [(r.ooo_backlog or 0) + (r.ooo_mix or 0) for r in results.get(name, [])
               if r.ooo_backlog is not None and r.ooo_mix is not None]
        if ooo:
            peers = ", ".join(
                f"{peer} {fmt_count(med(peer, lambda r: (r.ooo_backlog or 0) + (r.ooo_mix or 0)))}"
                for peer in ("BullMQ", "Celery", "Dramatiq") if peer in names)
            lines.append(f"| out-of-order starts{label} | 0 | {max(ooo):,} in the worst "
                         f"round (medians: {peers}) | {yes(max(ooo) == 0)} |")
    lines += ["", "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items())]
    return "\n".join(lines)


def fmt_count(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:,.0f}"


def fmt_num(value: Optional[float], digits: int = 0, thousands: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if thousands or digits == 0 else f"{value:.{digits}f}"


def yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# ---- main -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (under 2 minutes)")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--jobs", type=int, help="no-op jobs in the throughput phase")
    parser.add_argument("--backlog", type=int, help="slow jobs behind which urgent ones go")
    parser.add_argument("--probes", type=int, help="urgent jobs per round")
    parser.add_argument("--mix", type=int, help="jobs at random levels in the order phase")
    parser.add_argument("--slow-ms", type=int, help=f"a slow job's sleep (default {SLOW_MS})")
    parser.add_argument("--systems", default=",".join(NAMES),
                        help="comma-separated subset of: " + ", ".join(NAMES))
    parser.add_argument("--celery-pool", default="prefork", choices=("prefork", "threads"))
    parser.add_argument("--py-workers", default="1x10",
                        help="the Python a3s-lane workers: PROCESSESxSLOTS, 10 slots in all "
                             "(default 1x10, as BullMQ's one worker of concurrency 10)")
    parser.add_argument("--json", help="also write every round's figures here")
    args = parser.parse_args()
    sizes = dict(QUICK if args.quick else FULL)
    for key in sizes:
        if getattr(args, key, None):
            sizes[key] = getattr(args, key)
    wanted = [name.strip() for name in args.systems.split(",")]
    unknown = set(wanted) - set(NAMES)
    if unknown:
        raise SystemExit(f"unknown systems {sorted(unknown)}; choose from {NAMES}")
    processes, _, slots = args.py_workers.partition("x")
    chosen = [s for s in systems(args.celery_pool, (int(processes), int(slots)))
              if s.name in wanted]
    names = [s.name for s in chosen]
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server (7+) is not installed: apt-get install redis-server")
    ensure_peers(names)

    def on_signal(signum: int, _frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    atexit.register(stop_all)
    info: dict[str, Any] = {"cpus": os.cpu_count(), **versions()}
    load_before = load()
    began = time.monotonic()
    logdir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    results: dict[str, list[RoundResult]] = {name: [] for name in names}
    server = RedisServer()
    try:
        server.start()
        log(f"redis-server {server.url} (pid {server.pid}); logs in {logdir}")
        for round_index in range(sizes["rounds"]):
            rng = random.Random(1000 + round_index)
            offsets, at = [], 0.0
            for _ in range(sizes["probes"]):
                offsets.append(at)
                at += 5.0 + rng.random() * 5.0
            shift = round_index % len(chosen)
            order = chosen[shift:] + chosen[:shift]
            log(f"round {round_index + 1}/{sizes['rounds']}: "
                + ", ".join(s.name for s in order) + f" (load {load()})")
            for system in order:
                results[system.name].append(run_system(system, server, logdir, sizes, offsets,
                                                       seed=round_index))
    finally:
        stop_all()
        server.stop()
    info["load average (1, 5, 15 min) before / after"] = f"{load_before} / {load()}"
    info["this run"] = f"{time.monotonic() - began:.0f} s"
    notes = {s.name: s.notes for s in chosen}
    print(report(names, notes, results, sizes, info))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"sizes": sizes, "info": info,
             "results": {name: [r.__dict__ for r in rs] for name, rs in results.items()}},
            indent=2))
    if any(r.error for rs in results.values() for r in rs):
        log(f"logs of the failed rounds kept in {logdir}")
    else:
        shutil.rmtree(logdir, ignore_errors=True)


if __name__ == "__main__":
    main()
