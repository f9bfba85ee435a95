"""OpenTelemetry backend for ``QueueMetrics``, on ``opentelemetry-api`` only.

The application picks the SDK and exporter (OTLP, Prometheus, ...) and sets
the global ``MeterProvider``, or passes a meter; this module only creates
instruments. Without ``opentelemetry-api`` installed, creating the backend
raises ImportError saying what to install; importing ``pylane`` never needs it.

How the metric names map (when recorded through ``QueueMetrics``):

- counters ``lane.commands.<what>[.<lane>]`` -> Counter ``lane.commands.<what>``,
  unit ``{command}``;
- gauges ``lane.queue.depth.<lane>`` / ``lane.queue.active.<lane>`` -> Gauge
  ``lane.queue.depth`` / ``lane.queue.active``, unit ``{command}``;
- histograms ``lane.command.latency_ms[.<lane>]`` and
  ``lane.command.wait_time_ms[.<lane>]`` -> Histogram of the base name, unit
  ``ms``, with bucket boundaries from 0.1 ms to 60 s.

The lane is the attribute ``lane=<lane id>`` on each data point, not a name
suffix: OTel aggregates over attributes, so the overall value is the sum over
lanes and is not recorded twice. Names passed straight to
``increment_counter`` / ``set_gauge`` / ``record_histogram`` are used as
they are, without attributes.

Gauges are set, never added: the synchronous ``Gauge`` when the installed API
has one, else an observable gauge reporting the last value set (the original
added every value to an up-down counter, so gauges grew without bound).

OTel instruments cannot be read back, so by default the backend also keeps a
``LocalMetrics`` copy: ``snapshot()`` and the getters answer from it and
``reset()`` clears it (exported OTel counters stay cumulative, as OTel
requires). ``keep_local=False`` drops the copy; the getters then return None.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

from .metrics import (
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
    HistogramStats,
    LocalMetrics,
    MetricsSnapshot,
)

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


class OtelMetricsBackend:
    """A ``MetricsBackend`` that records into OpenTelemetry instruments.

    ``meter`` defaults to the global meter named ``a3s-lane``. Instruments are
    created on first use, once per name.
    """

    def __init__(self, meter: Any = None, *, keep_local: bool = True) -> None:
        api = _metrics_api()
        self._api = api
        self._meter = meter if meter is not None else api.get_meter(
            METER_NAME, _package_version()
        )
        self._local: Optional[LocalMetrics] = LocalMetrics() if keep_local else None
        self._lock = threading.Lock()
        self._instruments: dict[tuple[str, str], Any] = {}
        # Last value per (gauge, attributes), for the observable gauge used
        # when the API has no synchronous Gauge.
        self._gauge_values: dict[str, dict[tuple[tuple[str, Any], ...], float]] = {}
        self._sync_gauges = hasattr(self._meter, "create_gauge")

    @property
    def meter(self) -> Any:
        return self._meter

    # -- instruments

    def _instrument(self, kind: str, name: str) -> Any:
        key = (kind, name)
        instrument = self._instruments.get(key)
        if instrument is not None:
            return instrument
        with self._lock:
            instrument = self._instruments.get(key)
            if instrument is None:
                instrument = self._create(kind, name)
                self._instruments[key] = instrument
        return instrument

    def _create(self, kind: str, name: str) -> Any:
        meter = self._meter
        unit = unit_for(name)
        description = DESCRIPTIONS.get(name, "")
        if kind == "counter":
            return meter.create_counter(name, unit=unit, description=description)
        if kind == "histogram":
            if unit == "ms":
                try:
                    return meter.create_histogram(
                        name, unit=unit, description=description,
                        explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_MS,
                    )
                except TypeError:  # an API older than the bucket advice
                    pass
            return meter.create_histogram(name, unit=unit, description=description)
        if self._sync_gauges:
            return meter.create_gauge(name, unit=unit, description=description)
        values = self._gauge_values.setdefault(name, {})
        observation = self._api.Observation

        def observe(_options: Any) -> list[Any]:
            return [observation(value, dict(attrs)) for attrs, value in list(values.items())]

        return meter.create_observable_gauge(
            name, callbacks=[observe], unit=unit, description=description
        )

    def _gauge_setter(self, name: str,
                      attributes: Optional[dict[str, str]]) -> Callable[[float], None]:
        gauge = self._instrument("gauge", name)
        if self._sync_gauges:
            record = gauge.set
            return lambda value: record(value, attributes)
        values = self._gauge_values[name]
        key = tuple(sorted((attributes or {}).items()))

        def set_value(value: float) -> None:
            values[key] = value

        return set_value

    # -- MetricsBackend

    def increment_counter(self, name: str, value: int = 1) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"counter {name!r}: increment must be a non-negative int, "
                             f"got {value!r}")
        self._instrument("counter", name).add(value)
        if self._local is not None:
            self._local.increment_counter(name, value)

    def set_gauge(self, name: str, value: float) -> None:
        self._gauge_setter(name, None)(float(value))
        if self._local is not None:
            self._local.set_gauge(name, value)

    def record_histogram(self, name: str, value: float) -> None:
        self._instrument("histogram", name).record(float(value))
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

    def bind_counter(self, name: str, lane_id: str) -> Callable[[], None]:
        add = self._instrument("counter", name).add
        attributes = {LANE_ATTRIBUTE: lane_id}
        local = None if self._local is None else self._local.bind_counter(name, lane_id)

        def add_one() -> None:
            add(1, attributes)
            if local is not None:
                local()

        return add_one

    def bind_histogram(self, name: str, lane_id: str) -> Callable[[float], None]:
        record = self._instrument("histogram", name).record
        attributes = {LANE_ATTRIBUTE: lane_id}
        local = None if self._local is None else self._local.bind_histogram(name, lane_id)

        def observe(value: float) -> None:
            record(value, attributes)
            if local is not None:
                local(value)

        return observe

    def bind_gauge(self, name: str, lane_id: str) -> Callable[[float], None]:
        setter = self._gauge_setter(name, {LANE_ATTRIBUTE: lane_id})
        local = None if self._local is None else self._local.bind_gauge(name, lane_id)

        def set_value(value: float) -> None:
            setter(float(value))
            if local is not None:
                local(value)

        return set_value
