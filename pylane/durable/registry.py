"""Rebuilding commands from storage after a restart.

A stored command carries its ``command_type``, a ``kind`` and its JSON
payload. To rebuild it the queue asks, in order:
  1. a factory registered for its command type (``register_command``);
  2. the class named by its kind: every ``Command`` subclass is recorded by
     ``module:qualname`` when it is defined, and a module that is not yet
     imported is imported (the storage is the application's own, trusted
     file), then ``cls.from_payload(payload)`` builds it;
  3. for SDK commands (kind ``json``), a ``JsonCommand`` that finds its
     handler when it runs.
A command that cannot be rebuilt goes to the dead letters with the reason.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Protocol

from ..errors import LaneError, RebuildError


class Rebuildable(Protocol):
    """A Command class as far as this registry is concerned (command.py
    imports this module, so it does not import command.py back)."""

    @classmethod
    def from_payload(cls, payload: Any) -> Any: ...

JSON_KIND = "json"

Factory = Callable[[Any], Any]

# Every Command subclass, by "module:qualname" (filled by Command.__init_subclass__).
_CLASSES: dict[str, type[Rebuildable]] = {}


def kind_of(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def record_class(cls: type[Rebuildable]) -> None:
    _CLASSES[kind_of(cls)] = cls


def class_for(kind: str) -> type[Rebuildable]:
    cls = _CLASSES.get(kind)
    if cls is not None:
        return cls
    module_name, _, qualname = kind.partition(":")
    if not module_name or not qualname:
        raise RebuildError(f"unknown command kind {kind!r}")
    try:
        importlib.import_module(module_name)
    except ImportError as error:
        raise RebuildError(f"cannot import {module_name!r} for command kind {kind!r}: {error}") \
            from error
    cls = _CLASSES.get(kind)
    if cls is None:
        raise RebuildError(f"no Command class {qualname!r} in module {module_name!r}")
    return cls


class CommandRegistry:
    """Per-queue factories by command type, over the global class table."""

    def __init__(self) -> None:
        self._factories: dict[str, Factory] = {}

    def register(self, command_type: str, factory: Factory) -> None:
        if not isinstance(command_type, str) or not command_type:
            raise LaneError("command_type must be a non-empty string")
        if not callable(factory):
            raise LaneError(f"factory for {command_type!r} must be callable")
        self._factories = {**self._factories, command_type: factory}

    def factory_for(self, command_type: str) -> Factory | None:
        return self._factories.get(command_type)
