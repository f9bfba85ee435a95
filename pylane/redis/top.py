"""python -m pylane top --redis URL --queue NAME — one Redis queue, live.

Every lane (pending, active, max, completed per second, paused or rate
limited, and why pending commands wait), the live workers (slots, busy
slots, lease left, time since their last heartbeat) and the newest dead
letters, redrawn in place like ``python -m pylane.demo``. ``--once`` prints
one frame (two samples ``--interval`` apart, for the rates) and exits: for
scripts and tests. Without a terminal, frames are printed one after another.

It only reads: the library's read-only functions (``a3s_stats``,
``a3s_dead_letters``, FCALL_RO), so it loads nothing and registers no lane;
it works on a replica too. An unreachable Redis is a one-line error and exit
status 2 (with ``--once``, or at start); once running, an outage shows in
the frame and the view goes on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

from ..demo import BOLD, DIM, HIDE_CURSOR, RESET, SHOW_CURSOR, LiveView
from ..errors import LaneError
from .connection import (
    CONNECT_TIMEOUT,
    base_key,
    is_connection_error,
    library_versions,
    open_client,
    redact,
)
from .stats import RedisLaneStatus, RedisQueueStats, from_reply

DEAD_LETTERS_SHOWN = 5
EXIT_ERROR = 2


class TopError(Exception):
    """What stops the view: said in one line, exit status 2."""


@dataclass
class Sample:
    stats: RedisQueueStats
    letters: list[dict[str, Any]]
    at: float = field(default_factory=time.monotonic)


class Source:
    """Reads one queue through the library's read-only functions."""

    def __init__(self, url: str, queue: str) -> None:
        self.url = url
        self.queue = queue
        self.base = base_key(queue)
        self.client = open_client(url, socket_timeout=CONNECT_TIMEOUT)

    def sample(self) -> Sample:
        redis = _redis()
        try:
            raw = self.client.fcall_ro("a3s_stats", 1, self.base, "")
            letters = self.client.fcall_ro("a3s_dead_letters", 1, self.base, "",
                                           -DEAD_LETTERS_SHOWN, -1)
        except redis.exceptions.ResponseError as error:
            if "Function not found" in str(error):
                raise TopError(f"Redis at {redact(self.url)} has no a3s_lane functions: no "
                               "a3s-lane queue has run there (or Redis lost them)") from None
            raise TopError(f"Redis at {redact(self.url)}: {error}") from None
        except Exception as error:
            if is_connection_error(error):
                raise TopError(f"Redis at {redact(self.url)} is unreachable: {error}") from None
            raise
        return Sample(from_reply(json.loads(raw)), [json.loads(item) for item in letters],
                      time.monotonic())

    def library_version(self) -> Optional[int]:
        try:
            return int(self.client.fcall_ro("a3s_version", 0))
        except Exception:
            return None

    def close(self) -> None:
        self.client.close()


def _redis() -> Any:
    import redis

    return redis


def rates(before: Optional[Sample], now: Sample) -> dict[str, float]:
    """Completed commands per second per lane, between two samples."""
    if before is None or now.at <= before.at:
        return {}
    seconds = now.at - before.at
    old = {lane.lane_id: lane.completed for lane in before.stats.lanes}
    return {lane.lane_id: max(0, lane.completed - old.get(lane.lane_id, lane.completed)) / seconds
            for lane in now.stats.lanes}


def _seconds(value: float) -> str:
    return f"{value:6.1f} s"


def _state(lane: RedisLaneStatus) -> str:
    parts = []
    if lane.paused:
        parts.append("paused")
    elif lane.throttled:
        parts.append("rate limited")
    if lane.waiting and lane.waiting != "paused":
        parts.append(f"waits: {lane.waiting}")
    return "; ".join(parts)


def frame(url: str, queue: str, sample: Sample, lane_rates: dict[str, float], *,
          styled: bool, note: str = "") -> list[str]:
    """One screen of the view, as lines."""
    bold, dim, reset = (BOLD, DIM, RESET) if styled else ("", "", "")
    stats = sample.stats
    busy = sum(worker.active for worker in stats.workers)
    clock = datetime.now().strftime("%H:%M:%S")
    lines = [
        f"{bold}a3s-lane top{reset}  queue {queue} at {redact(url)}  {clock}",
        f"{dim}{len(stats.workers)} worker{'' if len(stats.workers) == 1 else 's'}, "
        f"{busy}/{stats.slots} slots busy, "
        f"{stats.total_pending} pending, {stats.total_delayed} waiting to retry, "
        f"{stats.dead_letter_count} dead letters, {stats.late_acks} late acks{reset}",
    ]
    if note:
        lines.append(note)
    lines.append("")
    if not stats.lanes:
        lines.append(f"no lanes: no process has used queue {queue!r} here yet")
    else:
        lines.append(f"{'lane':<12}{'prio':>5}{'pending':>9}{'active':>8}{'max':>5}"
                     f"{'rate/s':>8}{'completed':>11}{'failed':>8}  state")
        for lane in stats.lanes:
            assert isinstance(lane, RedisLaneStatus)  # from_reply makes nothing else
            rate = lane_rates.get(lane.lane_id)
            shown = "-" if rate is None else f"{rate:.1f}"
            lines.append(f"{lane.lane_id:<12}{lane.priority:>5}{lane.pending:>9}"
                         f"{lane.active:>8}{lane.max_concurrency:>5}{shown:>8}"
                         f"{lane.completed:>11}{lane.failed:>8}  {_state(lane)}")
    lines.append("")
    lines.append(f"{'worker':<40}{'slots':>6}{'busy':>6}{'lease left':>12}{'last beat':>11}"
                 "  handles")
    if not stats.workers:
        lines.append(f"{dim}-  no live worker: pending commands wait{reset}")
    for worker in stats.workers:
        types = ", ".join(worker.types) or "(echo)"
        lines.append(f"{worker.worker_id:<40}{worker.slots:>6}{worker.active:>6}"
                     f"{_seconds(worker.lease_left):>12}{_seconds(worker.beat_age):>11}"
                     f"  {types}")
    lines.append("")
    lines.append(f"dead letters: {stats.dead_letter_count}"
                 + (" (newest last)" if sample.letters else ""))
    for letter in sample.letters:
        when = datetime.fromtimestamp(float(letter["failed_at_ms"]) / 1000.0).strftime(
            "%H:%M:%S")
        error = " ".join(str(letter.get("error", "")).split())
        attempts = int(letter["attempts"])
        lines.append(f"  {when}  {letter['lane_id']:<12}{letter['command_type']:<14}"
                     f"{letter['command_id'][:12]:<14}{attempts} attempt"
                     f"{'' if attempts == 1 else 's'}  {error[:60]}")
    return [line.rstrip() for line in lines]


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pylane top",
        description="One Redis queue, live: lanes, workers, dead letters.")
    parser.add_argument("--redis", required=True, metavar="URL",
                        help="the queue's Redis, e.g. redis://localhost:6379/0")
    parser.add_argument("--queue", default="default", help="the queue's name (default)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between frames, and between --once's two samples (1)")
    parser.add_argument("--once", action="store_true", help="print one frame and exit")
    parser.add_argument("--plain", action="store_true",
                        help="plain lines even on a terminal (no escape codes)")
    args = parser.parse_args(argv)
    if not 0.05 <= args.interval <= 3600:
        parser.error("--interval must be between 0.05 and 3600 seconds")
    return args


def run(args: argparse.Namespace) -> int:
    try:
        source = Source(args.redis, args.queue)
    except LaneError as error:
        raise TopError(str(error)) from None
    try:
        first = source.sample()
        version, _compatible = library_versions()
        loaded = source.library_version()
        note = "" if loaded in (None, version) else (
            f"the library in Redis is version {loaded}, this pylane's is {version}")
        styled = sys.stdout.isatty() and not args.plain
        if args.once:
            time.sleep(args.interval)
            second = source.sample()
            print("\n".join(frame(args.redis, args.queue, second, rates(first, second),
                                  styled=styled, note=note)))
            return 0
        return loop(source, args, first, styled, note)
    finally:
        source.close()


def loop(source: Source, args: argparse.Namespace, last: Sample, styled: bool,
         note: str) -> int:
    live = LiveView() if styled else None
    if live:
        sys.stdout.write(HIDE_CURSOR)
    lines = frame(args.redis, args.queue, last, {}, styled=styled, note=note)
    try:
        while True:
            if live:
                live.draw(lines)
            else:
                print("\n".join(lines) + "\n", flush=True)
            time.sleep(args.interval)
            try:
                sample = source.sample()
            except TopError as error:  # Redis went away: say so, keep trying
                lines = frame(args.redis, args.queue, last, {}, styled=styled,
                              note=f"{error}; showing the last frame, retrying")
                continue
            lines = frame(args.redis, args.queue, sample, rates(last, sample),
                          styled=styled, note=note)
            last = sample
    except KeyboardInterrupt:
        return 0
    finally:
        if live:
            sys.stdout.write(SHOW_CURSOR)
            sys.stdout.flush()


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except TopError as error:
        print(f"pylane top: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
