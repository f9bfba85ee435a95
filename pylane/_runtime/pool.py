"""The worker threads of one queue.

A worker runs the queue's loop until the engine stops. A worker whose
command ran past its deadline is *abandoned*: it is counted, replaced, and
never joined (it may never return from the command); when it does return it
leaves at once.
"""

from __future__ import annotations

import threading
from typing import Callable


class WorkerPool:
    """Lock rule: ``_lock`` guards ``_threads``, ``_abandoned``,
    ``_abandoned_total`` and ``_stopped``. Threads are started under it, so
    ``stop`` never finds a listed thread it cannot join yet. Callers may hold
    the queue's state lock when they call in (order: state lock, then this
    one); nothing here calls out while holding ``_lock``, except
    ``Thread.start``."""

    def __init__(self, target: Callable[[], None], name: str = "pylane-worker") -> None:
        self._target = target
        self._name = name
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._abandoned: set[threading.Thread] = set()
        self._abandoned_total = 0
        self._stopped = False

    def spawn(self) -> None:
        """Starts one more worker, unless the pool has stopped."""
        with self._lock:
            if self._stopped:
                return
            thread = threading.Thread(
                target=self._target, name=f"{self._name}-{len(self._threads)}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def abandon(self, thread: threading.Thread | None) -> None:
        """Counts a worker left running a command past its deadline."""
        with self._lock:
            if thread is not None:
                self._abandoned.add(thread)
            self._abandoned_total += 1

    def returned(self, thread: threading.Thread) -> None:
        """An abandoned worker came back from its command (it then exits)."""
        with self._lock:
            self._abandoned.discard(thread)

    def owns(self, thread: threading.Thread) -> bool:
        """Whether `thread` is one of this pool's workers."""
        return thread in self._threads

    @property
    def alive(self) -> int:
        """Workers taking commands (abandoned ones excluded)."""
        with self._lock:
            return len(self._threads) - len(self._abandoned)

    @property
    def abandoned(self) -> int:
        """Workers still stuck in a command past its deadline."""
        return len(self._abandoned)

    @property
    def abandoned_total(self) -> int:
        """Workers ever abandoned."""
        return self._abandoned_total

    def stop(self) -> bool:
        """Marks the pool stopped: no worker is spawned any more. False if it
        already was."""
        with self._lock:
            if self._stopped:
                return False
            self._stopped = True
        return True

    def join(self) -> None:
        """Waits for every worker but the abandoned ones and the caller. The
        caller must first make the workers' loop end (stop the engine)."""
        with self._lock:
            threads = [t for t in self._threads if t not in self._abandoned]
        current = threading.current_thread()
        for thread in threads:
            if thread is not current:
                thread.join()
