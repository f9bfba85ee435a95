"""The C engine, wrapped: one ``Engine`` per queue.

Hot paths (submit, the worker loop) call ``lib`` directly with ``engine.ptr``;
this class is for everything else and turns return codes into errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._lane_core import ffi, lib
from ..errors import InvalidConfigError, LaneError

_ERRORS = {
    lib.LC_ERR_NOMEM: "out of memory",
    lib.LC_ERR_NO_LANE: "no such lane index",
    lib.LC_ERR_INVALID: "invalid argument",
    lib.LC_ERR_STOPPED: "engine stopped",
    lib.LC_ERR_BUDGET: "min_concurrency reservations exceed the worker budget",
    lib.LC_ERR_NOT_ACTIVE: "nothing active in that lane",
}


def check(rc: int, what: str) -> int:
    if rc < 0:
        if rc == lib.LC_ERR_NOMEM:
            raise MemoryError(f"{what}: out of memory")
        raise LaneError(f"{what}: {_ERRORS.get(rc, f'error {rc}')}")
    return rc


@dataclass(frozen=True)
class EngineLaneStats:
    priority: int
    min_concurrency: int
    max_concurrency: int
    paused: bool
    pending: int
    active: int
    submitted: int
    dispatched: int
    completed: int
    failed: int
    cancelled: int
    delayed: int
    retried: int
    throttled: bool


class Engine:
    """Owns one ``lc_engine``; freed when the last reference goes."""

    def __init__(self, workers: int) -> None:
        ptr = lib.lc_engine_new(workers)
        if ptr == ffi.NULL:
            raise MemoryError("lc_engine_new failed")
        self.ptr = ffi.gc(ptr, lib.lc_engine_free)
        self.workers = workers

    def add_lane(self, priority: int, min_concurrency: int, max_concurrency: int) -> int:
        rc = lib.lc_lane_add(self.ptr, priority, min_concurrency, max_concurrency)
        if rc == lib.LC_ERR_BUDGET:
            raise InvalidConfigError(
                f"the lanes' min_concurrency reservations exceed the worker pool of "
                f"{self.workers}; raise the pool size or lower min_concurrency"
            )
        if rc == lib.LC_ERR_INVALID:
            raise InvalidConfigError(
                f"invalid lane: priority={priority}, min={min_concurrency}, max={max_concurrency}"
            )
        return check(rc, "add lane")

    def set_rate_limit(self, index: int, max_commands: int, window_s: float) -> None:
        check(lib.lc_lane_set_rate_limit(self.ptr, index, max_commands, int(window_s * 1e9)),
              "set rate limit")

    def set_boost(self, index: int, deadline_s: float,
                  windows: tuple[tuple[float, int], ...]) -> None:
        before = ffi.new("uint64_t[]", [int(w[0] * 1e9) for w in windows] or [0])
        amounts = ffi.new("int32_t[]", [w[1] for w in windows] or [0])
        check(lib.lc_lane_set_boost(self.ptr, index, int(deadline_s * 1e9), before, amounts,
                                    len(windows)), "set priority boost")

    def lane_stats(self, index: int) -> EngineLaneStats:
        out = ffi.new("lc_lane_stats *")
        check(lib.lc_read_lane_stats(self.ptr, index, out), "lane stats")
        return EngineLaneStats(
            out.priority, out.min_concurrency, out.max_concurrency, bool(out.paused),
            out.pending, out.active, out.submitted, out.dispatched, out.completed,
            out.failed, out.cancelled, out.delayed, out.retried, bool(out.throttled),
        )

    def totals(self) -> tuple[int, int]:
        pending = ffi.new("uint64_t *")
        active = ffi.new("uint64_t *")
        lib.lc_totals(self.ptr, pending, active)
        return pending[0], active[0]

    def submit(self, lane: int, ticket: int, now_ns: int = 0) -> None:
        check(lib.lc_submit(self.ptr, lane, ticket, now_ns), "submit")

    def try_next(self, now_ns: int = 0) -> tuple[int, int] | None:
        out = ffi.new("lc_dispatch *")
        if check(lib.lc_try_next(self.ptr, now_ns, out), "try_next") == lib.LC_DISPATCHED:
            return out.lane, out.ticket
        return None

    def complete(self, lane: int, outcome: int = lib.LC_OUTCOME_COMPLETED) -> None:
        check(lib.lc_complete(self.ptr, lane, outcome), "complete")

    def cancel(self, lane: int, ticket: int) -> bool:
        return bool(check(lib.lc_cancel(self.ptr, lane, ticket), "cancel"))

    def pause(self, lane: int) -> None:
        check(lib.lc_pause(self.ptr, lane), "pause")

    def resume(self, lane: int) -> None:
        check(lib.lc_resume(self.ptr, lane), "resume")

    def wait_idle(self, timeout_s: float | None) -> bool:
        timeout_ns = -1 if timeout_s is None else int(timeout_s * 1e9)
        return bool(lib.pylane_wait_idle(self.ptr, timeout_ns))

    def stop(self) -> None:
        lib.lc_stop(self.ptr)
