"""Replays every tests/scenarios/*.scn file through the Redis Lua functions
(pylane/redis/lanes.lua) and expects the C engine's dispatch order.

Time is injected: each function gets the scenario's clock as ``now_ms`` (in
production Redis TIME is used). The scenario's ``workers N`` becomes fake
workers whose slots add up to N (two of them when N >= 2, claiming in turn,
one slot at a time, so the order cannot depend on which worker asks);
``workers 0`` (unbounded) becomes one worker with more slots than any
scenario runs. The fake workers handle no command type, so every type is
one no live worker handles, which any worker may run, as in one process.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Optional

import pytest
from test_scenarios import (
    GOOD,
    SCENARIOS,
    STATS_KEYS,
    Replayer,
    ScenarioError,
    Ticket,
    replay_text,
)

UNBOUNDED_SLOTS = 1_000_000
LEASE_MS = 10**12  # the scenario clock never reaches it: no worker expires


class RedisReplayer(Replayer):
    """Drives pylane.redis.connection.Functions instead of the engine."""

    functions: Any = None  # set by the fixture below (one client per test)

    def __init__(self) -> None:
        super().__init__()
        self.fns: Any = None
        self.worker_slots: dict[str, int] = {}
        self.held: dict[str, list[str]] = {}  # worker -> running ticket names
        self.leases: dict[str, tuple[str, str]] = {}  # ticket name -> (worker, lease)

    def run(self, command: str, args: list[str]) -> None:
        if command != "workers" and self.fns is None:
            self.fns = RedisReplayer.functions(f"scn-{uuid.uuid4().hex[:12]}")
            self.engine = self  # replay_text checks that something was set up
            if self.workers == 0:
                self.worker_slots = {"w1": UNBOUNDED_SLOTS}
            elif self.workers == 1:
                self.worker_slots = {"w1": 1}
            else:
                self.worker_slots = {"w1": (self.workers + 1) // 2, "w2": self.workers // 2}
            self.held = {name: [] for name in self.worker_slots}
        if command == "workers":
            super().run(command, args)
            return
        handler = {
            "lane": self.cmd_lane,
            "submit": self.cmd_submit,
            "dispatch": self.cmd_dispatch,
            "complete": lambda a: self.cmd_finish(a, "ok"),
            "fail": lambda a: self.cmd_finish(a, "error"),
            "cancel": self.cmd_cancel,
            "pause": lambda a: self.cmd_pause_resume(a, pause=True),
            "resume": lambda a: self.cmd_pause_resume(a, pause=False),
            "stats": self.cmd_stats,
        }.get(command)
        if handler is None:
            raise ScenarioError(f"unknown command {command!r}")
        handler(args)

    def joined(self) -> None:
        """Workers join once the lanes exist (a worker's slots must cover
        the lanes' reservations, checked at join)."""
        if getattr(self, "_joined", False):
            return
        self._joined = True
        for name, slots in self.worker_slots.items():
            self.fns.join(name, slots, [], LEASE_MS, now_ms=self.now)

    def add_lane(self, name: str, priority: int, minimum: int, maximum: int) -> int:
        from pylane import LaneConfig
        from pylane.redis.connection import lane_config_json

        config = LaneConfig(name, priority, minimum, maximum)
        added = self.fns.register_lanes([lane_config_json(name, config, priority)], {},
                                        now_ms=self.now)
        if added != 1:
            raise ScenarioError(f"register_lanes added {added} lanes, expected 1")
        return len(self.lanes)

    def submit_ticket(self, ticket: Ticket, lane_name: str) -> None:
        got = self.fns.submit(ticket.name, lane_name, "scenario", "null", now_ms=self.now)
        if got != ticket.name:
            raise ScenarioError(f"submit({ticket.name}) returned {got!r}")

    def claim_one(self, worker: str) -> Optional[dict[str, Any]]:
        if len(self.held[worker]) >= self.worker_slots[worker]:
            return None
        reply = self.fns.claim(worker, 1, [], now_ms=self.now)
        if not reply["known"]:
            raise ScenarioError(f"worker {worker} is not registered")
        claimed = reply["claimed"]
        if len(claimed) > 1:
            raise ScenarioError(f"claim with 1 free slot returned {len(claimed)} commands")
        return claimed[0] if claimed else None

    def cmd_dispatch(self, expected: list[str]) -> None:
        self.joined()
        position = 0
        workers = list(self.worker_slots)
        turn = 0
        idle_in_a_row = 0
        while idle_in_a_row < len(workers):
            worker = workers[turn % len(workers)]
            turn += 1
            got = self.claim_one(worker)
            if got is None:
                idle_in_a_row += 1
                continue
            idle_in_a_row = 0
            name = got["id"]
            if position >= len(expected):
                raise ScenarioError(f"dispatch #{position + 1}: expected nothing more, "
                                    f"got {name} (lane {got['lane']})")
            want = self.ticket(expected[position])
            if name != want.name:
                raise ScenarioError(f"dispatch #{position + 1}: expected {want.name}, "
                                    f"got {name} (lane {got['lane']})")
            lane_name = next(n for n, i in self.lanes.items() if i == want.lane)
            if got["lane"] != lane_name:
                raise ScenarioError(f"dispatch #{position + 1}: {want.name} came from lane "
                                    f"{got['lane']}, submitted to lane {lane_name}")
            if float(got["enq"]) != want.submitted_ns:
                raise ScenarioError(f"dispatch #{position + 1}: {want.name} enqueued at "
                                    f"{got['enq']}, submitted at {want.submitted_ns}")
            want.state = "running"
            self.held[worker].append(name)
            self.leases[name] = (worker, got["lease"])
            position += 1
        if position < len(expected):
            raise ScenarioError(
                f"dispatch #{position + 1}: expected {expected[position]}, got nothing")

    def cmd_finish(self, args: list[str], status: str) -> None:
        if not args:
            raise ScenarioError("usage: complete|fail <ticket> [...]")
        for name in args:
            ticket = self.ticket(name)
            if ticket.state != "running":
                raise ScenarioError(f"scenario error: {name} is not running")
            worker, lease = self.leases.pop(name)
            ack = {"id": name, "lease": lease, "status": status, "result": "null",
                   "error": "failed"}
            reply = self.fns.claim(worker, 0, [ack], now_ms=self.now)
            if reply["rejected"] or reply["claimed"]:
                raise ScenarioError(f"ack of {name}: rejected {reply['rejected']}, "
                                    f"claimed {reply['claimed']}")
            self.held[worker].remove(name)
            ticket.state = "done"

    def cmd_cancel(self, args: list[str]) -> None:
        if len(args) != 2 or args[1] not in ("yes", "no"):
            raise ScenarioError("usage: cancel <ticket> yes|no")
        ticket = self.ticket(args[0])
        want = args[1] == "yes"
        got = self.fns.cancel(ticket.name, now_ms=self.now)
        if got != want:
            raise ScenarioError(f"cancel({ticket.name}) returned {int(got)}, "
                                f"expected {int(want)}")
        if got:
            ticket.state = "cancelled"

    def cmd_pause_resume(self, args: list[str], pause: bool) -> None:
        if len(args) != 1:
            raise ScenarioError("usage: pause|resume <lane>")
        self.lane(args[0])
        (self.fns.pause if pause else self.fns.resume)(args[0], now_ms=self.now)

    def cmd_stats(self, args: list[str]) -> None:
        if len(args) < 2:
            raise ScenarioError("usage: stats <lane> <key>=<n> ...")
        self.lane(args[0])
        lanes = {s["lane_id"]: s for s in self.fns.stats(now_ms=self.now)["lanes"]}
        stats = lanes[args[0]]
        for pair in args[1:]:
            key, sep, value = pair.partition("=")
            if not sep:
                raise ScenarioError(f"expected key=value, got {pair!r}")
            want = self.number(value)
            if key not in STATS_KEYS:
                raise ScenarioError(f"unknown stats key {key!r}")
            got = int(stats[key])
            if got != want:
                raise ScenarioError(f"stats {args[0]}: {key} is {got}, expected {want}")


@pytest.fixture
def redis_functions(redis_url: str) -> Any:
    from pylane.redis.connection import Functions, ensure_library, open_client

    client = open_client(redis_url)
    ensure_library(client, redis_url)
    RedisReplayer.functions = lambda queue: Functions(client, redis_url, queue)
    yield RedisReplayer.functions
    RedisReplayer.functions = None
    client.close()


@pytest.mark.parametrize("path", SCENARIOS, ids=[path.stem for path in SCENARIOS])
def test_scenario_through_the_redis_functions(redis_functions, path: Path):
    replay_text(path.read_text(encoding="ascii"), path.name, RedisReplayer)


@pytest.mark.parametrize(("text", "line", "words"), [
    (GOOD + "dispatch t2\n", 5, "expected t2, got nothing"),
    (GOOD.replace("dispatch t1", "dispatch t2"), 4, "expected t2, got t1"),
    (GOOD + "complete t1\ndispatch\n", 6, "expected nothing more, got t2"),
    (GOOD + "stats a pending=2\n", 5, "pending is 1, expected 2"),
    (GOOD + "cancel t1 yes\n", 5, "cancel(t1) returned 0"),
    (GOOD + "lane b 0 2 1\n", 5, "add_lane(0, 2, 1) raised"),
], ids=["missing-dispatch", "wrong-order", "extra-dispatch", "stats-mismatch",
        "cancel-mismatch", "refuses-lane"])
def test_redis_replayer_reports_file_and_line(redis_functions, text, line, words):
    with pytest.raises(AssertionError) as caught:
        replay_text(text, "broken.scn", RedisReplayer)
    message = str(caught.value)
    assert message.startswith(f"broken.scn:{line}: "), message
    assert words in message, message


# ---- the time-dependent rules, against the C engine itself --------------------------
#
# The .scn files inject no rate limits or boosts. Here random runs of submits,
# dispatches, completions, cancels, pauses and clock steps go through the C
# engine (clock injected in ns) and the Lua functions (the same clock in ms)
# side by side, and every dispatch must agree: rate limits (token buckets,
# throttling, release at the next token), deadline boosts, reservations.


def _random_run(seed: int, fns: Any) -> None:
    import json
    import random

    from pylane import LaneConfig
    from pylane._lane_core import ffi, lib
    from pylane._runtime.engine import Engine
    from pylane.redis.connection import lane_config_json

    rng = random.Random(seed)
    workers = rng.randint(2, 6)
    engine = Engine(workers)
    lanes: list[str] = []
    min_left = workers
    for index in range(rng.randint(2, 4)):
        name = f"l{index}"
        priority = rng.randint(0, 5)
        minimum = rng.randint(0, min(1, min_left))
        min_left -= minimum
        maximum = rng.randint(max(1, minimum), 3)
        config = LaneConfig(name, priority, minimum, maximum)
        spec = json.loads(lane_config_json(name, config, priority))
        assert engine.add_lane(priority, minimum, maximum) == index
        if rng.random() < 0.5:
            burst, window_ms = rng.randint(1, 3), rng.randint(20, 300)
            lib.lc_lane_set_rate_limit(engine.ptr, index, burst, window_ms * 1_000_000)
            spec["rate"] = {"max": burst, "window_ms": window_ms}
        if rng.random() < 0.5:
            deadline = rng.randint(50, 600)
            windows = sorted({(rng.randint(1, deadline), rng.randint(1, 4)) for _ in range(2)},
                             key=lambda w: -w[0])
            before = ffi.new("uint64_t[]", [w[0] * 1_000_000 for w in windows])
            amounts = ffi.new("int32_t[]", [w[1] for w in windows])
            lib.lc_lane_set_boost(engine.ptr, index, deadline * 1_000_000, before, amounts,
                                  len(windows))
            spec["boost"] = {"deadline_ms": deadline, "windows": [list(w) for w in windows]}
        lanes.append(name)
        fns.register_lanes([json.dumps(spec)], {}, now_ms=0)
    base = lib.lc_now_ns()  # after the buckets were filled (they start full)
    fns.join("w", workers, [], LEASE_MS, now_ms=0)

    now = 0
    next_id = 0
    lane_of: dict[int, int] = {}
    pending: list[int] = []
    running: dict[int, str] = {}  # ticket -> lease
    out = ffi.new("lc_dispatch *")
    log: list[str] = []
    for step in range(120):
        op = rng.random()
        if op < 0.35:
            index = rng.randrange(len(lanes))
            now += rng.randint(0, 3)
            next_id += 1
            lane_of[next_id] = index
            pending.append(next_id)
            engine.submit(index, next_id, base + now * 1_000_000)
            fns.submit(str(next_id), lanes[index], "t", "null", now_ms=now)
            log.append(f"{now}: submit {next_id} to {lanes[index]}")
        elif op < 0.5:
            now += rng.randint(0, 120)
        elif op < 0.75:
            c_order = []
            while lib.lc_try_next(engine.ptr, base + now * 1_000_000, out) == lib.LC_DISPATCHED:
                c_order.append(int(out.ticket))
            reply = fns.claim("w", workers, [], now_ms=now)
            lua_order = [int(c["id"]) for c in reply["claimed"]]
            log.append(f"{now}: dispatch C {c_order} Lua {lua_order}")
            assert lua_order == c_order, f"seed {seed} step {step}:\n" + "\n".join(log[-25:])
            for command in reply["claimed"]:
                ticket = int(command["id"])
                running[ticket] = command["lease"]
                pending.remove(ticket)
        elif op < 0.88 and running:
            ticket = rng.choice(sorted(running))
            ok = rng.random() < 0.7
            engine.complete(lane_of[ticket],
                            lib.LC_OUTCOME_COMPLETED if ok else lib.LC_OUTCOME_FAILED)
            ack = {"id": str(ticket), "lease": running.pop(ticket),
                   "status": "ok" if ok else "error", "result": "null", "error": "x"}
            assert fns.claim("w", 0, [ack], now_ms=now)["rejected"] == []
            log.append(f"{now}: {'complete' if ok else 'fail'} {ticket}")
        elif op < 0.94 and pending:
            ticket = rng.choice(pending)
            assert engine.cancel(lane_of[ticket], ticket) is True
            assert fns.cancel(str(ticket), now_ms=now) is True
            pending.remove(ticket)
            log.append(f"{now}: cancel {ticket}")
        else:
            index = rng.randrange(len(lanes))
            if rng.random() < 0.5:
                engine.pause(index)
                fns.pause(lanes[index], now_ms=now)
                log.append(f"{now}: pause {lanes[index]}")
            else:
                engine.resume(index)
                fns.resume(lanes[index], now_ms=now)
                log.append(f"{now}: resume {lanes[index]}")


@pytest.mark.parametrize("seed", range(40))
def test_rate_limits_boosts_and_reservations_match_the_c_engine(redis_functions, seed):
    _random_run(seed, RedisReplayer.functions(f"diff-{seed}-{uuid.uuid4().hex[:8]}"))
