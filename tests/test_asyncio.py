"""asyncio: ``await asubmit(...)`` on both surfaces, ``async def`` commands
and handlers on the queue's own event loop, cancellation both ways, and
timeouts that cancel the coroutine for real."""

from __future__ import annotations

import asyncio
import http.server
import threading

import pytest

from conftest import WAIT
from pylane import (
    Command,
    CommandTimeoutError,
    Lane,
    LaneConfig,
    QueueManagerBuilder,
    cancel_token,
)


def build(managers, timeout=None, max_concurrency=2):
    config = LaneConfig.new(0, max_concurrency)
    if timeout is not None:
        config = config.with_timeout(timeout)
    return managers.build(QueueManagerBuilder().with_lane("work", config, 0)
                          .with_lane("hold", LaneConfig.new(0, 1), 1))


def test_asubmit_returns_the_result_of_a_plain_and_an_async_command(managers):
    manager = build(managers)

    async def add(a, b):
        await asyncio.sleep(0)
        return a + b

    async def main():
        plain = await manager.asubmit("work", lambda: "sync")
        awaited = await manager.asubmit("work", add, 2, 3)
        return plain, awaited

    assert asyncio.run(main()) == ("sync", 5)


def test_async_commands_run_on_one_loop_owned_by_the_queue(managers):
    manager = build(managers)
    loops = []

    async def where():
        loops.append(asyncio.get_running_loop())
        return threading.current_thread().name

    names = [manager.submit("work", where).result(WAIT) for _ in range(3)]
    assert len(set(map(id, loops))) == 1
    assert all(name == "pylane-async" for name in names)


def test_an_async_command_class_and_an_async_sdk_handler(managers):
    class Fetch(Command):
        command_type = "fetch"

        async def execute(self):
            await asyncio.sleep(0)
            return "fetched"

    manager = build(managers)
    assert manager.submit("work", Fetch()).result(WAIT) == "fetched"

    lane = managers.sdk()

    @lane.handler("double")
    async def double(payload):
        await asyncio.sleep(0)
        return payload["n"] * 2

    assert lane.submit("query", "double", {"n": 21}) == 42
    assert asyncio.run(lane.asubmit("query", "double", {"n": 4})) == 8


def test_a_timeout_cancels_the_coroutine_and_its_finally_runs(managers):
    manager = build(managers, timeout=0.1)
    cleaned = threading.Event()

    async def forever():
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.set()

    future = manager.submit("work", forever)
    assert isinstance(future.exception(WAIT), CommandTimeoutError)
    assert cleaned.wait(WAIT)
    manager.drain(WAIT)
    stats = manager.stats()
    assert stats.abandoned_total == 0  # it unwound at once: nothing abandoned
    assert stats.lane("work").active == 0


def test_cancelling_the_awaiting_task_withdraws_a_waiting_command(managers, blocker):
    manager = build(managers)
    hold = blocker()
    held = manager.submit("hold", hold)
    assert hold.wait_entered()
    ran = threading.Event()

    async def main():
        task = asyncio.ensure_future(manager.asubmit("hold", ran.set))
        await asyncio.sleep(0.05)  # let it be queued behind the held slot
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    hold.release()
    assert held.result(WAIT) == "released"
    manager.drain(WAIT)
    assert not ran.is_set(), "a cancelled waiting command still ran"
    assert manager.stats().lane("hold").cancelled == 1


def test_cancelling_the_awaiting_task_cancels_a_running_coroutine(managers):
    manager = build(managers)
    started = threading.Event()
    cancelled = threading.Event()

    async def long_call():
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def main():
        task = asyncio.ensure_future(manager.asubmit("work", long_call))
        while not started.is_set():
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert cancelled.wait(WAIT), "the running coroutine was not cancelled"
    manager.drain(WAIT)
    assert manager.stats().lane("work").active == 0


def test_a_sync_command_sees_its_token_when_the_awaiting_task_is_cancelled(managers):
    manager = build(managers)
    started = threading.Event()
    saw = []

    def cooperative():
        started.set()
        saw.append(cancel_token().wait(WAIT))
        return "stopped"

    async def main():
        task = asyncio.ensure_future(manager.asubmit("work", cooperative))
        while not started.is_set():
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    manager.drain(WAIT)
    assert saw == [True]


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"hello": "world"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(WAIT)


def test_an_async_handler_awaits_an_http_call_to_a_local_server(managers, http_server):
    lane = Lane.with_lanes([LaneConfig("llm", priority=0, max_concurrency=4)])
    managers.track(lane.manager)

    @lane.handler("get")
    async def get(payload):
        reader, writer = await asyncio.open_connection("127.0.0.1", payload["port"])
        writer.write(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        await writer.drain()
        response = await reader.read()
        writer.close()
        await writer.wait_closed()
        return response.split(b"\r\n\r\n", 1)[1].decode()

    lane.start()
    results = [lane.submit_async("llm", "get", {"port": http_server}) for _ in range(4)]
    assert [f.result(WAIT) for f in results] == ['{"hello": "world"}'] * 4
