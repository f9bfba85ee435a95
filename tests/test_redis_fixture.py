"""The Redis test fixture: a redis-server of the tests' own on loopback,
answering, and stopped by its PID (tests/redis_server.py)."""

from __future__ import annotations

import os

import pytest
from redis_server import RedisServer, ping, redis_server_binary

pytestmark = pytest.mark.skipif(redis_server_binary() is None,
                                reason="redis-server is not installed "
                                       "(bash tests/run_all.sh installs it)")


def test_the_session_server_answers_on_loopback(redis_server):
    assert redis_server.url.startswith("redis://127.0.0.1:")
    assert ping(redis_server.port)


def test_a_server_stops_by_its_pid_and_leaves_nothing():
    server = RedisServer().start()
    pid, port, directory = server.pid, server.port, server.directory
    assert ping(port)
    assert os.path.isdir(directory)
    server.stop()
    assert not ping(port)
    assert not os.path.exists(directory)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: the PID no longer exists as our child
