/* delay_heap.h — tickets waiting for a time (retry back-off, delayed
 * submits), in a binary min-heap by due time. Not thread-safe: the engine's
 * lock guards it. */
#ifndef DELAY_HEAP_H
#define DELAY_HEAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct delayed_entry {
    uint64_t due_ns;
    uint64_t ticket;
    uint64_t enqueued_ns;
    uint32_t lane;
} delayed_entry;

typedef struct delay_heap {
    delayed_entry *items;
    size_t len;
    size_t cap;
} delay_heap;

void delay_heap_init(delay_heap *heap);
void delay_heap_free(delay_heap *heap);
/* 0, or -1 when growing failed (the heap is unchanged). */
int delay_heap_push(delay_heap *heap, delayed_entry entry);
/* The earliest entry, or NULL when empty. */
const delayed_entry *delay_heap_peek(const delay_heap *heap);
delayed_entry delay_heap_pop(delay_heap *heap);
/* Removes the entry for (lane, ticket); 1 if found, else 0. Linear. */
int delay_heap_remove(delay_heap *heap, uint32_t lane, uint64_t ticket);

#endif /* DELAY_HEAP_H */
