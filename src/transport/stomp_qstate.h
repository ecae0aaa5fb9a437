/* stomp_qstate.h - the consumption state of one STOMP queue, pure (no server state): which of
 * the queue channel's messages are acknowledged, handed to a consumer, or ready.
 *
 * A queue is a channel whose ids are contiguous (hub.h). Every id up to acked_to is acknowledged
 * (or gone); the ids after it, up to acked_to + cap, form the window, one state byte each in a
 * ring: ready (waiting for a consumer), in flight (handed to one, not yet acknowledged) or
 * acknowledged out of order (client-individual acks, round-robin consumers). When the id at the
 * window's start is acknowledged the window slides past every acknowledged id. A publish is taken
 * only while its id still fits the window (stq_room), so the window bounds the queue: a queue
 * holds at most cap messages from its oldest unacknowledged one on.
 *
 * What persists (stq_encode / stq_decode): acked_to, seen_to (the newest id ever handed to a
 * consumer: after a restart the unacknowledged ones up to it go out again marked redelivered)
 * and the ids acknowledged out of order. In-flight states are not saved: after a restart an
 * unacknowledged message is ready again. */
#ifndef HERALD_STOMP_QSTATE_H
#define HERALD_STOMP_QSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    STQ_READY = 0,
    STQ_INFLIGHT = 1,
    STQ_ACKED = 2,
    STQ_STATE = 3,       /* mask of the three states above */
    STQ_REDELIVER = 0x80 /* flag: it went to a consumer before (NACK, a consumer left, a restart) */
};

typedef struct {
    uint64_t acked_to; /* every id <= acked_to is acknowledged (or gone) */
    uint64_t seen_to;  /* the newest id handed to a consumer */
    uint32_t cap;      /* the window: ids acked_to + 1 .. acked_to + cap */
    uint32_t head;     /* ring index of id acked_to + 1 */
    uint32_t nacked;   /* ids in the window acknowledged out of order */
    uint32_t ninflight;
    uint8_t *st;       /* cap state bytes */
} stq_state_t;

/* Empty window of cap ids (cap >= 1) after acked_to. 0 or HR_ENOMEM. */
int stq_init(stq_state_t *q, uint32_t cap, uint64_t acked_to);

void stq_free(stq_state_t *q);

/* True when id is inside the window. */
static inline bool stq_in(const stq_state_t *q, uint64_t id) { return id > q->acked_to && id - q->acked_to <= q->cap; }

/* True when a message with id next (the one a publish would get) fits the window. */
static inline bool stq_room(const stq_state_t *q, uint64_t next) { return next <= q->acked_to || stq_in(q, next); }

/* The state byte of id: STQ_ACKED at or before acked_to, STQ_READY beyond the window. */
uint8_t stq_get(const stq_state_t *q, uint64_t id);

/* Sets the state byte of id inside the window (ignored outside it); keeps the counters. */
void stq_set(stq_state_t *q, uint64_t id, uint8_t v);

/* Acknowledges id (inside the window; others are ignored) and slides the window past the
 * acknowledged ids at its start. Returns true when something changed. */
bool stq_ack(stq_state_t *q, uint64_t id);

/* Acknowledges every id up to upto (messages gone from the channel's history). True when
 * something changed. */
bool stq_ack_upto(stq_state_t *q, uint64_t upto);

/* The first ready id in [from, last_id] (from is raised to acked_to + 1), or 0 when none. */
uint64_t stq_next_ready(const stq_state_t *q, uint64_t from, uint64_t last_id);

/* Messages between acked_to and last_id not acknowledged yet (the queue's depth). */
uint64_t stq_depth(const stq_state_t *q, uint64_t last_id);

/* The persistent record: its size for the current state. */
size_t stq_encoded_len(const stq_state_t *q);

/* Writes the record into out (stq_encoded_len(q) bytes); returns its length, or 0 when cap is
 * too small. */
size_t stq_encode(const stq_state_t *q, uint8_t *out, size_t cap);

/* Reads a record into a fresh state of window cap (stq_init's). Acknowledged ids the window
 * cannot hold (cap was made smaller) are forgotten: those messages are delivered again (at least
 * once, never lost). Unacknowledged ids up to seen_to are marked STQ_REDELIVER. 0, HR_EINVAL
 * (not a record) or HR_ENOMEM. */
int stq_decode(stq_state_t *q, const uint8_t *in, size_t n, uint32_t cap);

#endif
