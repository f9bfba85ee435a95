"""Every process's events, read from the queue's stream in Redis.

One reader thread per process, started at the first ``subscribe()``, reads
the stream (XREAD BLOCK) on a client of its own and emits each entry to the
local ``EventEmitter``; the emitter's subscribers see every process's
events. Stopping unblocks the read by its connection id.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable, Optional

from ..events import EventEmitter, LaneEvent
from .connection import Backoff, Functions, is_connection_error, open_client, unreachable

logger = logging.getLogger("pylane.redis")


class EventReader:
    """Lock rule: ``_lock`` guards starting the thread; ``_stopping`` and
    the reader's client (id) are plain fields, written by one side and read
    by the other, where a stale read only delays the stop by one retry."""

    def __init__(self, url: str, functions: Callable[[], Functions],
                 emitter: EventEmitter) -> None:
        self._url = url
        self._functions = functions
        self._emitter = emitter
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._client: Any = None
        self._client_id: Optional[int] = None
        self._stopping = False

    def ensure(self) -> None:
        """Starts reading from the stream's newest entry, once."""
        if self._thread is not None or self._stopping:
            return
        fns = self._functions()
        with self._lock:
            if self._thread is not None:
                return
            try:
                last = fns.client.xrevrange(fns.key("events"), count=1)
            except Exception as error:
                if is_connection_error(error):
                    raise unreachable(self._url, error) from None
                raise
            start = last[0][0] if last else b"0-0"
            self._thread = threading.Thread(target=self._read, args=(start,),
                                            name="pylane-redis-events", daemon=True)
            self._thread.start()

    def _read(self, last_id: Any) -> None:
        """On a client of its own, whose connection id lets ``stop`` unblock
        it (in a cluster: a client of the node holding the queue, found
        again after every error)."""
        key = self._functions().key("events")
        client: Any = None
        backoff = Backoff()
        try:
            while not self._stopping:
                try:
                    if client is None:
                        client = open_client(self._url, blocking=True, key=key)
                        self._client = client
                        self._client_id = client.client_id()
                        if self._stopping:
                            return
                    batch = client.xread({key: last_id}, count=500, block=0)
                except Exception as error:
                    self._client_id = None
                    if client is not None:
                        client.close()
                        client = None
                    if self._stopping:
                        return
                    logger.warning("reading events: %s; retrying", error)
                    time.sleep(backoff.next())  # a background thread's back-off
                    continue
                backoff.reset()
                for _stream, entries in batch or ():
                    for entry_id, fields in entries:
                        last_id = entry_id
                        for event in events_of(entry_id, fields):
                            self._emitter.emit(event)
        finally:
            if client is not None:
                client.close()

    def stop(self) -> None:
        thread = self._thread
        self._stopping = True
        if thread is None:
            return
        client_id, client = self._client_id, self._client
        if client_id is not None and client is not None:
            try:  # another connection of the reader's client: the same server
                client.client_unblock(client_id)
            except Exception as error:
                logger.debug("could not unblock the events reader: %s", error)
        thread.join(5.0)


def events_of(entry_id: Any, fields: dict[Any, Any]) -> list[LaneEvent]:
    """A stream entry's events (its time: the entry id's ms): one, or a
    function call's several (key "batch", data a list of {key, data})."""
    ident = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    at = int(ident.split("-", 1)[0]) * 1_000_000
    key = fields.get(b"key", b"").decode()
    data = json.loads(fields.get(b"data", b"null"))
    if key != "batch":
        return [LaneEvent(key, _payload(data), at)]
    return [LaneEvent(str(item.get("key", "")), _payload(item.get("data")), at)
            for item in data if isinstance(item, dict)]


def _payload(data: Any) -> Any:
    return {} if isinstance(data, (dict, list)) and not data else data
