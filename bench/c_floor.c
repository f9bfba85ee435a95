/* c_floor.c — the floor for the engine bench; see c_floor.h. */
#define _POSIX_C_SOURCE 200809L
#include "c_floor.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

typedef struct floor_entry { /* one pending ticket */
    uint64_t ticket;
    uint64_t seq;
    uint64_t enqueued_ns;
} floor_entry;

typedef struct floor_lane {
    int32_t priority;
    uint32_t active;
    int32_t heap_pos; /* FLOOR_LANE_HEAP: position in the heap, -1 when absent */
    uint32_t head, count, cap; /* FIFO ring, cap a power of two */
    floor_entry *ring;
} floor_lane;

typedef struct lane_key { /* FLOOR_LANE_HEAP entry: the key copied beside the lane */
    uint64_t seq;
    int32_t priority;
    uint32_t lane;
} lane_key;

typedef struct ticket_key { /* FLOOR_TICKET_HEAP entry */
    uint64_t seq;
    int32_t priority;
    uint32_t lane;
    uint64_t ticket;
    uint64_t enqueued_ns;
} ticket_key;

struct floor_queue {
    pthread_mutex_t lock;
    pthread_cond_t work_cond;
    pthread_cond_t idle_cond;
    int design;
    floor_lane *lanes;
    uint32_t lane_count, lane_cap;
    lane_key *lheap; /* FLOOR_LANE_HEAP, room for every lane */
    uint32_t lheap_len;
    ticket_key *theap; /* FLOOR_TICKET_HEAP */
    uint32_t theap_len, theap_cap;
    uint64_t next_seq;
    uint64_t pending, active;
    uint32_t work_waiters, idle_waiters;
    int stopped;
};

static uint64_t now_monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const char *floor_design_name(int design) {
    return design == FLOOR_LANE_HEAP ? "lane heap + FIFO per lane" : "one heap of tickets";
}

floor_queue *floor_new(int design) {
    floor_queue *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->work_cond, &attr);
    pthread_cond_init(&q->idle_cond, &attr);
    pthread_condattr_destroy(&attr);
    q->design = design;
    return q;
}

void floor_free(floor_queue *q) {
    if (!q) return;
    for (uint32_t i = 0; i < q->lane_count; i++) free(q->lanes[i].ring);
    free(q->lanes);
    free(q->lheap);
    free(q->theap);
    pthread_cond_destroy(&q->work_cond);
    pthread_cond_destroy(&q->idle_cond);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

int floor_lane_add(floor_queue *q, int32_t priority) {
    if (priority < 0) return -1;
    pthread_mutex_lock(&q->lock);
    int rc = -1;
    if (q->lane_count == q->lane_cap) {
        uint32_t cap = q->lane_cap ? q->lane_cap * 2 : 8;
        floor_lane *lanes = realloc(q->lanes, (size_t)cap * sizeof *lanes);
        lane_key *heap = realloc(q->lheap, (size_t)cap * sizeof *heap);
        if (lanes) q->lanes = lanes;
        if (heap) q->lheap = heap;
        if (!lanes || !heap) goto out;
        q->lane_cap = cap;
    }
    floor_lane *l = &q->lanes[q->lane_count];
    *l = (floor_lane){.priority = priority, .heap_pos = -1};
    rc = (int)q->lane_count++;
out:
    pthread_mutex_unlock(&q->lock);
    return rc;
}

/* ---- FLOOR_LANE_HEAP --------------------------------------------------------- */

static inline int lane_key_before(const lane_key *a, const lane_key *b) {
    return a->priority != b->priority ? a->priority < b->priority : a->seq < b->seq;
}

static inline void lheap_put(floor_queue *q, uint32_t pos, lane_key k) {
    q->lheap[pos] = k;
    q->lanes[k.lane].heap_pos = (int32_t)pos;
}

static inline void lheap_sift_up(floor_queue *q, uint32_t pos, lane_key k) {
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!lane_key_before(&k, &q->lheap[parent])) break;
        lheap_put(q, pos, q->lheap[parent]);
        pos = parent;
    }
    lheap_put(q, pos, k);
}

static inline void lheap_sift_down(floor_queue *q, uint32_t pos, lane_key k) {
    uint32_t len = q->lheap_len;
    for (;;) {
        uint32_t child = 2 * pos + 1;
        if (child >= len) break;
        if (child + 1 < len && lane_key_before(&q->lheap[child + 1], &q->lheap[child])) child++;
        if (!lane_key_before(&q->lheap[child], &k)) break;
        lheap_put(q, pos, q->lheap[child]);
        pos = child;
    }
    lheap_put(q, pos, k);
}

static inline int ring_push(floor_lane *l, floor_entry e) {
    if (l->count == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 8;
        floor_entry *ring = malloc((size_t)cap * sizeof *ring);
        if (!ring) return -1;
        for (uint32_t i = 0; i < l->count; i++) ring[i] = l->ring[(l->head + i) & (l->cap - 1)];
        free(l->ring);
        l->ring = ring;
        l->head = 0;
        l->cap = cap;
    }
    l->ring[(l->head + l->count) & (l->cap - 1)] = e;
    l->count++;
    return 0;
}

static inline int lanes_push(floor_queue *q, uint32_t lane, uint64_t ticket, uint64_t now_ns) {
    floor_lane *l = &q->lanes[lane];
    floor_entry e = {ticket, q->next_seq, now_ns};
    if (ring_push(l, e) != 0) return -1;
    if (l->count == 1) lheap_sift_up(q, q->lheap_len++, (lane_key){e.seq, l->priority, lane});
    return 0;
}

static inline void lanes_pop(floor_queue *q, floor_dispatch *out) {
    uint32_t lane = q->lheap[0].lane;
    floor_lane *l = &q->lanes[lane];
    floor_entry e = l->ring[l->head];
    l->head = (l->head + 1) & (l->cap - 1);
    l->count--;
    if (l->count) { /* re-keyed by its new front, which is younger: down */
        lheap_sift_down(q, 0, (lane_key){l->ring[l->head].seq, l->priority, lane});
    } else {
        l->heap_pos = -1;
        lane_key last = q->lheap[--q->lheap_len];
        if (q->lheap_len) lheap_sift_down(q, 0, last);
    }
    l->active++;
    out->lane = lane;
    out->ticket = e.ticket;
    out->enqueued_ns = e.enqueued_ns;
}

/* ---- FLOOR_TICKET_HEAP ------------------------------------------------------- */

static inline int ticket_key_before(const ticket_key *a, const ticket_key *b) {
    return a->priority != b->priority ? a->priority < b->priority : a->seq < b->seq;
}

static inline int tickets_push(floor_queue *q, uint32_t lane, uint64_t ticket, uint64_t now_ns) {
    if (q->theap_len == q->theap_cap) {
        uint32_t cap = q->theap_cap ? q->theap_cap * 2 : 64;
        ticket_key *heap = realloc(q->theap, (size_t)cap * sizeof *heap);
        if (!heap) return -1;
        q->theap = heap;
        q->theap_cap = cap;
    }
    ticket_key k = {q->next_seq, q->lanes[lane].priority, lane, ticket, now_ns};
    uint32_t pos = q->theap_len++;
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!ticket_key_before(&k, &q->theap[parent])) break;
        q->theap[pos] = q->theap[parent];
        pos = parent;
    }
    q->theap[pos] = k;
    return 0;
}

static inline void tickets_pop(floor_queue *q, floor_dispatch *out) {
    ticket_key top = q->theap[0];
    ticket_key k = q->theap[--q->theap_len];
    uint32_t len = q->theap_len, pos = 0;
    if (len) {
        for (;;) {
            uint32_t child = 2 * pos + 1;
            if (child >= len) break;
            if (child + 1 < len && ticket_key_before(&q->theap[child + 1], &q->theap[child]))
                child++;
            if (!ticket_key_before(&q->theap[child], &k)) break;
            q->theap[pos] = q->theap[child];
            pos = child;
        }
        q->theap[pos] = k;
    }
    q->lanes[top.lane].active++;
    out->lane = top.lane;
    out->ticket = top.ticket;
    out->enqueued_ns = top.enqueued_ns;
}

/* ---- the calls (each takes the lock once) -------------------------------------- */

static inline int take_locked(floor_queue *q, floor_dispatch *out) {
    if (q->pending == 0) return 0;
    if (q->design == FLOOR_LANE_HEAP)
        lanes_pop(q, out);
    else
        tickets_pop(q, out);
    q->pending--;
    q->active++;
    return 1;
}

static inline int complete_locked(floor_queue *q, uint32_t lane) {
    if (lane >= q->lane_count || q->lanes[lane].active == 0) return -1;
    q->lanes[lane].active--;
    q->active--;
    if (q->idle_waiters && q->pending == 0 && q->active == 0) pthread_cond_broadcast(&q->idle_cond);
    return 0;
}

int floor_submit(floor_queue *q, uint32_t lane, uint64_t ticket, uint64_t now_ns) {
    if (!now_ns) now_ns = now_monotonic();
    pthread_mutex_lock(&q->lock);
    int rc = -1;
    if (lane < q->lane_count) {
        rc = q->design == FLOOR_LANE_HEAP ? lanes_push(q, lane, ticket, now_ns)
                                          : tickets_push(q, lane, ticket, now_ns);
        if (rc == 0) {
            q->next_seq++;
            q->pending++;
            if (q->work_waiters) pthread_cond_signal(&q->work_cond);
        }
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int floor_try_next(floor_queue *q, floor_dispatch *out) {
    pthread_mutex_lock(&q->lock);
    int rc = take_locked(q, out);
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int floor_complete(floor_queue *q, uint32_t lane) {
    pthread_mutex_lock(&q->lock);
    int rc = complete_locked(q, lane);
    if (rc == 0 && q->work_waiters && q->pending) pthread_cond_signal(&q->work_cond);
    pthread_mutex_unlock(&q->lock);
    return rc;
}

static int wait_locked(floor_queue *q, floor_dispatch *out) {
    for (;;) {
        if (q->stopped) return -1;
        if (take_locked(q, out)) return 1;
        q->work_waiters++;
        pthread_cond_wait(&q->work_cond, &q->lock);
        q->work_waiters--;
    }
}

int floor_wait_next(floor_queue *q, floor_dispatch *out) {
    pthread_mutex_lock(&q->lock);
    int rc = wait_locked(q, out);
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int floor_complete_and_wait(floor_queue *q, uint32_t lane, floor_dispatch *out) {
    pthread_mutex_lock(&q->lock);
    int rc = complete_locked(q, lane);
    if (rc == 0) rc = wait_locked(q, out);
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void floor_wait_idle(floor_queue *q) {
    pthread_mutex_lock(&q->lock);
    while (q->pending || q->active) {
        q->idle_waiters++;
        pthread_cond_wait(&q->idle_cond, &q->lock);
        q->idle_waiters--;
    }
    pthread_mutex_unlock(&q->lock);
}

uint64_t floor_pending(floor_queue *q) {
    pthread_mutex_lock(&q->lock);
    uint64_t pending = q->pending;
    pthread_mutex_unlock(&q->lock);
    return pending;
}

void floor_stop(floor_queue *q) {
    pthread_mutex_lock(&q->lock);
    q->stopped = 1;
    pthread_cond_broadcast(&q->work_cond);
    pthread_mutex_unlock(&q->lock);
}
