/* lane_heap.c — see lane_heap.h. */
#include "lane_heap.h"

#include <stdlib.h>

void heap_init(lane_heap *heap, int kind) {
    heap->items = NULL;
    heap->len = 0;
    heap->cap = 0;
    heap->kind = kind;
}

void heap_free(lane_heap *heap) {
    free(heap->items);
    heap->items = NULL;
    heap->len = heap->cap = 0;
}

int heap_reserve(lane_heap *heap, uint32_t lanes) {
    if (lanes <= heap->cap) return 0;
    uint32_t cap = heap->cap ? heap->cap : 8;
    while (cap < lanes) cap *= 2;
    heap_entry *items = realloc(heap->items, (size_t)cap * sizeof *items);
    if (!items) return -1;
    heap->items = items;
    heap->cap = cap;
    return 0;
}

static heap_entry entry_of(lane *l) {
    heap_entry e = {ring_front(&l->pending)->seq, l->priority, l};
    return e;
}

static int more_urgent(const heap_entry *a, const heap_entry *b) {
    if (a->priority != b->priority) return a->priority < b->priority;
    return a->seq < b->seq;
}

static void place(lane_heap *heap, uint32_t pos, heap_entry e) {
    heap->items[pos] = e;
    e.lane->heap_pos[heap->kind] = pos;
}

static void sift_up(lane_heap *heap, uint32_t pos, heap_entry e) {
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!more_urgent(&e, &heap->items[parent])) break;
        place(heap, pos, heap->items[parent]);
        pos = parent;
    }
    place(heap, pos, e);
}

static void sift_down(lane_heap *heap, uint32_t pos, heap_entry e) {
    for (;;) {
        uint32_t child = 2 * pos + 1;
        if (child >= heap->len) break;
        if (child + 1 < heap->len && more_urgent(&heap->items[child + 1], &heap->items[child]))
            child++;
        if (!more_urgent(&heap->items[child], &e)) break;
        place(heap, pos, heap->items[child]);
        pos = child;
    }
    place(heap, pos, e);
}

/* Puts `e` at `pos`, moving it up or down as its key requires. */
static void settle(lane_heap *heap, uint32_t pos, heap_entry e) {
    if (pos > 0 && more_urgent(&e, &heap->items[(pos - 1) / 2]))
        sift_up(heap, pos, e);
    else
        sift_down(heap, pos, e);
}

void heap_insert(lane_heap *heap, lane *l) { sift_up(heap, heap->len++, entry_of(l)); }

void heap_remove(lane_heap *heap, lane *l) {
    uint32_t pos = (uint32_t)l->heap_pos[heap->kind];
    l->heap_pos[heap->kind] = -1;
    heap_entry last = heap->items[--heap->len];
    if (last.lane == l) return;
    settle(heap, pos, last);
}

void heap_fix(lane_heap *heap, lane *l) {
    settle(heap, (uint32_t)l->heap_pos[heap->kind], entry_of(l));
}
