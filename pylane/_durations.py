"""Durations: seconds (int or float) or ``datetime.timedelta``, everywhere."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Union

from .errors import InvalidConfigError

Duration = Union[int, float, timedelta]


def to_seconds(value: Duration, name: str) -> float:
    """Converts a duration to seconds, naming `name` when it is invalid."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidConfigError(
            f"{name} must be a number of seconds or a timedelta, got {type(value).__name__}"
        )
    if math.isnan(seconds) or seconds < 0:
        raise InvalidConfigError(f"{name} must be a non-negative duration, got {value!r}")
    return seconds


def describe(seconds: float) -> str:
    """Short human form used in messages: 5s, 1.5s, 50ms."""
    if seconds >= 1:
        return f"{seconds:g}s"
    return f"{seconds * 1000:g}ms"
