"""Async commands: coroutines run on an event loop the queue owns.

A command whose call returns a coroutine (an ``async def`` callable, a
``Command`` with ``async def execute``, an SDK handler that is ``async``)
runs on one event loop per queue, started on its own thread at the first
such command. The worker that dispatched it waits for it, so the lane's
slot stays taken while it runs: concurrency limits mean the same thing for
async and threaded commands. Its cancel token cancels the coroutine for
real — at a lane's deadline or on ``future.cancel()`` — so an async timeout
is honest: the coroutine's ``finally:`` blocks run and the slot frees as
soon as it has unwound.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any, Optional

from ..cancel import CancelToken

logger = logging.getLogger("pylane.queue")


class EventLoopThread:
    """One event loop on one daemon thread, started on demand. Lock rule:
    ``_lock`` guards ``_loop``/``_thread`` creation and ``_stopped``."""

    def __init__(self, name: str = "pylane-async") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._stopped = False

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._stopped:
                raise RuntimeError("the queue's event loop has stopped")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(target=self._run, args=(loop, ready),
                                          name=self._name, daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            loop.close()

    def run(self, coro: Coroutine[Any, Any, Any], token: CancelToken) -> Any:
        """Runs `coro` on the loop and waits for its result on this thread.
        When `token` is set, the coroutine's task is cancelled."""
        loop = self._running_loop()
        task_box: list[asyncio.Task[Any]] = []

        async def guarded() -> Any:
            task = asyncio.current_task()
            assert task is not None
            task_box.append(task)
            return await coro

        future = asyncio.run_coroutine_threadsafe(guarded(), loop)

        def cancel(_reason: str) -> None:
            # The token may be set from any thread; the task belongs to the loop.
            if task_box:
                loop.call_soon_threadsafe(task_box[0].cancel)
            else:
                future.cancel()

        token.add_callback(cancel)
        try:
            return future.result()
        except asyncio.CancelledError:
            # concurrent.futures.CancelledError is asyncio's since 3.8.
            raise
        finally:
            if not future.done():
                future.cancel()
            if not task_box:
                coro.close()  # cancelled before it began: never awaited

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not threading.current_thread():
                thread.join(5.0)
