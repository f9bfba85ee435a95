/*
 * test_boost.c — the deadline boost (lc_lane_set_boost): the effective
 * priority of each window of standard(d) and aggressive(d) just before and
 * just after each threshold, the top place once past the deadline, ties by
 * front age, reordering of lanes but never of tickets inside a lane, the
 * reserved heap under a worker budget, the claim calls against a boosted
 * rival, interplay with pause and rate limits, and invalid arguments.
 *
 * Time is injected: lc_submit's now_ns sets a ticket's enqueued_ns, and
 * lc_try_next's now_ns is the time of the pick, so a front ticket's age is
 * exact. The claim calls read the real clock, so those tests queue tickets
 * with enqueued_ns in the real past.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>

#include "check.h"
#include "waiter.h"

#define SEC (1000LL * MS)
#define T0 (1000ULL * SEC) /* injected base time */
#define D (1 * SEC)        /* the deadline most tests use */

typedef struct boost_cfg {
    uint64_t deadline;
    uint64_t before[9];
    int32_t amounts[9];
    uint32_t count;
} boost_cfg;

/* PriorityBoostConfig.standard(d): 1 at 75% of d left, 2 at 50%, 3 at 25%, 4 at 10%. */
static boost_cfg standard(uint64_t d)
{
    boost_cfg c = {d, {d * 3 / 4, d / 2, d / 4, d / 10}, {1, 2, 3, 4}, 4};
    return c;
}

/* PriorityBoostConfig.aggressive(d): 2 at 80% left, 4 at 60%, 6 at 40%, 8 at 20%. */
static boost_cfg aggressive(uint64_t d)
{
    boost_cfg c = {d, {d * 8 / 10, d * 6 / 10, d * 4 / 10, d * 2 / 10}, {2, 4, 6, 8}, 4};
    return c;
}

static void set_boost(lc_engine *e, uint32_t lane, const boost_cfg *c)
{
    CHECK_EQ(lc_lane_set_boost(e, lane, c->deadline, c->before, c->amounts, c->count), LC_OK);
}

/* One pick between a boosted lane (base priority `base`, its ticket queued
 * at T0) and a rival lane of priority `rival` whose ticket was queued just
 * after it (or just before it, with rival_older). 1 if the boosted lane's
 * ticket is dispatched first at T0 + age. */
static int boosted_goes_first(const boost_cfg *c, int32_t base, int32_t rival, int rival_older,
                              uint64_t age)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, base, 0, 1), 0);
    CHECK_EQ(lc_lane_add(e, rival, 0, 1), 1);
    set_boost(e, 0, c);
    if (rival_older) CHECK_EQ(lc_submit(e, 1, 2, T0), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 1, T0), LC_OK);
    if (!rival_older) CHECK_EQ(lc_submit(e, 1, 2, T0), LC_OK);
    lc_dispatch d;
    CHECK_EQ(lc_try_next(e, T0 + age, &d), LC_DISPATCHED);
    CHECK_EQ(d.enqueued_ns, T0);
    int first = d.lane == 0;
    lc_engine_free(e);
    return first;
}

/* The boosted lane's effective priority at `age`, as the engine orders it:
 * -1 if it beats an older priority-0 lane, otherwise the smallest rival
 * priority it beats when it holds the older ticket. Ties must go to the
 * older ticket, so at that priority it loses to an older rival. */
static int32_t priority_at(const boost_cfg *c, int32_t base, uint64_t age)
{
    if (boosted_goes_first(c, base, 0, 1, age)) return -1;
    for (int32_t p = 0; p <= base + 1; p++) {
        if (boosted_goes_first(c, base, p, 0, age)) {
            CHECK(!boosted_goes_first(c, base, p, 1, age)); /* tie: the older ticket */
            return p;
        }
    }
    return 1000;
}

#define CHECK_PRIORITY_AT(cfg, base, age, expected) \
    CHECK_EQ(priority_at(&(cfg), (base), (age)), (expected))

/* standard(1 s) on a base-5 lane: 5, then 4 from 250 ms of age (750 ms
 * left), 3 from 500 ms, 2 from 750 ms, 1 from 900 ms, top from 1 s. */
static void test_standard_windows(void)
{
    boost_cfg c = standard(D);
    CHECK_PRIORITY_AT(c, 5, 0, 5);
    CHECK_PRIORITY_AT(c, 5, 250 * MS - 1, 5);
    CHECK_PRIORITY_AT(c, 5, 250 * MS, 4);
    CHECK_PRIORITY_AT(c, 5, 500 * MS - 1, 4);
    CHECK_PRIORITY_AT(c, 5, 500 * MS, 3);
    CHECK_PRIORITY_AT(c, 5, 750 * MS - 1, 3);
    CHECK_PRIORITY_AT(c, 5, 750 * MS, 2);
    CHECK_PRIORITY_AT(c, 5, 900 * MS - 1, 2);
    CHECK_PRIORITY_AT(c, 5, 900 * MS, 1);
    CHECK_PRIORITY_AT(c, 5, D - 1, 1);
    CHECK_PRIORITY_AT(c, 5, D, -1);
    CHECK_PRIORITY_AT(c, 5, D + 1, -1);
    CHECK_PRIORITY_AT(c, 5, 3600 * SEC, -1);
    /* The floor is 0 before the deadline, -1 only past it. */
    CHECK_PRIORITY_AT(c, 2, 750 * MS, 0);
    CHECK_PRIORITY_AT(c, 2, D - 1, 0);
    CHECK_PRIORITY_AT(c, 0, D - 1, 0);
    CHECK_PRIORITY_AT(c, 0, D, -1);
}

/* aggressive(1 s) on a base-9 lane: 9, 7 from 200 ms, 5 from 400 ms, 3 from
 * 600 ms, 1 from 800 ms, top from 1 s; on a base-5 lane it floors at 0. */
static void test_aggressive_windows(void)
{
    boost_cfg c = aggressive(D);
    CHECK_PRIORITY_AT(c, 9, 0, 9);
    CHECK_PRIORITY_AT(c, 9, 200 * MS - 1, 9);
    CHECK_PRIORITY_AT(c, 9, 200 * MS, 7);
    CHECK_PRIORITY_AT(c, 9, 400 * MS - 1, 7);
    CHECK_PRIORITY_AT(c, 9, 400 * MS, 5);
    CHECK_PRIORITY_AT(c, 9, 600 * MS - 1, 5);
    CHECK_PRIORITY_AT(c, 9, 600 * MS, 3);
    CHECK_PRIORITY_AT(c, 9, 800 * MS - 1, 3);
    CHECK_PRIORITY_AT(c, 9, 800 * MS, 1);
    CHECK_PRIORITY_AT(c, 9, D - 1, 1);
    CHECK_PRIORITY_AT(c, 9, D, -1);
    CHECK_PRIORITY_AT(c, 5, 600 * MS, 0);
    CHECK_PRIORITY_AT(c, 5, D - 1, 0);
    CHECK_PRIORITY_AT(c, 5, D, -1);
}

/* Windows given in any order are sorted; of the windows reached the
 * narrowest wins (even with a smaller amount); a deadline with no windows
 * only lifts the lane once past it; a window wider than the deadline
 * applies from age 0. */
static void test_window_rules(void)
{
    boost_cfg c = {D, {100 * MS, 800 * MS}, {1, 5}, 2};
    CHECK_PRIORITY_AT(c, 6, 199 * MS, 6);
    CHECK_PRIORITY_AT(c, 6, 200 * MS, 1);
    CHECK_PRIORITY_AT(c, 6, 899 * MS, 1);
    CHECK_PRIORITY_AT(c, 6, 900 * MS, 5);
    CHECK_PRIORITY_AT(c, 6, D, -1);

    boost_cfg bare = {D, {0}, {0}, 0};
    CHECK_PRIORITY_AT(bare, 4, 0, 4);
    CHECK_PRIORITY_AT(bare, 4, D - 1, 4);
    CHECK_PRIORITY_AT(bare, 4, D, -1);

    boost_cfg wide = {D, {5 * SEC}, {2}, 1};
    CHECK_PRIORITY_AT(wide, 4, 0, 2);

    /* Eight windows, all used. */
    boost_cfg eight = {8 * SEC, {8 * SEC, 7 * SEC, 6 * SEC, 5 * SEC, 4 * SEC, 3 * SEC, 2 * SEC, 1 * SEC},
                       {1, 2, 3, 4, 5, 6, 7, 8}, 8};
    for (int32_t k = 1; k <= 8; k++) {
        uint64_t age = (uint64_t)(k - 1) * SEC; /* 8 - k + 1 seconds left */
        CHECK_PRIORITY_AT(eight, 10, age, 10 - k);
        if (k > 1) CHECK_PRIORITY_AT(eight, 10, age - 1, 10 - (k - 1));
    }
}

/* Past its deadline a lane goes above every other, even several priority-0
 * lanes holding older tickets. */
static void test_past_deadline_beats_priority_zero(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 10), 0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 10), 1);
    CHECK_EQ(lc_lane_add(e, 9, 0, 10), 2);
    boost_cfg c = standard(D);
    set_boost(e, 2, &c);
    CHECK_EQ(lc_submit(e, 0, 1, T0 - SEC), LC_OK);
    CHECK_EQ(lc_submit(e, 1, 2, T0 - SEC), LC_OK);
    CHECK_EQ(lc_submit(e, 2, 3, T0), LC_OK);
    lc_dispatch d;
    CHECK_EQ(lc_try_next(e, T0 + D - 1, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 1); /* 9 - 4 = 5: not yet */
    CHECK_EQ(lc_submit(e, 0, 4, T0 + D - 1), LC_OK);
    CHECK_EQ(lc_try_next(e, T0 + D, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 3);
    CHECK_EQ(lc_try_next(e, T0 + D, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 2);
    CHECK_EQ(lc_try_next(e, T0 + D, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 4);
    lc_engine_free(e);
}

/* Two boosted lanes at the same effective priority: the older front ticket
 * goes first, whatever the lane indexes; also when both are past due. */
static void test_ties_go_to_the_older_front(void)
{
    boost_cfg c = standard(D);
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 5, 0, 10), 0);
    CHECK_EQ(lc_lane_add(e, 5, 0, 10), 1);
    CHECK_EQ(lc_lane_add(e, 3, 0, 10), 2);
    set_boost(e, 0, &c);
    set_boost(e, 1, &c);
    CHECK_EQ(lc_submit(e, 1, 10, T0), LC_OK);            /* older, higher index */
    CHECK_EQ(lc_submit(e, 0, 20, T0 + 100 * MS), LC_OK);
    CHECK_EQ(lc_submit(e, 2, 30, T0 + 200 * MS), LC_OK); /* priority 3, newest */
    lc_dispatch d;
    /* At 600 ms: lane 1 (age 600 ms) and lane 0 (age 500 ms) are both at 3,
     * and so is lane 2: the oldest front wins, then the next oldest. */
    CHECK_EQ(lc_try_next(e, T0 + 600 * MS, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 10);
    CHECK_EQ(lc_try_next(e, T0 + 600 * MS, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 20);
    CHECK_EQ(lc_try_next(e, T0 + 600 * MS, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 30);

    /* Both past due: -1 each, older first. */
    CHECK_EQ(lc_submit(e, 1, 11, T0 + 1 * SEC), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 21, T0 + 1 * SEC + 1), LC_OK);
    CHECK_EQ(lc_submit(e, 2, 31, T0 + 1 * SEC), LC_OK);
    CHECK_EQ(lc_try_next(e, T0 + 5 * SEC, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 11);
    CHECK_EQ(lc_try_next(e, T0 + 5 * SEC, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 21);
    CHECK_EQ(lc_try_next(e, T0 + 5 * SEC, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 31);
    lc_engine_free(e);
}

/* Only the front ticket's age counts, and a lane's tickets keep their FIFO
 * order: an older ticket behind a young front neither lifts the lane nor
 * jumps the front. */
static void test_boost_reorders_lanes_not_tickets(void)
{
    boost_cfg c = standard(D);
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 5, 0, 10), 0);
    CHECK_EQ(lc_lane_add(e, 3, 0, 10), 1);
    set_boost(e, 0, &c);
    CHECK_EQ(lc_submit(e, 0, 1, T0 + 500 * MS), LC_OK); /* front, young */
    CHECK_EQ(lc_submit(e, 0, 2, T0), LC_OK);            /* behind it, old */
    CHECK_EQ(lc_submit(e, 1, 3, T0 + 600 * MS), LC_OK);
    lc_dispatch d;
    /* At 900 ms the front is 400 ms old: 5 - 1 = 4, behind lane 1's 3. */
    CHECK_EQ(lc_try_next(e, T0 + 900 * MS, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 3);
    CHECK_EQ(lc_try_next(e, T0 + 900 * MS, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 1);
    CHECK_EQ(lc_try_next(e, T0 + 900 * MS, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 2);

    /* An old front lifts the lane once; the young ticket behind it is then
     * judged by its own age. */
    CHECK_EQ(lc_submit(e, 0, 4, T0), LC_OK);
    CHECK_EQ(lc_submit(e, 1, 5, T0 + 1 * SEC), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 6, T0 + 1500 * MS), LC_OK);
    CHECK_EQ(lc_try_next(e, T0 + 2 * SEC, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 4); /* past due */
    /* Ticket 6 is 500 ms old: 5 - 2 = 3, tied with lane 1's older ticket. */
    CHECK_EQ(lc_try_next(e, T0 + 2 * SEC, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 5);
    CHECK_EQ(lc_try_next(e, T0 + 2 * SEC, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 6);
    lc_engine_free(e);
}

/* Under a worker budget down to reservations, picks come from the reserved
 * heap; a boosted lane filling its own reservation is ordered by its boost
 * there too, and one above its minimum never takes a reserved worker, even
 * past its deadline. */
static void test_boost_in_the_reserved_heap(void)
{
    boost_cfg c = standard(D);
    for (int late = 0; late <= 1; late++) {
        lc_engine *e = lc_engine_new(2);
        CHECK_EQ(lc_lane_add(e, 0, 1, 1), 0);
        CHECK_EQ(lc_lane_add(e, 5, 1, 1), 1);
        set_boost(e, 1, &c);
        CHECK_EQ(lc_submit(e, 1, 10, T0), LC_OK);
        CHECK_EQ(lc_submit(e, 0, 20, T0), LC_OK);
        lc_dispatch d;
        CHECK_EQ(lc_try_next(e, T0 + (late ? D : D - 1), &d), LC_DISPATCHED);
        CHECK_EQ(d.ticket, late ? 10 : 20);
        lc_engine_free(e);
    }

    lc_engine *e = lc_engine_new(3);
    CHECK_EQ(lc_lane_add(e, 3, 1, 2), 0);
    CHECK_EQ(lc_lane_add(e, 5, 1, 2), 1);
    CHECK_EQ(lc_lane_add(e, 9, 1, 1), 2);
    set_boost(e, 1, &c);
    CHECK_EQ(lc_submit(e, 1, 10, T0), LC_OK);
    lc_dispatch d;
    CHECK_EQ(lc_try_next(e, T0, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 10); /* lane 1's reservation is filled */
    CHECK_EQ(lc_submit(e, 1, 11, T0), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 20, T0 + 1 * SEC), LC_OK);
    CHECK_EQ(lc_try_next(e, T0 + 2 * SEC, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 20); /* lane 0 fills its reservation first */
    /* One worker left, reserved for lane 2: lane 1 stays out though past due. */
    CHECK_EQ(lc_try_next(e, T0 + 2 * SEC, &d), LC_NONE);
    CHECK_EQ(lc_submit(e, 2, 30, T0 + 2 * SEC), LC_OK);
    CHECK_EQ(lc_try_next(e, T0 + 2 * SEC, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 30);
    /* Lane 1's first ticket ends: its reservation is free again, and its
     * past-due ticket takes it. */
    CHECK_EQ(lc_complete(e, 1, LC_OUTCOME_COMPLETED), LC_OK);
    CHECK_EQ(lc_try_next(e, T0 + 2 * SEC, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 11);
    lc_engine_free(e);
}

/* A boosted lane that cannot run (paused, full, throttled) does not win,
 * and the rest keep going. */
static void test_boosted_lane_that_cannot_run(void)
{
    boost_cfg c = standard(D);
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 5, 0, 1), 0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 10), 1);
    set_boost(e, 0, &c);
    CHECK_EQ(lc_submit(e, 0, 1, T0), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 2, T0), LC_OK);
    CHECK_EQ(lc_submit(e, 1, 10, T0 + 1), LC_OK);
    CHECK_EQ(lc_submit(e, 1, 11, T0 + 1), LC_OK);
    CHECK_EQ(lc_pause(e, 0), LC_OK);
    lc_dispatch d;
    CHECK_EQ(lc_try_next(e, T0 + 2 * SEC, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 10);
    CHECK_EQ(lc_resume(e, 0), LC_OK);
    CHECK_EQ(lc_try_next(e, T0 + 2 * SEC, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 1);
    /* Full (max 1): ticket 2 waits although past due. */
    CHECK_EQ(lc_try_next(e, T0 + 2 * SEC, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 11);
    CHECK_EQ(lc_try_next(e, T0 + 2 * SEC, &d), LC_NONE);
    lc_engine_free(e);

    /* Throttled: one token an hour. */
    e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 5, 0, 10), 0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 10), 1);
    set_boost(e, 0, &c);
    CHECK_EQ(lc_lane_set_rate_limit(e, 0, 1, 3600 * SEC), LC_OK);
    uint64_t t0 = lc_now_ns();
    CHECK(t0 > 10 * SEC);
    CHECK_EQ(lc_submit(e, 0, 1, t0 - 5 * SEC), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 2, t0 - 5 * SEC), LC_OK);
    CHECK_EQ(lc_submit(e, 1, 10, t0), LC_OK);
    CHECK_EQ(lc_try_next(e, t0, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 1);
    CHECK_EQ(lc_try_next(e, t0, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 10);
    CHECK_EQ(lc_try_next(e, t0, &d), LC_NONE);
    CHECK_EQ(stats_of(e, 0).throttled, 1);
    lc_engine_free(e);
}

/* lc_try_claim and lc_submit_or_claim must not start a ticket ahead of a
 * boosted rival that the engine would dispatch first. They read the real
 * clock, so the rival's ticket is queued in the real past. */
static void test_claims_respect_a_boosted_rival(void)
{
    uint64_t now = lc_now_ns();
    if (now < 200 * SEC) {
        puts("test_claims_respect_a_boosted_rival: skipped (monotonic clock too young)");
        return;
    }
    /* standard(100 s), base 5; queued 80 s ago: 20 s left, boost 3, so 2
     * for the next 10 s. */
    boost_cfg c = standard(100 * SEC);
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 5, 0, 10), 0); /* boosted */
    CHECK_EQ(lc_lane_add(e, 2, 0, 10), 1);
    CHECK_EQ(lc_lane_add(e, 1, 0, 10), 2);
    CHECK_EQ(lc_lane_add(e, 3, 0, 10), 3);
    set_boost(e, 0, &c);
    CHECK_EQ(lc_try_claim(e, 1), LC_RUN_INLINE); /* nothing queued yet */
    CHECK_EQ(lc_complete(e, 1, LC_OUTCOME_COMPLETED), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 1, lc_now_ns() - 80 * SEC), LC_OK);
    CHECK_EQ(lc_try_claim(e, 3), LC_NONE);           /* 3 > 2 */
    CHECK_EQ(lc_try_claim(e, 1), LC_NONE);           /* 2 == 2, the rival is older */
    CHECK_EQ(lc_submit_or_claim(e, 1, 7, 0), LC_OK); /* queued behind it */
    CHECK_EQ(lc_try_claim(e, 2), LC_RUN_INLINE);     /* 1 < 2 */
    CHECK_EQ(lc_submit_or_claim(e, 2, 8, 0), LC_RUN_INLINE);
    EXPECT_NEXT(e, 0, 1);
    EXPECT_NEXT(e, 1, 7);
    CHECK_EQ(stats_of(e, 2).active, 2);
    lc_engine_free(e);

    /* Past due, it is above priority 0 too; young, it is just priority 5. */
    e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 5, 0, 10), 0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 10), 1);
    set_boost(e, 0, &c);
    CHECK_EQ(lc_submit(e, 0, 1, lc_now_ns()), LC_OK);
    CHECK_EQ(lc_try_claim(e, 1), LC_RUN_INLINE);
    lc_engine_free(e);

    e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 5, 0, 10), 0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 10), 1);
    set_boost(e, 0, &c);
    CHECK_EQ(lc_submit(e, 0, 1, lc_now_ns() - 101 * SEC), LC_OK);
    CHECK_EQ(lc_try_claim(e, 1), LC_NONE);
    CHECK_EQ(lc_submit_or_claim(e, 1, 2, 0), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    EXPECT_NEXT(e, 1, 2);
    lc_engine_free(e);
}

/* More than 8 windows or a negative amount is refused and leaves the lane's
 * boost as it was; an unknown lane is refused; deadline 0 removes it. */
static void test_invalid_arguments_and_removal(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 5, 0, 10), 0);
    CHECK_EQ(lc_lane_add(e, 2, 0, 10), 1);
    boost_cfg c = standard(D);
    set_boost(e, 0, &c);

    boost_cfg nine = {D, {9, 8, 7, 6, 5, 4, 3, 2, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 1}, 9};
    CHECK_EQ(lc_lane_set_boost(e, 0, nine.deadline, nine.before, nine.amounts, 9), LC_ERR_INVALID);
    boost_cfg negative = {D, {500 * MS, 100 * MS}, {1, -1}, 2};
    CHECK_EQ(lc_lane_set_boost(e, 0, D, negative.before, negative.amounts, 2), LC_ERR_INVALID);
    CHECK_EQ(lc_lane_set_boost(e, 9, D, c.before, c.amounts, c.count), LC_ERR_NO_LANE);
    CHECK_EQ(lc_lane_set_boost(e, 9, 0, NULL, NULL, 0), LC_ERR_NO_LANE);

    /* standard(1 s) still applies: at 750 ms the lane is at 2, tied with
     * lane 1, and holds the older ticket. */
    CHECK_EQ(lc_submit(e, 0, 1, T0), LC_OK);
    CHECK_EQ(lc_submit(e, 1, 2, T0), LC_OK);
    lc_dispatch d;
    CHECK_EQ(lc_try_next(e, T0 + 750 * MS, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 1);

    /* Removed: priority 5 again, even far past the old deadline. */
    CHECK_EQ(lc_lane_set_boost(e, 0, 0, NULL, NULL, 0), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 3, T0), LC_OK);
    CHECK_EQ(lc_try_next(e, T0 + 3600 * SEC, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 2);
    CHECK_EQ(lc_try_next(e, T0 + 3600 * SEC, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 3);

    /* Set again; removing it twice is fine. */
    set_boost(e, 0, &c);
    CHECK_EQ(lc_lane_set_boost(e, 0, 0, c.before, c.amounts, c.count), LC_OK);
    CHECK_EQ(lc_lane_set_boost(e, 0, 0, NULL, NULL, 0), LC_OK);
    CHECK_EQ(lc_submit(e, 1, 4, T0 + 1), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 5, T0), LC_OK);
    CHECK_EQ(lc_try_next(e, T0 + 3600 * SEC, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 4);
    lc_engine_free(e);
}

int main(void)
{
    test_standard_windows();
    test_aggressive_windows();
    test_window_rules();
    test_past_deadline_beats_priority_zero();
    test_ties_go_to_the_older_front();
    test_boost_reorders_lanes_not_tickets();
    test_boost_in_the_reserved_heap();
    test_boosted_lane_that_cannot_run();
    test_claims_respect_a_boosted_rival();
    test_invalid_arguments_and_removal();
    puts("test_boost: ok");
    return 0;
}
