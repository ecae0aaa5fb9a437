/* hist.h - a channel's bounded history: a ring of message references in id order.
 *
 * Ids inside one channel are contiguous (each publish is last id + 1), so finding "the messages
 * after id X" is index arithmetic, not a search. Limits on count, bytes and age are applied on
 * every append and whenever the history is read, so an expired message is never replayed even
 * if nothing was published since. A message with its own time-to-live (msg_t.expiry_s) leaves
 * when it is the oldest and has expired; an expired one behind a live one stays in the ring
 * (so ids stay contiguous) until it reaches the head, and readers skip it (hub_after). */
#ifndef HERALD_HIST_H
#define HERALD_HIST_H

#include <stdbool.h>
#include <stdint.h>

#include "msg.h"

typedef struct {
    uint32_t max_messages; /* 0: keep nothing */
    uint64_t max_bytes;
    uint64_t max_age_ms;   /* 0: no age limit */
} hist_limits_t;

typedef struct hist_pool hist_pool_t;

typedef struct {
    msg_t **ring;
    uint32_t cap, head, count;
    uint32_t nskip;    /* messages readers may skip: withdrawn, or with a time-to-live */
    uint64_t bytes;
    hist_pool_t *pool; /* the pool it counts in, or NULL */
    uint32_t heap_i;   /* its place in pool's heap + 1 (0: not in it) */
    bool pinned;       /* counts its bytes in the pool but never joins its heap: only its own limits trim it
                          (a pinned namespace's channel, hub_ns_pin: STOMP queues) */
} hist_t;

/* Every channel's history together, for a bound on them all (max_history_memory): the bytes
 * they hold and, when ordered is set, a min-heap of the non-empty histories by the time of their
 * oldest message, so the history holding the oldest message of all is found in O(1) and kept in
 * order in O(log n) per change of some history's oldest message. */
struct hist_pool {
    struct hist_heap_ent {
        uint64_t t; /* time_ms of h's oldest message */
        hist_t *h;
    } *heap;
    uint32_t n, cap;
    uint64_t bytes; /* msg_cost of every message in every history of the pool */
    bool ordered;   /* keep the heap (set before any history joins) */
};

void hist_init(hist_t *h);

/* Makes h (empty) count in pool. */
void hist_join(hist_t *h, hist_pool_t *pool);

/* Releases every message and the ring; h is empty afterwards and stays in its pool. */
void hist_free(hist_t *h);

/* Frees the pool's heap; every history must have left it (been freed) before. */
void hist_pool_free(hist_pool_t *pool);

/* The history whose oldest message is the oldest of the (ordered) pool, or NULL when empty. */
static inline hist_t *hist_pool_oldest(const hist_pool_t *pool) { return pool->n ? pool->heap[0].h : NULL; }

/* Drops h's oldest message (h must not be empty). */
void hist_drop_oldest(hist_t *h);

/* Appends m (taking a new reference) then trims to the limits. Returns 0 or HR_ENOMEM. */
int hist_push(hist_t *h, msg_t *m, const hist_limits_t *lim, uint64_t now_wall_ms);

/* Drops the oldest messages beyond the limits (age measured against now_wall_ms). */
void hist_trim(hist_t *h, const hist_limits_t *lim, uint64_t now_wall_ms);

/* The i-th oldest message (0 <= i < count). */
static inline msg_t *hist_at(const hist_t *h, uint32_t i) { return h->ring[(h->head + i) % h->cap]; }

/* Puts m (taking a new reference) in the place of the i-th oldest message, releasing it (a
 * tombstone of the same id and time: the pool's order is unchanged). */
void hist_replace(hist_t *h, uint32_t i, msg_t *m);

/* Index of the first message with id > after, or h->count when there is none. */
uint32_t hist_index_after(const hist_t *h, uint64_t after);

/* The messages after id `after` a reader would get at wall time now (withdrawn and expired ones
 * skipped): O(1) while the history holds none that could be skipped, else a walk. *next_exp
 * becomes the earliest wall ms one of those counted expires, if sooner than it was (0: none). */
uint64_t hist_count_after(const hist_t *h, uint64_t after, uint64_t now, uint64_t *next_exp);

#endif
