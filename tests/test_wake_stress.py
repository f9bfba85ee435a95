"""No lost wake-up under stress, with the engine's shortcuts on (issue 14).

A submit sends no signal while enough woken workers ("searchers", waiting
for the GIL before they take a ticket) will look at the queue, or when every
sleeping worker has been signalled already. If that accounting were wrong, a
ticket would wait for a worker nobody wakes: a caller blocked in result()
would hang, or commands that must run side by side would run one at a time.
Every wait here is bounded: a lost wake-up fails the test, it never hangs it.
"""

from __future__ import annotations

import threading

from conftest import WAIT

WORKERS = 6
CALLERS = 16
CALLS = 1500
ROUNDS = 60


def test_many_callers_each_get_every_result(managers):
    """16 threads hand no-ops to 6 workers and block on each result, while a
    seventeenth submits bursts without waiting: the pattern that makes
    searchers, skipped signals and sleeping workers all at once."""
    manager = managers.lanes(("a", 0, 0, WORKERS), ("b", 1, 0, 2), max_workers=WORKERS)
    done = [0] * CALLERS
    stop = threading.Event()

    def caller(index: int) -> None:
        lane = "a" if index % 4 else "b"  # b is capped at 2: pending, not dispatchable
        for i in range(CALLS):
            assert manager.submit(lane, lambda i=i: i).result() == i
            done[index] += 1

    def bursts() -> None:
        while not stop.is_set():
            futures = [manager.submit("a", lambda: None) for _ in range(20)]
            for future in futures:
                future.result(WAIT)

    threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(CALLERS)]
    burster = threading.Thread(target=bursts, daemon=True)
    burster.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 3)
    stop.set()
    burster.join(WAIT)
    assert not any(t.is_alive() for t in threads), f"callers stuck: done {done}"
    assert not burster.is_alive()
    assert done == [CALLS] * CALLERS
    manager.drain(WAIT)  # raises if it does not drain in time


def test_idle_workers_all_start_commands_that_need_each_other(managers):
    """WORKERS commands submitted at once that only finish together (a
    barrier) must all start: each needs its own worker. If a woken worker
    still waiting for the GIL were counted for more tickets than it can take,
    some would wait for a worker nobody woke and the barrier would time out.
    Round after round, with no-op traffic on the side to keep searchers
    coming and going."""
    manager = managers.lanes(("work", 0, 0, WORKERS), ("noise", 1, 0, 2), max_workers=WORKERS + 2)
    stop = threading.Event()

    def noise() -> None:
        while not stop.is_set():
            manager.submit("noise", lambda: None).result(WAIT)

    noisy = [threading.Thread(target=noise, daemon=True) for _ in range(2)]
    for thread in noisy:
        thread.start()
    try:
        for _ in range(ROUNDS):
            barrier = threading.Barrier(WORKERS, timeout=WAIT)
            futures = [manager.submit("work", barrier.wait) for _ in range(WORKERS)]
            assert sorted(f.result(WAIT * 2) for f in futures) == list(range(WORKERS))
    finally:
        stop.set()
        for thread in noisy:
            thread.join(WAIT)
    manager.drain(WAIT)  # raises if it does not drain in time
