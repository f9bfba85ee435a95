"""``python -m pylane top``: one Redis queue, live (pylane/redis/top.py),
run as a subprocess against the session's redis-server: ``--once`` prints
one frame with every lane, live worker and the newest dead letters; an
unreachable Redis or one no queue has used is a one-line error, exit 2;
without ``--once`` it refreshes until interrupted. ``python -m pylane``
dispatches ``top`` and ``demo``. Every wait is bounded."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import WAIT
from pylane import Lane, LaneConfig

ROOT = Path(__file__).resolve().parent.parent


def pylane(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pylane", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def row(output: str, first: str) -> list[str]:
    """The columns of the line that starts with `first`."""
    for line in output.splitlines():
        if line.split()[:1] == [first]:
            return line.split()
    raise AssertionError(f"no line for {first!r} in:\n{output}")


@pytest.fixture
def busy_queue(redis_url: str, redis_queue: str) -> Any:
    """A queue with a worker in this process: prompt at its max with one
    more waiting, batch paused with two pending, one dead letter."""
    gate = threading.Event()
    lane = Lane.with_lanes([
        LaneConfig("control", priority=0, min_concurrency=0, max_concurrency=1),
        LaneConfig("prompt", priority=5, min_concurrency=0, max_concurrency=2),
        LaneConfig("batch", priority=9, min_concurrency=0, max_concurrency=2),
    ], redis=redis_url, queue=redis_queue, max_workers=4)

    @lane.handler("hold")
    def hold(payload: Any) -> Any:
        gate.wait(WAIT)
        return payload

    @lane.handler("fail")
    def fail(payload: Any) -> Any:
        raise ValueError("model overloaded")

    lane.start()
    try:
        with pytest.raises(Exception, match="model overloaded"):
            lane.submit("control", "fail", {})
        lane.pause_lane("batch")
        futures = [lane.submit_async("prompt", "hold", n) for n in range(3)]
        futures += [lane.submit_async("batch", "hold", n) for n in range(2)]
        deadline = time.monotonic() + WAIT
        while lane.stats().lane("prompt").active < 2:
            assert time.monotonic() < deadline, "prompt never reached its max"
            time.sleep(0.02)
        yield lane
    finally:
        gate.set()
        lane.resume_lane("batch")
        lane.manager.close()


def test_once_shows_every_lane_worker_and_dead_letter(busy_queue, redis_url, redis_queue):
    done = pylane("top", "--redis", redis_url, "--queue", redis_queue, "--once",
                  "--interval", "0.2")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "\x1b[" not in out  # no terminal: no escape codes
    assert out.startswith(f"a3s-lane top  queue {redis_queue} at {redis_url}")
    assert "1 worker, 2/4 slots busy, 3 pending" in out
    # lane, prio, pending, active, max, rate/s, completed, failed, state...
    assert row(out, "control")[:8] == ["control", "0", "0", "0", "1", "0.0", "0", "1"]
    prompt = row(out, "prompt")
    assert prompt[:5] == ["prompt", "5", "1", "2", "2"]
    assert " ".join(prompt[8:]) == "waits: at max_concurrency"
    batch = row(out, "batch")
    assert batch[:5] == ["batch", "9", "2", "0", "2"] and batch[8:] == ["paused"]
    (worker,) = busy_queue.stats().workers
    columns = row(out, worker.worker_id)
    assert columns[1:3] == ["4", "2"]  # slots, busy
    assert 0 < float(columns[3]) <= 10.0 and columns[4] == "s"  # lease left
    assert columns[-2:] == ["fail,", "hold"]
    assert "dead letters: 1 (newest last)" in out
    assert "control     fail" in out and "1 attempt  ValueError: model overloaded" in out


def test_rates_count_completions_between_the_two_samples(redis_url, redis_queue):
    lane = Lane.with_lanes([LaneConfig("jobs", priority=0, min_concurrency=0,
                                       max_concurrency=4)],
                           redis=redis_url, queue=redis_queue)

    @lane.handler("tick")
    def tick(payload: Any) -> Any:
        time.sleep(0.02)
        return payload

    lane.start()
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            lane.submit("jobs", "tick", 1)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        done = pylane("top", "--redis", redis_url, "--queue", redis_queue, "--once",
                      "--interval", "0.5")
    finally:
        stop.set()
        feeder.join(WAIT)
        lane.manager.close()
    assert done.returncode == 0, done.stderr
    assert 5.0 < float(row(done.stdout, "jobs")[5]) < 1000.0, done.stdout


def test_an_unreachable_redis_is_one_line_and_exit_2(redis_queue):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nobody listens once it is closed
    began = time.monotonic()
    done = pylane("top", "--redis", f"redis://:secret@127.0.0.1:{port}/0", "--queue",
                  redis_queue, "--once")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"pylane top: Redis at redis://:***@127.0.0.1:{port}/0 "
                                  "is unreachable")
    assert len(done.stderr.strip().splitlines()) == 1 and "secret" not in done.stderr
    assert time.monotonic() - began < 10.0


def test_a_redis_no_queue_has_used_and_an_unknown_queue_say_so(redis_url, redis_queue):
    from redis_server import RedisServer

    with RedisServer() as empty:
        done = pylane("top", "--redis", empty.url, "--queue", "agents", "--once")
    assert done.returncode == 2
    assert "has no a3s_lane functions" in done.stderr
    Lane(redis=redis_url, queue=f"{redis_queue}-other").start(worker=False)  # loads them
    done = pylane("top", "--redis", redis_url, "--queue", redis_queue, "--once",
                  "--interval", "0.05")
    assert done.returncode == 0, done.stderr
    assert f"no lanes: no process has used queue {redis_queue!r} here yet" in done.stdout
    assert "no live worker" in done.stdout
    bad = pylane("top", "--redis", redis_url, "--queue", "a{b}", "--once")
    assert bad.returncode == 2 and "hash tag" in bad.stderr


def test_without_once_it_refreshes_until_interrupted(busy_queue, redis_url, redis_queue):
    process = subprocess.Popen(
        [sys.executable, "-m", "pylane", "top", "--redis", redis_url, "--queue", redis_queue,
         "--interval", "0.1"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        headers = 0
        deadline = time.monotonic() + WAIT
        while headers < 3 and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 1.0)
            if ready and process.stdout.readline().startswith("a3s-lane top"):
                headers += 1
        assert headers == 3
        process.send_signal(signal.SIGINT)
        assert process.wait(WAIT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(WAIT)


def test_python_m_pylane_dispatches_top_and_demo():
    usage = pylane()
    assert usage.returncode == 2 and "top" in usage.stderr and "demo" in usage.stderr
    assert pylane("--help").returncode == 0
    top_help = pylane("top", "--help")
    assert top_help.returncode == 0 and "--once" in top_help.stdout
    demo = pylane("demo", "--seconds", "0.3", "--jobs", "5")
    assert demo.returncode == 0 and "summary after" in demo.stdout, demo.stderr
    unknown = pylane("nope")
    assert unknown.returncode == 2 and "unknown command 'nope'" in unknown.stderr
