/* timing_log.h — timing samples (queue wait, run time) that the engine
 * records at dispatch and at finish, buffered until the wrapper takes them
 * for its metrics. Recording is two stores (and now and then a doubling);
 * sorting by lane is left to the take, which happens once per thousands of
 * samples. Bounded: past `max` samples, new ones are dropped and counted.
 * Not thread-safe: the engine's lock guards it. */
#ifndef TIMING_LOG_H
#define TIMING_LOG_H

#include <stdint.h>

typedef struct timing_log {
    uint32_t *keys;     /* lane * 2 + kind (LC_SAMPLE_WAIT / LC_SAMPLE_RUN) */
    uint64_t *values_ns;
    uint32_t len;
    uint32_t cap;       /* allocated */
    uint32_t max;       /* 0: timing is off */
    uint64_t dropped;   /* samples lost to a full log since the last take */
} timing_log;

void timing_log_init(timing_log *log);
/* Turns recording on with room for up to `max` samples (0 turns it off),
 * dropping what is buffered. */
void timing_log_set_max(timing_log *log, uint32_t max);
void timing_log_free(timing_log *log);
/* Records a sample; drops (and counts) it when the log is at its maximum
 * or cannot grow. */
void timing_log_add(timing_log *log, uint32_t key, uint64_t value_ns);

/* Moves the oldest min(len, out_cap) samples into out_ms (milliseconds),
 * grouped by key and in recording order within a key; every key must be
 * below key_count. run_keys/run_counts receive one entry per key present (at
 * most key_count). Resets `dropped`. Returns the number of runs, or -1 when
 * scratch memory could not be allocated (nothing is taken). */
int timing_log_take(timing_log *log, uint32_t key_count, double *out_ms, uint32_t out_cap,
                    uint32_t *run_keys, uint32_t *run_counts);

#endif /* TIMING_LOG_H */
