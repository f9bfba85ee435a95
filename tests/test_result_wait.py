"""CommandFuture.result() without a timeout sleeps on the thread's own C
waiter, which the worker posts once it lets go of the GIL
(pylane/_runtime/future.py). Every way a future can end must wake it, also
when other waiters use Future's own Condition beside it."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import CancelledError, wait

import pytest

from conftest import WAIT


def _when_blocked(thread: threading.Thread) -> None:
    """Gives `thread` time to block in result() (it may also not have yet:
    every test below passes either way, the wait is only what it checks)."""
    time.sleep(0.05)
    assert thread.is_alive()


def _waiting_thread(future, found: list) -> threading.Thread:
    def body() -> None:
        try:
            found.append(("result", future.result()))
        except BaseException as error:  # the test inspects it
            found.append(("error", type(error).__name__))
    thread = threading.Thread(target=body)
    thread.start()
    return thread


def test_a_result_and_an_error_wake_the_waiter(managers, blocker):
    manager = managers.lanes(("work", 0, 0, 2), max_workers=2)
    hold = blocker()
    good = manager.submit("work", hold)
    bad = manager.submit("work", lambda: (hold.gate.wait(WAIT), 1 / 0))
    found: list = []
    threads = [_waiting_thread(good, found), _waiting_thread(bad, found)]
    _when_blocked(threads[0])
    hold.release()
    for thread in threads:
        thread.join(WAIT)
    assert sorted(found) == [("error", "ZeroDivisionError"), ("result", "released")]


def test_a_lean_waiter_and_condition_waiters_are_all_woken(managers, blocker):
    manager = managers.lanes(("work", 0, 0, 1), max_workers=1)
    hold = blocker()
    future = manager.submit("work", hold)
    found: list = []
    lean = _waiting_thread(future, found)  # first: the lean waiter
    _when_blocked(lean)
    timed = threading.Thread(target=lambda: found.append(("timed", future.result(WAIT))))
    timed.start()
    done_callback = threading.Event()
    future.add_done_callback(lambda _: done_callback.set())
    hold.release()
    lean.join(WAIT)
    timed.join(WAIT)
    assert sorted(found) == [("result", "released"), ("timed", "released")]
    assert done_callback.wait(WAIT)
    assert wait([future], WAIT).done == {future}


def test_cancelling_a_waiting_command_wakes_the_waiter(managers, blocker):
    manager = managers.lanes(("work", 0, 0, 1), max_workers=1)
    hold = blocker()
    running = manager.submit("work", hold)
    queued = manager.submit("work", lambda: "never")
    found: list = []
    thread = _waiting_thread(queued, found)
    _when_blocked(thread)
    assert queued.cancel()
    thread.join(WAIT)
    assert found == [("error", "CancelledError")]
    with pytest.raises(CancelledError):
        queued.result()
    hold.release()
    assert running.result(WAIT) == "released"


def test_a_retried_command_keeps_its_waiter_until_the_last_attempt(managers):
    from pylane import EventEmitter, LaneConfig, QueueManagerBuilder, RetryPolicy

    config = LaneConfig.new(0, 1).with_retry_policy(RetryPolicy.fixed(2, 0.01))
    builder = QueueManagerBuilder(EventEmitter()).with_lane("work", config, 0)
    manager = managers.build(builder.with_max_workers(1), True)
    attempts = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("not yet")
        return "third time"

    assert manager.submit("work", flaky).result() == "third time"
    assert len(attempts) == 3


def test_an_interrupted_wait_leaves_the_thread_able_to_wait_again(managers, blocker):
    """Ctrl-C in the main thread ends a blocked result(); the post that comes
    later must not end the thread's next wait early with a wrong answer."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    manager = managers.lanes(("work", 0, 0, 2), max_workers=2)
    hold = blocker()
    first = manager.submit("work", hold)
    # A real SIGINT to this thread (interrupt_main only sets Python's flag,
    # which wakes no blocked system call).
    timer = threading.Timer(0.05, signal.pthread_kill,
                            (threading.main_thread().ident, signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        first.result()
    timer.join()
    hold.release()  # posts the interrupted wait's waiter: a post left over
    assert first.result(WAIT) == "released"
    gate = threading.Event()
    second = manager.submit("work", lambda: gate.wait(WAIT) and "second")
    threading.Timer(0.05, gate.set).start()
    assert second.result() == "second"
