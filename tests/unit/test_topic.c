/* test_topic.c - the MQTT subscription trie, through topic.h: filter rules, the spec's matching
 * examples (MQTT 5.0 4.7), '$' topics, shared subscriptions, pruning, changes made from inside
 * the match callback, wide nodes, and a randomized comparison with a brute-force matcher. */
#include "../../src/core/err.h"
#include "../../src/hub/topic.h"
#include "unit.h"

#include <stdbool.h>

/* The caller's subscription: the trie entry plus what MQTT needs. */
typedef struct {
    topic_entry_t te;
    int session;
    int qos;
    int subid;
    int hits;
} msub_t;

#define SUB(e) container_of((e), msub_t, te)

static void count_hit(topic_entry_t *e, void *arg)
{
    SUB(e)->hits++;
    if (arg) (*(int *)arg)++;
}

static int S(topic_tree_t *t, msub_t *s, const char *filter)
{
    return topic_subscribe(t, &s->te, filter, strlen(filter));
}

static size_t M(topic_tree_t *t, const char *topic, topic_match_cb cb, void *arg)
{
    return topic_match(t, topic, strlen(topic), cb, arg);
}

/* 1 when filter matches topic, in a tree holding only that filter. */
static int matches(const char *filter, const char *topic)
{
    topic_tree_t t;
    topic_tree_init(&t);
    msub_t s = {0};
    if (S(&t, &s, filter) != 0) {
        printf("#   cannot subscribe %s\n", filter);
        return -1;
    }
    size_t n = M(&t, topic, count_hit, NULL);
    topic_tree_free(&t);
    return s.hits == (int)n ? (int)n : -2;
}

TEST(filter_validity)
{
    const char *good[] = {"sport/tennis/player1/#", "sport/#", "#", "+", "+/tennis/#", "sport/+/player1", "/+",
                          "a//b", "/", "//", "$SYS/#", "+/+", "$share/g/a", "$share/g/#", "$share/g/$SYS/x",
                          "$share/g//", "$share", "$shared/x", "a/+/+/#"};
    const char *bad[] = {"", "sport/tennis#", "sport/tennis/#/ranking", "sport+", "a/b+", "+a", "##", "#/",
                         "a/#/b", "$share/", "$share//a", "$share/g", "$share/g/", "$share/g+/a", "$share/g#/a",
                         "$share/+/a", "$share/g/a#", "$share/g/b+"};
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
        if (!topic_filter_valid(good[i], strlen(good[i]))) printf("#   should be valid: '%s'\n", good[i]);
        CHECK(topic_filter_valid(good[i], strlen(good[i])));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        if (topic_filter_valid(bad[i], strlen(bad[i]))) printf("#   should be invalid: '%s'\n", bad[i]);
        CHECK(!topic_filter_valid(bad[i], strlen(bad[i])));
    }
    CHECK(!topic_filter_valid("a\0b", 3));
    CHECK(!topic_filter_valid("$share/g\0/a", 11));

    /* TOPIC_MAX_LEVELS levels are accepted, one more is not. */
    char deep[2 * TOPIC_MAX_LEVELS + 2];
    for (int i = 0; i < TOPIC_MAX_LEVELS; i++) deep[2 * i] = 'x', deep[2 * i + 1] = '/';
    CHECK(topic_filter_valid(deep, 2 * TOPIC_MAX_LEVELS - 1));
    CHECK(!topic_filter_valid(deep, 2 * TOPIC_MAX_LEVELS + 1)); /* ends with "/x": 257 levels */

    CHECK(topic_name_valid("a/b", 3));
    CHECK(topic_name_valid("/", 1));
    CHECK(topic_name_valid("$SYS/x", 6));
    CHECK(!topic_name_valid("", 0));
    CHECK(!topic_name_valid("a/+", 3));
    CHECK(!topic_name_valid("#", 1));
    CHECK(!topic_name_valid("a\0", 2));

    /* Invalid filters are refused without allocating anything. */
    topic_tree_t t;
    topic_tree_init(&t);
    msub_t s = {0};
    CHECK_EQ(S(&t, &s, "a/#/b"), HR_EINVAL);
    CHECK_EQ(S(&t, &s, "$share/g/"), HR_EINVAL);
    CHECK(!topic_entry_subscribed(&s.te));
    CHECK_EQ(topic_node_count(&t), 0);
    CHECK_EQ(topic_count(&t), 0);
    topic_tree_free(&t);
}

/* MQTT 5.0 4.7.1.2 and 3.1.1 4.7.1.2: the multi-level wildcard. */
TEST(spec_multi_level_wildcard)
{
    CHECK_EQ(matches("sport/tennis/player1/#", "sport/tennis/player1"), 1);
    CHECK_EQ(matches("sport/tennis/player1/#", "sport/tennis/player1/ranking"), 1);
    CHECK_EQ(matches("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon"), 1);
    CHECK_EQ(matches("sport/tennis/player1/#", "sport/tennis/player2"), 0);
    CHECK_EQ(matches("sport/tennis/player1/#", "sport/tennis"), 0);
    CHECK_EQ(matches("sport/#", "sport"), 1); /* the parent level too */
    CHECK_EQ(matches("sport/#", "sport/"), 1);
    CHECK_EQ(matches("sport/#", "sports"), 0);
    CHECK_EQ(matches("#", "sport/tennis/player1"), 1);
    CHECK_EQ(matches("#", "/"), 1);
    CHECK_EQ(matches("#", "a"), 1);
    CHECK_EQ(matches("/#", "/a/b"), 1);
    CHECK_EQ(matches("/#", "a/b"), 0);
}

/* 4.7.1.3: the single-level wildcard. */
TEST(spec_single_level_wildcard)
{
    CHECK_EQ(matches("sport/tennis/+", "sport/tennis/player1"), 1);
    CHECK_EQ(matches("sport/tennis/+", "sport/tennis/player2"), 1);
    CHECK_EQ(matches("sport/tennis/+", "sport/tennis/player1/ranking"), 0);
    CHECK_EQ(matches("sport/+", "sport"), 0);
    CHECK_EQ(matches("sport/+", "sport/"), 1); /* an empty level is a level */
    CHECK_EQ(matches("+/+", "/finance"), 1);
    CHECK_EQ(matches("/+", "/finance"), 1);
    CHECK_EQ(matches("+", "/finance"), 0);
    CHECK_EQ(matches("+", "finance"), 1);
    CHECK_EQ(matches("+/tennis/#", "sport/tennis/player1/ranking"), 1);
    CHECK_EQ(matches("+/tennis/#", "sport/tennis"), 1);
    CHECK_EQ(matches("sport/+/player1", "sport/tennis/player1"), 1);
    CHECK_EQ(matches("sport/+/player1", "sport//player1"), 1);
    CHECK_EQ(matches("+/+/+", "a//"), 1);
    CHECK_EQ(matches("+/+", "a//"), 0);
}

/* 4.7.3: levels are case sensitive, empty levels and a leading '/' are significant. */
TEST(spec_exact_levels)
{
    CHECK_EQ(matches("ACCOUNTS", "Accounts"), 0);
    CHECK_EQ(matches("Accounts payable", "Accounts payable"), 1);
    CHECK_EQ(matches("/finance", "finance"), 0);
    CHECK_EQ(matches("finance", "/finance"), 0);
    CHECK_EQ(matches("a//b", "a//b"), 1);
    CHECK_EQ(matches("a//b", "a/b"), 0);
    CHECK_EQ(matches("a/b", "a/b/"), 0);
    CHECK_EQ(matches("a/b/", "a/b/"), 1);
    CHECK_EQ(matches("/", "/"), 1);
    CHECK_EQ(matches("+/+", "/"), 1);
}

/* 4.7.2: topics beginning with '$'. */
TEST(dollar_topics)
{
    CHECK_EQ(matches("#", "$SYS/broker/uptime"), 0);
    CHECK_EQ(matches("#", "$SYS"), 0);
    CHECK_EQ(matches("+/monitor/Clients", "$SYS/monitor/Clients"), 0);
    CHECK_EQ(matches("+", "$SYS"), 0);
    CHECK_EQ(matches("+/#", "$SYS/x"), 0);
    CHECK_EQ(matches("$SYS/#", "$SYS/monitor/Clients"), 1);
    CHECK_EQ(matches("$SYS/#", "$SYS"), 1);
    CHECK_EQ(matches("$SYS/monitor/+", "$SYS/monitor/Clients"), 1);
    CHECK_EQ(matches("$SYS/+/Clients", "$SYS/monitor/Clients"), 1);
    CHECK_EQ(matches("$share/g/#", "$SYS/x"), 0);
    CHECK_EQ(matches("$share/g/$SYS/#", "$SYS/x"), 1);
    /* Only the first level is special. */
    CHECK_EQ(matches("a/+", "a/$x"), 1);
    CHECK_EQ(matches("a/#", "a/$x/y"), 1);
    CHECK_EQ(matches("#", "x/$SYS"), 1);
}

/* Several filters in one tree: every matching entry is reported once, nothing else. */
TEST(many_filters_one_tree)
{
    const char *filters[] = {"a/b/c", "a/+/c", "a/#", "#", "+/b/#", "a/b", "+/+/+", "a/b/c/d", "$SYS/#", "b/#"};
    enum { NF = sizeof(filters) / sizeof(*filters) };
    topic_tree_t t;
    topic_tree_init(&t);
    msub_t s[NF] = {0};
    for (int i = 0; i < NF; i++) CHECK_EQ(S(&t, &s[i], filters[i]), 0);
    CHECK_EQ(topic_count(&t), NF);
    CHECK_EQ(M(&t, "a/b/c", count_hit, NULL), 6); /* a/b/c a/+/c a/# # +/b/# +/+/+ */
    int want[NF] = {1, 1, 1, 1, 1, 0, 1, 0, 0, 0};
    for (int i = 0; i < NF; i++) CHECK_EQ(s[i].hits, want[i]);
    CHECK_EQ(M(&t, "$SYS/b/c", count_hit, NULL), 1);
    CHECK_EQ(s[8].hits, 1);
    CHECK_EQ(M(&t, "zzz", count_hit, NULL), 1); /* # */
    for (int i = 0; i < NF; i++) topic_unsubscribe(&t, &s[i].te);
    CHECK_EQ(topic_node_count(&t), 0);
    CHECK_EQ(topic_count(&t), 0);
    CHECK_EQ(M(&t, "a", count_hit, NULL), 0);
    topic_tree_free(&t);
}

/* One session with overlapping filters sees each matching entry, so it can deliver once at the
 * highest QoS with every subscription identifier (MQTT 5.0 3.3.4). */
typedef struct {
    int max_qos;
    int subids;   /* bit set of subscription ids seen */
    int sessions; /* bit set */
} merge_t;

static void merge(topic_entry_t *e, void *arg)
{
    merge_t *m = arg;
    msub_t *s = SUB(e);
    if (s->session != 1) return;
    if (s->qos > m->max_qos) m->max_qos = s->qos;
    m->subids |= 1 << s->subid;
}

TEST(overlapping_filters_same_session)
{
    topic_tree_t t;
    topic_tree_init(&t);
    msub_t s[5] = {{.session = 1, .qos = 0, .subid = 1},
                  {.session = 1, .qos = 2, .subid = 2},
                  {.session = 1, .qos = 1, .subid = 3},
                  {.session = 1, .qos = 1, .subid = 4},
                  {.session = 2, .qos = 2, .subid = 5}};
    CHECK_EQ(S(&t, &s[0], "a/+"), 0);
    CHECK_EQ(S(&t, &s[1], "a/#"), 0);
    CHECK_EQ(S(&t, &s[2], "#"), 0);
    CHECK_EQ(S(&t, &s[3], "x/y"), 0);
    CHECK_EQ(S(&t, &s[4], "a/b"), 0);
    merge_t m = {0};
    CHECK_EQ(M(&t, "a/b", merge, &m), 4);
    CHECK_EQ(m.max_qos, 2);
    CHECK_EQ(m.subids, (1 << 1) | (1 << 2) | (1 << 3));
    /* The same filter twice (two entries) is reported twice; replacing is the caller's job. */
    msub_t dup = {.session = 1, .qos = 0, .subid = 6};
    CHECK_EQ(S(&t, &dup, "a/+"), 0);
    CHECK_EQ(M(&t, "a/b", count_hit, NULL), 5);
    CHECK_EQ(dup.hits, 1);
    CHECK_EQ(s[0].hits, 1);
    /* An entry cannot be subscribed twice. */
    CHECK_EQ(S(&t, &dup, "q"), HR_EINVAL);
    topic_tree_free(&t);
    for (int i = 0; i < 5; i++) CHECK(!topic_entry_subscribed(&s[i].te));
}

/* Shared subscriptions: one member per (filter, group) per message, in turn; ordinary
 * subscribers get everything. */
TEST(shared_round_robin)
{
    topic_tree_t t;
    topic_tree_init(&t);
    msub_t g1[3] = {0}, g2[2] = {0}, g1other = {0}, plain = {0};
    for (int i = 0; i < 3; i++) CHECK_EQ(S(&t, &g1[i], "$share/g1/a/+"), 0);
    for (int i = 0; i < 2; i++) CHECK_EQ(S(&t, &g2[i], "$share/g2/a/+"), 0);
    CHECK_EQ(S(&t, &g1other, "$share/g1/a/#"), 0); /* same group name, other filter: its own group */
    CHECK_EQ(S(&t, &plain, "a/+"), 0);
    CHECK(topic_entry_shared(&g1[0].te));
    CHECK(!topic_entry_shared(&plain.te));
    CHECK_EQ(topic_group_count(&t), 3);
    CHECK_EQ(topic_count(&t), 7);
    CHECK_EQ(topic_node_count(&t), 4); /* root, a, +, # */

    int order[12];
    for (int k = 0; k < 12; k++) {
        int before[3] = {g1[0].hits, g1[1].hits, g1[2].hits};
        CHECK_EQ(M(&t, "a/b", count_hit, NULL), 4);
        for (int i = 0; i < 3; i++)
            if (g1[i].hits != before[i]) order[k] = i;
    }
    for (int k = 0; k < 12; k++) CHECK_EQ(order[k], k % 3); /* strict rotation, in join order */
    for (int i = 0; i < 3; i++) CHECK_EQ(g1[i].hits, 4);
    for (int i = 0; i < 2; i++) CHECK_EQ(g2[i].hits, 6);
    CHECK_EQ(g1other.hits, 12);
    CHECK_EQ(plain.hits, 12);

    /* A topic that only the '#' group matches leaves the other groups' turn alone. */
    CHECK_EQ(M(&t, "a", count_hit, NULL), 1);
    CHECK_EQ(g1other.hits, 13);

    /* A newcomer joins at the back; a leaver's turn passes to the next member. */
    msub_t late = {0};
    CHECK_EQ(S(&t, &late, "$share/g1/a/+"), 0);
    topic_unsubscribe(&t, &g1[1].te);
    for (int i = 0; i < 3; i++) g1[i].hits = 0;
    for (int k = 0; k < 9; k++) M(&t, "a/x", count_hit, NULL);
    CHECK_EQ(g1[0].hits, 3);
    CHECK_EQ(g1[1].hits, 0);
    CHECK_EQ(g1[2].hits, 3);
    CHECK_EQ(late.hits, 3);

    /* The last member leaving frees the group. */
    topic_unsubscribe(&t, &g2[0].te);
    topic_unsubscribe(&t, &g2[1].te);
    CHECK_EQ(topic_group_count(&t), 2);
    topic_unsubscribe(&t, &g1[0].te);
    topic_unsubscribe(&t, &g1[2].te);
    topic_unsubscribe(&t, &late.te);
    topic_unsubscribe(&t, &g1other.te);
    CHECK_EQ(topic_group_count(&t), 0);
    CHECK_EQ(topic_node_count(&t), 3); /* root, a, + for plain */
    topic_unsubscribe(&t, &plain.te);
    CHECK_EQ(topic_node_count(&t), 0);
    topic_tree_free(&t);
}

/* Shared subscription messages over several topics still rotate evenly. */
TEST(shared_spread_many_topics)
{
    topic_tree_t t;
    topic_tree_init(&t);
    msub_t m[7] = {0};
    for (int i = 0; i < 7; i++) CHECK_EQ(S(&t, &m[i], "$share/workers/jobs/#"), 0);
    char topic[32];
    for (int k = 0; k < 700; k++) {
        int n = snprintf(topic, sizeof(topic), "jobs/%d/run", k % 13);
        CHECK_EQ(topic_match(&t, topic, (size_t)n, count_hit, NULL), 1);
    }
    for (int i = 0; i < 7; i++) CHECK_EQ(m[i].hits, 100);
    topic_tree_free(&t);
    CHECK(!topic_entry_subscribed(&m[0].te));
}

TEST(unsubscribe_prunes)
{
    topic_tree_t t;
    topic_tree_init(&t);
    msub_t a = {0}, b = {0}, c = {0}, d = {0}, e = {0};
    CHECK_EQ(S(&t, &a, "a/b/c"), 0);
    CHECK_EQ(topic_node_count(&t), 4);
    CHECK_EQ(S(&t, &b, "a/b/d"), 0);
    CHECK_EQ(topic_node_count(&t), 5);
    CHECK_EQ(S(&t, &c, "a/+/#"), 0);
    CHECK_EQ(topic_node_count(&t), 7);
    CHECK_EQ(S(&t, &d, "a/b"), 0); /* an inner node gets an entry: no new node */
    CHECK_EQ(topic_node_count(&t), 7);
    CHECK_EQ(S(&t, &e, "//"), 0);
    CHECK_EQ(topic_node_count(&t), 10);
    topic_unsubscribe(&t, &d.te);
    CHECK_EQ(topic_node_count(&t), 10); /* "a/b" still has children */
    topic_unsubscribe(&t, &a.te);
    CHECK_EQ(topic_node_count(&t), 9);
    topic_unsubscribe(&t, &a.te); /* harmless twice */
    CHECK_EQ(topic_node_count(&t), 9);
    topic_unsubscribe(&t, &c.te);
    CHECK_EQ(topic_node_count(&t), 7);
    topic_unsubscribe(&t, &e.te);
    CHECK_EQ(topic_node_count(&t), 4);
    CHECK_EQ(M(&t, "a/b/d", count_hit, NULL), 1);
    topic_unsubscribe(&t, &b.te);
    CHECK_EQ(topic_node_count(&t), 0);
    CHECK_EQ(topic_count(&t), 0);
    /* The entry is reusable. */
    CHECK_EQ(S(&t, &a, "x"), 0);
    CHECK_EQ(M(&t, "x", count_hit, NULL), 1);
    topic_unsubscribe(&t, &a.te);
    CHECK_EQ(topic_node_count(&t), 0);
    topic_tree_free(&t);
}

/* ---- changes from inside the callback ---- */

typedef struct {
    topic_tree_t *t;
    msub_t **all; /* heap entries, freed by the callback */
    int n;
    int calls;
    int nested_calls;
    msub_t *added;
} chaos_t;

static void unsub_self(topic_entry_t *e, void *arg)
{
    chaos_t *c = arg;
    c->calls++;
    topic_unsubscribe(c->t, e);
    CHECK(!topic_entry_subscribed(e));
}

TEST(callback_unsubscribes_itself)
{
    topic_tree_t t;
    topic_tree_init(&t);
    msub_t s[6] = {0};
    const char *f[6] = {"a/b", "a/+", "a/#", "#", "$share/g/a/b", "$share/g/a/b"};
    for (int i = 0; i < 6; i++) CHECK_EQ(S(&t, &s[i], f[i]), 0);
    chaos_t c = {.t = &t};
    CHECK_EQ(M(&t, "a/b", unsub_self, &c), 5); /* 4 ordinary + one group member */
    CHECK_EQ(c.calls, 5);
    CHECK_EQ(topic_count(&t), 1); /* the other group member */
    CHECK_EQ(topic_group_count(&t), 1);
    CHECK_EQ(topic_node_count(&t), 3); /* root, a, b */
    c.calls = 0;
    CHECK_EQ(M(&t, "a/b", unsub_self, &c), 1);
    CHECK_EQ(topic_count(&t), 0);
    CHECK_EQ(topic_group_count(&t), 0); /* the group emptied during the match is freed after it */
    CHECK_EQ(topic_node_count(&t), 0);
    topic_tree_free(&t);
}

/* The first callback drops every session: unsubscribes and frees all entries, including the
 * ones the match has not reached yet. ASan catches any use after free. */
static void drop_everyone(topic_entry_t *e, void *arg)
{
    chaos_t *c = arg;
    c->calls++;
    for (int i = 0; i < c->n; i++) {
        if (!c->all[i]) continue;
        topic_unsubscribe(c->t, &c->all[i]->te);
        free(c->all[i]);
        c->all[i] = NULL;
    }
}

TEST(callback_drops_everything)
{
    const char *f[] = {"a/b", "a/b", "a/b", "a/+", "a/+", "a/#", "#", "+/b", "+/+", "$share/g/a/b",
                       "$share/g/a/b", "$share/h/#", "a/b/c", "x"};
    enum { N = sizeof(f) / sizeof(*f) };
    for (int first = 0; first < 3; first++) {
        topic_tree_t t;
        topic_tree_init(&t);
        msub_t *all[N];
        for (int i = 0; i < N; i++) {
            all[(i + first) % N] = calloc(1, sizeof(msub_t));
            CHECK_EQ(S(&t, all[(i + first) % N], f[i]), 0);
        }
        chaos_t c = {.t = &t, .all = all, .n = N};
        CHECK_EQ(M(&t, "a/b", drop_everyone, &c), 1);
        CHECK_EQ(c.calls, 1);
        CHECK_EQ(topic_count(&t), 0);
        CHECK_EQ(topic_node_count(&t), 0);
        CHECK_EQ(topic_group_count(&t), 0);
        topic_tree_free(&t);
    }
}

/* Drops the entry after the one it was given in the same list (another session), then itself. */
static void drop_neighbour(topic_entry_t *e, void *arg)
{
    chaos_t *c = arg;
    c->calls++;
    for (int i = 0; i + 1 < c->n; i++) {
        if (c->all[i] && &c->all[i]->te == e) {
            if (c->all[i + 1]) {
                topic_unsubscribe(c->t, &c->all[i + 1]->te);
                free(c->all[i + 1]);
                c->all[i + 1] = NULL;
            }
            break;
        }
    }
}

TEST(callback_drops_next_in_list)
{
    topic_tree_t t;
    topic_tree_init(&t);
    enum { N = 10 };
    msub_t *all[N];
    for (int i = 0; i < N; i++) {
        all[i] = calloc(1, sizeof(msub_t));
        CHECK_EQ(S(&t, all[i], "same/filter"), 0);
    }
    chaos_t c = {.t = &t, .all = all, .n = N};
    CHECK_EQ(M(&t, "same/filter", drop_neighbour, &c), 5); /* 0, 2, 4, 6, 8 */
    CHECK_EQ(topic_count(&t), 5);
    for (int i = 0; i < N; i++) {
        CHECK((all[i] != NULL) == (i % 2 == 0));
        if (all[i]) topic_unsubscribe(&t, &all[i]->te);
        free(all[i]);
    }
    CHECK_EQ(topic_node_count(&t), 0);
    topic_tree_free(&t);
}

/* A callback that subscribes new entries, including on nodes the walk has not reached and on
 * the node being walked (whose child table may be rehashed). */
static void subscribe_more(topic_entry_t *e, void *arg)
{
    chaos_t *c = arg;
    c->calls++;
    if (c->added) return;
    c->added = calloc(64, sizeof(msub_t));
    char f[32];
    for (int i = 0; i < 64; i++) {
        int n = snprintf(f, sizeof(f), i % 2 ? "a/n%d" : "a/b/n%d", i);
        CHECK_EQ(topic_subscribe(c->t, &c->added[i].te, f, (size_t)n), 0);
    }
}

TEST(callback_subscribes)
{
    topic_tree_t t;
    topic_tree_init(&t);
    msub_t s[3] = {0};
    CHECK_EQ(S(&t, &s[0], "a/#"), 0);
    CHECK_EQ(S(&t, &s[1], "a/+"), 0);
    CHECK_EQ(S(&t, &s[2], "a/b"), 0);
    chaos_t c = {.t = &t};
    size_t n = M(&t, "a/b", subscribe_more, &c);
    CHECK_EQ(n, 3); /* the new filters do not match a/b */
    CHECK_EQ(topic_count(&t), 67);
    CHECK_EQ(M(&t, "a/n7", count_hit, NULL), 3); /* a/#, a/+, a/n7 */
    CHECK_EQ(c.added[7].hits, 1);
    for (int i = 0; i < 64; i++) topic_unsubscribe(&t, &c.added[i].te);
    for (int i = 0; i < 3; i++) topic_unsubscribe(&t, &s[i].te);
    CHECK_EQ(topic_node_count(&t), 0);
    free(c.added);
    topic_tree_free(&t);
}

/* A callback that publishes again (a will message) and drops sessions in the nested match. */
static void nested_inner(topic_entry_t *e, void *arg)
{
    chaos_t *c = arg;
    c->nested_calls++;
    topic_unsubscribe(c->t, e);
}

static void nested_outer(topic_entry_t *e, void *arg)
{
    chaos_t *c = arg;
    c->calls++;
    topic_unsubscribe(c->t, e);
    if (c->calls == 1) M(c->t, "will/x", nested_inner, c);
}

TEST(callback_matches_again)
{
    topic_tree_t t;
    topic_tree_init(&t);
    msub_t s[8] = {0};
    /* Entries on "#" and "+/x" match both the outer topic and the will topic. */
    const char *f[8] = {"#", "#", "+/x", "will/x", "a/x", "a/x", "$share/g/#", "$share/g/#"};
    for (int i = 0; i < 8; i++) CHECK_EQ(S(&t, &s[i], f[i]), 0);
    chaos_t c = {.t = &t};
    /* Outer: s0 (whose callback runs the nested match), then the group's remaining member, s4, s5.
     * Nested "will/x": s1, the group's head, s3, s2; each removed before the outer walk meets it. */
    size_t outer = M(&t, "a/x", nested_outer, &c);
    CHECK_EQ(outer, 4);
    CHECK_EQ(c.calls, 4);
    CHECK_EQ(c.nested_calls, 4);
    CHECK_EQ(topic_count(&t), 0);
    for (int i = 0; i < 8; i++) CHECK(!topic_entry_subscribed(&s[i].te));
    CHECK_EQ(topic_node_count(&t), 0);
    CHECK_EQ(topic_group_count(&t), 0);
    topic_tree_free(&t);
}

/* Freeing the tree with live entries detaches them. */
TEST(free_detaches)
{
    topic_tree_t t;
    topic_tree_init(&t);
    msub_t s[3] = {0};
    CHECK_EQ(S(&t, &s[0], "a/b"), 0);
    CHECK_EQ(S(&t, &s[1], "$share/g/a/#"), 0);
    CHECK_EQ(S(&t, &s[2], "+"), 0);
    topic_tree_free(&t);
    for (int i = 0; i < 3; i++) CHECK(!topic_entry_subscribed(&s[i].te));
    CHECK_EQ(topic_node_count(&t), 0);
    topic_tree_init(&t);
    CHECK_EQ(S(&t, &s[0], "a/b"), 0); /* reusable */
    topic_tree_free(&t);
}

/* 100k device ids under one node. */
TEST(many_children)
{
    enum { N = 100000 };
    topic_tree_t t;
    topic_tree_init(&t);
    msub_t *dev = calloc(N, sizeof(msub_t));
    char f[48];
    for (int i = 0; i < N; i++) {
        int n = snprintf(f, sizeof(f), "devices/%08x-%d/cmd", (unsigned)i * 2654435761u, i);
        CHECK_EQ(topic_subscribe(&t, &dev[i].te, f, (size_t)n), 0);
    }
    msub_t all = {0};
    CHECK_EQ(S(&t, &all, "devices/+/cmd"), 0);
    CHECK_EQ(topic_node_count(&t), 2 + 2 * N + 2);
    for (int i = 0; i < N; i += 997) {
        int n = snprintf(f, sizeof(f), "devices/%08x-%d/cmd", (unsigned)i * 2654435761u, i);
        CHECK_EQ(topic_match(&t, f, (size_t)n, count_hit, NULL), 2);
        CHECK_EQ(dev[i].hits, 1);
    }
    CHECK_EQ(M(&t, "devices/unknown/cmd", count_hit, NULL), 1);
    CHECK_EQ(M(&t, "devices/00000000-0", count_hit, NULL), 0);
    /* Remove in a scattered order; the node table shrinks back and every node goes. */
    for (int k = 0; k < N; k++) topic_unsubscribe(&t, &dev[(int)(((long long)k * 7919) % N)].te);
    CHECK_EQ(topic_count(&t), 1);
    CHECK_EQ(topic_node_count(&t), 4);
    CHECK_EQ(M(&t, "devices/x/cmd", count_hit, NULL), 1);
    topic_unsubscribe(&t, &all.te);
    CHECK_EQ(topic_node_count(&t), 0);
    free(dev);
    topic_tree_free(&t);
}

/* ---- randomized comparison with a brute-force matcher ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

#define MAXL 8
typedef struct {
    char lv[MAXL][8];
    int n;
} levels_t;

static void split(const char *s, levels_t *l)
{
    l->n = 0;
    for (;;) {
        const char *slash = strchr(s, '/');
        size_t len = slash ? (size_t)(slash - s) : strlen(s);
        memcpy(l->lv[l->n], s, len);
        l->lv[l->n][len] = 0;
        l->n++;
        if (!slash) return;
        s = slash + 1;
    }
}

/* Straight from the spec, one filter at a time. */
static bool brute_match(const char *filter, const char *topic)
{
    if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#')) return false;
    levels_t f, t;
    split(filter, &f);
    split(topic, &t);
    for (int i = 0; i < f.n; i++) {
        if (strcmp(f.lv[i], "#") == 0) return true;
        if (i >= t.n) return false;
        if (strcmp(f.lv[i], "+") != 0 && strcmp(f.lv[i], t.lv[i]) != 0) return false;
    }
    return f.n == t.n;
}

typedef struct {
    msub_t s;
    char body[64];  /* the filter without $share/g/ */
    char group[8];  /* "" when ordinary */
    bool live;
} rsub_t;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Expected node count: distinct level prefixes of the live filters, plus the root. */
static uint32_t expected_nodes(rsub_t *r, int n)
{
    char(*buf)[80] = malloc((size_t)n * MAXL * sizeof(*buf));
    char **ptr = malloc((size_t)n * MAXL * sizeof(*ptr));
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!r[i].live) continue;
        const char *b = r[i].body;
        for (const char *p = b;; p++) {
            if (*p == '/' || *p == 0) {
                memcpy(buf[k], b, (size_t)(p - b));
                buf[k][p - b] = 0;
                ptr[k] = buf[k];
                k++;
            }
            if (!*p) break;
        }
    }
    uint32_t distinct = 0;
    if (k) qsort(ptr, (size_t)k, sizeof(*ptr), cmp_str);
    for (int i = 0; i < k; i++)
        if (i == 0 || strcmp(ptr[i], ptr[i - 1]) != 0) distinct++;
    free(buf);
    free(ptr);
    return distinct ? distinct + 1 : 0;
}

/* A valid filter: 1-4 levels from a small alphabet (so that filters collide and match), "#"
 * sometimes last, "$share/g0|g1/" sometimes in front. */
static void random_filter(char *out, size_t cap, char *body, char *group)
{
    static const char *lv[] = {"a", "b", "", "$s", "+", "ab"};
    int n = 1 + (int)rnd(4);
    size_t len = 0;
    body[0] = 0;
    for (int i = 0; i < n || len == 0; i++) { /* "" alone is not a filter */
        const char *l = (i == n - 1 && rnd(4) == 0) ? "#" : lv[rnd(6)];
        len += (size_t)snprintf(body + len, 64 - len, "%s%s", i ? "/" : "", l);
    }
    group[0] = 0;
    if (rnd(4) == 0) snprintf(group, 8, "g%u", rnd(2));
    if (group[0])
        snprintf(out, cap, "$share/%s/%s", group, body);
    else
        snprintf(out, cap, "%s", body);
}

static void random_topic(char *out, size_t cap)
{
    static const char *lv[] = {"a", "b", "", "$s", "ab"};
    int n = 1 + (int)rnd(5);
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; i < n || len == 0; i++) len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "/" : "", lv[rnd(5)]);
}

/* rep[i]: for a live shared entry, the index of the first live entry with the same (filter,
 * group); -1 otherwise. */
static void group_reps(const rsub_t *r, int n, int *rep)
{
    for (int i = 0; i < n; i++) {
        rep[i] = -1;
        if (!r[i].live || !r[i].group[0]) continue;
        for (int j = 0; j <= i; j++)
            if (r[j].live && !strcmp(r[j].body, r[i].body) && !strcmp(r[j].group, r[i].group)) {
                rep[i] = j;
                break;
            }
    }
}

/* Checks one topic: each ordinary entry is hit iff it matches; each matching (filter, group) has
 * exactly one hit among its live members, a non-matching one none. */
static void check_topic(topic_tree_t *t, rsub_t *r, int n, const int *rep, int *sum, const char *topic)
{
    for (int i = 0; i < n; i++) r[i].s.hits = 0, sum[i] = 0;
    size_t calls = M(t, topic, count_hit, NULL);
    size_t want_calls = 0;
    for (int i = 0; i < n; i++) {
        if (!r[i].live) {
            CHECK_EQ(r[i].s.hits, 0);
            continue;
        }
        if (rep[i] >= 0) {
            sum[rep[i]] += r[i].s.hits;
            continue;
        }
        bool m = brute_match(r[i].body, topic);
        if (r[i].s.hits != (int)m) printf("#   filter '%s' topic '%s'\n", r[i].body, topic);
        CHECK_EQ(r[i].s.hits, m);
        want_calls += m;
    }
    for (int i = 0; i < n; i++) {
        if (rep[i] != i) continue;
        bool m = brute_match(r[i].body, topic);
        if (sum[i] != (int)m) printf("#   shared '%s' group %s topic '%s': %d\n", r[i].body, r[i].group, topic, sum[i]);
        CHECK_EQ(sum[i], m);
        want_calls += m;
    }
    CHECK_EQ(calls, want_calls);
}

TEST(randomized_against_brute_force)
{
    enum { N = 400, TOPICS = 300, ROUNDS = 6 };
    for (int round = 0; round < ROUNDS; round++) {
        topic_tree_t t;
        topic_tree_init(&t);
        rsub_t *r = calloc(N, sizeof(rsub_t));
        char f[96];
        for (int i = 0; i < N; i++) {
            random_filter(f, sizeof(f), r[i].body, r[i].group);
            CHECK_EQ(S(&t, &r[i].s, f), 0);
            r[i].live = true;
        }
        CHECK_EQ(topic_count(&t), N);
        CHECK_EQ(topic_node_count(&t), expected_nodes(r, N));
        char topics[TOPICS][48];
        for (int k = 0; k < TOPICS; k++) random_topic(topics[k], sizeof(topics[k]));

        /* Shared groups rotate evenly: totals over all publishes differ by at most one. */
        int total[N] = {0}, rep[N], sum[N];
        group_reps(r, N, rep);
        for (int k = 0; k < TOPICS; k++) {
            check_topic(&t, r, N, rep, sum, topics[k]);
            for (int i = 0; i < N; i++) total[i] += r[i].s.hits;
        }
        for (int i = 0; i < N; i++) {
            if (!r[i].group[0]) continue;
            for (int j = 0; j < N; j++)
                if (!strcmp(r[j].body, r[i].body) && !strcmp(r[j].group, r[i].group)) {
                    CHECK(total[i] - total[j] <= 1);
                    CHECK(total[j] - total[i] <= 1);
                }
        }

        /* Unsubscribe a random half, check again, then re-subscribe some with new filters. */
        for (int i = 0; i < N; i++)
            if (rnd(2)) {
                topic_unsubscribe(&t, &r[i].s.te);
                r[i].live = false;
            }
        CHECK_EQ(topic_node_count(&t), expected_nodes(r, N));
        group_reps(r, N, rep);
        for (int k = 0; k < TOPICS; k++) check_topic(&t, r, N, rep, sum, topics[k]);
        for (int i = 0; i < N; i++)
            if (!r[i].live && rnd(2)) {
                random_filter(f, sizeof(f), r[i].body, r[i].group);
                CHECK_EQ(S(&t, &r[i].s, f), 0);
                r[i].live = true;
            }
        CHECK_EQ(topic_node_count(&t), expected_nodes(r, N));
        group_reps(r, N, rep);
        for (int k = 0; k < TOPICS; k++) check_topic(&t, r, N, rep, sum, topics[k]);

        for (int i = 0; i < N; i++) {
            topic_unsubscribe(&t, &r[i].s.te);
            r[i].live = false;
        }
        CHECK_EQ(topic_node_count(&t), 0);
        CHECK_EQ(topic_group_count(&t), 0);
        CHECK_EQ(topic_count(&t), 0);
        topic_tree_free(&t);
        free(r);
    }
}

int main(void)
{
    RUN(filter_validity);
    RUN(spec_multi_level_wildcard);
    RUN(spec_single_level_wildcard);
    RUN(spec_exact_levels);
    RUN(dollar_topics);
    RUN(many_filters_one_tree);
    RUN(overlapping_filters_same_session);
    RUN(shared_round_robin);
    RUN(shared_spread_many_topics);
    RUN(unsubscribe_prunes);
    RUN(callback_unsubscribes_itself);
    RUN(callback_drops_everything);
    RUN(callback_drops_next_in_list);
    RUN(callback_subscribes);
    RUN(callback_matches_again);
    RUN(free_detaches);
    RUN(many_children);
    RUN(randomized_against_brute_force);
    return UNIT_DONE();
}
