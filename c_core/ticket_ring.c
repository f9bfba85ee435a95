/* ticket_ring.c — see ticket_ring.h. */
#include "ticket_ring.h"

#include <stdlib.h>
#include <string.h>

enum { RING_INITIAL_CAP = 8 };

void ring_init(ticket_ring *ring) {
    ring->items = NULL;
    ring->head = 0;
    ring->count = 0;
    ring->cap = 0;
}

void ring_free(ticket_ring *ring) {
    free(ring->items);
    ring_init(ring);
}

static size_t slot(const ticket_ring *ring, size_t offset) {
    return (ring->head + offset) & (ring->cap - 1);
}

/* Unwraps the entries so the front sits at 0. */
int ring_grow(ticket_ring *ring) {
    size_t new_cap = ring->cap ? ring->cap * 2 : RING_INITIAL_CAP;
    ring_entry *items = malloc(new_cap * sizeof *items);
    if (!items) return -1;
    for (size_t i = 0; i < ring->count; i++) items[i] = ring->items[slot(ring, i)];
    free(ring->items);
    ring->items = items;
    ring->head = 0;
    ring->cap = new_cap;
    return 0;
}

/* Linear: cancelling a pending ticket is rare next to submit and dispatch. */
int ring_remove(ticket_ring *ring, uint64_t ticket) {
    for (size_t i = 0; i < ring->count; i++) {
        if (ring->items[slot(ring, i)].ticket != ticket) continue;
        for (size_t j = i; j + 1 < ring->count; j++)
            ring->items[slot(ring, j)] = ring->items[slot(ring, j + 1)];
        ring->count--;
        return 1;
    }
    return 0;
}
