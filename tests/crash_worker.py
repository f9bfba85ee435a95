"""The child process of test_crash_recovery.py: a storage-backed manager that
the test kills with SIGKILL and starts again.

    python crash_worker.py STORAGE_DIR LOG_PATH MODE FIRST END TARGET

It starts a manager on ``LocalStorage(STORAGE_DIR)`` (recovering whatever the
previous, killed run left), prints ``READY <recovered>``, then submits
``LogCommand(n)`` for n in FIRST..END-1, printing ``S <n>`` as soon as each
submit has returned (the command is durable from then on). Each command
appends ``<n>\\n`` to LOG_PATH with one ``write`` on an ``O_APPEND`` file
descriptor (unbuffered, so nothing is lost when the process is killed).

MODE says where the parent means to kill it:
  submit — commands run while submits go on; after ``S <TARGET>`` it prints
           ``AT_TARGET`` and keeps submitting, so the kill lands mid-submit;
  exec   — the lane is paused while everything (recovered and new) is
           queued, then resumed; the TARGET-th execution prints
           ``AT_TARGET`` and every later one blocks before writing its id,
           so the kill lands with commands running and pending;
  final  — no kill: it runs everything, prints
           ``IDLE <stored commands left> <stored dead letters>``, waits for
           its stdin to close, shuts down and exits 0.
"""

from __future__ import annotations

import os
import sys
import threading

from pylane import Command, EventEmitter, LaneConfig, QueueManagerBuilder
from pylane.durable.storage import LocalStorage

_out = threading.Lock()
_state = threading.Lock()
_never = threading.Event()
_log_fd = -1
_executions = 0
_exec_target = 0  # 0: no gate


def say(line: str) -> None:
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class LogCommand(Command):
    command_type = "log"

    def __init__(self, n: int) -> None:
        self.n = n

    def execute(self) -> int:
        global _executions
        with _state:
            _executions += 1
            mine = _executions
        if _exec_target and mine > _exec_target:
            _never.wait()  # held here until SIGKILL
        os.write(_log_fd, f"{self.n}\n".encode())
        if _exec_target and mine == _exec_target:
            say("AT_TARGET")
        return self.n


def main(argv: list[str]) -> int:
    global _log_fd, _exec_target
    storage_dir, log_path, mode = argv[0], argv[1], argv[2]
    first, end, target = int(argv[3]), int(argv[4]), int(argv[5])
    _log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    if mode == "exec":
        _exec_target = target
    storage = LocalStorage(storage_dir)
    manager = (QueueManagerBuilder(EventEmitter(16))
               .with_lane("work", LaneConfig.new(0, 2), 0)
               .with_storage(storage)
               .build())
    if mode == "exec":
        manager.pause_lane("work")
    manager.start()
    say(f"READY {len(manager.recovered)}")
    for n in range(first, end):
        manager.submit("work", LogCommand(n))
        say(f"S {n}")
        if mode == "submit" and n == target:
            say("AT_TARGET")
    say("SUBMITTED")
    if mode == "exec":
        manager.resume_lane("work")
    manager.drain()
    say(f"IDLE {storage.count_commands()} {len(storage.load_dead_letters())}")
    sys.stdin.read()  # the parent closes stdin when it has read IDLE
    manager.shutdown()
    manager.drain()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
