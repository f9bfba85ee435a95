"""RedisQueue: the queue behind ``Lane(redis=..., queue=...)`` and
``QueueManagerBuilder().with_redis(...)``, with the same surface as the
in-process ``CommandQueue``, meaning the whole queue: ``submit`` from any
process, ``subscribe`` to every process's events, ``stats`` cluster-wide,
``drain`` until nothing is pending, delayed or running anywhere.

A process joins as a worker with ``start()`` (its slots: ``max_workers``, or
the in-process default pool size), or as a producer only with
``start(worker=False)`` (a submit before ``start()`` connects as a producer
too). Results come back to whichever process submitted: each process has a
results list in Redis that one waiter thread BLPOPs for all its futures.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import Any, Callable, Optional, Union, cast

from .._checks import check_lane_id
from .._durations import Duration, to_seconds
from .._runtime.observe import drain_timeout_message
from ..command import Command, JsonCommand, command_type_of
from ..config import LaneConfig
from ..durable.dead_letters import DeadLetter, DeadLetterQueue
from ..durable.registry import CommandRegistry
from ..errors import (
    InvalidArgumentError,
    InvalidConfigError,
    InvalidPayloadError,
    LaneError,
    LaneNotFoundError,
    LaneTimeoutError,
    ShutdownInProgressError,
)
from ..events import (
    SHUTDOWN_COMPLETE,
    SHUTDOWN_STARTED,
    CallbackSubscription,
    EventEmitter,
    EventStream,
    LaneEvent,
)
from ..manager import QueueManager
from .connection import (
    CONNECT_TIMEOUT,
    Functions,
    check_lane_key,
    check_queue_name,
    ensure_library,
    is_connection_error,
    lane_config_json,
    open_client,
    redact,
    unreachable,
)
from .events import EventReader
from .results import RedisFuture, ResultWaiter
from .stats import RedisQueueStats, from_reply
from .worker import RedisWorker

logger = logging.getLogger("pylane.redis")

DEFAULT_QUEUE = "default"
DEFAULT_LEASE = 10.0  # seconds; heartbeats every third of it
DEFAULT_POOL_CAP = 64
# Commands per a3s_submit_many call: big enough to spend little per command,
# small enough that one call holds Redis (single-threaded) for ~1-2 ms.
SUBMIT_BATCH = 500


class RedisQueue:
    def __init__(self, url: str, queue: str, emitter: EventEmitter,
                 lanes: Sequence[tuple[str, LaneConfig, int]], *,
                 slots: Optional[int] = None, dead_letters: Optional[int] = None,
                 lease: Duration = DEFAULT_LEASE, events_max: int = 10_000,
                 max_lost: int = 5) -> None:
        if not isinstance(url, str) or not url:
            raise InvalidConfigError(f"redis URL must be a non-empty string, got {url!r}")
        self.url = url
        self.queue_name = check_queue_name(queue)
        self.emitter = emitter
        self._lanes = list(lanes)
        for lane_id, _config, _priority in self._lanes:
            check_lane_key(lane_id)
        reserved = sum(config.min_concurrency for _, config, _ in self._lanes)
        wanted = sum(config.max_concurrency for _, config, _ in self._lanes)
        self.slots = slots if slots is not None else max(1, reserved, min(wanted,
                                                                          DEFAULT_POOL_CAP))
        if self.slots < reserved:
            raise InvalidConfigError(f"max_workers ({self.slots}) is below the lanes' "
                                     f"min_concurrency sum ({reserved})")
        self.lease = to_seconds(lease, "lease")
        if self.lease < 0.3:
            raise InvalidConfigError(f"lease must be at least 0.3 s, got {self.lease}")
        self._options = {"events_max": events_max, "max_lost": max_lost}
        if dead_letters is not None:
            self._options["dead_max"] = dead_letters
        self.json_handlers: dict[str, Callable[[Any], Any]] = {}
        self.registry = CommandRegistry()
        self._factories: dict[str, Callable[[Any], Command]] = {}
        self.recovered: list[Future[Any]] = []
        self.client_id = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._fns: Optional[Functions] = None
        self._results = ResultWaiter(url, self.functions, self.client_id)
        self._reader = EventReader(url, self.functions, emitter)
        self._worker: Optional[RedisWorker] = None
        self._started = False
        self._shutting_down = False
        self._stopped = False

    # ---- connection ------------------------------------------------------------

    def functions(self) -> Functions:
        """Connects (bounded), loads or checks the library, registers the
        lanes; once."""
        fns = self._fns
        if fns is not None:
            return fns
        with self._lock:
            if self._fns is None:
                # First a PING bounded by the connect timeout as a whole: an
                # address that accepts but never answers fails as fast.
                probe = open_client(self.url, socket_timeout=CONNECT_TIMEOUT)
                try:
                    probe.ping()
                except Exception as error:
                    if is_connection_error(error):
                        raise unreachable(self.url, error) from None
                    raise LaneError(f"Redis at {redact(self.url)}: {error}") from None
                finally:
                    probe.close()
                client = open_client(self.url)
                try:
                    ensure_library(client, self.url)
                    fns = Functions(client, self.url, self.queue_name)
                    self._register_lanes(fns)
                except BaseException:
                    client.close()
                    raise
                self._fns = fns
            return self._fns

    # ---- handlers --------------------------------------------------------------

    def register_command(self, command_type: str, factory: Callable[[Any], Command]) -> None:
        """Commands of this type run as ``factory(payload).execute()``."""
        self.registry.register(command_type, factory)
        self._factories = {**self._factories, command_type: factory}

    def handled_types(self) -> list[str]:
        return sorted(set(self.json_handlers) | set(self._factories))

    def handler_for(self, command_type: str) -> Optional[Callable[[Any], Any]]:
        handler = self.json_handlers.get(command_type)
        if handler is not None:
            return handler
        factory = self._factories.get(command_type)
        if factory is not None:
            return lambda payload: factory(payload).execute()
        return None  # echo the payload, as the original SDK did

    # ---- lifecycle ----------------------------------------------------------------

    def lane_ids(self) -> list[str]:
        return [lane_id for lane_id, _, _ in self._lanes]

    def is_started(self) -> bool:
        return self._started

    def is_shutting_down(self) -> bool:
        return self._shutting_down

    def start(self, worker: bool = True) -> None:
        """Connects and joins the queue: as a worker with ``self.slots``
        slots, or (``worker=False``) as a producer only."""
        with self._lock:
            if self._stopped:
                raise ShutdownInProgressError()
            if self._started:
                return
        self.functions()
        with self._lock:
            if self._started:
                return
            self._started = True
        if worker:
            self._worker = RedisWorker(self, self.slots, self.lease)
            self._worker.start()

    def shutdown(self) -> None:
        """Stops this process's intake (other processes keep submitting)."""
        with self._lock:
            if self._shutting_down:
                return
            self._shutting_down = True
        self.emitter.emit_new(SHUTDOWN_STARTED, None)

    def drain(self, timeout: Optional[Duration] = None) -> None:
        """Waits until the whole queue is idle: nothing pending, waiting out
        a retry delay or running, on any machine. After ``shutdown()`` this
        process then leaves: its worker stops and its streams end."""
        seconds = None if timeout is None else to_seconds(timeout, "drain timeout",
                                                          endless_ok=True)
        if seconds == math.inf:
            seconds = None
        if not self._stopped:
            self._wait_idle(seconds)
        if self._shutting_down:
            self._stop_all()

    def _wait_idle(self, seconds: Optional[float]) -> None:
        fns = self.functions()
        deadline = None if seconds is None else _now() + seconds
        events = fns.key("events")
        blocking = open_client(self.url, blocking=True)
        try:
            while True:
                try:
                    last = blocking.xrevrange(events, count=1)
                    last_id = last[0][0] if last else b"0-0"
                    stats = self.stats()
                    if not (stats.total_pending or stats.total_active or stats.total_delayed):
                        break
                    block = 0 if deadline is None else int((deadline - _now()) * 1000)
                    if deadline is not None and block <= 0:
                        raise LaneTimeoutError(drain_timeout_message(stats, seconds or 0.0))
                    # Every change that can make the queue idle writes an event.
                    blocking.xread({events: last_id}, count=1, block=block)
                except Exception as error:
                    if not is_connection_error(error):
                        raise
                    raise unreachable(self.url, error) from None
            self._results.sync(None if deadline is None else max(0.0, deadline - _now()))
        finally:
            blocking.close()

    def _stop_all(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self._worker is not None:
            self._worker.stop()
        if self._fns is not None:
            self._results.stop()
            self._reader.stop()
            self._fns.client.close()
        self.emitter.emit_new(SHUTDOWN_COMPLETE, None)
        self.emitter.close_all()

    def close(self) -> None:
        """Leaves at once without waiting for the queue to drain."""
        self._shutting_down = True
        self._stop_all()

    # ---- submit ------------------------------------------------------------------

    def _encode(self, command: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> tuple[str, Any]:
        if isinstance(command, str):
            if len(args) > 1 or kwargs:
                raise InvalidArgumentError("submit(lane, command_type, payload) takes one "
                                           "payload")
            return command, args[0] if args else None
        if args or kwargs:
            raise InvalidArgumentError("a command for a Redis queue carries its data in its "
                                       "payload, not in extra arguments")
        if isinstance(command, JsonCommand):
            return command.label, command.payload
        if isinstance(command, Command):
            return command_type_of(command), command.to_payload()
        raise InvalidArgumentError(
            f"a Redis queue runs commands by type on any machine: submit a Command or a "
            f"command type and its JSON payload, not a {type(command).__name__} (register "
            f"a handler for the type in the worker processes)")

    @staticmethod
    def _payload_text(payload: Any) -> str:
        try:
            return json.dumps(payload, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as error:
            raise InvalidPayloadError(f"payload is not JSON-serialisable: {error}") from None
        except RecursionError:
            raise InvalidPayloadError("payload is nested too deeply to carry as JSON") from None

    def _check_submit(self, lane_id: str) -> None:
        if self._shutting_down:
            raise ShutdownInProgressError()
        if not isinstance(lane_id, str):
            raise InvalidArgumentError(f"lane id must be a string, got {type(lane_id).__name__}")
        check_lane_id(lane_id)

    def submit(self, lane_id: str, command: Any, *args: Any, **kwargs: Any) -> RedisFuture:
        """Queues the command in Redis; the future gets its result from
        whichever process runs it."""
        self._check_submit(lane_id)
        command_type, payload = self._encode(command, args, kwargs)
        text = self._payload_text(payload)
        fns = self.functions()
        command_id = uuid.uuid4().hex
        future = RedisFuture(self.cancel, command_id, lane_id)
        self._results.futures[command_id] = future  # before the submit: a result may come at once
        self._results.ensure()
        try:
            self._submit_batch(fns, lane_id, [(command_id, lane_id, command_type, text)],
                               self.client_id)
        except BaseException:
            self._results.futures.pop(command_id, None)
            raise
        return future

    def submit_many(self, lane_id: str, commands: Iterable[Any], *,
                    results: bool = True) -> Union[list[RedisFuture], list[str]]:
        """Queues many commands in one lane, in their order, with one call
        to Redis per SUBMIT_BATCH of them; each such batch is queued whole or
        not at all (the error says why). Each item is a Command or a
        ``(command_type, payload)`` pair. Returns a future each, or with
        ``results=False`` the command ids (fire and forget: no result comes
        back to this process)."""
        self._check_submit(lane_id)
        quads: list[tuple[str, str, str, str]] = []
        futures: list[RedisFuture] = []
        for item in commands:
            if isinstance(item, tuple):
                if not item:
                    raise InvalidArgumentError("submit_many: an empty tuple is no command")
                command_type, payload = self._encode(item[0], item[1:], {})
            else:
                command_type, payload = self._encode(item, (), {})
            command_id = uuid.uuid4().hex
            quads.append((command_id, lane_id, command_type, self._payload_text(payload)))
            if results:
                futures.append(RedisFuture(self.cancel, command_id, lane_id))
        fns = self.functions()
        reply_to = self.client_id if results else ""  # "": no result comes back
        if results:
            self._results.ensure()
        for start in range(0, len(quads), SUBMIT_BATCH):
            batch = quads[start:start + SUBMIT_BATCH]
            for quad, future in zip(batch, futures[start:start + SUBMIT_BATCH]):
                self._results.futures[quad[0]] = future
            try:
                self._submit_batch(fns, lane_id, batch, reply_to)
            except BaseException:
                for quad in quads[start:]:
                    self._results.futures.pop(quad[0], None)
                raise
        return futures if results else [quad[0] for quad in quads]

    def _submit_batch(self, fns: Functions, lane_id: str,
                      batch: list[tuple[str, str, str, str]], reply_to: str) -> None:
        """One a3s_submit_many call (all or none). A lane of ours that Redis
        does not know (it restarted without persistence) is registered
        again, once."""
        try:
            fns.submit_many(batch, reply_to)
        except LaneNotFoundError:
            if lane_id not in self.lane_ids():
                raise
            self._register_lanes(fns)  # Redis restarted without persistence
            fns.submit_many(batch, reply_to)

    def _register_lanes(self, fns: Functions) -> None:
        configs = [lane_config_json(lane_id, config, priority)
                   for lane_id, config, priority in self._lanes]
        fns.register_lanes(configs, self._options)

    def run(self, lane_id: str, command: Any, *args: Any, **kwargs: Any) -> Any:
        """Blocking submit: the result, or the command's error."""
        return self.submit(lane_id, command, *args, **kwargs).result()

    async def asubmit(self, lane_id: str, command: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.wrap_future(self.submit(lane_id, command, *args, **kwargs))

    # ---- cancel, pause ---------------------------------------------------------------

    def cancel(self, command_id: str) -> bool:
        """True if the command was still waiting (in its lane or its retry
        delay) and now never runs. A running command is not stopped."""
        if not isinstance(command_id, str):
            return False
        cancelled = self.functions().cancel(command_id)
        if cancelled:
            self._results.futures.pop(command_id, None)
        return cancelled

    def pause_lane(self, lane_id: str) -> None:
        self.functions().pause(lane_id)

    def resume_lane(self, lane_id: str) -> None:
        self.functions().resume(lane_id)

    # ---- observation --------------------------------------------------------------

    def stats(self) -> RedisQueueStats:
        return from_reply(self.functions().stats())

    def dead_letters(self) -> list[DeadLetter]:
        from datetime import datetime, timezone

        return [DeadLetter(letter["command_id"], letter["command_type"], letter["lane_id"],
                           letter["error"], int(letter["attempts"]),
                           datetime.fromtimestamp(float(letter["failed_at_ms"]) / 1000.0,
                                                  tz=timezone.utc))
                for letter in self.functions().dead_letters()]

    def dlq(self) -> None:
        return None  # dead letters live in Redis: dead_letters()

    def emit_local(self, key: str, payload: Optional[dict[str, Any]]) -> None:
        self.emitter.emit_new(key, payload)

    def subscribe(
        self, callback: Optional[Callable[[LaneEvent], Any]] = None
    ) -> Union[EventStream, CallbackSubscription]:
        """Every process's events, read from the queue's stream in Redis
        from the moment of the call."""
        self._reader.ensure()
        if callback is not None:
            return self.emitter.subscribe_callback(callback)
        return self.emitter.subscribe()

    def subscribe_filtered(self, predicate: Callable[[LaneEvent], bool]) -> EventStream:
        self._reader.ensure()
        return self.emitter.subscribe_filtered(predicate)

def _now() -> float:
    return time.monotonic()


class RedisQueueManager(QueueManager):
    """``QueueManager`` over a ``RedisQueue``: the same calls, queue-wide."""

    def __init__(self, queue: RedisQueue) -> None:
        # RedisQueue has CommandQueue's surface (duck-typed, not a subclass).
        super().__init__(cast(Any, queue))
        self._redis_queue = queue

    def start(self, worker: bool = True) -> None:
        """Joins the queue as a worker (``worker=False``: producer only)."""
        self._redis_queue.start(worker=worker)

    def dead_letters(self) -> list[DeadLetter]:
        """The queue's dead letters, oldest first (bounded by with_dlq's
        capacity, default 10,000)."""
        return self._redis_queue.dead_letters()

    def close(self) -> None:
        """Leaves at once, without waiting for the queue to drain."""
        self._redis_queue.close()


def build_manager(url: str, queue: str, options: dict[str, Any], *, emitter: EventEmitter,
                  lanes: Sequence[tuple[str, LaneConfig, int]], max_workers: Optional[int],
                  dlq: Optional[DeadLetterQueue],
                  factories: dict[str, Callable[[Any], Command]]) -> QueueManager:
    """What ``QueueManagerBuilder.build()`` makes after ``with_redis(url,
    queue=...)``: the builder hands over its lanes and options."""
    redis_queue = RedisQueue(url, queue, emitter, lanes, slots=max_workers,
                             dead_letters=dlq.capacity if dlq is not None else None, **options)
    for command_type, factory in factories.items():
        redis_queue.register_command(command_type, factory)
    return RedisQueueManager(redis_queue)
