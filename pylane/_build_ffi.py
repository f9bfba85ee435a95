"""cffi build script: compiles c_core/ into the extension ``pylane._lane_core``.

Used by setup.py (``cffi_modules``) for both ``pip install .`` and
``pip install -e .``. API mode: cffi compiles a real CPython extension, so
calls go straight to C.

The GIL. cffi releases it around every call. For the engine's short calls
(submit, finish, cancel: tens of nanoseconds under one mutex) that is a
loss: each release lets a waiting thread take the GIL, so a burst of submits
turns into a thread switch per submit (measured: 23k submits/s instead of
100k+). So the preamble below keeps the GIL for the generated wrappers, and
the three calls that can block (waiting for work, settling then waiting,
waiting for idle) get wrappers of ours that release it explicitly; the raw
blocking functions are not exposed to Python at all. This is safe because the
engine never calls back into Python and never waits for anything while
holding its own mutex, so a thread that holds the GIL and takes the engine's
mutex cannot deadlock with a thread that holds the mutex.
"""

from __future__ import annotations

import glob

from cffi import FFI

# The subset of c_core/lane_core.h and lane_buckets.h that Python uses, without preprocessor lines
# (cffi's parser does not take them).
CDEF = """
typedef struct lc_engine lc_engine;

enum {
    LC_OK = 0,
    LC_NONE = 0,
    LC_DISPATCHED = 1,
    LC_RUN_INLINE = 2,
    LC_SAMPLES_DUE = 3,
    LC_ERR_NOMEM = -1,
    LC_ERR_NO_LANE = -2,
    LC_ERR_INVALID = -3,
    LC_ERR_STOPPED = -4,
    LC_ERR_BUDGET = -5,
    LC_ERR_NOT_ACTIVE = -6
};
enum {
    LC_OUTCOME_COMPLETED = 0,
    LC_OUTCOME_FAILED = 1,
    LC_OUTCOME_CANCELLED = 2,
    LC_OUTCOME_RETRIED = 3
};

typedef struct lc_dispatch {
    uint32_t lane;
    uint64_t ticket;
    uint64_t enqueued_ns;
} lc_dispatch;

enum { LC_SAMPLE_WAIT = 0, LC_SAMPLE_RUN = 1 };

typedef struct lc_sample_run {
    uint32_t lane;
    uint32_t kind;
    uint32_t count;
} lc_sample_run;

typedef struct lc_lane_stats {
    int32_t priority;
    uint32_t min_concurrency;
    uint32_t max_concurrency;
    uint32_t paused;
    uint64_t pending;
    uint64_t active;
    uint64_t submitted;
    uint64_t dispatched;
    uint64_t completed;
    uint64_t failed;
    uint64_t cancelled;
    uint64_t delayed;
    uint64_t retried;
    uint32_t throttled;
} lc_lane_stats;

lc_engine *lc_engine_new(uint32_t workers);
void lc_engine_free(lc_engine *engine);
int lc_lane_add(lc_engine *engine, int32_t priority, uint32_t min_concurrency,
                uint32_t max_concurrency);
uint32_t lc_lane_count(lc_engine *engine);
int lc_lane_set_rate_limit(lc_engine *engine, uint32_t lane, uint64_t max_commands,
                           uint64_t window_ns);
int lc_lane_set_boost(lc_engine *engine, uint32_t lane, uint64_t deadline_ns,
                      const uint64_t *before_ns, const int32_t *amounts, uint32_t count);
uint64_t lc_lane_pending(lc_engine *engine, uint32_t lane);
int lc_submit(lc_engine *engine, uint32_t lane, uint64_t ticket, uint64_t now_ns);
int lc_submit_at(lc_engine *engine, uint32_t lane, uint64_t ticket, uint64_t due_ns);
int lc_retry_at(lc_engine *engine, uint32_t lane, uint64_t ticket, uint64_t due_ns);
uint64_t lc_next_wake_ns(lc_engine *engine);
int lc_submit_or_claim(lc_engine *engine, uint32_t lane, uint64_t ticket, uint64_t now_ns);
int lc_try_next(lc_engine *engine, uint64_t now_ns, lc_dispatch *out);
int lc_complete(lc_engine *engine, uint32_t lane, int outcome);
int lc_finish(lc_engine *engine, uint32_t lane, int outcome);
int lc_finish_timed(lc_engine *engine, uint32_t lane, int outcome, int64_t run_ns);
void lc_set_timing(lc_engine *engine, uint32_t max_samples);
int lc_take_samples(lc_engine *engine, double *out_ms, uint32_t out_cap, lc_sample_run *runs,
                    uint32_t runs_cap, uint64_t *dropped);
typedef struct lc_buckets lc_buckets;
lc_buckets *lc_buckets_new(void);
void lc_buckets_free(lc_buckets *buckets);
int lc_buckets_add_ms(lc_buckets *buckets, const double *values, uint32_t n);
uint32_t lc_buckets_distinct(const lc_buckets *buckets);
int lc_buckets_take(lc_buckets *buckets, uint32_t *keys, uint64_t *counts, uint32_t cap,
                    double *summary);
void lc_settle(lc_engine *engine);
int lc_set_workers(lc_engine *engine, uint32_t workers);
int lc_cancel(lc_engine *engine, uint32_t lane, uint64_t ticket);
int lc_pause(lc_engine *engine, uint32_t lane);
int lc_resume(lc_engine *engine, uint32_t lane);
int lc_read_lane_stats(lc_engine *engine, uint32_t lane, lc_lane_stats *out);
void lc_totals(lc_engine *engine, uint64_t *pending, uint64_t *active);
void lc_stop(lc_engine *engine);
uint64_t lc_now_ns(void);

/* Blocking calls, GIL released (see the module docstring). */
int pylane_wait_next(lc_engine *engine, int64_t timeout_ns, lc_dispatch *out);
int pylane_settle_and_wait(lc_engine *engine, int64_t timeout_ns, lc_dispatch *out);
int pylane_wait_idle(lc_engine *engine, int64_t timeout_ns);
"""

PREAMBLE = r"""
#include "lane_buckets.h"
#include "lane_core.h"

/* Both first look for work while keeping the GIL, and release it only to
 * sleep: a worker that releases the GIL with work ready hands it to another
 * thread and then waits for it back, one switch per command. */
static int pylane_wait_next(lc_engine *engine, int64_t timeout_ns, lc_dispatch *out) {
    int rc = lc_wait_next(engine, 0, out);
    if (rc != LC_NONE || timeout_ns == 0) return rc;
    PyThreadState *state = PyEval_SaveThread();
    rc = lc_wait_next(engine, timeout_ns, out);
    PyEval_RestoreThread(state);
    return rc;
}

static int pylane_settle_and_wait(lc_engine *engine, int64_t timeout_ns, lc_dispatch *out) {
    int rc = lc_settle_and_wait(engine, 0, out);
    if (rc != LC_NONE || timeout_ns == 0) return rc;
    PyThreadState *state = PyEval_SaveThread();
    rc = lc_wait_next(engine, timeout_ns, out);
    PyEval_RestoreThread(state);
    return rc;
}

static int pylane_wait_idle(lc_engine *engine, int64_t timeout_ns) {
    int rc;
    PyThreadState *state = PyEval_SaveThread();
    rc = lc_wait_idle(engine, timeout_ns);
    PyEval_RestoreThread(state);
    return rc;
}

/* From here on, cffi's generated wrappers keep the GIL. */
#undef Py_BEGIN_ALLOW_THREADS
#undef Py_END_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS {
#define Py_END_ALLOW_THREADS }
"""

# Relative paths: setuptools runs this from the project root and wants them so.
C_SOURCES = sorted(glob.glob("c_core/*.c"))

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "pylane._lane_core",
    PREAMBLE,
    sources=C_SOURCES,
    include_dirs=["c_core"],
    extra_compile_args=["-std=c11", "-O2"],
    libraries=["pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
