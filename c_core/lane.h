/* lane.h — one lane's scheduling state (internal to the engine). */
#ifndef LANE_H
#define LANE_H

#include <stdint.h>

#include "ticket_ring.h"

/* The two heaps a lane can sit in; see lane_core.c for what each means. */
enum { LANE_MAX_BOOSTS = 8 };
enum { HEAP_READY = 0, HEAP_RESERVED = 1, HEAP_KINDS = 2 };

typedef struct lane {
    uint32_t index;
    int32_t priority;
    uint32_t min_concurrency;
    uint32_t max_concurrency;
    uint32_t paused;
    uint32_t active;
    ticket_ring pending;
    int64_t heap_pos[HEAP_KINDS]; /* position in each heap, -1 when absent */
    uint64_t delayed; /* tickets of this lane parked in the engine's delay heap */

    /* Rate limit (token bucket; rate 0 = unlimited). A lane out of tokens is
     * throttled: out of the heaps until `throttled_until`. */
    double rate_per_ns;
    double burst;
    double tokens;
    uint64_t refilled_ns;
    uint64_t throttled_until;

    /* Deadline boost: the front ticket's age lowers the priority number. */
    uint64_t boost_deadline_ns; /* 0 = no boost */
    uint32_t boost_count;
    uint64_t boost_before_ns[LANE_MAX_BOOSTS]; /* time left before the deadline, descending */
    int32_t boost_amount[LANE_MAX_BOOSTS];
    uint64_t submitted, dispatched, completed, failed, cancelled, retried;
} lane;

#endif /* LANE_H */
