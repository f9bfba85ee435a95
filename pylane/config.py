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

from .errors import InvalidConfigError

# The SDK's keyword form defaulted max_concurrency to 10; LaneConfig.default()
# keeps the Rust default of 4. Both are the original's values.
SDK_DEFAULT_MAX_CONCURRENCY = 10


def check_count(name: str, value: Any, minimum: int) -> int:
    """An integer field; bool is refused because True would read as 1."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidConfigError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise InvalidConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_priority(value: Any, lane_id: Optional[str] = None) -> int:
    where = f" for lane {lane_id!r}" if lane_id else ""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidConfigError(
            f"priority{where} must be a non-negative integer, got {type(value).__name__}"
        )
    if value < 0 or value > 2**31 - 1:
        raise InvalidConfigError(f"priority{where} must be between 0 and 2**31-1, got {value}")
    return value


def check_lane_id(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidConfigError(f"lane id must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidConfigError("lane id must not be empty")
    return value


class LaneConfig:
    """How one lane runs: its concurrency window and (SDK form) id and priority.

    ``min_concurrency`` is a reservation: the lane can always run that many
    commands at once, whatever the other lanes are doing.
    ``max_concurrency`` caps how many of its commands run at once.
    Lower ``priority`` numbers are more urgent.
    """

    __slots__ = ("lane_id", "max_concurrency", "min_concurrency", "priority")

    def __init__(
        self,
        lane_id: Optional[str] = None,
        priority: int = 0,
        min_concurrency: int = 1,
        max_concurrency: int = SDK_DEFAULT_MAX_CONCURRENCY,
    ) -> None:
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

    def with_lane_id(self, lane_id: str) -> LaneConfig:
        return self._with(lane_id=lane_id)

    def with_priority(self, priority: int) -> LaneConfig:
        return self._with(priority=priority)

    def with_concurrency(self, min_concurrency: int, max_concurrency: int) -> LaneConfig:
        return self._with(min_concurrency=min_concurrency, max_concurrency=max_concurrency)

    def copy(self) -> LaneConfig:
        return copy.copy(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LaneConfig):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in self.__slots__))

    def __repr__(self) -> str:
        return (
            f"LaneConfig(lane_id={self.lane_id!r}, priority={self.priority}, "
            f"min={self.min_concurrency}, max={self.max_concurrency})"
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
