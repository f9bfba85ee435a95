"""The dead letter queue: commands that failed for good, for inspection.

Bounded: when full, the oldest letter is evicted and counted
(``evicted``). Thread-safe.

With storage, the queue binds the DLQ to it: letters are stored when they
arrive (by the queue) and reloaded at the next start, and what leaves the
DLQ here leaves storage too (``pop``, eviction, ``clear``), so a cleared
letter does not come back after a restart and the stored letters stay
within the capacity.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

from .._checks import INT64_MAX, check_count

logger = logging.getLogger("pylane.dead_letters")


@dataclass(frozen=True)
class DeadLetter:
    command_id: str
    command_type: str
    lane_id: str
    error: str
    attempts: int
    failed_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


class DeadLetterQueue:
    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = check_count("dead letter capacity", capacity, 1, INT64_MAX)
        self._letters: deque[DeadLetter] = deque()
        self._lock = threading.Lock()
        self.evicted = 0
        self._storage: Any = None

    def bind_storage(self, storage: Any) -> None:
        """Called by the queue: letters leaving the DLQ leave ``storage``
        too. Removing one letter needs ``storage.remove_dead_letter``
        (``LocalStorage`` has it; a custom storage without it keeps them)."""
        self._storage = storage

    def push(self, letter: DeadLetter) -> None:
        with self._lock:
            evicted = None
            if len(self._letters) >= self.capacity:
                evicted = self._letters.popleft()
                self.evicted += 1
            self._letters.append(letter)
        if evicted is not None:
            self._forget(evicted)

    def pop(self) -> Optional[DeadLetter]:
        with self._lock:
            letter = self._letters.popleft() if self._letters else None
        if letter is not None:
            self._forget(letter)
        return letter

    def _forget(self, letter: DeadLetter) -> None:
        remove = getattr(self._storage, "remove_dead_letter", None)
        if remove is None:
            return
        try:
            remove(letter.command_id)
        except Exception:
            logger.exception("could not remove the dead letter of %s from storage; it will be "
                             "reloaded at the next start", letter.command_id)

    def list(self) -> list[DeadLetter]:
        """A copy, oldest first."""
        with self._lock:
            return list(self._letters)

    def clear(self) -> None:
        """Empties the DLQ, and its storage (a storage error is raised: the
        letters would come back at the next start)."""
        with self._lock:
            self._letters.clear()
        if self._storage is not None:
            self._storage.clear_dead_letters()

    def is_empty(self) -> bool:
        return not self._letters

    def __len__(self) -> int:
        return len(self._letters)
