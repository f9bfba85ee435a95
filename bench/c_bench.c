/*
 * c_bench.c — the engine's hot path against a floor (bench/c_floor.c).
 *
 * Two one-thread workloads, each with 6, 100 and 10,000 lanes of priorities
 * 0..9 (lane i has priority i % 10), BACKLOG_PER_LANE tickets per lane:
 *
 *   steady  a standing backlog of lanes * BACKLOG_PER_LANE tickets; each
 *           cycle dispatches the most urgent ticket (try_next), completes it
 *           and submits a replacement to the next lane round-robin, so the
 *           backlog keeps its size while tickets move between lanes;
 *   drain   lanes * BACKLOG_PER_LANE submits round-robin, then try_next +
 *           complete until the queue is empty, again and again.
 *
 * A cycle is one submit, one dispatch and one complete: three calls, each
 * taking the lock once, on both sides. Two tables, one per way of passing the
 * time:
 *   caller's time  every submit passes now_ns > 0: nobody reads the clock,
 *                  so the table compares the scheduling alone;
 *   clock          every submit passes now_ns 0, as the wrappers do: both
 *                  sides read CLOCK_MONOTONIC for the ticket's enqueue time
 *                  (lc_dispatch.enqueued_ns, which the wrappers use), before
 *                  taking the lock.
 *
 * The process is made multi-threaded before anything is measured (one
 * thread started and joined): glibc takes an uncontended mutex without an
 * atomic instruction while a process has never had a second thread, and no
 * process that embeds the engine is like that. --single-threaded-process
 * skips it (the two-thread rows then run last, after every one-thread row).
 *
 * Method: for each workload and lane count, ROUNDS rounds; a round runs every
 * side once (ours and the floor's two designs), each for at least MIN_RUN_NS
 * of thread CPU time on a fresh queue after a warm-up, and the order of the
 * sides rotates from round to round so none always goes first. Each side's
 * figure is the median ns/cycle over the rounds, printed with its spread
 * (min-max). The floor is the design with the lower median in that row; the
 * ratio is ours / floor, both medians of this one run. Never best-of.
 *
 * Before timing, every case checks that the engine and both floor designs
 * dispatch the same (lane, ticket) sequence.
 *
 * Two-thread rows (one producer submitting, one worker looping on
 * complete_and_wait) are printed for information: wall time per ticket,
 * rounds alternated the same way. On a shared 2-core machine they swing
 * several-fold between rounds (whether the worker sleeps per ticket or not).
 *
 * lane_bench --profile SIDE --lanes N --cycles C [--drain] [--caller-time]
 *   runs one side only (ours | lanes | tickets) for C cycles after the
 *   warm-up and prints their ns per cycle; for callgrind, the cycles run
 *   inside profiled_cycles(), so `--toggle-collect=profiled_cycles` counts
 *   the instructions of exactly C cycles.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "c_floor.h"
#include "lane_core.h"

enum { BACKLOG_PER_LANE = 4, PRIORITIES = 10, BATCH = 1024, WARMUP_CYCLES = 10 * BATCH };
enum { SIDE_OURS = 0, SIDE_FLOOR_LANES = 1, SIDE_FLOOR_TICKETS = 2, SIDES = 3 };
enum { WORK_STEADY = 0, WORK_DRAIN = 1 };

static const char *const SIDE_NAMES[SIDES] = {"ours", "lanes", "tickets"};
static const uint32_t LANE_COUNTS[] = {6, 100, 10000};
static const double TARGETS[] = {1.3, 1.3, 1.6}; /* ours / floor, per LANE_COUNTS */

static int rounds = 7;
static int caller_time = 0; /* submits pass now_ns (ticket + 1): nobody reads the clock */
static int only_mode = -1;   /* --caller-time: 0, --clock: 1; both by default */
static int single_threaded_process = 0; /* --single-threaded-process */
static uint64_t min_run_ns = 150000000ull;

static void die(const char *what, int rc) {
    fprintf(stderr, "lane_bench: %s failed (%d)\n", what, rc);
    exit(1);
}

static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- one queue, either side ------------------------------------------------------ */

typedef struct queue {
    int side;
    lc_engine *engine;
    floor_queue *floor;
} queue;

static queue queue_new(int side, uint32_t lanes, uint32_t workers) {
    queue q = {side, NULL, NULL};
    if (side == SIDE_OURS) {
        q.engine = lc_engine_new(workers);
        if (!q.engine) die("lc_engine_new", 0);
        for (uint32_t i = 0; i < lanes; i++) {
            /* max_concurrency BACKLOG_PER_LANE: never reached (one runs at a time). */
            int rc = lc_lane_add(q.engine, (int32_t)(i % PRIORITIES), 0, BACKLOG_PER_LANE);
            if (rc < 0) die("lc_lane_add", rc);
        }
    } else {
        q.floor = floor_new(side == SIDE_FLOOR_LANES ? FLOOR_LANE_HEAP : FLOOR_TICKET_HEAP);
        if (!q.floor) die("floor_new", 0);
        for (uint32_t i = 0; i < lanes; i++)
            if (floor_lane_add(q.floor, (int32_t)(i % PRIORITIES)) < 0) die("floor_lane_add", -1);
    }
    return q;
}

static void queue_free(queue *q) {
    lc_engine_free(q->engine);
    floor_free(q->floor);
}

/* The loops are written out per side so each side's loop calls its own
 * functions directly, the same way. `log`, when not NULL, records the
 * dispatched (lane, ticket) pairs for the order check. */

static void submit_ours(lc_engine *e, uint32_t lane, uint64_t ticket) {
    int rc = lc_submit(e, lane, ticket, caller_time ? ticket + 1 : 0);
    if (rc != LC_OK) die("lc_submit", rc);
}

static void submit_floor(floor_queue *f, uint32_t lane, uint64_t ticket) {
    if (floor_submit(f, lane, ticket, caller_time ? ticket + 1 : 0) != 0) die("floor_submit", -1);
}

static uint64_t steady_ours(lc_engine *e, uint32_t lanes, uint64_t next, uint64_t cycles,
                            uint64_t *log) {
    lc_dispatch d;
    for (uint64_t i = 0; i < cycles; i++) {
        int rc = lc_try_next(e, 0, &d);
        if (rc != LC_DISPATCHED) die("lc_try_next", rc);
        rc = lc_complete(e, d.lane, LC_OUTCOME_COMPLETED);
        if (rc != LC_OK) die("lc_complete", rc);
        submit_ours(e, (uint32_t)(next % lanes), next);
        next++;
        if (log) log[i] = d.ticket;
    }
    return next;
}

static uint64_t steady_floor(floor_queue *f, uint32_t lanes, uint64_t next, uint64_t cycles,
                             uint64_t *log) {
    floor_dispatch d;
    for (uint64_t i = 0; i < cycles; i++) {
        if (floor_try_next(f, &d) != 1) die("floor_try_next", 0);
        if (floor_complete(f, d.lane) != 0) die("floor_complete", -1);
        submit_floor(f, (uint32_t)(next % lanes), next);
        next++;
        if (log) log[i] = d.ticket;
    }
    return next;
}

/* One fill and drain: returns the next ticket number. */
static uint64_t drain_ours(lc_engine *e, uint32_t lanes, uint64_t next, uint64_t *log) {
    uint64_t n = (uint64_t)lanes * BACKLOG_PER_LANE;
    for (uint64_t i = 0; i < n; i++, next++) submit_ours(e, (uint32_t)(next % lanes), next);
    lc_dispatch d;
    for (uint64_t i = 0; i < n; i++) {
        int rc = lc_try_next(e, 0, &d);
        if (rc != LC_DISPATCHED) die("lc_try_next", rc);
        rc = lc_complete(e, d.lane, LC_OUTCOME_COMPLETED);
        if (rc != LC_OK) die("lc_complete", rc);
        if (log) log[i] = d.ticket;
    }
    return next;
}

static uint64_t drain_floor(floor_queue *f, uint32_t lanes, uint64_t next, uint64_t *log) {
    uint64_t n = (uint64_t)lanes * BACKLOG_PER_LANE;
    for (uint64_t i = 0; i < n; i++, next++) submit_floor(f, (uint32_t)(next % lanes), next);
    floor_dispatch d;
    for (uint64_t i = 0; i < n; i++) {
        if (floor_try_next(f, &d) != 1) die("floor_try_next", 0);
        if (floor_complete(f, d.lane) != 0) die("floor_complete", -1);
        if (log) log[i] = d.ticket;
    }
    return next;
}

/* Runs about `cycles` cycles of the workload (drain: whole fills, so at
 * least `cycles`); returns the cycles run. */
static uint64_t run(queue *q, int work, uint32_t lanes, uint64_t *next, uint64_t cycles,
                    uint64_t *log) {
    if (work == WORK_STEADY) {
        *next = q->engine ? steady_ours(q->engine, lanes, *next, cycles, log)
                          : steady_floor(q->floor, lanes, *next, cycles, log);
        return cycles;
    }
    uint64_t per_fill = (uint64_t)lanes * BACKLOG_PER_LANE, done = 0;
    while (done < cycles) {
        *next = q->engine ? drain_ours(q->engine, lanes, *next, log ? log + done : NULL)
                          : drain_floor(q->floor, lanes, *next, log ? log + done : NULL);
        done += per_fill;
    }
    return done;
}

/* A fresh queue, ready for the workload (steady: the backlog submitted). */
static queue prepared(int side, int work, uint32_t lanes, uint64_t *next) {
    queue q = queue_new(side, lanes, 0);
    *next = 0;
    if (work == WORK_STEADY) {
        for (; *next < (uint64_t)lanes * BACKLOG_PER_LANE; (*next)++) {
            if (q.engine)
                submit_ours(q.engine, (uint32_t)(*next % lanes), *next);
            else
                submit_floor(q.floor, (uint32_t)(*next % lanes), *next);
        }
    }
    return q;
}

/* One round of one side: ns of thread CPU time per cycle. */
static double round_ns(int side, int work, uint32_t lanes) {
    uint64_t next;
    queue q = prepared(side, work, lanes, &next);
    run(&q, work, lanes, &next, WARMUP_CYCLES, NULL);
    uint64_t cycles = 0, start = clock_ns(CLOCK_THREAD_CPUTIME_ID), elapsed;
    do {
        cycles += run(&q, work, lanes, &next, BATCH, NULL);
        elapsed = clock_ns(CLOCK_THREAD_CPUTIME_ID) - start;
    } while (elapsed < min_run_ns);
    queue_free(&q);
    return (double)elapsed / (double)cycles;
}

/* Every side must dispatch the same tickets in the same order. */
static void check_same_order(int work, uint32_t lanes) {
    uint64_t cycles = (uint64_t)lanes * BACKLOG_PER_LANE * 3 + 5000;
    uint64_t *logs[SIDES];
    for (int s = 0; s < SIDES; s++) {
        logs[s] = malloc((size_t)(cycles + (uint64_t)lanes * BACKLOG_PER_LANE) * sizeof **logs);
        if (!logs[s]) die("malloc", 0);
        uint64_t next;
        queue q = prepared(s, work, lanes, &next);
        run(&q, work, lanes, &next, cycles, logs[s]);
        queue_free(&q);
    }
    for (int s = 1; s < SIDES; s++) {
        if (memcmp(logs[0], logs[s], (size_t)cycles * sizeof **logs) != 0) {
            fprintf(stderr, "lane_bench: %s dispatches in another order than ours (%u lanes)\n",
                    SIDE_NAMES[s], lanes);
            exit(1);
        }
    }
    for (int s = 0; s < SIDES; s++) free(logs[s]);
}

/* ---- producer + worker (information only) ---------------------------------------- */

enum { TWO_THREAD_LANES = 6, TWO_THREAD_TICKETS = 500000, MAX_BACKLOG = 4096 };

static void *producer_main(void *arg) {
    queue *q = arg;
    for (uint64_t t = 0; t < TWO_THREAD_TICKETS; t++) {
        /* Keep the backlog bounded, as a real producer facing back-pressure. */
        if (t % 256 == 0) {
            for (;;) {
                uint64_t pending = 0, active;
                if (q->engine)
                    lc_totals(q->engine, &pending, &active);
                else
                    pending = floor_pending(q->floor);
                if (pending < MAX_BACKLOG) break;
                sched_yield();
            }
        }
        if (q->engine)
            submit_ours(q->engine, (uint32_t)(t % TWO_THREAD_LANES), t);
        else
            submit_floor(q->floor, (uint32_t)(t % TWO_THREAD_LANES), t);
    }
    return NULL;
}

static void *worker_main(void *arg) {
    queue *q = arg;
    if (q->engine) {
        lc_dispatch d;
        int rc = lc_wait_next(q->engine, -1, &d);
        while (rc == LC_DISPATCHED)
            rc = lc_complete_and_wait(q->engine, d.lane, LC_OUTCOME_COMPLETED, -1, &d);
        if (rc != LC_ERR_STOPPED) die("lc_complete_and_wait", rc);
    } else {
        floor_dispatch d;
        int rc = floor_wait_next(q->floor, &d);
        while (rc == 1) rc = floor_complete_and_wait(q->floor, d.lane, &d);
    }
    return NULL;
}

/* ns of wall time per ticket. */
static double two_thread_ns(int side) {
    queue q = queue_new(side, TWO_THREAD_LANES, 0);
    pthread_t producer, worker;
    if (pthread_create(&worker, NULL, worker_main, &q) != 0) die("pthread_create", 0);
    uint64_t start = clock_ns(CLOCK_MONOTONIC);
    if (pthread_create(&producer, NULL, producer_main, &q) != 0) die("pthread_create", 0);
    pthread_join(producer, NULL);
    if (q.engine) {
        if (lc_wait_idle(q.engine, -1) != 1) die("lc_wait_idle", 0);
    } else {
        floor_wait_idle(q.floor);
    }
    uint64_t elapsed = clock_ns(CLOCK_MONOTONIC) - start;
    if (q.engine)
        lc_stop(q.engine);
    else
        floor_stop(q.floor);
    pthread_join(worker, NULL);
    queue_free(&q);
    return (double)elapsed / TWO_THREAD_TICKETS;
}

/* ---- rounds and the table ---------------------------------------------------------- */

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct spread {
    double median, min, max;
} spread;

static spread spread_of(double *ns, int n) {
    qsort(ns, (size_t)n, sizeof ns[0], compare_doubles);
    double median = n % 2 ? ns[n / 2] : (ns[n / 2 - 1] + ns[n / 2]) / 2;
    return (spread){median, ns[0], ns[n - 1]};
}

/* Rounds of every side, the order rotating each round; one spread per side. */
static void measure(int work, uint32_t lanes, int two_thread, spread out[SIDES]) {
    double *ns = malloc((size_t)SIDES * (size_t)rounds * sizeof *ns);
    if (!ns) die("malloc", 0);
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < SIDES; k++) {
            int s = (r + k) % SIDES;
            ns[s * rounds + r] = two_thread ? two_thread_ns(s) : round_ns(s, work, lanes);
        }
    }
    for (int s = 0; s < SIDES; s++) out[s] = spread_of(ns + s * rounds, rounds);
    free(ns);
}

static void print_row(const char *label, const spread sides[SIDES], double target) {
    int f = sides[SIDE_FLOOR_LANES].median <= sides[SIDE_FLOOR_TICKETS].median
                ? SIDE_FLOOR_LANES
                : SIDE_FLOOR_TICKETS;
    double ratio = sides[SIDE_OURS].median / sides[f].median;
    char ours[48], floor_[48], other[48], tgt[16];
    snprintf(ours, sizeof ours, "%.1f (%.1f–%.1f)", sides[SIDE_OURS].median, sides[SIDE_OURS].min,
             sides[SIDE_OURS].max);
    snprintf(floor_, sizeof floor_, "%.1f (%.1f–%.1f) %s", sides[f].median, sides[f].min,
             sides[f].max, SIDE_NAMES[f]);
    int o = SIDE_FLOOR_LANES + SIDE_FLOOR_TICKETS - f;
    snprintf(other, sizeof other, "%.1f %s", sides[o].median, SIDE_NAMES[o]);
    if (target > 0)
        snprintf(tgt, sizeof tgt, "<= %.1fx", target);
    else
        snprintf(tgt, sizeof tgt, "-");
    printf("| %s | %s | %s | %s | %.2fx | %s | %s |\n", label, ours, floor_, other, ratio, tgt,
           target <= 0 ? "-" : ratio <= target ? "yes" : "NO");
    fflush(stdout);
}

static void *no_op(void *arg) { return arg; }

/* glibc (x86) takes an uncontended mutex with a plain store, no atomic
 * instruction, for as long as the process has never had a second thread
 * (__libc_single_threaded). No process that embeds the engine is like that
 * (Python's workers, Node's libuv and V8 threads), so by default the bench
 * starts and joins one thread before anything is measured. */
static void make_process_multithreaded(void) {
    pthread_t t;
    if (pthread_create(&t, NULL, no_op, NULL) != 0) die("pthread_create", 0);
    pthread_join(t, NULL);
}

#define CALLER_TIME_TITLE "Submits pass the time (now_ns > 0): no clock read on either side."
#define CLOCK_TITLE                                                                              \
    "Submits pass now_ns 0: each reads the clock for the ticket's enqueue time (the floor "      \
    "before its lock)."

static void print_header(void) {
    printf("| workload, lanes | ours ns | floor ns, design | other floor design | ours / floor "
           "| target | met? |\n");
    printf("|---|---:|---:|---:|---:|---:|---|\n");
}

static void usage(void) {
    fprintf(stderr,
            "usage: lane_bench [--rounds N] [--min-ms MS] [--caller-time | --clock]\n"
            "                  [--single-threaded-process]\n"
            "       lane_bench --profile ours|lanes|tickets --lanes N --cycles C [--drain]\n"
            "                  [--caller-time] [--single-threaded-process]\n");
    exit(2);
}

/* The profiled region of --profile (see the header comment). */
__attribute__((noinline)) uint64_t profiled_cycles(queue *q, int work, uint32_t lanes,
                                                   uint64_t *next, uint64_t cycles) {
    return run(q, work, lanes, next, cycles, NULL);
}

static int profile(const char *side_name, uint32_t lanes, uint64_t cycles, int work) {
    int side = -1;
    for (int s = 0; s < SIDES; s++)
        if (strcmp(side_name, SIDE_NAMES[s]) == 0) side = s;
    if (side < 0 || lanes == 0 || cycles == 0) usage();
    uint64_t next;
    queue q = prepared(side, work, lanes, &next);
    run(&q, work, lanes, &next, WARMUP_CYCLES, NULL);
    uint64_t start = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    uint64_t done = profiled_cycles(&q, work, lanes, &next, cycles);
    double ns = (double)(clock_ns(CLOCK_THREAD_CPUTIME_ID) - start) / (double)done;
    queue_free(&q);
    printf("%s, %u lanes, %s: %llu cycles, %.1f ns each (thread CPU time)\n", side_name, lanes,
           work == WORK_STEADY ? "steady" : "drain", (unsigned long long)done, ns);
    return 0;
}

int main(int argc, char **argv) {
    const char *profile_side = NULL;
    uint32_t profile_lanes = 0;
    uint64_t profile_cycles = 0;
    int profile_work = WORK_STEADY;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--min-ms") == 0 && i + 1 < argc)
            min_run_ns = (uint64_t)atoll(argv[++i]) * 1000000ull;
        else if (strcmp(argv[i], "--profile") == 0 && i + 1 < argc)
            profile_side = argv[++i];
        else if (strcmp(argv[i], "--lanes") == 0 && i + 1 < argc)
            profile_lanes = (uint32_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--cycles") == 0 && i + 1 < argc)
            profile_cycles = (uint64_t)atoll(argv[++i]);
        else if (strcmp(argv[i], "--caller-time") == 0)
            caller_time = 1, only_mode = 0;
        else if (strcmp(argv[i], "--clock") == 0)
            only_mode = 1;
        else if (strcmp(argv[i], "--single-threaded-process") == 0)
            single_threaded_process = 1;
        else if (strcmp(argv[i], "--drain") == 0)
            profile_work = WORK_DRAIN;
        else
            usage();
    }
    if (!single_threaded_process) make_process_multithreaded();
    if (profile_side) return profile(profile_side, profile_lanes, profile_cycles, profile_work);
    if (rounds < 3) {
        fprintf(stderr, "lane_bench: at least 3 rounds\n");
        return 2;
    }

    printf("lane_bench: ns per cycle (submit + dispatch + complete), backlog %d per lane; "
           "median (min–max) of %d rounds of >= %.2f s thread CPU time per side, sides "
           "alternating; floor: the cheaper of c_floor.h's two designs (lanes: lane heap + FIFO "
           "per lane, tickets: one heap of tickets), the other beside it\n",
           BACKLOG_PER_LANE, rounds, (double)min_run_ns / 1e9);
    size_t cases = sizeof LANE_COUNTS / sizeof LANE_COUNTS[0];
    for (int mode = 0; mode < 2; mode++) {
        if (only_mode >= 0 && mode != only_mode) continue;
        caller_time = mode == 0;
        for (int work = WORK_STEADY; work <= WORK_DRAIN; work++)
            for (size_t i = 0; i < cases; i++) check_same_order(work, LANE_COUNTS[i]);
        printf("\n%s\n\n", caller_time ? CALLER_TIME_TITLE : CLOCK_TITLE);
        print_header();
        for (int work = WORK_STEADY; work <= WORK_DRAIN; work++) {
            for (size_t i = 0; i < cases; i++) {
                spread sides[SIDES];
                measure(work, LANE_COUNTS[i], 0, sides);
                char label[48];
                snprintf(label, sizeof label, "%s, %u", work == WORK_STEADY ? "steady" : "drain",
                         LANE_COUNTS[i]);
                print_row(label, sides, TARGETS[i]);
            }
        }
    }
    /* Last: starting threads ends a --single-threaded-process run's premise. */
    printf("\nProducer + worker threads, %d lanes, ns of wall time per ticket "
           "(information, no target):\n\n", TWO_THREAD_LANES);
    print_header();
    for (int mode = 0; mode < 2; mode++) {
        if (only_mode >= 0 && mode != only_mode) continue;
        caller_time = mode == 0;
        spread sides[SIDES];
        measure(WORK_STEADY, TWO_THREAD_LANES, 1, sides);
        print_row(caller_time ? "2 threads, caller's time" : "2 threads, clock", sides, 0);
    }
    return 0;
}
