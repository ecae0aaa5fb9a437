/* test_stomp_qstate.c - the consumption state of a STOMP queue (stomp_qstate.h): the window,
 * out-of-order acknowledgements, redelivery marks and the persistent record. */
#include "../../src/transport/stomp_qstate.h"
#include "../../src/core/err.h"
#include "unit.h"

TEST(window_slides_past_acked_ids)
{
    stq_state_t q;
    CHECK_EQ(stq_init(&q, 4, 10), 0);
    CHECK(stq_room(&q, 11));
    CHECK(stq_room(&q, 14));
    CHECK(!stq_room(&q, 15)); /* 11..14 fill the window */
    CHECK_EQ(stq_next_ready(&q, 0, 13), 11u);
    stq_set(&q, 11, STQ_INFLIGHT);
    stq_set(&q, 12, STQ_INFLIGHT);
    CHECK_EQ(q.ninflight, 2u);
    CHECK_EQ(stq_next_ready(&q, 0, 13), 13u);
    CHECK(stq_ack(&q, 12)); /* out of order: the window stays */
    CHECK_EQ(q.acked_to, 10u);
    CHECK_EQ(q.nacked, 1u);
    CHECK_EQ(stq_depth(&q, 14), 3u);
    CHECK(!stq_ack(&q, 12)); /* twice: nothing changes */
    CHECK(stq_ack(&q, 11)); /* slides past 11 and 12 */
    CHECK_EQ(q.acked_to, 12u);
    CHECK_EQ(q.nacked, 0u);
    CHECK_EQ(q.ninflight, 0u);
    CHECK(stq_room(&q, 16));
    CHECK(!stq_room(&q, 17));
    CHECK_EQ(stq_get(&q, 5), STQ_ACKED);
    CHECK_EQ(stq_get(&q, 13), STQ_READY);
    CHECK(!stq_ack(&q, 99)); /* outside the window */
    stq_free(&q);
}

TEST(nack_marks_redelivery_and_ready_again)
{
    stq_state_t q;
    CHECK_EQ(stq_init(&q, 8, 0), 0);
    stq_set(&q, 1, STQ_INFLIGHT);
    CHECK_EQ(stq_next_ready(&q, 1, 1), 0u);
    stq_set(&q, 1, STQ_READY | STQ_REDELIVER);
    CHECK_EQ(stq_next_ready(&q, 1, 1), 1u);
    CHECK(stq_get(&q, 1) & STQ_REDELIVER);
    CHECK_EQ(q.ninflight, 0u);
    stq_free(&q);
}

TEST(ring_wraps)
{
    stq_state_t q;
    CHECK_EQ(stq_init(&q, 3, 0), 0);
    for (uint64_t id = 1; id <= 20; id++) {
        CHECK(stq_room(&q, id));
        stq_set(&q, id, STQ_INFLIGHT);
        if (id >= 3) CHECK(stq_ack(&q, id - 2));
    }
    CHECK_EQ(q.acked_to, 18u);
    CHECK_EQ(stq_get(&q, 19) & STQ_STATE, STQ_INFLIGHT);
    CHECK(stq_ack(&q, 20));
    CHECK(stq_ack(&q, 19));
    CHECK_EQ(q.acked_to, 20u);
    stq_free(&q);
}

TEST(ack_upto_drops_gone_messages)
{
    stq_state_t q;
    CHECK_EQ(stq_init(&q, 4, 0), 0);
    stq_set(&q, 3, STQ_ACKED);
    CHECK(stq_ack_upto(&q, 2));
    CHECK_EQ(q.acked_to, 3u); /* 3 was acked already */
    CHECK(stq_ack_upto(&q, 100));
    CHECK_EQ(q.acked_to, 100u);
    CHECK_EQ(q.nacked, 0u);
    CHECK(!stq_ack_upto(&q, 50));
    stq_free(&q);
}

TEST(record_round_trip)
{
    stq_state_t q, r;
    CHECK_EQ(stq_init(&q, 16, 100), 0);
    for (uint64_t id = 101; id <= 106; id++) stq_set(&q, id, STQ_INFLIGHT);
    q.seen_to = 106;
    stq_ack(&q, 103);
    stq_ack(&q, 105);
    uint8_t buf[128];
    size_t n = stq_encode(&q, buf, sizeof(buf));
    CHECK_EQ(n, stq_encoded_len(&q));
    CHECK_EQ(stq_encode(&q, buf, n - 1), 0u); /* too small */
    CHECK_EQ(stq_decode(&r, buf, n, 16), 0);
    CHECK_EQ(r.acked_to, 100u);
    CHECK_EQ(r.seen_to, 106u);
    CHECK_EQ(stq_get(&r, 103), STQ_ACKED);
    CHECK_EQ(stq_get(&r, 105), STQ_ACKED);
    CHECK_EQ(stq_get(&r, 101), STQ_READY | STQ_REDELIVER); /* was handed out: redelivered */
    CHECK_EQ(stq_get(&r, 106), STQ_READY | STQ_REDELIVER);
    CHECK_EQ(stq_get(&r, 107), STQ_READY); /* never handed out */
    CHECK_EQ(r.ninflight, 0u);
    CHECK_EQ(stq_next_ready(&r, 0, 110), 101u);
    stq_free(&r);
    /* a smaller window forgets the acks it cannot hold: those are delivered again */
    CHECK_EQ(stq_decode(&r, buf, n, 4), 0);
    CHECK_EQ(stq_get(&r, 103), STQ_ACKED);
    CHECK_EQ(stq_get(&r, 105), STQ_READY);
    stq_free(&r);
    stq_free(&q);
}

TEST(record_rejects_garbage)
{
    stq_state_t r;
    uint8_t buf[64] = "HQ1";
    CHECK_EQ(stq_decode(&r, buf, 10, 8), HR_EINVAL);        /* short */
    CHECK_EQ(stq_decode(&r, (const uint8_t *)"XXXXXXXXXXXXXXXXXXXXXXX", 23, 8), HR_EINVAL);
    memset(buf + 3, 0, 20);
    buf[19] = 5; /* five ids announced, none there */
    CHECK_EQ(stq_decode(&r, buf, 23, 8), HR_EINVAL);
    buf[19] = 0;
    buf[11] = 1; /* seen_to 1 */
    buf[3] = 2;  /* acked_to 2 > seen_to */
    CHECK_EQ(stq_decode(&r, buf, 23, 8), HR_EINVAL);
    buf[3] = 0;
    const uint8_t *g = (const uint8_t *)gp(buf, 23);
    CHECK_EQ(stq_decode(&r, g, 23, 8), 0);
    CHECK_EQ(r.seen_to, 1u);
    stq_free(&r);
    gp_release();
}

int main(void)
{
    RUN(window_slides_past_acked_ids);
    RUN(nack_marks_redelivery_and_ready_again);
    RUN(ring_wraps);
    RUN(ack_upto_drops_gone_messages);
    RUN(record_round_trip);
    RUN(record_rejects_garbage);
    return UNIT_DONE();
}
