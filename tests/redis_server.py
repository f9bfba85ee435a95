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
from typing import Callable, Optional

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


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too: from 20000
    to 29999, below the kernel's ephemeral range."""
    import random

    for _attempt in range(100):
        port = random.randrange(20000, 30000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind((HOST, candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


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

    def __init__(self, extra_args: tuple[str, ...] = (),
                 pick_port: Callable[[], int] = free_port) -> None:
        """`extra_args` come after the defaults, so they may override them
        (``("--appendonly", "yes")``)."""
        self.pick_port = pick_port
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
            self.port = self.pick_port()
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


class RedisClusterServers:
    """A Redis Cluster of `nodes` primaries (no replicas) on loopback, each a
    RedisServer of its own, joined with ``redis-cli --cluster create`` and
    stopped by PID. ``url``: ``redis+cluster://127.0.0.1:<first port>``.

    Every wait is bounded: CLUSTER_TIMEOUT for the cluster to say
    cluster_state:ok on every node."""

    CLUSTER_TIMEOUT = 30.0

    def __init__(self, nodes: int = 3) -> None:
        self.nodes = [RedisServer(("--cluster-enabled", "yes", "--cluster-config-file",
                                   "nodes.conf", "--cluster-node-timeout", "5000"),
                                  pick_port=free_cluster_port) for _ in range(nodes)]

    @property
    def url(self) -> str:
        return f"redis+cluster://{HOST}:{self.nodes[0].port}"

    def start(self) -> RedisClusterServers:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed")
        try:
            for node in self.nodes:
                node.start()
            created = subprocess.run(
                [cli, "--cluster", "create", *(f"{HOST}:{node.port}" for node in self.nodes),
                 "--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True, text=True, timeout=self.CLUSTER_TIMEOUT)
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}"
                                   f"{created.stderr}")
            deadline = time.monotonic() + self.CLUSTER_TIMEOUT
            while not all(self._ok(node.port) for node in self.nodes):
                if time.monotonic() > deadline:
                    raise RuntimeError("the cluster did not reach cluster_state:ok")
                time.sleep(0.05)  # the nodes agree on the slots: bounded above
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def _ok(port: int) -> bool:
        try:
            with socket.create_connection((HOST, port), timeout=1.0) as sock:
                sock.sendall(b"CLUSTER INFO\r\n")
                return b"cluster_state:ok" in sock.recv(4096)
        except OSError:
            return False

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> RedisClusterServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
