/*
 * test_basics.c — lane creation, argument checking, error codes, FIFO inside a
 * lane, counters and totals.
 */
#include <stdint.h>

#include "check.h"

static void test_lane_indexes_and_count(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK(e != NULL);
    CHECK_EQ(lc_lane_count(e), 0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    CHECK_EQ(lc_lane_add(e, 7, 0, 4), 1);
    CHECK_EQ(lc_lane_add(e, 3, 2, 2), 2);
    CHECK_EQ(lc_lane_count(e), 3);

    lc_lane_stats s = stats_of(e, 1);
    CHECK_EQ(s.priority, 7);
    CHECK_EQ(s.min_concurrency, 0);
    CHECK_EQ(s.max_concurrency, 4);
    CHECK_EQ(s.paused, 0);
    CHECK_EQ(s.pending, 0);
    CHECK_EQ(s.active, 0);
    s = stats_of(e, 2);
    CHECK_EQ(s.priority, 3);
    CHECK_EQ(s.min_concurrency, 2);
    CHECK_EQ(s.max_concurrency, 2);
    lc_engine_free(e);
}

static void test_invalid_lane_arguments(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 0), LC_ERR_INVALID);  /* max 0 */
    CHECK_EQ(lc_lane_add(e, 0, 3, 2), LC_ERR_INVALID);  /* min > max */
    CHECK_EQ(lc_lane_add(e, -1, 0, 1), LC_ERR_INVALID); /* negative priority */
    CHECK_EQ(lc_lane_add(e, INT32_MIN, 0, 1), LC_ERR_INVALID);
    /* Rejected lanes take no index. */
    CHECK_EQ(lc_lane_count(e), 0);
    CHECK_EQ(lc_lane_add(e, 0, 1, 1), 0);
    /* With an unbounded budget (workers 0) minimums cannot exceed it. */
    CHECK_EQ(lc_lane_add(e, 0, 50, 50), 1);
    lc_engine_free(e);
}

static void test_min_sum_above_budget(void)
{
    lc_engine *e = lc_engine_new(3);
    CHECK_EQ(lc_lane_add(e, 0, 1, 2), 0);
    CHECK_EQ(lc_lane_add(e, 1, 2, 5), 1); /* mins sum to 3 == budget: fine */
    CHECK_EQ(lc_lane_add(e, 2, 1, 1), LC_ERR_BUDGET);
    CHECK_EQ(lc_lane_add(e, 2, 0, 9), 2); /* min 0 still fits; max may exceed workers */
    CHECK_EQ(lc_lane_count(e), 3);
    lc_engine_free(e);

    e = lc_engine_new(2);
    CHECK_EQ(lc_lane_add(e, 0, 3, 3), LC_ERR_BUDGET); /* one lane alone too big */
    CHECK_EQ(lc_lane_count(e), 0);
    lc_engine_free(e);
}

static void test_unknown_lane(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    lc_lane_stats s;
    CHECK_EQ(lc_submit(e, 1, 10, 0), LC_ERR_NO_LANE);
    CHECK_EQ(lc_submit(e, UINT32_MAX, 10, 0), LC_ERR_NO_LANE);
    CHECK_EQ(lc_submit_or_claim(e, 1, 10, 0), LC_ERR_NO_LANE);
    CHECK_EQ(lc_complete(e, 1, LC_OUTCOME_COMPLETED), LC_ERR_NO_LANE);
    CHECK_EQ(lc_cancel(e, 1, 10), LC_ERR_NO_LANE);
    CHECK_EQ(lc_pause(e, 1), LC_ERR_NO_LANE);
    CHECK_EQ(lc_resume(e, 1), LC_ERR_NO_LANE);
    CHECK_EQ(lc_read_lane_stats(e, 1, &s), LC_ERR_NO_LANE);
    /* A failed submit left nothing behind. */
    uint64_t pending = 99, active = 99;
    lc_totals(e, &pending, &active);
    CHECK_EQ(pending, 0);
    CHECK_EQ(active, 0);
    lc_engine_free(e);
}

static void test_complete_with_nothing_active(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 2), 0);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_ERR_NOT_ACTIVE);
    /* Pending is not active either. */
    CHECK_EQ(lc_submit(e, 0, 1, 0), LC_OK);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_FAILED), LC_ERR_NOT_ACTIVE);
    EXPECT_NEXT(e, 0, 1);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_ERR_NOT_ACTIVE);
    lc_lane_stats s = stats_of(e, 0);
    CHECK_EQ(s.completed, 1);
    CHECK_EQ(s.failed, 0);
    CHECK_EQ(s.active, 0);
    lc_engine_free(e);
}

static void test_fifo_inside_a_lane(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    /* Ticket values deliberately out of numeric order: FIFO is by arrival. */
    const uint64_t tickets[] = {42, 7, 1000000000000ull, 0, 7, 3};
    const int n = (int)(sizeof tickets / sizeof tickets[0]);
    for (int i = 0; i < n; i++)
        CHECK_EQ(lc_submit(e, 0, tickets[i], 100 + (uint64_t)i), LC_OK);
    for (int i = 0; i < n; i++) {
        lc_dispatch d = {0};
        CHECK_EQ(lc_try_next(e, 1000, &d), LC_DISPATCHED);
        CHECK_EQ(d.lane, 0);
        CHECK_EQ(d.ticket, tickets[i]);
        CHECK_EQ(d.enqueued_ns, 100 + (uint64_t)i); /* the submit's now_ns comes back */
        EXPECT_NOTHING(e);                           /* max 1: one at a time */
        CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    }
    EXPECT_NOTHING(e);
    lc_engine_free(e);
}

static void test_counters_balance(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 3), 0);
    CHECK_EQ(lc_lane_add(e, 1, 0, 3), 1);
    for (uint64_t t = 1; t <= 6; t++)
        CHECK_EQ(lc_submit(e, 0, t, t), LC_OK);
    CHECK_EQ(lc_submit(e, 1, 100, 7), LC_OK);

    EXPECT_NEXT(e, 0, 1);
    EXPECT_NEXT(e, 0, 2);
    EXPECT_NEXT(e, 0, 3);
    EXPECT_NEXT(e, 1, 100); /* lane 0 is at its max of 3 */
    CHECK_EQ(lc_cancel(e, 0, 5), 1);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_FAILED), LC_OK);
    CHECK_EQ(lc_complete(e, 1, LC_OUTCOME_FAILED), LC_OK);

    lc_lane_stats s = stats_of(e, 0);
    CHECK_EQ(s.submitted, 6);
    CHECK_EQ(s.dispatched, 3);
    CHECK_EQ(s.pending, 2); /* tickets 4 and 6 */
    CHECK_EQ(s.active, 1);
    CHECK_EQ(s.completed, 1);
    CHECK_EQ(s.failed, 1);
    CHECK_EQ(s.cancelled, 1);
    CHECK_BALANCED(e, 0);

    s = stats_of(e, 1);
    CHECK_EQ(s.submitted, 1);
    CHECK_EQ(s.dispatched, 1);
    CHECK_EQ(s.failed, 1);
    CHECK_EQ(s.completed, 0);
    CHECK_BALANCED(e, 1);

    uint64_t pending = 0, active = 0;
    lc_totals(e, &pending, &active);
    CHECK_EQ(pending, 2);
    CHECK_EQ(active, 1);

    EXPECT_NEXT(e, 0, 4);
    EXPECT_NEXT(e, 0, 6);
    lc_totals(e, &pending, &active);
    CHECK_EQ(pending, 0);
    CHECK_EQ(active, 3);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    s = stats_of(e, 0);
    CHECK_EQ(s.completed, 4);
    CHECK_EQ(s.dispatched, 5);
    CHECK_BALANCED(e, 0);
    lc_engine_free(e);
}

static void test_now_ns_is_monotonic(void)
{
    uint64_t a = lc_now_ns();
    uint64_t b = lc_now_ns();
    CHECK(a > 0);
    CHECK(b >= a);
}

int main(void)
{
    test_lane_indexes_and_count();
    test_invalid_lane_arguments();
    test_min_sum_above_budget();
    test_unknown_lane();
    test_complete_with_nothing_active();
    test_fifo_inside_a_lane();
    test_counters_balance();
    test_now_ns_is_monotonic();
    puts("test_basics: ok");
    return 0;
}
