"""Durations: seconds (int or float) or ``datetime.timedelta``, everywhere.

Every duration a user gives is checked here against what the runtime can
represent: the timeouts of ``threading`` waits (``threading.TIMEOUT_MAX``)
and the engine's 64-bit nanosecond clock. A larger value would be accepted
today and break a background thread later (an ``OverflowError`` in the
deadline thread once stopped every lane's timeouts), so it is refused at
configuration time, by name.
"""

from __future__ import annotations

import math
import threading
from datetime import timedelta
from typing import Union

from .errors import InvalidConfigError

Duration = Union[int, float, timedelta]

# The longest duration any part of the runtime waits for or stores: below
# threading.TIMEOUT_MAX (Condition.wait) and below 2**62 ns, so that "now +
# duration" still fits the engine's unsigned 64-bit nanoseconds.
MAX_SECONDS = min(threading.TIMEOUT_MAX, 2**62 / 1e9)
_YEARS = MAX_SECONDS / (365.25 * 86400)


def to_seconds(value: object, name: str, *, endless_ok: bool = False) -> float:
    """Converts a duration to seconds, naming `name` when it is invalid.

    With `endless_ok` (a wait's timeout), a duration beyond what the
    runtime holds, infinity included, means "no limit" and gives ``inf``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond any float
            seconds = math.inf
    else:
        raise InvalidConfigError(
            f"{name} must be a number of seconds or a timedelta, got {type(value).__name__}"
        )
    if math.isnan(seconds) or seconds < 0:
        raise InvalidConfigError(f"{name} must be a non-negative duration, got {value!r}")
    if seconds > MAX_SECONDS:
        if endless_ok:
            return math.inf
        raise InvalidConfigError(
            f"{name} must be at most {MAX_SECONDS:.4g} s (about {_YEARS:.0f} years), "
            f"got {_short(value)}"
        )
    return seconds


def check_seconds(value: object, name: str, *, minimum: float = 0.0) -> float:
    """A field already meant to hold seconds (a dataclass field): the same
    checks as `to_seconds`, plus an optional exclusive `minimum`."""
    seconds = to_seconds(value, name)
    if seconds < minimum:
        raise InvalidConfigError(f"{name} must be at least {minimum:g} s, got {_short(value)}")
    return seconds


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def describe(seconds: float) -> str:
    """Short human form used in messages: 5s, 1.5s, 50ms."""
    if seconds >= 1:
        return f"{seconds:g}s"
    return f"{seconds * 1000:g}ms"
