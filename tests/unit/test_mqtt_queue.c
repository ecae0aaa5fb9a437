/* test_mqtt_queue.c - what an MQTT session owes its client (mqtt_queue.h): the in-flight table
 * (fresh packet ids, lookups, deletions in any order against a model, send order kept, packet
 * id wrap-around with long-lived entries) and the waiting FIFO (order, the drop-oldest bound,
 * max 0), with message references counted so leaks and double frees show. */
#include "../../src/core/err.h"
#include "../../src/hub/msg.h"
#include "../../src/transport/mqtt_queue.h"
#include "unit.h"

#include <stdlib.h>

static msg_t *M(uint64_t id) { return msg_new("t", 1, "message", 7, "x", 1, id, 0); }

static mq_item_t item(msg_t *m, uint8_t qos) { return (mq_item_t){.m = m, .qos = qos}; }

TEST(flight_add_find_delete)
{
    mq_flight_t f = {0};
    msg_t *m = M(1);
    uint16_t pids[100];
    for (int i = 0; i < 100; i++) {
        mq_item_t it = item(msg_ref(m), 1);
        CHECK_EQ(mq_flight_add(&f, &it, &pids[i]), 0);
        CHECK(pids[i] != 0);
        for (int j = 0; j < i; j++) CHECK(pids[j] != pids[i]);
    }
    CHECK_EQ(f.n, 100);
    CHECK_EQ(m->refs, 101);
    for (int i = 0; i < 100; i++) {
        mq_item_t *it = mq_flight_find(&f, pids[i]);
        CHECK(it && it->pid == pids[i] && it->state == MQ_SENT);
    }
    CHECK(mq_flight_find(&f, 0) == NULL);
    CHECK(mq_flight_find(&f, 5000) == NULL);
    /* delete every other one, the rest stay findable */
    for (int i = 0; i < 100; i += 2) mq_flight_del(&f, mq_flight_find(&f, pids[i]));
    CHECK_EQ(f.n, 50);
    CHECK_EQ(m->refs, 51);
    for (int i = 0; i < 100; i++) CHECK((mq_flight_find(&f, pids[i]) != NULL) == (i % 2 == 1));
    mq_flight_free(&f);
    CHECK_EQ(m->refs, 1);
    msg_unref(m);
}

TEST(flight_random_against_model)
{
    mq_flight_t f = {0};
    msg_t *m = M(1);
    static bool live[65536];
    uint16_t held[600];
    int nheld = 0;
    srand(7);
    for (int step = 0; step < 200000; step++) {
        if (nheld < 600 && (rand() % 3 != 0 || nheld == 0)) {
            mq_item_t it = item(msg_ref(m), 2);
            uint16_t pid;
            CHECK_EQ(mq_flight_add(&f, &it, &pid), 0);
            CHECK(!live[pid]);
            live[pid] = true;
            held[nheld++] = pid;
        } else {
            int k = rand() % nheld;
            mq_item_t *it = mq_flight_find(&f, held[k]);
            CHECK(it && it->pid == held[k]);
            mq_flight_del(&f, it);
            live[held[k]] = false;
            held[k] = held[--nheld];
        }
        if (step % 997 == 0) /* everything live is findable, nothing else is */
            for (uint32_t p = 1; p < 65536; p++) CHECK((mq_flight_find(&f, (uint16_t)p) != NULL) == live[p]);
    }
    CHECK_EQ(f.n, (uint32_t)nheld);
    CHECK_EQ(m->refs, (uint32_t)nheld + 1);
    mq_flight_free(&f);
    msg_unref(m);
}

TEST(flight_order_and_wrap)
{
    mq_flight_t f = {0};
    msg_t *m[3] = {M(1), M(2), M(3)};
    uint16_t first, pid;
    mq_item_t it = item(msg_ref(m[0]), 1);
    CHECK_EQ(mq_flight_add(&f, &it, &first), 0); /* stays in flight through the wrap */
    for (int i = 0; i < 70000; i++) {                  /* packet ids wrap round 65535 -> 1 */
        it = item(msg_ref(m[1]), 1);
        CHECK_EQ(mq_flight_add(&f, &it, &pid), 0);
        CHECK(pid != first && pid != 0);
        mq_flight_del(&f, mq_flight_find(&f, pid));
    }
    it = item(msg_ref(m[2]), 2);
    CHECK_EQ(mq_flight_add(&f, &it, &pid), 0);
    mq_item_t *v[2];
    CHECK_EQ(mq_flight_ordered(&f, v), 2);
    CHECK(v[0]->m == m[0] && v[1]->m == m[2]); /* send order, not packet id order */
    mq_flight_free(&f);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(m[i]->refs, 1);
        msg_unref(m[i]);
    }
}

TEST(flight_put_restores_ids)
{
    mq_flight_t f = {0};
    msg_t *m = M(1);
    mq_item_t a = {.m = msg_ref(m), .pid = 700, .qos = 2, .state = MQ_RELEASED};
    mq_item_t b = {.m = msg_ref(m), .pid = 12, .qos = 1, .state = MQ_SENT};
    CHECK_EQ(mq_flight_put(&f, &a), 0);
    CHECK_EQ(mq_flight_put(&f, &b), 0);
    mq_item_t dup = {.m = m, .pid = 12, .qos = 1};
    CHECK_EQ(mq_flight_put(&f, &dup), HR_EINVAL); /* in use */
    dup.pid = 0;
    CHECK_EQ(mq_flight_put(&f, &dup), HR_EINVAL);
    CHECK(mq_flight_find(&f, 700)->state == MQ_RELEASED);
    mq_item_t *v[2];
    CHECK_EQ(mq_flight_ordered(&f, v), 2);
    CHECK(v[0]->pid == 700 && v[1]->pid == 12); /* the order they were put in */
    uint16_t pid;
    mq_item_t c = {.m = msg_ref(m), .qos = 1};
    CHECK_EQ(mq_flight_add(&f, &c, &pid), 0);
    CHECK(pid != 700 && pid != 12);
    mq_flight_free(&f);
    CHECK_EQ(m->refs, 1);
    msg_unref(m);
}

TEST(fifo_order_and_drop_oldest)
{
    mq_fifo_t q = {0};
    msg_t *m[10];
    for (int i = 0; i < 10; i++) m[i] = M((uint64_t)i + 1);
    for (int i = 0; i < 10; i++) {
        mq_item_t it = item(msg_ref(m[i]), 1);
        CHECK_EQ(mq_fifo_push(&q, &it, 4, UINT64_MAX), i >= 4 ? 1 : 0);
    }
    CHECK_EQ(q.n, 4);
    for (int i = 0; i < 6; i++) CHECK_EQ(m[i]->refs, 1); /* the dropped ones were released */
    for (int i = 6; i < 10; i++) {
        mq_item_t *it = mq_fifo_peek(&q);
        CHECK(it && it->m == m[i]);
        msg_unref(it->m);
        mq_fifo_pop(&q);
    }
    CHECK(mq_fifo_peek(&q) == NULL);
    /* interleaved push/pop across the ring's end keeps order */
    int next_in = 0, next_out = 0;
    for (int round = 0; round < 50; round++) {
        for (int k = 0; k < 3; k++) {
            mq_item_t it = item(msg_ref(m[next_in++ % 10]), 0);
            CHECK_EQ(mq_fifo_push(&q, &it, 1000, UINT64_MAX), 0);
        }
        for (int k = 0; k < 2; k++) {
            mq_item_t *it = mq_fifo_peek(&q);
            CHECK(it->m == m[next_out++ % 10]);
            msg_unref(it->m);
            mq_fifo_pop(&q);
        }
    }
    CHECK_EQ(q.n, 50);
    mq_fifo_free(&q);
    /* max 0 keeps nothing */
    mq_item_t it = item(msg_ref(m[0]), 1);
    CHECK_EQ(mq_fifo_push(&q, &it, 0, UINT64_MAX), 1);
    CHECK_EQ(q.n, 0);
    mq_fifo_free(&q);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(m[i]->refs, 1);
        msg_unref(m[i]);
    }
}

TEST(fifo_bounded_in_bytes)
{
    /* each item counts payload + channel name: "t" + 100 bytes = 101 */
    char pay[1000];
    memset(pay, 'p', sizeof(pay));
    msg_t *m[8];
    for (int i = 0; i < 8; i++) m[i] = msg_new("t", 1, "message", 7, pay, 100, (uint64_t)i + 1, 0);
    mq_fifo_t q = {0};
    for (int i = 0; i < 3; i++) {
        mq_item_t it = item(msg_ref(m[i]), 1);
        CHECK_EQ(mq_fifo_push(&q, &it, 1000, 303), 0);
    }
    CHECK_EQ(q.bytes, 303);
    mq_item_t it = item(msg_ref(m[3]), 1); /* a fourth: the oldest goes */
    CHECK_EQ(mq_fifo_push(&q, &it, 1000, 303), 1);
    CHECK_EQ(q.n, 3);
    CHECK(mq_fifo_peek(&q)->m == m[1]);
    CHECK_EQ(m[0]->refs, 1);
    /* an item bigger than the bound by itself is not kept, and drops nothing */
    msg_t *big = msg_new("t", 1, "message", 7, pay, 500, 99, 0);
    it = item(msg_ref(big), 1);
    CHECK_EQ(mq_fifo_push(&q, &it, 1000, 303), 1);
    CHECK_EQ(q.n, 3);
    CHECK_EQ(big->refs, 1);
    msg_unref(big);
    /* a push that needs room for a larger item drops as many as it takes */
    msg_t *mid = msg_new("t", 1, "message", 7, pay, 250, 100, 0);
    it = item(msg_ref(mid), 1);
    CHECK_EQ(mq_fifo_push(&q, &it, 1000, 303), 3);
    CHECK_EQ(q.n, 1);
    CHECK_EQ(q.bytes, 251);
    msg_unref(mq_fifo_peek(&q)->m);
    mq_fifo_pop(&q);
    CHECK_EQ(q.bytes, 0);
    mq_fifo_free(&q);
    msg_unref(mid);
    for (int i = 0; i < 8; i++) {
        CHECK_EQ(m[i]->refs, 1);
        msg_unref(m[i]);
    }
}

/* mqtt_max_queued_bytes_total: FIFOs in one total; beyond its max the oldest item of the largest
 * FIFO goes, reported to the total's callback. */
static int total_drops[4];
static mq_fifo_t *total_fifos;
static void on_total_drop(void *arg, mq_fifo_t *q)
{
    (void)arg;
    total_drops[q - total_fifos]++;
}

/* Pushes one item of n payload bytes (+1 for the channel name "t") with id into q. */
static int push_n(mq_fifo_t *q, size_t n, uint64_t id)
{
    static char pay[4096];
    msg_t *m = msg_new("t", 1, "message", 7, pay, n, id, 0);
    mq_item_t it = item(m, 1);
    return mq_fifo_push(q, &it, 1000000, 1u << 30);
}

TEST(fifo_total_drops_the_oldest_of_the_largest)
{
    mq_fifo_t q[3] = {{0}};
    total_fifos = q;
    memset(total_drops, 0, sizeof(total_drops));
    mq_total_t t = {.max = 1000, .dropped = on_total_drop};
    for (int i = 0; i < 3; i++) q[i].total = &t;
    for (int i = 0; i < 6; i++) CHECK_EQ(push_n(&q[0], 99, (uint64_t)i + 1), 0); /* 600 bytes */
    for (int i = 0; i < 3; i++) CHECK_EQ(push_n(&q[1], 99, (uint64_t)i + 1), 0); /* 300 */
    CHECK_EQ(t.bytes, 900);
    CHECK(t.heap[0] == &q[0]);
    /* q[2] needs 200, 100 more than is left: q[0] (the largest) loses its oldest; q[2]'s push
     * reports no drop of its own */
    CHECK_EQ(push_n(&q[2], 199, 1), 0);
    CHECK_EQ(total_drops[0], 1);
    CHECK_EQ(total_drops[1] + total_drops[2], 0);
    CHECK_EQ(t.bytes, 1000);
    CHECK_EQ(q[0].n, 5);
    CHECK_EQ(mq_fifo_peek(&q[0])->m->id, 2);
    /* the largest pays again, until another one is larger */
    for (int i = 0; i < 4; i++) CHECK_EQ(push_n(&q[1], 99, (uint64_t)i + 10), 0);
    CHECK(t.bytes <= 1000);
    CHECK_EQ(q[0].bytes + q[1].bytes + q[2].bytes, t.bytes);
    CHECK(q[1].bytes >= q[0].bytes);
    /* an item larger than the whole total is not kept, and drops nothing */
    int before = total_drops[0] + total_drops[1] + total_drops[2];
    CHECK_EQ(push_n(&q[2], 1500, 99), 1);
    CHECK_EQ(total_drops[0] + total_drops[1] + total_drops[2], before);
    /* popping and freeing give bytes back and leave the heap */
    while (q[1].n) {
        msg_t *m = mq_fifo_peek(&q[1])->m;
        mq_fifo_pop(&q[1]);
        msg_unref(m);
    }
    CHECK_EQ(q[1].heap_i, 0);
    CHECK_EQ(t.bytes, q[0].bytes + q[2].bytes);
    mq_fifo_free(&q[0]);
    CHECK(q[0].total == &t);
    CHECK_EQ(t.bytes, q[2].bytes);
    CHECK_EQ(t.n, 1);
    mq_fifo_free(&q[2]);
    mq_fifo_free(&q[1]);
    CHECK_EQ(t.bytes, 0);
    CHECK_EQ(t.n, 0);
    mq_total_free(&t);
}

TEST(fifo_total_random_against_sums)
{
    enum { NQ = 20 };
    static mq_fifo_t q[NQ];
    memset(q, 0, sizeof(q));
    total_fifos = NULL;
    mq_total_t t = {.max = 20000};
    for (int i = 0; i < NQ; i++) q[i].total = &t;
    srand(11);
    int bad_heap = 0, over = 0, bad_sum = 0;
    for (int step = 0; step < 20000; step++) {
        mq_fifo_t *f = &q[rand() % NQ];
        if (rand() % 4) {
            push_n(f, (size_t)(rand() % 900), (uint64_t)step);
        } else if (f->n) {
            msg_t *m = mq_fifo_peek(f)->m;
            mq_fifo_pop(f);
            msg_unref(m);
        }
        uint64_t sum = 0, most = 0;
        uint32_t in_heap = 0;
        for (int i = 0; i < NQ; i++) {
            sum += q[i].bytes;
            if (q[i].bytes > most) most = q[i].bytes;
            in_heap += q[i].heap_i != 0;
            if ((q[i].heap_i != 0) != (q[i].n != 0)) bad_heap++;
        }
        if (sum != t.bytes) bad_sum++;
        if (t.bytes > t.max) over++;
        if (in_heap != t.n || (t.n && t.heap[0]->bytes != most)) bad_heap++;
    }
    CHECK_EQ(bad_sum, 0);
    CHECK_EQ(over, 0);
    CHECK_EQ(bad_heap, 0);
    for (int i = 0; i < NQ; i++) mq_fifo_free(&q[i]);
    CHECK_EQ(t.bytes, 0);
    mq_total_free(&t);
}

int main(void)
{
    RUN(fifo_bounded_in_bytes);
    RUN(flight_add_find_delete);
    RUN(flight_random_against_model);
    RUN(flight_order_and_wrap);
    RUN(flight_put_restores_ids);
    RUN(fifo_order_and_drop_oldest);
    RUN(fifo_total_drops_the_oldest_of_the_largest);
    RUN(fifo_total_random_against_sums);
    return UNIT_DONE();
}
