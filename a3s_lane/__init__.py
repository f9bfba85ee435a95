"""The documented SDK name: ``from a3s_lane import Lane, LaneConfig``.
A re-export of :mod:`pylane`, nothing more."""

from pylane import *  # noqa: F403
from pylane import __all__  # noqa: F401
