/* timing_log.c — see timing_log.h. */
#include "timing_log.h"

#include <stdlib.h>
#include <string.h>

#define FIRST_CAP 1024u

void timing_log_init(timing_log *log) {
    log->keys = NULL;
    log->values_ns = NULL;
    log->len = 0;
    log->cap = 0;
    log->max = 0;
    log->dropped = 0;
}

void timing_log_free(timing_log *log) {
    free(log->keys);
    free(log->values_ns);
    timing_log_init(log);
}

void timing_log_set_max(timing_log *log, uint32_t max) {
    timing_log_free(log);
    log->max = max;
}

/* Doubles the arrays (at most to `max`); 0, or -1 when it cannot. */
static int grow(timing_log *log) {
    if (log->cap >= log->max) return -1;
    uint32_t cap = log->cap ? log->cap * 2 : FIRST_CAP;
    if (cap > log->max || cap < log->cap) cap = log->max;
    uint32_t *keys = realloc(log->keys, (size_t)cap * sizeof *keys);
    if (!keys) return -1;
    log->keys = keys;
    uint64_t *values = realloc(log->values_ns, (size_t)cap * sizeof *values);
    if (!values) return -1; /* keys grew alone: harmless, cap stays */
    log->values_ns = values;
    log->cap = cap;
    return 0;
}

void timing_log_add(timing_log *log, uint32_t key, uint64_t value_ns) {
    if (log->len == log->cap && grow(log) != 0) {
        log->dropped++;
        return;
    }
    log->keys[log->len] = key;
    log->values_ns[log->len] = value_ns;
    log->len++;
}

/* A counting sort by key: one pass to count, one to place. Stable, so each
 * key's samples keep their recording order. */
int timing_log_take(timing_log *log, uint32_t key_count, double *out_ms, uint32_t out_cap,
                    uint32_t *run_keys, uint32_t *run_counts) {
    uint32_t taken = log->len < out_cap ? log->len : out_cap;
    uint32_t *next = calloc((size_t)key_count + 1, sizeof *next);
    if (!next) return -1;
    uint32_t *counts = next + 1; /* counts[k] lives at next[k + 1] */
    for (uint32_t i = 0; i < taken; i++) counts[log->keys[i]]++;
    int runs = 0;
    for (uint32_t k = 0; k < key_count; k++) {
        if (counts[k]) {
            run_keys[runs] = k;
            run_counts[runs] = counts[k];
            runs++;
        }
    }
    /* Prefix sums turn next[k] into where key k's first sample goes. */
    for (uint32_t k = 1; k <= key_count; k++) next[k] += next[k - 1];
    for (uint32_t i = 0; i < taken; i++)
        out_ms[next[log->keys[i]]++] = (double)log->values_ns[i] / 1e6;
    free(next);
    uint32_t left = log->len - taken;
    if (left) {
        memmove(log->keys, log->keys + taken, (size_t)left * sizeof *log->keys);
        memmove(log->values_ns, log->values_ns + taken, (size_t)left * sizeof *log->values_ns);
    }
    log->len = left;
    log->dropped = 0;
    return runs;
}
