"""What runs the commands a Redis worker claimed, in this process.

Redis has already applied every lane rule when it hands a command out, so a
plain handler's command needs no local scheduling: it goes to one of the
worker's slot threads through a ``SimpleQueue`` (one hand-off). A command of
a lane with a timeout, or one whose handler is ``async def``, goes to the
local C engine instead (``CommandQueue``), which enforces the deadline (the
``DeadlineInterrupt``, the abandoned slot) and owns the event loop.

Whichever ran it, each command ends in exactly one ``done(command, ack)``
call, on the thread that ran it; a slot thread never dies of what a handler
raises.
"""

from __future__ import annotations

import inspect
import json
import queue
import threading
import time
import types
from concurrent.futures import Future
from typing import Any, Callable, Optional

from .._runtime.queue import CommandQueue
from ..command import JsonCommand
from ..config import LaneConfig
from ..errors import CommandTimeoutError
from ..events import EventEmitter

Handler = Callable[[Any], Any]


def _is_async(handler: Handler) -> bool:
    """An ``async def`` function, or an object whose ``__call__`` is one."""
    call = type(handler).__call__ if not inspect.isroutine(handler) else None
    return inspect.iscoroutinefunction(handler) or (
        call is not None and inspect.iscoroutinefunction(call))


def _returning(value: Any) -> Callable[[], Any]:
    return lambda: value


class CommandRunner:
    """Runs claimed commands on `slots` slot threads or the local engine.

    Lock rule: ``_lanes_lock`` guards registering a lane on the local engine
    (slot threads and the courier may both do it); ``_kinds`` belongs to the
    thread that calls ``run_all`` (the courier)."""

    def __init__(self, slots: int, handler_for: Callable[[str], Optional[Handler]],
                 done: Callable[[dict[str, Any], dict[str, Any]], None]) -> None:
        self._slots = slots
        self._handler_for = handler_for
        self._done = done
        # The local engine: lanes with room for every slot (Redis enforces
        # the real limits) and the lane's timeout.
        self._executor = CommandQueue(EventEmitter(1), max_workers=slots)
        self._local_lanes: set[str] = set()
        self._lanes_lock = threading.Lock()
        # Plain handlers' commands, for the slot threads (None: stop).
        self._inbox: queue.SimpleQueue[Optional[tuple[dict[str, Any], Optional[Handler]]]] = (
            queue.SimpleQueue())
        self._threads: list[threading.Thread] = []
        # Per command type, its last handler and whether it is async (a
        # handler object registered once is looked at once).
        self._kinds: dict[str, tuple[Optional[Handler], bool]] = {}

    def start(self) -> None:
        self._executor.start()
        for number in range(self._slots):
            thread = threading.Thread(target=self._slot_loop, daemon=True,
                                      name=f"pylane-redis-slot-{number}")
            self._threads.append(thread)
            thread.start()

    def stop_slots(self, deadline: float) -> None:
        """The slot threads finish what they run and exit (by `deadline`,
        a ``time.monotonic()`` time)."""
        for _ in self._threads:
            self._inbox.put(None)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def stop_engine(self, deadline: float) -> None:
        self._executor.shutdown()
        self._executor.drain(max(0.1, deadline - time.monotonic()))

    def run_all(self, commands: list[dict[str, Any]]) -> None:
        """Starts claimed commands (each stamped with ``began``)."""
        began = time.monotonic()
        for command in commands:
            command["began"] = began
            command_type = command["type"]
            handler = self._handler_for(command_type)
            known = self._kinds.get(command_type)
            if known is not None and known[0] is handler:
                is_async = known[1]
            else:
                is_async = handler is not None and _is_async(handler)
                self._kinds[command_type] = (handler, is_async)
            if is_async or command.get("timeout_ms"):
                self._start_on_engine(command, handler)
            else:
                self._inbox.put((command, handler))

    def _local_lane(self, lane_id: str, timeout_ms: Optional[float]) -> None:
        if lane_id in self._local_lanes:
            return
        with self._lanes_lock:
            if lane_id not in self._local_lanes:
                config = LaneConfig.new(0, self._slots)
                if timeout_ms:
                    config = config.with_timeout(timeout_ms / 1000.0)
                self._executor.register_lane(lane_id, config, 0)
                self._local_lanes.add(lane_id)

    def _start_on_engine(self, command: dict[str, Any], handler: Optional[Handler]) -> None:
        try:
            self._local_lane(command["lane"], command.get("timeout_ms"))
            job = JsonCommand(command["type"], json.loads(command["payload"]), handler)
            future = self._executor.submit(command["lane"], job)
        except Exception as error:
            self._failed(command, error)
            return
        future.add_done_callback(lambda done: self._settle(command, done))

    def _slot_loop(self) -> None:
        """One slot thread: runs what the courier hands over, until None."""
        while True:
            item = self._inbox.get()
            if item is None:
                return
            command, handler = item
            try:
                payload = json.loads(command["payload"])
                result = payload if handler is None else handler(payload)
                if type(result) is types.CoroutineType:
                    # A plain function that returned a coroutine: the engine's
                    # event loop runs it, this slot waits.
                    self._local_lane(command["lane"], None)
                    result = self._executor.submit(command["lane"], _returning(result)).result()
                text = json.dumps(result, allow_nan=False)
            except BaseException as error:  # a slot thread never dies
                self._failed(command, error)
            else:
                self._done(command, {"id": command["id"], "lease": command["lease"],
                                     "status": "ok", "result": text})

    def _settle(self, command: dict[str, Any], future: Future[Any]) -> None:
        error = future.exception()
        if error is not None:
            self._failed(command, error)
            return
        try:
            text = json.dumps(future.result(), allow_nan=False)
        except Exception as failure:  # the result is not JSON
            self._failed(command, failure)
            return
        self._done(command, {"id": command["id"], "lease": command["lease"], "status": "ok",
                             "result": text})

    def _failed(self, command: dict[str, Any], error: BaseException) -> None:
        ack = {"id": command["id"], "lease": command["lease"]}
        if isinstance(error, CommandTimeoutError):
            ack.update(status="timeout", error=str(error))
        else:
            ack.update(status="error", error=f"{type(error).__name__}: {error}")
        self._done(command, ack)
