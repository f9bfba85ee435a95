"""Commands: what a lane runs.

A ``Command`` has ``execute()`` (runs on a worker thread; its return value
resolves the caller's future) and a ``command_type`` label used in events.
Plain callables are accepted wherever a command is, wrapped in
``FunctionCommand``.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, Optional


class Command(abc.ABC):
    """Subclass and implement ``execute``. Override ``command_type`` (a class
    attribute, property or method) to label it; it defaults to the class name."""

    @property
    def command_type(self) -> str:
        return type(self).__name__

    @abc.abstractmethod
    def execute(self) -> Any:
        """Does the work; the return value is the command's result."""


class FunctionCommand(Command):
    """A callable with its arguments, run as a command."""

    __slots__ = ("args", "function", "kwargs", "label")

    def __init__(
        self,
        function: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: Optional[dict[str, Any]] = None,
        command_type: Optional[str] = None,
    ) -> None:
        self.function = function
        self.args = args
        self.kwargs = kwargs or {}
        self.label = command_type or getattr(function, "__name__", type(function).__name__)

    @property
    def command_type(self) -> str:
        return self.label

    def execute(self) -> Any:
        return self.function(*self.args, **self.kwargs)


class JsonCommand(Command):
    """The SDK's command: a type label and a JSON payload. Without a handler
    it returns its payload, as the original SDK's only command did."""

    __slots__ = ("handler", "label", "payload")

    def __init__(
        self,
        command_type: str,
        payload: Any = None,
        handler: Optional[Callable[[Any], Any]] = None,
    ) -> None:
        self.label = command_type
        self.payload = payload
        self.handler = handler

    @property
    def command_type(self) -> str:
        return self.label

    def execute(self) -> Any:
        if self.handler is None:
            return self.payload
        return self.handler(self.payload)


def command_type_of(command: Command) -> str:
    """Reads the label whether a subclass made it an attribute or a method."""
    label = command.command_type
    if callable(label):
        label = label()
    return str(label)


def as_command(
    command: Any, args: tuple[Any, ...] = (), kwargs: Optional[dict[str, Any]] = None
) -> Command:
    if isinstance(command, Command):
        if args or kwargs:
            raise TypeError("arguments can only be passed with a plain callable, not a Command")
        return command
    if callable(command):
        return FunctionCommand(command, args, kwargs)
    raise TypeError(
        f"submit() needs a Command or a callable, got {type(command).__name__}"
    )
