/* stomp_qstate.c - see stomp_qstate.h. The record is "HQ1" then acked_to and seen_to (8 bytes
 * each, little-endian), the count of ids acknowledged out of order (4 bytes) and those ids as
 * offsets after acked_to (4 bytes each): at most cap of them, so a record stays small. */
#include "stomp_qstate.h"

#include <stdlib.h>
#include <string.h>

#include "../core/err.h"

int stq_init(stq_state_t *q, uint32_t cap, uint64_t acked_to)
{
    *q = (stq_state_t){.acked_to = acked_to, .seen_to = acked_to, .cap = cap ? cap : 1};
    q->st = calloc(q->cap, 1);
    return q->st ? 0 : HR_ENOMEM;
}

void stq_free(stq_state_t *q)
{
    free(q->st);
    q->st = NULL;
}

static inline uint8_t *stq__at(const stq_state_t *q, uint64_t id)
{
    return &q->st[(q->head + (uint32_t)(id - q->acked_to - 1)) % q->cap];
}

uint8_t stq_get(const stq_state_t *q, uint64_t id)
{
    if (id <= q->acked_to) return STQ_ACKED;
    if (!stq_in(q, id)) return STQ_READY;
    return *stq__at(q, id);
}

void stq_set(stq_state_t *q, uint64_t id, uint8_t v)
{
    if (!stq_in(q, id)) return;
    uint8_t *p = stq__at(q, id);
    if ((*p & STQ_STATE) == STQ_ACKED) q->nacked--;
    if ((*p & STQ_STATE) == STQ_INFLIGHT) q->ninflight--;
    *p = v;
    if ((v & STQ_STATE) == STQ_ACKED) q->nacked++;
    if ((v & STQ_STATE) == STQ_INFLIGHT) q->ninflight++;
}

/* Slides the window past the acknowledged ids at its start. */
static void stq__slide(stq_state_t *q)
{
    while (q->nacked && (q->st[q->head] & STQ_STATE) == STQ_ACKED) {
        q->st[q->head] = STQ_READY;
        q->nacked--;
        q->head = (q->head + 1) % q->cap;
        q->acked_to++;
    }
    if (q->seen_to < q->acked_to) q->seen_to = q->acked_to;
}

bool stq_ack(stq_state_t *q, uint64_t id)
{
    if (!stq_in(q, id) || (*stq__at(q, id) & STQ_STATE) == STQ_ACKED) return false;
    stq_set(q, id, STQ_ACKED);
    stq__slide(q);
    return true;
}

bool stq_ack_upto(stq_state_t *q, uint64_t upto)
{
    if (upto <= q->acked_to) return false;
    if (upto - q->acked_to >= q->cap) { /* the whole window goes */
        memset(q->st, 0, q->cap);
        q->head = 0;
        q->nacked = q->ninflight = 0;
        q->acked_to = upto;
        if (q->seen_to < upto) q->seen_to = upto;
        return true;
    }
    for (uint64_t id = q->acked_to + 1; id <= upto; id++) stq_set(q, id, STQ_ACKED);
    stq__slide(q);
    return true;
}

uint64_t stq_next_ready(const stq_state_t *q, uint64_t from, uint64_t last_id)
{
    if (last_id <= q->acked_to) return 0;
    uint64_t span = last_id - q->acked_to; /* offsets, so that nothing overflows near the top */
    if (span > q->cap) span = q->cap;
    for (uint64_t off = from > q->acked_to ? from - q->acked_to : 1; off <= span; off++)
        if ((q->st[(q->head + (uint32_t)(off - 1)) % q->cap] & STQ_STATE) == STQ_READY) return q->acked_to + off;
    return 0;
}

uint64_t stq_depth(const stq_state_t *q, uint64_t last_id)
{
    if (last_id <= q->acked_to) return 0;
    uint64_t n = last_id - q->acked_to;
    return n > q->nacked ? n - q->nacked : 0;
}

static void stq__put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t stq__get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

#define STQ_HEAD (3 + 8 + 8 + 4)
#define STQ_MAX_ID (UINT64_MAX / 2) /* ids never come near it: a record beyond is not ours */

size_t stq_encoded_len(const stq_state_t *q) { return STQ_HEAD + (size_t)q->nacked * 4; }

size_t stq_encode(const stq_state_t *q, uint8_t *out, size_t cap)
{
    size_t need = stq_encoded_len(q);
    if (cap < need) return 0;
    memcpy(out, "HQ1", 3);
    stq__put64(out + 3, q->acked_to);
    stq__put64(out + 11, q->seen_to);
    uint8_t *p = out + STQ_HEAD;
    uint32_t k = 0;
    for (uint32_t i = 0; i < q->cap && k < q->nacked; i++)
        if ((q->st[(q->head + i) % q->cap] & STQ_STATE) == STQ_ACKED) {
            uint32_t off = i + 1;
            for (int b = 0; b < 4; b++) p[4 * k + (uint32_t)b] = (uint8_t)(off >> (8 * b));
            k++;
        }
    for (int b = 0; b < 4; b++) out[19 + b] = (uint8_t)(k >> (8 * b));
    return STQ_HEAD + (size_t)k * 4;
}

int stq_decode(stq_state_t *q, const uint8_t *in, size_t n, uint32_t cap)
{
    if (n < STQ_HEAD || memcmp(in, "HQ1", 3) != 0) return HR_EINVAL;
    uint32_t k = 0;
    for (int b = 0; b < 4; b++) k |= (uint32_t)in[19 + b] << (8 * b);
    if ((n - STQ_HEAD) / 4 < k || n != STQ_HEAD + (size_t)k * 4) return HR_EINVAL;
    uint64_t acked_to = stq__get64(in + 3), seen_to = stq__get64(in + 11);
    if (seen_to < acked_to || seen_to > STQ_MAX_ID) return HR_EINVAL;
    int rc = stq_init(q, cap, acked_to);
    if (rc < 0) return rc;
    q->seen_to = seen_to;
    for (uint64_t off = 1; off <= seen_to - acked_to && off <= cap; off++)
        stq_set(q, acked_to + off, STQ_READY | STQ_REDELIVER);
    for (uint32_t i = 0; i < k; i++) {
        const uint8_t *p = in + STQ_HEAD + 4 * (size_t)i;
        uint32_t off = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        if (off) stq_set(q, acked_to + off, STQ_ACKED); /* outside the window: ignored */
    }
    stq__slide(q);
    return 0;
}
