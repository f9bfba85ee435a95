"""Deadline boost: a lane whose oldest waiting command nears its deadline
gets more urgent.

The engine computes the lane's effective priority from the age of its front
command whenever it picks a lane: with ``time_left`` until the deadline, the
priority number drops by the boost of the narrowest window reached, and a
command past its deadline puts its lane above every other.
``standard(d)``: 1 at 75% of d left, 2 at 50%, 3 at 25%, 4 at 10%.
``aggressive(d)``: 2 at 80%, 4 at 60%, 6 at 40%, 8 at 20%.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .._durations import MAX_SECONDS, Duration, to_seconds
from ..errors import InvalidConfigError

MAX_WINDOWS = 8


@dataclass(frozen=True)
class PriorityBoostConfig:
    enabled: bool = False
    deadline: float = 0.0  # seconds
    # (time left before the deadline in seconds, boost), widest window first
    boost_intervals: tuple[tuple[float, int], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.enabled and not (isinstance(self.deadline, (int, float))
                                 and 0 < self.deadline <= MAX_SECONDS):
            raise InvalidConfigError(
                f"boost deadline must be > 0 and finite (under {MAX_SECONDS:.0f} s), "
                f"got {self.deadline}"
            )
        try:
            pairs = tuple((before, boost) for before, boost in self.boost_intervals)
        except (TypeError, ValueError):
            raise InvalidConfigError(
                f"boost_intervals must be (seconds, boost) pairs, got {self.boost_intervals!r}"
            ) from None
        object.__setattr__(self, "boost_intervals", pairs)
        if len(self.boost_intervals) > MAX_WINDOWS:
            raise InvalidConfigError(f"at most {MAX_WINDOWS} boost windows")
        for before, boost in self.boost_intervals:
            if not (isinstance(before, (int, float)) and 0 <= before <= MAX_SECONDS):
                raise InvalidConfigError(f"boost window time must be finite and >= 0, got {before}")
            if not isinstance(boost, int) or not 0 <= boost < 2**31:
                raise InvalidConfigError(f"boost amount must be an integer in [0, 2**31), got "
                                         f"{boost!r}")

    @classmethod
    def new(cls, deadline: Duration) -> PriorityBoostConfig:
        return cls(True, to_seconds(deadline, "boost deadline"))

    @classmethod
    def disabled(cls) -> PriorityBoostConfig:
        return cls()

    @classmethod
    def standard(cls, deadline: Duration) -> PriorityBoostConfig:
        return cls._scaled(deadline, ((0.75, 1), (0.50, 2), (0.25, 3), (0.10, 4)))

    @classmethod
    def aggressive(cls, deadline: Duration) -> PriorityBoostConfig:
        return cls._scaled(deadline, ((0.80, 2), (0.60, 4), (0.40, 6), (0.20, 8)))

    @classmethod
    def _scaled(cls, deadline: Duration,
                steps: tuple[tuple[float, int], ...]) -> PriorityBoostConfig:
        seconds = to_seconds(deadline, "boost deadline")
        return cls(True, seconds, tuple((seconds * share, boost) for share, boost in steps))

    def with_boost(self, time_before_deadline: Duration, boost: int) -> PriorityBoostConfig:
        before = to_seconds(time_before_deadline, "time before deadline")
        intervals = sorted((*self.boost_intervals, (before, boost)), key=lambda w: -w[0])
        return PriorityBoostConfig(self.enabled, self.deadline, tuple(intervals))

    def priority_at(self, base: int, time_left: float) -> int:
        """The effective priority with `time_left` seconds before the deadline
        (the engine's rule, for documentation and tests)."""
        if not self.enabled:
            return base
        if time_left <= 0:
            return -1
        boost = 0
        for before, amount in self.boost_intervals:
            if before >= time_left:
                boost = amount
        return max(0, base - boost)
