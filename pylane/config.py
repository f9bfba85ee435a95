"""Lane configuration: one ``LaneConfig`` class for both spellings.

The full API spells it ``LaneConfig.new(min, max)`` with the priority given to
``with_lane(id, config, priority)``; the SDK spells it
``LaneConfig("high", priority=0, min_concurrency=1, max_concurrency=4)``.
Both build the same object, validated as it is built, so a bad value fails
where it is written with a message that names the field.
"""

from __future__ import annotations

import copy
from typing import Any, Optional

from ._checks import INT64_MAX, check_count, check_lane_id, check_priority
from ._durations import Duration, to_seconds
from .errors import InvalidConfigError
from .lanes.boost import PriorityBoostConfig
from .lanes.rate_limit import RateLimitConfig
from .lanes.retry import RetryPolicy

# Seconds a timed-out command gets to unwind after the interrupt.
DEFAULT_TIMEOUT_GRACE = 1.0

# The SDK's keyword form defaulted max_concurrency to 10; LaneConfig.default()
# keeps the Rust default of 4. Both are the original's values.
SDK_DEFAULT_MAX_CONCURRENCY = 10


class LaneConfig:
    """How one lane runs: its concurrency window and (SDK form) id and priority.

    ``min_concurrency`` is a reservation: the lane can always run that many
    commands at once, whatever the other lanes are doing.
    ``max_concurrency`` caps how many of its commands run at once.
    Lower ``priority`` numbers are more urgent.
    """

    __slots__ = (
        "lane_id", "max_concurrency", "min_concurrency", "pressure_threshold", "priority",
        "priority_boost", "rate_limit", "retry_policy", "timeout", "timeout_grace",
    )

    def __init__(
        self,
        lane_id: Optional[str] = None,
        priority: int = 0,
        min_concurrency: int = 1,
        max_concurrency: int = SDK_DEFAULT_MAX_CONCURRENCY,
        timeout_secs: Optional[Duration] = None,
        pressure_threshold: Optional[int] = None,
        *,
        retry_policy: Optional[RetryPolicy] = None,
        timeout: Optional[Duration] = None,
        rate_limit: Optional[RateLimitConfig] = None,
        priority_boost: Optional[PriorityBoostConfig] = None,
        timeout_grace: Duration = DEFAULT_TIMEOUT_GRACE,
    ) -> None:
        if timeout is not None and timeout_secs is not None:
            raise InvalidConfigError("give timeout or timeout_secs, not both")
        timeout = timeout if timeout is not None else timeout_secs
        self.timeout: Optional[float] = None
        if timeout is not None:
            self.timeout = to_seconds(timeout, "timeout")
            if self.timeout == 0:
                raise InvalidConfigError("timeout must be greater than 0 (None means no timeout)")
        # How long a command interrupted at its deadline may take to leave
        # (its finally: blocks run) before its thread is abandoned.
        self.timeout_grace = to_seconds(timeout_grace, "timeout_grace")
        if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
            raise InvalidConfigError(
                f"retry_policy must be a RetryPolicy, got {type(retry_policy).__name__}"
            )
        self.retry_policy = retry_policy
        self.pressure_threshold = (
            None if pressure_threshold is None
            else check_count("pressure_threshold", pressure_threshold, 1, INT64_MAX)
        )
        if rate_limit is not None and not isinstance(rate_limit, RateLimitConfig):
            raise InvalidConfigError(
                f"rate_limit must be a RateLimitConfig, got {type(rate_limit).__name__}"
            )
        self.rate_limit = rate_limit
        if priority_boost is not None and not isinstance(priority_boost, PriorityBoostConfig):
            raise InvalidConfigError(
                f"priority_boost must be a PriorityBoostConfig, got {type(priority_boost).__name__}"
            )
        self.priority_boost = priority_boost
        self.lane_id = None if lane_id is None else check_lane_id(lane_id)
        self.priority = check_priority(priority, lane_id)
        self.min_concurrency = check_count("min_concurrency", min_concurrency, 0)
        self.max_concurrency = check_count("max_concurrency", max_concurrency, 1)
        if self.min_concurrency > self.max_concurrency:
            where = f" of lane {lane_id!r}" if lane_id else ""
            raise InvalidConfigError(
                f"min_concurrency ({self.min_concurrency}) exceeds max_concurrency "
                f"({self.max_concurrency}){where}"
            )

    @classmethod
    def new(cls, min_concurrency: int, max_concurrency: int) -> LaneConfig:
        """The full API's constructor: a concurrency window, no id or priority."""
        return cls(None, 0, min_concurrency, max_concurrency)

    @classmethod
    def default(cls) -> LaneConfig:
        """min 1, max 4, as the original's ``LaneConfig::default()``."""
        return cls.new(1, 4)

    def _with(self, **changes: Any) -> LaneConfig:
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return LaneConfig(**fields)

    @property
    def timeout_secs(self) -> Optional[float]:
        """The SDK's name for ``timeout``."""
        return self.timeout

    def with_lane_id(self, lane_id: str) -> LaneConfig:
        return self._with(lane_id=lane_id)

    def with_priority(self, priority: int) -> LaneConfig:
        return self._with(priority=priority)

    def with_concurrency(self, min_concurrency: int, max_concurrency: int) -> LaneConfig:
        return self._with(min_concurrency=min_concurrency, max_concurrency=max_concurrency)

    def with_timeout(self, timeout: Optional[Duration],
                     grace: Optional[Duration] = None) -> LaneConfig:
        """Each attempt of a command may run this long (seconds or a
        timedelta). At the deadline its future fails with
        ``CommandTimeoutError``, its cancel token is set and the error is
        raised inside the running Python code; its slot stays taken until
        the command has left, or `grace` (default 1 s) has passed — then its
        thread is abandoned and replaced."""
        if grace is None:
            return self._with(timeout=timeout)
        return self._with(timeout=timeout, timeout_grace=grace)

    def with_retry_policy(self, policy: RetryPolicy) -> LaneConfig:
        return self._with(retry_policy=policy)

    def with_pressure_threshold(self, threshold: int) -> LaneConfig:
        """Emit ``queue.lane.pressure`` when pending first reaches `threshold`,
        and ``queue.lane.idle`` when it is back to 0 after that."""
        return self._with(pressure_threshold=threshold)

    def with_rate_limit(self, rate_limit: RateLimitConfig) -> LaneConfig:
        return self._with(rate_limit=rate_limit)

    def with_priority_boost(self, boost: PriorityBoostConfig) -> LaneConfig:
        return self._with(priority_boost=boost)

    def copy(self) -> LaneConfig:
        return copy.copy(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LaneConfig):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in self.__slots__))

    def __repr__(self) -> str:
        extra = f", timeout={self.timeout:g}s" if self.timeout is not None else ""
        if self.retry_policy is not None:
            extra += f", retries={self.retry_policy.max_retries}"
        return (
            f"LaneConfig(lane_id={self.lane_id!r}, priority={self.priority}, "
            f"min={self.min_concurrency}, max={self.max_concurrency}{extra})"
        )


# The six default lanes: (id, priority, max_concurrency); min is 1 for each.
DEFAULT_LANES: tuple[tuple[str, int, int], ...] = (
    ("system", 0, 5),
    ("control", 1, 3),
    ("query", 2, 10),
    ("session", 3, 5),
    ("skill", 4, 3),
    ("prompt", 5, 2),
)


def default_lane_configs() -> list[LaneConfig]:
    return [
        LaneConfig(lane_id, priority, 1, maximum) for lane_id, priority, maximum in DEFAULT_LANES
    ]
