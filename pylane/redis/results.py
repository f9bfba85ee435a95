"""Results back to the process that submitted, from whichever ran it.

Each process has one results list in Redis (``results:<client id>``) and
one waiter thread that hands every result to its future; ``sync`` markers
let ``drain`` wait until every result pushed so far was handed out.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from concurrent.futures import Future, InvalidStateError
from typing import Any, Callable, Optional

from ..errors import CommandTimeoutError, RemoteCommandError
from .connection import Backoff, Functions, is_connection_error, open_client

logger = logging.getLogger("pylane.redis")

RESULT_TTL_MS = 86_400_000  # as lanes.lua keeps a results list
TAKE_MOST = 1000  # results handed out per take


class RedisFuture(Future[Any]):
    """A submit's future; ``cancel()`` withdraws the command from Redis if
    it has not started (on whichever machine)."""

    def __init__(self, cancel: Callable[[str], bool], command_id: str, lane_id: str) -> None:
        super().__init__()
        self._withdraw = cancel
        self.command_id = command_id
        self.lane_id = lane_id

    def cancel(self) -> bool:
        if self.done():
            return super().cancel()
        if not self._withdraw(self.command_id):
            return False
        return super().cancel()


class ResultWaiter:
    """Lock rule: ``_lock`` guards starting the thread; ``futures`` and the
    sync markers are dicts touched one operation at a time (atomic under the
    GIL): the submitter adds a future before its command can finish, the
    waiter pops it."""

    def __init__(self, url: str, functions: Callable[[], Functions], client_id: str) -> None:
        self._url = url
        self._functions = functions
        self._client_id = client_id
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._syncs: dict[str, threading.Event] = {}
        self._stopping = False
        self.futures: dict[str, RedisFuture] = {}

    def key(self) -> str:
        return self._functions().key(f"results:{self._client_id}")

    def ensure(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(target=self._wait, name="pylane-redis-results",
                                          daemon=True)
                thread.start()
                self._thread = thread

    def _wait(self) -> None:
        """Hands out results as they come. They are moved to a list of their
        own, ``<results list>:taken`` — every waiting one at once
        (``a3s_take_results``, up to TAKE_MOST), or, when none waits, the
        next one with a blocking BLMOVE — and that list is emptied only with
        the next move, after the results were handled: if Redis dies after a
        move but before its reply (appendfsync always keeps the move), the
        results are handled after the reconnection, not lost as with a
        BLPOP. Handling one twice is harmless."""
        key = self.key()
        taken = f"{key}:taken"
        client = open_client(self._url, blocking=True)
        backoff = Backoff()
        items: list[bytes] = []
        recover = True  # first, and after every error: what a move left in `taken`
        try:
            while True:
                try:
                    if recover:
                        items = client.lrange(taken, 0, -1)
                        recover = False
                    for raw in items:
                        if not self._handle(raw):
                            client.delete(taken)
                            return
                    items = self._functions().take_results(self._client_id, TAKE_MOST)
                    if not items:  # `taken` is empty now: wait for the next one
                        pipe = client.pipeline(transaction=False)
                        pipe.blmove(key, taken, 0, "LEFT", "RIGHT")
                        pipe.pexpire(taken, RESULT_TTL_MS)
                        item, _expiring = pipe.execute()
                        items = [] if item is None else [item]
                except Exception as error:
                    recover = True
                    if not is_connection_error(error):
                        logger.exception("results waiter failed")
                    if self._stopping:
                        return
                    logger.warning("waiting for results: %s; retrying", error)
                    time.sleep(backoff.next())  # a background thread's back-off
                    continue
                backoff.reset()
        finally:
            client.close()

    def _handle(self, raw: bytes) -> bool:
        """False for the waiter's stop message."""
        message = json.loads(raw)
        if message.get("stop"):
            return False
        if "sync" in message:
            done = self._syncs.get(message["sync"])
            if done is not None:
                done.set()
            return True
        self._resolve(message)
        return True

    def _resolve(self, message: dict[str, Any]) -> None:
        future = self.futures.pop(message.get("id", ""), None)
        if future is None or future.done():
            return
        status = message.get("status")
        try:
            if status == "ok":
                future.set_result(json.loads(message.get("result") or "null"))
            elif status == "cancelled":
                Future.cancel(future)
                future.set_running_or_notify_cancel()
            elif status == "timeout":
                future.set_exception(CommandTimeoutError(message.get("error") or "timed out"))
            else:
                future.set_exception(RemoteCommandError(message.get("error") or "failed"))
        except InvalidStateError:
            pass  # cancelled here at the same moment

    def sync(self, timeout: Optional[float]) -> None:
        """Waits until every result pushed so far was handed out (drain
        never returns with a finished command's future unset)."""
        if self._thread is None or not self.futures:
            return
        token = uuid.uuid4().hex
        done = threading.Event()
        self._syncs[token] = done
        self._functions().client.rpush(self.key(), json.dumps({"sync": token}))
        done.wait(timeout)
        self._syncs.pop(token, None)

    def stop(self) -> None:
        self._stopping = True
        thread = self._thread
        if thread is None:
            return
        try:
            self._functions().client.rpush(self.key(), json.dumps({"stop": True}))
        except Exception as error:
            logger.debug("could not stop the results waiter: %s", error)
        thread.join(5.0)
