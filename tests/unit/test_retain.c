/* test_retain.c - retention that fits the channel: [namespace NAME] config sections
 * (config_ns.c), per-namespace limits in the hub (retain_ns.c), per-message time-to-live in the
 * history (hist.c, hub_after) and withdrawal (withdraw.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/app/config.h"
#include "../../src/core/err.h"
#include "../../src/hub/hub.h"
#include "unit.h"

static char errbuf[512];

static int parse(cfg_t *c, const char *text)
{
    cfg_defaults(c);
    errbuf[0] = 0;
    return cfg_parse_string(c, text, errbuf, sizeof(errbuf));
}

TEST(namespace_sections)
{
    static cfg_t c, c2;
    CHECK_EQ(parse(&c, "history_messages = 100\n"
                       "[namespace inbox]\npattern = user/#\nhistory_age = 7776000\n"
                       "[namespace ticker]\npattern = \"ticker/+\"\nhistory_messages = 1\nhistory_bytes = 4k\n"),
             0);
    CHECK_EQ(c.nnamespaces, 2u);
    CHECK(strcmp(c.namespaces[0].name, "inbox") == 0);
    CHECK(strcmp(c.namespaces[0].pattern, "user/#") == 0);
    CHECK(strcmp(c.namespaces[1].pattern, "ticker/+") == 0);
    uint32_t m;
    uint64_t b, age;
    cfg_ns_limits(&c, &c.namespaces[0], &m, &b, &age);
    CHECK_EQ(m, 100u); /* inherited from [history] */
    CHECK_EQ(b, 1048576u);
    CHECK_EQ(age, 7776000000ull); /* 90 days: more than [history] history_age allows */
    cfg_ns_limits(&c, &c.namespaces[1], &m, &b, &age);
    CHECK_EQ(m, 1u);
    CHECK_EQ(b, 4096u);
    CHECK_EQ(age, 3600000u);
    /* the dump reads back to the same namespaces (inherited keys are comments) */
    static char out[65536];
    cfg_dump(&c, out, sizeof(out));
    CHECK(strstr(out, "[namespace inbox]\npattern = \"user/#\"\n; inherited: history_messages = 100\n") != NULL);
    CHECK_EQ(parse(&c2, out), 0);
    CHECK_EQ(c2.nnamespaces, 2u);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(c2.namespaces[i].set, c.namespaces[i].set);
        CHECK_EQ(c2.namespaces[i].history_messages, c.namespaces[i].history_messages);
        CHECK_EQ(c2.namespaces[i].history_bytes, c.namespaces[i].history_bytes);
        CHECK_EQ(c2.namespaces[i].history_age_ms, c.namespaces[i].history_age_ms);
        CHECK(strcmp(c2.namespaces[i].pattern, c.namespaces[i].pattern) == 0);
    }
}

TEST(namespace_errors)
{
    static cfg_t c;
    CHECK_EQ(parse(&c, "[namespace x]\nhistory_messages = 3\n"), HR_EINVAL);
    CHECK(strstr(errbuf, "line 2: [namespace x] has no pattern") != NULL);
    CHECK_EQ(parse(&c, "[namespace x]\npattern = a/{sub}\n"), HR_EINVAL);
    CHECK(strstr(errbuf, "line 2:") != NULL);
    CHECK_EQ(parse(&c, "[namespace x]\npattern = a/#/b\n"), HR_EINVAL);
    CHECK_EQ(parse(&c, "[namespace x]\npattern = a\nmax_body = 5\n"), HR_EINVAL);
    CHECK(strstr(errbuf, "unknown key 'max_body'") != NULL);
    CHECK_EQ(parse(&c, "[namespace x]\npattern = a\nhistory_age = 1e9\n"), HR_EINVAL);
    CHECK_EQ(parse(&c, "[namespace x]\npattern = a\nhistory_age = 400000000\n"), HR_EINVAL); /* > 10 years */
    CHECK_EQ(parse(&c, "[namespace x]\npattern = a\nhistory_messages = -1\n"), HR_EINVAL);
    CHECK_EQ(parse(&c, "[namespace a b]\npattern = a\n"), HR_EINVAL);
    CHECK_EQ(parse(&c, "[namespacex]\npattern = a\n"), HR_EINVAL); /* unknown section */
    CHECK_EQ(parse(&c, "[namespace x]\npattern = a\n[namespace x]\nhistory_messages = 2\n"), 0);
    CHECK_EQ(c.nnamespaces, 1u); /* the same section again adds to it */
    CHECK_EQ(c.namespaces[0].history_messages, 2u);
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

TEST(namespace_limits_per_channel)
{
    loop_t loop;
    hub_t hub;
    store_t *st;
    setup(&loop, &hub, &st, 10);
    hist_limits_t one = {1, 1 << 20, 0}, many = {100, 1 << 20, 0};
    CHECK_EQ(hub_ns_add(&hub, "ticker", "ticker/+", &one), 0);
    CHECK_EQ(hub_ns_add(&hub, "inbox", "user/#", &many), 0);
    CHECK_EQ(hub_ns_add(&hub, "shadow", "ticker/#", &many), 0); /* later: ticker/x keeps "ticker" */
    CHECK_EQ(hub_ns_add(&hub, "bad", "a/{sub}", &many), HR_EINVAL);
    const char *name;
    CHECK_EQ(hub_ns_limits(&hub, "ticker/x", 8, &name)->max_messages, 1u);
    CHECK(strcmp(name, "ticker") == 0);
    hub_ns_limits(&hub, "ticker/x/y", 10, &name);
    CHECK(strcmp(name, "shadow") == 0);
    hub_ns_limits(&hub, "user", 4, &name); /* "#" matches its parent level too */
    CHECK(strcmp(name, "inbox") == 0);
    CHECK(hub_ns_limits(&hub, "news", 4, &name) == &hub.limits);
    CHECK(name == NULL);
    uint64_t id;
    uint32_t n;
    for (int i = 0; i < 50; i++) {
        CHECK_EQ(hub_publish(&hub, "ticker/x", 8, "message", 7, "p", 1, &id, &n), 0);
        CHECK_EQ(hub_publish(&hub, "user/1", 6, "message", 7, "p", 1, &id, &n), 0);
        CHECK_EQ(hub_publish(&hub, "news", 4, "message", 7, "p", 1, &id, &n), 0);
    }
    CHECK_EQ(hub_channel(&hub, "ticker/x", 8, false)->hist.count, 1u);
    CHECK_EQ(hub_channel(&hub, "user/1", 6, false)->hist.count, 50u);
    CHECK_EQ(hub_channel(&hub, "news", 4, false)->hist.count, 10u);
    teardown(&loop, &hub, st);
}

static void on_done(void *arg, int rc, const msg_t *m, uint32_t reached)
{
    (void)m, (void)reached;
    *(int *)arg = rc;
}

/* Publishes "p" with a time-to-live of ttl seconds and commits it. */
static void pub_ttl(hub_t *hub, const char *ch, uint32_t ttl)
{
    int rc = 1;
    hub_pubopt_t o = {.flags = MSG_FROM_HTTP, .expiry_s = ttl};
    CHECK_EQ(hub_publish_async(hub, ch, strlen(ch), "message", 7, "p", 1, &o, on_done, &rc), 0);
    CHECK_EQ(hub_commit(hub), 0);
    CHECK_EQ(rc, 0);
}

TEST(ttl_expiry)
{
    loop_t loop;
    hub_t hub;
    store_t *st;
    setup(&loop, &hub, &st, 100);
    pub_ttl(&hub, "c", 1);  /* 1: expires (head) */
    pub_ttl(&hub, "c", 0);  /* 2: no ttl */
    pub_ttl(&hub, "c", 1);  /* 3: expires (middle) */
    pub_ttl(&hub, "c", 60); /* 4: still alive */
    chan_t *ch = hub_channel(&hub, "c", 1, false);
    msg_t *out[8];
    hub_cursor_info_t info;
    CHECK_EQ(hub_after(&hub, ch, 0, out, 8, &info), 4u);
    /* two seconds pass for messages 1 and 3 (their clocks are moved back instead of waiting) */
    hist_at(&ch->hist, 0)->time_ms -= 2000;
    hist_at(&ch->hist, 2)->time_ms -= 2000;
    CHECK_EQ(hub_after(&hub, ch, 0, out, 8, &info), 2u); /* 1 trimmed at the head, 3 skipped */
    CHECK(info.gap); /* the cursor is before the oldest kept message: the usual gap notice */
    CHECK_EQ(info.first_available, 2u);
    CHECK_EQ(out[0]->id, 2u);
    CHECK_EQ(out[1]->id, 4u);
    CHECK_EQ(ch->hist.count, 3u); /* 3 stays in the ring until it is the oldest */
    CHECK(hub_message(&hub, "c", 1, 3) == NULL);
    CHECK_EQ(hub_after(&hub, ch, 2, out, 1, &info), 1u); /* max counts kept messages only */
    CHECK_EQ(out[0]->id, 4u);
    teardown(&loop, &hub, st);
}

static uint64_t withdrawn_id;
static void on_event(sub_t *s, const char *event, const char *json, size_t n)
{
    (void)s;
    const char *id = strstr(json, "\"id\":\"");
    if (strcmp(event, "withdrawn") == 0 && id && json[n - 1] == '}') withdrawn_id = strtoull(id + 6, NULL, 10);
}
static void on_msg(sub_t *s, msg_t *m) { (void)s, (void)m; }

TEST(withdrawal)
{
    loop_t loop;
    hub_t hub;
    store_t *st;
    setup(&loop, &hub, &st, 100);
    uint64_t id;
    uint32_t n, told = 0;
    for (int i = 0; i < 3; i++) CHECK_EQ(hub_publish(&hub, "c", 1, "message", 7, "data", 4, &id, &n), 0);
    chan_t *ch = hub_channel(&hub, "c", 1, false);
    sub_t s = {.deliver = on_msg, .event = on_event};
    list_init(&s.link);
    hub_subscribe(&hub, ch, &s);
    uint64_t bytes = ch->hist.bytes;
    CHECK_EQ(hub_withdraw(&hub, "c", 1, 2, &told), 0);
    CHECK_EQ(told, 1u);
    CHECK_EQ(withdrawn_id, 2u);
    CHECK(ch->hist.bytes < bytes);   /* the tombstone holds no data */
    CHECK_EQ(ch->hist.count, 3u);    /* ids stay contiguous in the ring */
    msg_t *out[8];
    hub_cursor_info_t info;
    CHECK_EQ(hub_after(&hub, ch, 0, out, 8, &info), 2u);
    CHECK_EQ(out[0]->id, 1u);
    CHECK_EQ(out[1]->id, 3u);
    CHECK(!info.gap);
    CHECK(hub_message(&hub, "c", 1, 2) == NULL);
    CHECK_EQ(hub_withdraw(&hub, "c", 1, 2, &told), HR_ENOTFOUND); /* once */
    CHECK_EQ(hub_withdraw(&hub, "c", 1, 4, &told), HR_ENOTFOUND);
    CHECK_EQ(hub_withdraw(&hub, "nope", 4, 1, &told), HR_ENOTFOUND);
    hub_unsubscribe(&hub, &s);
    teardown(&loop, &hub, st);
}

int main(void)
{
    RUN(namespace_sections);
    RUN(namespace_errors);
    RUN(namespace_limits_per_channel);
    RUN(ttl_expiry);
    RUN(withdrawal);
    return UNIT_DONE();
}
