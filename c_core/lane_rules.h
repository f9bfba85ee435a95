/* lane_rules.h — the time-dependent rules of one lane: its token bucket
 * (rate limit) and its deadline boost. Pure functions of the lane and the
 * time; the engine's lock guards the lane. */
#ifndef LANE_RULES_H
#define LANE_RULES_H

#include <stdint.h>

#include "lane.h"

/* max_commands per window_ns; the bucket holds max_commands and starts full.
 * max_commands 0 removes the limit. */
void bucket_configure(lane *l, uint64_t max_commands, uint64_t window_ns, uint64_t now_ns);
/* Takes one token if there is one (refilling first); 1 if taken. */
int bucket_take(lane *l, uint64_t now_ns);
/* Whether a whole token is there (refilling first); takes none. */
int bucket_ready(lane *l, uint64_t now_ns);
/* When the bucket will next hold a whole token (> now_ns). */
uint64_t bucket_next_token_ns(const lane *l, uint64_t now_ns);

/* Boosts: count pairs (time before the deadline, amount), any order. */
void boost_configure(lane *l, uint64_t deadline_ns, const uint64_t *before_ns,
                     const int32_t *amounts, uint32_t count);
/* The lane's priority now, given when its front ticket was queued: the
 * base priority minus the boost of the narrowest window reached, and
 * -1 (above every lane) once the deadline has passed. */
int32_t effective_priority(const lane *l, uint64_t front_enqueued_ns, uint64_t now_ns);

#endif /* LANE_RULES_H */
