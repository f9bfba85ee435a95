/*
 * test_wait_ready.c — lc_wait_ready: it waits like lc_wait_next but takes
 * nothing (no ticket, no rate token), so a wrapper's worker can take the
 * ticket only once it can run it (Python: once it holds the GIL), and a
 * thread that could start it sooner may take it first. Also: wake-ups are
 * sent after the engine's lock is released, and none is lost.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <errno.h>
#include <sched.h>
#include <semaphore.h>
#include <time.h>
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

/* Searchers, one step at a time. Threads wait in lc_wait_ready_search; each
 * posts `returned` when its wait ends. Main then takes for them
 * (lc_take_searched: the count is the engine's, not a thread's). */
typedef struct search_waiter {
    pthread_t thread;
    lc_engine *engine;
    sem_t *returned;
    int rc;
} search_waiter;

static void *search_waiter_main(void *arg)
{
    search_waiter *w = arg;
    w->rc = lc_wait_ready_search(w->engine, LONG_WAIT);
    sem_post(w->returned);
    return NULL;
}

/* 1 if `sem` is posted within timeout_ns, 0 if not. */
static int sem_wait_for(sem_t *sem, int64_t timeout_ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t at = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + (uint64_t)timeout_ns;
    ts.tv_sec = (time_t)(at / 1000000000ull);
    ts.tv_nsec = (long)(at % 1000000000ull);
    int rc;
    while ((rc = sem_timedwait(sem, &ts)) != 0 && errno == EINTR) {
    }
    return rc == 0;
}

static void test_searchers_step_by_step(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 8), 0);
    sem_t returned;
    CHECK_EQ(sem_init(&returned, 0, 0), 0);
    search_waiter w[3];
    for (int i = 0; i < 3; i++)
        w[i] = (search_waiter){.engine = e, .returned = &returned, .rc = -100};
    /* One ticket: its waiter becomes a searcher. */
    CHECK_EQ(pthread_create(&w[0].thread, NULL, search_waiter_main, &w[0]), 0);
    CHECK_EQ(lc_submit(e, 0, 1, 0), LC_OK);
    CHECK(sem_wait_for(&returned, LONG_WAIT));
    /* A second ticket beside one searcher must wake a sleeping waiter (two
     * tickets, one searcher), or the second would wait for the first. The
     * pause lets the waiter go to sleep; if it has not, it finds the ticket
     * at once and the test still passes (it only proves less). */
    CHECK_EQ(pthread_create(&w[1].thread, NULL, search_waiter_main, &w[1]), 0);
    sleep_ms(20);
    CHECK_EQ(lc_submit(e, 0, 2, 0), LC_OK);
    CHECK(sem_wait_for(&returned, LONG_WAIT));
    /* Both searchers take: one ticket each. */
    lc_dispatch d1, d2;
    CHECK_EQ(lc_take_searched(e, &d1), LC_DISPATCHED);
    CHECK_EQ(lc_take_searched(e, &d2), LC_DISPATCHED);
    CHECK_EQ(d1.ticket + d2.ticket, 3);

    /* A searcher whose ticket another thread took is still coming: a new
     * ticket wakes nobody else, and the searcher takes it. */
    CHECK_EQ(pthread_create(&w[2].thread, NULL, search_waiter_main, &w[2]), 0);
    sleep_ms(20);
    CHECK_EQ(lc_submit(e, 0, 3, 0), LC_OK); /* no searcher: wakes w[2] */
    CHECK(sem_wait_for(&returned, LONG_WAIT));
    EXPECT_NEXT(e, 0, 3); /* taken by someone else (a finishing worker) */
    search_waiter late = {.engine = e, .returned = &returned, .rc = -100};
    CHECK_EQ(pthread_create(&late.thread, NULL, search_waiter_main, &late), 0);
    sleep_ms(20); /* let it sleep (if not, it finds the ticket: still correct) */
    CHECK_EQ(lc_submit(e, 0, 4, 0), LC_OK);
    lc_dispatch d3;
    CHECK_EQ(lc_take_searched(e, &d3), LC_DISPATCHED);
    CHECK_EQ(d3.ticket, 4);
    CHECK(!sem_wait_for(&returned, 50 * MS)); /* the sleeper was not woken */
    lc_stop(e);
    CHECK(sem_wait_for(&returned, LONG_WAIT));
    CHECK_EQ(late.rc, LC_ERR_STOPPED);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(pthread_join(w[i].thread, NULL), 0);
        CHECK_EQ(w[i].rc, LC_READY);
    }
    CHECK_EQ(pthread_join(late.thread, NULL), 0);
    sem_destroy(&returned);
    lc_engine_free(e);
}

/* lc_wait_ready_search / lc_take_searched, as Python's workers use them:
 * a woken worker is a searcher until it tries to take a ticket (Python: once
 * it holds the GIL, simulated here by a yield), and a ticket made ready
 * while there are as many searchers as pending tickets wakes nobody. Workers
 * that finish a command keep taking (lc_finish then lc_settle_and_wait with
 * timeout 0, as Python's do), so searchers often find their ticket gone.
 * Several submitters, a lane capped at 2 (pending tickets that are not
 * dispatchable), bursts and pauses. A lost wake-up leaves a ticket untaken:
 * lc_wait_idle times out and the check fails; no searcher wait times out. */
#define SEARCH_WORKERS 6
#define SEARCH_SUBMITTERS 4
#define SEARCH_PER_SUBMITTER 20000
#define SEARCH_TICKETS (SEARCH_SUBMITTERS * SEARCH_PER_SUBMITTER)

typedef struct search_race {
    lc_engine *engine;
    pthread_mutex_t lock;
    uint64_t taken;
    unsigned char seen[SEARCH_TICKETS + 1];
} search_race;

static search_race sr;

static void search_record(lc_dispatch *d)
{
    pthread_mutex_lock(&sr.lock);
    CHECK(d->ticket >= 1 && d->ticket <= SEARCH_TICKETS);
    CHECK_EQ(sr.seen[d->ticket], 0);
    sr.seen[d->ticket] = 1;
    sr.taken++;
    pthread_mutex_unlock(&sr.lock);
}

static void *search_worker(void *arg)
{
    (void)arg;
    lc_dispatch d;
    unsigned n = 0;
    for (;;) {
        int rc = lc_wait_ready_search(sr.engine, LONG_WAIT);
        if (rc == LC_ERR_STOPPED) return NULL;
        CHECK_EQ(rc, LC_READY); /* never a timeout: no lost wake-up */
        if (++n % 3 == 0) sched_yield(); /* waiting for "the GIL" */
        rc = lc_take_searched(sr.engine, &d);
        while (rc == LC_DISPATCHED) {
            search_record(&d);
            CHECK_EQ(lc_finish(sr.engine, d.lane, LC_OUTCOME_COMPLETED), LC_OK);
            rc = lc_settle_and_wait(sr.engine, 0, &d);
        }
        if (rc == LC_ERR_STOPPED) return NULL;
        CHECK_EQ(rc, LC_NONE);
    }
}

static void *search_submitter(void *arg)
{
    uint64_t first = (uint64_t)(uintptr_t)arg * SEARCH_PER_SUBMITTER + 1;
    for (uint64_t i = 0; i < SEARCH_PER_SUBMITTER; i++) {
        uint64_t t = first + i;
        CHECK_EQ(lc_submit(sr.engine, (uint32_t)(t % 3), t, 0), LC_OK);
        if (t % 7 == 0) sched_yield();
        if (t % 997 == 0) sleep_ms(1); /* let every worker go to sleep */
    }
    return NULL;
}

static void test_searchers_lose_no_ticket(void)
{
    sr.engine = lc_engine_new(SEARCH_WORKERS);
    CHECK_EQ(lc_lane_add(sr.engine, 0, 0, SEARCH_WORKERS), 0);
    CHECK_EQ(lc_lane_add(sr.engine, 1, 0, 2), 1);
    CHECK_EQ(lc_lane_add(sr.engine, 2, 1, SEARCH_WORKERS), 2);
    pthread_mutex_init(&sr.lock, NULL);
    pthread_t workers[SEARCH_WORKERS], submitters[SEARCH_SUBMITTERS];
    for (int i = 0; i < SEARCH_WORKERS; i++)
        CHECK_EQ(pthread_create(&workers[i], NULL, search_worker, NULL), 0);
    for (uintptr_t i = 0; i < SEARCH_SUBMITTERS; i++)
        CHECK_EQ(pthread_create(&submitters[i], NULL, search_submitter, (void *)i), 0);
    for (int i = 0; i < SEARCH_SUBMITTERS; i++)
        CHECK_EQ(pthread_join(submitters[i], NULL), 0);
    CHECK_EQ(lc_wait_idle(sr.engine, LONG_WAIT), 1);
    pthread_mutex_lock(&sr.lock);
    CHECK_EQ(sr.taken, SEARCH_TICKETS);
    pthread_mutex_unlock(&sr.lock);
    /* A ticket submitted to an idle pool, one at a time, is still taken. */
    for (uint64_t i = 0; i < 50; i++) {
        pthread_mutex_lock(&sr.lock);
        sr.seen[1 + i] = 0;
        sr.taken--;
        pthread_mutex_unlock(&sr.lock);
        CHECK_EQ(lc_submit(sr.engine, (uint32_t)(i % 3), 1 + i, 0), LC_OK);
        CHECK_EQ(lc_wait_idle(sr.engine, LONG_WAIT), 1);
    }
    lc_stop(sr.engine);
    for (int i = 0; i < SEARCH_WORKERS; i++)
        CHECK_EQ(pthread_join(workers[i], NULL), 0);
    CHECK_EQ(sr.taken, SEARCH_TICKETS);
    pthread_mutex_destroy(&sr.lock);
    lc_engine_free(sr.engine);
}

int main(void)
{
    test_times_out_and_polls();
    test_takes_nothing();
    test_spends_no_rate_token();
    test_follows_the_reservation_rule();
    test_woken_by_submit_and_by_stop();
    test_racing_workers_take_every_ticket_once();
    test_searchers_step_by_step();
    test_searchers_lose_no_ticket();
    puts("test_wait_ready: ok");
    return 0;
}
