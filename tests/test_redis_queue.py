"""The Redis backend in one process: the SDK and full API with the
``redis=`` keyword, lane rules held in Redis (pause, cancel, retries with
back-off, dead letters), leases and late acks, and the errors of bad input
and faults. Cross-process behaviour is in test_redis_cluster.py.

Every test uses its own queue name on the session's redis-server
(conftest.py); every wait is bounded.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import pytest
from test_sdk_surface import SEED_SNIPPET

from conftest import WAIT
from pylane import (
    CommandTimeoutError,
    InvalidArgumentError,
    InvalidConfigError,
    InvalidPayloadError,
    Lane,
    LaneConfig,
    LaneConfigConflictError,
    LaneNotFoundError,
    LibraryVersionError,
    QueueManagerBuilder,
    RedisConnectionError,
    RemoteCommandError,
    RetryPolicy,
)


@pytest.fixture
def lanes(redis_url: str, redis_queue: str) -> Any:
    """Factory of SDK lanes on this test's queue; closed at teardown."""
    made: list[Lane] = []

    def make(configs: Any = None, **options: Any) -> Lane:
        options.setdefault("redis", redis_url)
        options.setdefault("queue", redis_queue)
        lane = Lane(configs, **options) if configs is not None else Lane(**options)
        made.append(lane)
        return lane

    yield make
    for lane in made:
        lane.manager.close()


def two_lanes() -> list[LaneConfig]:
    return [LaneConfig("high", priority=0, min_concurrency=1, max_concurrency=4),
            LaneConfig("low", priority=1, min_concurrency=1, max_concurrency=2)]


def functions(redis_url: str, queue: str) -> Any:
    from pylane.redis.connection import Functions, ensure_library, open_client

    client = open_client(redis_url)
    ensure_library(client, redis_url)
    return Functions(client, redis_url, queue)


# ---- the seed's snippet, with the keyword ------------------------------------------


def run_seed_snippet(redis_url: str, redis_queue: str, monkeypatch: Any, capsys: Any) -> None:
    """Runs the original snippet with the keyword added to both
    constructors; right after subscribing a command is queued so that recv
    returns an event (read back from the queue's stream in Redis)."""
    keyword = f'redis="{redis_url}", queue="{redis_queue}"'
    code = SEED_SNIPPET.replace("lane = Lane()", f"lane = Lane({keyword})")
    code = code.replace("\n])\nlane.start()", f"\n], {keyword})\nlane.start()")
    assert code.count(keyword) == 2
    started: list[Lane] = []
    real_start, real_subscribe = Lane.start, Lane.subscribe

    def tracked_start(self: Lane, **options: Any) -> None:
        started.append(self)
        real_start(self, **options)

    def subscribe_then_submit(self: Lane) -> Any:
        stream = real_subscribe(self)
        self.submit_async("low", "ping", {"n": 1})
        return stream

    monkeypatch.setattr(Lane, "start", tracked_start)
    monkeypatch.setattr(Lane, "subscribe", subscribe_then_submit)
    namespace: dict = {"__name__": "seed_snippet"}
    began = time.perf_counter()
    try:
        exec(compile(code, "seed_snippet.py", "exec"), namespace)
    finally:
        for lane in started:
            lane.manager.close()
        monkeypatch.undo()
    assert namespace["result"] == {"key": "value"}
    event = namespace["event"]
    assert event.key == "queue.command.submitted"
    assert event.payload["lane_id"] == "low"
    assert time.perf_counter() - began < 4.0, "recv waited for its timeout"
    assert capsys.readouterr().out.startswith("queue.command.submitted {")


def test_seed_snippet_runs_with_only_the_redis_keyword(redis_url, redis_queue, monkeypatch,
                                                      capsys):
    run_seed_snippet(redis_url, redis_queue, monkeypatch, capsys)


# ---- the SDK surface, queue-wide -----------------------------------------------------


def test_submit_runs_handlers_and_echoes_unknown_types(lanes):
    lane = lanes(two_lanes())

    @lane.handler("add")
    def add(payload):
        return payload["a"] + payload["b"]

    @lane.handler("boom")
    def boom(_payload):
        raise ValueError("bad input")

    lane.start()
    assert lane.submit("high", "add", {"a": 2, "b": 3}) == 5
    assert lane.submit("low", "unknown", [1, "x"]) == [1, "x"]
    with pytest.raises(RemoteCommandError, match="ValueError: bad input"):
        lane.submit("high", "boom", None)
    with pytest.raises(LaneNotFoundError, match="nope"):
        lane.submit("nope", "add", {})
    stats = lane.stats()
    assert stats.lane("high").completed == 1 and stats.lane("high").failed == 1
    assert stats.lane("low").completed == 1
    assert [w.slots for w in stats.workers] == [6]  # the default pool: max 4 + max 2
    assert stats.workers[0].types == ("add", "boom")
    lane.shutdown()
    lane.drain(timeout_secs=WAIT)


def test_a_producer_only_process_submits_and_gets_results(lanes):
    worker = lanes(two_lanes())
    producer = lanes(two_lanes())
    worker.register_handler("pid", lambda _p: "from the worker")
    worker.start()
    producer.start(worker=False)
    assert [w.worker_id for w in producer.stats().workers] == [
        w.worker_id for w in worker.stats().workers]
    futures = [producer.submit_async("low", "pid", n) for n in range(20)]
    assert [f.result(WAIT) for f in futures] == ["from the worker"] * 20


def test_pause_and_resume_hold_and_release_a_lane(lanes):
    lane = lanes(two_lanes())
    lane.start()
    lane.pause_lane("low")
    futures = [lane.submit_async("low", "echo", n) for n in range(3)]
    stats = lane.stats().lane("low")
    assert (stats.pending, stats.active, stats.paused, stats.waiting) == (3, 0, True, "paused")
    assert lane.submit("high", "echo", "not paused") == "not paused"
    assert not any(f.done() for f in futures)
    lane.resume_lane("low")
    assert [f.result(WAIT) for f in futures] == [0, 1, 2]


def test_cancel_withdraws_a_pending_command_only(lanes):
    lane = lanes(two_lanes())
    lane.start()
    lane.pause_lane("low")
    futures = [lane.submit_async("low", "echo", n) for n in range(3)]
    assert futures[1].cancel() is True
    assert futures[1].cancelled()
    assert lane.manager.cancel(futures[1].command_id) is False  # already gone
    lane.resume_lane("low")
    assert futures[0].result(WAIT) == 0 and futures[2].result(WAIT) == 2
    assert futures[0].cancel() is False  # finished
    stats = lane.stats().lane("low")
    assert (stats.cancelled, stats.completed) == (1, 2)


def test_retry_with_back_off_held_in_redis_then_dead_letter(lanes):
    delay = 0.3
    config = LaneConfig("api", priority=0, min_concurrency=0, max_concurrency=2,
                        retry_policy=RetryPolicy.fixed(2, delay))
    lane = lanes([config])
    attempts: list[float] = []
    flaky_attempts: list[float] = []

    @lane.handler("broken")
    def broken(_payload):
        attempts.append(time.monotonic())
        raise ConnectionError("down")

    @lane.handler("flaky")
    def flaky(_payload):
        flaky_attempts.append(time.monotonic())
        if len(flaky_attempts) < 3:
            raise ConnectionError("try again")
        return "ok"

    lane.start()
    events = lane.subscribe()
    future = lane.submit_async("api", "broken", {"n": 1})
    deadline = time.monotonic() + WAIT
    while not attempts and time.monotonic() < deadline:
        events.recv(0.5)  # each event is a chance to look: bounded
    assert attempts, "the command never ran"
    # Between attempts the command waits in Redis's delayed set, not in a thread.
    while lane.stats().total_delayed == 0 and len(attempts) == 1 and time.monotonic() < deadline:
        events.recv(0.1)
    with pytest.raises(RemoteCommandError, match="ConnectionError: down"):
        future.result(WAIT)
    assert len(attempts) == 3
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert all(gap >= delay - 0.02 for gap in gaps), gaps
    letters = lane.manager.dead_letters()
    assert [(d.command_id, d.command_type, d.lane_id, d.attempts) for d in letters] == [
        (future.command_id, "broken", "api", 3)]
    assert "ConnectionError: down" in letters[0].error
    assert lane.submit("api", "flaky", None) == "ok" and len(flaky_attempts) == 3
    stats = lane.stats()
    assert stats.lane("api").retried == 4 and stats.lane("api").dead_lettered == 1
    assert stats.dead_letter_count == 1
    keys = [e.key for e in events.drain()]
    for key in ("queue.command.retry", "queue.command.failed", "queue.command.dead_lettered"):
        assert key in keys


# ---- leases ----------------------------------------------------------------------------


def test_a_late_ack_after_the_lease_moved_is_rejected(redis_url, redis_queue):
    """Injected time: w1 claims c1, its lease runs out, w2's heartbeat reaps
    it (c1 back to the front), w2 runs c1; w1's ack comes late and is
    refused, so c1 completes exactly once and its submitter gets one result."""
    fns = functions(redis_url, redis_queue)
    from pylane.redis.connection import lane_config_json

    fns.register_lanes([lane_config_json("q", LaneConfig("q", 0, 0, 2), 0)], {}, now_ms=0)
    fns.join("w1", 2, [], 100, now_ms=0)
    fns.submit("c1", "q", "t", "1", "client", now_ms=1)
    fns.submit("c2", "q", "t", "2", "client", now_ms=2)
    first = fns.claim("w1", 1, [], now_ms=3)["claimed"][0]
    assert first["id"] == "c1"
    fns.join("w2", 2, [], 10_000, now_ms=50)
    assert fns.heartbeat("w2", 10_000, now_ms=200) == (True, 1)  # w1 reaped
    again = fns.claim("w2", 2, [], now_ms=201)["claimed"]
    assert [c["id"] for c in again] == ["c1", "c2"]  # c1 went back to the FRONT
    late = {"id": "c1", "lease": first["lease"], "status": "ok", "result": "\"w1\""}
    reply = fns.claim("w1", 0, [late], now_ms=202)
    assert reply["rejected"] == ["c1"] and reply["known"] is False
    ok = {"id": "c1", "lease": again[0]["lease"], "status": "ok", "result": "\"w2\""}
    assert fns.claim("w2", 0, [ok], now_ms=203)["rejected"] == []
    stats = fns.stats(now_ms=204)
    lane = stats["lanes"][0]
    assert (lane["completed"], lane["requeued"], stats["late_acks"]) == (1, 1, 1)
    results = fns.client.lrange(fns.key("results:client"), 0, -1)
    assert [json.loads(r)["result"] for r in results] == ["\"w2\""]


def test_a_command_that_loses_its_worker_too_often_becomes_a_dead_letter(redis_url,
                                                                        redis_queue):
    fns = functions(redis_url, redis_queue)
    from pylane.redis.connection import lane_config_json

    fns.register_lanes([lane_config_json("q", LaneConfig("q", 0, 0, 1), 0)],
                       {"max_lost": 2}, now_ms=0)
    fns.submit("c1", "q", "t", "1", "", now_ms=1)
    fns.join("reaper", 1, [], 10**9, now_ms=1)
    now = 10
    for round_ in range(2):
        fns.join(f"w{round_}", 1, [], 100, now_ms=now)
        assert [c["id"] for c in fns.claim(f"w{round_}", 1, [], now_ms=now)["claimed"]] == ["c1"]
        for _ in range(3):  # beats on time (no silence): w's lease runs out at +100
            now += 40
            fns.heartbeat("reaper", 10**9, now_ms=now)
    lane = fns.stats(now_ms=now)["lanes"][0]
    assert (lane["pending"], lane["requeued"], lane["dead_lettered"]) == (0, 1, 1)
    assert "lost its worker 2 times" in fns.dead_letters()[0]["error"]


# ---- configuration conflicts and bad input ---------------------------------------------


def test_a_conflicting_lane_config_names_the_field_and_writes_nothing(lanes, redis_url,
                                                                      redis_queue):
    lanes([LaneConfig("high", 0, 1, 4)]).start(worker=False)
    clash = lanes([LaneConfig("extra", 3, 0, 1), LaneConfig("high", 0, 1, 3)])
    with pytest.raises(LaneConfigConflictError) as caught:
        clash.start(worker=False)
    message = str(caught.value)
    assert "'high'" in message or '"high"' in message
    assert "max is 4 in Redis, 3 here" in message
    retry = lanes([LaneConfig("high", 0, 1, 4, retry_policy=RetryPolicy.fixed(1, 1))])
    with pytest.raises(LaneConfigConflictError, match="retry is none in Redis"):
        retry.start(worker=False)
    stored = functions(redis_url, redis_queue).stats()
    assert [lane["lane_id"] for lane in stored["lanes"]] == ["high"]  # "extra" not written


def test_queue_names_and_lane_ids_redis_cannot_key_fail_at_construction(redis_url):
    for bad in ("a{b}", "has space", "", "x" * 200, "tab\there"):
        with pytest.raises(InvalidConfigError, match="queue name"):
            Lane(redis=redis_url, queue=bad)
    with pytest.raises(InvalidConfigError, match="control character"):
        Lane([LaneConfig("bad\nlane", 0, 0, 1)], redis=redis_url, queue="ok")
    with pytest.raises(InvalidConfigError, match="give redis= too"):
        Lane(queue="orphan")


def test_unreachable_redis_fails_start_fast_with_the_url(redis_queue):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"redis://:secret@127.0.0.1:{port}/0"
    lane = Lane(redis=url, queue=redis_queue)
    began = time.monotonic()
    with pytest.raises(RedisConnectionError) as caught:
        lane.start()
    assert time.monotonic() - began < 5.0
    assert f"127.0.0.1:{port}" in str(caught.value) and "secret" not in str(caught.value)


def test_a_server_that_accepts_but_never_answers_fails_within_the_connect_timeout(
        redis_queue):
    from pylane.redis.connection import CONNECT_TIMEOUT

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)  # the kernel completes handshakes; nobody ever answers
        url = f"redis://127.0.0.1:{server.getsockname()[1]}/0"
        began = time.monotonic()
        with pytest.raises(RedisConnectionError, match="unreachable"):
            Lane(redis=url, queue=redis_queue).start()
        assert time.monotonic() - began < CONNECT_TIMEOUT + 2.0


# ---- the function library's version ------------------------------------------------------


@pytest.fixture
def own_redis(redis_server: Any) -> Any:
    """A server of the test's own: these tests replace the library. (It
    asks for the session's server only to be skipped where that is.)"""
    from redis_server import RedisServer

    with RedisServer() as server:
        yield server


def test_functions_of_another_version_give_a_clear_error(own_redis, redis_queue):
    import redis

    from pylane.redis.connection import library_source, library_versions

    version, _compatible = library_versions()
    newer = library_source().replace(f"local VERSION = {version}\n", "local VERSION = 999\n")
    client = redis.Redis.from_url(own_redis.url)
    client.function_load(newer)
    with pytest.raises(LibraryVersionError) as caught:
        Lane(redis=own_redis.url, queue=redis_queue).start()
    assert "version 999" in str(caught.value) and f"version {version} " in str(caught.value)
    client.close()


def test_an_older_compatible_library_is_replaced_in_place(own_redis, redis_queue,
                                                          monkeypatch):
    import redis

    from pylane.redis import connection

    current = connection.library_source()
    version, _compatible = connection.library_versions()
    client = redis.Redis.from_url(own_redis.url)
    client.function_load(current)
    upgraded = current.replace(f"local VERSION = {version}\n",
                               f"local VERSION = {version + 1}\n")
    monkeypatch.setattr(connection, "library_source", lambda: upgraded)
    lane = Lane(redis=own_redis.url, queue=redis_queue)
    try:
        lane.start(worker=False)
        assert int(client.fcall_ro("a3s_version", 0)) == version + 1
    finally:
        lane.manager.close()
        client.close()


def test_the_full_api_builder_takes_with_redis(redis_url, redis_queue):
    manager = (QueueManagerBuilder().with_lane("jobs", LaneConfig.new(0, 2), 1)
               .with_redis(redis_url, queue=redis_queue).build())
    manager.register_command("double", lambda payload: _Double(payload))
    manager.start()
    try:
        assert manager.submit("jobs", "double", 21).result(WAIT) == 42
        assert manager.run("jobs", "echo", {"x": 1}) == {"x": 1}
        with pytest.raises(InvalidArgumentError, match="not a function"):
            manager.submit("jobs", lambda: 1)
    finally:
        manager.shutdown()
        manager.drain(WAIT)


class _Double:
    def __init__(self, payload: int) -> None:
        self.payload = payload

    def execute(self) -> int:
        return self.payload * 2


def test_drain_waits_for_the_whole_queue(lanes):
    lane = lanes(two_lanes())
    gate = threading.Event()
    lane.register_handler("hold", lambda _p: gate.wait(WAIT) and "released")
    lane.start()
    future = lane.submit_async("low", "hold", None)
    from pylane import LaneTimeoutError

    with pytest.raises(LaneTimeoutError, match="1 active"):
        lane.drain(timeout_secs=0.3)
    gate.set()
    lane.drain(timeout_secs=WAIT)
    assert future.done() and future.result() == "released"  # set before drain returned


def test_the_readme_redis_example_runs(redis_url, redis_queue):
    import re
    import subprocess
    import sys
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("### Across machines: Redis"):]
    code = re.search(r"```py\n(.*?)```", section, flags=re.S).group(1)
    assert 'redis="redis://localhost:6379/0", queue="agents"' in code
    code = code.replace("redis://localhost:6379/0", redis_url).replace(
        'queue="agents"', f'queue="{redis_queue}"')
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("text for hi\n(WorkerStatus(")


def test_redis_lost_mid_run_workers_retry_and_say_so_submits_fail_clearly(redis_server,
                                                                          redis_queue,
                                                                          caplog):
    """Redis dies under a running worker and comes back (its AOF keeps the
    functions and the queue): the worker says so in the log and in local
    events, a submit meanwhile fails at once naming the URL and writes
    nothing, and the worker goes on once Redis answers again."""
    from redis_server import RedisServer

    server = RedisServer(("--appendonly", "yes", "--appendfsync", "always")).start()
    lane = Lane(two_lanes(), redis=server.url, queue=redis_queue)
    try:
        lane.start()
        assert lane.submit("high", "echo", 1) == 1
        stream = lane.subscribe_filtered(["queue.redis.disconnected",
                                          "queue.redis.reconnected"])
        server.kill()
        event = stream.recv(WAIT)  # idle slots were blocked in Redis: they notice at once
        assert event is not None and event.key == "queue.redis.disconnected"
        assert f"127.0.0.1:{server.port}" in event.payload["url"]
        began = time.monotonic()
        with pytest.raises(RedisConnectionError, match=f"127.0.0.1:{server.port}"):
            lane.submit_async("high", "echo", 2)
        assert time.monotonic() - began < 5.0
        assert "unreachable" in caplog.text and "retrying with back-off" in caplog.text
        server.restart()
        event = stream.recv(WAIT)
        assert event is not None and event.key == "queue.redis.reconnected"
        assert lane.submit("high", "echo", 3) == 3
        high = lane.stats().lane("high")
        assert (high.submitted, high.completed) == (2, 2)  # the failed submit left nothing
    finally:
        lane.manager.close()
        server.stop()


def test_a_timeout_is_enforced_by_the_worker_and_settled_in_redis(lanes):
    config = LaneConfig("slow", priority=0, min_concurrency=0, max_concurrency=1,
                        timeout_secs=0.2)
    lane = lanes([config])

    @lane.handler("spin")
    def spin(_payload):
        while True:  # pure Python: the timeout's interrupt stops it
            time.sleep(0.01)

    lane.start()
    stream = lane.subscribe_filtered(["queue.command.timeout"])
    began = time.monotonic()
    with pytest.raises(CommandTimeoutError):
        lane.submit("slow", "spin", None)
    assert time.monotonic() - began < 3.0
    assert stream.recv(WAIT).key == "queue.command.timeout"
    slow = lane.stats().lane("slow")
    assert (slow.timed_out, slow.failed, slow.active, slow.dead_lettered) == (1, 1, 0, 1)
    assert lane.submit("slow", "echo", "next") == "next"  # the slot came back


def test_a_rate_limited_lane_starts_each_command_when_its_token_is_due(lanes):
    from pylane import RateLimitConfig

    limited = LaneConfig("api", priority=0, min_concurrency=0, max_concurrency=8,
                         rate_limit=RateLimitConfig.new(3, 0.3))  # 3 at once, then 1 per 100 ms
    lane = lanes([limited, LaneConfig("other", priority=1, min_concurrency=0,
                                      max_concurrency=2)])
    starts: list[float] = []
    lane.register_handler("tick", lambda _p: starts.append(time.monotonic()))
    lane.start()
    began = time.monotonic()
    futures = [lane.submit_async("api", "tick", n) for n in range(6)]
    assert lane.submit("other", "echo", "not held up") == "not held up"
    for future in futures:
        future.result(WAIT)
    offsets = sorted(start - began for start in starts)
    assert offsets[2] < 0.09, offsets  # the burst
    for n in (3, 4, 5):  # then one per token: idle slots woke for each due token
        assert offsets[n] >= 0.1 * (n - 2) - 0.01, offsets
    assert offsets[5] < 1.0, offsets


def test_an_idle_worker_and_subscriber_send_redis_nothing(own_redis, redis_queue):
    """No polling: once idle, a worker's slots, its events reader and its
    results waiter all block inside Redis; only the heartbeat talks, once
    per lease / 3 (here 30 s / 3)."""
    import redis

    manager = (QueueManagerBuilder().with_lane("q", LaneConfig.new(0, 4), 0)
               .with_redis(own_redis.url, queue=redis_queue, lease=30.0).build())
    manager.start()
    admin = redis.Redis.from_url(own_redis.url)
    try:
        stream = manager.subscribe()
        assert manager.run("q", "echo", 1) == 1
        assert stream.recv(WAIT) is not None

        def processed() -> int:
            return int(admin.info("stats")["total_commands_processed"])

        time.sleep(0.2)  # let the slots that just finished block again
        before = processed()
        time.sleep(1.0)  # the measurement window: absence of traffic
        assert processed() - before <= 1  # the INFO call itself
    finally:
        manager.close()
        admin.close()


def test_handlers_registered_after_start_reach_the_workers_registration(redis_url,
                                                                        redis_queue):
    manager = (QueueManagerBuilder().with_lane("q", LaneConfig.new(0, 2), 0)
               .with_redis(redis_url, queue=redis_queue, lease=0.6).build())
    manager.start()
    try:
        assert manager.stats().workers[0].types == ()
        manager.queue().json_handlers["late"] = lambda payload: payload * 2
        deadline = time.monotonic() + WAIT
        while manager.stats().workers[0].types != ("late",):  # the next heartbeat (0.2 s)
            assert time.monotonic() < deadline, "the new handler was never registered"
            time.sleep(0.05)
        assert manager.run("q", "late", 21) == 42
    finally:
        manager.close()


def test_a_woken_slot_does_not_look_free_until_its_claim(redis_url, redis_queue):
    """A slot that took its wake token but has not claimed yet must not look
    free to the next submit's wake-up: that one belongs to another worker's
    idle slot (found by the Redis bench: with tokens counted by what was
    left in the wake list, a command waited beside an idle slot until the
    next submit)."""
    from pylane.redis.connection import lane_config_json

    fns = functions(redis_url, redis_queue)
    fns.register_lanes([lane_config_json("q", LaneConfig("q", 0, 0, 4), 0)], {}, now_ms=0)
    for wid in ("a", "b"):
        fns.join(wid, 1, [], 60_000, now_ms=0)
    fns.client.delete(fns.key("wake:a"), fns.key("wake:b"))
    fns.submit("one", "q", "t", "1", now_ms=1)
    woken = [wid for wid in ("a", "b") if fns.client.llen(fns.key(f"wake:{wid}"))]
    assert len(woken) == 1, "one submit wakes exactly one idle slot"
    first = woken[0]
    other = "b" if first == "a" else "a"
    fns.client.delete(fns.key(f"wake:{first}"))  # its slot read the token, claims next
    fns.submit("two", "q", "t", "2", now_ms=2)
    assert fns.client.llen(fns.key(f"wake:{first}")) == 0, "the woken slot was counted free"
    assert fns.client.llen(fns.key(f"wake:{other}")) == 1, "the other idle slot was not woken"
    assert [c["id"] for c in fns.claim(first, 1, [], now_ms=3)["claimed"]] == ["one"]
    assert [c["id"] for c in fns.claim(other, 1, [], now_ms=4)["claimed"]] == ["two"]
    # Its claim settled the count: once idle again it can be woken again.
    fns.client.delete(fns.key(f"wake:{first}"), fns.key(f"wake:{other}"))
    fns.claim(first, 1, [{"id": "one", "lease": fns.client.hget(fns.key("cmd:one"), "lease")
                          .decode(), "status": "ok", "result": "1"}], now_ms=5)
    fns.submit("three", "q", "t", "3", now_ms=6)
    assert fns.client.llen(fns.key(f"wake:{first}")) == 1


def test_submit_many_is_all_or_nothing(redis_url, redis_queue):
    from pylane.redis.connection import lane_config_json

    fns = functions(redis_url, redis_queue)
    fns.register_lanes([lane_config_json("q", LaneConfig("q", 0, 0, 4), 0)], {}, now_ms=0)
    with pytest.raises(LaneNotFoundError):
        fns.submit_many([("x1", "q", "t", "1"), ("x2", "nope", "t", "2")], now_ms=1)
    fns.submit("dup", "q", "t", "0", now_ms=1)
    with pytest.raises(InvalidArgumentError):
        fns.submit_many([("y1", "q", "t", "1"), ("dup", "q", "t", "2")], now_ms=2)
    assert fns.client.llen(fns.key("q:q")) == 1, "a refused batch wrote something"
    assert fns.client.exists(fns.key("cmd:x1"), fns.key("cmd:y1")) == 0
    assert fns.submit_many([(f"z{i}", "q", "t", str(i)) for i in range(3)], now_ms=3) == 3
    fns.join("w", 4, [], 60_000, now_ms=3)
    got = fns.claim("w", 4, [], now_ms=4)["claimed"]
    assert [c["id"] for c in got] == ["dup", "z0", "z1", "z2"], "FIFO across single and bulk"


def test_submit_many_queues_in_order_and_each_future_gets_its_result(lanes):
    lane = lanes([LaneConfig("one", priority=0, min_concurrency=0, max_concurrency=1)],
                 max_workers=1)
    seen: list[int] = []
    lane.register_handler("add", lambda payload: seen.append(payload["n"]) or payload["n"] + 1)
    lane.start()
    manager = lane.manager
    futures = manager.submit_many("one", [("add", {"n": n}) for n in range(1200)])
    assert [future.result(WAIT) for future in futures] == [n + 1 for n in range(1200)]
    assert seen == list(range(1200)), "a lane of max 1 ran the batch out of order"
    with pytest.raises(InvalidPayloadError):
        manager.submit_many("one", [("add", {"n": 1}), ("add", {"bad": {1, 2}})])
    with pytest.raises(LaneNotFoundError):
        manager.submit_many("nope", [("add", {"n": 1})])
    assert manager.stats().total_pending == 0, "a refused batch left commands behind"


def test_a_worker_acknowledges_many_commands_per_round_trip(lanes, monkeypatch):
    """One courier per process: each claim carries the acks of every
    command that finished since the last one and asks for every free slot,
    so under load a round trip serves several commands, not one."""
    from pylane.redis import connection

    calls: list[tuple[int, int]] = []
    real_claim = connection.Functions.claim

    def counting_claim(self: Any, worker_id: str, free: int, acks: list, **kw: Any) -> Any:
        reply = real_claim(self, worker_id, free, acks, **kw)
        calls.append((len(acks), len(reply["claimed"])))
        return reply

    monkeypatch.setattr(connection.Functions, "claim", counting_claim)
    lane = lanes([LaneConfig("work", priority=0, min_concurrency=0, max_concurrency=8)],
                 max_workers=8)
    lane.register_handler("noop", lambda payload: payload)
    lane.start()
    futures = lane.manager.submit_many("work", [("noop", n) for n in range(2000)])
    assert [future.result(WAIT) for future in futures] == list(range(2000))
    claimed = sum(got for _, got in calls)
    # (A submit that finds the worker idle leases it up to its 8 slots at
    # once: each of the 4 batches of 500 may have done so.)
    assert 2000 - 4 * 8 <= claimed <= 2000
    assert max(got for _, got in calls) > 1, "no claim ever took more than one command"
    assert max(acked for acked, _ in calls) > 1, "no claim ever carried more than one ack"
    assert len(calls) < 2000, f"{len(calls)} claims for 2000 commands: one round trip each"


def test_async_handlers_and_failing_handlers_in_a_worker(lanes):
    """Plain handlers run on the worker's slot threads, async ones on the
    local engine's event loop; a handler that raises (even SystemExit)
    fails its command and the slot lives on."""
    import asyncio

    lane = lanes([LaneConfig("w", priority=0, min_concurrency=0, max_concurrency=2)],
                 max_workers=2)

    async def doubled(payload: int) -> int:
        await asyncio.sleep(0.001)
        return payload * 2

    class Tripled:
        async def __call__(self, payload: int) -> int:
            return payload * 3

    def deferred(payload: int) -> Any:
        return doubled(payload + 1)  # a plain function returning a coroutine

    def exits(payload: Any) -> Any:
        raise SystemExit("handler called exit")

    for name, handler in (("double", doubled), ("triple", Tripled()), ("defer", deferred),
                          ("exit", exits), ("set", lambda payload: {1, 2})):
        lane.register_handler(name, handler)
    lane.start()
    manager = lane.manager
    assert manager.run("w", "double", 21) == 42
    assert manager.run("w", "triple", 5) == 15
    assert manager.run("w", "defer", 1) == 4
    for _ in range(3):  # more than the slots: each failure left its slot alive
        with pytest.raises(RemoteCommandError, match="SystemExit: handler called exit"):
            manager.run("w", "exit", None)
    with pytest.raises(RemoteCommandError, match="not JSON serializable"):
        manager.run("w", "set", None)
    assert manager.run("w", "echo", [1]) == [1]


def test_submit_many_fire_and_forget_sends_no_result_back(lanes):
    lane = lanes([LaneConfig("ff", priority=0, min_concurrency=0, max_concurrency=2)],
                 max_workers=2)
    ran = threading.Semaphore(0)
    lane.register_handler("tick", lambda payload: ran.release())
    lane.start()
    ids = lane.manager.submit_many("ff", [("tick", n) for n in range(50)], results=False)
    assert len(set(ids)) == 50 and all(isinstance(i, str) for i in ids)
    for _ in range(50):
        assert ran.acquire(timeout=WAIT), "a fire-and-forget command never ran"
    queue = lane.manager.queue()
    lane.manager.drain(WAIT)
    fns = queue.functions()
    assert fns.client.exists(fns.key(f"results:{queue.client_id}")) == 0
    assert queue._results.futures == {}


def test_one_stream_entry_per_call_and_subscribers_see_every_event_in_order(lanes):
    """A Lua call writes its events as one stream entry (one XADD); readers
    expand it, in order."""
    lane = lanes([LaneConfig("e", priority=0, min_concurrency=0, max_concurrency=1)])
    lane.start(worker=False)
    stream = lane.subscribe()
    queue = lane.manager.queue()
    fns = queue.functions()
    before = fns.client.xlen(fns.key("events"))
    ids = lane.manager.submit_many("e", [("t", n) for n in range(10)], results=False)
    assert fns.client.xlen(fns.key("events")) == before + 1
    seen = [stream.recv(WAIT) for _ in range(10)]
    assert [event.key for event in seen] == ["queue.command.submitted"] * 10
    assert [event.payload["command_id"] for event in seen] == ids


def test_lane_state_left_by_library_version_2_carries_over(redis_url, redis_queue):
    """Version 2 packed five numbers per lane in <base>:sched and kept
    dispatched / completed in the lane's hash; version 3 keeps those two in
    <base>:sched too (a claim then writes no counter of its own). A queue
    that version 2 left behind keeps its counts, and its state is written
    in the new form by the first call that changes it."""
    from pylane.redis.connection import lane_config_json

    fns = functions(redis_url, redis_queue)
    fns.register_lanes([lane_config_json("q", LaneConfig("q", 0, 0, 4), 0)], {}, now_ms=0)
    fns.join("w", 4, [], 60_000, now_ms=0)
    for number in range(3):
        fns.submit(f"c{number}", "q", "t", "1", now_ms=1 + number)
    held = fns.claim("w", 1, [], now_ms=5)["claimed"]
    # What version 2 would have left: the state without the counters, which
    # live in the lane's hash.
    sched = fns.client.hget(fns.key("sched"), "q").decode().split(" ")
    assert len(sched) == 7, sched
    fns.client.hset(fns.key("sched"), "q", " ".join(sched[:5]))
    fns.client.hset(fns.key("lane:q"), mapping={"dispatched": 40, "completed": 38})
    lane = fns.stats(now_ms=6)["lanes"][0]
    assert (lane["active"], lane["dispatched"], lane["completed"]) == (1, 40, 38)
    ack = {"id": held[0]["id"], "lease": held[0]["lease"], "status": "ok", "result": "1"}
    assert len(fns.claim("w", 2, [ack], now_ms=7)["claimed"]) == 2
    lane = fns.stats(now_ms=8)["lanes"][0]
    counts = (lane["active"], lane["pending"], lane["dispatched"], lane["completed"])
    assert counts == (2, 0, 42, 39)
    assert len(fns.client.hget(fns.key("sched"), "q").decode().split(" ")) == 7


def test_one_claim_takes_several_commands_of_a_lane_in_priority_and_fifo_order(redis_url,
                                                                               redis_queue):
    """A claim reads a lane's front commands several at a time and takes
    them off the list once, at its end: the commands it hands out, and
    those it leaves, are exactly the engine's picks in order."""
    from pylane.redis.connection import lane_config_json

    fns = functions(redis_url, redis_queue)
    fns.register_lanes([lane_config_json("hi", LaneConfig("hi", 0, 0, 3), 0),
                        lane_config_json("lo", LaneConfig("lo", 0, 0, 10), 1)], {}, now_ms=0)
    fns.join("w", 10, [], 60_000, now_ms=0)
    for number in range(5):
        fns.submit(f"lo{number}", "lo", "t", "1", now_ms=1)
        fns.submit(f"hi{number}", "hi", "t", "1", now_ms=1)
    first = [c["id"] for c in fns.claim("w", 6, [], now_ms=2)["claimed"]]
    # hi first, up to its max of 3; then lo in FIFO order.
    assert first == ["hi0", "hi1", "hi2", "lo0", "lo1", "lo2"]
    lanes = {lane["lane_id"]: lane for lane in fns.stats(now_ms=3)["lanes"]}
    assert (lanes["hi"]["pending"], lanes["lo"]["pending"]) == (2, 2)
    assert fns.client.lrange(fns.key("q:hi"), 0, -1) == [b"hi3", b"hi4"]
    assert fns.client.lrange(fns.key("q:lo"), 0, -1) == [b"lo3", b"lo4"]
    rest = [c["id"] for c in fns.claim("w", 4, [], now_ms=4)["claimed"]]
    assert rest == ["lo3", "lo4"]  # hi is at its max


COURIER = "pylane-redis-courier"


def test_quick_commands_run_on_the_courier_and_one_that_turns_slow_holds_up_nothing(lanes):
    """Commands of a type that lately took microseconds run on the
    courier's own thread (no hand-off to a slot thread). When one of them
    blocks there, the courier's job moves to a new thread within
    milliseconds: the commands claimed with it run on slot threads, and an
    urgent command submitted meanwhile runs at once."""
    lane = lanes(two_lanes(), max_workers=6)
    ran_on: list[str] = []
    blocked, release = threading.Event(), threading.Event()

    def flip(payload: str) -> str:
        ran_on.append(threading.current_thread().name)
        if payload == "block":
            blocked.set()
            release.wait(WAIT)
        return payload

    lane.register_handler("flip", flip)
    lane.register_handler("urgent", lambda _payload: "now")
    lane.start()
    manager = lane.manager
    try:
        for _ in range(200):  # the type is learnt quick within a few commands
            assert manager.run("low", "flip", "quick") == "quick"
            if ran_on[-1] == COURIER:
                break
        assert ran_on[-1] == COURIER, ran_on
        batch = manager.submit_many("high", [("flip", "block")] + [("flip", "q")] * 3)
        assert blocked.wait(WAIT)
        assert ran_on[ran_on.index(COURIER, len(ran_on) - 4)] == COURIER  # blocked there
        assert [future.result(2.0) for future in batch[1:]] == ["q"] * 3
        assert manager.submit("high", "urgent", None).result(2.0) == "now"
    finally:
        release.set()
    assert batch[0].result(WAIT) == "block"
    assert manager.run("low", "flip", "after") == "after"  # and the old courier ended well


def test_a_quick_handler_that_raises_fails_its_command_only(lanes):
    """A handler that raises at once (even SystemExit) is as quick as any:
    once its type runs on the courier's thread, each failure still fails its
    command only and the courier goes on."""
    lane = lanes([LaneConfig("w", priority=0, min_concurrency=0, max_concurrency=2)],
                 max_workers=2)
    ran_on: list[str] = []

    def exits(_payload: Any) -> Any:
        ran_on.append(threading.current_thread().name)
        raise SystemExit("handler called exit")

    lane.register_handler("exit", exits)
    lane.start()
    for _ in range(30):
        with pytest.raises(RemoteCommandError, match="SystemExit: handler called exit"):
            lane.manager.run("w", "exit", None)
    assert COURIER in ran_on
    assert lane.manager.run("w", "echo", [1]) == [1]


def test_stress_quick_commands_that_sometimes_stall_all_finish_once(lanes, caplog):
    """A type that is quick as a rule and now and then stalls (blocks for
    3-6 ms): 1,500 commands over 6 slots, submitted in bursts. The courier's
    job moves between threads many times; every command still runs exactly
    once and every result comes back."""
    import logging
    import random

    lane = lanes([LaneConfig("w", priority=0, min_concurrency=0, max_concurrency=6)],
                 max_workers=6)
    seen: dict[int, int] = {}
    seen_lock = threading.Lock()
    stalls = random.Random(7)
    stall_at = {n for n in range(1500) if stalls.random() < 0.03}

    def work(number: int) -> int:
        with seen_lock:
            seen[number] = seen.get(number, 0) + 1
        if number in stall_at:
            time.sleep(0.003 + 0.003 * (number % 2))
        return number * 2

    lane.register_handler("work", work)
    lane.start()
    caplog.set_level(logging.DEBUG, logger="pylane.redis")
    futures = []
    for start in range(0, 1500, 100):
        futures += lane.manager.submit_many("w", [("work", n) for n in range(start, start + 100)])
    assert [future.result(WAIT) for future in futures] == [n * 2 for n in range(1500)]
    assert all(seen[n] == 1 for n in range(1500)) and len(seen) == 1500
    handovers = [r for r in caplog.records if "takes over the courier's job" in r.getMessage()]
    assert handovers, "no stall was long enough to hand the courier's job over"


def test_when_no_new_watch_can_start_quick_commands_go_to_slot_threads(lanes):
    """The hand-over starts a new watch thread first; a process out of
    threads cannot, and then no command runs on the courier unwatched:
    quick ones go to the slot threads, and every command still runs."""
    lane = lanes([LaneConfig("w", priority=0, min_concurrency=0, max_concurrency=3)],
                 max_workers=3)
    ran_on: list[str] = []
    release = threading.Event()

    def flip(payload: str) -> str:
        ran_on.append(threading.current_thread().name)
        if payload == "block":
            release.wait(WAIT)
        return payload

    lane.register_handler("flip", flip)
    lane.start()
    slot = lane.manager._queue._worker._slot

    def out_of_threads() -> None:
        raise RuntimeError("can't start new thread")

    slot._spawn_watch = out_of_threads
    manager = lane.manager
    try:
        for _ in range(200):
            manager.run("w", "flip", "quick")
            if ran_on[-1] == COURIER:
                break
        assert ran_on[-1] == COURIER
        blocked = manager.submit("w", "flip", "block")
        assert manager.submit("w", "flip", "q").result(2.0) == "q"  # the hand-over went on
    finally:
        release.set()
    assert blocked.result(WAIT) == "block"
    del ran_on[:]
    assert [manager.run("w", "flip", "after") for _ in range(20)] == ["after"] * 20
    assert COURIER not in ran_on, ran_on


def test_the_per_type_caches_stay_bounded_whatever_types_come(lanes):
    """Command types come from whoever submits (an unknown one is echoed):
    the worker's per-type caches (handler kind, how quick) stay bounded."""
    from pylane.redis import runner

    lane = lanes([LaneConfig("w", priority=0, min_concurrency=0, max_concurrency=4)],
                 max_workers=4)
    lane.start()
    kinds = runner.TYPES_CACHED + 50
    futures = lane.manager.submit_many("w", [(f"type-{n}", n) for n in range(kinds)])
    assert [future.result(WAIT) for future in futures] == list(range(kinds))
    worker_runner = lane.manager._queue._worker._runner
    assert len(worker_runner._speed) <= runner.TYPES_CACHED
    assert len(worker_runner._kinds) <= runner.TYPES_CACHED


def test_a_submit_to_an_idle_worker_leases_it_the_command_at_once(lanes, monkeypatch):
    """A worker joins as "direct": a submit that finds it idle leases it the
    command itself and leaves the command's record in the worker's wake
    list, so the command starts with no claim round trip in between (one
    round trip fewer on every urgent start)."""
    from pylane.redis import connection

    claims_sent: list[float] = []
    real_claim = connection.Functions.claim

    def timed_claim(self: Any, worker_id: str, free: int, acks: list, **kw: Any) -> Any:
        claims_sent.append(time.monotonic())
        return real_claim(self, worker_id, free, acks, **kw)

    monkeypatch.setattr(connection.Functions, "claim", timed_claim)
    lane = lanes([LaneConfig("w", priority=0, min_concurrency=0, max_concurrency=2)],
                 max_workers=2)
    started: list[float] = []
    lane.register_handler("mark", lambda payload: started.append(time.monotonic()) or payload)
    lane.start()
    manager = lane.manager
    for number in range(5):
        submitted = time.monotonic()
        assert manager.run("w", "mark", number) == number
        between = [at for at in claims_sent if submitted < at < started[-1]]
        assert not between, f"command {number} started only after a claim"
    stats = lane.stats()
    assert stats.lane("w").completed == 5


def test_a_command_whose_wake_read_reply_was_lost_is_adopted(lanes, caplog):
    """A submit leased an idle worker a command and left its record in the
    worker's wake list; the blocking read that took it lost its reply (the
    connection broke). Redis holds the command as the worker's: the worker
    finds it after its next claim and runs it, once."""
    import logging

    import redis

    lane = lanes([LaneConfig("w", priority=0, min_concurrency=0, max_concurrency=2)],
                 max_workers=2)
    runs: list[str] = []
    lane.register_handler("job", lambda payload: runs.append(payload) or payload)
    lane.start()
    worker = lane.manager._queue._worker
    real_read = worker._blocking.blmpop
    lost: list[bytes] = []

    def lossy_read(*args: Any, **kwargs: Any) -> Any:
        popped = real_read(*args, **kwargs)
        if not lost and popped and any(item[:1] == b"{" for item in popped[1]):
            lost.extend(popped[1])
            raise redis.ConnectionError("the reply was lost")
        return popped

    worker._blocking.blmpop = lossy_read
    caplog.set_level(logging.WARNING, logger="pylane.redis")
    # The read blocked before the patch returns this one as usual; the next
    # read is the lossy one.
    assert lane.manager.run("w", "job", "first") == "first"
    assert lane.manager.submit("w", "job", "lost").result(WAIT) == "lost"
    assert lost, "no command record was taken by a failed read"
    assert runs.count("lost") == 1
    assert any("reply was lost; running it" in r.getMessage() for r in caplog.records)
