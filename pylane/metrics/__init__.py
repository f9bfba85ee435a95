"""Metrics: counters, gauges and latency histograms, per lane and overall.

``QueueMetrics`` is what the queue calls; a ``MetricsBackend`` is where the
numbers go. ``QueueMetrics.local()`` keeps them in memory (``LocalMetrics``);
``QueueMetrics(OtelMetricsBackend())`` sends them to OpenTelemetry; a
subclass of ``MetricsBackend`` (or any object with its eight methods) works
too.

- ``names``: the metric names (a table of them), ``lane_metric``, the
  snapshot records and the ``MetricsBackend`` base class, whose default
  ``bind_*`` methods record through its basic ones;
- ``local``: ``LocalMetrics``, its lock-free counters and bounded histograms;
- ``hub``: ``QueueMetrics`` and ``as_queue_metrics``.
"""

from .hub import GaugeSource, QueueMetrics, as_queue_metrics
from .local import EXACT_SAMPLES, LocalMetrics
from .local import _bucket_keys as _bucket_keys  # private, imported by tests
from .local import _Counter as _Counter
from .local import _Histogram as _Histogram
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
    COUNTER_NAMES,
    GAUGE_NAMES,
    HISTOGRAM_NAMES,
    QUEUE_ACTIVE,
    QUEUE_DEPTH,
    HistogramPercentiles,
    HistogramStats,
    MetricsBackend,
    MetricsSnapshot,
    lane_metric,
)

__all__ = [
    "COMMANDS_CANCELLED",
    "COMMANDS_COMPLETED",
    "COMMANDS_DEAD_LETTERED",
    "COMMANDS_FAILED",
    "COMMANDS_RETRIED",
    "COMMANDS_SUBMITTED",
    "COMMANDS_TIMEOUT",
    "COMMAND_LATENCY",
    "COMMAND_WAIT_TIME",
    "COUNTER_NAMES",
    "EXACT_SAMPLES",
    "GAUGE_NAMES",
    "HISTOGRAM_NAMES",
    "QUEUE_ACTIVE",
    "QUEUE_DEPTH",
    "GaugeSource",
    "HistogramPercentiles",
    "HistogramStats",
    "LocalMetrics",
    "MetricsBackend",
    "MetricsSnapshot",
    "QueueMetrics",
    "as_queue_metrics",
    "lane_metric",
]
