"""The worker processes, seen from the coordinator: start one, send it a
command, read its reply, stop it.

A ``Partition`` is one worker process and the scheduler's view of it
(``PartitionState``). Its thread in the coordinator is the only one that
talks to the process, so the pipe needs no lock; what other threads read
(``process``, ``broken``) changes under the queue's lock.

The process runs ``worker.py`` through ``runpy.run_path`` (see that file for
why), with its end of the pipe passed in as the global ``_PIPE``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import runpy
import sys
import threading
from typing import Any, Optional, Union

from ..errors import (
    CommandSerializationError,
    InvalidConfigError,
    LaneError,
    RemoteCommandError,
    WorkerCrashedError,
)
from . import worker
from .protocol import CommandEnvelope, CommandResult, RemoteTraceback
from .scheduler import PartitionState

logger = logging.getLogger("pylane.distributed")

STOP_GRACE = 5.0  # seconds a worker gets to exit before it is terminated


class Partition(PartitionState):
    def __init__(self, index: int, lock: threading.Lock, context: Any) -> None:
        super().__init__(index)
        self.lock = lock
        self.ready = threading.Condition(lock)  # a command was placed here, or stop
        self.context = context
        self.process: Any = None
        self.conn: Any = None
        self.started = threading.Event()  # set once a worker is up (or failed to start)
        self.thread: Optional[threading.Thread] = None
        self.terminated = False  # the queue's shutdown timeout killed it

    def ensure_worker(self) -> bool:
        """Makes sure a live worker process is there, starting one if need
        be; False (and ``broken`` set) if none could be started."""
        if self.process is not None and self.process.is_alive():
            return True
        self.stop_worker()
        parent_end, child_end = self.context.Pipe(duplex=True)
        process = self.context.Process(
            target=runpy.run_path, args=(worker.__file__,),
            kwargs={"init_globals": {"_PIPE": child_end}, "run_name": worker.RUN_NAME},
            daemon=True, name=f"pylane-partition-{self.index}",
        )
        try:
            process.start()
            child_end.close()
            greeting = parent_end.recv_bytes()
        except (EOFError, OSError) as error:
            if process.pid is not None:
                process.join(STOP_GRACE)
            message = (
                f"the worker process for partition {self.index} could not start "
                f"(exit code {process.exitcode}): {error!r}"
            )
            logger.error("%s", message)
            parent_end.close()
            with self.lock:
                self.broken = message
            self.started.set()
            return False
        if greeting != worker.READY:  # pragma: no cover - protocol violation
            raise LaneError(f"unexpected greeting from a worker process: {greeting!r}")
        with self.lock:
            self.process, self.conn = process, parent_end
        self.started.set()
        return True

    def run(self, envelope: CommandEnvelope, worker_id: str) -> CommandResult:
        """Sends the command to the worker and waits for its reply."""
        try:
            self.conn.send_bytes(envelope.payload)
            reply = self.conn.recv_bytes()
        except (EOFError, OSError):
            return self._crashed(envelope, worker_id)
        return decode(reply, envelope, f"{worker_id}/{self.index}")

    def _crashed(self, envelope: CommandEnvelope, worker_id: str) -> CommandResult:
        process = self.process
        process.join(STOP_GRACE)
        how = "was terminated" if self.terminated else f"exited with code {process.exitcode}"
        logger.warning("worker process %s for partition %d %s while running %s (%s)",
                       process.pid, self.index, how, envelope.command_type, envelope.id)
        error = WorkerCrashedError(
            f"the worker process (pid {process.pid}) for partition {self.index} {how} "
            f"while running command {envelope.command_type!r} ({envelope.id})"
        )
        return CommandResult(envelope.id, False, error=error, worker_id=worker_id)

    def terminate(self) -> None:
        """Kills the worker (the command it runs fails as terminated)."""
        self.terminated = True
        process = self.process
        if process is not None and process.is_alive():
            process.terminate()

    def stop_worker(self) -> None:
        """Asks the worker to exit, terminating it if it does not."""
        process, conn = self.process, self.conn
        if process is None:
            return
        try:
            if process.is_alive():
                conn.send_bytes(worker.STOP)
        except OSError:
            pass
        process.join(STOP_GRACE)
        if process.is_alive():
            logger.warning("worker process %s did not stop; terminating it", process.pid)
            process.terminate()
            process.join(STOP_GRACE)
            if process.is_alive():
                process.kill()
                process.join()
        conn.close()
        with self.lock:
            self.process = self.conn = None


def decode(reply: bytes, envelope: CommandEnvelope, worker_id: str) -> CommandResult:
    """A worker's reply (see ``worker.py``) as a result."""
    try:
        kind, *fields, duration = pickle.loads(reply)
        if kind == "ok":
            return CommandResult(envelope.id, True, pickle.loads(fields[0]), None, worker_id,
                                 duration)
    except Exception as problem:
        error: BaseException = CommandSerializationError(
            f"the result of command {envelope.command_type!r} could not be unpickled "
            f"here: {problem!r}"
        )
        return CommandResult(envelope.id, False, error=error, worker_id=worker_id)
    remote_traceback = ""
    if kind == "serial":
        error = CommandSerializationError(fields[0])
    elif kind == "remote":
        message, remote_traceback = fields
        error = RemoteCommandError(message, remote_traceback)
    else:
        blob, remote_traceback = fields
        try:
            error = pickle.loads(blob)
        except Exception as problem:
            error = RemoteCommandError(
                f"command {envelope.command_type!r} raised an exception that could not be "
                f"unpickled here: {problem!r}", remote_traceback,
            )
    if remote_traceback and isinstance(error, BaseException):
        error.__cause__ = RemoteTraceback(f'\n"""\n{remote_traceback}"""')
    return CommandResult(envelope.id, False, error=error, worker_id=worker_id,
                         duration_ms=duration)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def start_context(choice: Union[str, Any, None]) -> Any:
    """A multiprocessing context: ``forkserver`` by default (``spawn`` where
    it is missing, and on macOS), which is safe in a threaded program."""
    if choice is None:
        methods = multiprocessing.get_all_start_methods()
        choice = "forkserver" if "forkserver" in methods and sys.platform != "darwin" else "spawn"
    if isinstance(choice, str):
        try:
            return multiprocessing.get_context(choice)
        except ValueError as error:
            raise InvalidConfigError(f"unknown multiprocessing start method {choice!r}") from error
    return choice
