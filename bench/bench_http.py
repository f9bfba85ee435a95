"""A threaded HTTP server: a /control endpoint's latency under a /prompt flood.

    .venv/bin/python bench/bench_http.py [--quick]

One ``http.server.ThreadingHTTPServer`` on a loopback port (Nagle disabled on
both ends), two ways of running the work behind its endpoints:

  ours   — ``Lane`` with a ``control`` lane (priority 1, one slot reserved)
           and a ``prompt`` lane (priority 5, max 4); each request blocks on
           ``lane.submit`` (caller-runs when a slot is free, else a worker);
  plain  — one ``ThreadPoolExecutor(max_workers=4)`` for both endpoints; each
           request blocks on ``executor.submit(...).result()``.

Load: `flooders` client threads send /prompt requests back to back (each
holds a worker for `prompt_ms` of sleep, an LLM call's shape); one probe
client sends /control requests one at a time, and their round-trip times are
the result. Rounds alternate ours / plain; the table gives medians of the
per-round p50/p99 with their spread (min-max) and the ratio of medians.
"""

from __future__ import annotations

import argparse
import http.client
import socket
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pylane import Lane, LaneConfig


class NoDelayServer(ThreadingHTTPServer):
    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr


def make_handler(run: Callable[[str], None]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            run(self.path.strip("/"))
            body = b"ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.connect()
        assert self.conn.sock is not None
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def get(self, path: str) -> None:
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        response.read()

    def close(self) -> None:
        self.conn.close()


def one_round(kind: str, prompt_ms: float, flooders: int, probes: int) -> list[float]:
    """Latencies (ms) of `probes` /control requests under the flood."""
    sleep = prompt_ms / 1000.0

    def prompt_work() -> None:
        time.sleep(sleep)

    def control_work() -> None:
        return None

    closer: Callable[[], None]
    if kind == "ours":
        lane = Lane.with_lanes([
            LaneConfig("control", priority=1, min_concurrency=1, max_concurrency=2),
            LaneConfig("prompt", priority=5, min_concurrency=0, max_concurrency=4),
        ])
        lane.start()

        def run(path: str) -> None:
            if path == "control":
                lane.manager.run("control", control_work)
            else:
                lane.manager.run("prompt", prompt_work)

        def closer() -> None:
            lane.shutdown()
            lane.drain(timeout_secs=30)
    else:
        executor = ThreadPoolExecutor(max_workers=4)

        def run(path: str) -> None:
            executor.submit(control_work if path == "control" else prompt_work).result()

        def closer() -> None:
            executor.shutdown(wait=True)

    server = NoDelayServer(("127.0.0.1", 0), make_handler(run))
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    port = server.server_address[1]
    stop = threading.Event()

    def flood() -> None:
        client = Client(port)
        try:
            while not stop.is_set():
                client.get("/prompt")
        finally:
            client.close()

    threads = [threading.Thread(target=flood, daemon=True) for _ in range(flooders)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.05, 3 * sleep))  # the flood's backlog builds up
    probe = Client(port)
    latencies = []
    try:
        for _ in range(probes):
            began = time.perf_counter()
            probe.get("/control")
            latencies.append((time.perf_counter() - began) * 1000.0)
    finally:
        probe.close()
        stop.set()
        for thread in threads:
            thread.join(30)
        server.shutdown()
        server.server_close()
        closer()
    return latencies


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 short rounds")
    parser.add_argument("--rounds", type=int, default=None)
    options = parser.parse_args()
    rounds = options.rounds or (3 if options.quick else 5)
    probes = 100 if options.quick else 300
    prompt_ms, flooders = 20.0, 16
    results: dict[str, dict[str, list[float]]] = {k: {"p50": [], "p99": []}
                                                  for k in ("ours", "plain")}
    for _ in range(rounds):
        for kind in ("ours", "plain"):
            latencies = one_round(kind, prompt_ms, flooders, probes)
            results[kind]["p50"].append(pct(latencies, 0.50))
            results[kind]["p99"].append(pct(latencies, 0.99))
    print(f"/control latency under a /prompt flood ({flooders} clients, {prompt_ms:g} ms "
          f"prompts, 4 prompt workers), {probes} probes x {rounds} alternating rounds; "
          f"median (min-max) of the rounds, ms")
    print()
    print("| server | control p50 | control p99 | path |")
    print("|---|---|---|---|")
    print(f"| ours (Lane: control P1 reserved, prompt P5 max 4) | {spread(results['ours']['p50'])}"
          f" | {spread(results['ours']['p99'])} | caller-runs when a slot is free, else a worker |")
    print(f"| plain ThreadPoolExecutor(4) | {spread(results['plain']['p50'])} | "
          f"{spread(results['plain']['p99'])} | hand-off to the shared pool, FIFO |")
    ratio50 = statistics.median(results["ours"]["p50"]) / statistics.median(results["plain"]["p50"])
    ratio99 = statistics.median(results["ours"]["p99"]) / statistics.median(results["plain"]["p99"])
    print()
    print(f"ours / plain: p50 {ratio50:.3f}x, p99 {ratio99:.3f}x (ratio of medians)")


if __name__ == "__main__":
    main()
