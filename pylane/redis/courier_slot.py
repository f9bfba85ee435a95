"""The courier's own slot: quick commands run on the courier's thread, and
the courier's job moves to a new thread when one of them runs long.

Handing a command to a slot thread costs two context switches and the GIL
passed twice: more than a command that takes a few microseconds (a status
check, a cache read, the bench's no-op). So the courier runs a claim's
quick commands (``runner.py`` says which are) itself, between its round
trips to Redis.

The risk is a command that is quick as a rule and slow this once (a cache
miss, a lock, a handler that waits for another command): while it runs,
nothing claims for the worker's free slots and no ack goes out, and an
urgent command would wait behind it. So a watch thread keeps an eye on the
commands the courier runs; once it has spent STUCK_AFTER on one claim's
quick commands (one stuck command, or many that together took that long),
the watch hands the courier's job to a new thread, the way Go's runtime
hands a processor off a thread blocked in a system call: the claim's quick
commands not started yet go to the slot threads, the watch thread itself
becomes the courier (a new watch thread starts first), and the old courier
finishes its command as a slot would, acknowledges it and ends. Should no
new watch thread start (the process is out of threads), quick commands go
to the slot threads from then on: nothing runs on a courier unwatched.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable, Optional

from .runner import Item

logger = logging.getLogger("pylane.redis")

# How long the courier may spend running one claim's quick commands before
# its job moves to another thread (s): what a claim for free slots can be
# held up by.
STUCK_AFTER = 0.002
# How long the watch keeps looking after the courier last ran quick
# commands (s); then it sleeps until the next ones come (no timer at all on
# an idle worker).
LINGER = 0.1


class CourierSlot:
    """Runs the courier's quick commands and watches over them.

    Lock rule: the worker's lock (``lock``, its ``_cond``'s) guards
    ``_items`` (quick commands of the last claim not started yet),
    ``_since`` (when the courier started running them; None: it runs none),
    ``_seq`` (how many claims' commands it ran), ``generation`` (which courier thread is
    the courier), ``_last``, ``_parked``, ``_closed`` and ``_watched``
    (False once no new watch thread could start). The watch waits on
    a condition of its own on that lock, so that a notify meant for the
    courier never wakes the watch instead, nor the other way round."""

    def __init__(self, lock: Any, settle_locked: Callable[[dict[str, Any], dict[str, Any]], None],
                 execute: Callable[[dict[str, Any], Any], dict[str, Any]],
                 hand_off: Callable[[list[Item]], None], spawn_watch: Callable[[], None],
                 be_courier: Callable[[int], None]) -> None:
        self._lock = lock
        self._watch = threading.Condition(lock)
        self._settle_locked = settle_locked
        self._execute = execute
        self._hand_off = hand_off
        self._spawn_watch = spawn_watch
        self._be_courier = be_courier
        self._watched = True
        self._items: collections.deque[Item] = collections.deque()
        self._since: Optional[float] = None
        self._seq = 0
        self.generation = 0
        self._last = -LINGER
        self._parked = False
        self._closed = False

    def run(self, generation: int, items: list[Item]) -> bool:
        """Runs `items` on this thread (the courier of `generation`), each
        one's ack settled as it ends. False when the courier's job moved to
        another thread meanwhile: this one is done then."""
        with self._lock:
            if not self._watched:
                self._hand_off(items)
                return True
            self._items.extend(items)
            self._last = self._since = time.monotonic()
            self._seq += 1
            if self._parked:
                self._watch.notify()
            item = self._next_locked()
        while item is not None:
            command, handler = item
            ack = self._execute(command, handler)
            with self._lock:
                self._settle_locked(command, ack)
                if generation != self.generation:
                    return False
                item = self._next_locked()
        return True

    def _next_locked(self) -> Optional[Item]:
        if not self._items:
            self._since = None
            return None
        return self._items.popleft()

    def close(self) -> None:
        """The courier has stopped for good: the watch ends."""
        with self._lock:
            self._closed = True
            self._watch.notify()

    def watch_loop(self) -> None:
        """The watch thread: once one claim's quick commands have held the
        courier STUCK_AFTER, it starts the next watch and becomes the
        courier itself."""
        with self._lock:
            taken = self._wait_until_stuck_locked()
        if taken is None:
            return
        generation, rest, seq = taken
        logger.debug("quick commands held the Redis courier's thread over %.0f ms (claim %d); "
                    "a new thread takes over the courier's job", STUCK_AFTER * 1000, seq)
        self._hand_off(rest)
        try:
            self._spawn_watch()
        except Exception:  # out of threads: no courier runs commands unwatched
            with self._lock:
                self._watched = False
            logger.exception("could not start a thread to watch the Redis courier; quick "
                             "commands run on slot threads from now on")
        threading.current_thread().name = "pylane-redis-courier"
        self._be_courier(generation)

    def _wait_until_stuck_locked(self) -> Optional[tuple[int, list[Item], int]]:
        while not self._closed:
            now = time.monotonic()
            if self._since is None:
                if now - self._last > LINGER:
                    self._parked = True
                    self._watch.wait()
                    self._parked = False
                else:
                    self._watch.wait(STUCK_AFTER)
                continue
            left = self._since + STUCK_AFTER - now
            if left > 0:
                self._watch.wait(left)
                continue
            # Stuck: the thread running it is the courier no more.
            self.generation += 1
            rest = list(self._items)
            self._items.clear()
            self._since = None
            return self.generation, rest, self._seq
        return None
