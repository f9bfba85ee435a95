/*
 * c_floor.h — the floor the C engine is measured against (bench/c_floor.c).
 *
 * The least a thread-safe priority queue of lanes can cost for the work the
 * engine bench does: one process, one pthread mutex and condition variables,
 * "the most urgent lane first (lowest priority number, ties to the older
 * front ticket), FIFO inside a lane", every submit stamped with the time it
 * was queued (handed back at dispatch, as lc_dispatch.enqueued_ns is) and a
 * per-lane running count that complete gives back. Nothing else: no lane
 * maximum, reservation, pause, rate limit, boost, delayed ticket, counters or
 * timing samples.
 *
 * Two designs, so the bench can take the cheaper one:
 *   FLOOR_LANE_HEAP   a binary heap of the lanes that have pending tickets,
 *                     keyed by (priority, front ticket's submission order),
 *                     and a FIFO ring per lane (the engine's design);
 *   FLOOR_TICKET_HEAP one binary heap of every pending ticket keyed by
 *                     (priority, submission order); with fixed priorities it
 *                     gives the same order, but it cannot step over a lane
 *                     that may not run (full, paused), so the engine could not
 *                     use it.
 * Each public call takes the lock once, like the engine's.
 */
#ifndef C_FLOOR_H
#define C_FLOOR_H

#include <stdint.h>

enum { FLOOR_LANE_HEAP = 0, FLOOR_TICKET_HEAP = 1 };

typedef struct floor_queue floor_queue;

typedef struct floor_dispatch {
    uint32_t lane;
    uint64_t ticket;
    uint64_t enqueued_ns;
} floor_dispatch;

floor_queue *floor_new(int design);
void floor_free(floor_queue *q);
const char *floor_design_name(int design);

/* Adds a lane (priority >= 0, lower is more urgent); its index or -1. */
int floor_lane_add(floor_queue *q, int32_t priority);

/* Appends a ticket to its lane; now_ns 0 reads CLOCK_MONOTONIC (before the
 * lock is taken). Wakes one waiting worker. 0, or -1 (no memory, no lane). */
int floor_submit(floor_queue *q, uint32_t lane, uint64_t ticket, uint64_t now_ns);

/* The most urgent pending ticket: 1 and *out filled, or 0 if none. */
int floor_try_next(floor_queue *q, floor_dispatch *out);

/* Ends one running ticket of the lane: 0, or -1 if nothing runs there. */
int floor_complete(floor_queue *q, uint32_t lane);

/* Blocking: 1 with *out filled, or -1 once floor_stop was called. */
int floor_wait_next(floor_queue *q, floor_dispatch *out);
int floor_complete_and_wait(floor_queue *q, uint32_t lane, floor_dispatch *out);
/* Blocks until nothing is pending or running. */
void floor_wait_idle(floor_queue *q);
uint64_t floor_pending(floor_queue *q);
void floor_stop(floor_queue *q);

#endif /* C_FLOOR_H */
