/* lane_heap.h — an intrusive binary min-heap of lanes ordered by
 * (priority, submission order of the front pending ticket). Each lane stores
 * its own position, so removal and re-keying are O(log lanes). The keys are
 * copied into the heap's own array, so a sift compares contiguous entries
 * instead of chasing every lane and its ring (with thousands of lanes, those
 * cache misses were most of a dispatch's cost).
 * Not thread-safe: the engine's lock guards it. */
#ifndef LANE_HEAP_H
#define LANE_HEAP_H

#include <stdint.h>

#include "lane.h"

typedef struct heap_entry {
    uint64_t seq;     /* the lane's front ticket's submission order */
    int32_t priority; /* the lane's base priority */
    lane *lane;
} heap_entry;

typedef struct lane_heap {
    heap_entry *items;
    uint32_t len;
    uint32_t cap;
    int kind; /* which heap_pos slot of a lane this heap owns */
} lane_heap;

void heap_init(lane_heap *heap, int kind);
void heap_free(lane_heap *heap);

/* Makes room for `lanes` members so later inserts cannot fail. 0 or -1. */
int heap_reserve(lane_heap *heap, uint32_t lanes);

static inline lane *heap_top(const lane_heap *heap) {
    return heap->len ? heap->items[0].lane : NULL;
}

static inline int heap_contains(const lane_heap *heap, const lane *l) {
    return l->heap_pos[heap->kind] >= 0;
}

/* The lane must have pending tickets (its key is read from its front). */
void heap_insert(lane_heap *heap, lane *l);
void heap_remove(lane_heap *heap, lane *l);
/* Re-reads the lane's key (priority, front ticket) and restores order. */
void heap_fix(lane_heap *heap, lane *l);

#endif /* LANE_HEAP_H */
