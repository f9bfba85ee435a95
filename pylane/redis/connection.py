"""Talking to Redis: connections with bounded timeouts, the function library
(loaded once, checked by version), key names, and one Python method per Lua
function with Redis's errors turned into ``LaneError`` subclasses.

Nothing here imports ``redis`` at module import time, so ``pylane`` works
without the extra; the first connection does, and says how to install it.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit

from ..config import LaneConfig
from ..errors import (
    InvalidArgumentError,
    InvalidConfigError,
    LaneConfigConflictError,
    LaneError,
    LaneNotFoundError,
    LibraryVersionError,
    RedisConnectionError,
)

LIBRARY_NAME = "a3s_lane"
LUA_FILE = Path(__file__).with_name("lanes.lua")
# Bounded waits: an unreachable Redis fails start() within CONNECT_TIMEOUT.
CONNECT_TIMEOUT = 3.0
SOCKET_TIMEOUT = 10.0
MAX_QUEUE_NAME = 128
MAX_LANE_ID = 200
_BAD_NAME = re.compile(r"[{}\s\x00-\x1f\x7f]")
_BAD_LANE = re.compile(r"[\x00-\x1f\x7f]")


def library_source() -> str:
    return LUA_FILE.read_text(encoding="utf-8")


def library_versions(source: Optional[str] = None) -> tuple[int, int]:
    """(VERSION, COMPATIBLE_FROM) as the Lua file declares them."""
    text = library_source() if source is None else source
    version = re.search(r"^local VERSION = (\d+)", text, re.M)
    compatible = re.search(r"^local COMPATIBLE_FROM = (\d+)", text, re.M)
    if not version or not compatible:
        raise LaneError(f"{LUA_FILE} declares no VERSION / COMPATIBLE_FROM")
    return int(version.group(1)), int(compatible.group(1))


def check_queue_name(name: Any) -> str:
    """A queue name becomes the hash tag of every key: '{' and '}' would end
    the tag early, blanks and control characters make keys no one can type."""
    if not isinstance(name, str) or not name:
        raise InvalidConfigError(f"queue name must be a non-empty string, got {name!r}")
    if len(name) > MAX_QUEUE_NAME:
        raise InvalidConfigError(f"queue name must be at most {MAX_QUEUE_NAME} characters, "
                                 f"got {len(name)}")
    bad = _BAD_NAME.search(name)
    if bad:
        raise InvalidConfigError(f"queue name {name!r} cannot be a Redis hash tag: it contains "
                                 f"{bad.group()!r} (no braces, blanks or control characters)")
    return name


def check_lane_key(lane_id: str) -> str:
    """A lane id becomes the end of key names: no control characters."""
    if len(lane_id) > MAX_LANE_ID:
        raise InvalidConfigError(f"lane id {lane_id[:20]!r}... is longer than {MAX_LANE_ID} "
                                 "characters, too long for a Redis key")
    bad = _BAD_LANE.search(lane_id)
    if bad:
        raise InvalidConfigError(f"lane id {lane_id!r} cannot be part of a Redis key: it "
                                 f"contains the control character {bad.group()!r}")
    return lane_id


def base_key(queue: str) -> str:
    """Every key of the queue starts with this; ``{queue}`` is the hash tag."""
    return f"a3s:{{{check_queue_name(queue)}}}"


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def lane_config_json(lane_id: str, config: LaneConfig, priority: int) -> str:
    """The lane as the Lua library stores and compares it (times in ms)."""
    spec: dict[str, Any] = {"id": lane_id, "priority": priority,
                            "min": config.min_concurrency, "max": config.max_concurrency}
    if config.timeout is not None:
        spec["timeout_ms"] = config.timeout * 1000.0
    policy = config.retry_policy
    if policy is not None and policy.max_retries:
        spec["retry"] = {"max_retries": policy.max_retries,
                         "initial_ms": policy.initial_delay * 1000.0,
                         "max_ms": policy.max_delay * 1000.0,
                         "multiplier": float(policy.multiplier)}
    rate = config.rate_limit
    if rate is not None and not rate.is_unlimited:
        spec["rate"] = {"max": rate.max_commands, "window_ms": rate.window * 1000.0}
    boost = config.priority_boost
    if boost is not None and boost.enabled:
        spec["boost"] = {"deadline_ms": boost.deadline * 1000.0,
                         "windows": [[before * 1000.0, amount]
                                     for before, amount in boost.boost_intervals]}
    return json.dumps(spec, separators=(",", ":"))


def _redis_module() -> Any:
    try:
        import redis
    except ImportError:
        raise LaneError('the Redis backend needs the redis extra: pip install "a3s-lane[redis]"'
                        ) from None
    return redis


def _keepalive_options() -> dict[int, int]:
    """Notice a silently dead peer in about 25 s on a blocking connection."""
    options = {}
    for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, name):
            options[getattr(socket, name)] = value
    return options


# A Redis Cluster: redis+cluster://host:port (any node; rediss+cluster:// with TLS).
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster_url(url: str) -> bool:
    try:
        return urlsplit(url).scheme.lower() in CLUSTER_SCHEMES
    except ValueError:
        return False


def _without_cluster(url: str, netloc: Optional[str] = None) -> str:
    """The URL in plain redis:// form (of one node, given its host:port)."""
    parts = urlsplit(url)
    scheme = CLUSTER_SCHEMES[parts.scheme.lower()]
    if netloc is not None:
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{netloc}" if userinfo else netloc
    return urlunsplit((scheme, parts.netloc if netloc is None else netloc, parts.path,
                       parts.query, parts.fragment))


_cluster_class: Any = None


def _cluster_client_class() -> Any:
    """redis-py's RedisCluster, routing FCALL / FCALL_RO by their first key
    without asking the server for the keys (COMMAND GETKEYS, a round trip
    per call)."""
    global _cluster_class
    if _cluster_class is None:
        from redis.cluster import RedisCluster
        from redis.crc import key_slot

        class LaneCluster(RedisCluster):
            def determine_slot(self, *args: Any) -> Any:
                if (len(args) > 3 and str(args[0]).upper() in ("FCALL", "FCALL_RO")
                        and int(args[2]) > 0):
                    first = args[3]
                    return key_slot(first.encode() if isinstance(first, str) else first)
                return super().determine_slot(*args)

        _cluster_class = LaneCluster
    return _cluster_class


def open_client(url: str, *, blocking: bool = False, max_connections: Optional[int] = None,
                connect_timeout: float = CONNECT_TIMEOUT,
                socket_timeout: float = SOCKET_TIMEOUT, key: Optional[str] = None) -> Any:
    """A client for `url`. Connects within `connect_timeout`; requests time
    out after SOCKET_TIMEOUT, except on a `blocking` client (BLPOP, XREAD
    BLOCK), which waits as long as the command does and relies on TCP
    keepalive. No automatic retries: the runtime retries with back-off.

    A ``redis+cluster://`` URL gives redis-py's cluster client (it follows
    the slots; a queue's keys share one slot), which learns the cluster's
    layout now (so an unreachable cluster raises RedisConnectionError here);
    with `key`, a plain client of the node that holds the key's slot (for
    commands that must stay on one connection: CLIENT ID, CLIENT UNBLOCK)."""
    redis = _redis_module()
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options: dict[str, Any] = {
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": None if blocking else socket_timeout,
        "socket_keepalive": True, "socket_keepalive_options": _keepalive_options(),
        "max_connections": max_connections, "client_name": "a3s-lane"}
    try:
        if not is_cluster_url(url):
            return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **options)
        try:
            cluster = _cluster_client_class().from_url(_without_cluster(url), **options)
        except (redis.exceptions.RedisClusterException, redis.exceptions.ConnectionError,
                redis.exceptions.TimeoutError) as error:
            raise unreachable(url, error) from None
        if key is None:
            return cluster
        node = cluster.get_node_from_key(key)
        cluster.close()
        return redis.Redis.from_url(_without_cluster(url, f"{node.host}:{node.port}"),
                                    retry=Retry(NoBackoff(), 0), **options)
    except ValueError as error:
        raise InvalidConfigError(f"invalid Redis URL {redact(url)!r}: {error}") from None


def is_connection_error(error: BaseException) -> bool:
    redis = _redis_module()
    return isinstance(error, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                              redis.exceptions.ClusterDownError,
                              redis.exceptions.RedisClusterException, RedisConnectionError))


def unreachable(url: str, error: BaseException) -> RedisConnectionError:
    return RedisConnectionError(f"Redis at {redact(url)} is unreachable: {error}")


def ensure_library(client: Any, url: str) -> int:
    """Loads the function library if Redis has none, replaces an older
    compatible one, and refuses any other version. Returns the version.
    In a cluster, on every primary (functions are per node; a queue's slot
    may move)."""
    if hasattr(client, "get_primaries"):
        versions = {_ensure_library_on(client.get_redis_connection(node), url)
                    for node in client.get_primaries()}
        return versions.pop()
    return _ensure_library_on(client, url)


def _ensure_library_on(client: Any, url: str) -> int:
    redis = _redis_module()
    source = library_source()
    ours, compatible_from = library_versions(source)
    for _attempt in range(3):
        try:
            loaded: Optional[int] = None
            listed = client.function_list(library=LIBRARY_NAME, withcode=True)
            if listed:
                try:
                    loaded = int(client.fcall_ro("a3s_version", 0))
                except redis.exceptions.ResponseError:
                    # A library of that name without our version function.
                    raise LibraryVersionError("unknown (no a3s_version function)", ours) from None
            if loaded == ours:
                # Same version, other text (a development build): replace it.
                fields = listed[0]
                code = dict(zip(fields[::2], fields[1::2])).get(b"library_code", b"")
                if code.decode("utf-8", "replace") != source:
                    client.function_load(source, replace=True)
                return ours
            if loaded is None:
                client.function_load(source)
            elif compatible_from <= loaded < ours:
                client.function_load(source, replace=True)
            else:
                raise LibraryVersionError(loaded, ours)
            return ours
        except redis.exceptions.ResponseError as error:
            if "already exists" in str(error):
                continue  # another process loaded it at the same moment: check it again
            raise LaneError(f"Redis at {redact(url)} refused the a3s_lane functions: {error}"
                            ) from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            raise unreachable(url, error) from None
    raise LaneError(f"could not load the a3s_lane functions into Redis at {redact(url)}")


_ERROR_CODE = re.compile(r"^(A3S_[A-Z_]+) ?(.*)$", re.S)


class Functions:
    """One method per Lua function, for one queue. ``now_ms`` (tests only)
    replaces Redis TIME; production passes nothing. Thread-safe (the client's
    pool is)."""

    def __init__(self, client: Any, url: str, queue: str) -> None:
        self.client = client
        self.url = url
        self.queue = queue
        self.base = base_key(queue)
        self._reload_lock = threading.Lock()

    def key(self, suffix: str) -> str:
        return f"{self.base}:{suffix}"

    def call(self, name: str, *args: Any, now_ms: Optional[float] = None) -> Any:
        redis = _redis_module()
        now = "" if now_ms is None else repr(float(now_ms))
        for attempt in range(2):
            try:
                return self.client.fcall(name, 1, self.base, now, *args)
            except redis.exceptions.ResponseError as error:
                text = str(error)
                if attempt == 0 and "Function not found" in text:
                    # Redis lost its functions (a restart without persistence,
                    # FUNCTION FLUSH): load them again, once.
                    with self._reload_lock:
                        ensure_library(self.client, self.url)
                    continue
                raise self._lane_error(text) from None
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
                raise unreachable(self.url, error) from None
        raise AssertionError("unreachable")

    @staticmethod
    def _lane_error(text: str) -> LaneError:
        match = _ERROR_CODE.match(text)
        if not match:
            return LaneError(f"Redis: {text}")
        code, message = match.groups()
        if code == "A3S_NO_LANE":
            return LaneNotFoundError(message)
        if code == "A3S_CONFLICT":
            return LaneConfigConflictError(message)
        if code == "A3S_BUDGET":
            return InvalidConfigError(message)
        if code in ("A3S_DUPLICATE", "A3S_ARG"):
            return InvalidArgumentError(message)
        return LaneError(f"Redis: {text}")

    # ---- the library's functions ------------------------------------------------

    def register_lanes(self, configs: list[str], options: dict[str, Any],
                       now_ms: Optional[float] = None) -> int:
        return int(self.call("a3s_register_lanes", json.dumps(options), *configs, now_ms=now_ms))

    def join(self, worker_id: str, slots: int, types: list[str], lease_ms: float,
             info: str = "", now_ms: Optional[float] = None, direct: bool = False) -> int:
        """``direct``: the worker reads the records of commands a submit
        leased to it from its wake list, besides tokens."""
        return int(self.call("a3s_join", worker_id, slots, json.dumps(sorted(types)),
                             repr(float(lease_ms)), info, "1" if direct else "0",
                             now_ms=now_ms))

    def leave(self, worker_id: str, now_ms: Optional[float] = None) -> bool:
        return bool(self.call("a3s_leave", worker_id, now_ms=now_ms))

    def heartbeat(self, worker_id: str, lease_ms: float,
                  now_ms: Optional[float] = None) -> tuple[bool, int]:
        known, reaped = self.call("a3s_heartbeat", worker_id, repr(float(lease_ms)),
                                  now_ms=now_ms)
        return bool(known), int(reaped)

    def submit(self, command_id: str, lane_id: str, command_type: str, payload_json: str,
               reply_to: str = "", now_ms: Optional[float] = None) -> str:
        result = self.call("a3s_submit", command_id, lane_id, command_type, payload_json,
                           reply_to, now_ms=now_ms)
        return result.decode() if isinstance(result, bytes) else str(result)

    def submit_many(self, commands: Sequence[tuple[str, str, str, str]], reply_to: str = "",
                    now_ms: Optional[float] = None) -> int:
        """(id, lane, type, payload JSON) each; all or none are queued."""
        flat = [field for command in commands for field in command]
        return int(self.call("a3s_submit_many", reply_to, *flat, now_ms=now_ms))

    def take_results(self, client_id: str, most: int) -> list[bytes]:
        """Moves up to `most` results of a client to its ``:taken`` list
        (emptied first) and returns them."""
        return list(self.call("a3s_take_results", client_id, most))

    def claim(self, worker_id: str, free: int, acks: list[dict[str, Any]],
              now_ms: Optional[float] = None) -> dict[str, Any]:
        raw = self.call("a3s_claim", worker_id, free, json.dumps(acks), now_ms=now_ms)
        reply: dict[str, Any] = json.loads(raw)
        # cjson writes an empty Lua table as {}.
        for name in ("claimed", "rejected"):
            if not reply.get(name):
                reply[name] = []
        return reply

    def cancel(self, command_id: str, now_ms: Optional[float] = None) -> bool:
        return bool(self.call("a3s_cancel", command_id, now_ms=now_ms))

    def pause(self, lane_id: str, now_ms: Optional[float] = None) -> None:
        self.call("a3s_pause", lane_id, now_ms=now_ms)

    def resume(self, lane_id: str, now_ms: Optional[float] = None) -> None:
        self.call("a3s_resume", lane_id, now_ms=now_ms)

    def stats(self, now_ms: Optional[float] = None) -> dict[str, Any]:
        reply: dict[str, Any] = json.loads(self.call("a3s_stats", now_ms=now_ms))
        for name in ("lanes", "workers"):
            if not reply.get(name):
                reply[name] = []
        return reply

    def dead_letters(self, start: int = 0, stop: int = -1) -> list[dict[str, Any]]:
        return [json.loads(item) for item in self.call("a3s_dead_letters", start, stop)]


# Retry pauses of the background threads (workers, results, events) while
# Redis is unreachable: 0.1 s doubling to 5 s, reset by the first success.
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0


class Backoff:
    def __init__(self) -> None:
        self.delay = 0.0

    def next(self) -> float:
        self.delay = BACKOFF_FIRST if self.delay == 0 else min(self.delay * 2, BACKOFF_MAX)
        return self.delay

    def reset(self) -> None:
        self.delay = 0.0
