"""QueueManager and its builder: the full API's entry point.

    emitter = EventEmitter(100)
    manager = QueueManagerBuilder(emitter).with_default_lanes().build()
    manager.start()
    result = manager.submit("query", FetchCommand(url)).result()
    manager.shutdown()
    manager.drain(5)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable, Optional, Union, overload

from ._checks import check_lane_id, check_priority, check_workers
from ._durations import Duration
from ._runtime.future import CommandFuture
from ._runtime.queue import CommandQueue
from .alerts import AlertManager
from .command import Command
from .config import DEFAULT_LANES, LaneConfig
from .durable.dead_letters import DeadLetterQueue
from .durable.storage import Storage
from .errors import InvalidArgumentError, InvalidConfigError
from .events import CallbackSubscription, EventEmitter, EventStream, LaneEvent
from .metrics import QueueMetrics, as_queue_metrics
from .stats import QueueStats


class QueueManagerBuilder:
    """Collects lanes and options, validates them, and builds a manager."""

    def __init__(self, emitter: Optional[EventEmitter] = None) -> None:
        self._emitter = emitter if emitter is not None else EventEmitter()
        self._lanes: dict[str, tuple[LaneConfig, int]] = {}
        self._max_workers: Optional[int] = None
        self._storage: Optional[Storage] = None
        self._dlq: Optional[DeadLetterQueue] = None
        self._metrics: Any = None
        self._alerts: Any = None
        self._factories: dict[str, Callable[[Any], Command]] = {}
        self._redis: Optional[tuple[str, str, dict[str, Any]]] = None

    def with_lane(self, lane_id: str, config: LaneConfig,
                  priority: Optional[int] = None) -> QueueManagerBuilder:
        """Adds a lane. ``priority`` defaults to ``config.priority``. Naming a
        lane twice is an error: the original silently kept the last one."""
        lane_id = check_lane_id(lane_id)
        if not isinstance(config, LaneConfig):
            raise InvalidConfigError(
                f"config for lane {lane_id!r} must be a LaneConfig, got {type(config).__name__}"
            )
        priority = check_priority(config.priority if priority is None else priority, lane_id)
        if lane_id in self._lanes:
            raise InvalidConfigError(f"duplicate lane id {lane_id!r}")
        self._lanes[lane_id] = (config, priority)
        return self

    def with_default_lanes(self) -> QueueManagerBuilder:
        """system 0, control 1, query 2, session 3, skill 4, prompt 5."""
        for lane_id, priority, maximum in DEFAULT_LANES:
            self.with_lane(lane_id, LaneConfig.new(1, maximum), priority)
        return self

    def with_max_workers(self, workers: int) -> QueueManagerBuilder:
        """Bounds the worker pool. Lanes' ``min_concurrency`` are reservations
        inside it, so it must be at least their sum. Without it the pool is
        sized so every lane can reach its max (capped at 64 threads)."""
        self._max_workers = check_workers(workers)
        return self

    def with_storage(self, storage: Storage) -> QueueManagerBuilder:
        """Makes commands durable: each is saved before submit returns and
        removed when it ends; what a crashed process left runs again at the
        next start (at-least-once). ``LocalStorage(path)`` is SQLite."""
        if not isinstance(storage, Storage):
            raise InvalidConfigError(
                f"storage must implement the Storage protocol, got {type(storage).__name__}"
            )
        self._storage = storage
        return self

    def with_dlq(self, dlq: Union[DeadLetterQueue, int]) -> QueueManagerBuilder:
        """Keeps commands that failed for good (a DeadLetterQueue, or its
        capacity as the original took)."""
        self._dlq = dlq if isinstance(dlq, DeadLetterQueue) else DeadLetterQueue(dlq)
        return self

    def with_metrics(self, metrics: QueueMetrics) -> QueueManagerBuilder:
        """Records counters and queue-wait / run-time histograms per lane
        (``QueueMetrics.local()`` or ``QueueMetrics(backend)``)."""
        self._metrics = as_queue_metrics(metrics)
        return self

    def with_alerts(self, alerts: AlertManager) -> QueueManagerBuilder:
        """Checks queue depth at every submit and run time at every end of a
        command against the manager's thresholds."""
        self._alerts = alerts
        return self

    def register_command(self, command_type: str,
                         factory: Callable[[Any], Command]) -> QueueManagerBuilder:
        """How to rebuild a stored command of this type after a restart (for
        commands whose class cannot simply be re-imported)."""
        self._factories[command_type] = factory
        return self

    def with_redis(self, url: str, *, queue: str = "default",
                   **options: Any) -> QueueManagerBuilder:
        """Makes the queue shared through Redis (7+): the same lanes and
        rules across every process and machine that uses `url` and `queue`.
        ``start()`` joins this process as a worker, ``start(worker=False)``
        as a producer only. Options: ``lease`` (seconds, default 10).
        Needs the redis extra; see pylane.redis."""
        self._redis = (url, queue, options)
        return self

    def build(self) -> QueueManager:
        if not self._lanes:
            raise InvalidConfigError("no lanes: call with_default_lanes() or with_lane()")
        if self._redis is not None:
            return self._build_redis(*self._redis)
        queue = CommandQueue(self._emitter, self._max_workers, storage=self._storage,
                             dlq=self._dlq, metrics=self._metrics, alerts=self._alerts)
        for lane_id, (config, priority) in self._lanes.items():
            queue.register_lane(lane_id, config, priority)
        for command_type, factory in self._factories.items():
            queue.register_command(command_type, factory)
        return QueueManager(queue, metrics=queue.metrics(), alerts=self._alerts)

    def _build_redis(self, url: str, queue: str, options: dict[str, Any]) -> QueueManager:
        if self._storage is not None:
            raise InvalidConfigError("with_storage() does not combine with with_redis(): the "
                                     "Redis queue keeps the commands")
        if self._metrics is not None or self._alerts is not None:
            raise InvalidConfigError("with_metrics() and with_alerts() do not combine with "
                                     "with_redis() yet")
        from .redis.runtime import build_manager  # the redis extra, imported on use

        lanes = [(lane_id, config, priority)
                 for lane_id, (config, priority) in self._lanes.items()]
        return build_manager(url, queue, options, emitter=self._emitter, lanes=lanes,
                             max_workers=self._max_workers, dlq=self._dlq,
                             factories=self._factories)


class QueueManager:
    """Starts, feeds and stops a ``CommandQueue``."""

    def __init__(self, queue: CommandQueue, metrics: Any = None, alerts: Any = None) -> None:
        self._queue = queue
        self._metrics = metrics
        self._alerts = alerts

    def metrics(self) -> Any:
        return self._metrics

    def alerts(self) -> Any:
        return self._alerts

    def dlq(self) -> Optional[DeadLetterQueue]:
        return self._queue.dlq()

    def register_command(self, command_type: str, factory: Callable[[Any], Command]) -> None:
        self._queue.register_command(command_type, factory)

    @property
    def recovered(self) -> list[CommandFuture]:
        """Futures of the commands recovered from storage at start."""
        return self._queue.recovered

    def start(self) -> None:
        self._queue.start()

    def submit(self, lane_id: str, command: Any, *args: Any, **kwargs: Any) -> CommandFuture:
        """Returns a ``concurrent.futures.Future`` (``asyncio.wrap_future``
        works) resolved with the command's result or exception."""
        return self._queue.submit(lane_id, command, *args, **kwargs)

    async def asubmit(self, lane_id: str, command: Any, *args: Any, **kwargs: Any) -> Any:
        """``await manager.asubmit(lane, command)``: the result, from asyncio
        code; cancelling the awaiting task cancels the command (withdrawn if
        waiting, its token set — and an async command's coroutine cancelled
        — if running)."""
        return await self._queue.asubmit(lane_id, command, *args, **kwargs)

    def submit_many(self, lane_id: str, commands: Iterable[Any], *,
                    results: bool = True) -> list[Any]:
        """Submits many commands to one lane, in order; one future each, or
        with ``results=False`` (fire and forget) the command ids. Each item
        is what ``submit`` takes after the lane: a command alone, or a tuple
        ``(command, *args)``. In Redis mode (items: a Command or
        ``(command_type, payload)``) they go in batches of 500, one round
        trip each, each batch queued whole or not at all, and with
        ``results=False`` no result travels back to this process."""
        submit_many = getattr(self._queue, "submit_many", None)
        if submit_many is not None:
            return list(submit_many(lane_id, commands, results=results))
        futures = []
        for item in commands:
            if isinstance(item, tuple):
                if not item:
                    raise InvalidArgumentError("submit_many: an empty tuple is no command")
                futures.append(self._queue.submit(lane_id, *item))
            else:
                futures.append(self._queue.submit(lane_id, item))
        return futures if results else [future.command_id for future in futures]

    def run(self, lane_id: str, command: Any, *args: Any, **kwargs: Any) -> Any:
        """Blocking submit: returns the result or raises the command's error."""
        return self._queue.run(lane_id, command, *args, **kwargs)

    def cancel(self, command_id: str) -> bool:
        return self._queue.cancel(command_id)

    def pause_lane(self, lane_id: str) -> None:
        self._queue.pause_lane(lane_id)

    def resume_lane(self, lane_id: str) -> None:
        self._queue.resume_lane(lane_id)

    @overload
    def subscribe(self, callback: None = None) -> EventStream: ...

    @overload
    def subscribe(self, callback: Callable[[LaneEvent], Any]) -> CallbackSubscription: ...

    def subscribe(
        self, callback: Optional[Callable[[LaneEvent], Any]] = None
    ) -> Union[EventStream, CallbackSubscription]:
        """An ``EventStream`` of every event; with `callback`, the callback
        runs on a thread of its own for each event instead."""
        if callback is None:
            return self._queue.subscribe()
        return self._queue.subscribe(callback)

    def subscribe_filtered(self, predicate: Callable[[LaneEvent], bool]) -> EventStream:
        return self._queue.subscribe_filtered(predicate)

    def stats(self) -> QueueStats:
        return self._queue.stats()

    def shutdown(self) -> None:
        self._queue.shutdown()

    def drain(self, timeout: Optional[Duration] = None) -> None:
        self._queue.drain(timeout)

    def is_shutting_down(self) -> bool:
        return self._queue.is_shutting_down()

    def queue(self) -> CommandQueue:
        return self._queue

    def __enter__(self) -> QueueManager:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.drain()
