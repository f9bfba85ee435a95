"""The coordinator's threads: one dispatcher, and one thread per partition.

The dispatcher blocks on the engine (``pylane_wait_next``, the GIL
released) until a command may start, has the scheduler place it on a
partition and wakes that partition's thread. A partition thread keeps its
worker process alive, sends it one command at a time and blocks on the pipe
for the reply; once its worker is free it takes its next command itself
(``_take_next``), so a busy queue costs no thread hop per command. Nothing
polls. What the threads share changes under one lock, the queue's.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import Future, InvalidStateError
from typing import Any, Optional

from .._lane_core import ffi, lib
from ..errors import LaneError, WorkerCrashedError
from .processes import Partition
from .protocol import CommandResult
from .scheduler import CANCELLED, COMPLETED, FAILED, Entry, Scheduler

logger = logging.getLogger("pylane.distributed")


class Threads:
    """The dispatcher and the partition threads of one queue, and the flags
    that tell them to stop."""

    def __init__(self, scheduler: Scheduler, partitions: list[Partition],
                 lock: threading.Lock, worker_id: str) -> None:
        self.scheduler = scheduler
        self.partitions = partitions
        self.lock = lock
        self.worker_id = worker_id
        self.closed = False       # no more submits
        self.stopped = False      # the engine is stopped: nothing more will start
        self.terminating = False  # the shutdown timeout passed
        self.dispatcher = threading.Thread(target=self._dispatch, daemon=True,
                                           name="pylane-dispatcher")
        for partition in partitions:
            partition.thread = threading.Thread(
                target=self._serve, args=(partition,), daemon=True,
                name=f"pylane-partition-{partition.index}",
            )

    def start(self) -> None:
        self.dispatcher.start()
        for partition in self.partitions:
            thread = partition.thread
            assert thread is not None  # made in __init__
            thread.start()

    def stop_if_done(self) -> None:
        """Under the lock: once closed and nothing is left, stop."""
        if self.closed and not self.stopped and not self.scheduler.entries:
            self.stop()

    def stop(self) -> None:
        self.stopped = True
        self.scheduler.engine.stop()  # the dispatcher's wait returns
        for partition in self.partitions:
            partition.ready.notify_all()

    def join(self, timeout: Optional[float]) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in (self.dispatcher, *(p.thread for p in self.partitions)):
            if thread is None or thread is threading.current_thread():
                continue
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                return False
        return True

    def end(self, entry: Any, outcome: int) -> None:
        with self.lock:
            self.scheduler.finish(entry, outcome)
            self.stop_if_done()

    # -- the dispatcher: the engine says what starts, the partitioner where

    def _dispatch(self) -> None:
        out = ffi.new("lc_dispatch *")
        ptr = self.scheduler.ptr
        try:
            while lib.pylane_wait_next(ptr, -1, out) == lib.LC_DISPATCHED:
                with self.lock:
                    entry = self.scheduler.assign(out.ticket, out.enqueued_ns)
                    dropped = entry.error is None and self.terminating
                    if dropped:  # no partition will start it any more
                        self.scheduler.cancel(entry)
                    elif entry.error is None:
                        self.partitions[entry.placed_on].ready.notify()
                    self.stop_if_done()
                if dropped:
                    drop_future(entry.future)
                elif entry.error is not None:
                    drop_future(entry.future, entry.error)
        except BaseException as error:  # a bug: never leave futures hanging
            logger.exception("the dispatcher stopped")
            with self.lock:
                self.closed = True
                lost = self.scheduler.drop_waiting()
                self.stop()
            for entry in lost:
                drop_future(entry.future, LaneError(f"the dispatcher stopped: {error!r}"))

    # -- one thread per partition: start the worker, feed it, read results

    def _serve(self, partition: Partition) -> None:
        try:
            self._serve_loop(partition)
        except Exception as error:  # a bug or an OS failure: never leave futures hanging
            logger.exception("partition %d stopped", partition.index)
            with self.lock:
                partition.broken = f"partition {partition.index} stopped: {error!r}"
        finally:
            partition.started.set()
            partition.stop_worker()
            with self.lock:
                reason = None if self.stopped else (
                    partition.broken or f"partition {partition.index} stopped")
                outcome = CANCELLED if reason is None else FAILED
                orphans = self.scheduler.abandon(partition, reason, outcome)
                self.stop_if_done()
            for entry in orphans:
                if reason is None:
                    drop_future(entry.future)
                else:
                    drop_future(entry.future, WorkerCrashedError(reason))

    def _serve_loop(self, partition: Partition) -> None:
        scheduler = self.scheduler
        entry: Optional[Entry] = None
        while not self.terminating and partition.ensure_worker():
            if entry is None:
                with self.lock:
                    while not partition.waiting and not self.stopped:
                        partition.ready.wait()
                    entry = scheduler.start(partition)
                if entry is None:
                    return
            if entry.future is not None and not start_future(entry.future):
                done, result = entry, None
                outcome = CANCELLED
            else:
                done, result = entry, partition.run(entry.envelope, self.worker_id)
                outcome = COMPLETED if result.ok else FAILED
            with self.lock:
                scheduler.finish(done, outcome, settle=False)
                entry, failed = self._take_next(partition)
                scheduler.settle()
                self.stop_if_done()
            if result is not None and done.future is not None:
                settle_future(done.future, result)
            for lost in failed:
                drop_future(lost.future, lost.error)

    def _take_next(self, partition: Partition) -> tuple[Optional[Entry], list[Entry]]:
        """Under the lock, once the partition's worker is free: its next
        command. One placed here already, else the dispatcher's step, taken
        on this thread (the dispatcher is not woken for this worker's slot,
        see ``Scheduler.finish``): dispatch until a command lands here or
        none may start. Also returns the commands that could not be placed."""
        failed: list[Entry] = []
        entry = self.scheduler.start(partition)
        while entry is None and not self.stopped:
            placed = self.scheduler.dispatch()
            if placed is None:
                break
            if placed.error is not None:
                failed.append(placed)
            elif placed.partition == partition.index:
                entry = self.scheduler.start(partition)
            else:
                self.partitions[placed.placed_on].ready.notify()
        return entry, failed


def start_future(future: Future[Any]) -> bool:
    """Marks the future running; False if it was cancelled (or already
    resolved by ``complete()``)."""
    try:
        return future.set_running_or_notify_cancel()
    except RuntimeError:
        return False


def settle_future(future: Future[Any], result: CommandResult) -> None:
    with contextlib.suppress(InvalidStateError):  # cancelled or reported meanwhile
        if result.ok:
            future.set_result(result.value)
        else:
            future.set_exception(result.error or LaneError("command failed"))


def drop_future(future: Optional[Future[Any]], error: Optional[BaseException] = None) -> None:
    """Cancels the future (`error` None) or fails it, unless it is settled."""
    if future is not None and error is None:
        future.cancel()
    elif future is not None:
        with contextlib.suppress(InvalidStateError):  # cancelled meanwhile
            future.set_exception(error)
