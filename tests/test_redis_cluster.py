"""One Redis queue, several worker processes (tests/redis_worker.py, started
and stopped by PID here): strict lane order and max_concurrency hold across
all of them, reservations count the live workers' slots, and a SIGKILLed
worker's commands go back to the front of their lane and run elsewhere.

At the end, a Redis Cluster of 3 primaries (redis+cluster:// URLs): queues
whose hash tags land on different shards each work, and no call of the
library can touch two slots.

Commands measure themselves in Redis (a counter they INCR while running,
the order they started in), so nothing here trusts the scheduler's word.
Every wait is bounded.
"""

from __future__ import annotations

import json
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from redis_fleet import kill_process, stop_process
from test_redis_queue import run_seed_snippet

from conftest import WAIT
from pylane import LaneConfig, QueueManagerBuilder

WORKER = Path(__file__).with_name("redis_worker.py")


class Worker:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        kill_process(self.process, WAIT)

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture
def workers(redis_url: str) -> Any:
    """spawn(queue, count, slots, lanes, lease=10) -> started workers,
    each ready (joined) before it is returned; all stopped at teardown."""
    started: list[Worker] = []

    def spawn(queue: str, count: int, slots: int, lanes: list[list[Any]],
              lease: float = 10.0, types: str = "") -> list[Worker]:
        batch = []
        for _ in range(count):
            process = subprocess.Popen(
                [sys.executable, str(WORKER), redis_url, queue, str(slots), str(lease),
                 json.dumps(lanes), types],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            worker = Worker(process)
            started.append(worker)
            batch.append(worker)
        for worker in batch:
            ready, _, _ = select.select([worker.process.stdout], [], [], 30)
            line = worker.process.stdout.readline() if ready else ""
            assert line.strip() == "ready", f"worker {worker.pid} did not start: {line!r}"
        return batch

    yield spawn
    for worker in started:
        worker.stop()


@pytest.fixture
def store(redis_url: str) -> Any:
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def producer(redis_url: str) -> Callable[..., Any]:
    made = []

    def make(queue: str, lanes: list[list[Any]]) -> Any:
        builder = QueueManagerBuilder()
        for lane_id, priority, minimum, maximum in lanes:
            builder.with_lane(lane_id, LaneConfig.new(minimum, maximum), priority)
        manager = builder.with_redis(redis_url, queue=queue).build()
        manager.start(worker=False)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Checks `condition` until it holds; a bounded wait on another process's
    progress (each check is one Redis round trip)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def record(tag: str, lane: str, **extra: Any) -> dict[str, Any]:
    return {"tag": tag, "lane": lane, **extra}


def started_order(store: Any, queue: str, names: dict[str, str]) -> list[str]:
    """The order Redis handed the named commands out (its started events):
    commands that then run side by side may record their own start in
    another order."""
    from pylane.redis.events import events_of

    order = []
    for entry_id, fields in store.xrange(f"a3s:{{{queue}}}:events"):
        for event in events_of(entry_id, fields):
            if event.key == "queue.command.started" and event.payload["command_id"] in names:
                order.append(names[event.payload["command_id"]])
    return order


def test_seed_snippet_with_redis_runs_beside_two_worker_processes(
        redis_url, redis_queue, workers, producer, store, monkeypatch, capsys):
    seed_lanes = [["high", 0, 1, 4], ["low", 1, 1, 2]]
    (alpha,) = workers(redis_queue, 1, 2, seed_lanes, types="alpha")
    (beta,) = workers(redis_queue, 1, 2, seed_lanes, types="beta")
    run_seed_snippet(redis_url, redis_queue, monkeypatch, capsys)
    # The snippet's lanes have left; the two worker processes serve the
    # queue, each the types it has handlers for; a type neither handles is
    # echoed by either.
    manager = producer(redis_queue, seed_lanes)
    futures = [(kind, manager.submit("low", kind, record(f"{kind}{n}", "low")))
               for n in range(5) for kind in ("alpha", "beta")]
    ran_on = {(kind, future.result(WAIT)["pid"]) for kind, future in futures}
    assert ran_on == {("alpha", alpha.pid), ("beta", beta.pid)}
    assert manager.submit("high", "nobody", {"echo": 1}).result(WAIT) == {"echo": 1}
    types = {w.info.split(" pid ")[-1]: w.types for w in manager.stats().workers}
    assert types[str(alpha.pid)] == ("alpha", "record", "whoami")
    assert types[str(beta.pid)] == ("beta", "record", "whoami")


def test_a_head_only_a_busy_worker_can_run_waits_and_fifo_holds(redis_queue, workers,
                                                                  producer, store):
    lanes = [["jobs", 0, 0, 4]]
    workers(redis_queue, 1, 1, lanes, types="alpha")
    (beta,) = workers(redis_queue, 1, 1, lanes, types="beta")
    manager = producer(redis_queue, lanes)
    first = manager.submit("jobs", "alpha", record("a1", "jobs", hold=True))
    wait_for(lambda: store.llen(f"test:{redis_queue}:order") == 1, "a1 running")
    second = manager.submit("jobs", "alpha", record("a2", "jobs"))
    behind = manager.submit("jobs", "beta", record("b1", "jobs"))
    stats = manager.stats()
    # b1 could run on the idle beta worker, but a2 is ahead of it in the lane.
    assert stats.lane("jobs").pending == 2
    assert "type alpha" in stats.lane("jobs").waiting, stats.lane("jobs").waiting
    assert {w.info.split(" pid ")[-1]: w.active for w in stats.workers}[str(beta.pid)] == 0
    store.rpush(f"test:{redis_queue}:gate", "go")
    for future in (first, second, behind):
        future.result(WAIT)
    names = {first.command_id: "a1", second.command_id: "a2", behind.command_id: "b1"}
    assert started_order(store, redis_queue, names) == ["a1", "a2", "b1"]


def test_control_starts_before_every_queued_prompt_on_every_worker(
        redis_queue, workers, producer, store):
    lanes = [["control", 1, 0, 2], ["prompt", 5, 0, 4]]
    workers(redis_queue, 2, 2, lanes)
    manager = producer(redis_queue, lanes)
    prompts = [manager.submit("prompt", "record", record(f"p{n}", "prompt", hold=True))
               for n in range(12)]
    wait_for(lambda: store.llen(f"test:{redis_queue}:order") == 4, "4 prompts running")
    control = manager.submit("control", "record", record("control", "control"))
    stats = manager.stats()
    assert (stats.lane("control").pending, stats.lane("prompt").pending) == (1, 8)
    assert stats.lane("control").waiting == "every worker slot is busy"
    store.rpush(f"test:{redis_queue}:gate", "go")  # one prompt ends: one slot frees
    assert control.result(WAIT)["tag"] == "control"
    store.rpush(f"test:{redis_queue}:gate", *["go"] * 11)
    for future in prompts:
        future.result(WAIT)
    order = [tag.decode() for tag in store.lrange(f"test:{redis_queue}:order", 0, -1)]
    assert sorted(order[:4]) == ["p0", "p1", "p2", "p3"]
    assert order[4] == "control", order
    # FIFO inside the lane: the order Redis handed them out (the stream's
    # started events), which commands running side by side may not record.
    ids = {future.command_id: f"p{n}" for n, future in enumerate(prompts)}
    assert started_order(store, redis_queue, ids)[4:] == [f"p{n}" for n in range(4, 12)]


def test_max_3_holds_across_3_worker_processes_of_4_slots(redis_queue, workers, producer,
                                                          store):
    lanes = [["capped", 0, 0, 3], ["wide", 1, 0, 12]]
    workers(redis_queue, 3, 4, lanes)
    manager = producer(redis_queue, lanes)
    futures = []
    for n in range(30):
        futures.append(manager.submit("capped", "record", record(f"c{n}", "capped", sleep=0.03)))
        futures.append(manager.submit("wide", "record", record(f"w{n}", "wide", sleep=0.03)))
    pids = {future.result(WAIT)["pid"] for future in futures}
    peaks = [int(v) for v in store.lrange(f"test:{redis_queue}:peaks:capped", 0, -1)]
    wide = [int(v) for v in store.lrange(f"test:{redis_queue}:peaks:wide", 0, -1)]
    assert len(peaks) == 30 and max(peaks) == 3, peaks
    assert max(wide) > 3, "the other slots were never in use at once: the test proves nothing"
    assert len(pids) == 3


def test_min_reservation_counts_the_live_workers_slots(redis_queue, workers, producer, store):
    lanes = [["busy", 0, 0, 3], ["reserved", 5, 1, 1]]
    workers(redis_queue, 1, 2, lanes)
    workers(redis_queue, 1, 1, lanes)  # 3 live slots in all
    manager = producer(redis_queue, lanes)
    busy = [manager.submit("busy", "record", record(f"b{n}", "busy", hold=True))
            for n in range(5)]
    wait_for(lambda: manager.stats().lane("busy").active == 2, "2 busy commands running")
    stats = manager.stats()
    assert stats.slots == 3 and stats.lane("busy").active == 2
    assert "reserved" in stats.lane("busy").waiting
    reserved = manager.submit("reserved", "record", record("r", "reserved"))
    assert reserved.result(WAIT)["tag"] == "r"  # started at once: its worker was kept free
    store.rpush(f"test:{redis_queue}:gate", *["go"] * 5)
    for future in busy:
        future.result(WAIT)
    assert max(int(v) for v in store.lrange(f"test:{redis_queue}:peaks:busy", 0, -1)) == 2


def rerun_after_a_kill(manager: Any, store: Any, queue: str, doomed: Any,
                       start_rescuer: Callable[[], Any]) -> tuple[list[Any], Any, Any]:
    """Submits c1..c4 to lane "jobs" (held at the gate), kills `doomed` while
    it runs c1 and c2, starts a rescuer worker and checks that all four ran
    on it within 6 s, c1 and c2 again first (back at the FRONT of their
    lane, before c3 and c4, which were queued behind them). Returns the
    futures, the rescuer and the queue's stats."""
    futures = [manager.submit("jobs", "record", record(f"c{n}", "jobs", hold=True))
               for n in range(1, 5)]
    wait_for(lambda: store.llen(f"test:{queue}:order") == 2, "c1 and c2 running")
    doomed.kill()
    store.rpush(f"test:{queue}:gate", *["go"] * 4)  # the re-runs pass at once
    began = time.monotonic()
    rescuer = start_rescuer()
    results = [future.result(WAIT) for future in futures]
    assert time.monotonic() - began < 6.0
    assert {r["pid"] for r in results} == {rescuer.pid}
    names = {future.command_id: f"c{n}" for n, future in enumerate(futures, 1)}
    assert started_order(store, queue, names) == ["c1", "c2", "c1", "c2", "c3", "c4"]
    stats = manager.stats()
    assert stats.lane("jobs").requeued == 2 and stats.lane("jobs").completed == 4
    return futures, rescuer, stats


def test_a_killed_workers_commands_go_back_to_the_front_and_run(
        redis_queue, workers, producer, store):
    lanes = [["jobs", 0, 0, 2]]
    (doomed,) = workers(redis_queue, 1, 2, lanes, lease=1.0)
    manager = producer(redis_queue, lanes)
    events = manager.subscribe()
    futures, rescuer, stats = rerun_after_a_kill(
        manager, store, redis_queue, doomed, lambda: workers(redis_queue, 1, 2, lanes,
                                                             lease=1.0)[0])
    assert [w.info.split(" pid ")[-1] for w in stats.workers] == [str(rescuer.pid)]
    seen = events.drain()
    requeued = [e.payload["command_id"] for e in seen if e.key == "queue.command.requeued"]
    assert sorted(requeued) == sorted(f.command_id for f in futures[:2])
    assert any(e.key == "queue.worker.lost" for e in seen)


def test_subscribe_sees_events_from_every_process(redis_queue, workers, producer):
    lanes = [["jobs", 0, 0, 4]]
    pair = workers(redis_queue, 2, 2, lanes)
    manager = producer(redis_queue, lanes)
    stream = manager.subscribe()
    futures = [manager.submit("jobs", "whoami", None) for _ in range(8)]
    pids = {future.result(WAIT) for future in futures}
    workers_seen = set()
    deadline = time.monotonic() + WAIT
    while len(workers_seen) < len(pids) and time.monotonic() < deadline:
        event = stream.recv(0.5)
        if event is not None and event.key == "queue.command.started":
            workers_seen.add(event.payload["worker_id"].split(":")[1])
    assert workers_seen == {str(pid) for pid in pids}
    assert pids <= {w.pid for w in pair}


# ---- a Redis Cluster: queues spread over shards, each in one slot ----------------------


@pytest.fixture(scope="module")
def redis_cluster() -> Any:
    """3 primaries on loopback ports (tests/redis_server.py RedisClusterServers),
    made with redis-cli --cluster create, stopped by PID."""
    import shutil

    from redis_server import RedisClusterServers, redis_server_binary

    if redis_server_binary() is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server / redis-cli are not installed (bash tests/run_all.sh)")
    pytest.importorskip("redis")
    with RedisClusterServers(3) as cluster:
        yield cluster


def test_an_unreachable_cluster_fails_start_fast_with_the_url(redis_queue):
    from pylane import Lane, RedisConnectionError

    began = time.monotonic()
    with pytest.raises(RedisConnectionError,
                       match=re.escape("redis+cluster://127.0.0.1:1 is unreachable")):
        Lane(redis="redis+cluster://127.0.0.1:1", queue=redis_queue).start()
    assert time.monotonic() - began < 5.0


def node_clients(cluster: Any) -> dict[int, Any]:
    import redis

    return {node.port: redis.Redis(host="127.0.0.1", port=node.port) for node in cluster.nodes}


def queues_on_each_node(cluster: Any, prefix: str) -> dict[int, str]:
    """A queue name per node: its hash tag lands in a slot that node holds."""
    from redis.crc import key_slot

    owner = {}
    for start, end, primary, *_ in node_clients(cluster)[cluster.nodes[0].port].cluster("slots"):
        owner[(start, end)] = primary[1]
    found: dict[int, str] = {}
    for n in range(1000):
        name = f"{prefix}-{n}"
        slot = key_slot(name.encode())
        port = next(p for (start, end), p in owner.items() if start <= slot <= end)
        found.setdefault(port, name)
        if len(found) == len(cluster.nodes):
            return found
    raise AssertionError("no queue name for some node")


def tagged_keys(clients: dict[int, Any], queue: str) -> dict[int, list[bytes]]:
    """Every key of the queue (its hash tag) on each node."""
    tag = ("{" + queue + "}").encode()
    return {port: [key for key in client.scan_iter(count=1000) if tag in key]
            for port, client in clients.items()}


def test_two_queues_on_different_shards_both_work(redis_cluster, redis_queue):
    from pylane import Lane

    placed = queues_on_each_node(redis_cluster, redis_queue)
    (port_a, queue_a), (port_b, queue_b) = list(placed.items())[:2]
    lanes = []
    try:
        for queue in (queue_a, queue_b):
            lane = Lane.with_lanes([LaneConfig("jobs", priority=0, min_concurrency=0,
                                               max_concurrency=2)],
                                   redis=redis_cluster.url, queue=queue)
            lane.handler("where")(lambda payload, queue=queue: f"{queue}:{payload}")
            lane.start()
            lanes.append(lane)
        for lane, queue in zip(lanes, (queue_a, queue_b)):
            stream = lane.subscribe()
            assert [lane.submit("jobs", "where", n) for n in range(5)] == [
                f"{queue}:{n}" for n in range(5)]
            assert stream.recv(WAIT).key == "queue.command.submitted"
            assert lane.stats().lane("jobs").completed == 5
        clients = node_clients(redis_cluster)
        for port, queue in ((port_a, queue_a), (port_b, queue_b)):
            keys = tagged_keys(clients, queue)
            assert keys[port], f"queue {queue} has no keys on its node {port}"
            assert not any(found for other, found in keys.items() if other != port)
    finally:
        for lane in lanes:
            lane.shutdown()
            lane.drain(timeout_secs=WAIT)


def test_no_call_can_touch_two_slots_every_key_shares_the_queues_slot(redis_cluster,
                                                                      redis_queue):
    """By construction: each function gets the base key a3s:{<queue>} as
    its one key and derives every other key from it, so all carry the hash
    tag {<queue>}. Checked three ways: the cluster refuses a function that
    touches two slots (none of ours is flagged allow-cross-slot-keys), and
    every function ran here without that refusal; every key the queue left
    (on any node) is in one slot; so is every key of lanes.lua's key list."""
    import redis

    from pylane import Lane, RetryPolicy
    from pylane.redis.connection import LUA_FILE, base_key, library_source

    clients = node_clients(redis_cluster)
    queue = queues_on_each_node(redis_cluster, redis_queue)[redis_cluster.nodes[1].port]
    lane = Lane.with_lanes([
        LaneConfig("jobs", priority=0, min_concurrency=0, max_concurrency=2,
                   retry_policy=RetryPolicy.fixed(1, 0.01)),
        LaneConfig("held", priority=1, min_concurrency=0, max_concurrency=1),
    ], redis=redis_cluster.url, queue=queue, dlq=10)

    @lane.handler("fail")
    def fail(payload: Any) -> Any:
        raise ValueError("no")

    lane.start()
    try:  # every function: register, join, heartbeat, submit, claim, ack, retry, ...
        assert lane.submit("jobs", "echo", 1) == 1
        with pytest.raises(Exception, match="no"):
            lane.submit("jobs", "fail", 2)  # retried once, then a dead letter
        lane.pause_lane("held")
        waiting = lane.submit_async("held", "echo", 3)
        assert waiting.cancel()
        lane.resume_lane("held")
        assert len(lane.manager.dead_letters()) == 1
        stats = lane.stats()
        assert stats.lane("jobs").retried == 1 and stats.workers
    finally:
        lane.shutdown()
        lane.drain(timeout_secs=WAIT)  # leave
    slot = int(clients[redis_cluster.nodes[1].port].cluster("keyslot", base_key(queue)))
    found = tagged_keys(clients, queue)
    left = [key for keys in found.values() for key in keys]
    suffixes = {key.decode().split("}:", 1)[1] for key in left}
    assert suffixes >= {"meta", "lanes", "config", "lane:jobs", "events", "dead"}, suffixes
    assert {int(clients[port].cluster("keyslot", key)) for port, keys in found.items()
            for key in keys} == {slot}
    # The key list in lanes.lua's header, with its placeholders filled in.
    header = library_source().split("]]", 1)[0]
    scheme = re.findall(r"^\s+<base>(:\S+)", header, re.M)
    assert len(scheme) >= 15, f"{LUA_FILE}'s key list changed shape"
    names = [base_key(queue) + re.sub(r"<[^>]+>", "x", suffix) for suffix in scheme]
    port = redis_cluster.nodes[0].port
    assert {int(clients[port].cluster("keyslot", name)) for name in names} == {slot}
    # Redis Cluster refuses a function that touches two slots...
    probe = ("#!lua name=a3s_probe\nredis.register_function('a3s_probe_two', function(keys, args)"
             " redis.call('GET', keys[1]); return redis.call('GET', args[1]) end)")
    node = clients[redis_cluster.nodes[1].port]
    node.function_load(probe, replace=True)
    other = next(f"k{n}" for n in range(10_000)
                 if int(node.cluster("keyslot", f"k{n}")) != slot
                 and int(node.cluster("keyslot", f"k{n}")) in owned_slots(node))
    with pytest.raises(redis.ResponseError, match="do not hash to the same slot"):
        node.fcall("a3s_probe_two", 1, base_key(queue), other)
    node.function_delete("a3s_probe")
    # ... unless flagged, and none of ours is.
    (library,) = node.function_list(library="a3s_lane")
    functions = dict(zip(library[::2], library[1::2]))[b"functions"]
    flags = [dict(zip(f[::2], f[1::2]))[b"flags"] for f in functions]
    assert len(flags) >= 12 and not any(b"allow-cross-slot-keys" in f for f in flags)


def owned_slots(node: Any) -> set[int]:
    port = node.connection_pool.connection_kwargs["port"]
    return {slot for start, end, primary, *_ in node.cluster("slots") if primary[1] == port
            for slot in range(start, end + 1)}


def test_top_reads_a_queue_in_the_cluster(redis_cluster, redis_queue):
    import subprocess
    import sys

    from pylane import Lane

    lane = Lane.with_lanes([LaneConfig("jobs", priority=0, min_concurrency=0,
                                       max_concurrency=2)],
                           redis=redis_cluster.url, queue=redis_queue)
    lane.start()
    try:
        assert lane.submit("jobs", "echo", 7) == 7
        done = subprocess.run([sys.executable, "-m", "pylane", "top", "--redis",
                               redis_cluster.url, "--queue", redis_queue, "--once",
                               "--interval", "0.05"], capture_output=True, text=True,
                              timeout=30, cwd=Path(__file__).resolve().parent.parent)
    finally:
        lane.shutdown()
        lane.drain(timeout_secs=WAIT)
    assert done.returncode == 0, done.stderr
    assert "1 worker," in done.stdout and done.stdout.count("jobs") == 1
