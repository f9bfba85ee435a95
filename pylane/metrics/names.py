"""Metric names, the records a backend reports, and ``MetricsBackend``.

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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Optional, Protocol

from ..errors import InvalidConfigError

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


# ---- records ---------------------------------------------------------------------


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


# ---- the backend base class ---------------------------------------------------------

# What a backend must have: the five methods the original README lists and
# the original trait's three getters.
REQUIRED_METHODS = (
    "increment_counter", "set_gauge", "record_histogram", "snapshot", "reset",
    "get_counter", "get_gauge", "get_histogram_stats",
)


class MetricsBackend(ABC):
    """Where metrics go. A subclass implements the eight abstract methods.

    ``QueueMetrics`` records through the ``bind_*`` methods: it calls each
    once per lane and metric, then only calls what it returned. The defaults
    here record the ``.<lane>`` name and the overall name through
    ``increment_counter`` / ``record_histogram`` / ``set_gauge``, so a
    backend that implements only the eight methods sees every value. A
    backend overrides a ``bind_*`` to represent a lane its own way
    (``LocalMetrics``: derives the overall value from the lanes';
    OpenTelemetry: a ``lane`` attribute) or to record faster. Each family
    has one method the others default to: ``bind_counter`` is
    ``bind_counter_adder`` with 1, ``bind_histogram_many`` calls
    ``bind_histogram``'s callable per value; overriding those two as well is
    only a matter of speed.

    ``isinstance(x, MetricsBackend)`` is also true for an object that has
    the eight methods without subclassing (the original's protocol);
    ``QueueMetrics`` wraps such an object once (see ``adopt``).
    """

    @abstractmethod
    def increment_counter(self, name: str, value: int = 1) -> None: ...

    @abstractmethod
    def set_gauge(self, name: str, value: float) -> None: ...

    @abstractmethod
    def record_histogram(self, name: str, value: float) -> None: ...

    @abstractmethod
    def snapshot(self) -> MetricsSnapshot: ...

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def get_counter(self, name: str) -> Optional[int]: ...

    @abstractmethod
    def get_gauge(self, name: str) -> Optional[float]: ...

    @abstractmethod
    def get_histogram_stats(self, name: str) -> Optional[HistogramStats]: ...

    @classmethod
    def __subclasshook__(cls, other: type) -> Any:
        if cls is MetricsBackend and all(
                callable(getattr(other, method, None)) for method in REQUIRED_METHODS):
            return True
        return NotImplemented

    # -- binding, for QueueMetrics

    def bind_counter_adder(self, name: str, lane_id: str) -> Callable[[int], None]:
        """A callable adding n (the engine's batched counts) to the lane's
        counter and the overall one."""
        per_lane = lane_metric(name, lane_id)
        increment = self.increment_counter

        def add(n: int) -> None:
            increment(per_lane, n)
            increment(name, n)

        return add

    def bind_counter(self, name: str, lane_id: str) -> Callable[[], Any]:
        """A no-argument callable adding 1."""
        return partial(self.bind_counter_adder(name, lane_id), 1)

    def bind_histogram(self, name: str, lane_id: str) -> Callable[[float], None]:
        """A callable recording one sample for the lane and overall."""
        per_lane = lane_metric(name, lane_id)
        record = self.record_histogram

        def observe(value: float) -> None:
            record(per_lane, value)
            record(name, value)

        return observe

    def bind_histogram_many(self, name: str, lane_id: str) -> Callable[[list[float]], None]:
        """A callable recording a list of samples (the engine's batches)."""
        observe = self.bind_histogram(name, lane_id)

        def record_all(values: list[float]) -> None:
            for value in values:
                observe(value)

        return record_all

    def bind_gauge(self, name: str, lane_id: str) -> Callable[[float], None]:
        """A callable setting the lane's gauge (gauges have no overall)."""
        return partial(self.set_gauge, lane_metric(name, lane_id))

    def bind_histogram_buckets(self, name: str, lane_id: str) -> Any:
        """None, or an object the queue's metrics feed hands the engine's
        timing batches to as C arrays: ``exact_room()`` (samples it still
        takes one by one) and ``add_bucketed(doubles, n)``. ``LocalMetrics``
        returns its lane histogram; others get lists through
        ``bind_histogram_many``."""
        return None

    def set_refresher(self, refresh: Optional[Callable[[], None]]) -> None:
        """Called by ``QueueMetrics`` with its ``refresh``. A backend read on
        its own schedule (OpenTelemetry: when a reader collects) keeps it and
        calls it first; the default ignores it."""
        del refresh  # nothing to refresh: QueueMetrics.snapshot() refreshes first


def tee(first: Callable[..., Any], second: Callable[..., Any]) -> Callable[..., None]:
    """One callable calling both with the same arguments: for a backend
    that records in two places (OpenTelemetry and its local copy) to
    combine what each place's ``bind_*`` returned."""

    def both(*args: Any) -> None:
        first(*args)
        second(*args)

    return both


# Optional methods an object that does not subclass MetricsBackend may bring
# (the original protocol documented the first three).
_OPTIONAL_METHODS = ("bind_counter", "bind_histogram", "bind_gauge", "bind_counter_adder",
                     "bind_histogram_many", "set_refresher")


class _EightMethods(Protocol):
    """A backend as ``adopt`` accepts it: the eight methods, not subclassing
    ``MetricsBackend`` (the original's protocol)."""

    def increment_counter(self, name: str, value: int = 1) -> None: ...
    def set_gauge(self, name: str, value: float) -> None: ...
    def record_histogram(self, name: str, value: float) -> None: ...
    def snapshot(self) -> MetricsSnapshot: ...
    def reset(self) -> None: ...
    def get_counter(self, name: str) -> Optional[int]: ...
    def get_gauge(self, name: str) -> Optional[float]: ...
    def get_histogram_stats(self, name: str) -> Optional[HistogramStats]: ...


class _Adopted(MetricsBackend):
    """A backend that has the eight methods without subclassing
    ``MetricsBackend``, seen through the base class: its own ``bind_*`` and
    ``set_refresher`` when it has them, else the defaults. Looked up once,
    when wrapped, so recording costs what it costs with a subclass."""

    def __init__(self, backend: _EightMethods) -> None:
        self.adopted = backend
        # Bound methods as instance attributes: the default bind_* capture
        # them, so a record is one call into the backend, not two.
        for method in REQUIRED_METHODS:
            setattr(self, method, getattr(backend, method))
        # The optional methods it has, whatever their signatures: each
        # result below is typed where it is taken.
        self._own: dict[str, Callable[..., Any]] = {
            method: getattr(backend, method) for method in _OPTIONAL_METHODS
            if callable(getattr(backend, method, None))}

    def increment_counter(self, name: str, value: int = 1) -> None:
        self.adopted.increment_counter(name, value)

    def set_gauge(self, name: str, value: float) -> None:
        self.adopted.set_gauge(name, value)

    def record_histogram(self, name: str, value: float) -> None:
        self.adopted.record_histogram(name, value)

    def snapshot(self) -> MetricsSnapshot:
        return self.adopted.snapshot()

    def reset(self) -> None:
        self.adopted.reset()

    def get_counter(self, name: str) -> Optional[int]:
        return self.adopted.get_counter(name)

    def get_gauge(self, name: str) -> Optional[float]:
        return self.adopted.get_gauge(name)

    def get_histogram_stats(self, name: str) -> Optional[HistogramStats]:
        return self.adopted.get_histogram_stats(name)

    def bind_counter_adder(self, name: str, lane_id: str) -> Callable[[int], None]:
        own = self._own.get("bind_counter_adder")
        if own is not None:
            adder: Callable[[int], None] = own(name, lane_id)
            return adder
        if "bind_counter" in self._own:  # lanes its own way: add n as n times 1
            add_one: Callable[[], Any] = self._own["bind_counter"](name, lane_id)

            def add(n: int) -> None:
                for _ in range(n):
                    add_one()

            return add
        return super().bind_counter_adder(name, lane_id)

    def bind_counter(self, name: str, lane_id: str) -> Callable[[], Any]:
        own = self._own.get("bind_counter")
        if own is not None:
            counter: Callable[[], Any] = own(name, lane_id)
            return counter
        return super().bind_counter(name, lane_id)

    def bind_histogram(self, name: str, lane_id: str) -> Callable[[float], None]:
        own = self._own.get("bind_histogram")
        if own is not None:
            observe: Callable[[float], None] = own(name, lane_id)
            return observe
        return super().bind_histogram(name, lane_id)

    def bind_histogram_many(self, name: str, lane_id: str) -> Callable[[list[float]], None]:
        own = self._own.get("bind_histogram_many")
        if own is not None:
            record_all: Callable[[list[float]], None] = own(name, lane_id)
            return record_all
        return super().bind_histogram_many(name, lane_id)

    def bind_gauge(self, name: str, lane_id: str) -> Callable[[float], None]:
        own = self._own.get("bind_gauge")
        if own is not None:
            gauge: Callable[[float], None] = own(name, lane_id)
            return gauge
        return super().bind_gauge(name, lane_id)

    def set_refresher(self, refresh: Optional[Callable[[], None]]) -> None:
        own = self._own.get("set_refresher")
        if own is not None:
            own(refresh)


def adopt(backend: Any) -> MetricsBackend:
    """``backend`` as a ``MetricsBackend`` subclass: itself when it is one,
    else wrapped once in an adapter; an object lacking one of the eight
    methods is refused with the names of those it lacks."""
    if MetricsBackend in type(backend).__mro__:
        subclass: MetricsBackend = backend  # a subclass, not only isinstance()
        return subclass
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(backend, m, None))]
    if missing:
        raise InvalidConfigError(
            f"a metrics backend needs {', '.join(missing)}; {type(backend).__name__} lacks them"
        )
    return _Adopted(backend)
