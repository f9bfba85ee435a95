"""The documented SDK name: ``from a3s_lane import Lane, LaneConfig``.
A re-export of :mod:`pylane`, nothing more (its optional parts stay lazy)."""

from typing import Any

import pylane
from pylane import *  # noqa: F403
from pylane import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    return getattr(pylane, name)
