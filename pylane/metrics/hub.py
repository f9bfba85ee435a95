"""``QueueMetrics``: what a queue calls, one hook per thing that happens to
a command, recorded into a ``MetricsBackend``.

Why it is cheap: per command, a queue calls no hook at all on the way of a
command that completes. Its engine counts submits and completions per lane
and, with metrics on, logs each start's queue wait and each run time (the
worker times the call and passes the duration to ``lc_finish_timed``);
``metrics_feed.EngineMetricsFeed`` hands those over in batches, bucketed in
C for ``LocalMetrics``, when the engine says a batch is due and before every
read (``refresh``). The rarer outcomes call their hook where they happen.
A hook does no string formatting and no lookup on the backend: the first
time a lane is seen, ``_LaneHooks`` asks the backend's ``bind_*`` methods
for one callable per metric, and from then on a hook only calls those.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any, Callable, Optional

from ..errors import InvalidConfigError
from .local import LocalMetrics
from .names import (
    COMMAND_LATENCY,
    COMMAND_WAIT_TIME,
    COMMANDS_CANCELLED,
    COMMANDS_COMPLETED,
    COMMANDS_DEAD_LETTERED,
    COMMANDS_FAILED,
    COMMANDS_RETRIED,
    COMMANDS_SUBMITTED,
    COMMANDS_TIMEOUT,
    QUEUE_ACTIVE,
    QUEUE_DEPTH,
    MetricsBackend,
    MetricsSnapshot,
    adopt,
)

logger = logging.getLogger("pylane.metrics")


class _LaneHooks:
    """What one lane's hooks call, bound once per lane."""

    __slots__ = ("active", "add_completed", "add_submitted", "cancelled", "completed",
                 "dead_lettered", "depth", "failed", "latency", "latency_buckets",
                 "latency_many", "retried", "submitted", "timeout", "wait", "wait_buckets",
                 "wait_many")

    def __init__(self, backend: MetricsBackend, lane_id: str) -> None:
        counter, adder, gauge = backend.bind_counter, backend.bind_counter_adder, backend.bind_gauge
        histogram, many = backend.bind_histogram, backend.bind_histogram_many
        self.submitted = counter(COMMANDS_SUBMITTED, lane_id)
        self.completed = counter(COMMANDS_COMPLETED, lane_id)
        self.add_submitted = adder(COMMANDS_SUBMITTED, lane_id)
        self.add_completed = adder(COMMANDS_COMPLETED, lane_id)
        self.wait_many = many(COMMAND_WAIT_TIME, lane_id)
        self.latency_many = many(COMMAND_LATENCY, lane_id)
        self.failed = counter(COMMANDS_FAILED, lane_id)
        self.timeout = counter(COMMANDS_TIMEOUT, lane_id)
        self.retried = counter(COMMANDS_RETRIED, lane_id)
        self.dead_lettered = counter(COMMANDS_DEAD_LETTERED, lane_id)
        self.cancelled = counter(COMMANDS_CANCELLED, lane_id)
        self.latency = histogram(COMMAND_LATENCY, lane_id)
        self.wait = histogram(COMMAND_WAIT_TIME, lane_id)
        self.depth = gauge(QUEUE_DEPTH, lane_id)
        self.active = gauge(QUEUE_ACTIVE, lane_id)
        self.wait_buckets = backend.bind_histogram_buckets(COMMAND_WAIT_TIME, lane_id)
        self.latency_buckets = backend.bind_histogram_buckets(COMMAND_LATENCY, lane_id)


GaugeSource = Callable[[], Iterable[tuple[str, int, int]]]


class QueueMetrics:
    """The queue's metrics: one hook per thing that happens to a command.

    Copies share the backend (as the original's ``Clone``). Durations are
    given in seconds and recorded in milliseconds.
    """

    def __init__(self, backend: Optional[MetricsBackend] = None) -> None:
        self._given: MetricsBackend = backend if backend is not None else LocalMetrics()
        # A backend that does not subclass MetricsBackend is wrapped here,
        # once; an object that is no backend at all is refused here.
        self._backend = adopt(self._given)
        self._lanes: dict[str, _LaneHooks] = {}
        self._bind_lock = threading.Lock()
        self._gauge_source: Optional[GaugeSource] = None
        self._refreshers: tuple[Callable[[], None], ...] = ()
        # A backend that is read on its own schedule (OpenTelemetry: when a
        # reader collects) refreshes first.
        self._backend.set_refresher(self.refresh)

    @classmethod
    def local(cls) -> QueueMetrics:
        return cls(LocalMetrics())

    def backend(self) -> MetricsBackend:
        """The backend as given (not the adapter a non-subclass is seen through)."""
        return self._given

    def _bind(self, lane_id: str) -> _LaneHooks:
        with self._bind_lock:
            hooks = self._lanes.get(lane_id)
            if hooks is None:
                hooks = _LaneHooks(self._backend, str(lane_id))
                self._lanes = {**self._lanes, lane_id: hooks}  # readers take no lock
        return hooks

    # -- hooks, called by the queue

    def record_submit(self, lane_id: str) -> None:
        (self._lanes.get(lane_id) or self._bind(lane_id)).submitted()

    def record_start(self, lane_id: str, wait_seconds: float) -> None:
        (self._lanes.get(lane_id) or self._bind(lane_id)).wait(wait_seconds * 1000.0)

    def record_complete(self, lane_id: str, run_seconds: float) -> None:
        hooks = self._lanes.get(lane_id) or self._bind(lane_id)
        hooks.completed()
        hooks.latency(run_seconds * 1000.0)

    def record_failure(self, lane_id: str, run_seconds: Optional[float] = None) -> None:
        hooks = self._lanes.get(lane_id) or self._bind(lane_id)
        hooks.failed()
        if run_seconds is not None:
            hooks.latency(run_seconds * 1000.0)

    def record_timeout(self, lane_id: str, run_seconds: Optional[float] = None) -> None:
        hooks = self._lanes.get(lane_id) or self._bind(lane_id)
        hooks.timeout()
        if run_seconds is not None:
            hooks.latency(run_seconds * 1000.0)

    def record_retry(self, lane_id: str) -> None:
        (self._lanes.get(lane_id) or self._bind(lane_id)).retried()

    def record_dead_letter(self, lane_id: str) -> None:
        (self._lanes.get(lane_id) or self._bind(lane_id)).dead_lettered()

    def record_cancel(self, lane_id: str) -> None:
        (self._lanes.get(lane_id) or self._bind(lane_id)).cancelled()

    def set_queue_depth(self, lane_id: str, depth: int) -> None:
        (self._lanes.get(lane_id) or self._bind(lane_id)).depth(depth)

    def set_active_commands(self, lane_id: str, active: int) -> None:
        (self._lanes.get(lane_id) or self._bind(lane_id)).active(active)

    # -- batches, from a queue's engine (see pylane/_runtime/metrics_feed.py)

    def add_counts(self, lane_id: str, submitted: int, completed: int) -> None:
        """Adds to the submitted and completed counters: the queue counts
        those in its engine and hands over the increase in batches."""
        hooks = self._lanes.get(lane_id) or self._bind(lane_id)
        if submitted:
            hooks.add_submitted(submitted)
        if completed:
            hooks.add_completed(completed)

    def local_histograms(self, lane_id: str) -> Optional[tuple[Any, Any]]:
        """The lane's (wait, latency) histograms when the backend can take
        samples bucketed in C (``bind_histogram_buckets``: ``LocalMetrics``);
        else None."""
        hooks = self._lanes.get(lane_id) or self._bind(lane_id)
        if hooks.wait_buckets is None or hooks.latency_buckets is None:
            return None
        return hooks.wait_buckets, hooks.latency_buckets

    def record_wait_times(self, lane_id: str, wait_ms: list[float]) -> None:
        """A batch of ``record_start``, in milliseconds."""
        (self._lanes.get(lane_id) or self._bind(lane_id)).wait_many(wait_ms)

    def record_run_times(self, lane_id: str, run_ms: list[float]) -> None:
        """A batch of completed runs' latencies, in milliseconds (the
        counter moves through ``add_counts``)."""
        (self._lanes.get(lane_id) or self._bind(lane_id)).latency_many(run_ms)

    # -- reading

    def add_refresher(self, refresh: Callable[[], None]) -> None:
        """``refresh()`` runs before every ``snapshot()`` (and each time an
        OpenTelemetry reader collects): a queue hands over what its engine
        has counted and timed since the last call, and its gauges."""
        with self._bind_lock:
            self._refreshers = (*self._refreshers, refresh)

    def remove_refresher(self, refresh: Callable[[], None]) -> None:
        with self._bind_lock:
            self._refreshers = tuple(r for r in self._refreshers if r != refresh)

    def bind_gauges(self, source: Optional[GaugeSource]) -> None:
        """``source()`` yields ``(lane_id, pending, active)``; ``snapshot()``
        sets the depth and active gauges from it first, so gauges cost
        nothing per command and are never stale when read. (A queue given
        these metrics does this itself, through ``add_refresher``.)"""
        self._gauge_source = source

    def refresh(self) -> None:
        """Brings what is pulled rather than pushed up to date: the bound
        gauge source and every refresher. A refresher that raises is logged
        and skipped, so one broken source cannot hide the others."""
        source = self._gauge_source
        if source is not None:
            for lane_id, pending, active in source():
                hooks = self._lanes.get(lane_id) or self._bind(lane_id)
                hooks.depth(pending)
                hooks.active(active)
        for refresh in self._refreshers:
            try:
                refresh()
            except Exception:
                logger.exception("a metrics refresher failed; its values may be stale")

    def snapshot(self) -> MetricsSnapshot:
        self.refresh()
        return self._backend.snapshot()

    def reset(self) -> None:
        self._backend.reset()


def as_queue_metrics(metrics: Any) -> Optional[QueueMetrics]:
    """What a queue records into: a ``QueueMetrics``, or a bare backend,
    which is wrapped (a common slip: ``with_metrics(LocalMetrics())``)."""
    if metrics is None or isinstance(metrics, QueueMetrics):
        return metrics
    if isinstance(metrics, MetricsBackend):  # a subclass, or one with the eight methods
        return QueueMetrics(metrics)
    raise InvalidConfigError(
        f"metrics must be a QueueMetrics or a MetricsBackend, got {type(metrics).__name__}"
    )
