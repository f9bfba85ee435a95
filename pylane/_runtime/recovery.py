"""Recovery at start: what a previous process left in storage runs again.

Every stored command is rebuilt (see registry.py) and queued in its lane,
oldest first, keeping its id and its retry count: at-least-once delivery.
Nothing is dropped silently: a row that cannot be read, a lane that no
longer exists or a command that cannot be rebuilt becomes a dead letter with
the reason, is logged, and is reported in the ``queue.storage.recovered``
event.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._lane_core import lib
from .command import Command, JsonCommand
from .dlq import DeadLetter
from .engine import check
from .jobs import CommandFuture, Job
from .registry import JSON_KIND, RebuildError, class_for
from .storage import StoredCommand

if TYPE_CHECKING:
    from .queue import CommandQueue

logger = logging.getLogger("pylane.recovery")

STORAGE_RECOVERED = "queue.storage.recovered"
STORAGE_CORRUPT = "queue.storage.corrupt"


def rebuild(queue: CommandQueue, stored: StoredCommand) -> Command:
    """The command a stored record stands for, or RebuildError saying why not."""
    factory = queue.registry.factory_for(stored.command_type)
    try:
        if factory is not None:
            command = factory(stored.payload)
        elif stored.kind == JSON_KIND:
            command = JsonCommand(stored.command_type, stored.payload,
                                  handlers=queue.json_handlers)
        elif stored.kind:
            command = class_for(stored.kind).from_payload(stored.payload)
        else:
            raise RebuildError(f"no factory registered for command type {stored.command_type!r}")
    except RebuildError:
        raise
    except Exception as error:
        raise RebuildError(
            f"rebuilding command type {stored.command_type!r} failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    if not isinstance(command, Command):
        raise RebuildError(f"the factory for {stored.command_type!r} returned "
                           f"{type(command).__name__}, not a Command")
    return command


def recover(queue: CommandQueue) -> None:
    storage = queue.storage
    assert storage is not None
    if queue.dlq is not None:
        for letter in storage.load_dead_letters():
            queue.dlq.push(DeadLetter(letter.command_id, letter.command_type, letter.lane_id,
                                      letter.error, letter.attempts, letter.failed_at))
    records = storage.load_commands()
    report = getattr(storage, "last_load", None)
    corrupt = list(getattr(report, "corrupt", []))
    for row_id, reason in corrupt:
        _give_up(queue, row_id, "?", "?", 0, f"unreadable stored record: {reason}")
        queue.emitter.emit_new(STORAGE_CORRUPT, {"command_id": row_id, "error": reason})
    recovered = unrecoverable = 0
    for stored in records:
        if stored.id.startswith(queue._id_prefix):
            continue  # submitted to this queue before start: already queued
        lane = queue._lanes.get(stored.lane_id)
        try:
            if lane is None:
                raise RebuildError(f"lane {stored.lane_id!r} no longer exists")
            command = rebuild(queue, stored)
        except RebuildError as error:
            unrecoverable += 1
            _give_up(queue, stored.id, stored.command_type, stored.lane_id,
                     stored.retry_count, str(error))
            continue
        _requeue(queue, stored, command, lane)
        recovered += 1
    if recovered or corrupt or unrecoverable:
        logger.info("recovered %d stored commands (%d unreadable, %d could not be rebuilt)",
                    recovered, len(corrupt), unrecoverable)
        queue.emitter.emit_new(STORAGE_RECOVERED, {
            "recovered": recovered, "corrupt": len(corrupt), "unrecoverable": unrecoverable,
        })


def _requeue(queue: CommandQueue, stored: StoredCommand, command: Command, lane: Any) -> None:
    ticket = next(queue._tickets)
    queue._adopt_id(ticket, stored.id)
    job = Job(command.execute, command, CommandFuture(queue, lane, ticket), lane, ticket)
    job.attempt = stored.retry_count
    job.stored = True
    queue._jobs[ticket] = job
    rc = lib.lc_submit(queue._ptr, lane.index, ticket, 0)
    if rc < 0:
        queue._jobs.pop(ticket, None)
        check(rc, "recover")
    queue.recovered.append(job.future)


def _give_up(queue: CommandQueue, command_id: str, command_type: str, lane_id: str,
             attempts: int, reason: str) -> None:
    logger.error("stored command %s (%s in %s) cannot be recovered: %s",
                 command_id, command_type, lane_id, reason)
    queue._record_dead_letter(DeadLetter(command_id, command_type, lane_id, reason, attempts))
    queue.storage.remove_command(command_id)
