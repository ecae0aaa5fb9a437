/* test_hub_limits.c - the hub's ceilings (hub_set_limits): retained messages by count and bytes
 * (replacing and clearing allowed; publishes waiting for their commit count), and every
 * history together under both policies (trim the oldest of any channel; refuse). */
#include "../../src/core/err.h"
#include "../../src/hub/hub.h"
#include "unit.h"

#include <time.h>

/* Messages carry wall-clock ms: channels published a few ms apart have ordered histories. */
static void pause_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct {
    int calls, rc;
} done_t;

static void on_done(void *arg, int rc, const msg_t *m, uint32_t reached)
{
    done_t *d = arg;
    d->calls++;
    d->rc = rc;
}

static void setup(loop_t *loop, hub_t *hub, store_t **st, uint32_t max_msgs)
{
    CHECK_EQ(loop_init(loop), 0);
    *st = store_mem_new();
    hist_limits_t lim = {max_msgs, 1 << 20, 0};
    CHECK_EQ(hub_init(hub, loop, *st, &lim), 0);
}

static void teardown(loop_t *loop, hub_t *hub, store_t *st)
{
    hub_close(hub);
    st->ops->close(st);
    CHECK_EQ(loop_close(loop), 0);
}

static int retain(hub_t *hub, const char *ch, const char *data, done_t *d)
{
    hub_pubopt_t o = {.flags = MSG_RETAIN};
    return hub_publish_async(hub, ch, strlen(ch), "message", 7, data, strlen(data), &o, on_done, d);
}

TEST(retained_count)
{
    loop_t loop;
    hub_t hub;
    store_t *st;
    setup(&loop, &hub, &st, 100);
    hub_set_limits(&hub, 2, 0, 0, false);
    done_t d[8] = {{0}};
    CHECK_EQ(retain(&hub, "a", "1", &d[0]), 0);
    CHECK_EQ(retain(&hub, "a", "2", &d[1]), 0); /* the same channel again, in the same batch: one message */
    CHECK_EQ(retain(&hub, "b", "1", &d[2]), 0);
    CHECK_EQ(retain(&hub, "c", "1", &d[3]), HR_ERETAINED); /* waiting ones count */
    CHECK_EQ(hub_commit(&hub), 0);
    CHECK_EQ(hub.nretained, 2);
    CHECK_EQ(hub.retained_pend_new, 0);
    CHECK_EQ(hub.retained_pend_bytes, 0);
    CHECK_EQ(retain(&hub, "c", "1", &d[3]), HR_ERETAINED);
    CHECK_EQ(retain(&hub, "b", "replaced", &d[4]), 0);
    CHECK_EQ(retain(&hub, "a", "", &d[5]), 0); /* clearing is always allowed */
    CHECK_EQ(hub_commit(&hub), 0);
    CHECK_EQ(hub.nretained, 1);
    CHECK_EQ(retain(&hub, "c", "1", &d[6]), 0);
    CHECK_EQ(hub_commit(&hub), 0);
    CHECK_EQ(hub.nretained, 2);
    CHECK_EQ(hub.retained_refused, 2);
    /* a plain publish is never refused by it */
    uint64_t id;
    uint32_t n;
    CHECK_EQ(hub_publish(&hub, "d", 1, "message", 7, "x", 1, &id, &n), 0);
    teardown(&loop, &hub, st);
}

TEST(retained_bytes)
{
    loop_t loop;
    hub_t hub;
    store_t *st;
    setup(&loop, &hub, &st, 100);
    char big[601];
    memset(big, 'x', 600);
    big[600] = 0;
    uint64_t cost = 600 + 1 + 7 + sizeof(msg_t); /* msg_cost of a 600-byte message on a one-letter channel */
    hub_set_limits(&hub, 0, 2 * cost + 10, 0, false);
    done_t d[4] = {{0}};
    CHECK_EQ(retain(&hub, "a", big, &d[0]), 0);
    CHECK_EQ(retain(&hub, "b", big, &d[1]), 0);
    CHECK_EQ(retain(&hub, "c", "y", &d[2]), HR_ERETAINED);
    CHECK_EQ(hub_commit(&hub), 0);
    CHECK_EQ(hub.retained_bytes, 2 * cost);
    CHECK_EQ(retain(&hub, "a", big, &d[3]), 0); /* a replacement frees what it replaces */
    CHECK_EQ(hub_commit(&hub), 0);
    CHECK_EQ(hub.retained_bytes, 2 * cost);
    CHECK_EQ(hub.retained_bytes_refused, 1);
    CHECK_EQ(hub.retained_refused, 0);
    teardown(&loop, &hub, st);
}

TEST(history_trim_takes_the_oldest_of_any_channel)
{
    loop_t loop;
    hub_t hub;
    store_t *st;
    setup(&loop, &hub, &st, 1000);
    uint64_t cost = 100 + 2 + 7 + sizeof(msg_t);
    hub_set_limits(&hub, 0, 0, 30 * cost, false);
    char pay[100];
    memset(pay, 'h', sizeof(pay));
    uint64_t id;
    uint32_t n;
    for (int c = 0; c < 4; c++) {
        char name[3] = {'c', (char)('0' + c), 0};
        pause_ms(3);
        for (int i = 0; i < 10; i++) CHECK_EQ(hub_publish(&hub, name, 2, "message", 7, pay, 100, &id, &n), 0);
    }
    CHECK_EQ(hub.hpool.bytes, 30 * cost);
    CHECK_EQ(hub.hist_trimmed, 10);
    CHECK_EQ(hub_channel(&hub, "c0", 2, false)->hist.count, 0); /* the oldest channel paid */
    CHECK_EQ(hub_channel(&hub, "c1", 2, false)->hist.count, 10);
    CHECK_EQ(hub_channel(&hub, "c3", 2, false)->hist.count, 10);
    /* the next publish to c3 trims c1's oldest, not c3's */
    pause_ms(3);
    CHECK_EQ(hub_publish(&hub, "c3", 2, "message", 7, pay, 100, &id, &n), 0);
    CHECK_EQ(hub_channel(&hub, "c1", 2, false)->hist.count, 9);
    CHECK_EQ(hub_channel(&hub, "c3", 2, false)->hist.count, 11);
    msg_t *out[4];
    hub_cursor_info_t info;
    CHECK_EQ(hub_after(&hub, hub_channel(&hub, "c1", 2, false), 0, out, 4, &info), 4);
    CHECK(info.gap);
    CHECK_EQ(info.first_available, 2);
    teardown(&loop, &hub, st);
}

TEST(history_refuse)
{
    loop_t loop;
    hub_t hub;
    store_t *st;
    setup(&loop, &hub, &st, 1000);
    uint64_t cost = 100 + 1 + 7 + sizeof(msg_t);
    hub_set_limits(&hub, 0, 0, 5 * cost, true);
    char pay[100];
    memset(pay, 'h', sizeof(pay));
    hub_pubopt_t o = {0};
    done_t d[8] = {{0}};
    for (int i = 0; i < 5; i++) CHECK_EQ(hub_publish_async(&hub, "a", 1, "message", 7, pay, 100, &o, on_done, &d[i]), 0);
    /* five wait for their commit: the sixth would not fit */
    CHECK_EQ(hub_publish_async(&hub, "b", 1, "message", 7, pay, 100, &o, on_done, &d[5]), HR_EHISTFULL);
    CHECK_EQ(hub_commit(&hub), 0);
    CHECK_EQ(hub.hist_pend_bytes, 0);
    CHECK_EQ(hub.hpool.bytes, 5 * cost);
    CHECK_EQ(hub_publish_async(&hub, "b", 1, "message", 7, pay, 100, &o, on_done, &d[5]), HR_EHISTFULL);
    CHECK_EQ(hub.hist_refused, 2);
    CHECK_EQ(hub.hist_trimmed, 0);
    CHECK_EQ(hub_channel(&hub, "a", 1, false)->hist.count, 5); /* nothing trimmed */
    teardown(&loop, &hub, st);
}

/* hub_t.gate sees every publish after the hub's ceilings and can refuse it: nothing stored. */
static int gate_calls;
static int gate_refuse_q(void *arg, chan_t *ch)
{
    (void)arg;
    gate_calls++;
    return ch->name[0] == 'q' && ch->next_id > 2 ? HR_EHISTFULL : 0;
}

TEST(gate_refuses_and_pinned_namespace_is_not_trimmed)
{
    loop_t loop;
    hub_t hub;
    store_t *st;
    setup(&loop, &hub, &st, 100);
    hist_limits_t ql = {100, 1 << 20, 0};
    CHECK_EQ(hub_ns_add(&hub, "queues", "q/#", &ql), 0);
    hub_ns_pin(&hub);
    hub_set_limits(&hub, 0, 0, 2500, false); /* trim beyond 2500 bytes of history */
    hub.gate = gate_refuse_q;
    uint64_t id;
    uint32_t n;
    char data[300];
    memset(data, 'x', sizeof(data));
    CHECK_EQ(hub_publish(&hub, "q/a", 3, "message", 7, data, sizeof(data), &id, &n), 0);
    CHECK_EQ(hub_publish(&hub, "q/a", 3, "message", 7, data, sizeof(data), &id, &n), 0);
    CHECK_EQ(hub_publish(&hub, "q/a", 3, "message", 7, data, sizeof(data), &id, &n), HR_EHISTFULL);
    CHECK_EQ(gate_calls, 3);
    chan_t *q = hub_channel(&hub, "q/a", 3, false);
    CHECK(q && q->last_id == 2 && q->hist.count == 2 && q->hist.pinned);
    pause_ms(2);
    for (int i = 0; i < 12; i++) CHECK_EQ(hub_publish(&hub, "other", 5, "message", 7, data, sizeof(data), &id, &n), 0);
    CHECK(hub.hist_trimmed > 0);                 /* the ceiling trimmed ... */
    CHECK_EQ(q->hist.count, 2);                   /* ... never the pinned channel, though it is the oldest */
    CHECK(hub_channel(&hub, "other", 5, false)->hist.count < 12);
    hub_trim_upto(&hub, q, 1);                    /* what a queue acknowledged leaves */
    CHECK_EQ(q->hist.count, 1);
    CHECK_EQ(hist_at(&q->hist, 0)->id, 2u);
    hub.gate = NULL;
    teardown(&loop, &hub, st);
}

int main(void)
{
    RUN(retained_count);
    RUN(retained_bytes);
    RUN(history_trim_takes_the_oldest_of_any_channel);
    RUN(history_refuse);
    RUN(gate_refuses_and_pinned_namespace_is_not_trimmed);
    return UNIT_DONE();
}
