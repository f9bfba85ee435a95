"""OpenTelemetry backend for ``QueueMetrics``, on ``opentelemetry-api`` only.

The application picks the SDK and exporter (OTLP, Prometheus, ...) and sets
the global ``MeterProvider``, or passes a meter; this module only creates
instruments. Without ``opentelemetry-api`` installed, creating the backend
raises ImportError saying what to install; importing ``pylane`` never needs it.

How the metric names map (when recorded through ``QueueMetrics``):

- counters ``lane.commands.<what>[.<lane>]`` -> ObservableCounter
  ``lane.commands.<what>``, unit ``{command}``;
- gauges ``lane.queue.depth.<lane>`` / ``lane.queue.active.<lane>`` ->
  ObservableGauge ``lane.queue.depth`` / ``lane.queue.active``, unit
  ``{command}``;
- histograms ``lane.command.latency_ms[.<lane>]`` and
  ``lane.command.wait_time_ms[.<lane>]`` -> Histogram of the base name, unit
  ``ms``, with bucket boundaries from 0.1 ms to 60 s.

The lane is the attribute ``lane=<lane id>`` on each data point, not a name
suffix: OTel aggregates over attributes, so the overall value is the sum over
lanes and is not recorded twice. Names passed straight to
``increment_counter`` / ``set_gauge`` / ``record_histogram`` are used as
they are, without attributes.

Why counters and gauges are observable: the Python SDK spends about 5 us on
each synchronous measurement, more than the queue spends on a command. So a
count is kept here (one C-level increment) and reported as a cumulative
total when the reader collects; a gauge reports the last value set (the
original added every value to an up-down counter, so gauges grew without
bound). OTel has no observable histogram, so each latency sample is
recorded synchronously.

OTel instruments cannot be read back, so by default the backend also keeps a
``LocalMetrics`` copy: ``snapshot()`` and the getters answer from it and
``reset()`` clears it (exported counters stay cumulative, as OTel requires).
``keep_local=False`` drops the copy; the getters then return None.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

from .metrics.local import LocalMetrics, _Counter
from .metrics.names import (
    COMMAND_LATENCY,
    COMMAND_WAIT_TIME,
    COMMANDS_CANCELLED,
    COMMANDS_COMPLETED,
    COMMANDS_DEAD_LETTERED,
    COMMANDS_FAILED,
    COMMANDS_RETRIED,
    COMMANDS_SUBMITTED,
    COMMANDS_TIMEOUT,
    COUNTER_NAMES,
    GAUGE_NAMES,
    HISTOGRAM_NAMES,
    QUEUE_ACTIVE,
    QUEUE_DEPTH,
    HistogramStats,
    MetricsBackend,
    MetricsSnapshot,
    tee,
)

logger = logging.getLogger("pylane.otel")

METER_NAME = "a3s-lane"
LANE_ATTRIBUTE = "lane"

DESCRIPTIONS = {
    COMMANDS_SUBMITTED: "Commands submitted",
    COMMANDS_COMPLETED: "Commands that completed successfully",
    COMMANDS_FAILED: "Commands that failed",
    COMMANDS_TIMEOUT: "Commands that timed out",
    COMMANDS_RETRIED: "Retries scheduled",
    COMMANDS_DEAD_LETTERED: "Commands moved to the dead letter queue",
    COMMANDS_CANCELLED: "Commands cancelled before they ran",
    QUEUE_DEPTH: "Commands waiting in the lane",
    QUEUE_ACTIVE: "Commands running in the lane",
    COMMAND_LATENCY: "Run time of a command attempt",
    COMMAND_WAIT_TIME: "Time from submit to start",
}

# Finer than the SDK's default boundaries at the low end: queue waits and
# short commands are often well under 5 ms.
LATENCY_BUCKETS_MS = (
    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
)


def _metrics_api() -> Any:
    try:
        from opentelemetry import metrics
    except ImportError as error:
        raise ImportError(
            "OtelMetricsBackend needs the OpenTelemetry API: pip install opentelemetry-api "
            "(plus opentelemetry-sdk and an exporter in the application)"
        ) from error
    return metrics


def unit_for(name: str) -> str:
    """UCUM unit for a metric name: ``ms`` for ``*_ms``, ``{command}`` for
    the lane counters and gauges."""
    if name.endswith("_ms"):
        return "ms"
    if name.startswith(("lane.commands.", "lane.queue.")):
        return "{command}"
    return ""


def _package_version() -> Optional[str]:
    try:
        from importlib.metadata import version

        return version("a3s-lane")
    except Exception:  # not installed as a distribution
        return None


Attributes = Optional[dict[str, str]]


class _Gauge:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = float(value)


class OtelMetricsBackend(MetricsBackend):
    """A ``MetricsBackend`` that records into OpenTelemetry instruments.

    ``meter`` defaults to the global meter named ``a3s-lane``. Instruments are
    created on first use, once per name.
    """

    def __init__(self, meter: Any = None, *, keep_local: bool = True) -> None:
        api = _metrics_api()
        self._observation = api.Observation
        self._meter = meter if meter is not None else api.get_meter(
            METER_NAME, _package_version()
        )
        self._local: Optional[LocalMetrics] = LocalMetrics() if keep_local else None
        # Lock order: _create_lock, then the SDK's; the SDK holds its lock
        # while it runs our callbacks, which take only _lock (never held
        # while calling the SDK), so the two paths cannot deadlock.
        self._create_lock = threading.Lock()
        self._lock = threading.Lock()
        self._histograms: dict[str, Any] = {}
        # Observable instrument (kind, name) -> its data points: attribute
        # key -> (attributes, the _Counter or _Gauge holding the value).
        self._series: dict[tuple[str, str], dict[tuple[Any, ...], tuple[Attributes, Any]]] = {}
        self._refresh: Optional[Callable[[], None]] = None
        # The queue's instruments exist up front: creating one inside a
        # collection (a gauge refresh meeting a new lane) would deadlock.
        for name in COUNTER_NAMES:
            self._series_for("counter", name)
        for name in GAUGE_NAMES:
            self._series_for("gauge", name)
        for name in HISTOGRAM_NAMES:
            self._histogram(name)

    @property
    def meter(self) -> Any:
        return self._meter

    def set_refresher(self, refresh: Optional[Callable[[], None]]) -> None:
        """Called by ``QueueMetrics``: ``refresh()`` hands over what the
        queues counted, timed and hold since the last call; it runs at the
        start of each collection."""
        self._refresh = refresh

    def _refresh_now(self) -> None:
        refresh = self._refresh
        if refresh is not None:
            try:
                refresh()
            except Exception:
                logger.exception("refreshing the queue's metrics failed; reporting the last values")

    # -- instruments

    def _series_for(self, kind: str, name: str) -> dict[tuple[Any, ...], tuple[Attributes, Any]]:
        series = self._series.get((kind, name))
        if series is None:
            with self._create_lock:
                series = self._series.get((kind, name))
                if series is None:
                    series = {}
                    self._observe(kind, name, series)
                    self._series[(kind, name)] = series
        return series

    def _point(self, kind: str, name: str, attributes: Attributes) -> Any:
        """The value holder of one data point, made on first use."""
        series = self._series_for(kind, name)
        key = tuple(sorted(attributes.items())) if attributes else ()
        point = series.get(key)
        if point is None:
            with self._lock:
                point = series.get(key)
                if point is None:
                    point = (attributes, _Counter() if kind == "counter" else _Gauge())
                    series[key] = point
        return point[1]

    def _observe(self, kind: str, name: str,
                 series: dict[tuple[Any, ...], tuple[Attributes, Any]]) -> None:
        observation = self._observation

        # Each callback refreshes first: the SDK runs them in creation order,
        # and a refresh is cheap when nothing happened since the last one.
        def observe_counter(_options: Any) -> list[Any]:
            self._refresh_now()
            return [observation(holder.value(), attributes)
                    for attributes, holder in list(series.values())]

        def observe_gauge(_options: Any) -> list[Any]:
            self._refresh_now()
            return [observation(holder.value, attributes)
                    for attributes, holder in list(series.values())]

        if kind == "counter":
            create, callback = self._meter.create_observable_counter, observe_counter
        else:
            create, callback = self._meter.create_observable_gauge, observe_gauge
        create(name, callbacks=[callback], unit=unit_for(name),
               description=DESCRIPTIONS.get(name, ""))

    def _histogram(self, name: str) -> Any:
        histogram = self._histograms.get(name)
        if histogram is None:
            with self._create_lock:
                histogram = self._histograms.get(name)
                if histogram is None:
                    histogram = self._create_histogram(name)
                    self._histograms[name] = histogram
        return histogram

    def _create_histogram(self, name: str) -> Any:
        unit = unit_for(name)
        description = DESCRIPTIONS.get(name, "")
        if unit == "ms":
            try:
                return self._meter.create_histogram(
                    name, unit=unit, description=description,
                    explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_MS,
                )
            except TypeError:  # an API older than the bucket advice
                pass
        return self._meter.create_histogram(name, unit=unit, description=description)

    # -- MetricsBackend

    def increment_counter(self, name: str, value: int = 1) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"counter {name!r}: increment must be a non-negative int, "
                             f"got {value!r}")
        self._point("counter", name, None).add(value)
        if self._local is not None:
            self._local.increment_counter(name, value)

    def set_gauge(self, name: str, value: float) -> None:
        self._point("gauge", name, None).set(value)
        if self._local is not None:
            self._local.set_gauge(name, value)

    def record_histogram(self, name: str, value: float) -> None:
        self._histogram(name).record(float(value))
        if self._local is not None:
            self._local.record_histogram(name, value)

    def get_counter(self, name: str) -> Optional[int]:
        return None if self._local is None else self._local.get_counter(name)

    def get_gauge(self, name: str) -> Optional[float]:
        return None if self._local is None else self._local.get_gauge(name)

    def get_histogram_stats(self, name: str) -> Optional[HistogramStats]:
        return None if self._local is None else self._local.get_histogram_stats(name)

    def snapshot(self) -> MetricsSnapshot:
        return MetricsSnapshot() if self._local is None else self._local.snapshot()

    def reset(self) -> None:
        if self._local is not None:
            self._local.reset()

    # -- per-lane binding for QueueMetrics: one instrument, a ``lane`` attribute
    # (so no ``.<lane>`` name and no overall series), teed with the local copy.

    def bind_counter(self, name: str, lane_id: str) -> Callable[[], Any]:
        exported = self._point("counter", name, {LANE_ATTRIBUTE: lane_id}).inc
        return self._with_local(exported, LocalMetrics.bind_counter, name, lane_id)

    def bind_counter_adder(self, name: str, lane_id: str) -> Callable[[int], None]:
        exported = self._point("counter", name, {LANE_ATTRIBUTE: lane_id}).add
        return self._with_local(exported, LocalMetrics.bind_counter_adder, name, lane_id)

    def bind_histogram(self, name: str, lane_id: str) -> Callable[[float], None]:
        record = self._histogram(name).record
        attributes = {LANE_ATTRIBUTE: lane_id}

        def observe(value: float) -> None:
            record(value, attributes)

        return self._with_local(observe, LocalMetrics.bind_histogram, name, lane_id)

    def bind_histogram_many(self, name: str, lane_id: str) -> Callable[[list[float]], None]:
        record = self._histogram(name).record
        attributes = {LANE_ATTRIBUTE: lane_id}

        def record_all(values: list[float]) -> None:
            for value in values:  # OTel has no batch record
                record(value, attributes)

        # The local copy takes the whole list at once.
        return self._with_local(record_all, LocalMetrics.bind_histogram_many, name, lane_id)

    def bind_gauge(self, name: str, lane_id: str) -> Callable[[float], None]:
        exported = self._point("gauge", name, {LANE_ATTRIBUTE: lane_id}).set
        return self._with_local(exported, LocalMetrics.bind_gauge, name, lane_id)

    def _with_local(self, exported: Callable[..., Any],
                    bind: Callable[[LocalMetrics, str, str], Callable[..., Any]],
                    name: str, lane_id: str) -> Callable[..., Any]:
        """``exported``, or with a local copy, a callable calling both it and
        what the copy's ``bind`` method returns."""
        if self._local is None:
            return exported
        return tee(exported, bind(self._local, name, lane_id))
