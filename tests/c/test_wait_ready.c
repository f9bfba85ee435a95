/*
 * test_wait_ready.c — lc_wait_ready: it waits like lc_wait_next but takes
 * nothing (no ticket, no rate token), so a wrapper's worker can take the
 * ticket only once it can run it (Python: once it holds the GIL), and a
 * thread that could start it sooner may take it first. Also: wake-ups are
 * sent after the engine's lock is released, and none is lost.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>

#include "check.h"
#include "waiter.h"

#define SEC (1000 * MS)

static void test_times_out_and_polls(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    uint64_t t0 = lc_now_ns();
    CHECK_EQ(lc_wait_ready(e, 20 * MS), LC_NONE);
    CHECK(lc_now_ns() - t0 >= 15 * MS);
    CHECK_EQ(lc_wait_ready(e, 0), LC_NONE);
    /* Pending but not dispatchable (lane at max): still nothing ready. */
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 2, 2), LC_OK);
    CHECK_EQ(lc_wait_ready(e, 0), LC_READY);
    EXPECT_NEXT(e, 0, 1);
    CHECK_EQ(lc_wait_ready(e, 10 * MS), LC_NONE);
    lc_engine_free(e);
}

static void test_takes_nothing(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 4), 0);
    CHECK_EQ(lc_submit(e, 0, 7, 1), LC_OK);
    CHECK_EQ(lc_wait_ready(e, 0), LC_READY);
    CHECK_EQ(lc_wait_ready(e, 0), LC_READY); /* still there */
    lc_lane_stats s;
    CHECK_EQ(lc_read_lane_stats(e, 0, &s), LC_OK);
    CHECK_EQ(s.pending, 1);
    CHECK_EQ(s.active, 0);
    EXPECT_NEXT(e, 0, 7);
    lc_engine_free(e);
}

/* Readiness needs a whole rate token but does not spend it. */
static void test_spends_no_rate_token(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 4), 0);
    CHECK_EQ(lc_lane_set_rate_limit(e, 0, 1, 60 * SEC), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 1, 0), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 2, 0), LC_OK);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(lc_wait_ready(e, 0), LC_READY);
    EXPECT_NEXT(e, 0, 1); /* the one token is still there */
    CHECK_EQ(lc_wait_ready(e, 10 * MS), LC_NONE); /* throttled for a minute */
    lc_engine_free(e);
}

/* A budget-bound pick: with one worker left and lane 1's reservation
 * unfilled, only lane 1 is ready. */
static void test_follows_the_reservation_rule(void)
{
    lc_engine *e = lc_engine_new(2);
    CHECK_EQ(lc_lane_add(e, 5, 0, 2), 0);
    CHECK_EQ(lc_lane_add(e, 0, 1, 1), 1);
    CHECK_EQ(lc_submit(e, 0, 1, 1), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 2, 2), LC_OK);
    EXPECT_NEXT(e, 0, 1);
    CHECK_EQ(lc_wait_ready(e, 0), LC_NONE); /* the last worker is lane 1's */
    CHECK_EQ(lc_submit(e, 1, 3, 3), LC_OK);
    CHECK_EQ(lc_wait_ready(e, 0), LC_READY);
    EXPECT_NEXT(e, 1, 3);
    lc_engine_free(e);
}

typedef struct ready_waiter {
    pthread_t thread;
    lc_engine *engine;
    int rc;
    uint64_t waited_ns;
} ready_waiter;

static void *ready_waiter_main(void *arg)
{
    ready_waiter *w = arg;
    uint64_t start = lc_now_ns();
    w->rc = lc_wait_ready(w->engine, LONG_WAIT);
    w->waited_ns = lc_now_ns() - start;
    return NULL;
}

static void test_woken_by_submit_and_by_stop(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 4), 0);
    ready_waiter w = {.engine = e, .rc = -100};
    CHECK_EQ(pthread_create(&w.thread, NULL, ready_waiter_main, &w), 0);
    sleep_ms(30);
    CHECK_EQ(lc_submit(e, 0, 1, lc_now_ns()), LC_OK);
    CHECK_EQ(pthread_join(w.thread, NULL), 0);
    CHECK_EQ(w.rc, LC_READY);
    CHECK(w.waited_ns < LONG_WAIT / 2);
    EXPECT_NEXT(e, 0, 1);

    ready_waiter s = {.engine = e, .rc = -100};
    CHECK_EQ(pthread_create(&s.thread, NULL, ready_waiter_main, &s), 0);
    sleep_ms(30);
    lc_stop(e);
    CHECK_EQ(pthread_join(s.thread, NULL), 0);
    CHECK_EQ(s.rc, LC_ERR_STOPPED);
    lc_engine_free(e);
}

/* Workers that wait for readiness and then race for the ticket, as the
 * Python workers do, against a producer: every ticket is taken exactly
 * once and no worker is left asleep beside a pending ticket. */
#ifdef LANE_SANITIZED
enum { RACE_TICKETS = 2000 };
#else
enum { RACE_TICKETS = 20000 };
#endif
enum { RACE_WORKERS = 4 };

typedef struct race {
    lc_engine *engine;
    pthread_mutex_t lock;
    uint64_t taken;
    unsigned char seen[RACE_TICKETS + 1];
} race;

static void *race_worker(void *arg)
{
    race *r = arg;
    lc_dispatch d;
    for (;;) {
        int rc = lc_wait_ready(r->engine, LONG_WAIT);
        if (rc == LC_ERR_STOPPED) return NULL;
        CHECK_EQ(rc, LC_READY); /* never a timeout: no lost wake-up */
        while (lc_try_next(r->engine, 0, &d) == LC_DISPATCHED) {
            pthread_mutex_lock(&r->lock);
            CHECK(d.ticket >= 1 && d.ticket <= RACE_TICKETS);
            CHECK_EQ(r->seen[d.ticket], 0);
            r->seen[d.ticket] = 1;
            r->taken++;
            pthread_mutex_unlock(&r->lock);
            CHECK_EQ(lc_complete(r->engine, d.lane, LC_OUTCOME_COMPLETED), LC_OK);
        }
    }
}

static void test_racing_workers_take_every_ticket_once(void)
{
    static race r;
    r.engine = lc_engine_new(RACE_WORKERS);
    CHECK_EQ(lc_lane_add(r.engine, 0, 0, RACE_WORKERS), 0);
    CHECK_EQ(lc_lane_add(r.engine, 1, 0, RACE_WORKERS), 1);
    pthread_mutex_init(&r.lock, NULL);
    pthread_t workers[RACE_WORKERS];
    for (int i = 0; i < RACE_WORKERS; i++)
        CHECK_EQ(pthread_create(&workers[i], NULL, race_worker, &r), 0);
    for (uint64_t t = 1; t <= RACE_TICKETS; t++) {
        CHECK_EQ(lc_submit(r.engine, (uint32_t)(t % 2), t, 0), LC_OK);
        if (t % 64 == 0) sleep_ms(0); /* let workers sleep now and then */
    }
    CHECK_EQ(lc_wait_idle(r.engine, LONG_WAIT), 1);
    lc_stop(r.engine);
    for (int i = 0; i < RACE_WORKERS; i++)
        CHECK_EQ(pthread_join(workers[i], NULL), 0);
    CHECK_EQ(r.taken, RACE_TICKETS);
    pthread_mutex_destroy(&r.lock);
    lc_engine_free(r.engine);
}

int main(void)
{
    test_times_out_and_polls();
    test_takes_nothing();
    test_spends_no_rate_token();
    test_follows_the_reservation_rule();
    test_woken_by_submit_and_by_stop();
    test_racing_workers_take_every_ticket_once();
    puts("test_wait_ready: ok");
    return 0;
}
