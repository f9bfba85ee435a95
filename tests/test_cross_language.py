"""Python and Node on one Redis queue: both SDKs load the same lanes.lua
(pylane/redis/lanes.lua; the npm package ships a copy made at pack time) and
speak the same wire format, so Python producers feed Node workers, Node
producers feed Python workers, and mixed workers serve one queue with the
lane rules held cluster-wide.

Node processes are node/test/redis-agent.js (the handlers of
tests/redis_worker.py, in JS: commands measure themselves in Redis), driven
over JSON lines; Python workers are tests/redis_worker.py. Every process is
started and stopped here by its PID; every wait is bounded. Skipped, with
the reason, when node, node/build or node/node_modules (the redis package)
is missing: `cd node && npm install` makes them.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest
from redis_fleet import kill_process, stop_process
from test_redis_cluster import (
    producer,
    record,
    rerun_after_a_kill,
    started_order,
    store,
    wait_for,
    workers,
)

from conftest import WAIT

# The fixtures of test_redis_cluster.py (Python worker processes, a Redis
# client for the measurements, Python producers): pytest finds them here.
FIXTURES = (producer, store, workers)

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
AGENT = NODE_DIR / "test" / "redis-agent.js"


def node_missing() -> Optional[str]:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "build" / "Release" / "a3s_lane.node").exists():
        return "the Node addon is not built (cd node && npm install)"
    if not (NODE_DIR / "node_modules" / "redis").exists():
        return "node/node_modules has no redis package (cd node && npm install)"
    return None


pytestmark = pytest.mark.skipif(node_missing() is not None, reason=str(node_missing()))


class NodeAgent:
    """One node/test/redis-agent.js process: requests and replies as JSON
    lines; events (after subscribe()) collected as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.ready: queue.Queue[dict[str, Any]] = queue.Queue()
        self._req = 0
        self._lock = threading.Lock()
        self.worker_id: Optional[str] = None
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "ready" in message:
                self.ready.put(message)
            elif "event" in message:
                self.events.put(message)
            else:
                self.replies.put(message)

    def wait_ready(self) -> None:
        try:
            message = self.ready.get(timeout=30)
        except queue.Empty:
            pytest.fail(f"node agent {self.pid} did not start")
        self.worker_id = message["ready"]

    def request(self, op: str, **fields: Any) -> int:
        with self._lock:
            self._req += 1
            req = self._req
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"req": req, "op": op, **fields}) + "\n")
        self.process.stdin.flush()
        return req

    def replies_for(self, reqs: list[int], timeout: float = WAIT) -> dict[int, dict[str, Any]]:
        got: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while len(got) < len(reqs):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"node agent {self.pid}: no reply to {sorted(set(reqs) - set(got))}")
            try:
                message = self.replies.get(timeout=left)
            except queue.Empty:
                continue
            got[message["req"]] = message
        return got

    def call(self, op: str, timeout: float = WAIT, **fields: Any) -> Any:
        reply = self.replies_for([self.request(op, **fields)], timeout)
        message = next(iter(reply.values()))
        assert message["ok"], message
        return message["value"]

    def kill(self) -> None:
        kill_process(self.process, WAIT)

    def stop(self) -> None:
        stop_process(self.process, 10)


@pytest.fixture
def node_agents(redis_url: str) -> Any:
    """spawn(queue, count, slots, lanes, lease_ms=10000, types="", mode="worker")
    -> started agents, each joined before it is returned; stopped at teardown."""
    started: list[NodeAgent] = []

    def spawn(queue_name: str, count: int, slots: int, lanes: list[list[Any]],
              lease_ms: int = 10_000, types: str = "", mode: str = "worker") -> list[NodeAgent]:
        batch = []
        for _ in range(count):
            process = subprocess.Popen(
                ["node", str(AGENT), redis_url, queue_name, str(slots), str(lease_ms),
                 json.dumps(lanes), types, mode],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=NODE_DIR)
            agent = NodeAgent(process)
            started.append(agent)
            batch.append(agent)
        for agent in batch:
            agent.wait_ready()
        return batch

    yield spawn
    for agent in started:
        agent.stop()


def peaks(store: Any, queue_name: str, lane: str) -> list[int]:
    return [int(v) for v in store.lrange(f"test:{queue_name}:peaks:{lane}", 0, -1)]


# ---- a Python producer, Node workers ---------------------------------------------------


def test_python_producer_node_workers_results_events_caps_and_lane_order(
        redis_queue, node_agents, producer, store):
    lanes = [["control", 1, 0, 2], ["prompt", 5, 0, 3]]
    agents = node_agents(redis_queue, 2, 2, lanes)
    manager = producer(redis_queue, lanes)
    events = manager.subscribe()
    prompts = [manager.submit("prompt", "record", record(f"p{n}", "prompt", hold=True))
               for n in range(10)]
    # 4 Node slots, prompt max 3: three run, the rest wait.
    wait_for(lambda: store.llen(f"test:{redis_queue}:order") == 3, "3 prompts running")
    stats = manager.stats()
    assert stats.lane("prompt").active == 3 and stats.lane("prompt").waiting == "at max_concurrency"
    control = manager.submit("control", "record", record("control", "control"))
    assert control.result(WAIT)["tag"] == "control"  # the free Node slot, ahead of 7 prompts
    store.rpush(f"test:{redis_queue}:gate", *["go"] * 10)
    results = [future.result(WAIT) for future in prompts]
    assert {r["runtime"] for r in results} == {"node"}
    assert {r["pid"] for r in results} <= {a.pid for a in agents}
    assert max(peaks(store, redis_queue, "prompt")) == 3
    order = [t.decode() for t in store.lrange(f"test:{redis_queue}:order", 0, -1)]
    assert order[3] == "control", order
    ids = {future.command_id: f"p{n}" for n, future in enumerate(prompts)}
    assert started_order(store, redis_queue, ids) == [f"p{n}" for n in range(10)]
    # A type no Node worker handles is echoed by one; a Node worker's
    # failure reaches the Python future as the error text.
    assert manager.submit("prompt", "nobody", {"echo": [1, 2]}).result(WAIT) == {"echo": [1, 2]}
    # Events from the Node workers, in the Python stream, with their worker ids.
    seen: set[str] = set()
    deadline = time.monotonic() + WAIT
    while len(seen) < 2 and time.monotonic() < deadline:
        event = events.recv(0.5)
        if event is not None and event.key == "queue.command.started":
            seen.add(event.payload["worker_id"])
    assert seen == {a.worker_id for a in agents}
    workers_ = {w.worker_id: w for w in manager.stats().workers}
    for agent in agents:
        assert workers_[agent.worker_id].types == ("a3s.fn:" + str(agent.worker_id), "record",
                                                   "whoami")
        assert workers_[agent.worker_id].info.endswith(f" pid {agent.pid}")


def test_a_node_handlers_failure_reaches_the_python_future(redis_queue, node_agents, producer):
    from pylane import RemoteCommandError

    lanes = [["jobs", 0, 0, 2]]
    node_agents(redis_queue, 1, 1, lanes)
    manager = producer(redis_queue, lanes)
    with pytest.raises(RemoteCommandError, match=r"TypeError: .*"):
        manager.submit("jobs", "record", {"no": "tag"}).result(WAIT)  # record needs a tag
    assert manager.stats().lane("jobs").failed == 1


def test_python_declared_timeouts_and_retries_hold_on_node_workers(redis_url, redis_queue,
                                                                   node_agents):
    """Lanes with options only Python declares: the Node worker enforces the
    lane's timeout, and a failing command is retried then dead-lettered by
    the shared rules, whoever runs it."""
    from pylane import CommandTimeoutError, LaneConfig, QueueManagerBuilder, RetryPolicy

    manager = (QueueManagerBuilder()
               .with_lane("slow", LaneConfig.new(0, 2).with_timeout(0.2), 0)
               .with_lane("flaky", LaneConfig("flaky", 1, 0, 2,
                                              retry_policy=RetryPolicy.fixed(2, 0.05)), 1)
               .with_redis(redis_url, queue=redis_queue).build())
    manager.start(worker=False)
    try:
        # The Node agent declares no lanes of these names: it serves them all the same.
        node_agents(redis_queue, 1, 2, [["other", 5, 0, 1]])
        began = time.monotonic()
        with pytest.raises(CommandTimeoutError):
            manager.submit("slow", "record", record("t", "slow", sleep=2)).result(WAIT)
        assert time.monotonic() - began < 1.8  # not the whole 2 s sleep
        with pytest.raises(Exception, match="TypeError"):
            manager.submit("flaky", "record", {"no": "tag"}).result(WAIT)
        stats = manager.stats()
        assert (stats.lane("slow").timed_out, stats.lane("flaky").retried) == (1, 2)
        assert stats.lane("flaky").dead_lettered == 1
        assert [d.attempts for d in manager.dead_letters()][-1] == 3
    finally:
        manager.close()


def test_a_lane_declared_alike_in_python_and_node_is_one_lane(redis_url, redis_queue):
    """Node's lane options (timeoutMs, retry, rateLimit, priorityBoost) are
    the Python LaneConfig's, stored alike: the same lane declared on both
    sides registers once; a differing field is a conflict naming it."""
    from pylane import (
        LaneConfig,
        PriorityBoostConfig,
        QueueManagerBuilder,
        RateLimitConfig,
        RetryPolicy,
    )

    config = LaneConfig("api", 0, 0, 4, retry_policy=RetryPolicy(2, 0.05, 0.4, 2.0),
                        rate_limit=RateLimitConfig.new(5, 1.0),
                        priority_boost=PriorityBoostConfig(True, 2.0, ((1.5, 1), (0.5, 3)))
                        ).with_timeout(0.5)
    manager = (QueueManagerBuilder().with_lane("api", config, 0)
               .with_redis(redis_url, queue=redis_queue).build())
    manager.start(worker=False)
    try:
        alike = {"laneId": "api", "priority": 0, "minConcurrency": 0, "maxConcurrency": 4,
                 "timeoutMs": 500,
                 "retry": {"maxRetries": 2, "initialDelayMs": 50, "maxDelayMs": 400,
                           "multiplier": 2},
                 "rateLimit": {"maxCommands": 5, "windowMs": 1000},
                 "priorityBoost": {"deadlineMs": 2000, "intervals": [[500, 3], [1500, 1]]}}
        differs = {**alike, "retry": {**alike["retry"], "maxRetries": 3}}
        script = """
const { Lane } = require(process.argv[1]);
for (const config of JSON.parse(process.argv[4])) {
  try {
    const options = { redis: process.argv[2], queue: process.argv[3] };
    Lane.withLanes([config], options).start({ worker: false });
    console.log('ok');
  } catch (error) {
    console.log(error.code, error.message);
  }
}
process.exit(0);
"""
        done = subprocess.run(["node", "-e", script, str(NODE_DIR), redis_url, redis_queue,
                               json.dumps([alike, differs])],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        first, second = done.stdout.strip().split("\n")
        assert first == "ok"
        assert second.startswith("ERR_LANE_CONFIG_CONFLICT"), second
        assert '"api": retry is {' in second and "in Redis" in second, second
        assert [lane.lane_id for lane in manager.stats().lanes] == ["api"]
    finally:
        manager.close()


# ---- a Node producer, Python workers -----------------------------------------------------


def test_node_producer_python_workers(redis_queue, workers, node_agents, store):
    lanes = [["high", 0, 1, 4], ["low", 1, 1, 2]]
    pythons = workers(redis_queue, 2, 2, lanes)
    (node,) = node_agents(redis_queue, 1, 2, lanes, mode="producer")
    assert node.worker_id is None
    node.call("subscribe")
    reqs = [node.request("run", lane="low", type="record", payload=record(f"n{n}", "low"))
            for n in range(8)]
    reqs.append(node.request("run", lane="high", type="whoami", payload=None))
    reqs.append(node.request("run", lane="high", type="nobody", payload={"k": "v"}))
    replies = node.replies_for(reqs)
    values = [replies[r]["value"] for r in reqs]
    assert all(replies[r]["ok"] for r in reqs), replies
    assert {v["pid"] for v in values[:8]} <= {w.pid for w in pythons}
    assert "runtime" not in values[0]  # the Python handler's own result
    assert values[8] in {w.pid for w in pythons}
    assert values[9] == {"k": "v"}
    assert max(peaks(store, redis_queue, "low")) <= 2
    # The Node subscriber sees the Python workers' events.
    started: set[str] = set()
    deadline = time.monotonic() + WAIT
    while len(started) < 10 and time.monotonic() < deadline:
        try:
            event = node.events.get(timeout=0.5)
        except queue.Empty:
            continue
        if event["event"] == "queue.command.started":
            started.add(event["payload"]["command_id"])
            assert event["payload"]["worker_id"].split(":")[1] in {str(w.pid) for w in pythons}
    assert len(started) == 10
    # The Node side's stats are the queue's: both Python workers, their types.
    stats = node.call("stats")
    assert sorted(w["info"].split(" pid ")[-1] for w in stats["workers"]) == sorted(
        str(w.pid) for w in pythons)
    assert [lane["laneId"] for lane in stats["lanes"]] == ["high", "low"]
    # The seed's synchronous submit from Node, served by a Python worker.
    assert node.call("submit", lane="high", type="whoami", payload=None) in {w.pid for w in pythons}


# ---- mixed workers ---------------------------------------------------------------------------


def test_mixed_python_and_node_workers_share_caps_and_order(redis_queue, workers, node_agents,
                                                           producer, store):
    lanes = [["capped", 0, 0, 3], ["wide", 1, 0, 12]]
    pythons = workers(redis_queue, 2, 3, lanes)
    nodes = node_agents(redis_queue, 2, 3, lanes)
    manager = producer(redis_queue, lanes)
    futures = []
    for n in range(24):
        futures.append(manager.submit("capped", "record", record(f"c{n}", "capped", sleep=0.02)))
        futures.append(manager.submit("wide", "record", record(f"w{n}", "wide", sleep=0.02)))
    results = [future.result(WAIT) for future in futures]
    ran = {r["pid"] for r in results}
    assert ran & {w.pid for w in pythons}, "no Python worker ran anything"
    assert ran & {a.pid for a in nodes}, "no Node worker ran anything"
    capped = peaks(store, redis_queue, "capped")
    assert len(capped) == 24 and max(capped) == 3, capped
    assert max(peaks(store, redis_queue, "wide")) > 3, "the slots were never in use at once"
    ids = {future.command_id: f"c{n}" for n, future in enumerate(futures[0::2])}
    assert started_order(store, redis_queue, ids) == [f"c{n}" for n in range(24)]
    stats = manager.stats()
    assert stats.slots == 12 and stats.lane("capped").completed == 24
    assert len(stats.workers) == 4


def test_min_reservation_counts_python_and_node_slots(redis_queue, workers, node_agents,
                                                     producer, store):
    lanes = [["busy", 0, 0, 3], ["reserved", 5, 1, 1]]
    workers(redis_queue, 1, 1, lanes)
    node_agents(redis_queue, 1, 2, lanes)  # 3 live slots in all
    manager = producer(redis_queue, lanes)
    busy = [manager.submit("busy", "record", record(f"b{n}", "busy", hold=True))
            for n in range(5)]
    wait_for(lambda: manager.stats().lane("busy").active == 2, "2 busy commands running")
    assert "reserved" in manager.stats().lane("busy").waiting
    assert manager.submit("reserved", "record", record("r", "reserved")).result(WAIT)["tag"] == "r"
    store.rpush(f"test:{redis_queue}:gate", *["go"] * 5)
    for future in busy:
        future.result(WAIT)
    assert max(peaks(store, redis_queue, "busy")) == 2


# ---- recovery ----------------------------------------------------------------------------------


def test_a_sigkilled_node_workers_commands_are_recovered_by_a_python_worker(
        redis_queue, workers, node_agents, producer, store):
    lanes = [["jobs", 0, 0, 2]]
    (doomed,) = node_agents(redis_queue, 1, 2, lanes, lease_ms=1000)
    manager = producer(redis_queue, lanes)
    events = manager.subscribe()
    futures, _rescuer, _stats = rerun_after_a_kill(
        manager, store, redis_queue, doomed, lambda: workers(redis_queue, 1, 2, lanes,
                                                             lease=1.0)[0])
    seen = events.drain()
    lost = [e.payload["worker_id"] for e in seen if e.key == "queue.worker.lost"]
    assert lost == [doomed.worker_id]
    requeued = [e.payload["command_id"] for e in seen if e.key == "queue.command.requeued"]
    assert sorted(requeued) == sorted(f.command_id for f in futures[:2])
