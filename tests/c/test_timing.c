/*
 * test_timing.c — timing samples for metrics: lc_set_timing, lc_finish_timed and lc_take_samples (grouping, values,
 * drops, the "due" signal), and taking samples while workers record them;
 * and the histogram buckets of lane_buckets.h (lc_buckets).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>

#include "check.h"
#include "lane_buckets.h"
#include "waiter.h"

#define OUT_CAP 20000
static double out_ms[OUT_CAP];
static lc_sample_run runs[64];

static int take(lc_engine *e, uint64_t *dropped)
{
    return lc_take_samples(e, out_ms, OUT_CAP, runs, 64, dropped);
}

static void test_off_by_default(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    CHECK_EQ(lc_submit(e, 0, 1, 100), LC_OK);
    lc_dispatch d = {0};
    CHECK_EQ(lc_try_next(e, 500, &d), LC_DISPATCHED);
    CHECK_EQ(lc_finish_timed(e, 0, LC_OUTCOME_COMPLETED, 5 * MS), LC_OK);
    CHECK_EQ(stats_of(e, 0).completed, 1);
    CHECK_EQ(lc_samples_buffered(e), 0);
    CHECK_EQ(take(e, NULL), 0);
    lc_settle(e);
    CHECK_EQ(lc_wait_idle(e, 0), 1); /* lc_finish_timed counts as settling */
    lc_engine_free(e);
}

/* Wait = dispatch time - submit time, grouped by lane then kind, in order. */
static void test_wait_and_run_samples_grouped_by_lane(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 4), 0);
    CHECK_EQ(lc_lane_add(e, 1, 0, 4), 1);
    lc_set_timing(e, 1024);
    CHECK_EQ(lc_submit(e, 1, 10, 1 * MS), LC_OK);
    CHECK_EQ(lc_submit(e, 0, 20, 2 * MS), LC_OK);
    CHECK_EQ(lc_submit(e, 1, 11, 3 * MS), LC_OK);
    lc_dispatch d = {0};
    CHECK_EQ(lc_try_next(e, 10 * MS, &d), LC_DISPATCHED); /* lane 0 first */
    CHECK_EQ(d.ticket, 20);
    CHECK_EQ(lc_try_next(e, 11 * MS, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 10);
    CHECK_EQ(lc_try_next(e, 12 * MS, &d), LC_DISPATCHED);
    CHECK_EQ(d.ticket, 11);
    CHECK_EQ(lc_finish_timed(e, 1, LC_OUTCOME_COMPLETED, 3 * MS + 500000), LC_OK);
    CHECK_EQ(lc_finish_timed(e, 0, LC_OUTCOME_FAILED, -1), LC_OK); /* no run sample */
    CHECK_EQ(lc_samples_buffered(e), 4);
    uint64_t dropped = 99;
    int n = take(e, &dropped);
    CHECK_EQ(n, 3);
    CHECK_EQ(dropped, 0);
    CHECK_EQ(runs[0].lane, 0);
    CHECK_EQ(runs[0].kind, LC_SAMPLE_WAIT);
    CHECK_EQ(runs[0].count, 1);
    CHECK_EQ(runs[1].lane, 1);
    CHECK_EQ(runs[1].kind, LC_SAMPLE_WAIT);
    CHECK_EQ(runs[1].count, 2);
    CHECK_EQ(runs[2].lane, 1);
    CHECK_EQ(runs[2].kind, LC_SAMPLE_RUN);
    CHECK_EQ(runs[2].count, 1);
    CHECK(out_ms[0] == 8.0);  /* lane 0: 10 - 2 ms */
    CHECK(out_ms[1] == 10.0); /* lane 1 in dispatch order: 11 - 1 ms */
    CHECK(out_ms[2] == 9.0);  /* 12 - 3 ms */
    CHECK(out_ms[3] == 3.5);
    CHECK_EQ(lc_samples_buffered(e), 0);
    CHECK_EQ(take(e, NULL), 0); /* taken means gone */
    lc_engine_free(e);
}

static void test_claim_records_a_zero_wait(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    lc_set_timing(e, 64);
    CHECK_EQ(lc_submit_or_claim(e, 0, 1, 0), LC_RUN_INLINE);
    CHECK_EQ(lc_finish_timed(e, 0, LC_OUTCOME_COMPLETED, 0), LC_OK); /* a run of 0 counts */
    CHECK_EQ(take(e, NULL), 2);
    CHECK_EQ(runs[0].kind, LC_SAMPLE_WAIT);
    CHECK(out_ms[0] == 0.0);
    CHECK_EQ(runs[1].kind, LC_SAMPLE_RUN);
    CHECK(out_ms[1] == 0.0);
    lc_engine_free(e);
}

/* One command: a wait and a run sample. */
static void run_one(lc_engine *e, uint64_t ticket, int *rc)
{
    CHECK_EQ(lc_submit(e, 0, ticket, 0), LC_OK);
    lc_dispatch d = {0};
    CHECK_EQ(lc_try_next(e, 0, &d), LC_DISPATCHED);
    *rc = lc_finish_timed(e, 0, LC_OUTCOME_COMPLETED, 1000);
    CHECK(*rc == LC_OK || *rc == LC_SAMPLES_DUE);
    lc_settle(e);
}

/* A full log drops and counts; turning timing off or on again drops the buffer. */
static void test_full_log_drops_and_counts(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    lc_set_timing(e, 8);
    int rc;
    for (int i = 0; i < 6; i++) run_one(e, (uint64_t)i, &rc); /* 12 samples into 8 */
    CHECK_EQ(lc_samples_buffered(e), 8);
    uint64_t dropped = 0;
    CHECK_EQ(take(e, &dropped), 2);
    CHECK_EQ(dropped, 4);
    CHECK_EQ(runs[0].count + runs[1].count, 8);
    CHECK_EQ(take(e, &dropped), 0);
    CHECK_EQ(dropped, 0); /* counted once */
    CHECK_EQ(lc_submit(e, 0, 100, 0), LC_OK);
    lc_dispatch d = {0};
    CHECK_EQ(lc_try_next(e, 0, &d), LC_DISPATCHED);
    CHECK_EQ(lc_samples_buffered(e), 1);
    lc_set_timing(e, 0);
    CHECK_EQ(lc_samples_buffered(e), 0);
    CHECK_EQ(lc_finish_timed(e, 0, LC_OUTCOME_COMPLETED, 1000), LC_OK);
    CHECK_EQ(lc_samples_buffered(e), 0);
    lc_settle(e);
    lc_engine_free(e);
}

/* Due once 16,384 samples wait (the log grows past its first allocation);
 * a take with a small buffer moves the oldest and leaves the rest. */
static void test_due_after_a_batch_and_partial_takes(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    lc_set_timing(e, 1u << 16);
    int rc = LC_OK, first_due = -1;
    for (int i = 0; i < 8300 && first_due < 0; i++) {
        run_one(e, (uint64_t)i, &rc);
        if (rc == LC_SAMPLES_DUE) first_due = i;
    }
    CHECK_EQ(first_due, 8191); /* its run sample is the 16,384th */
    CHECK_EQ(lc_samples_buffered(e), 16384);
    uint64_t dropped = 9;
    CHECK_EQ(lc_take_samples(e, out_ms, 1000, runs, 64, &dropped), 2);
    CHECK_EQ(dropped, 0);
    CHECK_EQ(runs[0].count + runs[1].count, 1000);
    CHECK_EQ(runs[0].count, 500); /* wait, run, wait, run... */
    CHECK_EQ(lc_samples_buffered(e), 15384);
    run_one(e, 9000, &rc);
    CHECK_EQ(rc, LC_OK); /* 15,386: below the batch, and just taken */
    CHECK_EQ(take(e, NULL), 2);
    CHECK_EQ(runs[0].count + runs[1].count, 15386);
    CHECK_EQ(lc_samples_buffered(e), 0);
    lc_engine_free(e);
}

static void test_take_rejects_small_buffers(void)
{
    lc_engine *e = lc_engine_new(0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 0);
    CHECK_EQ(lc_lane_add(e, 0, 0, 1), 1);
    lc_set_timing(e, 16);
    CHECK_EQ(lc_submit(e, 0, 1, 0), LC_OK);
    lc_dispatch d = {0};
    CHECK_EQ(lc_try_next(e, 0, &d), LC_DISPATCHED);
    CHECK_EQ(lc_take_samples(e, out_ms, OUT_CAP, runs, 3, NULL), LC_ERR_INVALID); /* 2 lanes */
    CHECK_EQ(lc_samples_buffered(e), 1); /* nothing taken */
    CHECK_EQ(lc_take_samples(e, out_ms, 0, runs, 64, NULL), 0); /* room for none */
    CHECK_EQ(lc_samples_buffered(e), 1);
    CHECK_EQ(take(e, NULL), 1);
    lc_engine_free(e);
}

/* Workers record while another thread takes: every sample arrives once. */
#ifdef LANE_SANITIZED
#define PER_WORKER 2000
#else
#define PER_WORKER 20000
#endif
#define WORKERS 4

static void *work(void *arg)
{
    lc_engine *e = arg;
    lc_dispatch d;
    for (int i = 0; i < PER_WORKER; i++) {
        CHECK_EQ(lc_wait_next(e, LONG_WAIT, &d), LC_DISPATCHED);
        int rc = lc_finish_timed(e, d.lane, LC_OUTCOME_COMPLETED, 1000);
        CHECK(rc == LC_OK || rc == LC_SAMPLES_DUE);
        lc_settle(e);
    }
    return NULL;
}

static void test_take_while_workers_record(void)
{
    lc_engine *e = lc_engine_new(WORKERS);
    for (int lane = 0; lane < 4; lane++) CHECK_EQ(lc_lane_add(e, lane, 0, WORKERS), lane);
    /* Room for everything, so nothing may be dropped however slow the taker. */
    uint32_t cap = 2 * WORKERS * PER_WORKER;
    lc_set_timing(e, cap);
    double *values = malloc(sizeof(double) * cap);
    CHECK(values != NULL);
    for (int i = 0; i < WORKERS * PER_WORKER; i++)
        CHECK_EQ(lc_submit(e, (uint32_t)(i % 4), (uint64_t)i, 0), LC_OK);
    pthread_t threads[WORKERS];
    for (int i = 0; i < WORKERS; i++) CHECK_EQ(pthread_create(&threads[i], NULL, work, e), 0);
    uint64_t waits = 0, run_samples = 0, dropped = 0, lost = 0;
    for (;;) {
        int done = lc_wait_idle(e, 0);
        int n = lc_take_samples(e, values, cap, runs, 64, &dropped);
        CHECK(n >= 0);
        lost += dropped;
        for (int i = 0; i < n; i++) {
            if (runs[i].kind == LC_SAMPLE_WAIT) waits += runs[i].count;
            else run_samples += runs[i].count;
        }
        if (done) break;
    }
    for (int i = 0; i < WORKERS; i++) CHECK_EQ(pthread_join(threads[i], NULL), 0);
    int n = lc_take_samples(e, values, cap, runs, 64, &dropped);
    for (int i = 0; i < n; i++) {
        if (runs[i].kind == LC_SAMPLE_WAIT) waits += runs[i].count;
        else run_samples += runs[i].count;
    }
    CHECK_EQ(lost, 0);
    CHECK_EQ(waits, WORKERS * PER_WORKER);
    CHECK_EQ(run_samples, WORKERS * PER_WORKER);
    free(values);
    lc_engine_free(e);
}

static uint64_t count_of(uint32_t key, const uint32_t *keys, const uint64_t *counts, int n)
{
    for (int i = 0; i < n; i++)
        if (keys[i] == key) return counts[i];
    return 0;
}

/* Timing turned on and off while workers dispatch and finish: the flag is
 * read outside the lock, the log only under it (TSan checks both). */
static void test_toggle_while_workers_run(void)
{
    lc_engine *e = lc_engine_new(WORKERS);
    for (int lane = 0; lane < 2; lane++) CHECK_EQ(lc_lane_add(e, lane, 0, WORKERS), lane);
    for (int i = 0; i < WORKERS * PER_WORKER; i++)
        CHECK_EQ(lc_submit(e, (uint32_t)(i % 2), (uint64_t)i, 0), LC_OK);
    pthread_t threads[WORKERS];
    for (int i = 0; i < WORKERS; i++) CHECK_EQ(pthread_create(&threads[i], NULL, work, e), 0);
    uint64_t dropped = 0;
    static double values[1024];
    for (int round = 0; lc_wait_idle(e, 0) == 0; round++) {
        lc_set_timing(e, round % 2 ? 0 : 4096);
        CHECK(lc_take_samples(e, values, 1024, runs, 64, &dropped) >= 0);
    }
    for (int i = 0; i < WORKERS; i++) CHECK_EQ(pthread_join(threads[i], NULL), 0);
    CHECK_EQ(stats_of(e, 0).completed + stats_of(e, 1).completed, WORKERS * PER_WORKER);
    lc_engine_free(e);
}

/* The keys the Python histograms use: a double's bits >> 40, low 6 zeroed. */
static void test_bucket_keys(void)
{
    double values[] = {1.0, 1.001, 1.02, 0.0, 1.0, 2.0};
    uint32_t keys[6];
    uint64_t counts[6];
    double taken[4];
    lc_buckets *b = lc_buckets_new();
    CHECK(b != NULL);
    CHECK_EQ(lc_buckets_add_ms(b, values, 6), LC_OK);
    int n = lc_buckets_take(b, keys, counts, 6, taken);
    const double *summary = taken + 1; /* sum, min, max */
    CHECK_EQ(n, 4);
    CHECK_EQ(count_of(0x3FF000, keys, counts, n), 3); /* 1.0 twice, 1.001 in its bucket */
    CHECK_EQ(count_of(0x3FF040, keys, counts, n), 1); /* 1.02: the next of 64 in [1, 2) */
    CHECK_EQ(count_of(0, keys, counts, n), 1);
    CHECK_EQ(count_of(0x400000, keys, counts, n), 1); /* 2.0 */
    CHECK(summary[0] == 1.0 + 1.001 + 1.02 + 0.0 + 1.0 + 2.0);
    CHECK(summary[1] == 0.0);
    CHECK(summary[2] == 2.0);
    CHECK_EQ(lc_buckets_add_ms(b, values, 0), LC_OK);
    CHECK_EQ(lc_buckets_take(b, keys, counts, 6, taken), 0);
    lc_buckets_free(b);
}

/* An accumulator across many batches: counts add up, keys stay unique,
 * the table grows, and a take leaves it empty. */
static void test_buckets_accumulate(void)
{
    enum { MANY = 5000, ROUNDS = 4 };
    static double many[MANY];
    static uint32_t keys[MANY];
    static uint64_t counts[MANY];
    double summary[4];
    lc_buckets *b = lc_buckets_new();
    CHECK(b != NULL);
    for (int i = 0; i < MANY; i++) many[i] = (double)(i % 997) * 0.37;
    for (int r = 0; r < ROUNDS; r++) CHECK_EQ(lc_buckets_add_ms(b, many, MANY), LC_OK);
    uint32_t distinct = lc_buckets_distinct(b);
    CHECK(distinct > 100 && distinct < 997);
    CHECK_EQ(lc_buckets_take(b, keys, counts, distinct - 1, summary), LC_ERR_INVALID);
    CHECK_EQ(lc_buckets_take(b, keys, counts, MANY, summary), (int)distinct);
    uint64_t total = 0;
    for (uint32_t i = 0; i < distinct; i++) {
        total += counts[i];
        for (uint32_t j = 0; j < i; j++) CHECK(keys[i] != keys[j]);
    }
    CHECK_EQ(total, MANY * ROUNDS);
    CHECK(summary[0] == (double)(MANY * ROUNDS));
    CHECK(summary[2] == 0.0);
    CHECK(summary[3] == 996 * 0.37);
    CHECK_EQ(lc_buckets_distinct(b), 0);
    CHECK_EQ(lc_buckets_take(b, keys, counts, MANY, summary), 0);
    CHECK(summary[0] == 0.0);
    double one = 5.0;
    CHECK_EQ(lc_buckets_add_ms(b, &one, 1), LC_OK); /* usable again after a take */
    CHECK_EQ(lc_buckets_take(b, keys, counts, MANY, summary), 1);
    CHECK(summary[1] == 5.0 && summary[2] == 5.0 && summary[3] == 5.0);
    lc_buckets_free(b);
}

int main(void)
{
    test_bucket_keys();
    test_buckets_accumulate();
    test_off_by_default();
    test_wait_and_run_samples_grouped_by_lane();
    test_claim_records_a_zero_wait();
    test_full_log_drops_and_counts();
    test_due_after_a_batch_and_partial_takes();
    test_take_rejects_small_buffers();
    test_take_while_workers_record();
    test_toggle_while_workers_run();
    puts("test_timing: ok");
    return 0;
}
