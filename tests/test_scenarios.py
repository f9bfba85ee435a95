"""Replays every tests/scenarios/*.scn file against ``pylane._runtime.engine.Engine``.

The format is specified in tests/scenarios/README.md; the C replayer
(tests/c/test_scenarios.c) and the Node one follow the same rules. A failure
reads ``<file>.scn:<line>: <what was expected and what happened>``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from pylane._lane_core import ffi, lib
from pylane._runtime.engine import Engine
from pylane.distributed.protocol import CommandEnvelope, LeastLoadedPartitioner
from pylane.distributed.scheduler import Entry, LaneSpec, PartitionState, Scheduler
from pylane.errors import LaneError

SCENARIO_DIR = Path(__file__).parent / "scenarios"
SCENARIOS = sorted(SCENARIO_DIR.glob("*.scn"))
STATS_KEYS = ("pending", "active", "submitted", "dispatched", "completed", "failed",
              "cancelled", "paused")
NUMBER = re.compile(r"[0-9]+")
INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1


class ScenarioError(Exception):
    """A failed check or a malformed line; carries the line number."""


@dataclass
class Ticket:
    name: str
    lane: int
    id: int
    submitted_ns: int
    state: str = "pending"  # pending, running, done, cancelled


class Replayer:
    def __init__(self) -> None:
        self.engine: Optional[Engine] = None
        self.workers = 0
        self.lanes: dict[str, int] = {}
        self.tickets: dict[str, Ticket] = {}
        self.by_id: dict[int, Ticket] = {}
        self.now = 0
        self.commands_seen = 0

    # ---- parsing helpers -----------------------------------------------------

    @staticmethod
    def number(text: Optional[str], limit: int = 2**64 - 1) -> int:
        if text is None:
            raise ScenarioError("missing number")
        if not NUMBER.fullmatch(text):
            raise ScenarioError(f"not a non-negative number: {text!r}")
        value = int(text)
        if value > limit:
            raise ScenarioError(f"number too large: {text!r}")
        return value

    @staticmethod
    def name(text: Optional[str]) -> str:
        if text is None:
            raise ScenarioError("missing name")
        if "=" in text:
            raise ScenarioError(f"'=' in name {text!r}")
        return text

    def lane(self, name: Optional[str]) -> int:
        if name is None:
            raise ScenarioError("missing lane name")
        if name not in self.lanes:
            raise ScenarioError(f"unknown lane {name!r}")
        return self.lanes[name]

    def ticket(self, name: Optional[str]) -> Ticket:
        if name is None:
            raise ScenarioError("missing ticket name")
        if name not in self.tickets:
            raise ScenarioError(f"unknown ticket {name!r}")
        return self.tickets[name]

    # ---- commands ------------------------------------------------------------

    def run(self, command: str, args: list[str]) -> None:
        if command == "workers":
            self.cmd_workers(args)
            return
        if self.engine is None:
            self.engine = Engine(self.workers)
        handler = {
            "lane": self.cmd_lane,
            "submit": self.cmd_submit,
            "dispatch": self.cmd_dispatch,
            "complete": lambda a: self.cmd_finish(a, lib.LC_OUTCOME_COMPLETED),
            "fail": lambda a: self.cmd_finish(a, lib.LC_OUTCOME_FAILED),
            "cancel": self.cmd_cancel,
            "pause": lambda a: self.cmd_pause_resume(a, pause=True),
            "resume": lambda a: self.cmd_pause_resume(a, pause=False),
            "stats": self.cmd_stats,
        }.get(command)
        if handler is None:
            raise ScenarioError(f"unknown command {command!r}")
        handler(args)

    def cmd_workers(self, args: list[str]) -> None:
        if self.commands_seen > 0:
            raise ScenarioError("'workers' must be the first command")
        if len(args) != 1:
            raise ScenarioError("usage: workers <n>")
        self.workers = self.number(args[0], UINT32_MAX)

    def cmd_lane(self, args: list[str]) -> None:
        if len(args) != 4:
            raise ScenarioError("usage: lane <name> <priority> <min> <max>")
        name = self.name(args[0])
        priority, minimum, maximum = (self.number(a, UINT32_MAX) for a in args[1:])
        if name in self.lanes:
            raise ScenarioError(f"lane {name!r} declared twice")
        if priority > INT32_MAX:
            raise ScenarioError(f"priority too large: {priority}")
        expected = len(self.lanes)
        try:
            index = self.add_lane(name, priority, minimum, maximum)
        except LaneError as error:
            raise ScenarioError(
                f"add_lane({priority}, {minimum}, {maximum}) raised {error}") from error
        if index != expected:
            raise ScenarioError(f"add_lane returned index {index}, expected {expected}")
        self.lanes[name] = index

    def add_lane(self, name: str, priority: int, minimum: int, maximum: int) -> int:
        """Adds a checked lane to the system under test; its index. (The
        one step the replayers of other backends override.)"""
        return self.engine.add_lane(priority, minimum, maximum)

    def cmd_submit(self, args: list[str]) -> None:
        if len(args) < 2:
            raise ScenarioError("usage: submit <lane> <ticket> [<ticket> ...]")
        lane = self.lane(args[0])
        for raw in args[1:]:
            name = self.name(raw)
            if name in self.tickets:
                raise ScenarioError(f"ticket {name!r} submitted twice")
            self.now += 1
            ticket = Ticket(name, lane, len(self.tickets) + 1, self.now)
            self.submit_ticket(ticket, args[0])
            self.tickets[name] = ticket
            self.by_id[ticket.id] = ticket

    def submit_ticket(self, ticket: Ticket, lane_name: str) -> None:
        """Submits one checked ticket to the system under test (the other
        step the replayers of other backends override)."""
        try:
            self.engine.submit(ticket.lane, ticket.id, self.now)
        except LaneError as error:
            raise ScenarioError(f"submit({ticket.name}) raised {error}") from error

    def cmd_dispatch(self, expected: list[str]) -> None:
        out = ffi.new("lc_dispatch *")
        position = 0
        while True:
            # Engine.try_next returns (lane, ticket) only; the raw call also
            # gives enqueued_ns, which the format checks.
            rc = lib.lc_try_next(self.engine.ptr, self.now, out)
            if rc == lib.LC_NONE:
                if position < len(expected):
                    raise ScenarioError(
                        f"dispatch #{position + 1}: expected {expected[position]}, got nothing")
                return
            if rc != lib.LC_DISPATCHED:
                raise ScenarioError(f"lc_try_next returned {rc}")
            got = self.by_id.get(out.ticket)
            got_name = got.name if got else f"unknown id {out.ticket}"
            if position >= len(expected):
                raise ScenarioError(f"dispatch #{position + 1}: expected nothing more, "
                                    f"got {got_name} (lane {out.lane})")
            want = self.ticket(expected[position])
            if out.ticket != want.id:
                raise ScenarioError(f"dispatch #{position + 1}: expected {want.name}, "
                                    f"got {got_name} (lane {out.lane})")
            if out.lane != want.lane:
                raise ScenarioError(f"dispatch #{position + 1}: {want.name} came from lane "
                                    f"{out.lane}, submitted to lane {want.lane}")
            if out.enqueued_ns != want.submitted_ns:
                raise ScenarioError(f"dispatch #{position + 1}: {want.name} enqueued_ns "
                                    f"{out.enqueued_ns}, submitted at {want.submitted_ns}")
            want.state = "running"
            position += 1

    def cmd_finish(self, args: list[str], outcome: int) -> None:
        if not args:
            raise ScenarioError("usage: complete|fail <ticket> [...]")
        for name in args:
            ticket = self.ticket(name)
            if ticket.state != "running":
                raise ScenarioError(f"scenario error: {name} is not running")
            try:
                self.engine.complete(ticket.lane, outcome)
            except LaneError as error:
                raise ScenarioError(f"complete(lane of {name}) raised {error}") from error
            ticket.state = "done"

    def cmd_cancel(self, args: list[str]) -> None:
        if len(args) != 2 or args[1] not in ("yes", "no"):
            raise ScenarioError("usage: cancel <ticket> yes|no")
        ticket = self.ticket(args[0])
        want = args[1] == "yes"
        got = self.engine.cancel(ticket.lane, ticket.id)
        if got != want:
            raise ScenarioError(f"cancel({ticket.name}) returned {int(got)}, "
                                f"expected {int(want)}")
        if got:
            ticket.state = "cancelled"

    def cmd_pause_resume(self, args: list[str], pause: bool) -> None:
        if len(args) != 1:
            raise ScenarioError("usage: pause|resume <lane>")
        lane = self.lane(args[0])
        try:
            (self.engine.pause if pause else self.engine.resume)(lane)
        except LaneError as error:
            verb = "pause" if pause else "resume"
            raise ScenarioError(f"{verb}({args[0]}) raised {error}") from error

    def cmd_stats(self, args: list[str]) -> None:
        if len(args) < 2:
            raise ScenarioError("usage: stats <lane> <key>=<n> ...")
        lane = self.lane(args[0])
        stats = self.engine.lane_stats(lane)
        for pair in args[1:]:
            key, sep, value = pair.partition("=")
            if not sep:
                raise ScenarioError(f"expected key=value, got {pair!r}")
            want = self.number(value)
            if key not in STATS_KEYS:
                raise ScenarioError(f"unknown stats key {key!r}")
            got = int(getattr(stats, key))
            if got != want:
                raise ScenarioError(f"stats {args[0]}: {key} is {got}, expected {want}")


def tokens_of(line: str) -> list[str]:
    return line.split("#", 1)[0].split()


def replay_text(text: str, label: str, replayer_class: type[Replayer] = Replayer) -> None:
    """Replays one scenario; raises AssertionError '<label>:<line>: ...'.
    ``replayer_class``: a Replayer that drives the engine through something
    else (tests/test_distributed_scenarios.py: the distributed queue's
    scheduler)."""
    replayer = replayer_class()
    line_no = 0
    try:
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the final newline ends the last line; it starts none
        for line in lines:
            line_no += 1
            tokens = tokens_of(line.rstrip("\r"))
            if not tokens:
                continue
            replayer.run(tokens[0], tokens[1:])
            replayer.commands_seen += 1
        if replayer.engine is None:
            raise ScenarioError("empty scenario")
    except ScenarioError as error:
        raise AssertionError(f"{label}:{line_no}: {error}") from None


def test_every_scenario_file_is_listed_in_the_readme_and_vice_versa():
    readme = (SCENARIO_DIR / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([A-Za-z0-9_]+\.scn)` \|", readme, flags=re.MULTILINE))
    on_disk = {path.name for path in SCENARIOS}
    assert len(on_disk) >= 12
    assert listed == on_disk


@pytest.mark.parametrize("path", SCENARIOS, ids=[path.stem for path in SCENARIOS])
def test_scenario(path: Path):
    replay_text(path.read_text(encoding="ascii"), path.name)


# ---- the replayer itself must catch wrong expectations and malformed files ---------


GOOD = """\
workers 1
lane a 0 0 1
submit a t1 t2
dispatch t1
"""


def test_replayer_accepts_a_good_scenario():
    replay_text(GOOD, "good.scn")


@pytest.mark.parametrize(("text", "line", "words"), [
    (GOOD + "dispatch t2\n", 5, "expected t2, got nothing"),
    (GOOD.replace("dispatch t1", "dispatch t2"), 4, "expected t2, got t1"),
    (GOOD + "complete t1\ndispatch\n", 6, "expected nothing more, got t2"),
    (GOOD + "stats a pending=2\n", 5, "pending is 1, expected 2"),
    (GOOD + "cancel t1 yes\n", 5, "cancel(t1) returned 0"),
    (GOOD + "frobnicate\n", 5, "unknown command"),
    (GOOD + "submit b t3\n", 5, "unknown lane 'b'"),
    (GOOD + "complete t9\n", 5, "unknown ticket 't9'"),
    (GOOD + "submit a t1\n", 5, "submitted twice"),
    (GOOD + "lane a 1 0 1\n", 5, "declared twice"),
    (GOOD + "workers 2\n", 5, "must be the first command"),
    (GOOD + "lane b -1 0 1\n", 5, "not a non-negative number"),
    (GOOD + "lane b 1 0\n", 5, "usage: lane"),
    (GOOD + "complete t2\n", 5, "t2 is not running"),
    (GOOD + "stats a bogus=1\n", 5, "unknown stats key"),
    (GOOD + "lane b 0 2 1\n", 5, "add_lane(0, 2, 1) raised"),
    ("# only a comment\n\n", 2, "empty scenario"),
], ids=["missing-dispatch", "wrong-order", "extra-dispatch", "stats-mismatch",
        "cancel-mismatch", "unknown-command", "undeclared-lane", "undeclared-ticket",
        "duplicate-ticket", "duplicate-lane", "workers-not-first", "bad-number",
        "missing-argument", "not-running", "unknown-stats-key", "engine-refuses-lane",
        "empty"])
def test_replayer_reports_file_and_line(text, line, words):
    with pytest.raises(AssertionError) as caught:
        replay_text(text, "broken.scn")
    message = str(caught.value)
    assert message.startswith(f"broken.scn:{line}: "), message
    assert words in message, message


def test_comments_blank_lines_and_crlf_are_ignored():
    replay_text("workers 1\r\n\r\n  lane a 0 0 1   # trailing comment\r\n"
                "\tsubmit a t1\r\ndispatch t1 # ok\r\n", "crlf.scn")


def test_engine_try_next_matches_the_raw_dispatch():
    engine = Engine(0)
    lane = engine.add_lane(0, 0, 2)
    engine.submit(lane, 7, 1)
    engine.submit(lane, 8, 2)
    assert engine.try_next(3) == (lane, 7)
    assert engine.try_next(3) == (lane, 8)
    assert engine.try_next(3) is None
    engine.complete(lane, lib.LC_OUTCOME_COMPLETED)
    engine.complete(lane, lib.LC_OUTCOME_FAILED)
    stats = engine.lane_stats(lane)
    assert (stats.completed, stats.failed, stats.active) == (1, 1, 0)
    with pytest.raises(LaneError, match="nothing active"):
        engine.complete(lane, lib.LC_OUTCOME_COMPLETED)


# ---- the same files through LocalDistributedQueue's scheduling step ----------------


class DistributedReplayer(Replayer):
    """Replays through ``pylane.distributed.scheduler.Scheduler``, the step
    ``LocalDistributedQueue``'s dispatcher runs, with the scenario's clock
    injected: submit and dispatch go through it, the default (least-loaded)
    partitioner places each dispatched ticket, and that partition's worker
    takes it at once. One partition per scenario worker; a scenario without
    ``workers`` (unbounded) gets more partitions than it ever runs at once.
    On top of the engine's checks: each dispatched ticket lands on an idle
    partition, and the partitions run exactly what the engine counts active."""

    UNBOUNDED = 64  # partitions for "workers 0": more than any scenario runs at once

    def __init__(self) -> None:
        super().__init__()
        self.scheduler: Optional[Scheduler] = None
        self.entries: dict[str, Entry] = {}

    def run(self, command: str, args: list[str]) -> None:
        if command != "workers" and self.scheduler is None:
            partitions = [PartitionState(i) for i in range(self.workers or self.UNBOUNDED)]
            self.scheduler = Scheduler(partitions, LeastLoadedPartitioner())
            self.engine = self.scheduler.engine
        super().run(command, args)

    def check_partitions(self) -> None:
        running = sum(p.running is not None for p in self.scheduler.partitions)
        waiting = sum(len(p.waiting) for p in self.scheduler.partitions)
        _pending, active = self.engine.totals()
        if (running, waiting) != (active, 0):
            raise ScenarioError(f"partitions run {running} and hold {waiting} waiting; "
                                f"the engine counts {active} active")

    def add_lane(self, name: str, priority: int, minimum: int, maximum: int) -> int:
        return self.scheduler.add_lane(LaneSpec(name, priority, minimum, maximum))

    def submit_ticket(self, ticket: Ticket, lane_name: str) -> None:
        envelope = CommandEnvelope(ticket.name, ticket.name, lane_name, b"")
        entry = self.scheduler.submit(envelope, now_ns=self.now)
        if entry.ticket != ticket.id:
            raise ScenarioError(f"{ticket.name} got ticket {entry.ticket}, expected "
                                f"{ticket.id}")
        self.entries[ticket.name] = entry

    def cmd_dispatch(self, expected: list[str]) -> None:
        for position in itertools.count():
            entry = self.scheduler.dispatch(self.now)
            if entry is None:
                if position < len(expected):
                    raise ScenarioError(
                        f"dispatch #{position + 1}: expected {expected[position]}, got nothing")
                return
            got = entry.envelope.id
            if position >= len(expected):
                raise ScenarioError(f"dispatch #{position + 1}: expected nothing more, "
                                    f"got {got} (lane {entry.lane})")
            want = self.ticket(expected[position])
            if got != want.name:
                raise ScenarioError(f"dispatch #{position + 1}: expected {want.name}, "
                                    f"got {got} (lane {entry.lane})")
            if entry.enqueued_ns != want.submitted_ns:
                raise ScenarioError(f"dispatch #{position + 1}: {want.name} enqueued_ns "
                                    f"{entry.enqueued_ns}, submitted at {want.submitted_ns}")
            if entry.error is not None:
                raise ScenarioError(f"{want.name} could not be placed: {entry.error}")
            partition = self.scheduler.partitions[entry.partition]
            if partition.running is not None or list(partition.waiting) != [entry]:
                raise ScenarioError(f"{want.name} was placed on busy partition "
                                    f"{partition.index}")
            self.scheduler.start(partition)
            want.state = "running"
            self.check_partitions()

    def cmd_finish(self, args: list[str], outcome: int) -> None:
        if not args:
            raise ScenarioError("usage: complete|fail <ticket> [...]")
        for name in args:
            ticket = self.ticket(name)
            if ticket.state != "running":
                raise ScenarioError(f"scenario error: {name} is not running")
            self.scheduler.finish(self.entries[name], outcome)
            ticket.state = "done"
            self.check_partitions()

    def cmd_cancel(self, args: list[str]) -> None:
        if len(args) != 2 or args[1] not in ("yes", "no"):
            raise ScenarioError("usage: cancel <ticket> yes|no")
        ticket = self.ticket(args[0])
        got = self.scheduler.cancel(self.entries[ticket.name])
        if got != (args[1] == "yes"):
            raise ScenarioError(f"cancel({ticket.name}) returned {int(got)}, "
                                f"expected {int(not got)}")
        if got:
            ticket.state = "cancelled"

    def cmd_pause_resume(self, args: list[str], pause: bool) -> None:
        if len(args) != 1:
            raise ScenarioError("usage: pause|resume <lane>")
        self.lane(args[0])
        (self.scheduler.pause if pause else self.scheduler.resume)(args[0])


@pytest.mark.parametrize("path", SCENARIOS, ids=[path.stem for path in SCENARIOS])
def test_scenario_through_the_distributed_scheduler(path: Path):
    replay_text(path.read_text(encoding="ascii"), path.name, DistributedReplayer)


@pytest.mark.parametrize(("text", "line", "words"), [
    (GOOD + "dispatch t2\n", 5, "expected t2, got nothing"),
    (GOOD.replace("dispatch t1", "dispatch t2"), 4, "expected t2, got t1"),
    (GOOD + "complete t1\ndispatch\n", 6, "expected nothing more, got t2"),
    (GOOD + "cancel t1 yes\n", 5, "cancel(t1) returned 0"),
    (GOOD + "lane b 0 2 1\n", 5, "add_lane(0, 2, 1) raised"),
], ids=["missing-dispatch", "wrong-order", "extra-dispatch", "cancel-mismatch",
        "engine-refuses-lane"])
def test_distributed_replayer_reports_file_and_line(text, line, words):
    with pytest.raises(AssertionError) as caught:
        replay_text(text, "broken.scn", DistributedReplayer)
    message = str(caught.value)
    assert message.startswith(f"broken.scn:{line}: "), message
    assert words in message, message
