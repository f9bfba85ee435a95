/*
 * test_many_lanes.c — 10,000 lanes with mixed priorities: dispatch order is by
 * priority then submission order, caps hold, and counters add up.
 */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"

enum { LANES = 10000, PER_LANE = 3, PRIORITIES = 97 };

/* Spreads priorities so neighbouring lanes differ. */
static int32_t priority_of(uint32_t lane) { return (int32_t)((lane * 7919u) % PRIORITIES); }

static void test_ten_thousand_lanes(void)
{
    lc_engine *e = lc_engine_new(0);
    for (uint32_t lane = 0; lane < LANES; lane++)
        CHECK_EQ(lc_lane_add(e, priority_of(lane), 0, 2), (int)lane);
    CHECK_EQ(lc_lane_count(e), LANES);

    /* Round-robin submission: ticket = k * LANES + lane, so a smaller ticket
     * number means submitted earlier. */
    uint64_t now = 0;
    for (uint64_t k = 0; k < PER_LANE; k++)
        for (uint32_t lane = 0; lane < LANES; lane++)
            CHECK_EQ(lc_submit(e, lane, k * LANES + lane, ++now), LC_OK);

    /* Max 2 per lane: the first pass takes two tickets from every lane. */
    int32_t last_prio = -1;
    uint64_t last_ticket = 0;
    for (uint32_t i = 0; i < 2 * LANES; i++) {
        lc_dispatch d;
        CHECK_EQ(lc_try_next(e, now, &d), LC_DISPATCHED);
        CHECK_EQ(d.ticket % LANES, d.lane);
        int32_t prio = priority_of(d.lane);
        CHECK(prio >= last_prio);
        if (prio == last_prio)
            CHECK(d.ticket > last_ticket);
        last_prio = prio;
        last_ticket = d.ticket;
    }
    EXPECT_NOTHING(e);
    uint64_t pending = 0, active = 0;
    lc_totals(e, &pending, &active);
    CHECK_EQ(pending, LANES);
    CHECK_EQ(active, 2 * LANES);

    /* Completing in lane order frees one slot per lane; the third tickets
     * then go by priority again. */
    for (uint32_t lane = 0; lane < LANES; lane++)
        CHECK_EQ(lc_complete(e, lane, LC_OUTCOME_COMPLETED), LC_OK);
    last_prio = -1;
    for (uint32_t i = 0; i < LANES; i++) {
        lc_dispatch d;
        CHECK_EQ(lc_try_next(e, now, &d), LC_DISPATCHED);
        CHECK_EQ(d.ticket / LANES, 2);
        CHECK(priority_of(d.lane) >= last_prio);
        last_prio = priority_of(d.lane);
    }
    EXPECT_NOTHING(e);
    for (uint32_t lane = 0; lane < LANES; lane++) {
        CHECK_EQ(lc_complete(e, lane, LC_OUTCOME_COMPLETED), LC_OK);
        CHECK_EQ(lc_complete(e, lane, LC_OUTCOME_FAILED), LC_OK);
        lc_lane_stats s = stats_of(e, lane);
        CHECK_EQ(s.completed, 2);
        CHECK_EQ(s.failed, 1);
        CHECK_BALANCED(e, lane);
    }
    CHECK_EQ(lc_wait_idle(e, 0), 1);
    lc_engine_free(e);
}

/* One urgent ticket among 10,000 busy lanes is found at once. */
static void test_urgent_lane_among_many(void)
{
    lc_engine *e = lc_engine_new(0);
    for (uint32_t lane = 0; lane < LANES; lane++)
        CHECK_EQ(lc_lane_add(e, lane == 7777 ? 0 : 10, 0, 1), (int)lane);
    for (uint32_t lane = 0; lane < LANES; lane++)
        if (lane != 7777)
            CHECK_EQ(lc_submit(e, lane, lane, lane), LC_OK);
    EXPECT_NEXT(e, 0, 0);
    EXPECT_NEXT(e, 1, 1);
    CHECK_EQ(lc_submit(e, 7777, 424242, LANES), LC_OK);
    EXPECT_NEXT(e, 7777, 424242);
    EXPECT_NEXT(e, 2, 2);
    lc_engine_free(e);
}

int main(void)
{
    test_ten_thousand_lanes();
    test_urgent_lane_among_many();
    puts("test_many_lanes: ok");
    return 0;
}
