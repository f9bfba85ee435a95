"""Rate limits: at most N commands per window, per lane.

Enforced by the engine's token bucket when the lane would dispatch (not at
submit): the bucket holds N tokens and starts full, so a burst of N goes at
once, then one command per window/N. A lane out of tokens steps aside: other
lanes keep running, and sleeping workers wake when its next token is due.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._checks import INT64_MAX, check_count
from .._durations import Duration, check_seconds, to_seconds
from ..errors import InvalidConfigError


@dataclass(frozen=True)
class RateLimitConfig:
    max_commands: int
    window: float  # seconds

    def __post_init__(self) -> None:
        check_count("max_commands", self.max_commands, 0, INT64_MAX)
        window = check_seconds(self.window, "rate limit window")
        object.__setattr__(self, "window", window)  # frozen; timedelta -> seconds
        # The engine counts the window in nanoseconds: less than one is none.
        if self.max_commands and window < 1e-9:
            raise InvalidConfigError(
                f"rate limit window must be at least 1 ns, got {self.window!r}")

    @classmethod
    def new(cls, max_commands: int, window: Duration) -> RateLimitConfig:
        return cls(max_commands, to_seconds(window, "rate limit window"))

    @classmethod
    def per_second(cls, n: int) -> RateLimitConfig:
        return cls(n, 1.0)

    @classmethod
    def per_minute(cls, n: int) -> RateLimitConfig:
        return cls(n, 60.0)

    @classmethod
    def per_hour(cls, n: int) -> RateLimitConfig:
        return cls(n, 3600.0)

    @classmethod
    def unlimited(cls) -> RateLimitConfig:
        """No limit (max_commands 0)."""
        return cls(0, 1.0)

    @property
    def is_unlimited(self) -> bool:
        return self.max_commands == 0
