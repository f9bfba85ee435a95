/*
 * test_ring.c — a lane's FIFO past its initial capacity. The backlog grows by
 * one ticket per round while the front keeps moving, so whatever the initial
 * size, the ring is wrapped (head past the start) each time it has to grow.
 * Order is checked ticket by ticket; a randomized run against an array model
 * adds cancels at every position.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#ifdef LANE_SANITIZED
#define ROUNDS 3000
#define MODEL_OPS 20000
#else
#define ROUNDS 20000
#define MODEL_OPS 100000
#endif

static void test_growth_while_wrapped(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    uint64_t next_submit = 1, next_expected = 1;
    for (int round = 0; round < ROUNDS; round++) {
        for (int k = 0; k < 3; k++, next_submit++)
            CHECK_EQ(lc_submit(e, 0, next_submit, next_submit), LC_OK);
        for (int k = 0; k < 2; k++, next_expected++) {
            lc_dispatch d;
            CHECK_EQ(lc_try_next(e, 0, &d), LC_DISPATCHED);
            CHECK_EQ(d.ticket, next_expected);
            CHECK_EQ(d.enqueued_ns, next_expected);
            CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
        }
    }
    CHECK_EQ(stats_of(e, 0).pending, ROUNDS);

    /* Drain: the rest comes out in order too. */
    lc_dispatch d;
    while (lc_try_next(e, 0, &d) == LC_DISPATCHED) {
        CHECK_EQ(d.ticket, next_expected);
        next_expected++;
        CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    }
    CHECK_EQ(next_expected, next_submit);
    CHECK_EQ(stats_of(e, 0).completed, 3 * ROUNDS);
    CHECK_BALANCED(e, 0);
    lc_engine_free(e);
}

/* Random submits, dispatches and cancels (at any position, and of unknown
 * tickets) checked against a plain array model of the queue. The queue grows
 * and shrinks in phases, so cancels and growth meet the ring in every state
 * of wrap-around, whatever its initial capacity. */
static void test_against_model(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    uint64_t *model = malloc(MODEL_OPS * sizeof *model);
    CHECK(model != NULL);
    size_t len = 0;
    uint64_t next_ticket = 1, rng = 12345, cancelled = 0;
    for (int op = 0; op < MODEL_OPS; op++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        unsigned roll = (unsigned)(rng >> 33) % 100;
        int growing = (op / 1500) % 2 == 0;
        if (roll < (growing ? 55u : 25u)) {
            CHECK_EQ(lc_submit(e, 0, next_ticket, next_ticket), LC_OK);
            model[len++] = next_ticket++;
        } else if (roll < 85) {
            lc_dispatch d;
            if (len == 0) {
                EXPECT_NOTHING(e);
                continue;
            }
            CHECK_EQ(lc_try_next(e, 0, &d), LC_DISPATCHED);
            CHECK_EQ(d.ticket, model[0]);
            CHECK_EQ(d.enqueued_ns, model[0]);
            CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
            memmove(model, model + 1, --len * sizeof *model);
        } else if (len > 0 && roll < 97) {
            size_t at = (size_t)(rng >> 20) % len;
            CHECK_EQ(lc_cancel(e, 0, model[at]), 1);
            memmove(model + at, model + at + 1, (--len - at) * sizeof *model);
            cancelled++;
        } else {
            CHECK_EQ(lc_cancel(e, 0, next_ticket + 7), 0); /* never submitted */
        }
        if (op % 512 == 0)
            CHECK_EQ(stats_of(e, 0).pending, len);
    }
    for (size_t i = 0; i < len; i++) {
        EXPECT_NEXT(e, 0, model[i]);
        CHECK_EQ(lc_complete(e, 0, LC_OUTCOME_COMPLETED), LC_OK);
    }
    EXPECT_NOTHING(e);
    CHECK_EQ(stats_of(e, 0).cancelled, cancelled);
    free(model);
    lc_engine_free(e);
}

/* Many lanes growing at once, interleaved. */
static void test_many_lanes_grow_independently(void)
{
    enum { LANES = 16, PER_LANE = 500 };
    lc_engine *e = lc_engine_new(0);
    for (int i = 0; i < LANES; i++)
        CHECK_EQ(lc_lane_add(e, 0, 0, PER_LANE), i);
    for (uint64_t k = 0; k < PER_LANE; k++)
        for (uint32_t lane = 0; lane < LANES; lane++)
            CHECK_EQ(lc_submit(e, lane, lane * 100000 + k, 0), LC_OK);
    /* Equal priority: dispatch follows submission order exactly. */
    for (uint64_t k = 0; k < PER_LANE; k++)
        for (uint32_t lane = 0; lane < LANES; lane++)
            EXPECT_NEXT(e, lane, lane * 100000 + k);
    EXPECT_NOTHING(e);
    lc_engine_free(e);
}

int main(void)
{
    test_growth_while_wrapped();
    test_against_model();
    test_many_lanes_grow_independently();
    puts("test_ring: ok");
    return 0;
}
