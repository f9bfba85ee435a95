"""Redis itself crashes: redis-server with ``appendonly yes`` and
``appendfsync always`` (tests/redis_server.py DURABLE) is SIGKILLed three
times under 3 worker processes and a producer that keeps submitting, and
restarted on the same port and folder (its AOF). Outages of 0.3 s, 2.5 s
(more than twice the 1 s lease) and 0.8 s (the lease's last third).

- Every submit that returned completes after the restarts (0 lost); a
  submit while Redis is down fails at once and is not counted.
- No live worker is reaped for an outage: leases do not run out while Redis
  heard from no worker at all (the grace in lanes.lua's reap), so nothing
  runs twice and no command is requeued.
- A claim or a result whose reply died with Redis is not stranded: the
  worker adopts a command leased to it that it never heard of, the
  producer's results waiter handles a moved result again (their logs).

The grace itself is checked in Redis time (``now_ms``) at the end.

    .venv/bin/python -m pytest tests/test_redis_crash.py -s -q -p no:cacheprovider
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

import pytest
from redis_fleet import Fleet, events, runs_per_command

from pylane import LaneConfig, QueueManagerBuilder, RedisConnectionError

SEED = int(os.environ.get("CHAOS_SEED", "1729"))
WORKERS = 3
SLOTS = 4
LEASE = 1.0
LANES = [["fast", 0, 0, 6], ["bulk", 1, 0, 12]]
OUTAGES = (0.3, 2.5, 0.8)  # seconds Redis stays dead, one kill each
RUNNING = 1.0  # seconds of traffic before each kill and after the last restart
SUBMIT_EVERY = 0.003
MAX_COMMANDS = 5000
RESULTS_WAIT = float(os.environ.get("RESULTS_WAIT", "60"))


@pytest.fixture
def durable_redis(redis_server: Any) -> Any:
    """A server of the test's own with every write fsynced before its reply."""
    from redis_server import DURABLE, RedisServer

    with RedisServer(DURABLE) as server:
        yield server


def producer(url: str, queue: str) -> Any:
    builder = QueueManagerBuilder()
    for lane_id, priority, minimum, maximum in LANES:
        builder.with_lane(lane_id, LaneConfig.new(minimum, maximum), priority)
    manager = builder.with_redis(url, queue=queue, lease=LEASE, events_max=1_000_000,
                                 max_lost=1000).build()
    manager.start(worker=False)
    return manager


def test_a_crashed_redis_with_appendfsync_always_loses_no_returned_submit(
        durable_redis, redis_queue, tmp_path):
    import redis

    server = durable_redis
    rng = random.Random(SEED)
    began = time.monotonic()
    manager = producer(server.url, redis_queue)
    log = tmp_path / "workers.log"
    fleet = Fleet(server.url, redis_queue, SLOTS, LEASE, LANES, log=log)
    returned: list[tuple[int, Any]] = []
    refused = 0
    stop = threading.Event()

    def submit_all() -> None:
        nonlocal refused
        pick = random.Random(SEED + 1)
        for n in range(MAX_COMMANDS):
            if stop.is_set():
                return
            lane = "fast" if pick.random() < 0.3 else "bulk"
            try:
                future = manager.submit(lane, "work", {"n": n, "sleep": pick.uniform(0.005,
                                                                                     0.03)})
                returned.append((n, future))
            except RedisConnectionError:
                refused += 1  # Redis is down: the submit said so and is not ours to check
            stop.wait(SUBMIT_EVERY)

    submitter = threading.Thread(target=submit_all, name="submitter")
    try:
        workers = fleet.spawn(WORKERS)
        submitter.start()
        for outage in OUTAGES:
            time.sleep(RUNNING + rng.uniform(0, 0.3))
            server.kill()
            time.sleep(outage)
            server.restart()
        time.sleep(RUNNING)
        stop.set()
        submitter.join(10)
        deadline = time.monotonic() + RESULTS_WAIT
        lost = []
        for n, future in returned:
            try:
                assert future.result(max(0.0, deadline - time.monotonic())) == n
            except Exception as error:
                lost.append((n, repr(error)))
        elapsed = time.monotonic() - began
        store = redis.Redis.from_url(server.url)
        stream = events(store, redis_queue)
        runs = runs_per_command(store, redis_queue)
        late_acks = manager.stats().late_acks
        futures = dict(returned)
        diagnosis = {n: (runs.get(n, 0), store.hgetall(
            f"a3s:{{{redis_queue}}}:cmd:{futures[n].command_id}")) for n, _ in lost[:5]}
        store.close()
    finally:
        stop.set()
        fleet.stop_all()
        manager.close()

    reaped = [data for _, key, data in stream if key == "queue.worker.lost"]
    requeued = sum(1 for _, key, _data in stream if key == "queue.command.requeued")
    duplicates = sum(count - 1 for count in runs.values() if count > 1)
    adopted = log.read_text().count("by a claim whose reply was lost")
    print(f"\nredis crash seed={SEED}: {len(OUTAGES)} SIGKILLs of redis-server (appendfsync "
          f"always; outages {', '.join(f'{o:g}' for o in OUTAGES)} s, lease {LEASE:g} s), "
          f"{len(returned)} submits returned, {refused} refused while down, {len(lost)} lost, "
          f"{duplicates} duplicate runs, {len(reaped)} workers reaped, {requeued} requeued, "
          f"{late_acks} late acks, {adopted} lost claim replies adopted, {elapsed:.1f} s")
    assert not lost, f"{len(lost)} lost, e.g. {lost[:5]}: (runs, command) {diagnosis}"
    assert len(returned) > 500 and refused > 0, "the kills missed the traffic"
    assert not reaped, f"live workers were reaped for Redis's outage: {reaped}"
    assert {w.id for w in workers} == {w.id for w in fleet.all}
    assert duplicates == 0, {n: c for n, c in runs.items() if c > 1}


# ---- the grace, in Redis time ---------------------------------------------------------


def functions(url: str, queue: str) -> Any:
    from pylane.redis.connection import Functions, ensure_library, lane_config_json, open_client

    client = open_client(url)
    ensure_library(client, url)
    fns = Functions(client, url, queue)
    fns.register_lanes([lane_config_json("q", LaneConfig.new(0, 4), 0)], {}, now_ms=0)
    return fns


def lost_workers(fns: Any) -> list[str]:
    return [data["worker_id"] for _, key, data in events(fns.client, fns.queue)
            if key == "queue.worker.lost"]


def test_leases_do_not_run_out_while_redis_hears_from_no_worker(redis_url, redis_queue):
    fns = functions(redis_url, redis_queue)
    for wid in ("a", "b"):
        fns.join(wid, 1, [], 1000, now_ms=0)
    fns.submit("c1", "q", "t", "{}", now_ms=0)
    (claimed,) = fns.claim("b", 1, [], now_ms=10)["claimed"]
    fns.heartbeat("a", 1000, now_ms=300)
    fns.heartbeat("b", 1000, now_ms=310)
    # Silence: Redis is down (or cut off from every worker) from 310 to 5000.
    assert fns.heartbeat("a", 1000, now_ms=5000) == (True, 0)  # b not reaped
    assert lost_workers(fns) == []
    # b comes back within its fresh lease, still holding c1; its ack counts.
    assert fns.heartbeat("b", 1000, now_ms=5600) == (True, 0)
    reply = fns.claim("b", 0, [{"id": "c1", "lease": claimed["lease"], "status": "ok",
                                "result": "1"}], now_ms=5610)
    assert reply["rejected"] == []
    assert fns.stats(now_ms=5610)["lanes"][0]["completed"] == 1


def test_after_a_silence_every_lease_starts_afresh_not_only_the_expired(redis_url,
                                                                        redis_queue):
    """b's lease has 130 ms left when a's first heartbeat after the outage
    comes: b needs its whole lease to reconnect, not what was left."""
    fns = functions(redis_url, redis_queue)
    for wid in ("a", "b"):
        fns.join(wid, 1, [], 1000, now_ms=0)
    fns.heartbeat("a", 1000, now_ms=300)
    fns.heartbeat("b", 1000, now_ms=330)  # b's lease: until 1330
    assert fns.heartbeat("a", 1000, now_ms=1200) == (True, 0)  # 870 ms of silence
    assert fns.heartbeat("a", 1000, now_ms=1500) == (True, 0)  # b not reaped at 1330
    assert fns.heartbeat("b", 1000, now_ms=2100) == (True, 0)
    assert lost_workers(fns) == []


def test_a_worker_that_stays_away_after_the_silence_is_reaped_a_lease_later(redis_url,
                                                                            redis_queue):
    fns = functions(redis_url, redis_queue)
    for wid in ("a", "b"):
        fns.join(wid, 1, [], 1000, now_ms=0)
    fns.heartbeat("b", 1000, now_ms=300)
    assert fns.heartbeat("a", 1000, now_ms=4000) == (True, 0)  # the silence: b spared
    assert fns.heartbeat("a", 1000, now_ms=4400) == (True, 0)
    assert fns.heartbeat("a", 1000, now_ms=4800) == (True, 0)
    assert fns.heartbeat("a", 1000, now_ms=5100) == (True, 1)  # its fresh lease ran out
    assert lost_workers(fns) == ["b"]


def test_a_worker_that_died_while_others_beat_is_reaped_at_once(redis_url, redis_queue):
    fns = functions(redis_url, redis_queue)
    for wid in ("a", "dead"):
        fns.join(wid, 1, [], 1000, now_ms=0)
    for now in (300, 600, 900):
        assert fns.heartbeat("a", 1000, now_ms=now) == (True, 0)
    # 105 ms since a's last beat: not a silence, so no grace.
    assert fns.heartbeat("a", 1000, now_ms=1005) == (True, 1)  # right after its expiry
    assert lost_workers(fns) == ["dead"]


def test_a_quiet_queue_is_no_outage_a_heartbeat_on_time_reaps(redis_url, redis_queue):
    """The caller's own heartbeat on time says Redis was reachable: a worker
    with a short lease that went quiet meanwhile is dead, not cut off."""
    fns = functions(redis_url, redis_queue)
    fns.join("slow", 1, [], 10_000, now_ms=0)  # beats every 3.3 s
    fns.join("short", 1, [], 100, now_ms=0)
    assert fns.heartbeat("slow", 10_000, now_ms=3300) == (True, 1)
    assert lost_workers(fns) == ["short"]


def test_a_join_after_the_silence_spares_the_workers_that_were_cut_off(redis_url,
                                                                        redis_queue):
    """The first call after an outage may be a new worker's join, not a
    heartbeat: it must not reap the workers that could not reach Redis
    either (their commands would run twice and their acks be refused)."""
    fns = functions(redis_url, redis_queue)
    fns.join("a", 1, [], 1000, now_ms=0)
    fns.heartbeat("a", 1000, now_ms=300)  # a's lease: until 1300; then Redis is away
    fns.join("new", 1, [], 1000, now_ms=4000)  # the first call after the outage
    assert lost_workers(fns) == [], "a join after the silence reaped a cut-off worker"
    assert fns.heartbeat("a", 1000, now_ms=4300) == (True, 0)  # a is back in time
    # A worker that stays away is reaped once its fresh lease ran out.
    assert fns.heartbeat("new", 1000, now_ms=4600) == (True, 0)
    assert fns.heartbeat("new", 1000, now_ms=4900) == (True, 0)
    assert fns.heartbeat("new", 1000, now_ms=5400) == (True, 1)
    assert lost_workers(fns) == ["a"]
