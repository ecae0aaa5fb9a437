/* hist.h - a channel's bounded history: a ring of message references in id order.
 *
 * Ids inside one channel are contiguous (each publish is last id + 1), so finding "the messages
 * after id X" is index arithmetic, not a search. Limits on count, bytes and age are applied on
 * every append and whenever the history is read, so an expired message is never replayed even
 * if nothing was published since. */
#ifndef HERALD_HIST_H
#define HERALD_HIST_H

#include <stdint.h>

#include "msg.h"

typedef struct {
    uint32_t max_messages; /* 0: keep nothing */
    uint64_t max_bytes;
    uint32_t max_age_ms;   /* 0: no age limit */
} hist_limits_t;

typedef struct {
    msg_t **ring;
    uint32_t cap, head, count;
    uint64_t bytes;
} hist_t;

void hist_init(hist_t *h);

/* Releases every message and the ring. */
void hist_free(hist_t *h);

/* Appends m (taking a new reference) then trims to the limits. Returns 0 or HR_ENOMEM. */
int hist_push(hist_t *h, msg_t *m, const hist_limits_t *lim, uint64_t now_wall_ms);

/* Drops the oldest messages beyond the limits (age measured against now_wall_ms). */
void hist_trim(hist_t *h, const hist_limits_t *lim, uint64_t now_wall_ms);

/* The i-th oldest message (0 <= i < count). */
static inline msg_t *hist_at(const hist_t *h, uint32_t i) { return h->ring[(h->head + i) % h->cap]; }

/* Index of the first message with id > after, or h->count when there is none. */
uint32_t hist_index_after(const hist_t *h, uint64_t after);

#endif
