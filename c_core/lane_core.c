/* lane_core.c — the engine: lanes, ready-lane heaps, worker budget, waits.
 *
 * Locking: one mutex, engine->lock. What it guards and the naming rule for
 * the helpers that run under it are stated once, next to it in struct
 * lc_engine below.
 *
 * Two heaps hold the lanes that could run something now (pending work, not
 * paused, below max_concurrency):
 *   ready    — all of them;
 *   reserved — those still below their min_concurrency.
 * `unfilled` is the sum over all lanes of (min - active) where positive: the
 * workers that reservations still claim. With `free` workers left, any ready
 * lane may go when free > unfilled; otherwise only a lane filling its own
 * reservation may. Both heaps share one order, so the choice is one peek.
 *
 * Delayed tickets (retry back-off) wait in `delayed`, a heap by due time,
 * and move to the back of their lane when due: on any dispatch attempt, and
 * by a sleeping worker whose wait is cut short to the earliest due time.
 *
 * Time-dependent rules (lane_rules.c) stay out of the heaps' order:
 *  - a rate-limited lane found without a token when picked is throttled:
 *    taken out of the heaps until its next token, kept in `limited`;
 *  - boosted lanes sit in the heaps by base priority and are listed in
 *    `boosted`; a pick compares the heap's top with each boosted lane's
 *    effective priority now. No non-boosted lane below the top can win, so
 *    the pick stays O(log lanes + boosted lanes).
 */
#define _POSIX_C_SOURCE 200809L

#include "lane_core.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "delay_heap.h"
#include "lane.h"
#include "lane_heap.h"
#include "lane_rules.h"
#include "timing_log.h"

struct lc_engine {
    /* The lock guards every field of the engine and everything reachable
     * from them: lanes, their rings, the heaps, the rule lists and the timing
     * log. One exception: `timing_on` is also read without it (atomically),
     * so that a call can read the clock before taking the lock (see
     * clock_if_timing). Each public lc_* function takes the lock at most
     * once and releases it before returning; the engine never calls out to
     * user code, so no callback ever runs under it.
     *
     * Naming rule: a static function in this file that takes the engine and
     * must be called with the lock held ends in _locked, and never takes the
     * lock itself. So every call site shows whether it runs inside the
     * critical section, and a _locked call outside a lock/unlock pair stands
     * out. A static function that takes the engine without the suffix either
     * takes the lock itself (schedule_at, set_paused) or needs none
     * (clock_if_timing).
     * The rule does not apply to helpers that are handed a lane, heap or list
     * rather than the engine (priority_now, heap_place, list_add), nor to the
     * data-structure modules (ticket_ring, lane_heap, delay_heap, timing_log,
     * lane_rules): they are plain structures that know nothing of the lock;
     * the engine owns them and only calls them with the lock held.
     * (lane_buckets is not engine state at all; its caller guards it.) */
    pthread_mutex_t lock;
    /* Both are only waited on with the lock held (sleep_until_locked). */
    pthread_cond_t work_cond; /* a ticket may have become dispatchable, or lc_stop was called */
    pthread_cond_t idle_cond; /* nothing is pending, active, settling or delayed any more */

    lane **lanes; /* lanes never move once created: the heaps point at them */
    uint32_t lane_count;
    uint32_t lane_cap;
    lane_heap ready;
    lane_heap reserved;
    delay_heap delayed;
    lane **limited; /* lanes with a rate limit */
    uint32_t limited_count;
    lane **boosted; /* lanes with a deadline boost */
    uint32_t boosted_count;

    uint32_t workers; /* 0 = unbounded */
    uint64_t reserved_sum;
    uint64_t unfilled;
    uint64_t total_active;
    uint64_t total_pending;
    uint64_t settling; /* finished, caller's result not yet published */
    uint64_t next_seq;

    uint32_t work_waiters;
    uint32_t wakes_due; /* signals owed to work_cond, sent by unlock_and_wake */
    uint32_t wakes_sent; /* signals sent whose waiter has not taken the lock back yet */
    /* Workers told a ticket was ready (lc_wait_ready_search) that have not
     * yet tried to take one (lc_take_searched); see wake_one_worker_locked. */
    uint32_t searchers;
    uint32_t idle_waiters;
    int stopped;

    timing_log timing;      /* samples for the wrapper's metrics (off: max 0) */
    int timing_on;          /* timing.max > 0; atomic, see clock_if_timing */
    uint64_t last_take_ns;  /* when the wrapper last took them */
};

uint64_t lc_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- engine lifetime ---------------------------------------------------- */

lc_engine *lc_engine_new(uint32_t workers) {
    lc_engine *engine = calloc(1, sizeof *engine);
    if (!engine) return NULL;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    /* Waits measure time on the monotonic clock so wall-clock jumps do not
     * stretch or cut a worker's timeout. */
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&engine->lock, NULL);
    pthread_cond_init(&engine->work_cond, &attr);
    pthread_cond_init(&engine->idle_cond, &attr);
    pthread_condattr_destroy(&attr);
    heap_init(&engine->ready, HEAP_READY);
    heap_init(&engine->reserved, HEAP_RESERVED);
    delay_heap_init(&engine->delayed);
    timing_log_init(&engine->timing);
    engine->workers = workers;
    return engine;
}

void lc_engine_free(lc_engine *engine) {
    if (!engine) return;
    for (uint32_t i = 0; i < engine->lane_count; i++) {
        ring_free(&engine->lanes[i]->pending);
        free(engine->lanes[i]);
    }
    free(engine->lanes);
    free(engine->limited);
    free(engine->boosted);
    heap_free(&engine->ready);
    heap_free(&engine->reserved);
    delay_heap_free(&engine->delayed);
    timing_log_free(&engine->timing);
    pthread_cond_destroy(&engine->work_cond);
    pthread_cond_destroy(&engine->idle_cond);
    pthread_mutex_destroy(&engine->lock);
    free(engine);
}

/* ---- helpers (engine->lock held) ----------------------------------------- */

static lane *lane_at_locked(lc_engine *engine, uint32_t index) {
    return index < engine->lane_count ? engine->lanes[index] : NULL;
}

/* `rekey`: the lane's key (its front ticket) changed, so a lane that stays
 * in the heap must be moved; otherwise a member already sits at its key. */
static inline void heap_place(lane_heap *heap, lane *l, int belongs, int rekey) {
    int inside = heap_contains(heap, l);
    if (belongs && inside) {
        if (rekey) heap_fix(heap, l);
    } else if (belongs) {
        heap_insert(heap, l);
    } else if (inside) {
        heap_remove(heap, l);
    }
}

/* Whether the lane may dispatch now, budget aside: the `ready` heap's rule. */
static int lane_runnable(const lane *l) {
    return l->pending.count > 0 && !l->paused && l->active < l->max_concurrency &&
           l->throttled_until == 0;
}

/* Puts the lane in exactly the heaps its state calls for. Called after every
 * change to a lane's pending ring, active count, pause flag or throttle;
 * `rekey` when its front ticket changed (a pop or a cancel). A lane's key is
 * (base priority, front ticket's seq), and the priority never changes. */
static inline void lane_sync_locked(lc_engine *engine, lane *l, int rekey) {
    int runnable = lane_runnable(l);
    heap_place(&engine->ready, l, runnable, rekey);
    heap_place(&engine->reserved, l, runnable && l->active < l->min_concurrency, rekey);
}

/* lane_sync_locked after a change that can only add the lane to heaps, never
 * take it out or move its key: a first pending ticket, or a freed slot. */
static inline void lane_admit_locked(lc_engine *engine, lane *l) {
    if (!lane_runnable(l)) return;
    if (!heap_contains(&engine->ready, l)) heap_insert(&engine->ready, l);
    if (l->active < l->min_concurrency && !heap_contains(&engine->reserved, l))
        heap_insert(&engine->reserved, l);
}

static int32_t priority_now(const lane *l, uint64_t now_ns) {
    if (l->boost_deadline_ns == 0) return l->priority;
    return effective_priority(l, ring_front(&l->pending)->enqueued_ns, now_ns);
}

/* best_of_locked's search when lanes have boosts: `best` is the heap's top. */
static lane *best_boosted_locked(lc_engine *engine, const lane_heap *heap, lane *best,
                                 uint64_t now_ns) {
    int32_t best_priority = priority_now(best, now_ns);
    for (uint32_t i = 0; i < engine->boosted_count; i++) {
        lane *l = engine->boosted[i];
        if (l == best || !heap_contains(heap, l)) continue;
        int32_t p = priority_now(l, now_ns);
        if (p < best_priority || (p == best_priority && ring_front(&l->pending)->seq <
                                                            ring_front(&best->pending)->seq)) {
            best = l;
            best_priority = p;
        }
    }
    return best;
}

/* The most urgent lane of `heap` now: its top, unless a boosted member has
 * risen above it. Ties go to the older front ticket, as in the heap. */
static inline lane *best_of_locked(lc_engine *engine, const lane_heap *heap, uint64_t now_ns) {
    lane *best = heap_top(heap);
    if (!best || engine->boosted_count == 0) return best;
    return best_boosted_locked(engine, heap, best, now_ns);
}

/* The heap the next dispatch may come from under the worker budget, or NULL
 * when no worker is free. */
static const lane_heap *eligible_heap_locked(const lc_engine *engine) {
    if (engine->workers == 0) return &engine->ready;
    if (engine->total_active >= engine->workers) return NULL;
    uint64_t free_workers = engine->workers - engine->total_active;
    return free_workers > engine->unfilled ? &engine->ready : &engine->reserved;
}

/* The lane the next dispatch would come from, or NULL. */
static lane *pick_lane_locked(lc_engine *engine, uint64_t now_ns) {
    const lane_heap *heap = eligible_heap_locked(engine);
    return heap ? best_of_locked(engine, heap, now_ns) : NULL;
}

/* Out of the heaps until the lane's next token. */
static void throttle_locked(lc_engine *engine, lane *l, uint64_t now_ns) {
    l->throttled_until = bucket_next_token_ns(l, now_ns);
    lane_sync_locked(engine, l, 0);
}

static void release_throttled_locked(lc_engine *engine, uint64_t now_ns) {
    for (uint32_t i = 0; i < engine->limited_count; i++) {
        lane *l = engine->limited[i];
        if (l->throttled_until && l->throttled_until <= now_ns) {
            l->throttled_until = 0;
            lane_sync_locked(engine, l, 0);
        }
    }
}

/* Whether any rule needs the clock. */
static int needs_clock_locked(const lc_engine *engine) {
    return engine->delayed.len || engine->limited_count || engine->boosted_count;
}

/* The earliest time something waiting on time (a delayed ticket, a
 * throttled lane) may become ready, or 0 if nothing waits on time. */
static uint64_t next_wake_locked(const lc_engine *engine) {
    const delayed_entry *next = delay_heap_peek(&engine->delayed);
    uint64_t wake = next ? next->due_ns : 0;
    for (uint32_t i = 0; i < engine->limited_count; i++) {
        uint64_t at = engine->limited[i]->throttled_until;
        if (at && (wake == 0 || at < wake)) wake = at;
    }
    return wake;
}

static void promote_due_locked(lc_engine *engine, uint64_t now_ns);

/* Brings time-dependent state up to `now_ns`. */
static void advance_clock_locked(lc_engine *engine, uint64_t now_ns) {
    if (engine->delayed.len) promote_due_locked(engine, now_ns);
    if (engine->limited_count) release_throttled_locked(engine, now_ns);
}

static void mark_started_locked(lc_engine *engine, lane *l) {
    if (l->active < l->min_concurrency) engine->unfilled--;
    l->active++;
    l->dispatched++;
    engine->total_active++;
}

static int enqueue_entry_locked(lc_engine *engine, lane *l, uint64_t ticket, uint64_t enqueued_ns) {
    ring_entry entry = {ticket, engine->next_seq, enqueued_ns};
    if (ring_push_back(&l->pending, entry) != 0) return LC_ERR_NOMEM;
    engine->next_seq++;
    engine->total_pending++;
    /* Behind other tickets it changes neither the lane's front (its key)
     * nor whether the lane may run: only a first ticket can move it. */
    if (l->pending.count == 1) lane_admit_locked(engine, l);
    return LC_OK;
}

/* A new pending ticket or a freed slot enables at most one more dispatch.
 * The signal is only counted here and sent once the lock is released
 * (unlock_and_wake): a worker signalled while the waker still holds the lock
 * wakes only to block on it, then needs a second wake-up when it is unlocked
 * (two more thread switches per hand-off, measured in Python's 16-caller
 * bench). A waiter counted in work_waiters has already released the lock
 * inside pthread_cond_wait, so a signal sent after the unlock still reaches
 * it: no wake-up is lost.
 *
 * Two signals are skipped, each a system call its sender (in Python, holding
 * the GIL) would pay for nothing:
 * - while there are at least as many searchers (lc_wait_ready_search) as
 *   pending tickets. Each searcher takes a ticket (lc_take_searched) after
 *   this, so every pending ticket is either taken by one or by someone
 *   faster, and a searcher that finds none waits again. (A worker woken here
 *   would only join the race for the GIL and, often, find nothing.)
 * - when every waiter has been signalled already (wakes_sent: signals whose
 *   waiter has not taken the lock back). A second signal could wake nobody
 *   new: the woken waiters all look at the queue once they have the lock.
 *   wakes_sent <= work_waiters always; a waiter woken by a broadcast or its
 *   timeout also takes one off, which can only cause an extra signal. */
static void wake_one_worker_locked(lc_engine *engine) {
    if (engine->searchers && engine->searchers >= engine->total_pending) return;
    if (engine->work_waiters > engine->wakes_due + engine->wakes_sent) engine->wakes_due++;
}

/* Sends the owed signals under the lock: before a thread that owes them
 * goes to sleep itself (it would otherwise send them only when it wakes). */
static void flush_wakes_locked(lc_engine *engine) {
    for (; engine->wakes_due; engine->wakes_due--) {
        engine->wakes_sent++;
        pthread_cond_signal(&engine->work_cond);
    }
}

/* Releases the lock, then sends the signals owed (see wake_one_worker_locked).
 * Every public function that can wake a worker ends with this instead of a
 * plain unlock. */
static void unlock_and_wake(lc_engine *engine) {
    uint32_t wakes = engine->wakes_due;
    engine->wakes_due = 0;
    engine->wakes_sent += wakes;
    pthread_mutex_unlock(&engine->lock);
    while (wakes--) pthread_cond_signal(&engine->work_cond);
}

/* Moves every delayed ticket that is due by `now_ns` to the back of its lane.
 * A ticket that cannot be moved (no memory) stays delayed and is tried again
 * at the next dispatch attempt. */
static void promote_due_locked(lc_engine *engine, uint64_t now_ns) {
    const delayed_entry *next;
    while ((next = delay_heap_peek(&engine->delayed)) && next->due_ns <= now_ns) {
        lane *l = engine->lanes[next->lane];
        if (enqueue_entry_locked(engine, l, next->ticket, next->enqueued_ns) != LC_OK) return;
        delay_heap_pop(&engine->delayed);
        l->delayed--;
        wake_one_worker_locked(engine);
    }
}

static uint32_t sample_key(uint32_t lane_index, uint32_t kind) {
    return lane_index * 2 + kind;
}

/* The lane the next dispatch would take from, or NULL. On the way it brings
 * time-dependent state up to date (due retries, released and newly throttled
 * lanes), but consumes nothing: no ticket, no rate token. `*now_ns` (0 =
 * not read yet) is read here when a rule needs the clock. */
static inline lane *next_lane_locked(lc_engine *engine, uint64_t *now_ns) {
    if (!needs_clock_locked(engine)) {
        /* No lane has a rate limit or a boost: the pick is a heap's top. */
        const lane_heap *heap = eligible_heap_locked(engine);
        return heap ? heap_top(heap) : NULL;
    }
    if (!*now_ns) *now_ns = lc_now_ns();
    advance_clock_locked(engine, *now_ns);
    /* A rate limit is checked at dispatch, and only for the lane that would
     * run: an idle or full lane never spends a token (the original's R1). */
    lane *l;
    while ((l = pick_lane_locked(engine, *now_ns)) && l->rate_per_ns > 0 &&
           !bucket_ready(l, *now_ns))
        throttle_locked(engine, l, *now_ns);
    return l;
}

static inline int take_next_locked(lc_engine *engine, uint64_t now_ns, lc_dispatch *out) {
    lane *l = next_lane_locked(engine, &now_ns);
    if (!l) return LC_NONE;
    if (l->rate_per_ns > 0) bucket_take(l, now_ns); /* next_lane_locked saw a whole token */
    ring_entry entry = ring_pop_front(&l->pending);
    engine->total_pending--;
    mark_started_locked(engine, l);
    lane_sync_locked(engine, l, 1);
    out->lane = l->index;
    out->ticket = entry.ticket;
    out->enqueued_ns = entry.enqueued_ns;
    if (engine->timing.max) {
        if (!now_ns) now_ns = lc_now_ns();
        /* A clock injected by a test may lag a submit's own reading. */
        uint64_t waited = now_ns > entry.enqueued_ns ? now_ns - entry.enqueued_ns : 0;
        timing_log_add(&engine->timing, sample_key(l->index, LC_SAMPLE_WAIT), waited);
    }
    return LC_DISPATCHED;
}

static int is_idle_locked(const lc_engine *engine) {
    return engine->total_pending == 0 && engine->total_active == 0 && engine->settling == 0 &&
           engine->delayed.len == 0;
}

static void wake_idle_waiters_locked(lc_engine *engine) {
    if (engine->idle_waiters && is_idle_locked(engine)) pthread_cond_broadcast(&engine->idle_cond);
}

static int complete_locked(lc_engine *engine, uint32_t index, int outcome) {
    lane *l = lane_at_locked(engine, index);
    if (!l) return LC_ERR_NO_LANE;
    if ((unsigned)outcome > LC_OUTCOME_RETRIED) return LC_ERR_INVALID; /* also < 0 */
    if (l->active == 0) return LC_ERR_NOT_ACTIVE;
    l->active--;
    if (l->active < l->min_concurrency) engine->unfilled++;
    engine->total_active--;
    /* LC_OUTCOME_RETRIED moves no counter: lc_retry_at counts the retry. */
    if (outcome == LC_OUTCOME_COMPLETED)
        l->completed++;
    else if (outcome == LC_OUTCOME_FAILED)
        l->failed++;
    else if (outcome == LC_OUTCOME_CANCELLED)
        l->cancelled++;
    /* A freed slot can only let the lane into a heap: when it was full or
     * falls below its reservation. */
    if (l->active + 1 == l->max_concurrency || l->active < l->min_concurrency)
        lane_admit_locked(engine, l);
    wake_idle_waiters_locked(engine);
    return LC_OK;
}

static struct timespec timespec_at(uint64_t monotonic_ns) {
    struct timespec ts;
    ts.tv_sec = (time_t)(monotonic_ns / 1000000000ull);
    ts.tv_nsec = (long)(monotonic_ns % 1000000000ull);
    return ts;
}

/* Sleeps on `cond` until signalled or until `wake_ns` (0 = no limit).
 * Returns 1 if the time limit passed. */
static int sleep_until_locked(lc_engine *engine, pthread_cond_t *cond, uint64_t wake_ns) {
    if (wake_ns == 0) {
        pthread_cond_wait(cond, &engine->lock);
        return 0;
    }
    struct timespec ts = timespec_at(wake_ns);
    return pthread_cond_timedwait(cond, &engine->lock, &ts) == ETIMEDOUT;
}

static uint64_t deadline_ns(int64_t timeout_ns) {
    return timeout_ns > 0 ? lc_now_ns() + (uint64_t)timeout_ns : 0;
}

/* With timing on, a call that will dispatch reads the clock before it takes
 * the lock: a clock read inside the critical section lengthens it for every
 * thread queued on the lock (in Python, a thread blocked there holds the
 * GIL, so everyone waits). Off, it is 0 and nothing is read. */
static uint64_t clock_if_timing(lc_engine *engine) {
    return __atomic_load_n(&engine->timing_on, __ATOMIC_RELAXED) ? lc_now_ns() : 0;
}

/* `now_ns` (0 = read when needed) is used for the first attempt only: a
 * worker that slept reads the clock again when it wakes. With `out` NULL it
 * takes nothing and returns LC_READY once a ticket is dispatchable
 * (lc_wait_ready); with `search` as well, only once there are more pending
 * tickets than searchers (lc_wait_ready_search). */
static int wait_next_locked(lc_engine *engine, int64_t timeout_ns, lc_dispatch *out,
                            uint64_t now_ns, int search) {
    uint64_t deadline = deadline_ns(timeout_ns);
    for (;;) {
        if (engine->stopped) return LC_ERR_STOPPED;
        if (out) {
            if (take_next_locked(engine, now_ns, out) == LC_DISPATCHED) return LC_DISPATCHED;
        } else if (next_lane_locked(engine, &now_ns) &&
                   !(search && engine->searchers >= engine->total_pending)) {
            /* (A searcher ready to take each pending ticket: this one would
             * only join the race for them. It sleeps; a ticket beyond them
             * wakes it, see wake_one_worker_locked.) */
            return LC_READY;
        }
        now_ns = 0;
        if (timeout_ns == 0) return LC_NONE;
        if (deadline && lc_now_ns() >= deadline) return LC_NONE;
        /* Wake for the caller's deadline, the next delayed ticket or the next
         * token of a throttled lane, whichever comes first; no other timer
         * exists, so nothing ever polls. */
        uint64_t wake = deadline;
        uint64_t ready = next_wake_locked(engine);
        if (ready && (wake == 0 || ready < wake)) wake = ready;
        flush_wakes_locked(engine);
        engine->work_waiters++;
        sleep_until_locked(engine, &engine->work_cond, wake);
        engine->work_waiters--;
        if (engine->wakes_sent) engine->wakes_sent--;
    }
}

/* ---- lanes ---------------------------------------------------------------- */

int lc_lane_add(lc_engine *engine, int32_t priority, uint32_t min_concurrency,
                uint32_t max_concurrency) {
    if (priority < 0 || max_concurrency == 0 || min_concurrency > max_concurrency)
        return LC_ERR_INVALID;
    pthread_mutex_lock(&engine->lock);
    int rc;
    uint64_t reserved = engine->reserved_sum + min_concurrency;
    if (engine->workers && reserved > engine->workers) {
        rc = LC_ERR_BUDGET;
        goto out;
    }
    if (engine->lane_count == INT32_MAX) {
        rc = LC_ERR_INVALID;
        goto out;
    }
    uint32_t count = engine->lane_count + 1;
    /* Reserve heap room first so no later insert can fail mid-dispatch. */
    if (heap_reserve(&engine->ready, count) || heap_reserve(&engine->reserved, count)) {
        rc = LC_ERR_NOMEM;
        goto out;
    }
    if (count > engine->lane_cap) {
        uint32_t cap = engine->lane_cap ? engine->lane_cap * 2 : 8;
        lane **lanes = realloc(engine->lanes, (size_t)cap * sizeof *lanes);
        if (!lanes) {
            rc = LC_ERR_NOMEM;
            goto out;
        }
        engine->lanes = lanes;
        engine->lane_cap = cap;
    }
    lane *l = calloc(1, sizeof *l);
    if (!l) {
        rc = LC_ERR_NOMEM;
        goto out;
    }
    l->index = engine->lane_count;
    l->priority = priority;
    l->min_concurrency = min_concurrency;
    l->max_concurrency = max_concurrency;
    l->heap_pos[HEAP_READY] = l->heap_pos[HEAP_RESERVED] = -1;
    ring_init(&l->pending);
    engine->lanes[engine->lane_count++] = l;
    engine->reserved_sum = reserved;
    engine->unfilled += min_concurrency;
    rc = (int)l->index;
out:
    pthread_mutex_unlock(&engine->lock);
    return rc;
}

uint32_t lc_lane_count(lc_engine *engine) {
    pthread_mutex_lock(&engine->lock);
    uint32_t count = engine->lane_count;
    pthread_mutex_unlock(&engine->lock);
    return count;
}

/* Adds `l` to a rule list once; 0 or LC_ERR_NOMEM. */
static int list_add(lane ***list, uint32_t *count, lane *l) {
    for (uint32_t i = 0; i < *count; i++)
        if ((*list)[i] == l) return LC_OK;
    lane **grown = realloc(*list, (size_t)(*count + 1) * sizeof *grown);
    if (!grown) return LC_ERR_NOMEM;
    grown[(*count)++] = l;
    *list = grown;
    return LC_OK;
}

static void list_remove(lane **list, uint32_t *count, lane *l) {
    for (uint32_t i = 0; i < *count; i++) {
        if (list[i] == l) {
            list[i] = list[--*count];
            return;
        }
    }
}

int lc_lane_set_rate_limit(lc_engine *engine, uint32_t index, uint64_t max_commands,
                           uint64_t window_ns) {
    pthread_mutex_lock(&engine->lock);
    lane *l = lane_at_locked(engine, index);
    int rc = l ? LC_OK : LC_ERR_NO_LANE;
    if (l && max_commands && window_ns) {
        rc = list_add(&engine->limited, &engine->limited_count, l);
        if (rc == LC_OK) bucket_configure(l, max_commands, window_ns, lc_now_ns());
    } else if (l) {
        bucket_configure(l, 0, 0, 0);
        list_remove(engine->limited, &engine->limited_count, l);
    }
    if (rc == LC_OK) {
        /* A new limit starts with a full bucket: the lane is free to go. */
        l->throttled_until = 0;
        lane_sync_locked(engine, l, 0);
        if (engine->work_waiters) pthread_cond_broadcast(&engine->work_cond);
    }
    pthread_mutex_unlock(&engine->lock);
    return rc;
}

int lc_lane_set_boost(lc_engine *engine, uint32_t index, uint64_t deadline_ns,
                      const uint64_t *before_ns, const int32_t *amounts, uint32_t count) {
    if (count > LANE_MAX_BOOSTS) return LC_ERR_INVALID;
    for (uint32_t i = 0; i < count; i++)
        if (amounts[i] < 0) return LC_ERR_INVALID;
    pthread_mutex_lock(&engine->lock);
    lane *l = lane_at_locked(engine, index);
    int rc = l ? LC_OK : LC_ERR_NO_LANE;
    if (l && deadline_ns) {
        rc = list_add(&engine->boosted, &engine->boosted_count, l);
        if (rc == LC_OK) boost_configure(l, deadline_ns, before_ns, amounts, count);
    } else if (l) {
        boost_configure(l, 0, NULL, NULL, 0);
        list_remove(engine->boosted, &engine->boosted_count, l);
    }
    pthread_mutex_unlock(&engine->lock);
    return rc;
}

/* ---- submit and dispatch -------------------------------------------------- */

/* `now_ns` is the ticket's enqueue time, never 0: the public calls read the
 * clock (for now_ns 0) before they take the lock. */
static int enqueue_locked(lc_engine *engine, lane *l, uint64_t ticket, uint64_t now_ns) {
    int rc = enqueue_entry_locked(engine, l, ticket, now_ns);
    if (rc != LC_OK) return rc;
    l->submitted++;
    wake_one_worker_locked(engine);
    return LC_OK;
}

/* Parks a ticket until due_ns. A sleeping worker is woken so that it can
 * shorten its sleep if this is now the earliest due time. */
static int delay_locked(lc_engine *engine, lane *l, uint64_t ticket, uint64_t due_ns,
                        uint64_t now_ns) {
    delayed_entry entry = {due_ns, ticket, now_ns, l->index};
    if (delay_heap_push(&engine->delayed, entry) != 0) return LC_ERR_NOMEM;
    l->delayed++;
    wake_one_worker_locked(engine);
    return LC_OK;
}

/* Queues a ticket now or parks it until due_ns; a retry counts as a retry,
 * anything else as a submit. */
static int schedule_at(lc_engine *engine, uint32_t index, uint64_t ticket, uint64_t due_ns,
                       int is_retry) {
    uint64_t now = lc_now_ns(); /* outside the critical section */
    pthread_mutex_lock(&engine->lock);
    lane *l = lane_at_locked(engine, index);
    int rc = LC_ERR_NO_LANE;
    if (l) {
        if (due_ns <= now) {
            rc = enqueue_entry_locked(engine, l, ticket, now);
            if (rc == LC_OK) wake_one_worker_locked(engine);
        } else {
            rc = delay_locked(engine, l, ticket, due_ns, now);
        }
        if (rc == LC_OK) {
            if (is_retry)
                l->retried++;
            else
                l->submitted++;
        }
    }
    unlock_and_wake(engine);
    return rc;
}

int lc_submit_at(lc_engine *engine, uint32_t index, uint64_t ticket, uint64_t due_ns) {
    return schedule_at(engine, index, ticket, due_ns, 0);
}

int lc_retry_at(lc_engine *engine, uint32_t index, uint64_t ticket, uint64_t due_ns) {
    return schedule_at(engine, index, ticket, due_ns, 1);
}

uint64_t lc_next_wake_ns(lc_engine *engine) {
    pthread_mutex_lock(&engine->lock);
    uint64_t wake = next_wake_locked(engine);
    pthread_mutex_unlock(&engine->lock);
    return wake;
}

/* The enqueue time for now_ns 0 is read before the lock is taken: a clock
 * read inside the critical section lengthens it for every thread queued on
 * the lock. */
int lc_submit(lc_engine *engine, uint32_t index, uint64_t ticket, uint64_t now_ns) {
    if (!now_ns) now_ns = lc_now_ns();
    pthread_mutex_lock(&engine->lock);
    lane *l = lane_at_locked(engine, index);
    int rc = l ? enqueue_locked(engine, l, ticket, now_ns) : LC_ERR_NO_LANE;
    unlock_and_wake(engine);
    return rc;
}

/* True when a ticket submitted to `l` now would be the very next dispatch.
 * An empty lane has no front ticket, so no boost: its base priority counts. */
static int would_run_at_once_locked(lc_engine *engine, lane *l, uint64_t now_ns) {
    if (l->paused || l->pending.count || l->active >= l->max_concurrency) return 0;
    if (l->throttled_until) return 0;
    /* The rivals are the lanes pick_lane_locked would choose from: when the
     * budget is down to reservations, only lanes filling their own. */
    const lane_heap *rivals = eligible_heap_locked(engine);
    if (!rivals) return 0;
    if (rivals == &engine->reserved && l->active >= l->min_concurrency) return 0;
    /* Any rival of equal or better priority holds an older ticket. */
    lane *top = best_of_locked(engine, rivals, now_ns);
    if (top && priority_now(top, now_ns) <= l->priority) return 0;
    return l->rate_per_ns == 0 || bucket_take(l, now_ns);
}

/* Marks a claimed ticket as submitted and running. */
static void claim_locked(lc_engine *engine, lane *l) {
    engine->next_seq++;
    l->submitted++;
    mark_started_locked(engine, l);
    lane_sync_locked(engine, l, 0);
    /* It starts as it is submitted: a wait of zero, which the wait
     * histogram must count like any other start. */
    if (engine->timing.max) timing_log_add(&engine->timing, sample_key(l->index, LC_SAMPLE_WAIT), 0);
}

/* The clock for a claim decision (0 when no rule needs it). */
static uint64_t claim_clock_locked(lc_engine *engine) {
    if (!needs_clock_locked(engine)) return 0;
    uint64_t now = lc_now_ns();
    advance_clock_locked(engine, now); /* due retries count as already waiting */
    return now;
}

int lc_submit_or_claim(lc_engine *engine, uint32_t index, uint64_t ticket, uint64_t now_ns) {
    if (!now_ns) now_ns = lc_now_ns(); /* as in lc_submit; a claim does not use it */
    pthread_mutex_lock(&engine->lock);
    lane *l = lane_at_locked(engine, index);
    int rc;
    if (!l) {
        rc = LC_ERR_NO_LANE;
    } else if (would_run_at_once_locked(engine, l, claim_clock_locked(engine))) {
        claim_locked(engine, l);
        rc = LC_RUN_INLINE;
    } else {
        rc = enqueue_locked(engine, l, ticket, now_ns);
    }
    unlock_and_wake(engine);
    return rc;
}

int lc_try_claim(lc_engine *engine, uint32_t index) {
    pthread_mutex_lock(&engine->lock);
    lane *l = lane_at_locked(engine, index);
    int rc = LC_ERR_NO_LANE;
    if (l) {
        rc = LC_NONE;
        if (would_run_at_once_locked(engine, l, claim_clock_locked(engine))) {
            claim_locked(engine, l);
            rc = LC_RUN_INLINE;
        }
    }
    unlock_and_wake(engine);
    return rc;
}

int lc_try_next(lc_engine *engine, uint64_t now_ns, lc_dispatch *out) {
    pthread_mutex_lock(&engine->lock);
    int rc = take_next_locked(engine, now_ns, out);
    unlock_and_wake(engine);
    return rc;
}

int lc_wait_next(lc_engine *engine, int64_t timeout_ns, lc_dispatch *out) {
    uint64_t now = clock_if_timing(engine);
    pthread_mutex_lock(&engine->lock);
    int rc = wait_next_locked(engine, timeout_ns, out, now, 0);
    unlock_and_wake(engine);
    return rc;
}

int lc_wait_ready(lc_engine *engine, int64_t timeout_ns) {
    pthread_mutex_lock(&engine->lock);
    int rc = wait_next_locked(engine, timeout_ns, NULL, 0, 0);
    unlock_and_wake(engine);
    return rc;
}

int lc_wait_ready_search(lc_engine *engine, int64_t timeout_ns) {
    pthread_mutex_lock(&engine->lock);
    int rc = wait_next_locked(engine, timeout_ns, NULL, 0, 1);
    if (rc == LC_READY) engine->searchers++;
    unlock_and_wake(engine);
    return rc;
}

int lc_take_searched(lc_engine *engine, lc_dispatch *out) {
    uint64_t now = clock_if_timing(engine);
    pthread_mutex_lock(&engine->lock);
    if (engine->searchers) engine->searchers--;
    int rc = wait_next_locked(engine, 0, out, now, 0);
    unlock_and_wake(engine);
    return rc;
}

int lc_complete(lc_engine *engine, uint32_t index, int outcome) {
    pthread_mutex_lock(&engine->lock);
    int rc = complete_locked(engine, index, outcome);
    if (rc == LC_OK && engine->total_pending) wake_one_worker_locked(engine);
    unlock_and_wake(engine);
    return rc;
}

int lc_complete_and_wait(lc_engine *engine, uint32_t index, int outcome, int64_t timeout_ns,
                         lc_dispatch *out) {
    uint64_t now = clock_if_timing(engine);
    pthread_mutex_lock(&engine->lock);
    /* No wake-up here: the slot this frees is taken by the caller itself. */
    int rc = complete_locked(engine, index, outcome);
    if (rc == LC_OK) rc = wait_next_locked(engine, timeout_ns, out, now, 0);
    unlock_and_wake(engine);
    return rc;
}

int lc_finish(lc_engine *engine, uint32_t index, int outcome) {
    int rc = lc_finish_timed(engine, index, outcome, -1);
    return rc == LC_SAMPLES_DUE ? LC_OK : rc; /* its caller takes no samples */
}

/* Samples are due for collection after a batch of them (cheap to hand over
 * in one go, and far below the log's maximum) or when the oldest may be a
 * second old, so a push-style metrics backend lags by a second at most
 * while commands run. */
#define SAMPLES_DUE_COUNT 16384u
#define SAMPLES_DUE_AFTER_NS 1000000000ull

static int samples_due_locked(const lc_engine *engine, uint64_t now_ns) {
    const timing_log *log = &engine->timing;
    if (log->len == 0) return 0;
    /* now_ns may be 0 (timing was just turned on) or a little older than
     * last_take_ns (read before the lock): neither counts as a second. */
    return log->len >= SAMPLES_DUE_COUNT ||
           (now_ns > engine->last_take_ns && now_ns - engine->last_take_ns >= SAMPLES_DUE_AFTER_NS);
}

int lc_finish_timed(lc_engine *engine, uint32_t index, int outcome, int64_t run_ns) {
    uint64_t now = clock_if_timing(engine); /* for the age rule; outside the lock */
    pthread_mutex_lock(&engine->lock);
    int rc = complete_locked(engine, index, outcome);
    if (rc == LC_OK) {
        /* No wake-up here: a worker settles with lc_settle_and_wait and
         * takes the slot itself a moment later; waking another worker for
         * it made two threads race for one ticket (one of them back to
         * sleep), a thread switch per command. lc_settle, whose caller
         * takes no work, wakes one. */
        engine->settling++;
        if (engine->timing.max) {
            if (run_ns >= 0)
                timing_log_add(&engine->timing, sample_key(index, LC_SAMPLE_RUN), (uint64_t)run_ns);
            if (samples_due_locked(engine, now)) rc = LC_SAMPLES_DUE;
        }
    }
    pthread_mutex_unlock(&engine->lock);
    return rc;
}

void lc_set_timing(lc_engine *engine, uint32_t max_samples) {
    pthread_mutex_lock(&engine->lock);
    timing_log_set_max(&engine->timing, max_samples);
    __atomic_store_n(&engine->timing_on, max_samples > 0, __ATOMIC_RELAXED);
    engine->last_take_ns = lc_now_ns();
    pthread_mutex_unlock(&engine->lock);
}

uint32_t lc_samples_buffered(lc_engine *engine) {
    pthread_mutex_lock(&engine->lock);
    uint32_t len = engine->timing.len;
    pthread_mutex_unlock(&engine->lock);
    return len;
}

int lc_take_samples(lc_engine *engine, double *out_ms, uint32_t out_cap, lc_sample_run *runs,
                    uint32_t runs_cap, uint64_t *dropped) {
    pthread_mutex_lock(&engine->lock);
    timing_log *log = &engine->timing;
    uint32_t key_count = engine->lane_count * 2;
    int rc;
    if (runs_cap < key_count) {
        rc = LC_ERR_INVALID;
    } else {
        uint32_t *run_keys = malloc(((size_t)key_count + 1) * 2 * sizeof *run_keys);
        if (!run_keys) {
            rc = LC_ERR_NOMEM;
        } else {
            uint32_t *run_counts = run_keys + key_count + 1;
            uint64_t lost = log->dropped;
            rc = timing_log_take(log, key_count, out_ms, out_cap, run_keys, run_counts);
            if (rc < 0) {
                rc = LC_ERR_NOMEM;
            } else {
                if (dropped) *dropped = lost;
                for (int i = 0; i < rc; i++) {
                    runs[i].lane = run_keys[i] / 2;
                    runs[i].kind = run_keys[i] % 2;
                    runs[i].count = run_counts[i];
                }
                engine->last_take_ns = lc_now_ns();
            }
            free(run_keys);
        }
    }
    pthread_mutex_unlock(&engine->lock);
    return rc;
}

static void settle_locked(lc_engine *engine) {
    if (engine->settling) engine->settling--;
    wake_idle_waiters_locked(engine);
}

void lc_settle(lc_engine *engine) {
    pthread_mutex_lock(&engine->lock);
    settle_locked(engine);
    if (engine->total_pending) wake_one_worker_locked(engine);
    unlock_and_wake(engine);
}

int lc_settle_and_wait(lc_engine *engine, int64_t timeout_ns, lc_dispatch *out) {
    uint64_t now = clock_if_timing(engine);
    pthread_mutex_lock(&engine->lock);
    settle_locked(engine);
    int rc = wait_next_locked(engine, timeout_ns, out, now, 0);
    unlock_and_wake(engine);
    return rc;
}

int lc_set_workers(lc_engine *engine, uint32_t workers) {
    pthread_mutex_lock(&engine->lock);
    int rc = LC_OK;
    if (workers && engine->reserved_sum > workers) {
        rc = LC_ERR_BUDGET;
    } else {
        engine->workers = workers;
        if (engine->work_waiters) pthread_cond_broadcast(&engine->work_cond);
    }
    pthread_mutex_unlock(&engine->lock);
    return rc;
}

/* ---- cancel, pause, resume ------------------------------------------------ */

int lc_cancel(lc_engine *engine, uint32_t index, uint64_t ticket) {
    pthread_mutex_lock(&engine->lock);
    lane *l = lane_at_locked(engine, index);
    int rc = LC_ERR_NO_LANE;
    if (l) {
        rc = ring_remove(&l->pending, ticket);
        if (rc) {
            engine->total_pending--;
            lane_sync_locked(engine, l, 1);
        } else if ((rc = delay_heap_remove(&engine->delayed, index, ticket))) {
            l->delayed--;
        }
        if (rc) {
            l->cancelled++;
            wake_idle_waiters_locked(engine);
        }
    }
    pthread_mutex_unlock(&engine->lock);
    return rc;
}

static int set_paused(lc_engine *engine, uint32_t index, uint32_t paused) {
    pthread_mutex_lock(&engine->lock);
    lane *l = lane_at_locked(engine, index);
    int rc = LC_ERR_NO_LANE;
    if (l) {
        l->paused = paused;
        lane_sync_locked(engine, l, 0);
        /* Resuming may enable up to max_concurrency dispatches at once. */
        if (!paused && engine->work_waiters) pthread_cond_broadcast(&engine->work_cond);
        rc = LC_OK;
    }
    pthread_mutex_unlock(&engine->lock);
    return rc;
}

int lc_pause(lc_engine *engine, uint32_t index) { return set_paused(engine, index, 1); }
int lc_resume(lc_engine *engine, uint32_t index) { return set_paused(engine, index, 0); }

/* ---- observation and shutdown --------------------------------------------- */

int lc_read_lane_stats(lc_engine *engine, uint32_t index, lc_lane_stats *out) {
    pthread_mutex_lock(&engine->lock);
    lane *l = lane_at_locked(engine, index);
    if (l) {
        out->priority = l->priority;
        out->min_concurrency = l->min_concurrency;
        out->max_concurrency = l->max_concurrency;
        out->paused = l->paused;
        out->pending = l->pending.count;
        out->active = l->active;
        out->submitted = l->submitted;
        out->dispatched = l->dispatched;
        out->completed = l->completed;
        out->failed = l->failed;
        out->cancelled = l->cancelled;
        out->delayed = l->delayed;
        out->retried = l->retried;
        out->throttled = l->throttled_until != 0;
    }
    pthread_mutex_unlock(&engine->lock);
    return l ? LC_OK : LC_ERR_NO_LANE;
}

uint64_t lc_lane_pending(lc_engine *engine, uint32_t index) {
    pthread_mutex_lock(&engine->lock);
    lane *l = lane_at_locked(engine, index);
    uint64_t pending = l ? l->pending.count : 0;
    pthread_mutex_unlock(&engine->lock);
    return pending;
}

void lc_totals(lc_engine *engine, uint64_t *pending, uint64_t *active) {
    pthread_mutex_lock(&engine->lock);
    *pending = engine->total_pending;
    *active = engine->total_active;
    pthread_mutex_unlock(&engine->lock);
}

int lc_wait_idle(lc_engine *engine, int64_t timeout_ns) {
    uint64_t deadline = deadline_ns(timeout_ns);
    pthread_mutex_lock(&engine->lock);
    int idle;
    for (;;) {
        idle = is_idle_locked(engine);
        if (idle || timeout_ns == 0) break;
        engine->idle_waiters++;
        int timed_out = sleep_until_locked(engine, &engine->idle_cond, deadline);
        engine->idle_waiters--;
        if (timed_out) {
            idle = is_idle_locked(engine);
            break;
        }
    }
    pthread_mutex_unlock(&engine->lock);
    return idle;
}

void lc_stop(lc_engine *engine) {
    pthread_mutex_lock(&engine->lock);
    engine->stopped = 1;
    pthread_cond_broadcast(&engine->work_cond);
    pthread_mutex_unlock(&engine->lock);
}
