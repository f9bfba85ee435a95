"""Nothing lost while worker processes die: 3 worker processes
(tests/redis_chaos_worker.py) serve one Redis queue; 3,000 commands are
submitted in waves, and after each wave a random worker is SIGKILLed (no
leave, no ack) and a fresh one started in its place. With a 1 s lease:

- every command's result arrives (0 lost, no dead letters);
- every run is counted (each run writes its own field in Redis before it
  works), and a command runs more than once only if it was in flight at a
  kill: at most one extra run per time its worker was lost under it;
- a killed worker's commands are back at the front of their lanes within
  the lease (measured from the kill to its ``queue.worker.lost`` event,
  both on this machine's clock), and start before anything that waited
  behind them.

The RNG is seeded (CHAOS_SEED, printed with the summary line):

    .venv/bin/python -m pytest tests/test_redis_chaos.py -s -q -p no:cacheprovider
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections import Counter
from typing import Any

import pytest
from redis_fleet import Fleet, events, front_violations, runs_per_command, wait_until

from pylane import LaneConfig, QueueManagerBuilder

SEED = int(os.environ.get("CHAOS_SEED", "1729"))
COMMANDS = 3000
WAVES = 12  # one SIGKILL after each wave
WORKERS = 3
SLOTS = 4
LEASE = 1.0
LANES = [["fast", 0, 0, 6], ["bulk", 1, 0, 12]]
RESULTS_WAIT = 60.0  # for every result, after the last wave
REAP_SLACK = 0.15  # seconds past the lease a reap may take on a loaded machine


@pytest.fixture
def own_redis(redis_server: Any) -> Any:
    """A server of the test's own (the load stays off the shared one)."""
    from redis_server import RedisServer

    with RedisServer() as server:
        yield server


@pytest.fixture
def store(own_redis: Any) -> Any:
    import redis

    client = redis.Redis.from_url(own_redis.url)
    yield client
    client.close()


def producer(url: str, queue: str) -> Any:
    builder = QueueManagerBuilder()
    for lane_id, priority, minimum, maximum in LANES:
        builder.with_lane(lane_id, LaneConfig.new(minimum, maximum), priority)
    manager = builder.with_redis(url, queue=queue, lease=LEASE, events_max=1_000_000,
                                 max_lost=1000).build()
    manager.start(worker=False)  # first to register: the events stream keeps everything
    return manager


def test_sigkilled_workers_lose_nothing_and_their_commands_return_to_the_front(
        own_redis, store, redis_queue):
    rng = random.Random(SEED)
    began = time.monotonic()
    manager = producer(own_redis.url, redis_queue)
    fleet = Fleet(own_redis.url, redis_queue, SLOTS, LEASE, LANES)
    try:
        pool = fleet.spawn(WORKERS)
        futures = []
        kills: list[tuple[float, str]] = []  # (wall clock ms, worker id)
        per_wave = COMMANDS // WAVES
        for wave in range(WAVES):
            for n in range(wave * per_wave, (wave + 1) * per_wave):
                lane = "fast" if rng.random() < 0.3 else "bulk"
                futures.append(manager.submit(lane, "work", {"n": n,
                                                             "sleep": rng.uniform(0.005, 0.04)}))
            time.sleep(rng.uniform(0.05, 0.35))  # the wave is running
            index = rng.randrange(len(pool))
            kills.append((time.time() * 1000.0, pool[index].id))
            pool[index].kill()
            pool[index] = fleet.spawn()[0]
        deadline = time.monotonic() + RESULTS_WAIT
        lost = []
        for n, future in enumerate(futures):
            try:
                assert future.result(max(0.0, deadline - time.monotonic())) == n
            except Exception as error:
                lost.append((n, repr(error)))
        elapsed = time.monotonic() - began
        # The last victims may have held nothing: their leases still run out.
        killed = {wid for _, wid in kills}
        wait_until(lambda: killed <= {data["worker_id"] for _, key, data in events(
            store, redis_queue) if key == "queue.worker.lost"}, 3 * LEASE, "the last reaps")
    finally:
        fleet.stop_all()
        manager.close()

    stream = events(store, redis_queue)
    runs = runs_per_command(store, redis_queue)
    number = {future.command_id: n for n, future in enumerate(futures)}
    requeues = Counter(number[data["command_id"]] for _, key, data in stream
                       if key == "queue.command.requeued")
    lost_at = {data["worker_id"]: (ms, data) for ms, key, data in stream
               if key == "queue.worker.lost"}
    delays = [(lost_at[wid][0] - kill_ms) / 1000.0 for kill_ms, wid in kills if wid in lost_at]
    in_flight = sum(lost_at[wid][1]["requeued"] for wid in killed if wid in lost_at)
    duplicates = sum(count - 1 for count in runs.values() if count > 1)
    print(f"\nchaos seed={SEED}: {len(futures)} commands, {len(kills)} SIGKILLs of {WORKERS} "
          f"workers, {len(lost)} lost, {duplicates} duplicate runs ({in_flight} commands in "
          f"flight at the kills), requeued {statistics.median(delays or [0]):.3f} s median / "
          f"{max(delays or [0]):.3f} s max after a kill (lease {LEASE:g} s), {elapsed:.1f} s")

    assert not lost, f"{len(lost)} lost, e.g. {lost[:5]}"
    assert len(kills) >= 10
    assert set(lost_at) >= killed, f"killed but never reaped: {killed - set(lost_at)}"
    false_reaps = set(lost_at) - killed
    assert not false_reaps, f"live workers were reaped (lease 1 s on a loaded machine?): " \
                            f"{false_reaps}"
    assert sorted(runs) == list(range(COMMANDS)), "a command never ran"
    too_many = {n: (runs[n], requeues[n]) for n in runs if runs[n] > 1 + requeues[n]}
    assert not too_many, f"ran more often than its worker was lost (runs, requeues): {too_many}"
    assert duplicates <= in_flight
    assert in_flight >= len(kills), "the kills hit idle workers: the test proves little"
    assert max(delays) <= LEASE + REAP_SLACK, delays
    assert not front_violations(stream)
    assert int(store.llen(f"a3s:{{{redis_queue}}}:dead")) == 0
