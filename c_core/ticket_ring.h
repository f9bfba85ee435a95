/* ticket_ring.h — a growable FIFO ring of pending tickets (one per lane).
 * Not thread-safe: the engine's lock guards it. */
#ifndef TICKET_RING_H
#define TICKET_RING_H

#include <stddef.h>
#include <stdint.h>

typedef struct ring_entry {
    uint64_t ticket;
    uint64_t seq;         /* engine-wide submission order: ties between lanes */
    uint64_t enqueued_ns; /* caller's clock at submit, handed back at dispatch */
} ring_entry;

typedef struct ticket_ring {
    ring_entry *items;
    size_t head;  /* index of the front entry */
    size_t count;
    size_t cap;   /* 0 or a power of two, so wrapping is a mask */
} ticket_ring;

void ring_init(ticket_ring *ring);
void ring_free(ticket_ring *ring);

/* Doubles the capacity (the front moves to 0); 0, or -1 when it could not
 * (the ring is unchanged). */
int ring_grow(ticket_ring *ring);

/* The calls below run on every submit and dispatch, so they are inline: a
 * call into another file costs as much as what they do. */

/* Returns 0, or -1 when growing failed (the ring is unchanged). */
static inline int ring_push_back(ticket_ring *ring, ring_entry entry) {
    if (ring->count == ring->cap && ring_grow(ring) != 0) return -1;
    ring->items[(ring->head + ring->count) & (ring->cap - 1)] = entry;
    ring->count++;
    return 0;
}

/* The ring must not be empty. */
static inline ring_entry ring_pop_front(ticket_ring *ring) {
    ring_entry entry = ring->items[ring->head];
    ring->head = (ring->head + 1) & (ring->cap - 1);
    ring->count--;
    return entry;
}

static inline const ring_entry *ring_front(const ticket_ring *ring) {
    return ring->count ? &ring->items[ring->head] : NULL;
}

/* Removes the first entry holding `ticket`; returns 1 if found, else 0. */
int ring_remove(ticket_ring *ring, uint64_t ticket);

#endif /* TICKET_RING_H */
