/*
 * test_claim.c — lc_submit_or_claim returns LC_RUN_INLINE only when the ticket
 * would be dispatched at once anyway: its lane is empty, not paused, below
 * max, the budget allows it and no more urgent lane is ready. Otherwise it
 * queues like lc_submit.
 */
#include <stdint.h>

#include "check.h"

static void test_claim_on_idle_engine_runs_inline(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 2), 0);
    CHECK_EQ(lc_submit_or_claim(e, 0, 1, 1), LC_RUN_INLINE);
    lc_lane_stats s = stats_of(e, 0);
    CHECK_EQ(s.active, 1); /* marked active: the caller owns it */
    CHECK_EQ(s.pending, 0);
    CHECK_EQ(s.submitted, 1);
    CHECK_EQ(s.dispatched, 1);
    CHECK_BALANCED(e, 0);
    EXPECT_NOTHING(e); /* never handed to a worker as well */
    /* Lane empty with a second free slot: inline again. */
    CHECK_EQ(lc_submit_or_claim(e, 0, 2, 2), LC_RUN_INLINE);
    /* Now at max: queued. */
    CHECK_EQ(lc_submit_or_claim(e, 0, 3, 3), LC_OK);
    CHECK_EQ(stats_of(e, 0).pending, 1);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    EXPECT_NEXT(e, 0, 3);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    CHECK_EQ(stats_of(e, 0).completed, 3);
    CHECK_BALANCED(e, 0);
    lc_engine_free(e);
}

static void test_claim_queues_behind_pending_in_same_lane(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 5), 0);
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    /* A free slot but the lane is not empty: FIFO says ticket 1 first. */
    CHECK_EQ(lc_submit_or_claim(e, 0, 2, 2), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    EXPECT_NEXT(e, 0, 2);
    lc_engine_free(e);
}

static void test_claim_yields_to_more_urgent_ready_lane(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 5), 0);
    CHECK_EQ(lc_lane_add(e, 5, 0, 5), 1);
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    CHECK_EQ(lc_submit_or_claim(e, 1, 2, 2), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    EXPECT_NEXT(e, 1, 2);
    lc_engine_free(e);
}

/* An equal-priority lane whose front ticket is older would be dispatched
 * first, so the claim must not jump it. */
static void test_claim_yields_to_older_equal_priority_lane(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 3, 0, 5), 0);
    CHECK_EQ(lc_lane_add(e, 3, 0, 5), 1);
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    CHECK_EQ(lc_submit_or_claim(e, 1, 2, 2), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    EXPECT_NEXT(e, 1, 2);
    lc_engine_free(e);
}

static void test_claim_ignores_less_urgent_or_blocked_lanes(void)
{
    lc_engine *e = lc_engine_new(0);
    const uint32_t urgent_capped = 0, mine = 1, paused = 2, lazy = 3;
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), urgent_capped);
    CHECK_EQ(lc_lane_add(e, 5, 0, 5), mine);
    CHECK_EQ(lc_lane_add(e, 1, 0, 5), paused);
    CHECK_EQ(lc_lane_add(e, 9, 0, 5), lazy);
    /* The more urgent lanes have pending tickets but cannot run them (one at
     * max, one paused); the less urgent one is ready but less urgent. */
    CHECK_EQ(lc_submit(e, urgent_capped, 1, 1), LC_OK);
    CHECK_EQ(lc_submit(e, urgent_capped, 2, 2), LC_OK);
    EXPECT_NEXT(e, urgent_capped, 1);
    CHECK_EQ(lc_pause(e, paused), LC_OK);
    CHECK_EQ(lc_submit(e, paused, 3, 3), LC_OK);
    CHECK_EQ(lc_submit(e, lazy, 4, 4), LC_OK);
    CHECK_EQ(lc_submit_or_claim(e, mine, 5, 5), LC_RUN_INLINE);
    CHECK_EQ(stats_of(e, mine).active, 1);
    EXPECT_NEXT(e, lazy, 4);
    EXPECT_NOTHING(e);
    lc_engine_free(e);
}

static void test_claim_queues_in_paused_lane(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 5), 0);
    CHECK_EQ(lc_pause(e, 0), LC_OK);
    CHECK_EQ(lc_submit_or_claim(e, 0, 1, 1), LC_OK);
    CHECK_EQ(stats_of(e, 0).pending, 1);
    CHECK_EQ(stats_of(e, 0).active, 0);
    lc_engine_free(e);
}

static void test_claim_queues_when_budget_spent(void)
{
    lc_engine *e = lc_engine_new(1);
    CHECK_EQ(lc_lane_add(e, 0, 0, 5), 0);
    CHECK_EQ(lc_submit_or_claim(e, 0, 1, 1), LC_RUN_INLINE);
    CHECK_EQ(lc_submit_or_claim(e, 0, 2, 2), LC_OK);
    CHECK_EQ(stats_of(e, 0).active, 1);
    CHECK_EQ(stats_of(e, 0).pending, 1);
    lc_engine_free(e);
}

static void test_claim_queues_when_last_worker_is_reserved(void)
{
    lc_engine *e = lc_engine_new(2);
    CHECK_EQ(lc_lane_add(e, 0, 0, 5), 0);
    CHECK_EQ(lc_lane_add(e, 5, 1, 1), 1);
    CHECK_EQ(lc_submit_or_claim(e, 0, 1, 1), LC_RUN_INLINE);
    CHECK_EQ(lc_submit_or_claim(e, 0, 2, 2), LC_OK);
    lc_engine_free(e);
}

/* workers=2, A(prio 0, min 0, max 5), B(prio 5, min 1, max 1). A runs one
 * ticket and has one pending that it may not start: the second worker is B's
 * reservation. A ticket submitted to B would be dispatched at once (lc_try_next
 * would pick it: A is not eligible), so lc_submit_or_claim must run it inline
 * although A is more urgent and has pending work. */
static void test_claim_by_lane_filling_its_reservation(void)
{
    lc_engine *e = lc_engine_new(2);
    CHECK_EQ(lc_lane_add(e, 0, 0, 5), 0);
    CHECK_EQ(lc_lane_add(e, 5, 1, 1), 1);
    CHECK_EQ(lc_submit_or_claim(e, 0, 1, 1), LC_RUN_INLINE);
    CHECK_EQ(lc_submit(e, 0, 2, 2), LC_OK);
    EXPECT_NOTHING(e); /* A's pending ticket is not ready */
    CHECK_EQ(lc_submit_or_claim(e, 1, 3, 3), LC_RUN_INLINE);
    CHECK_EQ(stats_of(e, 1).active, 1);
    EXPECT_NOTHING(e);
    lc_engine_free(e);
}

/* lc_try_claim: the same decision, but a refusal changes nothing at all. */
static void test_try_claim_changes_nothing_when_refused(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    CHECK_EQ(lc_lane_add(e, 1, 0, 1), 1);
    CHECK_EQ(lc_try_claim(e, 5), LC_ERR_NO_LANE);
    CHECK_EQ(lc_try_claim(e, 0), LC_RUN_INLINE);
    CHECK_EQ(stats_of(e, 0).active, 1);
    CHECK_EQ(stats_of(e, 0).submitted, 1);
    /* At max: refused, and no counter moves. */
    CHECK_EQ(lc_try_claim(e, 0), LC_NONE);
    lc_lane_stats s = stats_of(e, 0);
    CHECK_EQ(s.submitted, 1);
    CHECK_EQ(s.cancelled, 0);
    CHECK_EQ(s.pending, 0);
    /* A more urgent lane with pending work wins over a claim. */
    CHECK_EQ(lc_submit(e, 0, 7, 1), LC_OK);
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    CHECK_EQ(lc_try_claim(e, 1), LC_NONE);
    CHECK_EQ(stats_of(e, 1).submitted, 0);
    EXPECT_NEXT(e, 0, 7);
    CHECK_EQ(lc_try_claim(e, 1), LC_RUN_INLINE);
    lc_engine_free(e);
}

int main(void)
{
    test_try_claim_changes_nothing_when_refused();
    test_claim_on_idle_engine_runs_inline();
    test_claim_queues_behind_pending_in_same_lane();
    test_claim_yields_to_more_urgent_ready_lane();
    test_claim_yields_to_older_equal_priority_lane();
    test_claim_ignores_less_urgent_or_blocked_lanes();
    test_claim_queues_in_paused_lane();
    test_claim_queues_when_budget_spent();
    test_claim_queues_when_last_worker_is_reserved();
    test_claim_by_lane_filling_its_reservation();
    puts("test_claim: ok");
    return 0;
}
