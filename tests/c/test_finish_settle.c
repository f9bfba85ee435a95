/*
 * test_finish_settle.c — the two-step completion (lc_finish, lc_settle,
 * lc_settle_and_wait), the LC_OUTCOME_CANCELLED outcome, lc_set_workers and
 * now_ns 0 meaning "read the clock".
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>

#include "check.h"
#include "waiter.h"

static void test_finish_frees_slot_but_not_idle_until_settled(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    CHECK_EQ(lc_finish(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    lc_lane_stats s = stats_of(e, 0);
    CHECK_EQ(s.active, 0); /* stats never show a finished ticket as active */
    CHECK_EQ(s.completed, 1);
    uint64_t pending = 1, active = 1;
    lc_totals(e, &pending, &active);
    CHECK_EQ(pending, 0);
    CHECK_EQ(active, 0);
    CHECK_EQ(lc_wait_idle(e, 10 * MS), 0); /* still settling */
    lc_settle(e);
    CHECK_EQ(lc_wait_idle(e, 0), 1);
    lc_engine_free(e);
}

static void test_finish_errors_leave_nothing_settling(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    CHECK_EQ(lc_finish(e, 0, LC_OUTCOME_COMPLETED), LC_ERR_NOT_ACTIVE);
    CHECK_EQ(lc_finish(e, 3, LC_OUTCOME_COMPLETED), LC_ERR_NO_LANE);
    CHECK_EQ(lc_wait_idle(e, 0), 1);
    lc_engine_free(e);
}

/* The slot is free at lc_finish: the next ticket may start before settle.
 * lc_finish wakes nobody (the finishing worker takes the slot in
 * lc_settle_and_wait); lc_settle, whose caller takes no work, wakes a
 * sleeping worker for the pending ticket. */
static void test_finish_frees_the_slot_and_settle_wakes_a_worker(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 2, 2), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 3, 3), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    CHECK_EQ(lc_finish(e, 0, LC_OUTCOME_FAILED), LC_OK);
    EXPECT_NEXT(e, 0, 2); /* before settling ticket 1 */
    CHECK_EQ(stats_of(e, 0).failed, 1);
    CHECK_EQ(lc_wait_idle(e, 0), 0); /* 1 settling, 2 active, 3 pending */
    waiter w;
    waiter_start(&w, e, LONG_WAIT);
    sleep_ms(50);
    CHECK_EQ(lc_finish(e, 0, LC_OUTCOME_COMPLETED), LC_OK); /* ticket 2 */
    lc_settle(e);                                           /* wakes the waiter */
    waiter_join(&w);
    CHECK_EQ(w.rc, LC_DISPATCHED);
    CHECK_EQ(w.got.ticket, 3);
    lc_settle(e);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    CHECK_EQ(lc_wait_idle(e, 0), 1);
    lc_engine_free(e);
}

static void test_settle_and_wait(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 2, 2), LC_OK);
    lc_dispatch d;
    CHECK_EQ(lc_wait_next(e, 0, &d), LC_DISPATCHED);
    CHECK_EQ(lc_finish(e, d.lane, LC_OUTCOME_COMPLETED), LC_OK);
    CHECK_EQ(lc_settle_and_wait(e, 0, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 2);
    CHECK_EQ(lc_finish(e, d.lane, LC_OUTCOME_COMPLETED), LC_OK);
    CHECK_EQ(lc_settle_and_wait(e, 10 * MS, &d), LC_NONE);
    CHECK_EQ(lc_wait_idle(e, 0), 1);
    CHECK_EQ(stats_of(e, 0).completed, 2);
    lc_stop(e);
    CHECK_EQ(lc_settle_and_wait(e, -1, &d), LC_ERR_STOPPED);
    lc_engine_free(e);
}

typedef struct delayed_settle {
    lc_engine *engine;
    long delay_ms;
} delayed_settle;

static void *settle_later(void *arg)
{
    delayed_settle *ds = arg;
    sleep_ms(ds->delay_ms);
    lc_settle(ds->engine);
    return NULL;
}

static void test_wait_idle_woken_by_settle(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    CHECK_EQ(lc_finish(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    delayed_settle ds = {e, 50};
    pthread_t th;
    uint64_t t0 = lc_now_ns();
    CHECK_EQ(pthread_create(&th, NULL, settle_later, &ds), 0);
    CHECK_EQ(lc_wait_idle(e, LONG_WAIT), 1);
    CHECK(lc_now_ns() - t0 >= 40 * MS);
    CHECK(lc_now_ns() - t0 < LONG_WAIT / 2); /* woken, not timed out */
    CHECK_EQ(pthread_join(th, NULL), 0);
    lc_engine_free(e);
}

static void test_outcome_cancelled(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 2), 0);
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 2, 2), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 3, 3), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    EXPECT_NEXT(e, 0, 2);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_CANCELLED), LC_OK);
    CHECK_EQ(lc_cancel(e, 0, 3), 1);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    lc_lane_stats s = stats_of(e, 0);
    CHECK_EQ(s.cancelled, 2); /* one running, one pending */
    CHECK_EQ(s.completed, 1);
    CHECK_EQ(s.failed, 0);
    CHECK_EQ(s.dispatched, 2);
    CHECK_BALANCED(e, 0);
    lc_engine_free(e);
}

static void test_set_workers(void)
{
    lc_engine *e = lc_engine_new(1);
    CHECK_EQ(lc_lane_add(e, 0, 0, 10), 0);
    for (uint64_t t = 1; t <= 6; t++)
        CHECK_EQ(lc_submit(e, 0, t, t), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    EXPECT_NOTHING(e);

    CHECK_EQ(lc_set_workers(e, 3), LC_OK);
    EXPECT_NEXT(e, 0, 2);
    EXPECT_NEXT(e, 0, 3);
    EXPECT_NOTHING(e);

    /* Lowering below the running count: nothing starts until under it. */
    CHECK_EQ(lc_set_workers(e, 1), LC_OK);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    EXPECT_NOTHING(e);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    EXPECT_NOTHING(e);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    EXPECT_NEXT(e, 0, 4);

    /* 0 = unbounded: only the lane's max applies. */
    CHECK_EQ(lc_set_workers(e, 0), LC_OK);
    EXPECT_NEXT(e, 0, 5);
    EXPECT_NEXT(e, 0, 6);
    lc_engine_free(e);
}

static void test_set_workers_checks_reservations(void)
{
    lc_engine *e = lc_engine_new(4);
    CHECK_EQ(lc_lane_add(e, 0, 0, 5), 0);
    CHECK_EQ(lc_lane_add(e, 5, 2, 2), 1);
    CHECK_EQ(lc_set_workers(e, 1), LC_ERR_BUDGET);
    CHECK_EQ(lc_set_workers(e, 2), LC_OK); /* exactly the reservations */
    /* Budget 2, both reserved for lane 1: lane 0 gets nothing. */
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    EXPECT_NOTHING(e);
    /* After the refused change the budget must still be 2, not 1. */
    CHECK_EQ(lc_submit(e, 1, 2, 2), LC_OK);
    CHECK_EQ(lc_submit(e, 1, 3, 3), LC_OK);
    EXPECT_NEXT(e, 1, 2);
    EXPECT_NEXT(e, 1, 3);
    lc_engine_free(e);
}

static void test_set_workers_wakes_waiters(void)
{
    lc_engine *e = lc_engine_new(1);
    CHECK_EQ(lc_lane_add(e, 0, 0, 5), 0);
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 2, 2), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    waiter w;
    waiter_start(&w, e, LONG_WAIT); /* blocked by the budget */
    sleep_ms(50);
    CHECK_EQ(lc_set_workers(e, 2), LC_OK);
    waiter_join(&w);
    CHECK_EQ(w.rc, LC_DISPATCHED);
    CHECK_EQ(w.got.ticket, 2);
    lc_engine_free(e);
}

static void test_zero_now_reads_the_clock(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    uint64_t before = lc_now_ns();
    CHECK_EQ(lc_submit(e, 0, 1, 0), LC_OK);
    uint64_t after = lc_now_ns();
    lc_dispatch d;
    CHECK_EQ(lc_try_next(e, 0, &d), LC_DISPATCHED);
    CHECK(d.enqueued_ns >= before && d.enqueued_ns <= after);
    lc_engine_free(e);
}

int main(void)
{
    test_finish_frees_slot_but_not_idle_until_settled();
    test_finish_errors_leave_nothing_settling();
    test_finish_frees_the_slot_and_settle_wakes_a_worker();
    test_settle_and_wait();
    test_wait_idle_woken_by_settle();
    test_outcome_cancelled();
    test_set_workers();
    test_set_workers_checks_reservations();
    test_set_workers_wakes_waiters();
    test_zero_now_reads_the_clock();
    puts("test_finish_settle: ok");
    return 0;
}
