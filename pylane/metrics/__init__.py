"""Metrics: counters, gauges and latency histograms, per lane and overall.

``QueueMetrics`` is what the queue calls; a ``MetricsBackend`` is where the
numbers go. ``QueueMetrics.local()`` keeps them in memory (``LocalMetrics``);
``QueueMetrics(OtelMetricsBackend())`` sends them to OpenTelemetry; any object
with the backend methods below works too.

Metric names (the original's, plus ``cancelled``). ``<lane>`` is the lane id;
every per-lane counter and histogram also has the overall name without the
suffix. Latencies are in milliseconds.

=========================================  =========  =====================================
name                                       kind       from a queue: / by hand:
=========================================  =========  =====================================
``lane.commands.submitted[.<lane>]``       counter    engine count / ``record_submit``
``lane.commands.completed[.<lane>]``       counter    engine count / ``record_complete``
``lane.commands.failed[.<lane>]``          counter    ``record_failure``
``lane.commands.timeout[.<lane>]``         counter    ``record_timeout``
``lane.commands.retried[.<lane>]``         counter    ``record_retry``
``lane.commands.dead_lettered[.<lane>]``   counter    ``record_dead_letter``
``lane.commands.cancelled[.<lane>]``       counter    ``record_cancel``
``lane.queue.depth.<lane>``                gauge      engine / ``set_queue_depth``
``lane.queue.active.<lane>``               gauge      engine / ``set_active_commands``
``lane.command.wait_time_ms[.<lane>]``     histogram  engine at dispatch / ``record_start``:
                                                      submit to start
``lane.command.latency_ms[.<lane>]``       histogram  engine at finish, ``record_failure``,
                                                      ``record_timeout`` / ``record_complete``:
                                                      run time of an attempt
=========================================  =========  =====================================

Why it is cheap: per command, a queue calls no hook at all on the way of a
command that completes. Its engine counts submits and completions per lane
and, with metrics on, logs each start's queue wait and each run time (the
worker times the call and passes the duration to ``lc_finish_timed``);
``metrics_feed.EngineMetricsFeed`` hands those over in batches, bucketed in
C for ``LocalMetrics``, when the engine says a batch is due and before every
read (``refresh``). The rarer outcomes call their hook where they happen.
The hooks themselves do no string formatting (names are built once per
lane), take no lock for ``LocalMetrics`` (see ``_Counter`` and
``_Histogram``) and record a per-lane value once: ``LocalMetrics`` derives
the overall counter and histogram from the lanes' when it is read.

Why histograms are bounded (the original kept every sample and re-sorted them
all on each record): up to ``EXACT_SAMPLES`` samples are kept as they are and
percentiles are exact; past that, samples are folded into log-linear buckets
(64 per power of two, from the float's own bits), so memory depends on the
range of values, not their number, and a percentile is off by at most 0.8%.
"""

from __future__ import annotations

import itertools
import logging
import math
import struct
import sys
import threading
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, runtime_checkable

from .._lane_core import ffi, lib
from ..errors import InvalidConfigError

logger = logging.getLogger("pylane.metrics")

# ---- names ---------------------------------------------------------------------

COMMANDS_SUBMITTED = "lane.commands.submitted"
COMMANDS_COMPLETED = "lane.commands.completed"
COMMANDS_FAILED = "lane.commands.failed"
COMMANDS_TIMEOUT = "lane.commands.timeout"
COMMANDS_RETRIED = "lane.commands.retried"
COMMANDS_DEAD_LETTERED = "lane.commands.dead_lettered"
COMMANDS_CANCELLED = "lane.commands.cancelled"
QUEUE_DEPTH = "lane.queue.depth"
QUEUE_ACTIVE = "lane.queue.active"
COMMAND_LATENCY = "lane.command.latency_ms"
COMMAND_WAIT_TIME = "lane.command.wait_time_ms"

COUNTER_NAMES = (
    COMMANDS_SUBMITTED, COMMANDS_COMPLETED, COMMANDS_FAILED, COMMANDS_TIMEOUT,
    COMMANDS_RETRIED, COMMANDS_DEAD_LETTERED, COMMANDS_CANCELLED,
)
GAUGE_NAMES = (QUEUE_DEPTH, QUEUE_ACTIVE)
HISTOGRAM_NAMES = (COMMAND_LATENCY, COMMAND_WAIT_TIME)


def lane_metric(name: str, lane_id: str) -> str:
    """The per-lane name: ``<name>.<lane>``."""
    return f"{name}.{lane_id}"


# ---- data ------------------------------------------------------------------------


@dataclass(frozen=True)
class HistogramPercentiles:
    p50: float = 0.0
    p90: float = 0.0
    p95: float = 0.0
    p99: float = 0.0


@dataclass(frozen=True)
class HistogramStats:
    """A histogram's summary. An empty histogram is all zeros (the original
    reported min = the largest float and max = the most negative one)."""

    count: int = 0
    sum: float = 0.0
    min: float = 0.0
    max: float = 0.0
    mean: float = 0.0
    p50: float = 0.0
    p90: float = 0.0
    p95: float = 0.0
    p99: float = 0.0

    @property
    def percentiles(self) -> HistogramPercentiles:
        return HistogramPercentiles(self.p50, self.p90, self.p95, self.p99)


@dataclass(frozen=True)
class MetricsSnapshot:
    counters: dict[str, int] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, HistogramStats] = field(default_factory=dict)

    def counter(self, name: str, lane_id: Optional[str] = None) -> int:
        """A counter's value, 0 when it was never recorded."""
        return self.counters.get(name if lane_id is None else lane_metric(name, lane_id), 0)

    def histogram(self, name: str, lane_id: Optional[str] = None) -> HistogramStats:
        """A histogram's stats, all zeros when it was never recorded."""
        key = name if lane_id is None else lane_metric(name, lane_id)
        return self.histograms.get(key, HistogramStats())


# ---- the backend protocol ---------------------------------------------------------


@runtime_checkable
class MetricsBackend(Protocol):
    """Where metrics go. The first five methods are the ones the original
    README lists; the getters are the original trait's other three.

    A backend may also offer ``bind_counter(name, lane_id)`` (returns a
    no-argument callable adding 1), ``bind_histogram(name, lane_id)`` and
    ``bind_gauge(name, lane_id)`` (callables taking the value). When it does,
    ``QueueMetrics`` calls them once per lane and metric and then only calls
    what they returned, so the backend chooses how a lane is represented
    (``LocalMetrics``: a ``.<lane>`` name; OpenTelemetry: a ``lane``
    attribute). Without them, ``QueueMetrics`` records the ``.<lane>`` name
    and the overall name through the methods below.
    """

    def increment_counter(self, name: str, value: int = 1) -> None: ...

    def set_gauge(self, name: str, value: float) -> None: ...

    def record_histogram(self, name: str, value: float) -> None: ...

    def snapshot(self) -> MetricsSnapshot: ...

    def reset(self) -> None: ...

    def get_counter(self, name: str) -> Optional[int]: ...

    def get_gauge(self, name: str) -> Optional[float]: ...

    def get_histogram_stats(self, name: str) -> Optional[HistogramStats]: ...


# ---- LocalMetrics internals ------------------------------------------------------

# Under the GIL a C function that runs no Python code cannot be interrupted
# by another thread, so ``next()`` on ``itertools.count`` and ``list.append``
# are atomic (CPython's threading module numbers threads with the same
# ``count().__next__``). Without a GIL (free-threaded builds) we take a lock.
_GIL = getattr(sys, "_is_gil_enabled", lambda: True)()


class _Counter:
    """A counter whose +1 is ``next()`` on an ``itertools.count``: no lock,
    no lost updates. Reading also advances the count, which ``_skip``
    remembers; other amounts and resets take the lock."""

    __slots__ = ("_extra", "_lock", "_skip", "_ticks", "children", "inc", "touched")

    def __init__(self) -> None:
        self._ticks = itertools.count()
        self._lock = threading.Lock()
        self._skip = 0  # ticks that were reads or resets, not increments
        self._extra = 0  # amounts other than 1
        self.touched = False  # recorded since the last reset (even by + 0)
        self.children: tuple[_Counter, ...] = ()
        self.inc: Callable[[], Any] = self._ticks.__next__ if _GIL else self._locked_inc

    def _locked_inc(self) -> None:
        with self._lock:
            self._extra += 1

    def add(self, value: int) -> None:
        if value == 1:
            self.inc()
        else:
            with self._lock:
                self._extra += value
        self.touched = True

    def own_value(self) -> int:
        with self._lock:
            ticks = next(self._ticks) - self._skip
            self._skip += 1
            return ticks + self._extra

    def value(self) -> int:
        return self.own_value() + sum(child.value() for child in self.children)

    def visible(self) -> bool:
        return self.touched or self.own_value() > 0 or any(c.visible() for c in self.children)

    def reset(self) -> None:
        with self._lock:
            self._skip = next(self._ticks) + 1
            self._extra = 0
            self.touched = False


# 64 buckets per power of two. A bucket's key is a double's top 18 bits
# (sign, exponent, 6 mantissa bits) with the 6 bits below them zeroed, read as
# a 32-bit integer: the top 3 bytes of each double, the lowest of them masked.
# Built with byte slicing so no Python code runs per sample; for positive
# values the key grows with the value.
_KEY_SHIFT = 40  # bits below the key's low byte
_KEEP_TOP_2_BITS = bytes(b & 0xC0 for b in range(256))
_PACK_Q = struct.Struct("<Q")
_PACK_D = struct.Struct("<d")
EXACT_SAMPLES = 1024
_PERCENTILES = (0.50, 0.90, 0.95, 0.99)


# Where the key's low, middle and high bytes go in a native 32-bit integer.
_LOW, _MID, _HIGH = (0, 1, 2) if sys.byteorder == "little" else (3, 2, 1)


def _bucket_keys(samples: list[float]) -> memoryview:
    doubles = array("d", samples)
    if sys.byteorder == "big":
        doubles.byteswap()  # the slicing below reads little-endian doubles
    raw = doubles.tobytes()
    keys = bytearray(4 * len(samples))
    keys[_LOW::4] = raw[5::8].translate(_KEEP_TOP_2_BITS)
    keys[_MID::4] = raw[6::8]
    keys[_HIGH::4] = raw[7::8]
    return memoryview(keys).cast("I")


def _bits_to_float(bits: int) -> float:
    return _PACK_D.unpack(_PACK_Q.pack(bits & 0xFFFF_FFFF_FFFF_FFFF))[0]


def _bucket_value(key: int) -> float:
    """The middle of a bucket (a sample is at most 1/128 of itself away)."""
    low = _bits_to_float(key << _KEY_SHIFT)
    high = _bits_to_float((key + 64) << _KEY_SHIFT)
    if math.isinf(low) or math.isnan(high) or math.isinf(high):
        return low
    return (low + high) / 2


def _rank(count: int, p: float) -> int:
    """The original's rule: the sample at index min(floor(n*p), n-1)."""
    return min(int(count * p), count - 1)


class _Histogram:
    """Samples are appended to ``_raw`` without a lock (``list.append`` is
    atomic). While the histogram has seen at most ``EXACT_SAMPLES`` samples it
    keeps them all and answers exactly; past that, ``_fold`` moves them into
    bucket counts in a few C-level passes, so recording stays one append and
    memory stays bounded."""

    __slots__ = ("_buckets", "_count", "_lock", "_max", "_min", "_pending", "_raw", "_sum",
                 "children")

    def __init__(self) -> None:
        self._raw: list[float] = []
        self._lock = threading.Lock()
        self._buckets: Counter[int] = Counter()
        self._count = 0  # folded samples
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf
        # Bucket counts of batches added in C (add_bucketed), not merged yet.
        self._pending: Any = None
        self.children: tuple[_Histogram, ...] = ()

    def record(self, value: float) -> None:
        raw = self._raw
        raw.append(value)
        if len(raw) > EXACT_SAMPLES:
            self._fold()

    def record_many(self, values: list[float]) -> None:
        raw = self._raw
        raw.extend(values)  # atomic too: one C call
        if len(raw) > EXACT_SAMPLES:
            self._fold()

    def exact_room(self) -> int:
        """Samples it can still take while it answers exactly."""
        if self._count or self._pending is not None:
            return 0
        return max(0, EXACT_SAMPLES - len(self._raw))

    def add_bucketed(self, values: Any, n: int) -> None:
        """Adds n samples from a C array of doubles (the engine's timing
        log) to bucket counts kept in C, merged into this histogram only
        when it is read: a batch costs no Python object per sample and no
        Python work per bucket."""
        with self._lock:
            if self._pending is None:
                self._pending = ffi.gc(lib.lc_buckets_new(), lib.lc_buckets_free)
                if self._pending == ffi.NULL:
                    self._pending = None
                    raise MemoryError("could not allocate histogram buckets")
            if lib.lc_buckets_add_ms(self._pending, values, n) < 0:
                raise MemoryError("could not grow histogram buckets")

    def _merge_pending(self) -> None:
        """Moves the C bucket counts into ``_buckets`` (lock held)."""
        pending = self._pending
        if pending is None:
            return
        distinct = lib.lc_buckets_distinct(pending)
        keys = ffi.new("uint32_t[]", max(1, distinct))
        counts = ffi.new("uint64_t[]", max(1, distinct))
        summary = ffi.new("double[4]")
        taken = lib.lc_buckets_take(pending, keys, counts, distinct, summary)
        if taken <= 0 or summary[0] == 0:
            return
        buckets = self._buckets
        get = buckets.get
        for key, count in zip(ffi.unpack(keys, taken), ffi.unpack(counts, taken)):
            buckets[key] = get(key, 0) + count
        self._count += int(summary[0])
        self._sum += summary[1]
        self._min = min(self._min, summary[2])
        self._max = max(self._max, summary[3])

    def _fold(self) -> None:
        with self._lock:
            raw = self._raw
            taken = len(raw)
            if not taken:
                return
            # Slicing then deleting the same prefix keeps samples appended
            # meanwhile (by threads that hold no lock) for the next fold.
            samples = raw[:taken]
            del raw[:taken]
            total = sum(samples)
            if math.isnan(total):
                samples = [v for v in samples if not math.isnan(v)]
                total = sum(samples)
                if not samples:
                    return
            self._count += len(samples)
            self._sum += total
            self._min = min(self._min, min(samples))
            self._max = max(self._max, max(samples))
            self._buckets.update(_bucket_keys(samples))

    def reset(self) -> None:
        with self._lock:
            del self._raw[:]
            self._pending = None
            self._buckets = Counter()
            self._count = 0
            self._sum = 0.0
            self._min = math.inf
            self._max = -math.inf

    def members(self) -> list[_Histogram]:
        return [self, *(m for child in self.children for m in child.members())]

    def count(self) -> int:
        for h in self.members():
            if h._pending is not None:
                with h._lock:
                    h._merge_pending()
        return sum(h._count + len(h._raw) for h in self.members())

    def stats(self) -> HistogramStats:
        members = self.members()
        if all(h._count == 0 and h._pending is None for h in members):  # nothing folded: exact
            return _exact_stats([v for h in members for v in h._raw[:] if not math.isnan(v)])
        for h in members:
            h._fold()
        buckets: Counter[int] = Counter()
        count, total, low, high = 0, 0.0, math.inf, -math.inf
        for h in members:
            with h._lock:
                h._merge_pending()
                buckets.update(h._buckets)
                count += h._count
                total += h._sum
                low = min(low, h._min)
                high = max(high, h._max)
        return _bucket_stats(buckets, count, total, low, high)


def _exact_stats(samples: list[float]) -> HistogramStats:
    if not samples:
        return HistogramStats()
    samples.sort()
    n = len(samples)
    total = math.fsum(samples)
    p50, p90, p95, p99 = (samples[_rank(n, p)] for p in _PERCENTILES)
    return HistogramStats(n, total, samples[0], samples[-1], total / n, p50, p90, p95, p99)


def _bucket_stats(buckets: Counter[int], count: int, total: float,
                  low: float, high: float) -> HistogramStats:
    if count == 0:
        return HistogramStats()
    ordered = sorted((_bucket_value(key), n) for key, n in buckets.items())
    found = []
    targets = iter(_rank(count, p) for p in _PERCENTILES)
    target = next(targets)
    seen = 0
    for value, n in ordered:
        seen += n
        while target is not None and target < seen:
            found.append(min(max(value, low), high))
            target = next(targets, None)
        if target is None:
            break
    p50, p90, p95, p99 = found
    return HistogramStats(count, total, low, high, total / count, p50, p90, p95, p99)


# ---- LocalMetrics --------------------------------------------------------------


class LocalMetrics:
    """In-memory backend. Thread-safe: recording takes no lock (see
    ``_Counter``, ``_Histogram``); creating a metric and reading take one.

    ``reset()`` zeroes every metric in place, so names bound by a
    ``QueueMetrics`` keep working; a metric with nothing recorded since the
    reset reads as absent (None from the getters, left out of snapshots).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, _Counter] = {}
        self._gauges: dict[str, float] = {}
        self._histograms: dict[str, _Histogram] = {}

    # -- the backend methods

    def increment_counter(self, name: str, value: int = 1) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"counter {name!r}: increment must be a non-negative int, "
                             f"got {value!r}")
        self._counter(name).add(value)

    def set_gauge(self, name: str, value: float) -> None:
        self._gauges[name] = float(value)

    def record_histogram(self, name: str, value: float) -> None:
        self._histogram(name).record(float(value))

    def get_counter(self, name: str) -> Optional[int]:
        counter = self._counters.get(name)
        if counter is None or not counter.visible():
            return None
        return counter.value()

    def get_gauge(self, name: str) -> Optional[float]:
        return self._gauges.get(name)

    def get_histogram_stats(self, name: str) -> Optional[HistogramStats]:
        histogram = self._histograms.get(name)
        if histogram is None or histogram.count() == 0:
            return None
        return histogram.stats()

    def snapshot(self) -> MetricsSnapshot:
        with self._lock:
            counters = list(self._counters.items())
            histograms = list(self._histograms.items())
        return MetricsSnapshot(
            counters={name: c.value() for name, c in counters if c.visible()},
            gauges=dict(self._gauges),
            histograms={name: h.stats() for name, h in histograms if h.count()},
        )

    def reset(self) -> None:
        with self._lock:
            counters = list(self._counters.values())
            histograms = list(self._histograms.values())
            self._gauges.clear()
        for counter in counters:
            counter.reset()
        for histogram in histograms:
            histogram.reset()

    # -- binding for QueueMetrics: record the lane once, derive the total

    def bind_counter(self, name: str, lane_id: str) -> Callable[[], Any]:
        child = self._counter(lane_metric(name, lane_id))
        parent = self._counter(name)
        with self._lock:
            if child not in parent.children:
                parent.children = (*parent.children, child)
        return child.inc

    def bind_counter_adder(self, name: str, lane_id: str) -> Callable[[int], None]:
        self.bind_counter(name, lane_id)
        return self._counter(lane_metric(name, lane_id)).add

    def bind_histogram(self, name: str, lane_id: str) -> Callable[[float], None]:
        return self.bind_histogram_object(name, lane_id).record

    def bind_histogram_many(self, name: str, lane_id: str) -> Callable[[list[float]], None]:
        return self.bind_histogram_object(name, lane_id).record_many

    def bind_histogram_object(self, name: str, lane_id: str) -> _Histogram:
        child = self._histogram(lane_metric(name, lane_id))
        parent = self._histogram(name)
        with self._lock:
            if child not in parent.children:
                parent.children = (*parent.children, child)
        return child

    def bind_gauge(self, name: str, lane_id: str) -> Callable[[float], None]:
        gauges = self._gauges
        full = lane_metric(name, lane_id)

        def set_value(value: float) -> None:
            gauges[full] = float(value)

        return set_value

    def _counter(self, name: str) -> _Counter:
        counter = self._counters.get(name)
        if counter is None:
            with self._lock:
                counter = self._counters.setdefault(name, _Counter())
        return counter

    def _histogram(self, name: str) -> _Histogram:
        histogram = self._histograms.get(name)
        if histogram is None:
            with self._lock:
                histogram = self._histograms.setdefault(name, _Histogram())
        return histogram


# ---- QueueMetrics ----------------------------------------------------------------


class _LaneHooks:
    """What one lane's hooks call, resolved once per lane."""

    __slots__ = ("active", "add_completed", "add_submitted", "cancelled", "completed",
                 "dead_lettered", "depth", "failed", "latency", "latency_many", "retried",
                 "submitted", "timeout", "wait", "wait_many")

    def __init__(self, backend: Any, lane_id: str) -> None:
        counter = getattr(backend, "bind_counter", None) or _unbound_counter(backend)
        adder = getattr(backend, "bind_counter_adder", None) or _counter_adder(backend, counter)
        histogram = getattr(backend, "bind_histogram", None) or _unbound_histogram(backend)
        many = getattr(backend, "bind_histogram_many", None) or _histogram_many(histogram)
        gauge = getattr(backend, "bind_gauge", None) or _unbound_gauge(backend)
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


class _LocalLaneHooks(_LaneHooks):
    """For ``LocalMetrics``: also the histogram objects, so a queue's feed
    can add the engine's batches to them as C bucket counts."""

    __slots__ = ("latency_histogram", "wait_histogram")

    def __init__(self, backend: LocalMetrics, lane_id: str) -> None:
        super().__init__(backend, lane_id)
        self.latency_histogram = backend.bind_histogram_object(COMMAND_LATENCY, lane_id)
        self.wait_histogram = backend.bind_histogram_object(COMMAND_WAIT_TIME, lane_id)


def _unbound_counter(backend: Any) -> Callable[[str, str], Callable[[], None]]:
    def bind(name: str, lane_id: str) -> Callable[[], None]:
        per_lane = lane_metric(name, lane_id)
        increment = backend.increment_counter

        def add_one() -> None:
            increment(per_lane, 1)
            increment(name, 1)

        return add_one

    return bind


def _counter_adder(backend: Any, bind: Callable[[str, str], Callable[[], Any]]
                   ) -> Callable[[str, str], Callable[[int], None]]:
    """Adding n through whatever the backend offers: ``increment_counter``
    with n when it records names itself, else its bound +1, n times."""
    if getattr(backend, "bind_counter", None) is None:
        def bind_unbound(name: str, lane_id: str) -> Callable[[int], None]:
            per_lane = lane_metric(name, lane_id)
            increment = backend.increment_counter

            def add(n: int) -> None:
                increment(per_lane, n)
                increment(name, n)

            return add

        return bind_unbound

    def bind_repeated(name: str, lane_id: str) -> Callable[[int], None]:
        add_one = bind(name, lane_id)

        def add(n: int) -> None:
            for _ in range(n):
                add_one()

        return add

    return bind_repeated


def _histogram_many(bind: Callable[[str, str], Callable[[float], None]]
                    ) -> Callable[[str, str], Callable[[list[float]], None]]:
    def bind_many(name: str, lane_id: str) -> Callable[[list[float]], None]:
        observe = bind(name, lane_id)

        def record_all(values: list[float]) -> None:
            for value in values:
                observe(value)

        return record_all

    return bind_many


def _unbound_histogram(backend: Any) -> Callable[[str, str], Callable[[float], None]]:
    def bind(name: str, lane_id: str) -> Callable[[float], None]:
        per_lane = lane_metric(name, lane_id)
        record = backend.record_histogram

        def observe(value: float) -> None:
            record(per_lane, value)
            record(name, value)

        return observe

    return bind


def _unbound_gauge(backend: Any) -> Callable[[str, str], Callable[[float], None]]:
    def bind(name: str, lane_id: str) -> Callable[[float], None]:
        per_lane = lane_metric(name, lane_id)
        return lambda value: backend.set_gauge(per_lane, value)

    return bind


GaugeSource = Callable[[], Iterable[tuple[str, int, int]]]


class QueueMetrics:
    """The queue's metrics: one hook per thing that happens to a command.

    Copies share the backend (as the original's ``Clone``). Durations are
    given in seconds and recorded in milliseconds.
    """

    def __init__(self, backend: Optional[MetricsBackend] = None) -> None:
        self._backend: Any = backend if backend is not None else LocalMetrics()
        self._lanes: dict[str, _LaneHooks] = {}
        self._bind_lock = threading.Lock()
        self._gauge_source: Optional[GaugeSource] = None
        self._refreshers: tuple[Callable[[], None], ...] = ()
        # A backend that is read on its own schedule (OpenTelemetry: when a
        # reader collects) asks for a refresh first.
        set_refresher = getattr(self._backend, "set_refresher", None)
        if set_refresher is not None:
            set_refresher(self.refresh)
        self._hooks_class: type[_LaneHooks] = (
            _LocalLaneHooks if isinstance(self._backend, LocalMetrics) else _LaneHooks)

    @classmethod
    def local(cls) -> QueueMetrics:
        return cls(LocalMetrics())

    def backend(self) -> MetricsBackend:
        return self._backend

    def _bind(self, lane_id: str) -> _LaneHooks:
        with self._bind_lock:
            hooks = self._lanes.get(lane_id)
            if hooks is None:
                hooks = self._hooks_class(self._backend, str(lane_id))
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

    # -- batches, from a queue's engine (see pylane/metrics_feed.py)

    def add_counts(self, lane_id: str, submitted: int, completed: int) -> None:
        """Adds to the submitted and completed counters: the queue counts
        those in its engine and hands over the increase in batches."""
        hooks = self._lanes.get(lane_id) or self._bind(lane_id)
        if submitted:
            hooks.add_submitted(submitted)
        if completed:
            hooks.add_completed(completed)

    def local_histograms(self, lane_id: str) -> Optional[tuple[_Histogram, _Histogram]]:
        """The lane's (wait, latency) histograms when the backend is a
        ``LocalMetrics``, which can take samples bucketed in C; else None."""
        hooks = self._lanes.get(lane_id) or self._bind(lane_id)
        if isinstance(hooks, _LocalLaneHooks):
            return hooks.wait_histogram, hooks.latency_histogram
        return None

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
    if isinstance(metrics, MetricsBackend):
        return QueueMetrics(metrics)
    raise InvalidConfigError(
        f"metrics must be a QueueMetrics or a MetricsBackend, got {type(metrics).__name__}"
    )
