/* sample_buckets.c — lc_bucket_ms (see lane_core.h and sample_buckets.h). */
#include "sample_buckets.h"

#include <stdlib.h>

#include "lane_core.h"

/* An open-addressing table of the keys seen so far; a batch holds a few
 * thousand samples spread over a few hundred buckets at most. */
int lc_bucket_ms(const double *values, uint32_t n, uint32_t *keys, uint32_t *counts,
                 double *summary) {
    double sum = 0.0, low = 0.0, high = 0.0;
    uint32_t slots = 16;
    while (slots < 2 * n) slots *= 2;
    /* slot -> 1 + index into keys/counts; 0 = empty */
    uint32_t *table = calloc(slots, sizeof *table);
    if (!table) return LC_ERR_NOMEM;
    uint32_t distinct = 0;
    for (uint32_t i = 0; i < n; i++) {
        double value = values[i];
        sum += value;
        if (i == 0 || value < low) low = value;
        if (i == 0 || value > high) high = value;
        uint32_t key = sample_bucket_key(value);
        uint32_t slot = (key >> 6) * 2654435761u & (slots - 1);
        for (;;) {
            uint32_t at = table[slot];
            if (at == 0) {
                keys[distinct] = key;
                counts[distinct] = 1;
                table[slot] = ++distinct;
                break;
            }
            if (keys[at - 1] == key) {
                counts[at - 1]++;
                break;
            }
            slot = (slot + 1) & (slots - 1);
        }
    }
    free(table);
    summary[0] = sum;
    summary[1] = low;
    summary[2] = high;
    return (int)distinct;
}
