"""The records a queue keeps per lane and per command, and the one table that
owns tickets, command ids and live jobs. Plain data with ``__slots__``: one
``Job`` is made per submit.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from typing import Any, Callable, Optional

from ..cancel import CancelToken
from ..command import Command, command_type_of
from ..config import LaneConfig
from .future import CommandFuture

# Job states. A job is QUEUED (in its lane or waiting out a retry delay),
# RUNNING (one attempt in progress), DONE (its attempt has ended, or the
# worker has taken its end in hand), TIMED_OUT (past its deadline, the
# thread interrupted but still inside the command, the slot still taken) or
# ABANDONED (the grace after the deadline ran out: the slot is free and the
# thread, still running the command, is replaced).
QUEUED, RUNNING, DONE, TIMED_OUT, ABANDONED = range(5)


class Lane:
    """A registered lane: its engine index and what its commands need."""

    __slots__ = (
        "config", "counters", "grace", "index", "inline", "lane_id", "pressure_threshold",
        "pressured", "priority", "retry", "timeout",
    )

    def __init__(self, lane_id: str, index: int, config: LaneConfig, priority: int) -> None:
        self.lane_id = lane_id
        self.index = index
        self.config = config
        self.priority = priority
        self.timeout: Optional[float] = config.timeout
        self.grace: float = config.timeout_grace
        policy = config.retry_policy
        self.retry = policy if policy is not None and policy.max_retries else None
        self.pressure_threshold: Optional[int] = config.pressure_threshold
        self.pressured = False
        # Nothing in the lane's rules watches a command that runs on its
        # caller's thread: run() may take the lean path (inline.py).
        self.inline = self.timeout is None and self.retry is None and \
            self.pressure_threshold is None
        # Outcomes the engine does not count (it sees a timeout as a failure).
        self.counters = {"timed_out": 0, "dead_lettered": 0}


class Job:
    """One submitted command. ``call`` runs it with no arguments (a Command's
    ``execute``, the callable itself, or a ``functools.partial`` of it);
    ``source`` is what the user gave, for its ``command_type`` label."""

    __slots__ = (
        "attempt", "call", "finished", "future", "in_command", "interrupted", "lane", "source",
        "state", "stored", "thread", "ticket", "token", "wake",
    )

    def __init__(self, call: Callable[[], Any], source: Any, future: CommandFuture,
                 lane: Lane, ticket: int) -> None:
        self.call = call
        self.source = source
        self.future = future
        self.lane = lane
        self.ticket = ticket
        self.attempt = 0  # attempts that have ended in failure so far
        self.state = QUEUED
        self.stored = False
        self.token: Optional[CancelToken] = None
        self.thread: Optional[threading.Thread] = None
        # Set once the engine has been told the current attempt ended, so a
        # fault on the way out never frees the slot twice, nor not at all.
        self.finished = False
        # Timed lanes: whether the thread is inside the command (the only
        # place a deadline interrupt may land), and whether one was sent.
        # Both change under the queue's state lock.
        self.in_command = False
        self.interrupted = False
        # The C waiter of a thread blocked on the result, left for the worker
        # to wake once it lets go of the GIL (see Execution._work).
        self.wake: Any = None

    @property
    def command_type(self) -> str:
        source = self.source
        if isinstance(source, Command):
            return command_type_of(source)
        return getattr(source, "__name__", type(source).__name__)

    def cancel_token(self) -> CancelToken:
        token = self.token
        if token is None:
            token = self.token = CancelToken()
        return token


class JobTable:
    """Tickets, command ids and the live jobs of one queue — their only owner.

    ``live`` maps a ticket to its job from submit until the job ends; the
    engine only ever holds tickets. Locking: none of its own. Each access is
    one dict operation, atomic under the GIL, and a ticket has one writer at
    a time (the submitter until the engine has it, then the one worker the
    engine dispatched it to), so no two threads race on one entry.

    Ids: a random, UUID-shaped prefix per queue plus the ticket gives ids
    that are unique across processes without a ``uuid4()`` per command.
    Commands recovered from storage keep the ids they had (``adopt``).

    It is also the ``FutureOwner`` of the queue's futures: ``withdraw`` and
    ``report_cancelled`` are the queue's, handed in at construction.
    """

    __slots__ = ("_ids_by_ticket", "_on_cancelled", "_tickets", "_tickets_by_id", "_withdraw",
                 "live", "prefix")

    def __init__(self, withdraw: Callable[[Lane, int], bool],
                 on_cancelled: Callable[[Lane, int], None]) -> None:
        self.live: dict[int, Job] = {}
        self.prefix = str(uuid.uuid4())[:24]
        self._tickets = itertools.count(1)
        self._ids_by_ticket: dict[int, str] = {}
        self._tickets_by_id: dict[str, int] = {}
        self._withdraw = withdraw
        self._on_cancelled = on_cancelled

    def new_job(self, call: Callable[[], Any], source: Any, lane: Lane) -> Job:
        """A job under a fresh ticket (not yet live: the queue adds it once
        it hands the ticket to the engine)."""
        ticket = next(self._tickets)
        return Job(call, source, CommandFuture(self, lane, ticket), lane, ticket)

    def adopt(self, command_id: str, call: Callable[[], Any], source: Any, lane: Lane) -> Job:
        """A job for a command recovered from storage: it keeps its id."""
        job = self.new_job(call, source, lane)
        self._ids_by_ticket[job.ticket] = command_id
        self._tickets_by_id[command_id] = job.ticket
        return job

    def is_own(self, command_id: str) -> bool:
        """True for ids this table made (commands submitted in this process)."""
        return command_id.startswith(self.prefix)

    def command_id(self, ticket: int) -> str:
        return self._ids_by_ticket.get(ticket) or f"{self.prefix}{ticket:012x}"

    def find(self, command_id: object) -> Optional[Job]:
        """The live job of a command id, if any (None for any other value)."""
        if not isinstance(command_id, str):
            return None
        ticket = self._tickets_by_id.get(command_id)
        if ticket is None:
            if not command_id.startswith(self.prefix):
                return None
            try:
                ticket = int(command_id[len(self.prefix):], 16)
            except ValueError:
                return None
        return self.live.get(ticket)

    # FutureOwner

    def withdraw(self, lane: Any, ticket: int) -> bool:
        return self._withdraw(lane, ticket)

    def report_cancelled(self, lane: Any, ticket: int) -> None:
        self._on_cancelled(lane, ticket)
