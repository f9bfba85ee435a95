"""CommandFuture with the standard library's future helpers.

A CommandFuture builds its Condition only when someone must wait, and a
future that settled before anyone looked gets a shared, lock-free stand-in
(``wait``/``as_completed`` lock every future they are given). These tests
pin that ``concurrent.futures`` behaves exactly as with plain futures: mixes
of finished and pending futures, callbacks, cancel, timeouts, and many
threads waiting on overlapping sets while workers finish them.
"""

from __future__ import annotations

import threading
from concurrent.futures import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    CancelledError,
    as_completed,
    wait,
)
from concurrent.futures import TimeoutError as FutureTimeout

import pytest

from conftest import WAIT


def boom() -> None:
    raise ValueError("boom")


def test_wait_over_finished_and_pending_futures(managers, blocker):
    manager = managers.lanes(("only", 0, 0, 1))
    finished = [manager.submit("only", abs, -n) for n in range(5)]
    manager.drain(WAIT)
    hold = blocker()
    held = manager.submit("only", hold)
    assert hold.wait_entered()
    behind = manager.submit("only", abs, -9)
    done, not_done = wait([*finished, held, behind], timeout=0.01)
    assert set(done) == set(finished) and not_done == {held, behind}
    done, not_done = wait([*finished, held], return_when=FIRST_COMPLETED)
    assert held in not_done and set(finished) <= done
    hold.release()
    done, not_done = wait([*finished, held, behind], timeout=WAIT, return_when=ALL_COMPLETED)
    assert not not_done and behind.result() == 9 and held.result() == "released"
    # The waiters wait() installed were all removed again.
    assert all(not f._waiters for f in (*finished, held, behind))


def test_first_exception_and_as_completed(managers, blocker):
    manager = managers.lanes(("only", 0, 0, 2))
    failed = manager.submit("only", boom)
    with pytest.raises(ValueError):
        failed.result(WAIT)
    hold = blocker()
    held = manager.submit("only", hold)
    done, not_done = wait([failed, held], timeout=WAIT, return_when=FIRST_EXCEPTION)
    assert done == {failed} and not_done == {held}
    seen = []
    for future in as_completed([failed, held], timeout=WAIT):
        seen.append(future)
        hold.release()  # the settled one comes first; then let the other finish
    assert seen == [failed, held]


def test_callbacks_cancel_and_timeouts_on_settled_futures(managers, blocker):
    manager = managers.lanes(("only", 0, 0, 1))
    ok = manager.submit("only", abs, -4)
    manager.drain(WAIT)
    called = []
    ok.add_done_callback(called.append)  # settled: runs at once, on this thread
    assert called == [ok]
    assert not ok.cancel() and not ok.cancelled() and ok.done()
    with pytest.raises(Exception, match="FINISHED"):
        ok.set_result(5)  # InvalidStateError: still final
    assert ok.result(0) == 4
    hold = blocker()
    manager.submit("only", hold)
    assert hold.wait_entered()
    queued = manager.submit("only", abs, -1)
    with pytest.raises(FutureTimeout):
        queued.result(0.01)
    assert queued.cancel()
    with pytest.raises(CancelledError):
        queued.result(0)
    assert queued.cancelled() and queued.done()
    hold.release()


def test_many_threads_wait_on_overlapping_sets_while_workers_finish(managers):
    """The deadlock a shared lock would risk: each waiter locks its futures
    in its own order while workers settle them."""
    manager = managers.lanes(*[(f"lane{i}", i, 0, 3) for i in range(4)], max_workers=6)
    lanes = [f"lane{i}" for i in range(4)]
    for lane in lanes[1:]:
        manager.pause_lane(lane)  # lane0 runs at once; the rest settle while waiters wait
    futures = [manager.submit(lanes[n % 4], abs, -n) for n in range(4000)]
    problems: list[str] = []

    def waiter(offset: int) -> None:
        mine = futures[offset::3] + futures[:500]
        for _ in range(3):
            _, not_done = wait(mine, timeout=WAIT)
            if not_done:
                problems.append(f"waiter {offset}: {len(not_done)} not done")
                return

    threads = [threading.Thread(target=waiter, args=(i % 3,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for lane in lanes[1:]:
        manager.resume_lane(lane)
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads), "a waiter is stuck"
    assert not problems
    assert [f.result() for f in futures] == list(range(4000))


def test_a_queued_commands_future_stays_in_pymallocs_128_byte_class(managers):
    """A million queued commands must stay ~0.25x ThreadPoolExecutor's RSS
    (bench_targets.py, target 6): the future keeps its fields in slots and
    makes its lists on first use, which holds it at 128 bytes; one slot more
    puts it in the 144-byte class (16 MB more a million)."""
    import sys

    manager = managers.default()
    future = manager.submit("query", int)
    assert sys.getsizeof(future) <= 128
    assert future.result(WAIT) == 0
    done: list[object] = []
    late = manager.submit("query", int)
    late.add_done_callback(done.append)  # the lists, made on first use, still work
    assert wait([late], WAIT).not_done == set() and done == [late]
