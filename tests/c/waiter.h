/*
 * waiter.h — helpers for the tests of blocking calls: sleep_ms and a thread
 * that makes one lc_wait_next call and keeps its result. Include after
 * defining _POSIX_C_SOURCE.
 */
#ifndef LANE_TEST_WAITER_H
#define LANE_TEST_WAITER_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "check.h"

#define MS 1000000LL
/* Waits that should be woken use this timeout, so a missed wake-up fails a
 * check instead of hanging the test. */
#define LONG_WAIT (5000 * MS)

static inline void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

typedef struct waiter {
    pthread_t thread;
    lc_engine *engine;
    int64_t timeout_ns;
    int rc;
    lc_dispatch got;
    uint64_t waited_ns;
} waiter;

static inline void *waiter_main(void *arg)
{
    waiter *w = arg;
    uint64_t start = lc_now_ns();
    w->rc = lc_wait_next(w->engine, w->timeout_ns, &w->got);
    w->waited_ns = lc_now_ns() - start;
    return NULL;
}

static inline void waiter_start(waiter *w, lc_engine *e, int64_t timeout_ns)
{
    w->engine = e;
    w->timeout_ns = timeout_ns;
    w->rc = -100;
    CHECK_EQ(pthread_create(&w->thread, NULL, waiter_main, w), 0);
}

/* Joins the waiter and checks it was woken, not released by its timeout:
 * after a timeout lc_wait_next takes what is ready, which would hide a missed
 * wake-up. */
#define waiter_join(w)                                                                 \
    do {                                                                               \
        CHECK_EQ(pthread_join((w)->thread, NULL), 0);                                  \
        CHECK((w)->waited_ns < LONG_WAIT / 2);                                         \
    } while (0)

/* A thread that cancels `ticket` in lane 0 after 50 ms, for tests of waits
 * that a cancel must end. */
typedef struct delayed_cancel {
    lc_engine *engine;
    uint64_t ticket;
} delayed_cancel;

static inline void *cancel_later(void *arg)
{
    delayed_cancel *dc = arg;
    sleep_ms(50);
    CHECK_EQ(lc_cancel(dc->engine, 0, dc->ticket), 1);
    return NULL;
}

#endif /* LANE_TEST_WAITER_H */
