/* test_users.c - the users table (hub/users.h): registering and unregistering connections,
 * counts by transport, disconnect and unsubscribe through the connections' ops (including ops
 * that unregister during the call), last_seen and the bound on remembered offline users. */
#include "../../src/core/err.h"
#include "../../src/hub/users.h"
#include "unit.h"

typedef struct {
    users_conn_t uc;
    users_t *us;
    int disconnects;
    bool reconnect;
    char reason[64];
    bool self_remove; /* unregisters itself during the op (a close that runs at once) */
    const char *chan;  /* its one subscription, or NULL */
} fake_t;

static void fake_disconnect(users_conn_t *uc, const char *reason, bool reconnect)
{
    fake_t *f = container_of(uc, fake_t, uc);
    f->disconnects++;
    f->reconnect = reconnect;
    snprintf(f->reason, sizeof(f->reason), "%s", reason);
    if (f->self_remove) users_remove(f->us, uc);
}

static uint32_t fake_unsubscribe(users_conn_t *uc, const char *ch, size_t n)
{
    fake_t *f = container_of(uc, fake_t, uc);
    if (!f->chan || strlen(f->chan) != n || memcmp(f->chan, ch, n) != 0) return 0;
    f->chan = NULL;
    if (f->self_remove) users_remove(f->us, uc); /* its only channel: the stream ends */
    return 1;
}

static const users_conn_ops_t fake_ops = {fake_disconnect, fake_unsubscribe};

static void fake_init(fake_t *f, users_t *us, const char *kind)
{
    memset(f, 0, sizeof(*f));
    f->us = us;
    f->uc.ops = &fake_ops;
    f->uc.kind = kind;
}

TEST(add_count_remove)
{
    users_t us;
    CHECK_EQ(users_init(&us, 10), 0);
    fake_t a, b, c, d;
    fake_init(&a, &us, "sse");
    fake_init(&b, &us, "ws_json");
    fake_init(&c, &us, "sse");
    fake_init(&d, &us, "mqtt");
    CHECK_EQ(users_add(&us, "42", 2, &a.uc), 0);
    CHECK_EQ(users_add(&us, "42", 2, &b.uc), 0);
    CHECK_EQ(users_add(&us, "42", 2, &c.uc), 0);
    CHECK_EQ(users_add(&us, "7", 1, &d.uc), 0);
    CHECK_EQ(users_add(&us, "", 0, &d.uc), HR_EINVAL);
    CHECK(d.uc.u == NULL); /* a failed add leaves it unregistered */
    CHECK_EQ(users_add(&us, "7", 1, &d.uc), 0);
    CHECK_EQ(us.online, 2);
    CHECK_EQ(us.conns, 4);
    users_user_t *u = users_find(&us, "42", 2);
    CHECK(u != NULL);
    CHECK(users_find(&us, "4", 1) == NULL);
    const char *kinds[4];
    uint32_t counts[4];
    CHECK_EQ(users_count_kinds(u, kinds, counts, 4), 2);
    CHECK(strcmp(kinds[0], "sse") == 0 && counts[0] == 2);
    CHECK(strcmp(kinds[1], "ws_json") == 0 && counts[1] == 1);
    users_remove(&us, &a.uc);
    users_remove(&us, &a.uc); /* twice: nothing */
    CHECK_EQ(u->nconns, 2);
    CHECK_EQ(u->last_seen_ms, 0);
    users_remove(&us, &b.uc);
    users_remove(&us, &c.uc);
    CHECK_EQ(us.online, 1);
    CHECK_EQ(us.noffline, 1);
    CHECK(users_find(&us, "42", 2) == u);
    CHECK(u->last_seen_ms > 0);
    /* back online */
    CHECK_EQ(users_add(&us, "42", 2, &a.uc), 0);
    CHECK_EQ(us.online, 2);
    CHECK_EQ(us.noffline, 0);
    CHECK_EQ(u->last_seen_ms, 0);
    users_close(&us);
    CHECK(a.uc.u == NULL && d.uc.u == NULL); /* unlinked by the close */
}

TEST(disconnect_ends_every_connection_of_one_user)
{
    users_t us;
    CHECK_EQ(users_init(&us, 10), 0);
    fake_t f[4];
    for (int i = 0; i < 4; i++) fake_init(&f[i], &us, "sse");
    f[1].self_remove = true; /* a transport that closes at once */
    for (int i = 0; i < 3; i++) CHECK_EQ(users_add(&us, "alice", 5, &f[i].uc), 0);
    CHECK_EQ(users_add(&us, "bob", 3, &f[3].uc), 0);
    CHECK_EQ(users_disconnect(&us, "alice", 5, "banned", true), 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(f[i].disconnects, 1);
        CHECK(f[i].reconnect);
        CHECK(strcmp(f[i].reason, "banned") == 0);
        CHECK(f[i].uc.u == NULL);
        users_remove(&us, &f[i].uc); /* their later close: nothing */
    }
    CHECK_EQ(f[3].disconnects, 0);
    CHECK_EQ(us.online, 1);
    CHECK_EQ(us.noffline, 1);
    CHECK_EQ(us.disconnects, 3);
    CHECK(users_find(&us, "alice", 5)->last_seen_ms > 0);
    CHECK_EQ(users_disconnect(&us, "alice", 5, "again", false), 0); /* offline: nothing, and still offline once */
    CHECK_EQ(users_unsubscribe(&us, "alice", 5, "x", 1), 0);
    CHECK_EQ(us.noffline, 1);
    CHECK_EQ(us.online, 1);
    CHECK_EQ(users_disconnect(&us, "nobody", 6, "x", false), 0);
    users_close(&us);
}

TEST(unsubscribe_with_connections_that_end)
{
    users_t us;
    CHECK_EQ(users_init(&us, 0), 0); /* remembers no offline user */
    fake_t f[3];
    for (int i = 0; i < 3; i++) {
        fake_init(&f[i], &us, "ws_json");
        f[i].chan = i == 2 ? "other" : "news";
        f[i].self_remove = i == 0;
        CHECK_EQ(users_add(&us, "u", 1, &f[i].uc), 0);
    }
    CHECK_EQ(users_unsubscribe(&us, "u", 1, "news", 4), 2);
    CHECK(f[0].uc.u == NULL);
    CHECK(f[1].uc.u != NULL && f[1].chan == NULL);
    CHECK(f[2].chan != NULL);
    CHECK_EQ(users_unsubscribe(&us, "u", 1, "news", 4), 0);
    CHECK_EQ(us.online, 1);
    /* the last connection ends inside the walk: the user is freed after it, not during it */
    f[1].chan = "x";
    f[1].self_remove = true;
    f[2].self_remove = true;
    f[2].chan = "x";
    CHECK_EQ(users_unsubscribe(&us, "u", 1, "x", 1), 2);
    CHECK_EQ(us.online, 0);
    CHECK_EQ(us.noffline, 0);
    CHECK(users_find(&us, "u", 1) == NULL); /* max_offline 0: forgotten at once */
    CHECK_EQ(us.evicted, 1);
    users_close(&us);
}

TEST(offline_users_are_bounded_oldest_first)
{
    users_t us;
    CHECK_EQ(users_init(&us, 3), 0);
    fake_t f[5];
    char id[5][16];
    for (int i = 0; i < 5; i++) {
        fake_init(&f[i], &us, "mqtt");
        snprintf(id[i], sizeof(id[i]), "u%d", i);
        CHECK_EQ(users_add(&us, id[i], strlen(id[i]), &f[i].uc), 0);
    }
    for (int i = 0; i < 5; i++) users_remove(&us, &f[i].uc);
    CHECK_EQ(us.noffline, 3);
    CHECK_EQ(us.evicted, 2);
    CHECK(users_find(&us, "u0", 2) == NULL);
    CHECK(users_find(&us, "u1", 2) == NULL);
    CHECK(users_find(&us, "u4", 2) != NULL);
    char m[2048];
    size_t n = users_metrics(&us, m, sizeof(m));
    CHECK(n > 0);
    CHECK(strstr(m, "herald_users_offline 3\n") != NULL);
    CHECK(strstr(m, "herald_users_offline_evicted_total 2\n") != NULL);
    users_close(&us);
}

int main(void)
{
    RUN(add_count_remove);
    RUN(disconnect_ends_every_connection_of_one_user);
    RUN(unsubscribe_with_connections_that_end);
    RUN(offline_users_are_bounded_oldest_first);
    return UNIT_DONE();
}
