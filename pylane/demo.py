"""python -m pylane.demo — control commands cut through a flooded prompt lane.

The default lanes (system 0, control 1, query 2, session 3, skill 4, prompt 5)
on a pool of 8 workers. The prompt lane (max 2 at once) is flooded with slow
"LLM generation" jobs of 0.2-0.5 s each; while hundreds of them wait, a
control command (pause, resume or cancel of prompt work) is submitted every
second, and each one starts within a millisecond or two.

A live table of the lanes is redrawn in place on a terminal; when stdout is
not a terminal, plain lines are printed instead. After ``--seconds`` (12 by
default) the demo shuts the queue down, cancels the prompt backlog, drains
and prints a summary.

Only the public API is used: QueueManagerBuilder, EventEmitter, subscribe
with a filter, stats(), pause_lane/resume_lane, and futures.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Optional

from pylane import (
    Command,
    EventEmitter,
    EventStream,
    LaneStatus,
    QueueManager,
    QueueManagerBuilder,
    QueueStats,
)

FRAME_SECONDS = 0.2      # the live view refreshes 5 times a second
PLAIN_EVERY = 1.0        # without a terminal, one stats line a second
CONTROL_ACTIONS = ("pause", "resume", "cancel")
CANCEL_BATCH = 5         # a "cancel" control command drops the 5 newest prompts
LOG_LINES = 8

HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"
CLEAR_LINE, CLEAR_BELOW = "\x1b[K", "\x1b[J"
BOLD, DIM, RESET = "\x1b[1m", "\x1b[2m", "\x1b[0m"


# ---- the work -----------------------------------------------------------------

def generate(prompt_number: int) -> str:
    """Stands in for LLM generation: slow, and it holds a worker."""
    time.sleep(random.uniform(0.2, 0.5))
    return f"completion #{prompt_number}"


class ControlCommand(Command):
    """pause / resume / cancel, acting on the prompt lane."""

    def __init__(self, action: str, manager: QueueManager, prompts: list[Future[Any]]) -> None:
        self.action = action
        self.manager = manager
        self.prompts = prompts

    @property
    def command_type(self) -> str:
        return self.action

    def execute(self) -> str:
        if self.action == "pause":
            self.manager.pause_lane("prompt")
            return "prompt lane paused"
        if self.action == "resume":
            self.manager.resume_lane("prompt")
            return "prompt lane resumed"
        return f"cancelled {cancel_newest(self.prompts, CANCEL_BATCH)} queued prompts"


def cancel_newest(prompts: list[Future[Any]], count: int) -> int:
    cancelled = 0
    for future in reversed(prompts):
        if cancelled == count:
            break
        if not future.cancelled() and future.cancel():
            cancelled += 1
    return cancelled


# ---- demo state -------------------------------------------------------------------

@dataclass
class Sent:
    action: str
    submitted_ns: int   # wall clock, as event timestamps are
    sent_at: float      # seconds since the demo began
    backlog: int


@dataclass
class ControlStart:
    at: float          # seconds since the demo began
    action: str
    wait_ms: float
    backlog: int


@dataclass
class Demo:
    manager: QueueManager
    starts_stream: EventStream
    prompts: list[Future[Any]]
    workers: int
    seconds: float
    interval: float
    began: float = field(default_factory=time.monotonic)
    sent: dict[str, Sent] = field(default_factory=dict)
    starts: list[ControlStart] = field(default_factory=list)
    control_count: int = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.began


def build_manager(workers: int) -> QueueManager:
    emitter = EventEmitter(1024)
    return (QueueManagerBuilder(emitter)
            .with_default_lanes()
            .with_max_workers(workers)
            .build())


def control_starts(manager: QueueManager) -> EventStream:
    """Only the events we show: control commands being started."""
    return manager.subscribe_filtered(
        lambda event: event.key == "queue.command.started"
        and event.payload is not None and event.payload.get("lane_id") == "control"
    )


def flood_prompts(manager: QueueManager, jobs: int) -> list[Future[Any]]:
    return [manager.submit("prompt", generate, number) for number in range(jobs)]


def send_control(demo: Demo) -> None:
    action = CONTROL_ACTIONS[demo.control_count % len(CONTROL_ACTIONS)]
    demo.control_count += 1
    backlog = prompt_status(demo.manager.stats()).pending
    submitted_ns = time.time_ns()
    future = demo.manager.submit("control", ControlCommand(action, demo.manager, demo.prompts))
    demo.sent[future.command_id] = Sent(action, submitted_ns, demo.elapsed(), backlog)


def collect_starts(demo: Demo) -> list[ControlStart]:
    """Turns new ``queue.command.started`` events into wait times."""
    new = []
    while (event := demo.starts_stream.try_recv()) is not None:
        payload = event.payload
        assert payload is not None  # control_starts() lets no other event through
        sent = demo.sent.get(payload["command_id"])
        if sent is None:
            continue
        wait_ms = (event.time_ns - sent.submitted_ns) / 1e6
        new.append(ControlStart(sent.sent_at + wait_ms / 1000, sent.action, wait_ms, sent.backlog))
    demo.starts.extend(new)
    return new


def prompt_status(stats: QueueStats) -> LaneStatus:
    return lane_status(stats, "prompt")


def lane_status(stats: QueueStats, lane_id: str) -> LaneStatus:
    status = stats.lane(lane_id)
    assert status is not None  # one of the default lanes, which the demo's queue has
    return status


# ---- views ------------------------------------------------------------------------

def lane_table(stats: QueueStats) -> list[str]:
    lines = [f"{'lane':<9}{'prio':>5}{'pending':>9}{'active':>8}{'max':>5}"
             f"{'completed':>11}{'cancelled':>11}  state"]
    for lane in stats.lanes:
        state = "paused" if lane.paused else ""
        lines.append(f"{lane.lane_id:<9}{lane.priority:>5}{lane.pending:>9}{lane.active:>8}"
                     f"{lane.max_concurrency:>5}{lane.completed:>11}{lane.cancelled:>11}  {state}")
    return lines


def describe_start(start: ControlStart) -> str:
    return (f"{start.action:<7} started {start.wait_ms:6.2f} ms after submit"
            f"  (prompt backlog {start.backlog})")


def live_frame(demo: Demo, stats: QueueStats) -> list[str]:
    clock = min(demo.elapsed(), demo.seconds)
    header = (f"{BOLD}a3s-lane demo{RESET}  {clock:4.1f} s / {demo.seconds:g} s   "
              f"{stats.total_active}/{demo.workers} workers busy, "
              f"{stats.total_pending} pending")
    subtitle = (f"{DIM}{len(demo.prompts)} prompt jobs of 0.2-0.5 s (prio 5, max 2); "
                f"control (prio 1) every {demo.interval:g} s{RESET}")
    recent = [f"{s.at:5.1f}s  {describe_start(s)}" for s in demo.starts[-LOG_LINES:]]
    recent += [f"{DIM}-{RESET}"] * (LOG_LINES - len(recent))
    return [header, subtitle, "", *lane_table(stats), "",
            "control commands (submitted -> started, newest last):", *recent]


class LiveView:
    """Redraws a block of lines in place with ANSI escape codes."""

    def __init__(self) -> None:
        self.height = 0

    def draw(self, lines: list[str]) -> None:
        up = f"\x1b[{self.height}F" if self.height else ""
        body = "".join(f"{line}{CLEAR_LINE}\n" for line in lines)
        sys.stdout.write(f"{up}{body}{CLEAR_BELOW}")
        sys.stdout.flush()
        self.height = len(lines)


class PlainView:
    """Without a terminal: each control start as it happens, stats every second."""

    def __init__(self) -> None:
        self.next_line = PLAIN_EVERY

    def update(self, demo: Demo, stats: QueueStats, new_starts: list[ControlStart]) -> None:
        for start in new_starts:
            print(f"[{start.at:5.1f}s] control {describe_start(start)}")
        if demo.elapsed() >= self.next_line:
            self.next_line += PLAIN_EVERY
            prompt = prompt_status(stats)
            control = lane_status(stats, "control")
            print(f"[{demo.elapsed():5.1f}s] prompt: {prompt.pending} pending, "
                  f"{prompt.active} active, {prompt.completed} completed"
                  f"{' (paused)' if prompt.paused else ''} | control: {control.completed} done"
                  f" | {stats.total_active}/{demo.workers} workers busy")
        sys.stdout.flush()


# ---- run and summarise ----------------------------------------------------------------

def run_timeline(demo: Demo, live: Optional[LiveView]) -> None:
    plain = None if live else PlainView()
    next_control = demo.interval
    next_frame = 0.0
    while (now := demo.elapsed()) < demo.seconds:
        if now >= next_control:
            send_control(demo)
            next_control += demo.interval
        if now >= next_frame:
            next_frame += FRAME_SECONDS
            new_starts = collect_starts(demo)
            stats = demo.manager.stats()
            if live:
                live.draw(live_frame(demo, stats))
            else:
                assert plain is not None  # made above, when there is no live view
                plain.update(demo, stats, new_starts)
        time.sleep(max(0.0, min(next_control, next_frame, demo.seconds) - demo.elapsed()))


def wind_down(demo: Demo) -> tuple[int, float]:
    """Shutdown, cancel the prompt backlog, drain. Returns (cancelled, drain s)."""
    manager = demo.manager
    manager.shutdown()
    cancelled = sum(1 for f in demo.prompts if not f.cancelled() and f.cancel())
    manager.resume_lane("prompt")  # in case the last control command paused it
    began = time.monotonic()
    manager.drain(10.0)
    collect_starts(demo)
    return cancelled, time.monotonic() - began


def summary(demo: Demo, cancelled_at_end: int, drain_seconds: float) -> list[str]:
    waits = [start.wait_ms for start in demo.starts]
    backlogs = [start.backlog for start in demo.starts]
    completed = sum(1 for f in demo.prompts if f.done() and not f.cancelled()
                    and f.exception() is None)
    failed = sum(1 for f in demo.prompts if f.done() and not f.cancelled()
                 and f.exception() is not None)
    cancelled = sum(1 for f in demo.prompts if f.cancelled())
    lines = [f"summary after {demo.elapsed():.1f} s:"]
    if waits:
        lines.append(
            f"  control commands: {len(waits)} started, wait p50 "
            f"{statistics.median(waits):.2f} ms, max {max(waits):.2f} ms "
            f"(prompt backlog {min(backlogs)}-{max(backlogs)} meanwhile)"
        )
    else:
        lines.append("  control commands: none sent (run longer than one --interval)")
    lines.append(
        f"  prompt jobs: {len(demo.prompts)} submitted, {completed} completed, "
        f"{cancelled} cancelled ({cancelled - cancelled_at_end} by control commands, "
        f"{cancelled_at_end} at shutdown), {failed} failed"
    )
    lines.append(
        f"  shutdown: backlog cancelled and queue drained in {drain_seconds * 1000:.0f} ms"
    )
    return lines


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pylane.demo",
        description="Control commands start at once while the prompt lane is flooded.",
    )
    parser.add_argument("--seconds", type=float, default=12.0, help="length of the demo (12)")
    parser.add_argument("--jobs", type=int, default=300, help="prompt jobs in the flood (300)")
    parser.add_argument("--workers", type=int, default=8, help="worker pool size (8)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between control commands (1)")
    parser.add_argument("--plain", action="store_true",
                        help="plain lines even on a terminal (no escape codes)")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    manager = build_manager(args.workers)
    starts_stream = control_starts(manager)
    manager.start()
    demo = Demo(manager, starts_stream, [], args.workers, args.seconds, args.interval)
    demo.prompts.extend(flood_prompts(manager, args.jobs))
    live = LiveView() if sys.stdout.isatty() and not args.plain else None
    if live:
        sys.stdout.write(HIDE_CURSOR)
    else:
        print(f"a3s-lane demo: {args.jobs} prompt jobs (0.2-0.5 s each, prompt max 2), "
              f"a control command every {args.interval:g} s, {args.workers} workers, "
              f"{args.seconds:g} s")
    interrupted = False
    try:
        run_timeline(demo, live)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        cancelled, drain_seconds = wind_down(demo)
        if live:
            live.draw(live_frame(demo, manager.stats()))
            sys.stdout.write(SHOW_CURSOR)
    print("\n".join(summary(demo, cancelled, drain_seconds)))
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
