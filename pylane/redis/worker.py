"""A process's worker in a Redis queue: N slots, each a thread that claims
one command at a time (and only when it is free: no prefetch), runs it on
the local C engine and acknowledges it in its next claim, one round trip per
command. Idle slots block in Redis on the worker's own wake list; one of
them at a time also waits for the next due time Redis reported (a retry's
back-off, a rate limit's next token). A heartbeat thread renews the lease
once per interval and reaps workers whose lease ran out; when another
worker's lease runs out before its next beat, it beats then.

When Redis cannot be reached, every thread retries with back-off (100 ms
doubling to 5 s), a finished command's ack is kept until it goes through,
and the outage is logged and emitted locally (``queue.redis.disconnected``,
``queue.redis.reconnected``): the events stream lives in Redis. A claim
that failed on the connection may have run in Redis all the same (Redis
died before its reply went out): the command is then leased to this worker,
which does not know it. So after such a failure a free slot compares the
commands Redis says the worker holds (``leased:<worker>``) with the ones it
runs or still has to acknowledge, and runs the missing ones under their
lease ("adopts" them): none is stranded with a live worker.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections import deque
from typing import Any, Callable, Optional, Protocol

from .._runtime.queue import CommandQueue
from ..command import JsonCommand
from ..config import LaneConfig
from ..errors import CommandTimeoutError, LaneError, RedisConnectionError
from ..events import EventEmitter
from .connection import (
    SOCKET_TIMEOUT,
    Backoff,
    Functions,
    is_connection_error,
    open_client,
    redact,
    unreachable,
)


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


class RedisWorker:
    """Joins the queue with `slots` slots and runs what it claims."""

    def __init__(self, owner: WorkerOwner, slots: int, lease: float) -> None:
        self.owner = owner
        self.fns = owner.functions()
        self.slots = slots
        self.lease_ms = lease * 1000.0
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.wake_key = self.fns.key(f"wake:{self.id}")
        # The local engine runs what Redis hands out: lanes with room for
        # every slot (Redis enforces the real limits), the lane's timeout.
        self._executor = CommandQueue(EventEmitter(1), max_workers=slots)
        self._local_lanes: set[str] = set()
        self._lanes_lock = threading.Lock()
        self._join_lock = threading.Lock()
        self._joined_types: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._blocking: Any = None
        # One idle slot at a time waits for the next due time (the others
        # block until woken), so a due retry wakes one thread per process.
        self._timer_lock = threading.Lock()
        self._timer_owner: Optional[int] = None
        self._timer_deadline = 0.0
        self._down_lock = threading.Lock()
        self._down = False
        # What this process holds (claimed, running or acked but unanswered),
        # the claim calls under way, and whether one failed on the connection
        # (its command may be leased to us all the same: see the module doc).
        self._claims = threading.Condition()
        self._held: set[str] = set()
        self._in_flight: set[int] = set()
        self._tokens = itertools.count()
        self._unsure = False
        self._adopted: deque[dict[str, Any]] = deque()

    # ---- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        self._join()
        self._executor.start()
        self._blocking = open_client(self.owner.url, blocking=True)
        for number in range(self.slots):
            self._spawn(self._slot_loop, f"pylane-redis-slot-{number}")
        self._spawn(self._heartbeat_loop, "pylane-redis-heartbeat")

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Slots finish their command, acknowledge it and exit; then the
        worker leaves the queue (what it still holds goes back to the front
        of its lane)."""
        self._stop.set()
        try:
            self.fns.client.rpush(self.wake_key, *(["stop"] * self.slots))
        except Exception as error:  # Redis gone: the threads notice it themselves
            logger.debug("could not wake the slots to stop them: %s", error)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        try:
            self.fns.leave(self.id)
        except LaneError as error:
            logger.warning("worker %s could not leave the queue cleanly: %s", self.id, error)
        self._executor.shutdown()
        self._executor.drain(max(0.1, deadline - time.monotonic()))
        if self._blocking is not None:
            self._blocking.close()

    def _join(self) -> None:
        with self._join_lock:
            types = self.owner.handled_types()
            self.fns.join(self.id, self.slots, types, self.lease_ms,
                          f"{socket.gethostname()} pid {os.getpid()}")
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

    # ---- one slot --------------------------------------------------------------------

    def _slot_loop(self) -> None:
        ack: Optional[dict[str, Any]] = None
        backoff = Backoff()
        was_timer = False
        ack_retried = False
        while True:
            stopping = self._stop.is_set()
            try:
                reply = self._claim(0 if stopping else 1, [ack] if ack else [])
            except RedisConnectionError as error:
                self._connection_lost(error)
                if stopping:
                    return  # the lease runs out and the command runs again elsewhere
                ack_retried = ack is not None
                self._stop.wait(backoff.next())
                continue
            except Exception:
                logger.exception("claim failed; slot retries")
                self._stop.wait(backoff.next())
                continue
            backoff.reset()
            self._connection_back()
            ack = None
            for command_id in reply["rejected"]:
                if ack_retried:
                    logger.info("the result of command %s was refused when sent again: the "
                                "first attempt went through before the connection broke",
                                command_id)
                else:
                    logger.warning("the result of command %s was refused: its lease had moved "
                                   "(the command was given to another worker)", command_id)
            ack_retried = False
            if not reply["known"] and not stopping:
                self._rejoin("was reaped (its lease expired)")
                continue
            if reply["claimed"]:
                if was_timer:
                    # This slot was the one waiting for the due time and is
                    # busy now: hand that wait to another idle slot.
                    self._poke()
                was_timer = False
                ack = self._execute(reply["claimed"][0])
                continue
            if stopping:
                return
            if self._unsure:
                self._find_orphans()
            adopted = self._take_adopted()
            if adopted is not None:
                ack = self._execute(adopted)
                continue
            was_timer = self._idle(reply, backoff)

    def _claim(self, free: int, acks: list[dict[str, Any]]) -> dict[str, Any]:
        """One claim call, tracked: what it hands out is held from its
        reply on, and the acks it carried are settled."""
        token = next(self._tokens)
        with self._claims:
            self._in_flight.add(token)
        try:
            reply = self.fns.claim(self.id, free, acks)
            with self._claims:
                self._held.update(command["id"] for command in reply["claimed"])
                self._held.difference_update(ack["id"] for ack in acks)
            return reply
        except RedisConnectionError:
            with self._claims:
                self._unsure = True
            raise
        finally:
            with self._claims:
                self._in_flight.discard(token)
                self._claims.notify_all()

    def _find_orphans(self) -> None:
        """After a claim failed on the connection: the commands leased to
        this worker in Redis that it does not hold are adopted."""
        with self._claims:
            if not self._unsure:
                return
            self._unsure = False
        try:
            leased = {member.decode() for member in
                      self.fns.client.smembers(self.fns.key(f"leased:{self.id}"))}
            with self._claims:
                # Claims under way may have run in Redis before that read:
                # their replies say what they handed out.
                under_way = set(self._in_flight)
                self._claims.wait_for(lambda: not under_way & self._in_flight,
                                      SOCKET_TIMEOUT + 1.0)
                missing = leased - self._held
            for command_id in sorted(missing):
                command = self._orphan(command_id)
                if command is not None:
                    logger.warning("command %s was leased to worker %s by a claim whose reply "
                                   "was lost; running it", command_id, self.id)
                    with self._claims:
                        self._held.add(command_id)
                        self._adopted.append(command)
        except Exception as error:
            if not is_connection_error(error):
                raise
            with self._claims:
                self._unsure = True  # look again once Redis answers

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

    def _take_adopted(self) -> Optional[dict[str, Any]]:
        with self._claims:
            return self._adopted.popleft() if self._adopted else None

    def _poke(self) -> None:
        try:
            self.fns.client.rpush(self.wake_key, "timer")
        except Exception as error:
            if not is_connection_error(error):
                raise
            self._connection_lost(error)

    def _idle(self, reply: dict[str, Any], backoff: Backoff) -> bool:
        """Blocks until woken or the next due time; True if this slot was
        the one waiting for the due time (however it woke)."""
        me = threading.get_ident()
        timeout = 0.0  # BLPOP 0: until a token comes
        if reply["next_due"]:
            wait = max(0.001, (float(reply["next_due"]) - float(reply["now"])) / 1000.0 + 0.001)
            with self._timer_lock:
                deadline = time.monotonic() + wait
                if self._timer_owner is None or deadline < self._timer_deadline:
                    self._timer_owner, self._timer_deadline = me, deadline
                    timeout = wait
        try:
            self._blocking.blpop([self.wake_key], timeout=timeout)
        except Exception as error:
            if not is_connection_error(error):
                raise
            self._connection_lost(unreachable(self.owner.url, error))
            self._stop.wait(backoff.next())
        finally:
            with self._timer_lock:
                if self._timer_owner == me:
                    self._timer_owner = None
        return timeout > 0

    def _local_lane(self, lane_id: str, timeout_ms: Optional[float]) -> None:
        if lane_id in self._local_lanes:
            return
        with self._lanes_lock:
            if lane_id not in self._local_lanes:
                config = LaneConfig.new(0, self.slots)
                if timeout_ms:
                    config = config.with_timeout(timeout_ms / 1000.0)
                self._executor.register_lane(lane_id, config, 0)
                self._local_lanes.add(lane_id)

    def _execute(self, command: dict[str, Any]) -> dict[str, Any]:
        """Runs one claimed command; returns its ack."""
        ack: dict[str, Any] = {"id": command["id"], "lease": command["lease"]}
        try:
            self._local_lane(command["lane"], command.get("timeout_ms"))
            payload = json.loads(command["payload"])
            command_type = command["type"]
            job = JsonCommand(command_type, payload, self.owner.handler_for(command_type))
            result = self._executor.run(command["lane"], job)
            ack["result"] = json.dumps(result, allow_nan=False)
            ack["status"] = "ok"
        except CommandTimeoutError as error:
            ack.update(status="timeout", error=str(error))
        except Exception as error:
            ack.update(status="error", error=f"{type(error).__name__}: {error}")
        return ack

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
