"""The child side: what runs in a worker process.

A worker process runs one command at a time: it reads a pickled
``(callable, args, kwargs)`` from its pipe, runs it and writes back a
pickled reply, until it reads ``STOP`` or the pipe closes. It decides
nothing: which command runs next, and where, is the coordinator's business.

This file imports the standard library only. The coordinator starts it with
``runpy.run_path`` rather than by importing ``pylane.distributed.worker``,
because importing a submodule imports its packages first, and ``pylane``'s
``__init__`` loads the C engine and the queue: a worker process needs
neither, so starting one costs an interpreter and this file. Errors that
belong to ``pylane.errors`` cross as tagged replies, and the coordinator
builds the exception (see ``decode`` in ``coordinator.py``).

Replies, each ``pickle.dumps`` of a tuple ending with the run time in ms:

- ``("ok", pickled value, ms)``;
- ``("err", pickled exception, traceback text, ms)``: the command raised;
- ``("remote", message, traceback text, ms)``: it raised an exception that
  cannot cross (``RemoteCommandError``);
- ``("serial", message, ms)``: the command could not be unpickled here, or its
  result cannot be pickled back (``CommandSerializationError``).
"""

from __future__ import annotations

import pickle
import signal
import time
import traceback
from typing import Any

READY = b"ready"
STOP = b""
# The ``__name__`` this file runs under in a worker process.
RUN_NAME = "__pylane_worker__"


def main(conn: Any) -> None:
    """Runs commands until told to stop or the coordinator goes away."""
    # Ctrl-C reaches the whole process group; the coordinator decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn.send_bytes(READY)
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if data == STOP:
            return
        conn.send_bytes(run_one(data))


def run_one(data: bytes) -> bytes:
    started = time.perf_counter()
    try:
        function, args, kwargs = pickle.loads(data)
    except BaseException as error:
        return _reply("serial", f"the worker process could not unpickle the command: {error!r}",
                      started=started)
    try:
        value = function(*args, **kwargs)
    except BaseException as error:  # SystemExit too: it fails this command only
        return _error_reply(error, traceback.format_exc(), started)
    try:
        blob = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        return _reply("serial", f"the command's result ({type(value).__name__}) cannot be "
                      f"pickled back: {error}", started=started)
    return _reply("ok", blob, started=started)


def _error_reply(error: BaseException, remote_traceback: str, started: float) -> bytes:
    try:
        blob = pickle.dumps(error, pickle.HIGHEST_PROTOCOL)
        pickle.loads(blob)  # some exceptions pickle but cannot be rebuilt
    except Exception as problem:
        message = f"{error!r} (the exception could not be pickled back: {problem})"
        return _reply("remote", message, remote_traceback, started=started)
    return _reply("err", blob, remote_traceback, started=started)


def _reply(kind: str, *fields: Any, started: float) -> bytes:
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    return pickle.dumps((kind, *fields, elapsed_ms), pickle.HIGHEST_PROTOCOL)


if __name__ == RUN_NAME:  # started by the coordinator, which passes the pipe in
    main(globals()["_PIPE"])
