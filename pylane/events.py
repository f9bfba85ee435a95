"""Events: what happened to each command, delivered to subscribers.

Emitting never blocks scheduling: each subscriber has its own bounded buffer
and, when it falls behind, the oldest event is dropped and counted
(``EventStream.dropped``). The subscriber list is copy-on-write, so emitting
reads it without a lock and costs one truthiness check when nobody listens.
Filters run when an event is emitted, so events a subscriber does not want
never take space in its buffer; a filter that raises is logged and treated
as "no match".
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from .errors import InvalidConfigError

logger = logging.getLogger("pylane.events")

COMMAND_SUBMITTED = "queue.command.submitted"
COMMAND_STARTED = "queue.command.started"
COMMAND_COMPLETED = "queue.command.completed"
COMMAND_FAILED = "queue.command.failed"
COMMAND_CANCELLED = "queue.command.cancelled"
COMMAND_RETRY = "queue.command.retry"
COMMAND_DEAD_LETTERED = "queue.command.dead_lettered"
COMMAND_TIMEOUT = "queue.command.timeout"
# A timed-out command still running when its grace ended: its slot is freed
# and its thread replaced (the command runs on, outside the queue's count).
COMMAND_ABANDONED = "queue.command.abandoned"
SHUTDOWN_STARTED = "queue.shutdown.started"
SHUTDOWN_COMPLETE = "queue.shutdown.complete"
LANE_PRESSURE = "queue.lane.pressure"
LANE_IDLE = "queue.lane.idle"
STORAGE_RECOVERED = "queue.storage.recovered"
STORAGE_CORRUPT = "queue.storage.corrupt"

Predicate = Callable[["LaneEvent"], bool]


class LaneEvent:
    """One event: ``key``, ``payload`` (a dict, or None) and when it happened.

    ``timestamp`` is RFC 3339 in UTC with nanoseconds, as the original SDK
    printed it; ``time`` is the same instant as an aware ``datetime``.
    """

    __slots__ = ("key", "payload", "time_ns")

    def __init__(self, key: str, payload: Optional[dict[str, Any]] = None,
                 time_ns: Optional[int] = None) -> None:
        self.key = key
        self.payload = payload
        self.time_ns = time.time_ns() if time_ns is None else time_ns

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.time_ns / 1e9, tz=timezone.utc)

    @property
    def timestamp(self) -> str:
        seconds, nanos = divmod(self.time_ns, 1_000_000_000)
        whole = datetime.fromtimestamp(seconds, tz=timezone.utc)
        return whole.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}+00:00"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "payload": self.payload, "timestamp": self.timestamp}

    def __repr__(self) -> str:
        return f"LaneEvent(key={self.key!r}, payload={self.payload!r})"


class EventStream:
    """A subscriber's bounded buffer of events.

    ``recv(timeout)`` returns the next event, or None on timeout or once the
    stream is closed and empty; iterating yields events until it is closed.
    """

    def __init__(self, emitter: EventEmitter, capacity: int,
                 predicate: Optional[Predicate] = None) -> None:
        self._emitter = emitter
        self._buffer: deque[LaneEvent] = deque()
        self._capacity = capacity
        self._predicate = predicate
        self._ready = threading.Condition(threading.Lock())
        self._closed = False
        self.dropped = 0

    # Called by the emitter, on whatever thread emits.
    def _offer(self, event: LaneEvent) -> None:
        predicate = self._predicate
        if predicate is not None:
            try:
                if not predicate(event):
                    return
            except Exception:
                logger.exception("event filter raised; event %s skipped for it", event.key)
                return
        with self._ready:
            if len(self._buffer) >= self._capacity:
                self._buffer.popleft()
                self.dropped += 1
            self._buffer.append(event)
            self._ready.notify()

    def recv(self, timeout: Optional[float] = None, *,
             timeout_ms: Optional[float] = None) -> Optional[LaneEvent]:
        """The next event; None when `timeout` (seconds) or `timeout_ms`
        passes first, or when the stream is closed and drained."""
        if timeout_ms is not None:
            timeout = timeout_ms / 1000.0
        with self._ready:
            if not self._buffer and not self._closed:
                self._ready.wait_for(lambda: self._buffer or self._closed, timeout)
            return self._buffer.popleft() if self._buffer else None

    def try_recv(self) -> Optional[LaneEvent]:
        with self._ready:
            return self._buffer.popleft() if self._buffer else None

    def drain(self) -> list[LaneEvent]:
        """Every event buffered now, oldest first, without waiting.

        Empties the buffer in one step under its lock: an event emitted at
        the same moment is either in the list or left for the next read,
        never lost or returned twice. Returns ``[]`` when nothing is
        buffered, on a closed stream too. A command that completes, fails or
        times out has its event emitted before its future resolves, so after
        ``future.result()`` returns or raises, that event is here.
        """
        with self._ready:
            events = list(self._buffer)
            self._buffer.clear()
        return events

    def __iter__(self) -> Iterator[LaneEvent]:
        while True:
            event = self.recv()
            if event is None:
                return
            yield event

    def __len__(self) -> int:
        return len(self._buffer)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stops receiving; a blocked ``recv`` returns what is left, then None."""
        self._emitter._remove(self)
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CallbackSubscription:
    """Runs a callback for each event on a thread of its own, so a slow or
    failing callback never touches the scheduler. A callback that raises is
    logged and the subscription goes on."""

    def __init__(self, stream: EventStream, callback: Callable[[LaneEvent], Any]) -> None:
        self.stream = stream
        self._callback = callback
        self._thread = threading.Thread(target=self._run, name="pylane-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for event in self.stream:
            try:
                self._callback(event)
            except Exception:
                logger.exception("event callback raised on %s; it stays subscribed", event.key)

    def close(self, timeout: Optional[float] = None) -> None:
        """Delivers what is buffered, then stops."""
        self.stream.close()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)


class EventEmitter:
    """Fans events out to subscribers. ``capacity`` bounds each subscriber's
    buffer (the original's broadcast channel capacity)."""

    def __init__(self, capacity: int = 100) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise InvalidConfigError(f"event capacity must be a positive integer, got {capacity!r}")
        self.capacity = capacity
        # Copy-on-write under _lock; read without it (emitters check it on
        # every submit and start to skip building events nobody reads).
        self.streams: tuple[EventStream, ...] = ()
        self._lock = threading.Lock()
        self._closed = False

    @property
    def has_subscribers(self) -> bool:
        return bool(self.streams)

    def emit(self, event: LaneEvent) -> None:
        for stream in self.streams:
            stream._offer(event)

    def emit_new(self, key: str, payload: Optional[dict[str, Any]] = None) -> None:
        """Builds and emits an event only when someone listens."""
        streams = self.streams
        if streams:
            event = LaneEvent(key, payload)
            for stream in streams:
                stream._offer(event)

    def subscribe(self) -> EventStream:
        return self._add(EventStream(self, self.capacity))

    def subscribe_filtered(self, predicate: Predicate) -> EventStream:
        return self._add(EventStream(self, self.capacity, predicate))

    def subscribe_callback(self, callback: Callable[[LaneEvent], Any],
                           predicate: Optional[Predicate] = None) -> CallbackSubscription:
        stream = self._add(EventStream(self, self.capacity, predicate))
        return CallbackSubscription(stream, callback)

    def close_all(self) -> None:
        """Ends every stream (used when the queue has shut down and drained);
        streams subscribed later start closed, as no event will come."""
        with self._lock:
            self._closed = True
            streams = self.streams
        for stream in streams:
            stream.close()

    def _add(self, stream: EventStream) -> EventStream:
        with self._lock:
            if not self._closed:
                self.streams = (*self.streams, stream)
                return stream
        stream.close()
        return stream

    def _remove(self, stream: EventStream) -> None:
        with self._lock:
            self.streams = tuple(s for s in self.streams if s is not stream)
