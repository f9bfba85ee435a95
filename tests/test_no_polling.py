"""No polling: an idle queue burns no CPU, and a submit wakes a worker at once
(the original dispatched one command per 10 ms scheduler tick)."""

from __future__ import annotations

import statistics
import threading
import time

import pytest

from conftest import WAIT

IDLE_WINDOW = 1.0  # seconds
IDLE_CPU_BUDGET = 0.020  # seconds of CPU for the whole process in the window


def thread_cpu_seconds(threads: list[threading.Thread]) -> float:
    """CPU time consumed so far by the given (running) threads."""
    total = 0.0
    for thread in threads:
        clock = time.pthread_getcpuclockid(thread.ident)
        total += time.clock_gettime(clock)
    return total


def new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before]


def idle_cpu(threads: list[threading.Thread]) -> tuple[float, float]:
    """(process CPU, the given threads' CPU) over an idle window. The window
    is the one timed wait in the suite: it measures idleness, so it is
    expected to run out."""
    process_before = time.process_time()
    threads_before = thread_cpu_seconds(threads)
    assert not threading.Event().wait(IDLE_WINDOW)
    threads_after = thread_cpu_seconds(threads)
    process_after = time.process_time()
    return process_after - process_before, threads_after - threads_before


@pytest.mark.skipif(not hasattr(time, "pthread_getcpuclockid"), reason="needs per-thread clocks")
def test_idle_queue_uses_no_cpu(managers):
    before = set(threading.enumerate())
    lane = managers.sdk()  # six default lanes: 28 workers
    manager = lane.manager
    subscription = manager.subscribe(lambda event: None)  # an idle callback thread too
    threads = new_threads(before)
    assert len(threads) == manager.queue().worker_count() + 1 == 28 + 1
    stream = manager.subscribe()  # and an idle stream
    # Work went through the workers (not inline), and they are back in their wait.
    warm_up = [lane.submit_async(status.lane_id, "warm-up", {"lane": status.lane_id})
               for status in lane.stats().lanes for _ in range(5)]
    assert [f.result(WAIT)["lane"] for f in warm_up] == [
        s.lane_id for s in lane.stats().lanes for _ in range(5)]
    manager.drain(WAIT)

    process_cpu, pool_cpu = idle_cpu(threads)
    assert pool_cpu < IDLE_CPU_BUDGET / 2, f"idle workers used {pool_cpu * 1000:.1f} ms CPU"
    assert process_cpu < IDLE_CPU_BUDGET, f"idle process used {process_cpu * 1000:.1f} ms CPU"
    assert stream.try_recv() is not None  # the stream did see the warm-up
    subscription.close(WAIT)


def test_submit_wakes_a_worker_promptly(managers):
    manager = managers.lanes(("work", 0, 0, 4), ("other", 1, 0, 4))
    latencies = []
    for _ in range(200):
        submitted = time.perf_counter()
        started = manager.submit("work", time.perf_counter).result(WAIT)
        latencies.append(started - submitted)
    median = statistics.median(latencies)
    assert median < 0.002, f"median start latency {median * 1000:.2f} ms"


def test_a_long_idle_worker_wakes_promptly(managers):
    manager = managers.lanes(("work", 0, 0, 1))
    manager.submit("work", lambda: None).result(WAIT)
    manager.drain(WAIT)
    # Several separate wake-ups from a fully idle pool, each well under a tick.
    latencies = []
    for _ in range(20):
        manager.drain(WAIT)
        submitted = time.perf_counter()
        started = manager.submit("work", time.perf_counter).result(WAIT)
        latencies.append(started - submitted)
    assert statistics.median(latencies) < 0.002
    assert min(latencies) < 0.002
