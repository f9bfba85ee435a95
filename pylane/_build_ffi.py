"""cffi build script: compiles c_core/ into the extension ``pylane._lane_core``.

Used by setup.py (``cffi_modules``) for both ``pip install .`` and
``pip install -e .``. API mode: cffi compiles a real CPython extension, so
calls go straight to C.

The declarations are the C headers' own: each header in HEADERS marks a
section ("cffi:begin" ... "cffi:end") of plain declarations, and that text is
what cffi's cdef() gets, so the binding cannot drift from the header (and
tests/test_ffi_header.py checks it did not). Two edits to it: the blocking
functions are left out and the pylane_* wrappers are added (below).

The GIL. cffi releases it around every call. For the engine's short calls
(submit, finish, cancel: tens of nanoseconds under one mutex) that is a
loss: each release lets a waiting thread take the GIL, so a burst of submits
turns into a thread switch per submit (measured: 23k submits/s instead of
100k+). So the preamble below keeps the GIL for the generated wrappers, and
the three calls Python makes that can block (waiting for work, settling then
waiting, waiting for idle) get wrappers of ours that release it explicitly;
the raw blocking functions (BLOCKING) are not exposed to Python at all. This is safe because the
engine never calls back into Python and never waits for anything while
holding its own mutex, so a thread that holds the GIL and takes the engine's
mutex cannot deadlock with a thread that holds the mutex.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet

from cffi import FFI

# The headers whose "cffi:begin" ... "cffi:end" section is the binding's
# declarations. Relative paths, like C_SOURCES below: setuptools runs this
# from the project root.
HEADERS = ("c_core/lane_core.h", "c_core/lane_buckets.h")

# The blocking calls: left out of the binding, Python calls them through the
# GIL-releasing pylane_* wrappers of PREAMBLE instead (see the docstring).
# lc_take_searched does not block, but only the wrapper that began the search
# may call it (the engine counts searchers), so it is left out too.
BLOCKING = frozenset({"lc_wait_next", "lc_settle_and_wait", "lc_complete_and_wait", "lc_wait_idle",
                      "lc_wait_ready", "lc_wait_ready_search", "lc_take_searched"})

# Declared here, defined in PREAMBLE.
WRAPPERS_CDEF = """
int pylane_wait_next(lc_engine *engine, int64_t timeout_ns, lc_dispatch *out);
int pylane_settle_and_wait(lc_engine *engine, int64_t timeout_ns, lc_dispatch *out);
int pylane_wait_idle(lc_engine *engine, int64_t timeout_ns);
typedef struct pylane_waiter pylane_waiter;
pylane_waiter *pylane_waiter_new(void);
void pylane_waiter_free(pylane_waiter *waiter);
int pylane_waiter_wait(pylane_waiter *waiter);
void pylane_waiter_post(pylane_waiter *waiter);
int pylane_settle_wake_and_wait(lc_engine *engine, pylane_waiter *waiter, int64_t timeout_ns,
                                lc_dispatch *out);
"""

_SECTION = re.compile(r"/\*\s*cffi:begin\b.*?\*/(.*?)/\*\s*cffi:end\s*\*/", re.DOTALL)
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
_FUNCTION_NAME = re.compile(r"(\w+)\s*\(")


def header_section(path: str) -> str:
    """The text between the header's cffi:begin and cffi:end markers, comments
    removed. Exactly one section, without preprocessor lines (cffi's parser
    takes none)."""
    with open(path, encoding="utf-8") as f:
        sections = _SECTION.findall(f.read())
    if len(sections) != 1:
        raise RuntimeError(f"{path}: {len(sections)} cffi:begin/cffi:end sections, expected 1")
    text = _COMMENT.sub(" ", sections[0])
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            raise RuntimeError(f"{path}: preprocessor line in the cffi section: {line.strip()}")
    return text


def _declarations(text: str) -> list[str]:
    """Splits declarations at the semicolons outside braces."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == ";" and depth == 0:
            out.append(text[start : i + 1].strip())
            start = i + 1
    if text[start:].strip():
        raise RuntimeError(f"declaration without a semicolon: {text[start:].strip()}")
    return out


def build_cdef(headers: Sequence[str] = HEADERS,
               blocking: AbstractSet[str] = BLOCKING) -> str:
    """The headers' cffi sections without the blocking functions, plus the
    wrappers' declarations. Fails if a blocking function is not found, so a
    rename cannot expose it by accident."""
    kept, dropped = [], set()
    for path in headers:
        for decl in _declarations(header_section(path)):
            head = decl.split(None, 1)[0]
            match = _FUNCTION_NAME.search(decl)
            if head not in ("typedef", "enum", "struct") and match and match.group(1) in blocking:
                dropped.add(match.group(1))
            else:
                kept.append(decl)
    missing = set(blocking) - dropped
    if missing:
        raise RuntimeError(f"blocking functions not found in {headers}: {sorted(missing)}")
    return "\n".join(kept) + "\n" + WRAPPERS_CDEF


PREAMBLE = r"""
#include <semaphore.h>
#include <stdlib.h>

#include "lane_buckets.h"
#include "lane_core.h"

/* A thread blocked on a command's result (CommandFuture.result): one per
 * thread, posted by the worker that ends the command. A semaphore, so a post
 * before the wait is not lost; a post left over (the waiter gave up on a
 * signal) only makes a later wait check its future once more. */
typedef struct pylane_waiter {
    sem_t sem;
} pylane_waiter;

static pylane_waiter *pylane_waiter_new(void) {
    pylane_waiter *waiter = malloc(sizeof *waiter);
    if (waiter && sem_init(&waiter->sem, 0, 0) != 0) {
        free(waiter);
        waiter = NULL;
    }
    return waiter;
}

static void pylane_waiter_free(pylane_waiter *waiter) {
    sem_destroy(&waiter->sem);
    free(waiter);
}

/* Sleeps, GIL released, until posted (0) or a signal arrives (-1: Python
 * then runs its handlers, so Ctrl-C works, and waits again). */
static int pylane_waiter_wait(pylane_waiter *waiter) {
    PyThreadState *state = PyEval_SaveThread();
    int rc = sem_wait(&waiter->sem);
    PyEval_RestoreThread(state);
    return rc;
}

static void pylane_waiter_post(pylane_waiter *waiter) {
    sem_post(&waiter->sem);
}

/* A worker's wait. It first looks for work while keeping the GIL, and
 * releases it only to sleep: a worker that releases the GIL with work ready
 * hands it to another thread and then waits for it back, one switch per
 * command. It sleeps in lc_wait_ready, which takes nothing, and takes the
 * ticket only once it holds the GIL again: while it waits for the GIL, a
 * thread that holds it (a worker finishing a command, in its first look
 * above) may take that ticket and start it at once. Were the ticket taken
 * before the GIL, an urgent command handed to an idle worker would wait for
 * the GIL behind every CPU-bound thread (a reservation's worker: tens of ms),
 * while a worker that already held it could have started it. If the ticket
 * is gone, the worker sleeps again. While it waits for the GIL it counts as
 * a searcher (lc_wait_ready_search): a ticket submitted meanwhile wakes no
 * other worker unless there are more pending tickets than searchers, so
 * the submitting thread, which holds the GIL, often makes no system call. */
static int pylane_wait_then_take(lc_engine *engine, int64_t timeout_ns, lc_dispatch *out,
                                 pylane_waiter *waiter) {
    uint64_t deadline = timeout_ns > 0 ? lc_now_ns() + (uint64_t)timeout_ns : 0;
    for (;;) {
        int64_t left = timeout_ns;
        if (deadline) {
            uint64_t now = lc_now_ns();
            if (now >= deadline) {
                if (waiter) sem_post(&waiter->sem);
                return LC_NONE;
            }
            left = (int64_t)(deadline - now);
        }
        PyThreadState *state = PyEval_SaveThread();
        if (waiter) {
            sem_post(&waiter->sem); /* see pylane_settle_wake_and_wait */
            waiter = NULL;
        }
        int rc = lc_wait_ready_search(engine, left);
        PyEval_RestoreThread(state);
        if (rc != LC_READY) return rc;
        rc = lc_take_searched(engine, out); /* a poll: takes it, or finds it gone */
        if (rc != LC_NONE) return rc;
    }
}

static int pylane_wait_next(lc_engine *engine, int64_t timeout_ns, lc_dispatch *out) {
    int rc = lc_wait_next(engine, 0, out);
    if (rc != LC_NONE || timeout_ns == 0) return rc;
    return pylane_wait_then_take(engine, timeout_ns, out, NULL);
}

static int pylane_settle_and_wait(lc_engine *engine, int64_t timeout_ns, lc_dispatch *out) {
    int rc = lc_settle_and_wait(engine, 0, out);
    if (rc != LC_NONE || timeout_ns == 0) return rc;
    return pylane_wait_then_take(engine, timeout_ns, out, NULL);
}

/* pylane_settle_and_wait, and `waiter` (if not NULL: the thread blocked on
 * the command just ended) is woken. When this worker has nothing more to do,
 * the wake-up is sent after it has let go of the GIL: woken while the worker
 * still held it, the caller would only block on the GIL, and need a second
 * wake-up when the worker sleeps (two thread switches per command; and the
 * system call would run with the GIL held). With more work, this worker
 * keeps the GIL and wakes the caller at once. */
static int pylane_settle_wake_and_wait(lc_engine *engine, pylane_waiter *waiter,
                                       int64_t timeout_ns, lc_dispatch *out) {
    int rc = lc_settle_and_wait(engine, 0, out);
    if (rc != LC_NONE || timeout_ns == 0) {
        if (waiter) sem_post(&waiter->sem);
        return rc;
    }
    return pylane_wait_then_take(engine, timeout_ns, out, waiter);
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
ffibuilder.cdef(build_cdef())
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
