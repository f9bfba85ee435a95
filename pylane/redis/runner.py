"""What runs the commands a Redis worker claimed, in this process.

Redis has already applied every lane rule when it hands a command out, so a
plain handler's command needs no local scheduling. Three paths:

- quick: a command whose type's commands lately all took well under a
  millisecond (QUICK_BELOW on average, none over SLOW_AFTER, at least
  QUICK_AFTER of them seen) is handed back to the courier, which runs it on
  its own thread (``courier_slot.py``): no thread hand-off at all, where a
  hand-off (two context switches and the GIL passed twice) costs more than
  such a command itself;
- plain: any other plain handler's command goes to one of the worker's slot
  threads through a ``SimpleQueue`` (one hand-off);
- engine: a command of a lane with a timeout, or one whose handler is
  ``async def``, goes to the local C engine (``CommandQueue``), which
  enforces the deadline (the ``DeadlineInterrupt``, the abandoned slot) and
  owns the event loop.

A plain or quick command's ack comes from ``execute`` (the slot thread hands
it to ``done``); an engine command ends in one ``done(command, ack)`` call.
Nothing a handler raises escapes ``execute``: no thread of ours dies of it.
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


# A type's commands run on the courier's thread once QUICK_AFTER of them
# were seen, taking QUICK_BELOW seconds or less on average (moving average),
# and none since took over SLOW_AFTER: one that does sends the type back to
# the slot threads until QUICK_AFTER more were seen.
QUICK_BELOW = 0.0002
QUICK_AFTER = 8
SLOW_AFTER = 0.002
# Per-type caches hold at most this many types, then start afresh: types come
# from whoever submits, and a type nobody handles is echoed, not refused.
TYPES_CACHED = 4096

Item = tuple[dict[str, Any], Optional[Handler]]


class CommandRunner:
    """Runs claimed commands on `slots` slot threads or the local engine.

    Lock rule: ``_lanes_lock`` guards registering a lane on the local engine
    (slot threads and the courier may both do it); ``_kinds`` belongs to the
    thread that calls ``run_all`` (the courier). ``_speed`` takes no lock:
    every thread that runs a command updates its type's entry (one dict
    store); two at once may lose one sample of a moving average, which
    only ever decides which thread runs a command."""

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
        self._inbox: queue.SimpleQueue[Optional[Item]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        # Per command type, its last handler and whether it is async (a
        # handler object registered once is looked at once).
        self._kinds: dict[str, tuple[Optional[Handler], bool]] = {}
        # Per command type: (moving average of its run time in s, quick runs
        # seen since the last slow one).
        self._speed: dict[str, tuple[float, int]] = {}

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

    def run_all(self, commands: list[dict[str, Any]]) -> list[Item]:
        """Starts claimed commands (each stamped with ``began``), except the
        quick ones: those it returns, in order, for the caller to run with
        ``execute``."""
        began = time.monotonic()
        quick: list[Item] = []
        for command in commands:
            command["began"] = began
            command_type = command["type"]
            handler = self._handler_for(command_type)
            known = self._kinds.get(command_type)
            if known is not None and known[0] is handler:
                is_async = known[1]
            else:
                is_async = handler is not None and _is_async(handler)
                if len(self._kinds) >= TYPES_CACHED:
                    self._kinds.clear()
                self._kinds[command_type] = (handler, is_async)
            if is_async or command.get("timeout_ms"):
                self._start_on_engine(command, handler)
            elif self._is_quick(command_type):
                quick.append((command, handler))
            else:
                self._inbox.put((command, handler))
        return quick

    def hand_off(self, items: list[Item]) -> None:
        """Quick commands the courier will not run after all (it is busy
        with a slow one): to the slot threads."""
        for item in items:
            self._inbox.put(item)

    def _is_quick(self, command_type: str) -> bool:
        speed = self._speed.get(command_type)
        return speed is not None and speed[1] >= QUICK_AFTER and speed[0] <= QUICK_BELOW

    def _note(self, command_type: str, took: float) -> None:
        if len(self._speed) >= TYPES_CACHED and command_type not in self._speed:
            self._speed = {}  # a new dict: another thread may be reading the old one
        average, seen = self._speed.get(command_type, (took, 0))
        self._speed[command_type] = (0.8 * average + 0.2 * took,
                                     0 if took > SLOW_AFTER else seen + 1)

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
            self._done(command, _failure(command, error))
            return
        future.add_done_callback(lambda done: self._settle(command, done))

    def _slot_loop(self) -> None:
        """One slot thread: runs what the courier hands over, until None."""
        while True:
            item = self._inbox.get()
            if item is None:
                return
            command, handler = item
            self._done(command, self.execute(command, handler))

    def execute(self, command: dict[str, Any], handler: Optional[Handler]) -> dict[str, Any]:
        """Runs a plain handler's command on this thread; its ack. Whatever
        the handler raises (SystemExit too) fails the command only."""
        began = time.monotonic()
        try:
            payload = json.loads(command["payload"])
            result = payload if handler is None else handler(payload)
            if type(result) is types.CoroutineType:
                # A plain function that returned a coroutine: the engine's
                # event loop runs it, this thread waits.
                self._local_lane(command["lane"], None)
                result = self._executor.submit(command["lane"], _returning(result)).result()
            text = json.dumps(result, allow_nan=False)
        except BaseException as error:  # no thread of ours dies of a handler
            ack = _failure(command, error)
        else:
            ack = {"id": command["id"], "lease": command["lease"], "status": "ok",
                   "result": text}
        self._note(command["type"], time.monotonic() - began)
        return ack

    def _settle(self, command: dict[str, Any], future: Future[Any]) -> None:
        error = future.exception()
        if error is not None:
            self._done(command, _failure(command, error))
            return
        try:
            text = json.dumps(future.result(), allow_nan=False)
        except Exception as failure:  # the result is not JSON
            self._done(command, _failure(command, failure))
            return
        self._done(command, {"id": command["id"], "lease": command["lease"], "status": "ok",
                             "result": text})


def _failure(command: dict[str, Any], error: BaseException) -> dict[str, Any]:
    ack = {"id": command["id"], "lease": command["lease"]}
    if isinstance(error, CommandTimeoutError):
        ack.update(status="timeout", error=str(error))
    else:
        ack.update(status="error", error=f"{type(error).__name__}: {error}")
    return ack
