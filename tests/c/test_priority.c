/*
 * test_priority.c — which lane goes first: lowest priority number, ties by
 * the age of the lane's front ticket, lanes at max_concurrency skipped, and
 * the global worker budget.
 */
#include <stdint.h>

#include "check.h"

static void test_lowest_priority_number_first(void)
{
    lc_engine *e = lc_engine_new(0);
    const int32_t prios[] = {30, 10, 20, 0};
    for (int i = 0; i < 4; i++)
        CHECK_EQ(lc_lane_add(e, prios[i], 0, 10), i);
    /* Submitted least urgent first, so age alone would give the wrong order. */
    for (uint32_t lane = 0; lane < 4; lane++)
        for (uint64_t k = 0; k < 2; k++)
            CHECK_EQ(lc_submit(e, lane, lane * 10 + k, lane * 2 + k), LC_OK);
    EXPECT_NEXT(e, 3, 30);
    EXPECT_NEXT(e, 3, 31);
    EXPECT_NEXT(e, 1, 10);
    EXPECT_NEXT(e, 1, 11);
    EXPECT_NEXT(e, 2, 20);
    EXPECT_NEXT(e, 2, 21);
    EXPECT_NEXT(e, 0, 0);
    EXPECT_NEXT(e, 0, 1);
    EXPECT_NOTHING(e);
    lc_engine_free(e);
}

/* A more urgent ticket that arrives later still goes before older ones. */
static void test_urgent_arrival_jumps_queue(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 5, 0, 10), 0);
    CHECK_EQ(lc_lane_add(e, 1, 0, 10), 1);
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 2, 2), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    CHECK_EQ(lc_submit(e, 1, 3, 3), LC_OK);
    EXPECT_NEXT(e, 1, 3);
    EXPECT_NEXT(e, 0, 2);
    lc_engine_free(e);
}

/* Equal priorities: the lane whose *front* ticket is oldest goes first, which
 * interleaves lanes in submission order. */
static void test_ties_by_front_ticket_age(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 2, 0, 10), 0);
    CHECK_EQ(lc_lane_add(e, 2, 0, 10), 1);
    CHECK_EQ(lc_lane_add(e, 2, 0, 10), 2);
    /* Submission order: c1 a1 b1 a2 c2 b2 (lane c is the highest index but
     * gets the first ticket, so lane order alone is wrong). */
    CHECK_EQ(lc_submit(e, 2, 31, 1), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 11, 2), LC_OK);
    CHECK_EQ(lc_submit(e, 1, 21, 3), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 12, 4), LC_OK);
    CHECK_EQ(lc_submit(e, 2, 32, 5), LC_OK);
    CHECK_EQ(lc_submit(e, 1, 22, 6), LC_OK);
    EXPECT_NEXT(e, 2, 31);
    EXPECT_NEXT(e, 0, 11);
    EXPECT_NEXT(e, 1, 21);
    EXPECT_NEXT(e, 0, 12);
    EXPECT_NEXT(e, 2, 32);
    EXPECT_NEXT(e, 1, 22);
    EXPECT_NOTHING(e);
    lc_engine_free(e);
}

/* The brief defines age as submission order; with every now_ns equal the
 * engine must still break ties that way, not by lane index. */
static void test_ties_by_submission_order_with_equal_clock(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 10), 0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 10), 1);
    CHECK_EQ(lc_submit(e, 1, 21, 500), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 11, 500), LC_OK);
    CHECK_EQ(lc_submit(e, 1, 22, 500), LC_OK);
    EXPECT_NEXT(e, 1, 21);
    EXPECT_NEXT(e, 0, 11);
    EXPECT_NEXT(e, 1, 22);
    lc_engine_free(e);
}

/* Cancelling a lane's front ticket makes its next ticket the front, with that
 * ticket's own (younger) age. */
static void test_tie_uses_new_front_after_cancel(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 1, 0, 10), 0);
    CHECK_EQ(lc_lane_add(e, 1, 0, 10), 1);
    CHECK_EQ(lc_submit(e, 0, 11, 1), LC_OK);
    CHECK_EQ(lc_submit(e, 1, 21, 2), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 12, 3), LC_OK);
    CHECK_EQ(lc_cancel(e, 0, 11), 1);
    EXPECT_NEXT(e, 1, 21);
    EXPECT_NEXT(e, 0, 12);
    lc_engine_free(e);
}

static void test_max_concurrency_caps_a_lane(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 2), 0); /* urgent but capped at 2 */
    CHECK_EQ(lc_lane_add(e, 9, 0, 5), 1);
    for (uint64_t t = 1; t <= 5; t++)
        CHECK_EQ(lc_submit(e, 0, t, t), LC_OK);
    CHECK_EQ(lc_submit(e, 1, 100, 6), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    EXPECT_NEXT(e, 0, 2);
    EXPECT_NEXT(e, 1, 100); /* lane 0 at max: the less urgent lane runs */
    EXPECT_NOTHING(e);
    CHECK_EQ(stats_of(e, 0).active, 2);
    CHECK_EQ(stats_of(e, 0).pending, 3);

    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    EXPECT_NEXT(e, 0, 3);
    EXPECT_NOTHING(e);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    EXPECT_NEXT(e, 0, 4);
    EXPECT_NEXT(e, 0, 5);
    EXPECT_NOTHING(e);
    lc_engine_free(e);
}

static void test_worker_budget(void)
{
    lc_engine *e = lc_engine_new(2);
    CHECK_EQ(lc_lane_add(e, 0, 0, 10), 0);
    CHECK_EQ(lc_lane_add(e, 1, 0, 10), 1);
    for (uint64_t t = 1; t <= 4; t++)
        CHECK_EQ(lc_submit(e, 1, 100 + t, t), LC_OK);
    EXPECT_NEXT(e, 1, 101);
    EXPECT_NEXT(e, 1, 102);
    EXPECT_NOTHING(e); /* max 10, but only 2 workers */

    /* A more urgent ticket waits for a worker too ... */
    CHECK_EQ(lc_submit(e, 0, 1, 10), LC_OK);
    EXPECT_NOTHING(e);
    /* ... and gets the first one freed, even by another lane. */
    CHECK_EQ(lc_complete(e, 1, LC_OUTCOME_COMPLETED), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    EXPECT_NOTHING(e);
    uint64_t pending = 0, active = 0;
    lc_totals(e, &pending, &active);
    CHECK_EQ(pending, 2);
    CHECK_EQ(active, 2);
    /* A failure frees the worker just the same. */
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_FAILED), LC_OK);
    EXPECT_NEXT(e, 1, 103);
    EXPECT_NOTHING(e);
    lc_engine_free(e);
}

int main(void)
{
    test_lowest_priority_number_first();
    test_urgent_arrival_jumps_queue();
    test_ties_by_front_ticket_age();
    test_ties_by_submission_order_with_equal_clock();
    test_tie_uses_new_front_after_cancel();
    test_max_concurrency_caps_a_lane();
    test_worker_budget();
    puts("test_priority: ok");
    return 0;
}
