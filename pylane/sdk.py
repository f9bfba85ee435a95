"""The SDK surface, as the original README documents it for Python:

    from a3s_lane import Lane, LaneConfig
    lane = Lane(); lane.start()
    result = lane.submit("query", "my_command", {"key": "value"})

Beyond the original, handlers registered per command type run real Python
code; a type with no handler echoes its payload, as the original always did.
Payloads travel as JSON (they are copied through ``json``), so a handler sees
exactly what a stored and recovered command would see.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

from ._runtime.future import CommandFuture
from .command import JsonCommand
from .config import LaneConfig, default_lane_configs
from .durable.dead_letters import DeadLetterQueue
from .durable.storage import Storage
from .errors import InvalidArgumentError, InvalidConfigError, InvalidPayloadError
from .events import EventEmitter, EventStream
from .manager import QueueManager, QueueManagerBuilder
from .stats import QueueStats

Handler = Callable[[Any], Any]

# The original SDK's emitter capacity.
SDK_EVENT_CAPACITY = 100


def _json_copy(payload: Any) -> Any:
    try:
        return json.loads(json.dumps(payload, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise InvalidPayloadError(f"payload is not JSON-serialisable: {error}") from error
    except RecursionError:
        raise InvalidPayloadError(
            "payload is nested too deeply to carry as JSON") from None


class Lane:
    """A started-on-demand queue with lanes, submitting by command type."""

    def __init__(self, _configs: Optional[Sequence[LaneConfig]] = None, *,
                 max_workers: Optional[int] = None,
                 event_capacity: int = SDK_EVENT_CAPACITY,
                 storage: Optional[Storage] = None,
                 dlq: Union[DeadLetterQueue, int, None] = None,
                 redis: Optional[str] = None, queue: Optional[str] = None) -> None:
        configs = list(_configs) if _configs is not None else default_lane_configs()
        builder = QueueManagerBuilder(EventEmitter(event_capacity))
        for config in configs:
            if not isinstance(config, LaneConfig):
                raise InvalidConfigError(
                    f"with_lanes() takes LaneConfig objects, got {type(config).__name__}"
                )
            if config.lane_id is None:
                raise InvalidConfigError("a LaneConfig passed to with_lanes() needs a lane_id")
            builder.with_lane(config.lane_id, config, config.priority)
        if max_workers is not None:
            builder.with_max_workers(max_workers)
        if storage is not None:
            builder.with_storage(storage)
        if dlq is not None:
            builder.with_dlq(dlq)
        if redis is not None:  # lanes shared across machines (pylane.redis)
            builder.with_redis(redis, queue=queue if queue is not None else "default")
        elif queue is not None:
            raise InvalidConfigError("queue= names a Redis queue: give redis= too")
        self._manager: QueueManager = builder.build()
        # Shared with the queue: commands recovered from storage find their
        # handlers here when they run, whenever those were registered.
        self._handlers: dict[str, Handler] = self._manager.queue().json_handlers

    @classmethod
    def with_lanes(cls, configs: Sequence[LaneConfig], **options: Any) -> Lane:
        return cls(configs, **options)

    @property
    def manager(self) -> QueueManager:
        """The full API underneath, for futures, cancel and pause."""
        return self._manager

    def register_handler(self, command_type: str, handler: Handler) -> None:
        """Runs `handler(payload)` for commands of this type; its return value
        is the submit's result, and what it raises, the submit's error."""
        if not isinstance(command_type, str) or not command_type:
            raise InvalidConfigError("command_type must be a non-empty string")
        if not callable(handler):
            raise InvalidConfigError(f"handler for {command_type!r} must be callable")
        self._handlers[command_type] = handler

    def handler(self, command_type: str) -> Callable[[Handler], Handler]:
        """Decorator form of ``register_handler``."""
        def register(function: Handler) -> Handler:
            self.register_handler(command_type, function)
            return function
        return register

    def start(self, **options: Any) -> None:
        """With ``redis=``: ``start(worker=False)`` joins as a producer only."""
        self._manager.start(**options)

    def _command(self, command_type: str, payload: Any) -> JsonCommand:
        if not isinstance(command_type, str):
            raise InvalidArgumentError("command_type must be a string, got "
                                    f"{type(command_type).__name__}")
        return JsonCommand(command_type, _json_copy(payload), handlers=self._handlers)

    def submit(self, lane_id: str, command_type: str, payload: Any = None) -> Any:
        """Blocks until the command completes and returns its result."""
        return self._manager.run(lane_id, self._command(command_type, payload))

    def submit_async(self, lane_id: str, command_type: str, payload: Any = None) -> CommandFuture:
        """Queues the command and returns a ``concurrent.futures.Future``."""
        return self._manager.submit(lane_id, self._command(command_type, payload))

    async def asubmit(self, lane_id: str, command_type: str, payload: Any = None) -> Any:
        """``await lane.asubmit(lane_id, type, payload)``: the result, from
        asyncio code. Cancelling the awaiting task cancels the command."""
        return await self._manager.asubmit(lane_id, self._command(command_type, payload))

    def subscribe(self) -> EventStream:
        return self._manager.subscribe()

    def subscribe_filtered(self, keys: Sequence[str]) -> EventStream:
        """Events whose key is exactly one of `keys`."""
        if isinstance(keys, str):
            raise InvalidArgumentError("subscribe_filtered() takes a list of "
                                    "event keys, not a string")
        wanted = frozenset(keys)
        return self._manager.subscribe_filtered(lambda event: event.key in wanted)

    def stats(self) -> QueueStats:
        return self._manager.stats()

    def pause_lane(self, lane_id: str) -> None:
        self._manager.pause_lane(lane_id)

    def resume_lane(self, lane_id: str) -> None:
        self._manager.resume_lane(lane_id)

    def shutdown(self) -> None:
        self._manager.shutdown()

    def drain(self, timeout_secs: Optional[float] = None) -> None:
        self._manager.drain(timeout_secs)
