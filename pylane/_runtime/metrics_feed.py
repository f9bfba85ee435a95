"""Moves what a queue's engine counted and timed into its ``QueueMetrics``.

Why: pushing every command through Python hooks (a counter at submit, a wait
sample at start, a counter and a latency sample at the end) cost about 1 us
per command, 10-20% of a no-op command's whole path. The engine already
counts submitted and completed commands per lane, and with timing on it logs
each start's queue wait and each run time under the lock it holds anyway.
This feed hands them over in batches: when the engine says a batch is due
(``LC_SAMPLES_DUE`` from ``lc_finish_timed``: 16,384 samples buffered, or a
second since the last batch) and before every read of the metrics
(``QueueMetrics.refresh``). So a snapshot is always exact, and a backend that
exports on its own (OpenTelemetry) is refreshed when it collects.

The rarer events (failures, timeouts, retries, dead letters, cancels) stay
hooks called where they happen.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from .._lane_core import ffi, lib

logger = logging.getLogger("pylane.metrics")

# The most samples the engine may buffer between batches (12 bytes each).
# A batch is due at 16,384 (about 8,000 commands), but the worker that hands
# it over competes for the GIL with the others, which keep recording: under
# a flood of no-op commands the log was seen to hold 5 times the batch before
# the hand-over finished. This is the room for that, not a working size.
MAX_BUFFERED_SAMPLES = 1 << 20
# Samples moved per lc_take_samples call. Large batches are cheaper per
# sample: merging a lane's batch costs about the same for 2,000 samples as
# for 8,000, since the distinct buckets (not the samples) set the work.
TAKE_BATCH = 32_768

_WAIT = lib.LC_SAMPLE_WAIT


class EngineMetricsFeed:
    """One per queue with metrics. ``lanes`` is the queue's list of lanes by
    engine index; it may grow after the feed is made."""

    def __init__(self, ptr: Any, lanes: Sequence[Any], metrics: Any,
                 max_buffered: int = MAX_BUFFERED_SAMPLES) -> None:
        lib.lc_set_timing(ptr, max_buffered)
        self._ptr = ptr
        self._lanes = lanes
        self._metrics = metrics
        self._values = ffi.new("double[]", TAKE_BATCH)
        self._runs = ffi.new("lc_sample_run[]", 0)
        self._runs_cap = 0
        self._dropped = ffi.new("uint64_t *")
        self._stats = ffi.new("lc_lane_stats *")
        # Per lane index: the (submitted, completed) counts already handed over.
        self._sent: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        self._dropped_total = 0

    @property
    def dropped(self) -> int:
        """Samples the engine lost to a full log (none unless batches could
        not be handed over for a long time)."""
        return self._dropped_total

    def collect(self, wait: bool = True) -> None:
        """Hands everything over. Workers pass ``wait=False``: if another
        thread is collecting, it takes their samples too."""
        if not self._lock.acquire(blocking=wait):
            return
        try:
            lanes = list(self._lanes)
            self._take_samples(lanes)
            self._hand_over_counts(lanes)
        finally:
            self._lock.release()

    def _take_samples(self, lanes: list[Any]) -> None:
        runs_needed = 2 * max(1, lib.lc_lane_count(self._ptr))
        if self._runs_cap < runs_needed:
            self._runs = ffi.new("lc_sample_run[]", runs_needed)
            self._runs_cap = runs_needed
        while True:
            count = lib.lc_take_samples(self._ptr, self._values, TAKE_BATCH, self._runs,
                                        self._runs_cap, self._dropped)
            if count < 0:
                logger.error("could not take the engine's timing samples (error %d)", count)
                return
            if self._dropped[0]:
                self._dropped_total += self._dropped[0]
                logger.warning("the engine's timing log was full: %d samples lost",
                               self._dropped[0])
            taken = sum(self._runs[i].count for i in range(count))
            self._hand_over_samples(lanes, count)
            if taken < TAKE_BATCH:
                return

    def _hand_over_samples(self, lanes: list[Any], count: int) -> None:
        metrics = self._metrics
        start = self._values
        for i in range(count):
            run = self._runs[i]
            index, kind, n = run.lane, run.kind, run.count
            if index >= len(lanes):  # registered after our copy of the list
                lanes = list(self._lanes)
            lane_id = lanes[index].lane_id
            local = metrics.local_histograms(lane_id)
            histogram = None if local is None else local[0 if kind == _WAIT else 1]
            if histogram is not None and n > histogram.exact_room():
                # Past its exact range a local histogram only keeps bucket
                # counts: they are counted in C, with no float object made
                # per sample (that cost 300+ ns a command).
                histogram.add_bucketed(start, n)
            elif kind == _WAIT:
                metrics.record_wait_times(lane_id, ffi.unpack(start, n))
            else:
                metrics.record_run_times(lane_id, ffi.unpack(start, n))
            start += n

    def _hand_over_counts(self, lanes: list[Any]) -> None:
        sent = self._sent
        stats = self._stats
        metrics = self._metrics
        for index, lane in enumerate(lanes):
            if lib.lc_read_lane_stats(self._ptr, index, stats) < 0:
                continue
            if index == len(sent):
                sent.append((0, 0))
            submitted, completed = stats.submitted, stats.completed
            old_submitted, old_completed = sent[index]
            if submitted != old_submitted or completed != old_completed:
                sent[index] = (submitted, completed)
                metrics.add_counts(lane.lane_id, submitted - old_submitted,
                                   completed - old_completed)
            metrics.set_queue_depth(lane.lane_id, stats.pending)
            metrics.set_active_commands(lane.lane_id, stats.active)
