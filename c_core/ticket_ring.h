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

/* Returns 0, or -1 when growing failed (the ring is unchanged). */
int ring_push_back(ticket_ring *ring, ring_entry entry);

/* The ring must not be empty. */
ring_entry ring_pop_front(ticket_ring *ring);
const ring_entry *ring_front(const ticket_ring *ring);

/* Removes the first entry holding `ticket`; returns 1 if found, else 0. */
int ring_remove(ticket_ring *ring, uint64_t ticket);

#endif /* TICKET_RING_H */
