"""Retry policies: how often a failed command runs again, and after how long.

Delays follow the original: ``delay_for_attempt(k)`` is ``initial *
multiplier^(k-1)`` capped at ``max_delay``, and 0 for k = 0 or a policy with
no retries. Unlike the original it keeps sub-millisecond precision.

A policy is checked whole at construction (a worker computes delays on its
own bookkeeping path, where an error would have nowhere to go): delays are
finite durations the runtime can wait for, the multiplier a finite number
>= 1, and the delay computation itself never overflows (it is capped before
the power can grow past ``max_delay``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._checks import check_count, check_real
from .._durations import Duration, check_seconds, to_seconds
from ..errors import InvalidConfigError

MAX_RETRIES = 2**31 - 1


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 0
    initial_delay: float = 0.0  # seconds
    max_delay: float = 0.0  # seconds
    multiplier: float = 1.0

    def __post_init__(self) -> None:
        check_count("max_retries", self.max_retries, 0, MAX_RETRIES)
        # Frozen: normalise through object.__setattr__ (timedelta -> seconds).
        object.__setattr__(self, "initial_delay",
                           check_seconds(self.initial_delay, "initial_delay"))
        object.__setattr__(self, "max_delay", check_seconds(self.max_delay, "max_delay"))
        object.__setattr__(self, "multiplier", check_real("multiplier", self.multiplier, 1.0))
        if self.max_delay < self.initial_delay:
            raise InvalidConfigError(
                f"max_delay ({self.max_delay}s) is below initial_delay ({self.initial_delay}s)"
            )

    @classmethod
    def exponential(cls, max_retries: int) -> RetryPolicy:
        """100 ms, then x2 each retry, capped at 30 s."""
        return cls(max_retries, 0.1, 30.0, 2.0)

    @classmethod
    def fixed(cls, max_retries: int, delay: Duration) -> RetryPolicy:
        seconds = to_seconds(delay, "retry delay")
        return cls(max_retries, seconds, seconds, 1.0)

    @classmethod
    def none(cls) -> RetryPolicy:
        return cls()

    def should_retry(self, attempts_failed: int) -> bool:
        """`attempts_failed` is the 0-based number of the attempt that failed."""
        return attempts_failed < self.max_retries

    def delay_for_attempt(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        if attempt <= 0 or self.max_retries == 0:
            return 0.0
        initial, cap, multiplier = self.initial_delay, self.max_delay, self.multiplier
        if initial == 0.0 or multiplier == 1.0:
            return min(initial, cap)
        # The power could overflow a float long before the cap is reached:
        # compare exponents (logs) first.
        if (attempt - 1) * math.log(multiplier) >= math.log(cap / initial):
            return cap
        return min(initial * multiplier ** (attempt - 1), cap)
