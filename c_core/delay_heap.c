/* delay_heap.c — see delay_heap.h. */
#include "delay_heap.h"

#include <stdlib.h>

void delay_heap_init(delay_heap *heap) {
    heap->items = NULL;
    heap->len = heap->cap = 0;
}

void delay_heap_free(delay_heap *heap) {
    free(heap->items);
    delay_heap_init(heap);
}

static void swap(delayed_entry *a, delayed_entry *b) {
    delayed_entry t = *a;
    *a = *b;
    *b = t;
}

static void sift_up(delay_heap *heap, size_t pos) {
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (heap->items[parent].due_ns <= heap->items[pos].due_ns) break;
        swap(&heap->items[parent], &heap->items[pos]);
        pos = parent;
    }
}

static void sift_down(delay_heap *heap, size_t pos) {
    for (;;) {
        size_t child = 2 * pos + 1;
        if (child >= heap->len) break;
        if (child + 1 < heap->len && heap->items[child + 1].due_ns < heap->items[child].due_ns)
            child++;
        if (heap->items[pos].due_ns <= heap->items[child].due_ns) break;
        swap(&heap->items[pos], &heap->items[child]);
        pos = child;
    }
}

int delay_heap_push(delay_heap *heap, delayed_entry entry) {
    if (heap->len == heap->cap) {
        size_t cap = heap->cap ? heap->cap * 2 : 16;
        delayed_entry *items = realloc(heap->items, cap * sizeof *items);
        if (!items) return -1;
        heap->items = items;
        heap->cap = cap;
    }
    heap->items[heap->len] = entry;
    sift_up(heap, heap->len++);
    return 0;
}

const delayed_entry *delay_heap_peek(const delay_heap *heap) {
    return heap->len ? &heap->items[0] : NULL;
}

static void remove_at(delay_heap *heap, size_t pos) {
    heap->items[pos] = heap->items[--heap->len];
    if (pos < heap->len) {
        sift_up(heap, pos);
        sift_down(heap, pos);
    }
}

delayed_entry delay_heap_pop(delay_heap *heap) {
    delayed_entry top = heap->items[0];
    remove_at(heap, 0);
    return top;
}

int delay_heap_remove(delay_heap *heap, uint32_t lane, uint64_t ticket) {
    for (size_t i = 0; i < heap->len; i++) {
        if (heap->items[i].lane == lane && heap->items[i].ticket == ticket) {
            remove_at(heap, i);
            return 1;
        }
    }
    return 0;
}
