/* lane_buckets.c — bucket counts for histograms: lc_buckets (see
 * lane_buckets.h for the key scheme). */
#include "lane_buckets.h"

#include <stdlib.h>

/* A sample's bucket key: the double's bits >> 40, the low 6 bits zeroed
 * (lane_buckets.h). The Python histograms compute the same key. */
static uint32_t bucket_key(double value) {
    union {
        double d;
        uint64_t u;
    } bits = {value};
    return (uint32_t)((bits.u >> 40) & 0xFFFFC0u);
}

/* An open-addressing table from bucket key to count, kept at most half
 * full. A histogram's samples spread over a few hundred buckets at most
 * (64 per power of two of the values' range), so it stays small. */
struct lc_buckets {
    uint32_t *keys;
    uint64_t *counts; /* 0 marks an empty slot */
    uint32_t slots;   /* a power of two, or 0 before the first sample */
    uint32_t distinct;
    uint64_t total;
    double sum, low, high;
};

lc_buckets *lc_buckets_new(void) {
    return calloc(1, sizeof(lc_buckets));
}

void lc_buckets_free(lc_buckets *b) {
    if (!b) return;
    free(b->keys);
    free(b->counts);
    free(b);
}

static uint32_t slot_of(uint32_t key, uint32_t slots) {
    return ((key >> 6) * 2654435761u) & (slots - 1);
}

/* Adds `count` to `key`'s bucket; the table must have a free slot. */
static void put(lc_buckets *b, uint32_t key, uint64_t count) {
    uint32_t slot = slot_of(key, b->slots);
    while (b->counts[slot] && b->keys[slot] != key) slot = (slot + 1) & (b->slots - 1);
    if (!b->counts[slot]) {
        b->keys[slot] = key;
        b->distinct++;
    }
    b->counts[slot] += count;
}

/* Doubles the table (or makes the first one); 0, or -1 with nothing changed. */
static int grow(lc_buckets *b) {
    uint32_t slots = b->slots ? b->slots * 2 : 64;
    uint32_t *keys = malloc((size_t)slots * sizeof *keys);
    uint64_t *counts = calloc(slots, sizeof *counts);
    if (!keys || !counts) {
        free(keys);
        free(counts);
        return -1;
    }
    lc_buckets old = *b;
    b->keys = keys;
    b->counts = counts;
    b->slots = slots;
    b->distinct = 0;
    for (uint32_t i = 0; i < old.slots; i++)
        if (old.counts[i]) put(b, old.keys[i], old.counts[i]);
    free(old.keys);
    free(old.counts);
    return 0;
}

int lc_buckets_add_ms(lc_buckets *b, const double *values, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        if (2 * (b->distinct + 1) > b->slots && grow(b) != 0) return LC_ERR_NOMEM;
        double value = values[i];
        if (b->total == 0 || value < b->low) b->low = value;
        if (b->total == 0 || value > b->high) b->high = value;
        b->sum += value;
        b->total++;
        put(b, bucket_key(value), 1);
    }
    return LC_OK;
}

uint32_t lc_buckets_distinct(const lc_buckets *b) {
    return b->distinct;
}

int lc_buckets_take(lc_buckets *b, uint32_t *keys, uint64_t *counts, uint32_t cap,
                    double *summary) {
    if (cap < b->distinct) return LC_ERR_INVALID;
    uint32_t n = 0;
    for (uint32_t i = 0; i < b->slots; i++) {
        if (b->counts[i]) {
            keys[n] = b->keys[i];
            counts[n] = b->counts[i];
            n++;
            b->counts[i] = 0;
        }
    }
    summary[0] = (double)b->total;
    summary[1] = b->sum;
    summary[2] = b->low;
    summary[3] = b->high;
    b->distinct = 0;
    b->total = 0;
    b->sum = b->low = b->high = 0.0;
    return (int)n;
}
