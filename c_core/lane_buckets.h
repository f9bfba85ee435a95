/*
 * lane_buckets.h — bucket counts for histograms of milliseconds (lc_buckets),
 * used by the wrappers' metrics. Not engine state: an lc_buckets is not tied
 * to an engine and is not thread-safe; the caller guards each one.
 *
 * The buckets are log-linear, 64 per power of two: a sample's key is its
 * double's top 18 bits (sign, exponent, 6 mantissa bits) shifted down by 40,
 * the low 6 bits zeroed. The Python wrapper's histograms use the same keys,
 * so a batch bucketed here merges into them; bucketing in C keeps a float
 * object per sample from ever being made. Samples are added in C and taken
 * out as (key, count) pairs only when the histogram is read.
 *
 * Return codes are lane_core.h's LC_* values.
 */
#ifndef LANE_BUCKETS_H
#define LANE_BUCKETS_H

#include <stdint.h>

#include "lane_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* cffi:begin -- up to "cffi:end", pylane/_build_ffi.py hands this text to
 * cffi's cdef(), like the section in lane_core.h: declarations only. */

typedef struct lc_buckets lc_buckets;

lc_buckets *lc_buckets_new(void);
void lc_buckets_free(lc_buckets *buckets);

/* Adds n samples (finite, >= 0); LC_OK, or LC_ERR_NOMEM with only the
 * samples before the failing one added. */
int lc_buckets_add_ms(lc_buckets *buckets, const double *values, uint32_t n);

/* The distinct buckets held. */
uint32_t lc_buckets_distinct(const lc_buckets *buckets);

/* Moves everything out and leaves it empty: each bucket's key and count
 * (cap must be at least lc_buckets_distinct, else LC_ERR_INVALID and
 * nothing moves) and summary[0..3] = count, sum, min, max. Returns the
 * number of buckets written. */
int lc_buckets_take(lc_buckets *buckets, uint32_t *keys, uint64_t *counts, uint32_t cap,
                    double *summary);

/* cffi:end */

#ifdef __cplusplus
}
#endif

#endif /* LANE_BUCKETS_H */
