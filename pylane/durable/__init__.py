"""Durability: storage of live commands, dead letters, and the registry that
rebuilds stored commands after a restart."""

from ..errors import RebuildError, StorageError
from .dead_letters import DeadLetter, DeadLetterQueue
from .registry import CommandRegistry
from .storage import LocalStorage, Storage, StoredCommand, StoredDeadLetter

__all__ = [
    "CommandRegistry",
    "DeadLetter",
    "DeadLetterQueue",
    "LocalStorage",
    "RebuildError",
    "Storage",
    "StorageError",
    "StoredCommand",
    "StoredDeadLetter",
]
