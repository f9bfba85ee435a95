/*
 * test_threads.c — stress: 8 producer threads submit over 10 lanes while 4
 * worker threads loop on lc_complete_and_wait under a budget of 3 workers.
 * Racing the workers, producers also claim some tickets inline
 * (lc_submit_or_claim) and cancel some of their earlier tickets; some tickets
 * fail their first attempt and are retried after a short delay (lc_finish
 * with LC_OUTCOME_RETRIED, lc_retry_at, lc_settle / lc_settle_and_wait).
 *
 * Checked with atomics while running: a lane never runs more than its max,
 * the engine never runs more than the budget, a ticket comes out of the lane
 * it went into. Checked at the end: a retried ticket ran exactly twice; every
 * other ticket either ran once or was cancelled once, never both; every
 * counter balances.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"

#ifdef LANE_SANITIZED
#define TOTAL_TICKETS 100000 /* sanitizers are 5-20x slower; keep ctest short */
#else
#define TOTAL_TICKETS 200000
#endif

enum { LANES = 10, PRODUCERS = 8, WORKER_THREADS = 4, BUDGET = 3 };
enum { CLAIM_EVERY = 16, CANCEL_EVERY = 50, CANCEL_LAG = 20, RETRY_EVERY = 97 };
/* Producers hold back above this many pending tickets: a short queue makes
 * cancels race with dispatches and gives claims a chance to run inline. */
enum { MAX_BACKLOG = 64 };

#define PER_PRODUCER (TOTAL_TICKETS / PRODUCERS)
#define SECONDS 1000000000LL
#define RETRY_DELAY_NS 200000ull

typedef struct shared {
    lc_engine *engine;
    uint32_t max_of[LANES];
    atomic_int lane_active[LANES];
    atomic_int total_active;
    atomic_int peak_total_active;
    atomic_uchar *ran;       /* per ticket: attempts run */
    atomic_uchar *cancelled; /* per ticket: successful cancels */
    atomic_long cancels;
    atomic_long inline_runs;
} shared;

static shared S;

static uint32_t lane_of(uint64_t ticket) { return (uint32_t)(ticket % LANES); }
static int is_retried(uint64_t ticket) { return ticket % RETRY_EVERY == 5; }
static int outcome_of(uint64_t ticket)
{
    return ticket % 7 == 0 ? LC_OUTCOME_FAILED : LC_OUTCOME_COMPLETED;
}

/* What a worker does with a ticket; the counters are raised after the engine
 * handed it out and lowered before the engine hears of the end, so they never
 * overstate what the engine itself counts. Returns 1 when this attempt must
 * end as a retry. */
static int run_ticket(uint32_t lane, uint64_t ticket)
{
    CHECK(ticket < TOTAL_TICKETS);
    CHECK_EQ(lane, lane_of(ticket));
    int lane_now = atomic_fetch_add(&S.lane_active[lane], 1) + 1;
    int total_now = atomic_fetch_add(&S.total_active, 1) + 1;
    CHECK(lane_now <= (int)S.max_of[lane]);
    CHECK(total_now <= BUDGET);
    int peak = atomic_load(&S.peak_total_active);
    while (total_now > peak &&
           !atomic_compare_exchange_weak(&S.peak_total_active, &peak, total_now)) {
    }
    int before = atomic_fetch_add(&S.ran[ticket], 1);
    CHECK(before < (is_retried(ticket) ? 2 : 1));
    /* A little work, so that runs overlap and a broken cap would show. */
    for (volatile int spin = 0; spin < 300; spin++) {
    }
    if (ticket % 64 == 0)
        sched_yield();
    atomic_fetch_sub(&S.total_active, 1);
    atomic_fetch_sub(&S.lane_active[lane], 1);
    return is_retried(ticket) && before == 0;
}

/* Ends a first attempt as a retry; the caller then settles it. */
static void schedule_retry(uint32_t lane, uint64_t ticket)
{
    CHECK_EQ(lc_finish(S.engine, lane, LC_OUTCOME_RETRIED), LC_OK);
    CHECK_EQ(lc_retry_at(S.engine, lane, ticket, lc_now_ns() + RETRY_DELAY_NS), LC_OK);
}

static void *worker_main(void *arg)
{
    (void)arg;
    lc_dispatch d;
    int rc = lc_wait_next(S.engine, -1, &d);
    while (rc == LC_DISPATCHED) {
        uint32_t lane = d.lane;
        uint64_t ticket = d.ticket;
        if (run_ticket(lane, ticket)) {
            schedule_retry(lane, ticket);
            rc = lc_settle_and_wait(S.engine, -1, &d);
        } else {
            rc = lc_complete_and_wait(S.engine, lane, outcome_of(ticket), -1, &d);
        }
    }
    CHECK_EQ(rc, LC_ERR_STOPPED);
    return NULL;
}

static void hold_back_while_backlogged(void)
{
    uint64_t pending, active;
    for (lc_totals(S.engine, &pending, &active); pending > MAX_BACKLOG;
         lc_totals(S.engine, &pending, &active))
        sched_yield();
}

static void submit_one(uint64_t t)
{
    if (t % CLAIM_EVERY != 0) {
        CHECK_EQ(lc_submit(S.engine, lane_of(t), t, lc_now_ns()), LC_OK);
        return;
    }
    int rc = lc_submit_or_claim(S.engine, lane_of(t), t, lc_now_ns());
    CHECK(rc == LC_OK || rc == LC_RUN_INLINE);
    if (rc == LC_RUN_INLINE) {
        atomic_fetch_add(&S.inline_runs, 1);
        if (run_ticket(lane_of(t), t)) {
            schedule_retry(lane_of(t), t);
            lc_settle(S.engine);
        } else {
            CHECK_EQ(lc_complete(S.engine, lane_of(t), outcome_of(t)), LC_OK);
        }
    }
}

/* Cancels a ticket submitted a little earlier: it may or may not have been
 * dispatched by now, which is the race under test. Retried tickets are left
 * alone so that they run exactly twice. */
static void maybe_cancel_earlier(uint64_t t, uint64_t i)
{
    if (i < CANCEL_LAG || (t - CANCEL_LAG) % CANCEL_EVERY != 0)
        return;
    uint64_t victim = t - CANCEL_LAG;
    if (is_retried(victim))
        return;
    int rc = lc_cancel(S.engine, lane_of(victim), victim);
    CHECK(rc == 0 || rc == 1);
    if (rc == 1) {
        atomic_fetch_add(&S.cancelled[victim], 1);
        atomic_fetch_add(&S.cancels, 1);
    }
}

static void *producer_main(void *arg)
{
    uint64_t first = (uint64_t)(uintptr_t)arg * PER_PRODUCER;
    for (uint64_t i = 0; i < PER_PRODUCER; i++) {
        if (i % 16 == 0)
            hold_back_while_backlogged();
        submit_one(first + i);
        maybe_cancel_earlier(first + i, i);
    }
    return NULL;
}

static void check_final_state(void)
{
    long runs = 0, cancelled = 0, retried = 0, failed_expected = 0, ended = 0;
    for (uint64_t t = 0; t < TOTAL_TICKETS; t++) {
        int r = atomic_load(&S.ran[t]);
        int c = atomic_load(&S.cancelled[t]);
        int ok = is_retried(t) ? (r == 2 && c == 0) : (r + c == 1);
        if (!ok) {
            fprintf(stderr, "ticket %llu%s: ran %d times, cancelled %d times\n",
                    (unsigned long long)t, is_retried(t) ? " (retried)" : "", r, c);
            exit(1);
        }
        runs += r;
        cancelled += c;
        retried += is_retried(t);
        ended += r > 0;
        if (r && outcome_of(t) == LC_OUTCOME_FAILED)
            failed_expected++;
    }
    CHECK_EQ(cancelled, atomic_load(&S.cancels));

    uint64_t submitted = 0, dispatched = 0, completed = 0, failed = 0, cancel_sum = 0,
             retry_sum = 0;
    for (uint32_t lane = 0; lane < LANES; lane++) {
        lc_lane_stats s = stats_of(S.engine, lane);
        CHECK_EQ(s.pending, 0);
        CHECK_EQ(s.delayed, 0);
        CHECK_EQ(s.active, 0);
        CHECK_BALANCED(S.engine, lane);
        submitted += s.submitted;
        dispatched += s.dispatched;
        completed += s.completed;
        failed += s.failed;
        cancel_sum += s.cancelled;
        retry_sum += s.retried;
    }
    CHECK_EQ(submitted, TOTAL_TICKETS);
    CHECK_EQ(dispatched, runs);
    CHECK_EQ(cancel_sum, cancelled);
    CHECK_EQ(retry_sum, retried);
    CHECK_EQ(failed, failed_expected);
    CHECK_EQ(completed + failed, ended);
    uint64_t pending = 1, active = 1;
    lc_totals(S.engine, &pending, &active);
    CHECK_EQ(pending, 0);
    CHECK_EQ(active, 0);
}

int main(void)
{
    S.engine = lc_engine_new(BUDGET);
    CHECK(S.engine != NULL);
    for (uint32_t lane = 0; lane < LANES; lane++) {
        uint32_t min = lane < 2 ? 1 : 0; /* two reservations out of 3 workers */
        S.max_of[lane] = 1 + lane % 3;
        CHECK_EQ(lc_lane_add(S.engine, (int32_t)(lane % 4), min, S.max_of[lane]), (int)lane);
    }
    S.ran = calloc(TOTAL_TICKETS, sizeof *S.ran);
    S.cancelled = calloc(TOTAL_TICKETS, sizeof *S.cancelled);
    CHECK(S.ran != NULL && S.cancelled != NULL);

    uint64_t t0 = lc_now_ns();
    pthread_t workers[WORKER_THREADS], producers[PRODUCERS];
    for (int i = 0; i < WORKER_THREADS; i++)
        CHECK_EQ(pthread_create(&workers[i], NULL, worker_main, NULL), 0);
    for (uintptr_t i = 0; i < PRODUCERS; i++)
        CHECK_EQ(pthread_create(&producers[i], NULL, producer_main, (void *)i), 0);
    for (int i = 0; i < PRODUCERS; i++)
        CHECK_EQ(pthread_join(producers[i], NULL), 0);
    /* Delayed retries and settling tickets count as work: idle means done. */
    CHECK_EQ(lc_wait_idle(S.engine, 60 * SECONDS), 1);
    lc_stop(S.engine);
    for (int i = 0; i < WORKER_THREADS; i++)
        CHECK_EQ(pthread_join(workers[i], NULL), 0);
    double secs = (double)(lc_now_ns() - t0) / 1e9;

    check_final_state();
    printf("test_threads: ok: %d tickets in %.2f s, %ld cancelled, %ld run inline, "
           "peak %d of %d workers busy\n",
           TOTAL_TICKETS, secs, atomic_load(&S.cancels), atomic_load(&S.inline_runs),
           atomic_load(&S.peak_total_active), BUDGET);
    free(S.ran);
    free(S.cancelled);
    lc_engine_free(S.engine);
    return 0;
}
