/* sample_buckets.h — groups samples into log-linear histogram buckets: 64
 * per power of two, keyed by a double's top 18 bits (sign, exponent, 6
 * mantissa bits) shifted down by 40, the low 6 bits zeroed. The Python
 * wrapper's histograms use the same keys, so a batch bucketed here merges
 * into them; bucketing in C keeps a float object per sample from ever
 * being made. */
#ifndef SAMPLE_BUCKETS_H
#define SAMPLE_BUCKETS_H

#include <stdint.h>

static inline uint32_t sample_bucket_key(double value) {
    union {
        double d;
        uint64_t u;
    } bits = {value};
    return (uint32_t)((bits.u >> 40) & 0xFFFFC0u);
}

#endif /* SAMPLE_BUCKETS_H */
