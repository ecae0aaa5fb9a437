/* test_hub.c - channels, ids, bounded history, gaps and fan-out, through hub.h. */
#include <string.h>

#include "../../src/core/err.h"
#include "../../src/hub/hub.h"
#include "unit.h"

static int delivered;
static uint64_t last_seen;
static void on_msg(sub_t *s, msg_t *m)
{
    delivered++;
    last_seen = m->id;
}
static void on_msg_unsub(sub_t *s, msg_t *m)
{
    delivered++;
    hub_unsubscribe(s->owner, s); /* allowed: a subscriber may remove itself */
}

static void setup(loop_t *loop, hub_t *hub, store_t **st, uint32_t max_msgs, uint64_t max_bytes)
{
    CHECK_EQ(loop_init(loop), 0);
    *st = store_mem_new();
    hist_limits_t lim = {max_msgs, max_bytes, 0};
    CHECK_EQ(hub_init(hub, loop, *st, &lim), 0);
}
static void teardown(loop_t *loop, hub_t *hub, store_t *st)
{
    hub_close(hub);
    st->ops->close(st);
    CHECK_EQ(loop_close(loop), 0);
}

TEST(ids_are_contiguous_per_channel)
{
    loop_t loop;
    hub_t hub;
    store_t *st;
    setup(&loop, &hub, &st, 100, 1 << 20);
    uint64_t id;
    uint32_t n;
    for (int i = 1; i <= 5; i++) {
        CHECK_EQ(hub_publish(&hub, "a", 1, "message", 7, "x", 1, &id, &n), 0);
        CHECK_EQ(id, i);
    }
    CHECK_EQ(hub_publish(&hub, "b", 1, "message", 7, "y", 1, &id, &n), 0);
    CHECK_EQ(id, 1);
    CHECK_EQ(hub.nchannels, 2);
    teardown(&loop, &hub, st);
}

TEST(history_limits_and_gap)
{
    loop_t loop;
    hub_t hub;
    store_t *st;
    setup(&loop, &hub, &st, 5, 1 << 20);
    uint64_t id;
    uint32_t n;
    for (int i = 0; i < 20; i++) hub_publish(&hub, "c", 1, "message", 7, "data", 4, &id, &n);
    chan_t *ch = hub_channel(&hub, "c", 1, false);
    CHECK(ch != NULL);
    CHECK_EQ(ch->hist.count, 5);
    msg_t *out[32];
    hub_cursor_info_t info;
    CHECK_EQ(hub_after(&hub, ch, 2, out, 32, &info), 5); /* 3..15 lost */
    CHECK(info.gap);
    CHECK_EQ(info.first_available, 16);
    CHECK_EQ(out[0]->id, 16);
    CHECK_EQ(hub_after(&hub, ch, 15, out, 32, &info), 5); /* exactly the predecessor: no gap */
    CHECK(!info.gap);
    CHECK_EQ(hub_after(&hub, ch, 18, out, 32, &info), 2);
    CHECK_EQ(out[0]->id, 19);
    CHECK_EQ(hub_after(&hub, ch, 20, out, 32, &info), 0);
    CHECK(!info.gap);
    CHECK_EQ(hub_after(&hub, ch, 999, out, 32, &info), 5); /* from the future: a gap, full replay */
    CHECK(info.gap);
    CHECK_EQ(hub_after(&hub, ch, 15, out, 2, &info), 2); /* max respected */
    teardown(&loop, &hub, st);
}

TEST(history_byte_limit)
{
    loop_t loop;
    hub_t hub;
    store_t *st;
    setup(&loop, &hub, &st, 1000, 3 * (1000 + sizeof(msg_t) + 8));
    char big[1000] = {0};
    uint64_t id;
    uint32_t n;
    for (int i = 0; i < 10; i++) hub_publish(&hub, "c", 1, "message", 7, big, sizeof(big), &id, &n);
    chan_t *ch = hub_channel(&hub, "c", 1, false);
    CHECK_EQ(ch->hist.count, 3);
    CHECK(ch->hist.bytes <= hub.limits.max_bytes);
    teardown(&loop, &hub, st);
}

TEST(fanout_and_self_unsubscribe)
{
    loop_t loop;
    hub_t hub;
    store_t *st;
    setup(&loop, &hub, &st, 10, 1 << 20);
    chan_t *ch = hub_channel(&hub, "room", 4, true);
    sub_t subs[3] = {{.deliver = on_msg}, {.deliver = on_msg_unsub, .owner = &hub}, {.deliver = on_msg}};
    for (int i = 0; i < 3; i++) {
        list_init(&subs[i].link);
        hub_subscribe(&hub, ch, &subs[i]);
    }
    CHECK_EQ(ch->nsubs, 3);
    delivered = 0;
    uint64_t id;
    uint32_t n;
    CHECK_EQ(hub_publish(&hub, "room", 4, "message", 7, "hi", 2, &id, &n), 0);
    CHECK_EQ(n, 3);
    CHECK_EQ(delivered, 3);
    CHECK_EQ(ch->nsubs, 2);
    CHECK_EQ(hub_publish(&hub, "room", 4, "message", 7, "hi", 2, &id, &n), 0);
    CHECK_EQ(n, 2);
    CHECK_EQ(last_seen, 2);
    hub_unsubscribe(&hub, &subs[0]);
    hub_unsubscribe(&hub, &subs[2]);
    hub_unsubscribe(&hub, &subs[2]); /* twice is harmless */
    CHECK_EQ(hub.subscriptions, 0);
    teardown(&loop, &hub, st);
}

TEST(channel_names)
{
    CHECK(hub_channel_valid("news", 4));
    CHECK(hub_channel_valid("user/42/inbox", 13));
    CHECK(hub_channel_valid("a.b-c_d:e@f=g!h~i", 17));
    CHECK(!hub_channel_valid("", 0));
    CHECK(!hub_channel_valid("$SYS", 4));
    CHECK(hub_channel_valid("/a", 2)); /* MQTT's empty first level */
    CHECK(hub_channel_valid("/a/b", 4));
    CHECK(!hub_channel_valid("/", 1));
    CHECK(!hub_channel_valid("//a", 3));
    CHECK(!hub_channel_valid("/..", 3));
    CHECK(!hub_channel_valid("a/", 2));
    CHECK(!hub_channel_valid("a//b", 4));
    CHECK(!hub_channel_valid("a/../b", 6));
    CHECK(!hub_channel_valid("..", 2));
    CHECK(!hub_channel_valid("a b", 3));
    CHECK(!hub_channel_valid("a,b", 3));
    CHECK(!hub_channel_valid("a+b", 3));
    CHECK(!hub_channel_valid("a#", 2));
    char longname[300];
    memset(longname, 'x', sizeof(longname));
    CHECK(hub_channel_valid(longname, 255));
    CHECK(!hub_channel_valid(longname, 256));
}

TEST(utf8_validation)
{
    CHECK(utf8_valid("héllo €𝄞", strlen("héllo €𝄞")));
    CHECK(!utf8_valid("\xff", 1));
    CHECK(!utf8_valid("\xc0\x80", 2));         /* overlong NUL */
    CHECK(!utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    CHECK(!utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    CHECK(!utf8_valid("\xe2\x82", 2));         /* truncated */
    msg_t *m = msg_new("c", 1, "message", 7, "a\r\nb", 4, 1, 0);
    CHECK(m->flags & MSG_UTF8);
    CHECK(!(m->flags & MSG_TEXT_SAFE));
    msg_unref(m);
    m = msg_new("c", 1, "message", 7, "a\0b\n", 4, 1, 0); /* NUL and LF: SSE text keeps them */
    CHECK((m->flags & (MSG_UTF8 | MSG_TEXT_SAFE)) == (MSG_UTF8 | MSG_TEXT_SAFE));
    msg_unref(m);
    m = msg_new("c", 1, "message", 7, "\xff\n", 2, 1, 0);
    CHECK(!(m->flags & (MSG_UTF8 | MSG_TEXT_SAFE)));
    msg_unref(m);
}

/* A store whose next commit fails (fail_next) or whose appends are refused (full). */
static int fake_fail_next, fake_full, fake_appends;
static int fake_append(store_t *s, const msg_t *m)
{
    (void)s, (void)m;
    if (fake_full) return HR_ESTOREFULL;
    fake_appends++;
    return 0;
}
static int fake_load(store_t *s, const char *c, size_t n, hist_t *h, const hist_limits_t *l, uint64_t *last)
{
    (void)s, (void)c, (void)n, (void)h, (void)l;
    *last = 0;
    return 0;
}
static int fake_flush(store_t *s)
{
    (void)s;
    int rc = fake_fail_next;
    fake_fail_next = 0;
    return rc;
}
static void fake_close(store_t *s) { (void)s; }
static const store_ops_t fake_ops = {.append = fake_append, .load = fake_load, .flush = fake_flush, .close = fake_close};

typedef struct {
    int calls, rc;
    uint64_t id;
    uint32_t reached;
} done_t;
static void on_done(void *arg, int rc, const msg_t *m, uint32_t reached)
{
    done_t *d = arg;
    d->calls++;
    d->rc = rc;
    d->id = rc == 0 ? m->id : 0;
    d->reached = reached;
}

/* A callback that publishes again (as an HTTP connection answering, then parsing its next
 * pipelined request, does): that publish belongs to the next commit. */
static hub_t *again_hub;
static done_t again_done;
static void on_done_again(void *arg, int rc, const msg_t *m, uint32_t reached)
{
    on_done(arg, rc, m, reached);
    hub_pubopt_t o = {0};
    CHECK_EQ(hub_publish_async(again_hub, "a", 1, "m", 1, "x", 1, &o, on_done, &again_done), 0);
}

TEST(commit_failure_fails_the_batch_and_reuses_ids)
{
    loop_t loop;
    hub_t hub;
    store_t st = {&fake_ops, "fake"};
    CHECK_EQ(loop_init(&loop), 0);
    hist_limits_t lim = {100, 1 << 20, 0};
    CHECK_EQ(hub_init(&hub, &loop, &st, &lim), 0);
    chan_t *ch = hub_channel(&hub, "a", 1, true);
    sub_t s = {.deliver = on_msg, .owner = &hub};
    hub_subscribe(&hub, ch, &s);
    delivered = 0;
    hub_pubopt_t o = {0};
    done_t d[4] = {{0}};
    /* a committed batch: delivered and reported after the commit, not before */
    CHECK_EQ(hub_publish_async(&hub, "a", 1, "m", 1, "1", 1, &o, on_done, &d[0]), 0);
    CHECK_EQ(hub_publish_async(&hub, "a", 1, "m", 1, "2", 1, &o, on_done, &d[1]), 0);
    CHECK_EQ(delivered, 0);
    CHECK_EQ(d[0].calls, 0);
    CHECK_EQ(ch->last_id, 0); /* not visible before the commit */
    CHECK_EQ(hub_commit(&hub), 0);
    CHECK_EQ(delivered, 2);
    CHECK(d[0].calls == 1 && d[0].rc == 0 && d[0].id == 1 && d[0].reached == 1);
    CHECK(d[1].calls == 1 && d[1].rc == 0 && d[1].id == 2);
    /* a failed commit: both fail, nothing delivered, the ids are handed out again */
    memset(d, 0, sizeof(d));
    CHECK_EQ(hub_publish_async(&hub, "a", 1, "m", 1, "3", 1, &o, on_done, &d[0]), 0);
    CHECK_EQ(hub_publish_async(&hub, "a", 1, "m", 1, "4", 1, &o, on_done, &d[1]), 0);
    fake_fail_next = HR_EUNAVAIL;
    CHECK_EQ(hub_commit(&hub), HR_EUNAVAIL);
    CHECK_EQ(delivered, 2);
    CHECK(d[0].calls == 1 && d[0].rc == HR_EUNAVAIL && d[1].calls == 1 && d[1].rc == HR_EUNAVAIL);
    CHECK_EQ(ch->last_id, 2);
    CHECK_EQ(hub.store_fault, HR_EUNAVAIL);
    /* faulted: refused at once until the probe time; the probe that commits clears the fault */
    CHECK_EQ(hub_publish_async(&hub, "a", 1, "m", 1, "5", 1, &o, on_done, &d[2]), HR_EUNAVAIL);
    loop.now_ms = hub.probe_at_ms;
    CHECK_EQ(hub_publish_async(&hub, "a", 1, "m", 1, "5", 1, &o, on_done, &d[2]), 0);
    CHECK_EQ(hub_commit(&hub), 0);
    CHECK(d[2].calls == 1 && d[2].rc == 0 && d[2].id == 3); /* 3 again: never handed out */
    CHECK_EQ(hub.store_fault, 0);
    /* a refused append: refused at once, the id is not consumed; a cancelled callback is not called */
    fake_full = 1;
    CHECK_EQ(hub_publish_async(&hub, "a", 1, "m", 1, "6", 1, &o, on_done, &d[3]), HR_ESTOREFULL);
    fake_full = 0;
    CHECK_EQ(hub_commit(&hub), 0); /* that iteration ends: a commit with a refusal proves nothing */
    CHECK_EQ(hub.store_fault, HR_ESTOREFULL);
    loop.now_ms = hub.probe_at_ms;
    CHECK_EQ(hub_publish_async(&hub, "a", 1, "m", 1, "6", 1, &o, on_done, &d[3]), 0);
    hub_cancel(&hub, &d[3]);
    CHECK_EQ(hub_commit(&hub), 0);
    CHECK_EQ(d[3].calls, 0);
    CHECK_EQ(ch->last_id, 4);
    CHECK_EQ(delivered, 4);
    /* a publish made by a completion callback waits for the next commit */
    done_t first = {0};
    again_hub = &hub;
    CHECK_EQ(hub_publish_async(&hub, "a", 1, "m", 1, "7", 1, &o, on_done_again, &first), 0);
    CHECK_EQ(hub_commit(&hub), 0);
    CHECK_EQ(first.calls, 1);
    CHECK_EQ(again_done.calls, 0);
    CHECK_EQ(ch->last_id, 5);
    fake_fail_next = HR_EUNAVAIL; /* and fails with the commit it was part of */
    CHECK_EQ(hub_commit(&hub), HR_EUNAVAIL);
    CHECK(again_done.calls == 1 && again_done.rc == HR_EUNAVAIL);
    CHECK_EQ(ch->last_id, 5);
    hub_unsubscribe(&hub, &s);
    hub_close(&hub);
    CHECK_EQ(loop_close(&loop), 0);
}

int main(void)
{
    RUN(ids_are_contiguous_per_channel);
    RUN(history_limits_and_gap);
    RUN(history_byte_limit);
    RUN(fanout_and_self_unsubscribe);
    RUN(channel_names);
    RUN(utf8_validation);
    RUN(commit_failure_fails_the_batch_and_reuses_ids);
    return UNIT_DONE();
}
