/*
 * test_reservation.c — min_concurrency as a reservation of the worker budget:
 * a lane above its minimum may not take the workers that other lanes'
 * unfilled minimums still need, even when those lanes have nothing pending.
 */
#include <stdint.h>

#include "check.h"

/* The case from the design: workers=3, A(prio 0, min 0, max 3) and
 * B(prio 5, min 1, max 1). */
static void test_reserved_worker_held_for_idle_lane(void)
{
    lc_engine *e = lc_engine_new(3);
    const uint32_t A = 0, B = 1;
    CHECK_EQ(lc_lane_add(e, 0, 0, 3), A);
    CHECK_EQ(lc_lane_add(e, 5, 1, 1), B);
    for (uint64_t t = 1; t <= 6; t++)
        CHECK_EQ(lc_submit(e, A, t, t), LC_OK);
    EXPECT_NEXT(e, A, 1);
    EXPECT_NEXT(e, A, 2);
    EXPECT_NOTHING(e); /* the third worker is B's, though B has nothing yet */

    /* B starts at once although A is more urgent and has 4 pending. */
    CHECK_EQ(lc_submit(e, B, 100, 10), LC_OK);
    EXPECT_NEXT(e, B, 100);
    EXPECT_NOTHING(e);

    /* A worker freed by A goes back to A (B is at its max of 1). */
    CHECK_EQ(lc_complete(e, A, LC_OUTCOME_COMPLETED), LC_OK);
    EXPECT_NEXT(e, A, 3);
    EXPECT_NOTHING(e);

    /* When B finishes, its reservation is unfilled again: A, already holding
     * 2 workers, may not take the third. */
    CHECK_EQ(lc_complete(e, B, LC_OUTCOME_COMPLETED), LC_OK);
    EXPECT_NOTHING(e);
    CHECK_EQ(stats_of(e, A).active, 2);
    CHECK_EQ(stats_of(e, A).pending, 3);
    lc_engine_free(e);
}

/* A lane below its own minimum uses its reservation; above it, it competes
 * for the unreserved workers only. */
static void test_lane_uses_own_reservation_first(void)
{
    lc_engine *e = lc_engine_new(4);
    const uint32_t A = 0, B = 1;
    CHECK_EQ(lc_lane_add(e, 0, 1, 4), A);
    CHECK_EQ(lc_lane_add(e, 5, 2, 2), B);
    for (uint64_t t = 1; t <= 5; t++)
        CHECK_EQ(lc_submit(e, A, t, t), LC_OK);
    /* 4 workers, B holds 2 in reserve: A gets its own 1 plus the 1 free. */
    EXPECT_NEXT(e, A, 1);
    EXPECT_NEXT(e, A, 2);
    EXPECT_NOTHING(e);
    CHECK_EQ(lc_submit(e, B, 101, 10), LC_OK);
    CHECK_EQ(lc_submit(e, B, 102, 11), LC_OK);
    CHECK_EQ(lc_submit(e, B, 103, 12), LC_OK);
    EXPECT_NEXT(e, B, 101);
    EXPECT_NEXT(e, B, 102);
    EXPECT_NOTHING(e); /* budget spent: 2 + 2 */
    lc_engine_free(e);
}

/* Two lanes with reservations and one without: the unreserved lane only ever
 * gets workers beyond both reservations. */
static void test_reservations_of_several_lanes(void)
{
    lc_engine *e = lc_engine_new(3);
    const uint32_t free_lane = 0, r1 = 1, r2 = 2;
    CHECK_EQ(lc_lane_add(e, 0, 0, 3), free_lane);
    CHECK_EQ(lc_lane_add(e, 1, 1, 3), r1);
    CHECK_EQ(lc_lane_add(e, 2, 1, 3), r2);
    for (uint64_t t = 1; t <= 3; t++) {
        CHECK_EQ(lc_submit(e, free_lane, t, t), LC_OK);
        CHECK_EQ(lc_submit(e, r1, 10 + t, 10 + t), LC_OK);
    }
    /* Reserved: r1 1, r2 1, so the free lane gets 1 worker; r1 then fills its
     * own reservation; the last worker stays r2's. */
    EXPECT_NEXT(e, free_lane, 1);
    EXPECT_NEXT(e, r1, 11);
    EXPECT_NOTHING(e);
    CHECK_EQ(lc_submit(e, r2, 21, 30), LC_OK);
    EXPECT_NEXT(e, r2, 21);
    EXPECT_NOTHING(e);
    /* r2 done: its worker is reserved again, for r2 alone. */
    CHECK_EQ(lc_complete(e, r2, LC_OUTCOME_COMPLETED), LC_OK);
    EXPECT_NOTHING(e);
    /* The free lane done: that worker is unreserved; most urgent wins. */
    CHECK_EQ(lc_complete(e, free_lane, LC_OUTCOME_COMPLETED), LC_OK);
    EXPECT_NEXT(e, free_lane, 2);
    EXPECT_NOTHING(e);
    lc_engine_free(e);
}

/* Without a worker budget (workers 0) minimums reserve nothing. */
static void test_unbounded_engine_ignores_minimums(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 3), 0);
    CHECK_EQ(lc_lane_add(e, 5, 2, 2), 1);
    for (uint64_t t = 1; t <= 4; t++)
        CHECK_EQ(lc_submit(e, 0, t, t), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    EXPECT_NEXT(e, 0, 2);
    EXPECT_NEXT(e, 0, 3);
    EXPECT_NOTHING(e);
    lc_engine_free(e);
}

int main(void)
{
    test_reserved_worker_held_for_idle_lane();
    test_lane_uses_own_reservation_first();
    test_reservations_of_several_lanes();
    test_unbounded_engine_ignores_minimums();
    puts("test_reservation: ok");
    return 0;
}
