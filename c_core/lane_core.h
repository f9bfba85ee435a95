/*
 * lane_core.h — the scheduling engine behind a3s-lane (Python and Node).
 *
 * The engine holds scheduling state only: lanes, their FIFO of pending
 * tickets, counters and a global worker budget. A ticket is an opaque 64-bit
 * number chosen by the caller; the payload it stands for lives in the
 * wrapper (Python or JavaScript). The engine does no I/O and never calls back.
 *
 * Scheduling rule: whenever a worker can take work, the eligible lane with the
 * lowest priority number goes first; ties go to the lane whose front ticket
 * was submitted earliest. Inside a lane the order is FIFO. A lane is eligible
 * when it has pending tickets, is not paused, runs fewer than its
 * max_concurrency and the worker budget allows it: every lane's
 * min_concurrency is a reservation, so a lane above its minimum may not take
 * the last workers that other lanes' unfilled minimums still need.
 *
 * Every function is thread-safe. Times are nanoseconds on one clock, the one
 * lc_now_ns() reads (CLOCK_MONOTONIC). Functions that take `now_ns` use it as
 * the current time (tests inject time; 0 means "read the clock"); due times
 * of delayed tickets are on the same clock. Lane indexes that do not exist
 * give LC_ERR_NO_LANE everywhere.
 *
 * The histogram buckets the wrappers' metrics use (lc_buckets) are not engine
 * state and have their own header, lane_buckets.h.
 */
#ifndef LANE_CORE_H
#define LANE_CORE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* cffi:begin -- from here to "cffi:end", pylane/_build_ffi.py hands this
 * text to cffi's cdef(), so Python's binding is this header and cannot drift
 * from it. Hence declarations only: no preprocessor lines, no inline code.
 * (lane_buckets.h has a section of its own.) */

typedef struct lc_engine lc_engine;

/* Return codes. Non-negative values are results, negative values errors. */
enum {
    LC_OK = 0,
    LC_NONE = 0,          /* try/wait: nothing dispatched (timeout or nothing ready) */
    LC_DISPATCHED = 1,    /* try/wait: *out holds a ticket to run */
    LC_RUN_INLINE = 2,    /* lc_submit_or_claim: run it yourself, it is active */
    LC_SAMPLES_DUE = 3,   /* lc_finish_timed: done; take the timing samples soon */
    LC_READY = 4,         /* lc_wait_ready: a ticket is dispatchable now (not taken) */
    LC_ERR_NOMEM = -1,    /* allocation failed; nothing changed */
    LC_ERR_NO_LANE = -2,  /* lane index out of range */
    LC_ERR_INVALID = -3,  /* invalid argument (max 0, min > max, ...) */
    LC_ERR_STOPPED = -4,  /* lc_stop was called: workers should exit */
    LC_ERR_BUDGET = -5,   /* the lanes' min_concurrency sum exceeds the worker budget */
    LC_ERR_NOT_ACTIVE = -6 /* lc_complete on a lane with nothing running */
};

/* Outcome passed to lc_complete: it only selects which counter moves. */
enum {
    LC_OUTCOME_COMPLETED = 0,
    LC_OUTCOME_FAILED = 1,
    LC_OUTCOME_CANCELLED = 2,
    LC_OUTCOME_RETRIED = 3 /* the attempt failed and lc_retry_at re-queues it */
};

typedef struct lc_dispatch {
    uint32_t lane;
    uint64_t ticket;
    uint64_t enqueued_ns; /* when it was queued (lc_submit's now_ns, or the time
                             of the lc_submit_at / lc_retry_at call) */
} lc_dispatch;

/* Timing samples (see lc_set_timing). */
enum { LC_SAMPLE_WAIT = 0, LC_SAMPLE_RUN = 1 };

typedef struct lc_sample_run {
    uint32_t lane;
    uint32_t kind;  /* LC_SAMPLE_WAIT or LC_SAMPLE_RUN */
    uint32_t count; /* consecutive values in lc_take_samples' out_ms */
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
    uint64_t delayed; /* waiting for their due time (retry back-off) */
    uint64_t retried; /* retries scheduled with lc_retry_at */
    uint32_t throttled; /* out of rate-limit tokens right now */
} lc_lane_stats;

/* workers: the global worker budget; 0 means unbounded (only lane maxima). */
lc_engine *lc_engine_new(uint32_t workers);
void lc_engine_free(lc_engine *engine);

/* Adds a lane; returns its index (0, 1, ...) or an LC_ERR_* code.
 * priority >= 0, lower is more urgent; 1 <= max; min <= max. */
int lc_lane_add(lc_engine *engine, int32_t priority, uint32_t min_concurrency,
                uint32_t max_concurrency);
uint32_t lc_lane_count(lc_engine *engine);

/* A token bucket, checked when the lane would dispatch (never at submit):
 * at most max_commands per window_ns, bursts up to max_commands, the bucket
 * starting full. A lane out of tokens steps aside for other lanes until its
 * next token, which also bounds how long waiting workers sleep.
 * max_commands or window_ns 0 removes the limit. */
int lc_lane_set_rate_limit(lc_engine *engine, uint32_t lane, uint64_t max_commands,
                           uint64_t window_ns);

/* Deadline boost: with the lane's front ticket queued for `age`, once
 * deadline_ns - age <= before_ns[i] the lane's priority number drops by
 * amounts[i] (of the windows reached, the narrowest wins; floor 0); past the deadline the
 * lane goes above every other (-1). At most 8 windows. deadline_ns 0
 * removes the boost. */
int lc_lane_set_boost(lc_engine *engine, uint32_t lane, uint64_t deadline_ns,
                      const uint64_t *before_ns, const int32_t *amounts, uint32_t count);

/* Appends a ticket to the back of a lane; wakes one waiting worker.
 * now_ns 0 means "read the clock" (lc_now_ns). */
int lc_submit(lc_engine *engine, uint32_t lane, uint64_t ticket, uint64_t now_ns);

/* Delayed entries, held by the engine (never by a sleeping thread): the
 * ticket joins the back of its lane at due_ns (monotonic). A due time in the
 * past behaves like lc_submit. lc_submit_at counts a submit; lc_retry_at
 * counts a retry instead (call it after finishing the failed attempt with
 * LC_OUTCOME_RETRIED, before settling it, so drain never sees a gap). Delayed
 * tickets keep the queue from being idle and can be cancelled. */
int lc_submit_at(lc_engine *engine, uint32_t lane, uint64_t ticket, uint64_t due_ns);
int lc_retry_at(lc_engine *engine, uint32_t lane, uint64_t ticket, uint64_t due_ns);

/* The earliest time a delayed ticket falls due or a throttled lane gets a
 * token, or 0 if nothing waits on time: when an event loop (Node) should
 * call lc_try_next again. */
uint64_t lc_next_wake_ns(lc_engine *engine);

/* Like lc_submit, but when the ticket would be dispatched at once anyway (its
 * lane is empty and has a free slot, the budget allows it and no more urgent
 * lane is ready) it is marked active and LC_RUN_INLINE is returned, so a
 * caller that is going to block on the result can run it on its own thread.
 * Otherwise the ticket is queued and LC_OK returned. */
int lc_submit_or_claim(lc_engine *engine, uint32_t lane, uint64_t ticket, uint64_t now_ns);

/* The claim half of lc_submit_or_claim alone: LC_RUN_INLINE (counted as
 * submitted and now active) when a ticket submitted to the lane now would
 * start at once, otherwise LC_NONE and nothing changes. For callers that
 * must not queue when they cannot run at once (Node's synchronous submit). */
int lc_try_claim(lc_engine *engine, uint32_t lane);

/* Takes the most urgent dispatchable ticket without blocking. */
int lc_try_next(lc_engine *engine, uint64_t now_ns, lc_dispatch *out);

/* Blocks until a ticket is dispatchable (LC_DISPATCHED), the timeout passes
 * (LC_NONE) or lc_stop is called (LC_ERR_STOPPED). timeout_ns < 0 waits
 * forever. */
int lc_wait_next(lc_engine *engine, int64_t timeout_ns, lc_dispatch *out);

/* Like lc_wait_next, but takes nothing: returns LC_READY once a ticket is
 * dispatchable, LC_NONE at the timeout, LC_ERR_STOPPED after lc_stop. The
 * caller then takes it with lc_try_next (or lc_wait_next with timeout 0),
 * which finds nothing if another thread took it first: then it waits again.
 * For wrappers whose threads must take a global lock before they can run
 * anything (Python's GIL): a worker woken while another thread holds that
 * lock would hold its ticket, unable to start it, while the thread holding
 * the lock (one finishing a command) could have started it at once. So the
 * ticket is taken only once the worker can run it. */
int lc_wait_ready(lc_engine *engine, int64_t timeout_ns);

/* lc_wait_ready for a worker that promises to try to take a ticket, with
 * lc_take_searched, after every LC_READY. Until it does, it counts as a
 * searcher: while there are at least as many searchers as pending tickets
 * (each will look), a ticket made ready wakes no other worker, so a submit
 * costs its caller no system call, and a worker calling this sleeps rather
 * than join the race (with timeout 0 it then returns LC_NONE). Mixing in
 * lc_wait_ready or lc_wait_next is fine; skipping the lc_take_searched is
 * not (tickets would wait for a worker nobody wakes). */
int lc_wait_ready_search(lc_engine *engine, int64_t timeout_ns);

/* Ends a search begun by lc_wait_ready_search's LC_READY: takes the next
 * ticket as lc_wait_next with timeout 0 (LC_DISPATCHED, LC_NONE if another
 * thread took it first, LC_ERR_STOPPED). */
int lc_take_searched(lc_engine *engine, lc_dispatch *out);

/* Ends one running ticket of the lane: frees its slot and wakes a worker.
 * outcome is an LC_OUTCOME_*; anything else gives LC_ERR_INVALID. */
int lc_complete(lc_engine *engine, uint32_t lane, int outcome);

/* lc_complete then lc_wait_next under one lock round trip: a worker's loop. */
int lc_complete_and_wait(lc_engine *engine, uint32_t lane, int outcome, int64_t timeout_ns,
                         lc_dispatch *out);

/* Two-step completion for wrappers that must resolve the caller's future
 * after the slot is freed (so stats never show a finished command as active)
 * but before a drain may return (so drain never returns with a result still
 * unset): lc_finish frees the slot and counts the ticket as settling;
 * lc_settle (or lc_settle_and_wait, a worker's loop) ends the settling.
 * lc_finish wakes nobody: the slot it frees is taken by the same worker's
 * lc_settle_and_wait, or lc_settle wakes a worker for it when the caller
 * takes no work itself. lc_wait_idle waits for settling tickets too. */
int lc_finish(lc_engine *engine, uint32_t lane, int outcome);
void lc_settle(lc_engine *engine);
int lc_settle_and_wait(lc_engine *engine, int64_t timeout_ns, lc_dispatch *out);

/* Timing for metrics, off by default. With max_samples > 0 the engine
 * records each start's queue wait (dispatch time minus enqueued_ns; 0 for a
 * claimed ticket) and each run time that lc_finish_timed is given, in a log
 * that grows as needed up to max_samples; past that, samples are dropped and
 * counted. The wrapper takes them in batches with lc_take_samples:
 * recording costs no call into the wrapper per command. Calling it again
 * (or with 0, which turns timing off) drops what is buffered. */
void lc_set_timing(lc_engine *engine, uint32_t max_samples);

/* lc_finish, and with timing on and run_ns >= 0 a run time sample of
 * run_ns (the caller times the command itself, so the sample covers its
 * code and none of the wrapper's bookkeeping). Returns LC_SAMPLES_DUE
 * instead of LC_OK when the samples should be taken: 16,384 are buffered,
 * or a second has passed since the last take. */
int lc_finish_timed(lc_engine *engine, uint32_t lane, int outcome, int64_t run_ns);

/* Samples buffered now. */
uint32_t lc_samples_buffered(lc_engine *engine);

/* Moves the oldest min(buffered, out_cap) samples into out_ms
 * (milliseconds), grouped by lane and kind, described by runs in order;
 * returns the number of runs (call again while samples are left).
 * runs_cap must be at least twice the lane count (else LC_ERR_INVALID,
 * nothing taken). *dropped (if not NULL) receives the samples lost to a full
 * log since the last take. */
int lc_take_samples(lc_engine *engine, double *out_ms, uint32_t out_cap, lc_sample_run *runs,
                    uint32_t runs_cap, uint64_t *dropped);

/* Changes the worker budget (0 = unbounded); LC_ERR_BUDGET if the lanes'
 * reservations would not fit. */
int lc_set_workers(lc_engine *engine, uint32_t workers);

/* Removes a pending or delayed ticket; returns 1 if found, 0 if not. */
int lc_cancel(lc_engine *engine, uint32_t lane, uint64_t ticket);

/* A paused lane keeps accepting tickets but dispatches none. */
int lc_pause(lc_engine *engine, uint32_t lane);
int lc_resume(lc_engine *engine, uint32_t lane);

int lc_read_lane_stats(lc_engine *engine, uint32_t lane, lc_lane_stats *out);
void lc_totals(lc_engine *engine, uint64_t *pending, uint64_t *active);
/* Tickets waiting in the lane's FIFO (0 for an unknown lane): cheap enough
 * for a check after every submit. */
uint64_t lc_lane_pending(lc_engine *engine, uint32_t lane);

/* Blocks until no ticket is pending, active or settling (returns 1) or the timeout
 * passes (returns 0). timeout_ns < 0 waits forever. */
int lc_wait_idle(lc_engine *engine, int64_t timeout_ns);

/* Makes every current and future wait return LC_ERR_STOPPED. Pending tickets
 * stay where they are; lc_try_next keeps working. */
void lc_stop(lc_engine *engine);

uint64_t lc_now_ns(void);

/* cffi:end */

#ifdef __cplusplus
}
#endif

#endif /* LANE_CORE_H */
