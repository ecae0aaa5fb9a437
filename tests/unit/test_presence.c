/* test_presence.c - presence (hub/presence.h): which channels are tracked (global keys and
 * namespaces, first match wins), counting users and anonymous subscriptions, the sorted local
 * list, join/leave decided at the flush (none for a quick leave-and-back, none for anonymous),
 * the limits, and the reports to a shared engine (counts, full rewrites in phases, users' kinds,
 * events handed back by the engine); the configuration keys, global and per namespace. */
#include "../../src/app/config.h"
#include "../../src/core/err.h"
#include "../../src/hub/presence.h"
#include "unit.h"

/* ---- a channel subscriber that records the events it is told ---- */

typedef struct {
    sub_t s;
    char log[1024];
} rec_t;

static void rec_deliver(sub_t *s, msg_t *m) { (void)s, (void)m; }

static void rec_event(sub_t *s, const char *event, const char *json, size_t n)
{
    rec_t *r = container_of(s, rec_t, s);
    size_t o = strlen(r->log);
    snprintf(r->log + o, sizeof(r->log) - o, "%s %.*s;", event, (int)n, json);
}

static void rec_sub(hub_t *hub, rec_t *r, const char *ch)
{
    memset(r, 0, sizeof(*r));
    r->s.deliver = rec_deliver;
    r->s.event = rec_event;
    list_init(&r->s.link);
    hub_subscribe(hub, hub_channel(hub, ch, strlen(ch), true), &r->s);
}

/* ---- a shared engine that records what presence writes ---- */

typedef struct {
    engine_t eng;
    char log[4096];
    int users_reset;
} fake_t;

static int fake_pres_write(engine_t *e, const engine_pres_t *v, uint32_t n, int phase)
{
    fake_t *f = container_of(e, fake_t, eng);
    size_t o = strlen(f->log);
    o += (size_t)snprintf(f->log + o, sizeof(f->log) - o, "[%d]", phase);
    for (uint32_t i = 0; i < n; i++)
        o += (size_t)snprintf(f->log + o, sizeof(f->log) - o, " %.*s/%.*s=%u%s", (int)v[i].cn, v[i].ch, (int)v[i].un,
                              v[i].user, v[i].count, v[i].events ? "!" : "");
    snprintf(f->log + o, sizeof(f->log) - o, ";");
    return 0;
}

static int fake_user_write(engine_t *e, const engine_user_t *v, uint32_t n, bool reset)
{
    fake_t *f = container_of(e, fake_t, eng);
    size_t o = strlen(f->log);
    if (reset) f->users_reset++;
    for (uint32_t i = 0; i < n; i++)
        o += (size_t)snprintf(f->log + o, sizeof(f->log) - o, "u %.*s:%.*s;", (int)v[i].n, v[i].id, (int)v[i].kn,
                              v[i].kinds);
    return 0;
}

static const engine_ops_t fake_ops = {.pres_write = fake_pres_write, .user_write = fake_user_write};

typedef struct {
    loop_t loop;
    hub_t hub;
    store_t *st;
    presence_t p;
} env_t;

static void setup(env_t *v, engine_t *eng, users_t *users, bool list, bool events, uint32_t max_ch, uint32_t max_ent)
{
    CHECK_EQ(loop_init(&v->loop), 0);
    v->st = store_mem_new();
    hist_limits_t lim = {100, 1 << 20, 0};
    CHECK_EQ(hub_init(&v->hub, &v->loop, v->st, &lim), 0);
    v->hub.engine = eng;
    presence_opts_t o = {.list = list, .events = events, .max_channels = max_ch, .max_entries = max_ent};
    CHECK_EQ(presence_init(&v->p, &v->hub, users, &o), 0);
    CHECK(v->hub.pres == &v->p);
}

static void teardown(env_t *v)
{
    presence_close(&v->p);
    hub_close(&v->hub);
    v->st->ops->close(v->st);
    CHECK_EQ(loop_close(&v->loop), 0);
}

static pres_member_t *J(presence_t *p, const char *ch, const char *user)
{
    return presence_join(p, ch, strlen(ch), user, user ? strlen(user) : 0);
}

TEST(flags_global_and_namespaces_first_match_wins)
{
    env_t v;
    setup(&v, NULL, NULL, false, true, 100, 100);
    CHECK_EQ(presence_ns_add(&v.p, "room/#", 1, PRES_UNSET), 0);
    CHECK_EQ(presence_ns_add(&v.p, "quiet/+", 1, 0), 0);
    CHECK_EQ(presence_ns_add(&v.p, "room/x", 0, 0), 0); /* shadowed by room/# */
    CHECK_EQ(presence_ns_add(&v.p, "bad/#/x", 1, 1), HR_EINVAL);
    CHECK_EQ(presence_flags(&v.p, "news", 4), PRES_EVENTS);
    CHECK_EQ(presence_flags(&v.p, "room/x", 6), PRES_LIST | PRES_EVENTS);
    CHECK_EQ(presence_flags(&v.p, "quiet/1", 7), PRES_LIST);
    CHECK_EQ(presence_flags(&v.p, "quiet/1/2", 9), PRES_EVENTS); /* quiet/+ does not match: global */
    teardown(&v);

    setup(&v, NULL, NULL, false, false, 100, 100);
    CHECK_EQ(presence_flags(&v.p, "news", 4), 0);
    CHECK(J(&v.p, "news", "42") == NULL); /* nothing tracked: nothing to part */
    CHECK_EQ(v.p.chans.n, 0);
    CHECK_EQ(presence_ns_add(&v.p, "room/#", PRES_UNSET, 1), 0);
    CHECK_EQ(presence_flags(&v.p, "room/1", 6), PRES_EVENTS);
    teardown(&v);
}

TEST(counts_users_and_anonymous_and_lists_sorted)
{
    env_t v;
    setup(&v, NULL, NULL, true, false, 100, 100);
    pres_member_t *a = J(&v.p, "c", "7"), *b = J(&v.p, "c", "42"), *c = J(&v.p, "c", "42"), *d = J(&v.p, "c", NULL);
    CHECK(a && b && b == c && d);
    presence_user_t u[4];
    uint32_t total, anon, conns;
    uint32_t n = presence_local(&v.p, "c", 1, u, 4, &total, &anon, &conns);
    CHECK_EQ(n, 2);
    CHECK_EQ(total, 2);
    CHECK_EQ(anon, 1);
    CHECK_EQ(conns, 4);
    CHECK(u[0].len == 2 && memcmp(u[0].id, "42", 2) == 0 && u[0].conns == 2); /* byte order: "42" < "7" */
    CHECK(u[1].len == 1 && u[1].id[0] == '7' && u[1].conns == 1);
    CHECK_EQ(presence_local(&v.p, "c", 1, u, 1, &total, &anon, &conns), 1); /* cut at max */
    CHECK_EQ(total, 2);
    presence_part(&v.p, b);
    presence_part(&v.p, a);
    presence_flush(&v.p);
    n = presence_local(&v.p, "c", 1, u, 4, &total, &anon, &conns);
    CHECK(n == 1 && u[0].conns == 1 && conns == 2);
    CHECK_EQ(v.p.entries, 1); /* 7's entry went at the flush */
    presence_part(&v.p, c);
    presence_part(&v.p, d);
    presence_flush(&v.p);
    CHECK_EQ(v.p.chans.n, 0); /* empty channels go */
    CHECK_EQ(v.p.entries, 0);
    CHECK_EQ(presence_local(&v.p, "c", 1, u, 4, &total, &anon, &conns), 0);
    teardown(&v);
}

TEST(join_and_leave_at_the_flush)
{
    env_t v;
    setup(&v, NULL, NULL, true, true, 100, 100);
    rec_t w;
    rec_sub(&v.hub, &w, "room");
    pres_member_t *a = J(&v.p, "room", "42");
    CHECK_EQ(strlen(w.log), 0); /* nothing inside the join itself */
    presence_flush(&v.p);
    CHECK(strcmp(w.log, "join {\"channel\":\"room\",\"user\":\"42\"};") == 0);
    w.log[0] = 0;
    pres_member_t *b = J(&v.p, "room", "42"), *anon = J(&v.p, "room", NULL);
    presence_flush(&v.p);
    CHECK_EQ(strlen(w.log), 0); /* a second connection, an anonymous one: nothing */
    presence_part(&v.p, a);
    presence_part(&v.p, anon);
    presence_flush(&v.p);
    CHECK_EQ(strlen(w.log), 0);
    presence_part(&v.p, b);
    pres_member_t *c = J(&v.p, "room", "42"); /* left and came back before the flush: nothing */
    presence_flush(&v.p);
    CHECK_EQ(strlen(w.log), 0);
    presence_part(&v.p, c);
    presence_flush(&v.p);
    CHECK(strcmp(w.log, "leave {\"channel\":\"room\",\"user\":\"42\"};") == 0);
    CHECK_EQ(v.p.joins, 1);
    CHECK_EQ(v.p.leaves, 1);
    hub_unsubscribe(&v.hub, &w.s);
    teardown(&v);
}

TEST(limits_refuse_and_count)
{
    env_t v;
    setup(&v, NULL, NULL, true, false, 2, 2);
    pres_member_t *a = J(&v.p, "c1", "1"), *b = J(&v.p, "c1", "2");
    CHECK(a && b);
    CHECK(J(&v.p, "c1", "3") == NULL); /* max_entries */
    CHECK_EQ(v.p.refused_entries, 1);
    pres_member_t *an = J(&v.p, "c1", NULL); /* anonymous takes no entry */
    CHECK(an != NULL);
    pres_member_t *c2 = J(&v.p, "c2", NULL);
    CHECK(c2 != NULL);
    CHECK(J(&v.p, "c3", NULL) == NULL); /* max_channels */
    CHECK_EQ(v.p.refused_channels, 1);
    CHECK(J(&v.p, "c3", "9") == NULL);
    CHECK_EQ(v.p.chans.n, 2);
    presence_part(&v.p, a);
    presence_flush(&v.p);
    pres_member_t *d = J(&v.p, "c1", "3"); /* room again */
    CHECK(d != NULL);
    pres_member_t *left[] = {b, an, c2, d};
    for (int i = 0; i < 4; i++) presence_part(&v.p, left[i]);
    presence_flush(&v.p);
    CHECK_EQ(v.p.chans.n, 0);
    teardown(&v);
}

TEST(shared_engine_gets_counts_rewrites_and_users)
{
    fake_t f = {.eng = {.ops = &fake_ops, .name = "fake"}};
    users_t us;
    CHECK_EQ(users_init(&us, 10), 0);
    env_t v;
    setup(&v, &f.eng, &us, true, true, 100, 100);
    CHECK(f.eng.on_presence != NULL && us.changed != NULL);
    pres_member_t *a = J(&v.p, "c", "42"), *b = J(&v.p, "c", "42"), *n = J(&v.p, "c", NULL);
    presence_flush(&v.p);
    CHECK(strcmp(f.log, "[0] c/42=2! c/=1!;") == 0);
    f.log[0] = 0;
    presence_part(&v.p, a); /* a and b are one entry: 42's, counted twice */
    presence_part(&v.p, b);
    presence_flush(&v.p);
    CHECK(strcmp(f.log, "[0] c/42=0!;") == 0);
    f.log[0] = 0;
    pres_member_t *c = J(&v.p, "c", "42");
    presence_flush(&v.p);
    /* the engine lost this node's share: everything again in a marked rewrite, then its end */
    f.eng.on_presence(f.eng.presence_arg, ENGINE_PRES_RESYNC, NULL, 0, NULL, 0);
    f.log[0] = 0;
    presence_flush(&v.p);
    CHECK(strstr(f.log, "[1]") == f.log && strstr(f.log, "c/42=1!") && strstr(f.log, "c/=1!") && strstr(f.log, "[3];"));
    f.log[0] = 0;
    /* users: each change of a user's connections is written with its kinds */
    users_conn_t u1 = {.kind = "sse"}, u2 = {.kind = "ws_json"};
    users_add(&us, "42", 2, &u1);
    users_add(&us, "42", 2, &u2);
    presence_flush(&v.p);
    CHECK(strcmp(f.log, "u 42:sse=1,ws_json=1;") == 0);
    f.log[0] = 0;
    users_remove(&us, &u1);
    users_remove(&us, &u2);
    presence_flush(&v.p);
    CHECK(strcmp(f.log, "u 42:;") == 0); /* offline here */
    /* events the engine decided reach this node's subscribers */
    rec_t w;
    rec_sub(&v.hub, &w, "c");
    f.eng.on_presence(f.eng.presence_arg, ENGINE_PRES_JOIN, "c", 1, "7", 1);
    f.eng.on_presence(f.eng.presence_arg, ENGINE_PRES_LEAVE, "c", 1, "7", 1);
    CHECK(strcmp(w.log, "join {\"channel\":\"c\",\"user\":\"7\"};leave {\"channel\":\"c\",\"user\":\"7\"};") == 0);
    hub_unsubscribe(&v.hub, &w.s);
    presence_part(&v.p, c);
    presence_part(&v.p, n);
    presence_flush(&v.p);
    teardown(&v);
    CHECK(us.changed == NULL); /* unhooked */
    users_close(&us);
}

TEST(config_keys_global_and_per_namespace)
{
    static cfg_t c, c2;
    static char err[512], out[65536];
    cfg_defaults(&c);
    CHECK(!c.presence && !c.join_leave);
    CHECK_EQ(c.max_presence_users, 1000u);
    CHECK_EQ(c.presence_node_timeout_ms, 10000u);
    CHECK_EQ(cfg_parse_string(&c,
                              "[presence]\npresence = true\nmax_presence_entries = 5\npresence_node_timeout = 2\n"
                              "[namespace rooms]\npattern = room/#\njoin_leave = yes\n"
                              "[namespace quiet]\npattern = quiet/#\npresence = false\njoin_leave = false\n",
                              err, sizeof(err)),
             0);
    CHECK(c.presence && !c.join_leave);
    CHECK_EQ(c.max_presence_entries, 5u);
    CHECK_EQ(c.presence_node_timeout_ms, 2000u);
    CHECK_EQ(c.namespaces[0].set & (CFG_NS_PRESENCE | CFG_NS_JOIN_LEAVE), CFG_NS_JOIN_LEAVE);
    CHECK(c.namespaces[0].join_leave);
    CHECK_EQ(c.namespaces[1].set & (CFG_NS_PRESENCE | CFG_NS_JOIN_LEAVE), CFG_NS_PRESENCE | CFG_NS_JOIN_LEAVE);
    CHECK(!c.namespaces[1].presence && !c.namespaces[1].join_leave);
    cfg_dump(&c, out, sizeof(out));
    CHECK(strstr(out, "[namespace rooms]") && strstr(out, "join_leave = true\n"));
    cfg_defaults(&c2);
    CHECK_EQ(cfg_parse_string(&c2, out, err, sizeof(err)), 0); /* the dump reads back */
    CHECK_EQ(c2.namespaces[1].set, c.namespaces[1].set);
    CHECK_EQ(c2.namespaces[0].join_leave, c.namespaces[0].join_leave);
    cfg_defaults(&c);
    CHECK_EQ(cfg_parse_string(&c, "[namespace x]\npattern = a\npresence = maybe\n", err, sizeof(err)), HR_EINVAL);
    CHECK(strstr(err, "line 3") != NULL);
    cfg_defaults(&c);
    CHECK_EQ(cfg_parse_string(&c, "presence_node_timeout = 1\n", err, sizeof(err)), HR_EINVAL); /* at least 2 s */
}

int main(void)
{
    RUN(flags_global_and_namespaces_first_match_wins);
    RUN(counts_users_and_anonymous_and_lists_sorted);
    RUN(join_and_leave_at_the_flush);
    RUN(limits_refuse_and_count);
    RUN(shared_engine_gets_counts_rewrites_and_users);
    RUN(config_keys_global_and_per_namespace);
    return UNIT_DONE();
}
