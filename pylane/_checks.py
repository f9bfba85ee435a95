"""Validation helpers shared by the configuration classes: each names the
field it rejects."""

from __future__ import annotations

import math
from typing import Any, Optional

from .errors import InvalidConfigError

# The engine keeps concurrency windows and worker counts in uint32_t.
UINT32_MAX = 2**32 - 1
INT64_MAX = 2**63 - 1
# Worker threads are real threads: far more than this fails half-way through
# start() ("can't start new thread"), so it is refused up front.
MAX_WORKERS = 4096


def check_workers(value: Any) -> int:
    return check_count("max_workers", value, 1, MAX_WORKERS)


def check_count(name: str, value: Any, minimum: int, maximum: int = UINT32_MAX) -> int:
    """An integer field within [minimum, maximum]; bool is refused because
    True would read as 1. The default maximum is what the engine's 32-bit
    counts hold."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidConfigError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise InvalidConfigError(f"{name} must be >= {minimum}, got {value}")
    if value > maximum:
        raise InvalidConfigError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_real(name: str, value: Any, minimum: float) -> float:
    """A finite real number >= minimum (ints of any size, floats; not bool)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InvalidConfigError(f"{name} must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or number < minimum:
        raise InvalidConfigError(f"{name} must be a finite number >= {minimum:g}, got "
                                 f"{_short(value)}")
    return number


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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
