/* test_hub.c - channels, ids, bounded history, gaps and fan-out, through hub.h. */
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
    CHECK(!hub_channel_valid("/a", 2));
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
}

int main(void)
{
    RUN(ids_are_contiguous_per_channel);
    RUN(history_limits_and_gap);
    RUN(history_byte_limit);
    RUN(fanout_and_self_unsubscribe);
    RUN(channel_names);
    RUN(utf8_validation);
    return UNIT_DONE();
}
