"""Kept so that ``from pylane.execution import CommandTimeoutError`` (the
import path of earlier releases) still works; the class lives in
``pylane.errors`` and is exported by ``pylane``."""

from .errors import CommandTimeoutError

__all__ = ["CommandTimeoutError"]
