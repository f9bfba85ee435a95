"""Recovery at start: what a previous process left in storage, sorted out.

``plan`` reads the storage and says what to do; the queue does it (requeues
the commands, records the dead letters), so this module needs nothing of the
queue. Every stored command is rebuilt (see ``durable/registry.py``) and
queued in its lane, oldest first, keeping its id and its retry count:
at-least-once delivery. Nothing is dropped silently: a row that cannot be
read, a lane that no longer exists or a command that cannot be rebuilt
becomes a dead letter with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

from ..command import Command, JsonCommand
from ..durable.dead_letters import DeadLetter
from ..durable.registry import JSON_KIND, CommandRegistry, class_for
from ..durable.storage import Storage, StoredCommand
from ..errors import RebuildError

L = TypeVar("L")


@dataclass
class Requeue(Generic[L]):
    """A stored command to queue again, rebuilt."""

    stored: StoredCommand
    command: Command
    lane: L


@dataclass
class RecoveryPlan(Generic[L]):
    restored_letters: list[DeadLetter] = field(default_factory=list)
    """Dead letters kept on disk, for the dead letter queue."""
    requeue: list[Requeue[L]] = field(default_factory=list)
    """Commands to queue again, oldest first."""
    lost: list[DeadLetter] = field(default_factory=list)
    """Stored commands that cannot run again (their reason is the error)."""
    corrupt: list[tuple[str, str]] = field(default_factory=list)
    """(row id, reason) of command rows that could not be read at all."""
    corrupt_letters: list[tuple[str, str]] = field(default_factory=list)
    """(command id, reason) of dead letter rows that could not be read."""


def rebuild(registry: CommandRegistry, json_handlers: Mapping[str, Callable[[Any], Any]],
            stored: StoredCommand) -> Command:
    """The command a stored record stands for, or RebuildError saying why not."""
    factory = registry.factory_for(stored.command_type)
    try:
        if factory is not None:
            command = factory(stored.payload)
        elif stored.kind == JSON_KIND:
            command = JsonCommand(stored.command_type, stored.payload, handlers=json_handlers)
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


def plan(storage: Storage, lanes: Mapping[str, L], registry: CommandRegistry,
         json_handlers: Mapping[str, Callable[[Any], Any]],
         is_own: Callable[[str], bool], *, with_dead_letters: bool) -> RecoveryPlan[L]:
    """What to do with everything in `storage`. Commands whose id `is_own`
    were submitted to this queue before its start and are already queued."""
    result: RecoveryPlan[L] = RecoveryPlan()
    if with_dead_letters:
        result.restored_letters = [
            DeadLetter(letter.command_id, letter.command_type, letter.lane_id, letter.error,
                       letter.attempts, letter.failed_at)
            for letter in storage.load_dead_letters()
        ]
        result.corrupt_letters = list(_unreadable(storage))
    records = storage.load_commands()
    for row_id, reason in _unreadable(storage):
        result.corrupt.append((row_id, reason))
        result.lost.append(DeadLetter(row_id, "?", "?", f"unreadable stored record: {reason}", 0))
    for stored in records:
        if is_own(stored.id):
            continue
        lane = lanes.get(stored.lane_id)
        try:
            if lane is None:
                raise RebuildError(f"lane {stored.lane_id!r} no longer exists")
            command = rebuild(registry, json_handlers, stored)
        except RebuildError as error:
            result.lost.append(DeadLetter(stored.id, stored.command_type, stored.lane_id,
                                          str(error), stored.retry_count))
            continue
        result.requeue.append(Requeue(stored, command, lane))
    return result


def _unreadable(storage: Storage) -> list[tuple[str, str]]:
    """The rows the storage's last load skipped (custom backends may not say)."""
    report = getattr(storage, "last_load", None)
    return list(getattr(report, "corrupt", []))
