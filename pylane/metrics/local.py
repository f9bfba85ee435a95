"""``LocalMetrics``: the in-memory backend, with its lock-free counters and
bounded histograms.

Why recording is cheap: a counter's +1 is one C call and a sample is one
``list.append``, with no lock (see ``_Counter`` and ``_Histogram``); a lane's
value is recorded once, and the overall counter and histogram are derived
from the lanes' when read.

Why histograms are bounded (the original kept every sample and re-sorted them
all on each record): up to ``EXACT_SAMPLES`` samples are kept as they are and
percentiles are exact; past that, samples are folded into log-linear buckets
(64 per power of two, from the float's own bits), so memory depends on the
range of values, not their number, and a percentile is off by at most 0.8%.
The engine's timing batches can also be counted into buckets in C
(``_Histogram.add_bucketed``), so no Python float is made per sample.
"""

from __future__ import annotations

import itertools
import math
import struct
import sys
import threading
from array import array
from collections import Counter
from typing import Any, Callable, Optional, TypeVar

from .._lane_core import ffi, lib
from .names import HistogramStats, MetricsBackend, MetricsSnapshot, lane_metric

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
    value: float = _PACK_D.unpack(_PACK_Q.pack(bits & 0xFFFF_FFFF_FFFF_FFFF))[0]  # "<d"
    return value


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
    target: Optional[int] = next(targets)
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


# A lane's metric and the overall one it is a child of.
_Metric = TypeVar("_Metric", _Counter, _Histogram)


class LocalMetrics(MetricsBackend):
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
    # (so every bind_* is overridden, except bind_gauge: gauges are per lane)

    def bind_counter(self, name: str, lane_id: str) -> Callable[[], Any]:
        return self._lane_child(self._counter, name, lane_id).inc

    def bind_counter_adder(self, name: str, lane_id: str) -> Callable[[int], None]:
        return self._lane_child(self._counter, name, lane_id).add

    def bind_histogram(self, name: str, lane_id: str) -> Callable[[float], None]:
        return self.bind_histogram_buckets(name, lane_id).record

    def bind_histogram_many(self, name: str, lane_id: str) -> Callable[[list[float]], None]:
        return self.bind_histogram_buckets(name, lane_id).record_many

    def bind_histogram_buckets(self, name: str, lane_id: str) -> _Histogram:
        """The lane's histogram, which takes the engine's batches in C."""
        return self._lane_child(self._histogram, name, lane_id)

    def _lane_child(self, get: Callable[[str], _Metric], name: str, lane_id: str) -> _Metric:
        """The lane's metric, made a child of the overall one."""
        child = get(lane_metric(name, lane_id))
        parent: _Metric = get(name)
        with self._lock:
            if child not in parent.children:
                parent.children = (*parent.children, child)
        return child

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
