"""A process's worker in a Redis queue: N slots and one courier thread that
speaks to Redis for all of them. Each claim asks for as many commands as the
process has free slots (and only then: no prefetch, which keeps priority
strict) and carries the acks of every command that finished since the last
one, so one round trip serves many commands under load and one command when
idle. What it gets runs on the worker's slot threads or the local engine
(``runner.py``), or, when quick, on the courier's own thread
(``courier_slot.py``); a finished command's ack goes back with the next
claim, at once. When the process has free slots and the last claim found nothing, the
courier waits for a wake-up (a second thread blocks on the worker's own wake
list in Redis: a submit there leaves either a token, or, since this worker
joins as "direct", the records of commands it leased to the worker itself,
which then start with no claim round trip), the next due time Redis reported (a retry's back-off, a
rate limit's next token) or a finished command. A heartbeat thread renews
the lease once per interval and reaps workers whose lease ran out; when
another worker's lease runs out before its next beat, it beats then.

When Redis cannot be reached, the courier and the wake reader retry with
back-off (100 ms doubling to 5 s), finished commands' acks are kept until
they go through, and the outage is logged and emitted locally
(``queue.redis.disconnected``, ``queue.redis.reconnected``): the events
stream lives in Redis. A claim that failed on the connection may have run in
Redis all the same (Redis died before its reply went out): the command is
then leased to this worker, which does not know it. So after such a failure
the next successful claim is followed by a look at the commands Redis says
the worker holds (``leased:<worker>``): those it neither runs nor still has
to acknowledge are run under their lease ("adopted"); none is stranded with
a live worker.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from typing import Any, Callable, Optional, Protocol

from ..errors import LaneError, RedisConnectionError
from .connection import (
    Backoff,
    Functions,
    is_connection_error,
    open_client,
    redact,
    unreachable,
)
from .courier_slot import CourierSlot
from .runner import CommandRunner, Item


class WorkerOwner(Protocol):
    """What a worker needs of the queue it serves (a ``RedisQueue``)."""

    url: str

    def functions(self) -> Functions: ...

    def handled_types(self) -> list[str]: ...

    def handler_for(self, command_type: str) -> Optional[Callable[[Any], Any]]: ...

    def emit_local(self, key: str, payload: Optional[dict[str, Any]]) -> None: ...

logger = logging.getLogger("pylane.redis")

REDIS_DISCONNECTED = "queue.redis.disconnected"
REDIS_RECONNECTED = "queue.redis.reconnected"
REAP_MARGIN = 0.005  # seconds after a lease runs out that a heartbeat reaps it
# When commands lately took less than this (s), a finished command's ack
# waits up to this long for the others still running: one claim for all.
ACK_COALESCE = 0.0005


class RedisWorker:
    """Joins the queue with `slots` slots and runs what it claims."""

    def __init__(self, owner: WorkerOwner, slots: int, lease: float) -> None:
        self.owner = owner
        self.fns = owner.functions()
        self.slots = slots
        self.lease_ms = lease * 1000.0
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.wake_key = self.fns.key(f"wake:{self.id}")
        self._runner = CommandRunner(slots, owner.handler_for, self._ack)
        self._join_lock = threading.Lock()
        self._joined_types: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._blocking: Any = None
        self._down_lock = threading.Lock()
        self._down = False
        # Lock rule: `_cond` guards what the worker threads, the wake reader
        # and the courier share: `_acks` (finished commands' acks not yet
        # sent), `_running` (commands claimed whose ack is not queued yet),
        # `_woken` (a wake token came since the last claim), `_pushed`
        # (commands a submit leased to this worker, read from its wake list,
        # not started yet), `_unsure` (see below: the wake reader sets it
        # too, when a read failed that may have taken records) and `_due`
        # (monotonic time of the next due retry or rate token); its lock
        # also guards the courier slot's state (see CourierSlot). The
        # courier waits on it and never holds it across a Redis call.
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        self._acks: list[dict[str, Any]] = []
        self._running = 0
        self._woken = True  # the first claim goes at once
        self._pushed: list[dict[str, Any]] = []
        self._due = math.inf
        self._recent = math.inf  # how long commands took lately (moving average, s)
        # The courier's own: what this process holds (claimed, running or
        # acked but unanswered) and whether a claim failed on the connection
        # (its commands may be leased to us all the same: see the module doc).
        self._held: set[str] = set()
        self._unsure = False
        self._slot = CourierSlot(lock, self._settle_locked, self._runner.execute,
                                 self._runner.hand_off, self._spawn_watch, self._courier)

    # ---- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        self._join()
        self._runner.start()
        self._blocking = open_client(self.owner.url, blocking=True)
        self._spawn(lambda: self._courier(0), "pylane-redis-courier")
        self._spawn_watch()
        self._spawn(self._wake_loop, "pylane-redis-wake")
        self._spawn(self._heartbeat_loop, "pylane-redis-heartbeat")

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        # (Couriers come and go: see CourierSlot. The ended ones are dropped.)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _spawn_watch(self) -> None:
        self._spawn(self._slot.watch_loop, "pylane-redis-courier-watch")

    def stop(self, timeout: float = 10.0) -> None:
        """Claims nothing more; running commands finish and are
        acknowledged; then the worker leaves the queue (what it still holds
        goes back to the front of its lane)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        try:
            self.fns.client.rpush(self.wake_key, "stop")
        except Exception as error:  # Redis gone: the reader notices it itself
            logger.debug("could not wake the wake reader to stop it: %s", error)
        deadline = time.monotonic() + timeout
        while True:  # a courier's job may move to another thread meanwhile
            alive = [thread for thread in self._threads if thread.is_alive()]
            if not alive or time.monotonic() >= deadline:
                break
            alive[0].join(max(0.0, deadline - time.monotonic()))
        self._runner.stop_slots(deadline)
        try:
            self.fns.leave(self.id)
        except LaneError as error:
            logger.warning("worker %s could not leave the queue cleanly: %s", self.id, error)
        self._runner.stop_engine(deadline)
        if self._blocking is not None:
            self._blocking.close()

    def _join(self) -> None:
        with self._join_lock:
            types = self.owner.handled_types()
            self.fns.join(self.id, self.slots, types, self.lease_ms,
                          f"{socket.gethostname()} pid {os.getpid()}", direct=True)
            self._joined_types = types

    def _rejoin(self, why: str, level: int = logging.WARNING) -> None:
        logger.log(level, "worker %s %s; joining the queue again", self.id, why)
        try:
            self._join()
        except RedisConnectionError as error:
            self._connection_lost(error)

    # ---- Redis outages -----------------------------------------------------------

    def _connection_lost(self, error: BaseException) -> None:
        with self._down_lock:
            first, self._down = not self._down, True
        if first:
            logger.warning("Redis at %s is unreachable (%s); retrying with back-off",
                           redact(self.owner.url), error)
            self.owner.emit_local(REDIS_DISCONNECTED,
                                  {"url": redact(self.owner.url), "error": str(error)})

    def _connection_back(self) -> None:
        if not self._down:
            return
        with self._down_lock:
            was, self._down = self._down, False
        if was:
            logger.warning("Redis at %s is reachable again", redact(self.owner.url))
            self.owner.emit_local(REDIS_RECONNECTED, {"url": redact(self.owner.url)})

    # ---- the courier -------------------------------------------------------------

    def _courier(self, generation: int) -> None:
        if self._courier_loop(generation):
            self._slot.close()

    def _courier_loop(self, generation: int) -> bool:
        """The courier of `generation`: True when it stopped for good, False
        when its job moved to another thread (see CourierSlot)."""
        backoff = Backoff()
        acks_resent = False
        while True:
            with self._cond:
                pushed: list[dict[str, Any]] = []
                while True:
                    if self._pushed:  # leased to us already: they start now
                        pushed, self._pushed = self._pushed, []
                        break
                    stopping = self._stop.is_set()
                    free = 0 if stopping else self.slots - self._running
                    if self._acks:
                        if not stopping and self._running and self._recent < ACK_COALESCE:
                            # Commands end within moments of each other here:
                            # the others' acks are about to come; one claim
                            # for them all saves a round trip each.
                            end = time.monotonic() + ACK_COALESCE
                            while self._running and (left := end - time.monotonic()) > 0:
                                self._cond.wait(left)
                            free = self.slots - self._running
                        break
                    if stopping:
                        if self._running == 0:
                            return True
                    elif free > 0 and (self._woken or self._unsure
                                       or time.monotonic() >= self._due):
                        break
                    timeout = None
                    if not stopping and free > 0 and self._due != math.inf:
                        timeout = max(0.0, self._due - time.monotonic())
                    self._cond.wait(timeout)
                if not pushed:
                    acks, self._acks = self._acks, []
                    self._woken = False
                    self._due = math.inf
            if pushed:
                # (One adopted meanwhile as an orphan is not started twice.)
                pushed = [command for command in pushed if command["id"] not in self._held]
                self._held.update(command["id"] for command in pushed)
                quick = self._start_all(pushed)
                if quick and not self._slot.run(generation, quick):
                    return False
                continue
            try:
                reply = self._claim(free, acks)
            except Exception as error:
                with self._cond:
                    self._acks[:0] = acks  # kept until they go through
                    self._woken = True  # and a claim tried again after the back-off
                if isinstance(error, RedisConnectionError):
                    self._connection_lost(error)
                    if stopping:
                        return True  # the lease runs out; they run again elsewhere
                    acks_resent = acks_resent or bool(acks)
                else:
                    logger.exception("claim failed; the courier retries")
                self._stop.wait(backoff.next())
                continue
            backoff.reset()
            self._connection_back()
            self._log_rejected(reply["rejected"], acks_resent)
            acks_resent = False
            if not reply["known"] and not stopping:
                self._rejoin("was reaped (its lease expired)")
                with self._cond:
                    self._woken = True
                continue
            quick = self._start_all(reply["claimed"])
            if self._unsure:
                quick += self._start_all(self._find_orphans())
            if reply["next_due"] and len(reply["claimed"]) < free:
                wait = max(0.001, (float(reply["next_due"]) - float(reply["now"])) / 1000.0
                           + 0.001)
                with self._cond:
                    self._due = min(self._due, time.monotonic() + wait)
            if quick and not self._slot.run(generation, quick):
                return False

    @staticmethod
    def _log_rejected(rejected: list[str], resent: bool) -> None:
        for command_id in rejected:
            if resent:
                logger.info("the result of command %s was refused when sent again: the "
                            "first attempt went through before the connection broke",
                            command_id)
            else:
                logger.warning("the result of command %s was refused: its lease had moved "
                               "(the command was given to another worker)", command_id)

    def _claim(self, free: int, acks: list[dict[str, Any]]) -> dict[str, Any]:
        """One claim call: what it hands out is held from its reply on, and
        the acks it carried are settled."""
        try:
            reply = self.fns.claim(self.id, free, acks)
        except RedisConnectionError:
            self._unsure = True
            raise
        self._held.update(command["id"] for command in reply["claimed"])
        self._held.difference_update(ack["id"] for ack in acks)
        return reply

    def _wake_loop(self) -> None:
        """Blocks on the worker's wake list and tells the courier; takes
        every token there at once (one claim serves every free slot)."""
        backoff = Backoff()
        while True:
            try:
                popped = self._blocking.blmpop(0, 1, self.wake_key, direction="LEFT",
                                               count=self.slots + 1)
            except Exception as error:
                if self._stop.is_set():
                    return
                if is_connection_error(error):
                    self._connection_lost(unreachable(self.owner.url, error))
                else:
                    logger.exception("waiting for wake-ups failed; retrying")
                with self._cond:
                    # The read may have taken records whose reply was lost:
                    # the next claim looks for commands leased to us unseen.
                    self._unsure = True
                self._stop.wait(backoff.next())
                popped = None
                tokens: list[bytes] = [b"retry"]  # the courier tries a claim again
            else:
                backoff.reset()
                tokens = popped[1] if popped else []
            records = [json.loads(token) for token in tokens if token[:1] == b"{"]
            with self._cond:
                self._pushed.extend(records)
                if len(records) < len(tokens):
                    self._woken = True
                self._cond.notify()
            if b"stop" in tokens or self._stop.is_set():
                return

    def _find_orphans(self) -> list[dict[str, Any]]:
        """After a claim or a wake read failed on the connection: the
        commands leased to this worker in Redis that it does not hold, nor
        has read from its wake list (``_pushed``), nor will read there, to
        run. (A record read while this looks is caught by the courier's
        check of ``_held`` before it starts anything pushed.)"""
        self._unsure = False
        found = []
        try:
            pipe = self.fns.client.pipeline(transaction=False)
            pipe.smembers(self.fns.key(f"leased:{self.id}"))
            pipe.lrange(self.wake_key, 0, -1)
            members, waiting = pipe.execute()
            leased = {member.decode() for member in members}
            for record in waiting:
                if record[:1] == b"{":
                    leased.discard(json.loads(record)["id"])
            with self._cond:
                leased.difference_update(command["id"] for command in self._pushed)
            for command_id in sorted(leased - self._held):
                command = self._orphan(command_id)
                if command is not None:
                    logger.warning("command %s was leased to worker %s by a claim whose reply "
                                   "was lost; running it", command_id, self.id)
                    self._held.add(command_id)
                    found.append(command)
        except Exception as error:
            if not is_connection_error(error):
                raise
            self._unsure = True  # look again once Redis answers
        return found

    def _orphan(self, command_id: str) -> Optional[dict[str, Any]]:
        """The command as a claim hands it out, if it is still running
        under this worker's lease."""
        fields = self.fns.client.hmget(self.fns.key(f"cmd:{command_id}"), "lane", "type",
                                       "payload", "lease", "state", "worker")
        lane, command_type, payload, lease, state, worker = (
            None if value is None else value.decode() for value in fields)
        if state != "running" or worker != self.id or lane is None:
            return None
        config = self.fns.client.hget(self.fns.key("config"), lane)
        timeout_ms = json.loads(config).get("timeout_ms") if config else None
        return {"id": command_id, "lane": lane, "type": command_type, "payload": payload,
                "lease": lease, "timeout_ms": timeout_ms}

    # ---- running a command --------------------------------------------------------

    def _start_all(self, commands: list[dict[str, Any]]) -> list[Item]:
        """Counts claimed commands as running and hands them to the runner;
        each one's ack comes back through ``_ack``. Returns the quick ones,
        for the courier to run itself."""
        if not commands:
            return []
        with self._cond:
            self._running += len(commands)
        return self._runner.run_all(commands)

    def _ack(self, command: dict[str, Any], ack: dict[str, Any]) -> None:
        with self._cond:
            self._settle_locked(command, ack)

    def _settle_locked(self, command: dict[str, Any], ack: dict[str, Any]) -> None:
        took = time.monotonic() - command["began"]
        first = not self._acks
        self._acks.append(ack)
        self._running -= 1
        self._recent = took if self._recent == math.inf else 0.8 * self._recent + 0.2 * took
        if first or not self._running:  # see the courier's wait
            self._cond.notify()

    # ---- the lease ---------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        interval = self.lease_ms / 3000.0
        wait = interval
        while not self._stop.wait(wait):
            wait = interval
            try:
                known, _reaped = self.fns.heartbeat(self.id, self.lease_ms)
            except RedisConnectionError as error:
                self._connection_lost(error)
                continue
            except Exception:
                logger.exception("heartbeat failed")
                continue
            self._connection_back()
            if not known:
                self._rejoin("was reaped (its lease expired)")
            elif self.owner.handled_types() != self._joined_types:
                self._rejoin("has new handlers", logging.INFO)
            wait = min(interval, self._until_next_expiry())

    def _until_next_expiry(self) -> float:
        """Seconds until another worker's lease runs out, if that comes
        before this worker's next heartbeat (REAP_MARGIN after it: the
        heartbeat then reaps it), else a large number. A dead worker's
        commands so go back within its lease, not a heartbeat interval
        later. Read relative to this worker's own expiry, just renewed, so
        no clock is compared."""
        try:
            pipe = self.fns.client.pipeline(transaction=False)
            pipe.zrange(self.fns.key("workers"), 0, 0, withscores=True)
            pipe.zscore(self.fns.key("workers"), self.id)
            earliest, mine = pipe.execute()
        except Exception as error:
            if not is_connection_error(error):
                raise
            return math.inf  # the next heartbeat finds out
        if not earliest or mine is None or earliest[0][0].decode() == self.id:
            return math.inf
        now_ms = float(mine) - self.lease_ms
        return max(0.0, (float(earliest[0][1]) - now_ms) / 1000.0) + REAP_MARGIN
