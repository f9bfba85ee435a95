/*
 * test_wait.c — the blocking calls: lc_wait_next (timeout, wake-ups by submit,
 * complete and resume, lc_stop), lc_complete_and_wait and lc_wait_idle.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>

#include "check.h"
#include "waiter.h"

/* ---- tests --------------------------------------------------------------- */

static void test_wait_next_times_out(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    lc_dispatch d;
    uint64_t t0 = lc_now_ns();
    CHECK_EQ(lc_wait_next(e, 30 * MS, &d), LC_NONE);
    uint64_t waited = lc_now_ns() - t0;
    CHECK(waited >= 25 * MS); /* it did wait (a little slack for clock rounding) */
    CHECK(waited < 3000 * MS);
    /* Zero timeout: a poll. */
    CHECK_EQ(lc_wait_next(e, 0, &d), LC_NONE);
    /* Something pending but not dispatchable (lane at max) still times out. */
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 2, 2), LC_OK);
    CHECK_EQ(lc_wait_next(e, 10 * MS, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 1);
    CHECK_EQ(lc_wait_next(e, 10 * MS, &d), LC_NONE);
    lc_engine_free(e);
}

static void test_wait_next_woken_by_submit(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 4), 0);
    waiter w[3];
    for (int i = 0; i < 3; i++)
        waiter_start(&w[i], e, LONG_WAIT);
    sleep_ms(50); /* let them block */
    uint64_t t0 = lc_now_ns();
    /* Three submits must wake three waiters: no lost wake-ups. */
    for (uint64_t t = 1; t <= 3; t++)
        CHECK_EQ(lc_submit(e, 0, t, lc_now_ns()), LC_OK);
    uint64_t seen = 0;
    for (int i = 0; i < 3; i++) {
        waiter_join(&w[i]);
        CHECK_EQ(w[i].rc, LC_DISPATCHED);
        CHECK_EQ(w[i].got.lane, 0);
        CHECK(w[i].got.ticket >= 1 && w[i].got.ticket <= 3);
        seen |= 1u << w[i].got.ticket;
    }
    CHECK_EQ(seen, 0xE); /* tickets 1, 2, 3 once each */
    CHECK(lc_now_ns() - t0 < 2000 * MS);
    lc_engine_free(e);
}

static void test_wait_next_woken_by_complete(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 2, 2), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    waiter w;
    waiter_start(&w, e, LONG_WAIT); /* blocks: the lane is at max */
    sleep_ms(50);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    waiter_join(&w);
    CHECK_EQ(w.rc, LC_DISPATCHED);
    CHECK_EQ(w.got.ticket, 2);
    lc_engine_free(e);
}

/* The freed worker belongs to another lane than the one that completed. */
static void test_wait_next_woken_by_budget_freed_elsewhere(void)
{
    lc_engine *e = lc_engine_new(1);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    CHECK_EQ(lc_lane_add(e, 1, 0, 1), 1);
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    CHECK_EQ(lc_submit(e, 1, 2, 2), LC_OK);
    waiter w;
    waiter_start(&w, e, LONG_WAIT);
    sleep_ms(50);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    waiter_join(&w);
    CHECK_EQ(w.rc, LC_DISPATCHED);
    CHECK_EQ(w.got.lane, 1);
    CHECK_EQ(w.got.ticket, 2);
    lc_engine_free(e);
}

static void test_wait_next_woken_by_resume(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    CHECK_EQ(lc_pause(e, 0), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    waiter w;
    waiter_start(&w, e, LONG_WAIT);
    sleep_ms(50);
    CHECK_EQ(lc_resume(e, 0), LC_OK);
    waiter_join(&w);
    CHECK_EQ(w.rc, LC_DISPATCHED);
    CHECK_EQ(w.got.ticket, 1);
    lc_engine_free(e);
}

static void test_stop_wakes_waiters_and_sticks(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 2), 0);
    waiter w[2];
    waiter_start(&w[0], e, LONG_WAIT);
    waiter_start(&w[1], e, -1); /* forever: only lc_stop can end it */
    sleep_ms(50);
    uint64_t t0 = lc_now_ns();
    lc_stop(e);
    waiter_join(&w[0]);
    waiter_join(&w[1]);
    CHECK_EQ(w[0].rc, LC_ERR_STOPPED);
    CHECK_EQ(w[1].rc, LC_ERR_STOPPED);
    CHECK(lc_now_ns() - t0 < 2000 * MS);

    /* Future waits fail at once, even with work ready; the work stays. */
    lc_dispatch d;
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 2, 2), LC_OK);
    CHECK_EQ(lc_wait_next(e, -1, &d), LC_ERR_STOPPED);
    CHECK_EQ(stats_of(e, 0).pending, 2);
    /* lc_try_next keeps working. */
    EXPECT_NEXT(e, 0, 1);
    /* lc_complete_and_wait still completes, then reports the stop. */
    CHECK_EQ(lc_complete_and_wait(e, 0, LC_OUTCOME_FAILED, -1, &d), LC_ERR_STOPPED);
    lc_lane_stats s = stats_of(e, 0);
    CHECK_EQ(s.active, 0);
    CHECK_EQ(s.failed, 1);
    CHECK_EQ(s.pending, 1);
    lc_engine_free(e);
}

static void test_complete_and_wait(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    CHECK_EQ(lc_lane_add(e, 1, 0, 1), 1);
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 2, 2), LC_OK);
    CHECK_EQ(lc_submit(e, 1, 3, 3), LC_OK);
    lc_dispatch d;
    CHECK_EQ(lc_wait_next(e, 0, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 1);
    CHECK_EQ(lc_wait_next(e, 0, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 3); /* lane 0 at max */
    /* Completing lane 0 frees its slot; its next ticket comes straight back. */
    CHECK_EQ(lc_complete_and_wait(e, 0, LC_OUTCOME_COMPLETED, 0, &d), LC_DISPATCHED);
    CHECK_EQ(d.lane, 0);
    CHECK_EQ(d.ticket, 2);
    CHECK_EQ(d.enqueued_ns, 2);
    CHECK_EQ(lc_complete_and_wait(e, 1, LC_OUTCOME_FAILED, 10 * MS, &d), LC_NONE);
    CHECK_EQ(lc_complete_and_wait(e, 0, LC_OUTCOME_COMPLETED, 0, &d), LC_NONE);
    CHECK_EQ(lc_complete_and_wait(e, 0, LC_OUTCOME_COMPLETED, 0, &d), LC_ERR_NOT_ACTIVE);
    CHECK_EQ(lc_complete_and_wait(e, 7, LC_OUTCOME_COMPLETED, 0, &d), LC_ERR_NO_LANE);
    CHECK_EQ(stats_of(e, 0).completed, 2);
    CHECK_EQ(stats_of(e, 1).failed, 1);
    CHECK_BALANCED(e, 0);
    CHECK_BALANCED(e, 1);
    lc_engine_free(e);
}

/* ---- lc_wait_idle -------------------------------------------------------- */

typedef struct drainer {
    lc_engine *engine;
    long delay_ms;
} drainer;

/* Runs everything after a delay, the way a slow worker would. */
static void *drainer_main(void *arg)
{
    drainer *dr = arg;
    lc_dispatch d;
    sleep_ms(dr->delay_ms);
    while (lc_try_next(dr->engine, lc_now_ns(), &d) == LC_DISPATCHED) {
        sleep_ms(5);
        CHECK_EQ(lc_complete(dr->engine, d.lane, LC_OUTCOME_COMPLETED), LC_OK);
    }
    return NULL;
}

static void test_wait_idle(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    CHECK_EQ(lc_wait_idle(e, 0), 1); /* nothing at all: idle */
    CHECK_EQ(lc_wait_idle(e, -1), 1);

    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    uint64_t t0 = lc_now_ns();
    CHECK_EQ(lc_wait_idle(e, 30 * MS), 0); /* pending */
    CHECK(lc_now_ns() - t0 >= 25 * MS);
    EXPECT_NEXT(e, 0, 1);
    CHECK_EQ(lc_wait_idle(e, 10 * MS), 0); /* active */
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    CHECK_EQ(lc_wait_idle(e, 0), 1);

    /* Paused work is still work. */
    CHECK_EQ(lc_pause(e, 0), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 2, 2), LC_OK);
    CHECK_EQ(lc_wait_idle(e, 10 * MS), 0);
    CHECK_EQ(lc_resume(e, 0), LC_OK);

    for (uint64_t t = 3; t <= 5; t++)
        CHECK_EQ(lc_submit(e, 0, t, t), LC_OK);
    drainer dr = {e, 50};
    pthread_t th;
    t0 = lc_now_ns();
    CHECK_EQ(pthread_create(&th, NULL, drainer_main, &dr), 0);
    CHECK_EQ(lc_wait_idle(e, LONG_WAIT), 1);
    CHECK(lc_now_ns() - t0 < LONG_WAIT / 2); /* woken, not timed out */
    uint64_t pending = 1, active = 1;
    lc_totals(e, &pending, &active);
    CHECK_EQ(pending, 0);
    CHECK_EQ(active, 0);
    CHECK_EQ(stats_of(e, 0).completed, 5);
    CHECK_EQ(pthread_join(th, NULL), 0);
    lc_engine_free(e);
}

/* Cancelling the last pending ticket makes the engine idle: waiters return. */
static void test_wait_idle_woken_by_cancel(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    CHECK_EQ(lc_pause(e, 0), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 9, 1), LC_OK);
    delayed_cancel dc = {e, 9};
    pthread_t th;
    uint64_t t0 = lc_now_ns();
    CHECK_EQ(pthread_create(&th, NULL, cancel_later, &dc), 0);
    CHECK_EQ(lc_wait_idle(e, LONG_WAIT), 1);
    CHECK(lc_now_ns() - t0 >= 40 * MS);
    CHECK(lc_now_ns() - t0 < LONG_WAIT / 2); /* woken, not timed out */
    CHECK_EQ(pthread_join(th, NULL), 0);
    lc_engine_free(e);
}

int main(void)
{
    test_wait_next_times_out();
    test_wait_next_woken_by_submit();
    test_wait_next_woken_by_complete();
    test_wait_next_woken_by_budget_freed_elsewhere();
    test_wait_next_woken_by_resume();
    test_stop_wakes_waiters_and_sticks();
    test_complete_and_wait();
    test_wait_idle();
    test_wait_idle_woken_by_cancel();
    puts("test_wait: ok");
    return 0;
}
