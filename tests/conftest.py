"""Shared fixtures and helpers for the pylane test suite.

Rules the helpers enforce:
- every manager a test builds is registered with the `managers` fixture, which
  opens every gate, resumes every lane, shuts the manager down and drains it
  at teardown, even when the test failed half-way;
- nothing waits by sleeping: commands that must hold a worker block on a gate
  (a ``threading.Event``), and tests wait on futures, events or conditions,
  always with a timeout so a broken scheduler fails instead of hanging.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

import pytest

from pylane import EventEmitter, Lane, LaneConfig, QueueManager, QueueManagerBuilder

# Upper bound for any wait on an outcome that should arrive promptly. Generous
# on purpose: a healthy run never gets near it, a broken one fails instead of
# hanging.
WAIT = 10.0


class Gates:
    """Events that hold commands; all are opened at teardown."""

    def __init__(self) -> None:
        self._events: list[threading.Event] = []
        self._lock = threading.Lock()

    def new(self) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._events.append(event)
        return event

    def open_all(self) -> None:
        with self._lock:
            events = list(self._events)
        for event in events:
            event.set()


class Blocker:
    """A command body that records that it started, then holds its worker
    until `release()` (or teardown) opens its gate."""

    def __init__(self, gates: Gates, result: Any = "released") -> None:
        self.gate = gates.new()
        self.result = result
        self._entered = 0
        self._cond = threading.Condition()

    def __call__(self, *_args: Any, **_kwargs: Any) -> Any:
        with self._cond:
            self._entered += 1
            self._cond.notify_all()
        if not self.gate.wait(WAIT):
            raise RuntimeError("blocker was never released")
        return self.result

    @property
    def entered(self) -> int:
        with self._cond:
            return self._entered

    def wait_entered(self, count: int = 1, timeout: float = WAIT) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._entered >= count, timeout)

    def release(self) -> None:
        self.gate.set()


class Recorder:
    """A thread-safe list with a condition to wait for its length."""

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._cond = threading.Condition()

    def append(self, item: Any) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def recording(self, item: Any, result: Any = None) -> Callable[[], Any]:
        """A command body that appends `item` when it runs."""

        def run() -> Any:
            self.append(item)
            return item if result is None else result

        return run

    def wait_len(self, count: int, timeout: float = WAIT) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self._items) >= count, timeout)

    @property
    def items(self) -> list[Any]:
        with self._cond:
            return list(self._items)


class Managers:
    """Builds managers and SDK lanes for a test and cleans them all up."""

    def __init__(self, gates: Gates) -> None:
        self._gates = gates
        self._managers: list[QueueManager] = []

    def track(self, manager: QueueManager) -> QueueManager:
        self._managers.append(manager)
        return manager

    def build(self, builder: QueueManagerBuilder, start: bool = True) -> QueueManager:
        manager = self.track(builder.build())
        if start:
            manager.start()
        return manager

    def default(self, capacity: int = 100, max_workers: Optional[int] = None,
                start: bool = True) -> QueueManager:
        builder = QueueManagerBuilder(EventEmitter(capacity)).with_default_lanes()
        if max_workers is not None:
            builder.with_max_workers(max_workers)
        return self.build(builder, start)

    def lanes(self, *lanes: tuple[str, int, int, int], max_workers: Optional[int] = None,
              capacity: int = 100, start: bool = True) -> QueueManager:
        """A manager with lanes given as (id, priority, min, max)."""
        builder = QueueManagerBuilder(EventEmitter(capacity))
        for lane_id, priority, minimum, maximum in lanes:
            builder.with_lane(lane_id, LaneConfig.new(minimum, maximum), priority)
        if max_workers is not None:
            builder.with_max_workers(max_workers)
        return self.build(builder, start)

    def sdk(self, configs: Optional[list[LaneConfig]] = None, start: bool = True,
            **options: Any) -> Lane:
        lane = Lane(configs, **options) if configs is not None else Lane(**options)
        self.track(lane.manager)
        if start:
            lane.start()
        return lane

    def close_all(self) -> None:
        self._gates.open_all()
        problems = []
        for manager in self._managers:
            queue = manager.queue()
            try:
                for lane_id in queue.lane_ids():
                    manager.resume_lane(lane_id)
                if not queue.is_started():
                    manager.start()
                manager.shutdown()
                manager.drain(WAIT)
            except Exception as error:  # report every leak, not just the first
                problems.append(f"{type(error).__name__}: {error}")
        if problems:
            pytest.fail("manager cleanup failed: " + "; ".join(problems))


@pytest.fixture
def gates() -> Any:
    registry = Gates()
    yield registry
    registry.open_all()


@pytest.fixture
def managers(gates: Gates) -> Any:
    registry = Managers(gates)
    yield registry
    registry.close_all()


@pytest.fixture
def blocker(gates: Gates) -> Callable[..., Blocker]:
    """Factory: ``blocker()`` returns a fresh Blocker tied to the test's gates."""
    return lambda result="released": Blocker(gates, result)


def recv_until(stream: Any, predicate: Callable[[Any], bool],
               timeout: float = WAIT) -> list[Any]:
    """Receives events until one matches `predicate`; returns all received,
    the matching one last. Fails the test if the stream runs dry first."""
    seen = []
    while True:
        event = stream.recv(timeout)
        if event is None:
            pytest.fail(f"no matching event within {timeout}s; received {seen!r}")
        seen.append(event)
        if predicate(event):
            return seen


# ---- Redis (tests/test_redis_*.py) -------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Any:
    """A redis-server of this test session's own on a free 127.0.0.1 port
    (tests/redis_server.py), stopped by its PID at the end. Tests that use it
    are skipped only when redis-server is not installed (tests/run_all.sh
    installs it) or the ``redis`` extra is missing. Tests share it and keep
    apart by queue name (the ``redis_queue`` fixture)."""
    from redis_server import RedisServer, redis_server_binary

    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed (bash tests/run_all.sh installs it)")
    pytest.importorskip("redis", reason="the redis extra is not installed "
                                        "(pip install -e '.[test]')")
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: Any) -> str:
    return redis_server.url


@pytest.fixture
def redis_queue(request: Any) -> str:
    """A queue name no other test uses."""
    import uuid

    return f"t-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}".replace("[", "_").replace(
        "]", "_")
