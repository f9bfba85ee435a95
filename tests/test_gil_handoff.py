"""Urgent work and the GIL: a command handed to an idle worker must not wait
for the GIL while a worker that already holds it could start it.

The scenario of issue 14: CPU-bound prompt commands (they hold the GIL) keep
every prompt worker busy with a backlog, and `control` has a reserved worker
(min_concurrency 1) that sleeps. A control submit wakes the reserved worker,
which then needs the GIL. A prompt worker finishing its command already holds
it: it must start the control command at once, before the next prompt,
instead of leaving it to the reserved worker, which may wait for the GIL for
a whole switch interval or more (the reservation made control slower than
no reservation at all).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator

import pytest

from conftest import WAIT


@pytest.fixture
def long_switch_interval() -> Iterator[None]:
    """A CPU-bound thread keeps the GIL for the whole test (unless it blocks),
    so the order below does not depend on when the OS forces a GIL switch."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def spin(seconds: float) -> None:
    """Pure-Python work: holds the GIL throughout."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_a_finishing_worker_starts_urgent_work_before_the_reserved_worker_gets_the_gil(
        managers, long_switch_interval):
    manager = managers.lanes(("control", 0, 1, 1), ("prompt", 5, 0, 1), max_workers=2)
    order: list[str] = []
    control_submitted = threading.Event()

    def control() -> str:
        order.append("control")
        return "control"

    def first_prompt() -> None:
        order.append("prompt 1")
        # Submitted while this worker holds the GIL; the reserved worker is
        # woken and waits for it.
        futures.append(manager.submit("control", control))
        control_submitted.set()
        spin(0.02)

    def second_prompt() -> None:
        order.append("prompt 2")
        spin(0.02)

    futures = []
    prompts = [manager.submit("prompt", first_prompt), manager.submit("prompt", second_prompt)]
    assert control_submitted.wait(WAIT)
    for future in prompts:
        future.result(WAIT)
    assert futures[0].result(WAIT) == "control"
    # The prompt worker, finishing "prompt 1" with the GIL in hand, takes the
    # more urgent control command first; before the fix the reserved worker
    # had already taken it and "prompt 2" ran first.
    assert order == ["prompt 1", "control", "prompt 2"]


def test_an_idle_reserved_worker_still_starts_urgent_work_while_the_gil_is_free(managers):
    """I/O-bound prompt work releases the GIL: the reserved worker, woken by
    the submit, starts control while every prompt worker stays blocked."""
    manager = managers.lanes(("control", 0, 1, 1), ("prompt", 5, 0, 3), max_workers=4)
    gate = threading.Event()
    prompts = [manager.submit("prompt", gate.wait, WAIT) for _ in range(10)]
    try:
        deadline = time.monotonic() + WAIT
        while manager.stats().lane("prompt").active < 3:
            assert time.monotonic() < deadline, "prompt never filled its 3 workers"
            time.sleep(0.001)
        for _ in range(20):
            assert manager.submit("control", lambda: "control").result(WAIT) == "control"
        assert manager.stats().lane("prompt").active == 3
    finally:
        gate.set()
    for future in prompts:
        future.result(WAIT)
