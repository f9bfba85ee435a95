/*
 * test_cancel_pause.c — lc_cancel at the front, middle and back of a lane and
 * of tickets that are not pending; pause and resume.
 */
#include <stdint.h>

#include "check.h"

static lc_engine *engine_with_pending(uint64_t count)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 100), 0);
    for (uint64_t t = 1; t <= count; t++)
        CHECK_EQ(lc_submit(e, 0, t, t), LC_OK);
    return e;
}

static void test_cancel_front_middle_back(void)
{
    lc_engine *e = engine_with_pending(6);
    CHECK_EQ(lc_cancel(e, 0, 1), 1); /* front */
    CHECK_EQ(lc_cancel(e, 0, 4), 1); /* middle */
    CHECK_EQ(lc_cancel(e, 0, 6), 1); /* back */
    lc_lane_stats s = stats_of(e, 0);
    CHECK_EQ(s.pending, 3);
    CHECK_EQ(s.cancelled, 3);
    CHECK_EQ(s.submitted, 6);
    CHECK_BALANCED(e, 0);
    /* The rest keep their order, and the lane accepts more at the back. */
    CHECK_EQ(lc_submit(e, 0, 7, 7), LC_OK);
    EXPECT_NEXT(e, 0, 2);
    EXPECT_NEXT(e, 0, 3);
    EXPECT_NEXT(e, 0, 5);
    EXPECT_NEXT(e, 0, 7);
    EXPECT_NOTHING(e);
    lc_engine_free(e);
}

static void test_cancel_what_is_not_pending(void)
{
    lc_engine *e = engine_with_pending(3);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 1);
    EXPECT_NEXT(e, 0, 1);
    CHECK_EQ(lc_cancel(e, 0, 1), 0);   /* active, not pending */
    CHECK_EQ(lc_cancel(e, 0, 99), 0);  /* never submitted */
    CHECK_EQ(lc_cancel(e, 1, 2), 0);   /* pending, but in another lane */
    CHECK_EQ(lc_cancel(e, 0, 2), 1);
    CHECK_EQ(lc_cancel(e, 0, 2), 0);   /* already cancelled */
    CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    CHECK_EQ(lc_cancel(e, 0, 1), 0);   /* finished */
    lc_lane_stats s = stats_of(e, 0);
    CHECK_EQ(s.cancelled, 1);
    CHECK_EQ(s.pending, 1);
    CHECK_EQ(s.active, 0); /* cancel never touches running tickets */
    CHECK_BALANCED(e, 0);
    lc_engine_free(e);
}

static void test_cancel_every_ticket_empties_lane(void)
{
    lc_engine *e = engine_with_pending(4);
    for (uint64_t t = 4; t >= 1; t--)
        CHECK_EQ(lc_cancel(e, 0, t), 1);
    EXPECT_NOTHING(e);
    CHECK_EQ(lc_wait_idle(e, 0), 1);
    CHECK_EQ(lc_submit(e, 0, 5, 5), LC_OK);
    EXPECT_NEXT(e, 0, 5);
    lc_engine_free(e);
}

static void test_pause_and_resume(void)
{
    lc_engine *e = lc_engine_new(0);
    const uint32_t urgent = 0, other = 1;
    CHECK_EQ(lc_lane_add(e, 0, 0, 4), urgent);
    CHECK_EQ(lc_lane_add(e, 9, 0, 4), other);
    CHECK_EQ(lc_submit(e, urgent, 1, 1), LC_OK);
    EXPECT_NEXT(e, urgent, 1);

    CHECK_EQ(lc_pause(e, urgent), LC_OK);
    CHECK_EQ(stats_of(e, urgent).paused, 1);
    CHECK_EQ(lc_submit(e, urgent, 2, 2), LC_OK); /* still accepts tickets */
    CHECK_EQ(lc_submit(e, urgent, 3, 3), LC_OK);
    CHECK_EQ(lc_submit(e, other, 100, 4), LC_OK);
    EXPECT_NEXT(e, other, 100); /* paused lane skipped */
    EXPECT_NOTHING(e);
    CHECK_EQ(stats_of(e, urgent).pending, 2);
    /* A running ticket of a paused lane still completes. */
    CHECK_EQ(lc_complete(e, urgent, LC_OUTCOME_COMPLETED), LC_OK);
    EXPECT_NOTHING(e);
    /* Pausing twice is harmless; one resume undoes it. */
    CHECK_EQ(lc_pause(e, urgent), LC_OK);
    CHECK_EQ(lc_resume(e, urgent), LC_OK);
    CHECK_EQ(stats_of(e, urgent).paused, 0);
    EXPECT_NEXT(e, urgent, 2);
    EXPECT_NEXT(e, urgent, 3);
    EXPECT_NOTHING(e);
    /* Resuming a lane that is not paused is harmless too. */
    CHECK_EQ(lc_resume(e, other), LC_OK);
    CHECK_EQ(stats_of(e, other).paused, 0);
    lc_engine_free(e);
}

/* A paused lane's pending tickets can still be cancelled. */
static void test_cancel_in_paused_lane(void)
{
    lc_engine *e = engine_with_pending(3);
    CHECK_EQ(lc_pause(e, 0), LC_OK);
    CHECK_EQ(lc_cancel(e, 0, 2), 1);
    CHECK_EQ(lc_resume(e, 0), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    EXPECT_NEXT(e, 0, 3);
    EXPECT_NOTHING(e);
    lc_engine_free(e);
}

int main(void)
{
    test_cancel_front_middle_back();
    test_cancel_what_is_not_pending();
    test_cancel_every_ticket_empties_lane();
    test_pause_and_resume();
    test_cancel_in_paused_lane();
    puts("test_cancel_pause: ok");
    return 0;
}
