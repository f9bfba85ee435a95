"""Commands: what a lane runs.

A ``Command`` has ``execute()`` (runs on a worker thread; its return value
resolves the caller's future) and a ``command_type`` label used in events.
Plain callables are accepted wherever a command is, wrapped in
``FunctionCommand``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, Callable, Optional

from .durable import registry
from .errors import InvalidPayloadError


class Command(abc.ABC):
    """Subclass and implement ``execute``. Override ``command_type`` (a class
    attribute, property or method) to label it; it defaults to the class name."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        registry.record_class(cls)  # so storage can rebuild it after a restart

    @property
    def command_type(self) -> str:
        return type(self).__name__

    @abc.abstractmethod
    def execute(self) -> Any:
        """Does the work; the return value is the command's result."""

    # ---- storage: what a stored command holds, and how it comes back -------

    def to_payload(self) -> Any:
        """The JSON-able state saved with the command when the queue has
        storage. By default the instance's attributes; override it (and
        ``from_payload``) for anything else."""
        state = getattr(self, "__dict__", None)
        if state is None:
            raise InvalidPayloadError(
                f"{type(self).__name__} has no __dict__: override to_payload() and "
                "from_payload() to store it"
            )
        return dict(state)

    @classmethod
    def from_payload(cls, payload: Any) -> Command:
        """Rebuilds a command from ``to_payload()``'s value, without calling
        ``__init__`` (as pickle does)."""
        command = cls.__new__(cls)
        command.__dict__.update(payload)
        return command

    @property
    def storage_kind(self) -> str:
        return registry.kind_of(type(self))


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
        self.label = command_type or _name_of(function)

    @property
    def command_type(self) -> str:
        return self.label

    def execute(self) -> Any:
        return self.function(*self.args, **self.kwargs)


class JsonCommand(Command):
    """The SDK's command: a type label and a JSON payload, run by the handler
    registered for its type (looked up when it runs, so a command recovered
    from storage finds handlers registered after the restart). Without a
    handler it returns its payload, as the original SDK's only command did."""

    __slots__ = ("handler", "handlers", "label", "payload")

    def __init__(
        self,
        command_type: str,
        payload: Any = None,
        handler: Optional[Callable[[Any], Any]] = None,
        *,
        handlers: Optional[Mapping[str, Callable[[Any], Any]]] = None,
    ) -> None:
        self.label = command_type
        self.payload = payload
        self.handler = handler
        self.handlers = handlers

    @property
    def command_type(self) -> str:
        return self.label

    def execute(self) -> Any:
        handler = self.handler
        if handler is None and self.handlers is not None:
            handler = self.handlers.get(self.label)
        if handler is None:
            return self.payload
        return handler(self.payload)

    def to_payload(self) -> Any:
        return self.payload

    @property
    def storage_kind(self) -> str:
        return registry.JSON_KIND


def _name_of(function: object) -> str:
    """A callable's ``__name__``, else the name of its type."""
    name: str = getattr(function, "__name__", type(function).__name__)
    return name


def command_type_of(command: Command) -> str:
    """Reads the label whether a subclass made it an attribute or a method."""
    label = command.command_type
    if callable(label):
        label = label()
    return str(label)
