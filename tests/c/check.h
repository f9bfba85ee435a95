/*
 * check.h — the assertions shared by the C tests. A failed check prints
 * file:line and the expression (with both values for CHECK_EQ) and exits 1,
 * so ctest shows exactly what broke. No test framework on purpose.
 */
#ifndef LANE_TEST_CHECK_H
#define LANE_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "lane_core.h"

#define CHECK(expr)                                                                    \
    do {                                                                               \
        if (!(expr)) {                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr);   \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* Compares as long long so that negative error codes and uint64 counters both
 * print readably. */
#define CHECK_EQ(actual, expected)                                                     \
    do {                                                                               \
        long long check_a_ = (long long)(actual);                                      \
        long long check_e_ = (long long)(expected);                                    \
        if (check_a_ != check_e_) {                                                    \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (got %lld, expected %lld)\n", \
                    __FILE__, __LINE__, #actual, #expected, check_a_, check_e_);       \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* lc_try_next must dispatch exactly this ticket from this lane. */
#define EXPECT_NEXT(engine, lane_, ticket_)                                            \
    do {                                                                               \
        lc_dispatch expect_d_ = {0};                                                   \
        CHECK_EQ(lc_try_next((engine), 0, &expect_d_), LC_DISPATCHED);                 \
        CHECK_EQ(expect_d_.lane, (lane_));                                             \
        CHECK_EQ(expect_d_.ticket, (ticket_));                                         \
    } while (0)

/* lc_try_next must find nothing dispatchable. */
#define EXPECT_NOTHING(engine)                                                         \
    do {                                                                               \
        lc_dispatch expect_d_ = {0};                                                   \
        CHECK_EQ(lc_try_next((engine), 0, &expect_d_), LC_NONE);                       \
    } while (0)

/* The counters of one lane must balance. Every submitted ticket is pending,
 * delayed, active, completed, failed or cancelled (a pending or delayed
 * ticket removed by lc_cancel and a running one ended with
 * LC_OUTCOME_CANCELLED both count as cancelled); a retry (LC_OUTCOME_RETRIED
 * then lc_retry_at) moves no end counter and puts the ticket back. Every
 * dispatch is one attempt, so dispatches can outnumber submits by the retries. */
#define CHECK_BALANCED(engine, lane_)                                                  \
    do {                                                                               \
        lc_lane_stats bal_s_;                                                          \
        CHECK_EQ(lc_read_lane_stats((engine), (lane_), &bal_s_), LC_OK);               \
        CHECK_EQ(bal_s_.submitted, bal_s_.pending + bal_s_.delayed + bal_s_.active +   \
                                       bal_s_.completed + bal_s_.failed + bal_s_.cancelled); \
        CHECK(bal_s_.dispatched >= bal_s_.active + bal_s_.completed + bal_s_.failed);  \
        CHECK(bal_s_.dispatched + bal_s_.pending + bal_s_.delayed <=                   \
              bal_s_.submitted + bal_s_.retried);                                      \
    } while (0)

/* The stats of one lane; the read itself must succeed. */
static inline lc_lane_stats stats_of(lc_engine *engine, uint32_t lane)
{
    lc_lane_stats s = {0};
    int rc = lc_read_lane_stats(engine, lane, &s);
    if (rc != LC_OK) {
        fprintf(stderr, "lc_read_lane_stats(lane %u) returned %d\n", (unsigned)lane, rc);
        exit(1);
    }
    return s;
}

#endif /* LANE_TEST_CHECK_H */
