"""A throw-away redis-server for the tests: its own process on a free
127.0.0.1 port, no persistence, its files in a temporary folder, stopped by
its PID. Never a system service, never another address.

    with RedisServer() as server:
        server.url   # redis://127.0.0.1:<port>/0

    RedisServer(DURABLE): AOF with appendfsync always, for kill() + restart().

Every wait is bounded: the server must answer PING within ``START_TIMEOUT``
seconds, and stopping it waits ``STOP_TIMEOUT`` seconds for SIGTERM before
SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Optional

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
HOST = "127.0.0.1"
# Every write on disk before Redis answers it: a crash loses nothing that
# was acknowledged (``RedisServer(DURABLE)``; ``restart()`` replays the AOF).
DURABLE = ("--appendonly", "yes", "--appendfsync", "always")


def redis_server_binary() -> Optional[str]:
    return shutil.which("redis-server")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def ping(port: int, timeout: float = 0.5) -> bool:
    """True if a Redis server on the port answers PING."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process. ``start()`` retries on another port if the
    chosen one was taken in the meantime."""

    def __init__(self, extra_args: tuple[str, ...] = ()) -> None:
        """`extra_args` come after the defaults, so they may override them
        (``("--appendonly", "yes")``)."""
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed (tests/run_all.sh installs it)")
        self.binary = binary
        self.extra_args = extra_args
        self.port = 0
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.directory = ""

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> RedisServer:
        self.directory = tempfile.mkdtemp(prefix="pylane-redis-")
        last_output = ""
        for _attempt in range(3):
            self.port = free_port()
            if self._launch():
                return self
            last_output = self._log_tail()
            self.stop()
            self.directory = tempfile.mkdtemp(prefix="pylane-redis-")
        raise RuntimeError(f"redis-server did not answer PING on {HOST}:{self.port} "
                           f"within {START_TIMEOUT}s:\n{last_output}")

    def restart(self) -> None:
        """After kill(): the same port and folder (its AOF, if any)."""
        if not self._launch():
            raise RuntimeError(f"redis-server did not restart on port {self.port}:\n"
                               f"{self._log_tail()}")

    def _launch(self) -> bool:
        log = os.path.join(self.directory, "redis.log")
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", HOST, "--save", "",
             "--appendonly", "no", "--dir", self.directory, "--logfile", log,
             "--daemonize", "no", *self.extra_args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.process.poll() is None:
            if ping(self.port):
                return True
            time.sleep(0.02)  # a startup wait, bounded by START_TIMEOUT
        return False

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError), open(os.path.join(self.directory, "redis.log")) as f:
            return f.read()[-2000:]
        return ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; by this server's PID only."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL (a crash), keeping the folder for a restart."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
