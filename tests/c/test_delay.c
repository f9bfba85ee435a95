/*
 * test_delay.c — delayed tickets: lc_submit_at, lc_retry_at with
 * LC_OUTCOME_RETRIED, lc_next_wake_ns, promotion by lc_try_next's now_ns and
 * by a sleeping worker, cancel of a delayed ticket, and idleness.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>

#include "check.h"
#include "waiter.h"

#define HOUR (3600LL * 1000 * MS)

static void test_submit_at_waits_for_due_time(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 5), 0);
    CHECK_EQ(lc_next_wake_ns(e), 0);
    uint64_t due = lc_now_ns() + HOUR;
    CHECK_EQ(lc_submit_at(e, 0, 7, due), LC_OK);
    CHECK_EQ(lc_next_wake_ns(e), due);
    lc_lane_stats s = stats_of(e, 0);
    CHECK_EQ(s.delayed, 1);
    CHECK_EQ(s.pending, 0);
    CHECK_EQ(s.submitted, 1);
    CHECK_BALANCED(e, 0);

    lc_dispatch d;
    CHECK_EQ(lc_try_next(e, due - 1, &d), LC_NONE);
    CHECK_EQ(lc_try_next(e, 0, &d), LC_NONE); /* 0 = the real clock: not due */
    CHECK_EQ(lc_try_next(e, due, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 7);
    CHECK_EQ(lc_next_wake_ns(e), 0);
    s = stats_of(e, 0);
    CHECK_EQ(s.delayed, 0);
    CHECK_EQ(s.active, 1);
    lc_engine_free(e);
}

static void test_submit_at_in_the_past_is_a_submit(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 5), 0);
    CHECK_EQ(lc_submit_at(e, 0, 1, 1), LC_OK); /* long ago */
    CHECK_EQ(stats_of(e, 0).pending, 1);
    CHECK_EQ(stats_of(e, 0).delayed, 0);
    CHECK_EQ(lc_next_wake_ns(e), 0);
    EXPECT_NEXT(e, 0, 1);
    CHECK_EQ(lc_submit_at(e, 9, 1, 1), LC_ERR_NO_LANE);
    CHECK_EQ(lc_retry_at(e, 9, 1, 1), LC_ERR_NO_LANE);
    lc_engine_free(e);
}

/* A due ticket joins the back of its lane: behind what was already queued,
 * and due tickets of one lane in order of due time. */
static void test_due_tickets_join_the_back_in_due_order(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 5), 0);
    uint64_t t0 = lc_now_ns() + HOUR;
    CHECK_EQ(lc_submit_at(e, 0, 102, t0 + 2), LC_OK);
    CHECK_EQ(lc_submit_at(e, 0, 101, t0 + 1), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 1, 0), LC_OK);
    CHECK_EQ(lc_next_wake_ns(e), t0 + 1);
    lc_dispatch d;
    CHECK_EQ(lc_try_next(e, t0 + 5, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 1);
    CHECK_EQ(lc_try_next(e, t0 + 5, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 101);
    CHECK_EQ(lc_try_next(e, t0 + 5, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 102);
    lc_engine_free(e);
}

static void test_cancel_delayed_ticket(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 5), 0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 5), 1);
    uint64_t due = lc_now_ns() + HOUR;
    CHECK_EQ(lc_submit_at(e, 0, 5, due), LC_OK);
    CHECK_EQ(lc_wait_idle(e, 10 * MS), 0); /* a delayed ticket is work */
    CHECK_EQ(lc_cancel(e, 1, 5), 0);       /* other lane */
    CHECK_EQ(lc_cancel(e, 0, 5), 1);
    CHECK_EQ(lc_cancel(e, 0, 5), 0);
    lc_lane_stats s = stats_of(e, 0);
    CHECK_EQ(s.delayed, 0);
    CHECK_EQ(s.cancelled, 1);
    CHECK_BALANCED(e, 0);
    CHECK_EQ(lc_next_wake_ns(e), 0);
    CHECK_EQ(lc_wait_idle(e, 0), 1);
    lc_dispatch d;
    CHECK_EQ(lc_try_next(e, due, &d), LC_NONE);
    lc_engine_free(e);
}

/* The retry protocol: finish the attempt as RETRIED, schedule the retry,
 * settle. Only `retried` moves; the ticket is dispatched again later. */
static void test_retry_cycle(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    CHECK_EQ(lc_submit(e, 0, 3, 10), LC_OK);
    EXPECT_NEXT(e, 0, 3);
    CHECK_EQ(lc_finish(e, 0, LC_OUTCOME_RETRIED), LC_OK);
    uint64_t due = lc_now_ns() + HOUR;
    CHECK_EQ(lc_retry_at(e, 0, 3, due), LC_OK);
    lc_settle(e);
    lc_lane_stats s = stats_of(e, 0);
    CHECK_EQ(s.submitted, 1);
    CHECK_EQ(s.retried, 1);
    CHECK_EQ(s.delayed, 1);
    CHECK_EQ(s.active, 0);
    CHECK_EQ(s.completed + s.failed + s.cancelled, 0);
    CHECK_BALANCED(e, 0);
    CHECK_EQ(lc_wait_idle(e, 10 * MS), 0);

    lc_dispatch d;
    CHECK_EQ(lc_try_next(e, due, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 3);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_FAILED), LC_OK);
    s = stats_of(e, 0);
    CHECK_EQ(s.dispatched, 2);
    CHECK_EQ(s.failed, 1);
    CHECK_BALANCED(e, 0);

    /* A retry due now is queued at once, behind what is pending. */
    CHECK_EQ(lc_submit(e, 0, 4, 20), LC_OK);
    EXPECT_NEXT(e, 0, 4);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_RETRIED), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 5, 30), LC_OK);
    CHECK_EQ(lc_retry_at(e, 0, 4, 0), LC_OK);
    CHECK_EQ(stats_of(e, 0).pending, 2);
    EXPECT_NEXT(e, 0, 5);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    EXPECT_NEXT(e, 0, 4);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    s = stats_of(e, 0);
    CHECK_EQ(s.retried, 2);
    CHECK_EQ(s.completed, 2);
    CHECK_BALANCED(e, 0);
    CHECK_EQ(lc_wait_idle(e, 0), 1);
    lc_engine_free(e);
}

/* A worker asleep with no deadline wakes by itself when a delayed ticket
 * falls due: no other thread has to poll. */
static void test_sleeping_worker_wakes_at_due_time(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 5), 0);
    waiter w;
    waiter_start(&w, e, LONG_WAIT);
    sleep_ms(20); /* asleep before the delayed submit */
    uint64_t start = lc_now_ns();
    CHECK_EQ(lc_submit_at(e, 0, 8, start + 80 * MS), LC_OK);
    waiter_join(&w);
    uint64_t woke = lc_now_ns();
    CHECK_EQ(w.rc, LC_DISPATCHED);
    CHECK_EQ(w.got.ticket, 8);
    CHECK(woke - start >= 75 * MS); /* not before it was due */
    lc_engine_free(e);
}

/* A due retry is already waiting: an inline claim on its lane must queue. */
static void test_claim_does_not_jump_due_retry(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 5), 0);
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_RETRIED), LC_OK);
    CHECK_EQ(lc_retry_at(e, 0, 1, lc_now_ns() + 20 * MS), LC_OK);
    sleep_ms(40);
    CHECK_EQ(lc_submit_or_claim(e, 0, 2, 0), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    EXPECT_NEXT(e, 0, 2);
    lc_engine_free(e);
}

static void test_wait_idle_woken_by_cancel_of_delayed(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 5), 0);
    CHECK_EQ(lc_submit_at(e, 0, 6, lc_now_ns() + HOUR), LC_OK);
    delayed_cancel dc = {e, 6};
    pthread_t th;
    uint64_t t0 = lc_now_ns();
    CHECK_EQ(pthread_create(&th, NULL, cancel_later, &dc), 0);
    CHECK_EQ(lc_wait_idle(e, LONG_WAIT), 1);
    CHECK(lc_now_ns() - t0 < LONG_WAIT / 2);
    CHECK_EQ(pthread_join(th, NULL), 0);
    lc_engine_free(e);
}

int main(void)
{
    test_submit_at_waits_for_due_time();
    test_submit_at_in_the_past_is_a_submit();
    test_due_tickets_join_the_back_in_due_order();
    test_cancel_delayed_ticket();
    test_retry_cycle();
    test_sleeping_worker_wakes_at_due_time();
    test_claim_does_not_jump_due_retry();
    test_wait_idle_woken_by_cancel_of_delayed();
    puts("test_delay: ok");
    return 0;
}
