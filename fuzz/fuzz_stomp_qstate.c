/* fuzz_stomp_qstate.c - a STOMP queue's consumption record as read back from the store
 * (stomp_qstate.h): arbitrary bytes must be refused or give a state whose record decodes to the
 * same state again (acknowledged ids beyond the window are dropped, so the second round trip is
 * exact); the window then takes acks and slides without reading outside its ring. Every buffer
 * is exact-size so ASan sees reads past the end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/transport/stomp_qstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    uint8_t *in = malloc(n ? n : 1);
    if (!in) abort();
    memcpy(in, d, n);
    uint32_t cap = n ? (uint32_t)(d[0] % 64) + 1 : 1;
    stq_state_t q, r;
    if (stq_decode(&q, in, n, cap) == 0) {
        size_t len = stq_encoded_len(&q);
        uint8_t *out = malloc(len);
        if (!out || stq_encode(&q, out, len) != len) abort();
        if (stq_decode(&r, out, len, cap) != 0) abort();
        if (r.acked_to != q.acked_to || r.seen_to != q.seen_to || r.nacked != q.nacked) abort();
        for (uint64_t off = 0; off <= cap + 1u; off++) /* decode refuses ids near the top: no overflow */
            if ((stq_get(&q, q.acked_to + off) & STQ_STATE) != (stq_get(&r, q.acked_to + off) & STQ_STATE)) abort();
        for (size_t i = 1; i < n; i++) { /* drive the window with the input's bytes */
            uint64_t id = q.acked_to + 1 + d[i] % (cap + 2u);
            if (d[i] & 0x80) stq_ack(&q, id);
            else stq_set(&q, id, STQ_INFLIGHT);
            if (stq_next_ready(&q, 0, q.acked_to + cap) > q.acked_to + cap) abort();
        }
        free(out);
        stq_free(&r);
        stq_free(&q);
    }
    free(in);
    return 0;
}
