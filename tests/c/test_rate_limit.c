/*
 * test_rate_limit.c — the per-lane token bucket (lc_lane_set_rate_limit):
 * a full bucket at the start, exactly the allowed number dispatched, refill
 * that keeps fractions of a token, no token spent by a lane that is idle,
 * full, paused or outranked (the original's R1), a throttled lane stepping
 * aside for less urgent lanes, lc_next_wake_ns and a sleeping lc_wait_next
 * at the next token, removing and replacing a limit, and the claim calls.
 *
 * Time is injected through lc_try_next's now_ns. lc_lane_set_rate_limit
 * seeds the bucket with lc_now_ns(), so every test reads its base time t0
 * right after configuring: the bucket is full at t0 and refills from there.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>

#include "check.h"
#include "waiter.h"

#define SEC (1000LL * MS)
#define HOUR (3600LL * SEC)
#define US 1000LL

/* Dispatches everything dispatchable at `now` (completing each at once, so
 * concurrency never limits) and returns how many went, all from `lane`. */
static int dispatch_all(lc_engine *e, uint32_t lane, uint64_t now)
{
    int n = 0;
    lc_dispatch d;
    while (lc_try_next(e, now, &d) == LC_DISPATCHED) {
        CHECK_EQ(d.lane, lane);
        CHECK_EQ(lc_complete(e, d.lane, LC_OUTCOME_COMPLETED), LC_OK);
        n++;
    }
    return n;
}

static void submit_n(lc_engine *e, uint32_t lane, uint64_t first_ticket, int n, uint64_t now)
{
    for (int i = 0; i < n; i++) CHECK_EQ(lc_submit(e, lane, first_ticket + (uint64_t)i, now), LC_OK);
}

/* The bucket starts full: a burst of max_commands goes at once, then the lane
 * is throttled until its next token, one window/max later. */
static void test_bucket_starts_full(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 100), 0);
    CHECK_EQ(lc_lane_set_rate_limit(e, 0, 5, 1 * SEC), LC_OK);
    uint64_t t0 = lc_now_ns();
    CHECK_EQ(lc_next_wake_ns(e), 0); /* a full bucket waits on nothing */
    submit_n(e, 0, 1, 10, t0);
    CHECK_EQ(stats_of(e, 0).throttled, 0);

    lc_dispatch d;
    for (uint64_t t = 1; t <= 5; t++) {
        CHECK_EQ(lc_try_next(e, t0, &d), LC_DISPATCHED);
        CHECK_EQ(d.ticket, t); /* FIFO inside the lane */
    }
    CHECK_EQ(lc_try_next(e, t0, &d), LC_NONE);
    lc_lane_stats s = stats_of(e, 0);
    CHECK_EQ(s.throttled, 1);
    CHECK_EQ(s.dispatched, 5);
    CHECK_EQ(s.pending, 5);
    CHECK_BALANCED(e, 0);

    /* The next token is due 200 ms after t0 (rounded up by at most 2 ns). */
    uint64_t wake = lc_next_wake_ns(e);
    CHECK(wake >= t0 + 200 * MS);
    CHECK(wake <= t0 + 200 * MS + 2);
    CHECK_EQ(lc_try_next(e, wake - 1, &d), LC_NONE);
    CHECK_EQ(lc_try_next(e, wake, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 6);
    CHECK_EQ(lc_try_next(e, wake, &d), LC_NONE); /* exactly one token earned */
    lc_engine_free(e);
}

/* 50 per second over 2 s, stepping the clock by 1 ms: 50 at once, then one
 * more every 20 ms, never more than the bucket allows. */
static void test_exactly_the_allowed_number(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1000), 0);
    CHECK_EQ(lc_lane_set_rate_limit(e, 0, 50, 1 * SEC), LC_OK);
    uint64_t t0 = lc_now_ns();
    submit_n(e, 0, 1, 500, t0);

    int total = dispatch_all(e, 0, t0);
    CHECK_EQ(total, 50);
    for (int ms = 1; ms <= 2000; ms++) {
        uint64_t now = t0 + (uint64_t)ms * MS;
        total += dispatch_all(e, 0, now);
        /* Token k of the refill falls due at k * 20 ms (plus rounding of a
         * few ns), so between two due times the count is exact. */
        if (ms % 20 == 10) CHECK_EQ(total, 50 + ms / 20);
        CHECK(total <= 50 + ms / 20);
    }
    CHECK(total >= 149 && total <= 150);
    total += dispatch_all(e, 0, t0 + 2 * SEC + 1 * MS);
    CHECK_EQ(total, 150);
    CHECK_EQ(stats_of(e, 0).pending, 350);
    CHECK_BALANCED(e, 0);
    lc_engine_free(e);
}

/* 3 per second: tokens every 333.33 ms after t0, whenever they are taken.
 * The original dropped the fraction of a token earned when it added whole
 * ones (R2), so a token taken at 500 ms pushed the next one to 833 ms. */
static void test_refill_keeps_fractions(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 100), 0);
    CHECK_EQ(lc_lane_set_rate_limit(e, 0, 3, 1 * SEC), LC_OK);
    uint64_t t0 = lc_now_ns();
    submit_n(e, 0, 1, 20, t0);
    CHECK_EQ(dispatch_all(e, 0, t0), 3);
    CHECK_EQ(dispatch_all(e, 0, t0 + 333 * MS), 0);
    /* At 500 ms the bucket holds 1.5 tokens: one goes, half a token stays. */
    CHECK_EQ(dispatch_all(e, 0, t0 + 500 * MS), 1);
    uint64_t wake = lc_next_wake_ns(e);
    CHECK(wake >= t0 + 666666666 && wake <= t0 + 666666669);
    CHECK_EQ(dispatch_all(e, 0, t0 + 666 * MS), 0);
    CHECK_EQ(dispatch_all(e, 0, t0 + 667 * MS), 1);
    CHECK_EQ(dispatch_all(e, 0, t0 + 999 * MS), 0);
    CHECK_EQ(dispatch_all(e, 0, t0 + 1000 * MS + 1 * US), 1);
    CHECK_EQ(dispatch_all(e, 0, t0 + 1333 * MS), 0);
    CHECK_EQ(dispatch_all(e, 0, t0 + 1334 * MS), 1);
    /* Taken as they come, up to 5 s: 3 at once plus 3 per second, not a
     * token less. */
    int more = 0;
    for (uint64_t t = 1340 * MS; t <= 5 * SEC; t += 10 * MS) more += dispatch_all(e, 0, t0 + t);
    more += dispatch_all(e, 0, t0 + 5 * SEC + 1 * US);
    CHECK_EQ(more, 3 + 15 - 7);
    CHECK_EQ(stats_of(e, 0).dispatched, 18);
    /* A full bucket holds 3, however long it waits. */
    submit_n(e, 0, 100, 5, t0 + 5 * SEC);
    CHECK_EQ(dispatch_all(e, 0, t0 + 100 * SEC), 3);
    CHECK_EQ(stats_of(e, 0).pending, 4);
    lc_engine_free(e);
}

/* An idle limited lane spends nothing, however many dispatches happen
 * elsewhere; after a long idle time the bucket holds max_commands, not more. */
static void test_idle_lane_spends_no_token(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 100), 0); /* limited, most urgent, idle */
    CHECK_EQ(lc_lane_add(e, 5, 0, 100), 1);
    CHECK_EQ(lc_lane_set_rate_limit(e, 0, 2, HOUR), LC_OK);
    uint64_t t0 = lc_now_ns();
    submit_n(e, 1, 100, 50, t0);
    for (int i = 0; i < 50; i++) {
        lc_dispatch d;
        CHECK_EQ(lc_try_next(e, t0 + (uint64_t)i * MS, &d), LC_DISPATCHED);
        CHECK_EQ(d.lane, 1);
        CHECK_EQ(lc_complete(e, 1, LC_OUTCOME_COMPLETED), LC_OK);
    }
    CHECK_EQ(lc_try_next(e, t0 + 60 * MS, &(lc_dispatch){0}), LC_NONE);
    CHECK_EQ(stats_of(e, 0).throttled, 0);
    submit_n(e, 0, 1, 5, t0 + 70 * MS);
    CHECK_EQ(dispatch_all(e, 0, t0 + 80 * MS), 2); /* the whole burst is still there */
    /* A day later the bucket is full again: 2 tokens, not 24 * 2. */
    CHECK_EQ(dispatch_all(e, 0, t0 + 24 * HOUR), 2);
    CHECK_EQ(stats_of(e, 0).pending, 1);
    lc_engine_free(e);
}

/* A full lane (active == max) is never picked, so it spends no token while
 * the engine is asked again and again; each freed slot spends one. */
static void test_full_lane_spends_no_token(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    CHECK_EQ(lc_lane_set_rate_limit(e, 0, 3, HOUR), LC_OK);
    uint64_t t0 = lc_now_ns();
    submit_n(e, 0, 1, 5, t0);
    lc_dispatch d;
    for (uint64_t t = 1; t <= 3; t++) {
        CHECK_EQ(lc_try_next(e, t0, &d), LC_DISPATCHED);
        CHECK_EQ(d.ticket, t);
        for (int i = 0; i < 100; i++) CHECK_EQ(lc_try_next(e, t0, &d), LC_NONE);
        CHECK_EQ(stats_of(e, 0).throttled, 0); /* full, not out of tokens */
        CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    }
    CHECK_EQ(lc_try_next(e, t0, &d), LC_NONE);
    CHECK_EQ(stats_of(e, 0).throttled, 1);
    CHECK_EQ(stats_of(e, 0).dispatched, 3);
    lc_engine_free(e);
}

/* A paused lane and a lane outranked by a more urgent one spend nothing
 * either: only the lane that would run takes a token. */
static void test_paused_or_outranked_lane_spends_no_token(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 100), 0);
    CHECK_EQ(lc_lane_add(e, 5, 0, 100), 1); /* limited, less urgent */
    CHECK_EQ(lc_lane_set_rate_limit(e, 1, 2, HOUR), LC_OK);
    uint64_t t0 = lc_now_ns();
    submit_n(e, 1, 100, 4, t0);
    CHECK_EQ(lc_pause(e, 1), LC_OK);
    for (int i = 0; i < 20; i++) EXPECT_NOTHING(e);
    CHECK_EQ(lc_resume(e, 1), LC_OK);
    submit_n(e, 0, 1, 30, t0 + 1);
    lc_dispatch d;
    for (uint64_t t = 1; t <= 30; t++) {
        CHECK_EQ(lc_try_next(e, t0 + 2, &d), LC_DISPATCHED);
        CHECK_EQ(d.lane, 0);
        CHECK_EQ(d.ticket, t);
    }
    CHECK_EQ(stats_of(e, 1).throttled, 0);
    CHECK_EQ(lc_try_next(e, t0 + 3, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 100);
    CHECK_EQ(lc_try_next(e, t0 + 3, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 101);
    CHECK_EQ(lc_try_next(e, t0 + 3, &d), LC_NONE);
    lc_engine_free(e);
}

/* A throttled lane steps aside: less urgent lanes run while it waits, and it
 * takes precedence again at its next token. Also under a worker budget. */
static void test_throttled_lane_does_not_block_others(void)
{
    for (uint32_t workers = 0; workers <= 1; workers++) {
        lc_engine *e = lc_engine_new(workers);
        CHECK_EQ(lc_lane_add(e, 0, 0, 10), 0);
        CHECK_EQ(lc_lane_add(e, 5, 0, 10), 1);
        CHECK_EQ(lc_lane_set_rate_limit(e, 0, 1, 1 * SEC), LC_OK);
        uint64_t t0 = lc_now_ns();
        submit_n(e, 0, 1, 3, t0);
        submit_n(e, 1, 100, 3, t0);
        lc_dispatch d;
        CHECK_EQ(lc_try_next(e, t0, &d), LC_DISPATCHED);
        CHECK_EQ(d.ticket, 1);
        CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
        for (uint64_t t = 100; t < 103; t++) {
            CHECK_EQ(lc_try_next(e, t0 + 10 * MS, &d), LC_DISPATCHED);
            CHECK_EQ(d.lane, 1);
            CHECK_EQ(d.ticket, t);
            CHECK_EQ(lc_complete(e, 1, LC_OUTCOME_COMPLETED), LC_OK);
        }
        CHECK_EQ(stats_of(e, 0).throttled, 1);
        CHECK_EQ(lc_try_next(e, t0 + 999 * MS, &d), LC_NONE);
        /* Its token: the urgent lane goes first again, ahead of new work. */
        submit_n(e, 1, 200, 1, t0 + 999 * MS);
        CHECK_EQ(lc_try_next(e, t0 + 1 * SEC + 1 * US, &d), LC_DISPATCHED);
        CHECK_EQ(d.lane, 0);
        CHECK_EQ(d.ticket, 2);
        CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
        CHECK_EQ(lc_try_next(e, t0 + 1 * SEC + 1 * US, &d), LC_DISPATCHED);
        CHECK_EQ(d.lane, 1);
        CHECK_EQ(d.ticket, 200);
        lc_engine_free(e);
    }
}

/* A throttled lane's reservation does not hold a worker: with a budget of 2
 * and both lanes reserving 1, the other lane still gets its worker, and the
 * throttled lane's worker is taken by nobody else. */
static void test_throttled_lane_with_reservations(void)
{
    lc_engine *e = lc_engine_new(2);
    CHECK_EQ(lc_lane_add(e, 0, 1, 2), 0);
    CHECK_EQ(lc_lane_add(e, 5, 1, 2), 1);
    CHECK_EQ(lc_lane_set_rate_limit(e, 0, 1, 1 * SEC), LC_OK);
    uint64_t t0 = lc_now_ns();
    submit_n(e, 0, 1, 3, t0);
    submit_n(e, 1, 100, 3, t0);
    lc_dispatch d;
    CHECK_EQ(lc_try_next(e, t0, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 1);
    CHECK_EQ(lc_try_next(e, t0, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 100);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    /* One worker free, lane 0's reservation unfilled but throttled: the
     * reserved worker stays free for lane 0. */
    CHECK_EQ(lc_try_next(e, t0 + 1 * MS, &d), LC_NONE);
    CHECK_EQ(lc_try_next(e, t0 + 1 * SEC + 1 * US, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 2);
    lc_engine_free(e);
}

/* lc_next_wake_ns: the earliest of the throttled lanes' next tokens and the
 * delayed tickets' due times; 0 once nothing waits on time. */
static void test_next_wake_reports_next_token(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 10), 0);
    CHECK_EQ(lc_lane_add(e, 1, 0, 10), 1);
    CHECK_EQ(lc_lane_add(e, 2, 0, 10), 2);
    CHECK_EQ(lc_lane_set_rate_limit(e, 0, 1, 1 * SEC), LC_OK);
    CHECK_EQ(lc_next_wake_ns(e), 0); /* limited, not throttled */
    lc_engine_free(e);

    /* Two lanes throttled and a delayed ticket. */
    e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 10), 0);
    CHECK_EQ(lc_lane_add(e, 1, 0, 10), 1);
    CHECK_EQ(lc_lane_add(e, 2, 0, 10), 2);
    CHECK_EQ(lc_lane_set_rate_limit(e, 0, 1, 10 * SEC), LC_OK);
    CHECK_EQ(lc_lane_set_rate_limit(e, 1, 4, 4 * SEC), LC_OK);
    uint64_t t0 = lc_now_ns();
    submit_n(e, 0, 1, 2, t0);
    submit_n(e, 1, 10, 5, t0);
    lc_dispatch d;
    int n = 0;
    while (lc_try_next(e, t0, &d) == LC_DISPATCHED) n++;
    CHECK_EQ(n, 1 + 4);
    CHECK_EQ(stats_of(e, 0).throttled, 1);
    CHECK_EQ(stats_of(e, 1).throttled, 1);
    uint64_t wake = lc_next_wake_ns(e); /* lane 1: 1 s; lane 0: 10 s */
    CHECK(wake >= t0 + 1 * SEC && wake <= t0 + 1 * SEC + 2);
    /* (due in the real future: lc_submit_at reads the clock) */
    CHECK_EQ(lc_submit_at(e, 2, 77, t0 + 500 * MS), LC_OK);
    CHECK_EQ(lc_next_wake_ns(e), t0 + 500 * MS);
    CHECK_EQ(lc_try_next(e, t0 + 500 * MS, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 77);
    CHECK_EQ(lc_next_wake_ns(e), wake);
    CHECK_EQ(lc_try_next(e, wake, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 14);
    /* Lane 1 is empty now and lane 0 still throttled until 10 s. */
    wake = lc_next_wake_ns(e);
    CHECK(wake >= t0 + 10 * SEC && wake <= t0 + 10 * SEC + 2);
    CHECK_EQ(lc_try_next(e, wake, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 2);
    CHECK_EQ(lc_next_wake_ns(e), 0);
    lc_engine_free(e);
}

/* A worker asleep in lc_wait_next (no timeout of its own) wakes by itself
 * at the throttled lane's next token: no other thread has to call in. */
static void test_sleeping_worker_wakes_at_next_token(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 10), 0);
    CHECK_EQ(lc_lane_set_rate_limit(e, 0, 1, 100 * MS), LC_OK);
    uint64_t start = lc_now_ns();
    CHECK_EQ(lc_submit(e, 0, 1, 0), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 2, 0), LC_OK);
    EXPECT_NEXT(e, 0, 1); /* the bucket is empty from here on */
    waiter w;
    waiter_start(&w, e, LONG_WAIT);
    waiter_join(&w);
    uint64_t woke = lc_now_ns();
    CHECK_EQ(w.rc, LC_DISPATCHED);
    CHECK_EQ(w.got.ticket, 2);
    CHECK(woke - start >= 100 * MS); /* not before the token */
    CHECK(w.waited_ns < 100 * MS + 1500 * MS); /* on time, give or take a loaded box */
    lc_engine_free(e);
}

/* A worker asleep with nothing to do is woken by a submit to an empty
 * bucket, finds the lane out of tokens, and sleeps again until the token. */
static void test_submit_to_empty_bucket_then_token(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 10), 0);
    CHECK_EQ(lc_lane_set_rate_limit(e, 0, 1, 150 * MS), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 1, 0), LC_OK);
    uint64_t spent = lc_now_ns();
    EXPECT_NEXT(e, 0, 1);
    waiter w;
    waiter_start(&w, e, LONG_WAIT);
    sleep_ms(20); /* asleep before the submit */
    CHECK_EQ(lc_submit(e, 0, 2, 0), LC_OK);
    waiter_join(&w);
    CHECK_EQ(w.rc, LC_DISPATCHED);
    CHECK_EQ(w.got.ticket, 2);
    CHECK(lc_now_ns() - spent >= 150 * MS);
    lc_engine_free(e);
}

/* max_commands 0 (or window 0) removes the limit: a lane throttled for an
 * hour runs everything at once, and a sleeping worker is woken for it. */
static void test_removing_the_limit_releases_the_lane(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 100), 0);
    CHECK_EQ(lc_lane_set_rate_limit(e, 0, 1, HOUR), LC_OK);
    uint64_t t0 = lc_now_ns();
    submit_n(e, 0, 1, 5, t0);
    CHECK_EQ(dispatch_all(e, 0, t0), 1);
    CHECK_EQ(stats_of(e, 0).throttled, 1);
    CHECK(lc_next_wake_ns(e) >= t0 + HOUR);
    CHECK_EQ(lc_lane_set_rate_limit(e, 0, 0, 1 * SEC), LC_OK);
    CHECK_EQ(stats_of(e, 0).throttled, 0);
    CHECK_EQ(lc_next_wake_ns(e), 0);
    CHECK_EQ(dispatch_all(e, 0, t0), 4);
    lc_engine_free(e);

    /* window 0, with a worker asleep meanwhile */
    e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 100), 0);
    CHECK_EQ(lc_lane_set_rate_limit(e, 0, 1, HOUR), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 1, 0), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 2, 0), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    waiter w;
    waiter_start(&w, e, LONG_WAIT);
    sleep_ms(20); /* asleep until the next token, an hour away */
    CHECK_EQ(lc_lane_set_rate_limit(e, 0, 5, 0), LC_OK);
    waiter_join(&w);
    CHECK_EQ(w.rc, LC_DISPATCHED);
    CHECK_EQ(w.got.ticket, 2);
    CHECK_EQ(lc_lane_set_rate_limit(e, 7, 5, SEC), LC_ERR_NO_LANE);
    CHECK_EQ(lc_lane_set_rate_limit(e, 7, 0, 0), LC_ERR_NO_LANE);
    lc_engine_free(e);
}

/* Setting a new limit starts a new, full bucket ("the bucket starting
 * full"), also on a lane that the old limit had throttled (until the old
 * limit's next token, an hour away here). */
static void test_new_limit_starts_full(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 100), 0);
    CHECK_EQ(lc_lane_set_rate_limit(e, 0, 1, HOUR), LC_OK);
    uint64_t t0 = lc_now_ns();
    submit_n(e, 0, 1, 10, t0);
    CHECK_EQ(dispatch_all(e, 0, t0), 1);
    CHECK_EQ(stats_of(e, 0).throttled, 1);
    CHECK_EQ(lc_lane_set_rate_limit(e, 0, 3, 1 * SEC), LC_OK);
    uint64_t t1 = lc_now_ns();
    CHECK_EQ(dispatch_all(e, 0, t1), 3);
    CHECK_EQ(dispatch_all(e, 0, t1 + 334 * MS), 1);
    lc_engine_free(e);
}

/* lc_try_claim and lc_submit_or_claim spend a token when they claim, and
 * never claim on a lane without one. */
static void test_claims_respect_the_bucket(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 10), 0);
    CHECK_EQ(lc_lane_set_rate_limit(e, 0, 2, HOUR), LC_OK);
    CHECK_EQ(lc_try_claim(e, 0), LC_RUN_INLINE);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    CHECK_EQ(lc_submit_or_claim(e, 0, 1, 0), LC_RUN_INLINE);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    CHECK_EQ(lc_try_claim(e, 0), LC_NONE);
    lc_lane_stats s = stats_of(e, 0);
    CHECK_EQ(s.submitted, 2);
    CHECK_EQ(s.dispatched, 2);
    CHECK_EQ(lc_submit_or_claim(e, 0, 2, 0), LC_OK); /* queued instead */
    CHECK_EQ(stats_of(e, 0).pending, 1);
    EXPECT_NOTHING(e);
    CHECK_EQ(stats_of(e, 0).throttled, 1);
    CHECK_EQ(lc_try_claim(e, 0), LC_NONE);
    CHECK_BALANCED(e, 0);
    lc_engine_free(e);
}

int main(void)
{
    test_bucket_starts_full();
    test_exactly_the_allowed_number();
    test_refill_keeps_fractions();
    test_idle_lane_spends_no_token();
    test_full_lane_spends_no_token();
    test_paused_or_outranked_lane_spends_no_token();
    test_throttled_lane_does_not_block_others();
    test_throttled_lane_with_reservations();
    test_next_wake_reports_next_token();
    test_sleeping_worker_wakes_at_next_token();
    test_submit_to_empty_bucket_then_token();
    test_removing_the_limit_releases_the_lane();
    test_claims_respect_the_bucket();
    test_new_limit_starts_full();
    puts("test_rate_limit: ok");
    return 0;
}
