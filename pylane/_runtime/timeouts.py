"""A single timer thread for command deadlines.

One heap of (deadline, item) and one thread sleeping on a condition until the
earliest deadline: no thread per command and no polling. Items whose command
finished in time are simply found stale when their deadline comes (the
callback checks), which keeps ``watch`` to one heap push.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Any, Callable, Optional

logger = logging.getLogger("pylane.deadlines")


class DeadlineWatcher:
    def __init__(self, on_expire: Callable[[Any], None], name: str = "pylane-deadlines") -> None:
        self._on_expire = on_expire
        self._name = name
        self._heap: list[tuple[float, int, Any]] = []
        self._order = itertools.count()
        self._wakeup = threading.Condition(threading.Lock())
        self._thread: Optional[threading.Thread] = None
        self._stopped = False

    def watch(self, deadline: float, item: Any) -> None:
        """Calls ``on_expire(item)`` at `deadline` (``time.monotonic`` seconds)."""
        with self._wakeup:
            heapq.heappush(self._heap, (deadline, next(self._order), item))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif self._heap[0][2] is item:
                self._wakeup.notify()  # the new item is now the earliest

    def stop(self) -> None:
        with self._wakeup:
            self._stopped = True
            self._heap.clear()
            self._wakeup.notify()

    def _run(self) -> None:
        with self._wakeup:
            while not self._stopped:
                if not self._heap:
                    self._wakeup.wait()
                    continue
                deadline, _, item = self._heap[0]
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    self._wakeup.wait(remaining)
                    continue
                heapq.heappop(self._heap)
                self._wakeup.release()
                try:
                    self._on_expire(item)
                except Exception:
                    logger.exception("deadline handler failed")
                finally:
                    self._wakeup.acquire()
