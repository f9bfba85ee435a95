"""The dead letter queue: commands that failed for good, for inspection.

Bounded: when full, the oldest letter is evicted and counted
(``evicted``). Thread-safe.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

from ._checks import check_count


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
        self.capacity = check_count("dead letter capacity", capacity, 1)
        self._letters: deque[DeadLetter] = deque()
        self._lock = threading.Lock()
        self.evicted = 0

    def push(self, letter: DeadLetter) -> None:
        with self._lock:
            if len(self._letters) >= self.capacity:
                self._letters.popleft()
                self.evicted += 1
            self._letters.append(letter)

    def pop(self) -> Optional[DeadLetter]:
        with self._lock:
            return self._letters.popleft() if self._letters else None

    def list(self) -> list[DeadLetter]:
        """A copy, oldest first."""
        with self._lock:
            return list(self._letters)

    def clear(self) -> None:
        with self._lock:
            self._letters.clear()

    def is_empty(self) -> bool:
        return not self._letters

    def __len__(self) -> int:
        return len(self._letters)
