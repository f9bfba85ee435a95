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
    lane **items = realloc(heap->items, (size_t)cap * sizeof *items);
    if (!items) return -1;
    heap->items = items;
    heap->cap = cap;
    return 0;
}

/* Only lanes with pending work are ever in a heap, so the front exists. */
static int more_urgent(const lane *a, const lane *b) {
    if (a->priority != b->priority) return a->priority < b->priority;
    return ring_front(&a->pending)->seq < ring_front(&b->pending)->seq;
}

static void place(lane_heap *heap, uint32_t pos, lane *l) {
    heap->items[pos] = l;
    l->heap_pos[heap->kind] = pos;
}

static void sift_up(lane_heap *heap, uint32_t pos) {
    lane *l = heap->items[pos];
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!more_urgent(l, heap->items[parent])) break;
        place(heap, pos, heap->items[parent]);
        pos = parent;
    }
    place(heap, pos, l);
}

static void sift_down(lane_heap *heap, uint32_t pos) {
    lane *l = heap->items[pos];
    for (;;) {
        uint32_t child = 2 * pos + 1;
        if (child >= heap->len) break;
        if (child + 1 < heap->len && more_urgent(heap->items[child + 1], heap->items[child]))
            child++;
        if (!more_urgent(heap->items[child], l)) break;
        place(heap, pos, heap->items[child]);
        pos = child;
    }
    place(heap, pos, l);
}

lane *heap_top(const lane_heap *heap) { return heap->len ? heap->items[0] : NULL; }

int heap_contains(const lane_heap *heap, const lane *l) { return l->heap_pos[heap->kind] >= 0; }

void heap_insert(lane_heap *heap, lane *l) {
    uint32_t pos = heap->len++;
    place(heap, pos, l);
    sift_up(heap, pos);
}

void heap_remove(lane_heap *heap, lane *l) {
    uint32_t pos = (uint32_t)l->heap_pos[heap->kind];
    l->heap_pos[heap->kind] = -1;
    lane *last = heap->items[--heap->len];
    if (last == l) return;
    place(heap, pos, last);
    heap_fix(heap, last);
}

void heap_fix(lane_heap *heap, lane *l) {
    uint32_t pos = (uint32_t)l->heap_pos[heap->kind];
    if (pos > 0 && more_urgent(l, heap->items[(pos - 1) / 2]))
        sift_up(heap, pos);
    else
        sift_down(heap, pos);
}
