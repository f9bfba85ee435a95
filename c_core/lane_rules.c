/* lane_rules.c — see lane_rules.h. */
#include "lane_rules.h"

void bucket_configure(lane *l, uint64_t max_commands, uint64_t window_ns, uint64_t now_ns) {
    if (max_commands == 0 || window_ns == 0) {
        l->rate_per_ns = 0;
        l->throttled_until = 0;
        return;
    }
    l->rate_per_ns = (double)max_commands / (double)window_ns;
    l->burst = (double)max_commands;
    l->tokens = l->burst;
    l->refilled_ns = now_ns;
}

/* Fractions of a token are kept (the original dropped them, so its real
 * rate fell below the configured one). */
static void refill(lane *l, uint64_t now_ns) {
    if (now_ns <= l->refilled_ns) return;
    double tokens = l->tokens + (double)(now_ns - l->refilled_ns) * l->rate_per_ns;
    l->tokens = tokens < l->burst ? tokens : l->burst;
    l->refilled_ns = now_ns;
}

int bucket_take(lane *l, uint64_t now_ns) {
    refill(l, now_ns);
    if (l->tokens < 1.0) return 0;
    l->tokens -= 1.0;
    return 1;
}

int bucket_ready(lane *l, uint64_t now_ns) {
    refill(l, now_ns);
    return l->tokens >= 1.0;
}

uint64_t bucket_next_token_ns(const lane *l, uint64_t now_ns) {
    double missing = 1.0 - l->tokens;
    /* Rounded up (+1) so that at the returned time the token is whole. */
    uint64_t wait = missing > 0 ? (uint64_t)(missing / l->rate_per_ns) + 1 : 1;
    return now_ns + wait;
}

void boost_configure(lane *l, uint64_t deadline_ns, const uint64_t *before_ns,
                     const int32_t *amounts, uint32_t count) {
    if (count > LANE_MAX_BOOSTS) count = LANE_MAX_BOOSTS;
    l->boost_deadline_ns = deadline_ns;
    l->boost_count = 0;
    for (uint32_t i = 0; i < count; i++) {
        /* Insertion keeps the windows sorted, largest time first. */
        uint32_t at = l->boost_count++;
        while (at > 0 && l->boost_before_ns[at - 1] < before_ns[i]) {
            l->boost_before_ns[at] = l->boost_before_ns[at - 1];
            l->boost_amount[at] = l->boost_amount[at - 1];
            at--;
        }
        l->boost_before_ns[at] = before_ns[i];
        l->boost_amount[at] = amounts[i];
    }
}

int32_t effective_priority(const lane *l, uint64_t front_enqueued_ns, uint64_t now_ns) {
    if (l->boost_deadline_ns == 0) return l->priority;
    uint64_t due = front_enqueued_ns + l->boost_deadline_ns;
    if (now_ns >= due) return -1;
    uint64_t left = due - now_ns;
    int32_t boost = 0;
    for (uint32_t i = 0; i < l->boost_count && l->boost_before_ns[i] >= left; i++)
        boost = l->boost_amount[i];
    int32_t priority = l->priority - boost;
    return priority < 0 ? 0 : priority;
}
