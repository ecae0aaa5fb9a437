/* test_idem.c - the idempotency records (app/idem.h): a pending record, then its answer; the
 * window (lookups and the sweep forget old records, pending ones stay); max_keys forgets the
 * oldest done record first; the stored value's format; and records surviving a restart of the
 * LMDB store (in the same commit as other writes), expired ones dropped at load. */
#include <stdlib.h>

#include "../../src/app/idem.h"
#include "../../src/core/err.h"
#include "unit.h"

static idem_entry_t *begin(idem_t *t, const char *k, uint64_t now) { return idem_begin(t, k, strlen(k), now); }
static idem_entry_t *find(idem_t *t, const char *k, uint64_t now) { return idem_find(t, k, strlen(k), now); }

TEST(pending_then_done)
{
    idem_t t;
    CHECK_EQ(idem_init(&t, NULL, NULL, 1000, 10), 0);
    CHECK(find(&t, "u:1 k", 100) == NULL);
    idem_entry_t *e = begin(&t, "u:1 k", 100);
    CHECK(e != NULL);
    CHECK(find(&t, "u:1 k", 200) == e);
    CHECK_EQ(e->state, IDEM_PENDING); /* a retry now is told to wait (409) */
    CHECK(find(&t, "u:2 k", 200) == NULL); /* another caller, same key: its own */
    CHECK_EQ(idem_finish(&t, e, 200, "{\"id\":\"1\"}", 10), 0);
    e = find(&t, "u:1 k", 300);
    CHECK(e && e->state == IDEM_DONE && e->status == 200 && e->body_len == 10);
    CHECK(memcmp(e->body, "{\"id\":\"1\"}", 10) == 0);
    /* the window: forgotten at made + window */
    CHECK(find(&t, "u:1 k", 1099) == e);
    CHECK(find(&t, "u:1 k", 1100) == NULL);
    CHECK_EQ(t.n, 0u);
    CHECK_EQ(t.expired, 1u);
    idem_close(&t);
}

TEST(forget_and_key)
{
    idem_t t;
    char k[64];
    CHECK_EQ(idem_init(&t, NULL, NULL, 1000, 10), 0);
    size_t n = idem_key(k, sizeof(k), "k:00ff", 6, "abc", 3);
    CHECK_EQ(n, 10u);
    CHECK(memcmp(k, "k:00ff abc", 10) == 0);
    CHECK_EQ(idem_key(k, 5, "k:00ff", 6, "abc", 3), 0u);
    idem_entry_t *e = idem_begin(&t, k, n, 5);
    idem_forget(&t, e); /* nothing was published: a retry publishes */
    CHECK(idem_find(&t, k, n, 6) == NULL);
    idem_close(&t);
}

TEST(sweep_keeps_pending)
{
    idem_t t;
    CHECK_EQ(idem_init(&t, NULL, NULL, 100, 10), 0);
    idem_entry_t *a = begin(&t, "a", 0), *b = begin(&t, "b", 10);
    begin(&t, "c", 50);
    idem_finish(&t, a, 200, "A", 1);
    (void)b; /* still pending */
    CHECK_EQ(idem_sweep(&t, 99), 0u);
    CHECK_EQ(idem_sweep(&t, 120), 1u); /* a; b is pending; c is young */
    CHECK(find(&t, "a", 120) == NULL);
    CHECK(find(&t, "b", 120) == b);
    CHECK(find(&t, "c", 120) != NULL);
    CHECK_EQ(t.n, 2u);
    idem_close(&t);
}

TEST(max_keys_oldest_first)
{
    idem_t t;
    CHECK_EQ(idem_init(&t, NULL, NULL, 100000, 3), 0);
    idem_entry_t *a = begin(&t, "a", 1), *b = begin(&t, "b", 2), *c = begin(&t, "c", 3);
    idem_finish(&t, b, 200, "B", 1);
    idem_finish(&t, c, 200, "C", 1);
    (void)a; /* pending: never forgotten early */
    CHECK(begin(&t, "d", 4) != NULL);
    CHECK_EQ(t.n, 3u);
    CHECK_EQ(t.evicted, 1u);
    CHECK(find(&t, "a", 5) == a);
    CHECK(find(&t, "b", 5) == NULL); /* the oldest done one */
    CHECK(find(&t, "c", 5) != NULL);
    CHECK(find(&t, "d", 5) != NULL);
    idem_close(&t);
}

TEST(record_format)
{
    uint8_t v[IDEM_REC_HEAD + 5];
    idem_rec_t r = {0x0102030405060708ull, 200, true, "hello", 5}, back;
    idem_rec_encode(v, &r);
    CHECK_EQ(idem_rec_decode(v, sizeof(v), &back), 0);
    CHECK(back.made_ms == r.made_ms && back.status == 200 && back.final && back.body_len == 5);
    CHECK(memcmp(back.body, "hello", 5) == 0);
    CHECK_EQ(idem_rec_decode(v, IDEM_REC_HEAD - 1, &back), HR_EINVAL);
    v[0] = 'X';
    CHECK_EQ(idem_rec_decode(v, sizeof(v), &back), HR_EINVAL);
    v[0] = 'H';
    v[12] = 7;
    CHECK_EQ(idem_rec_decode(v, sizeof(v), &back), HR_EINVAL);
    v[12] = 0;
    v[10] = 0, v[11] = 5; /* status 5 */
    CHECK_EQ(idem_rec_decode(v, sizeof(v), &back), HR_EINVAL);
}

static int count_kv(void *arg, const void *k, size_t kn, const void *v, size_t vn)
{
    (void)k, (void)kn, (void)v, (void)vn;
    ++*(int *)arg;
    return 0;
}

TEST(survives_restart)
{
    char dir[] = "/tmp/herald-idem-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    store_lmdb_opts_t o = {dir, true, 1000, 1u << 24};
    char err[256];
    store_t *st = store_lmdb_open(&o, NULL, err, sizeof(err));
    CHECK(st != NULL);
    if (!st) return;
    idem_t t;
    CHECK_EQ(idem_init(&t, NULL, st, 3600000, 10), 0);
    uint64_t now = loop_wall_ms();
    idem_entry_t *a = begin(&t, "u:1 a", now), *b = begin(&t, "u:1 b", now - 3599000), *c = begin(&t, "u:1 c", now);
    /* a: written with its publishes (provisional), then completed in a later commit */
    CHECK_EQ(idem_write(&t, a, 200, "{\"id\":\"7\"}", 10, false), 0);
    CHECK_EQ(st->ops->flush(st), 0);
    CHECK_EQ(idem_finish(&t, a, 200, "{\"id\":\"7\",\"subscribers\":1}", 27), 0);
    CHECK_EQ(st->ops->flush(st), 0);
    /* b: done but near its window's end; c: its publishes' commit failed (never stored) */
    CHECK_EQ(idem_finish(&t, b, 200, "B", 1), 0);
    CHECK_EQ(st->ops->flush(st), 0);
    (void)c;
    idem_close(&t);
    st->ops->close(st);

    st = store_lmdb_open(&o, NULL, err, sizeof(err));
    CHECK(st != NULL);
    if (!st) return;
    CHECK_EQ(idem_init(&t, NULL, st, 3600000, 10), 0);
    idem_entry_t *e = find(&t, "u:1 a", now + 1);
    CHECK(e && e->state == IDEM_DONE && e->body_len == 27);
    CHECK(find(&t, "u:1 c", now + 1) == NULL);
    CHECK_EQ(t.n, 2u);
    idem_close(&t);
    st->ops->close(st);

    /* with a shorter window b is too old at load: dropped, from the store too */
    st = store_lmdb_open(&o, NULL, err, sizeof(err));
    CHECK_EQ(idem_init(&t, NULL, st, 60000, 10), 0);
    CHECK_EQ(t.n, 1u);
    CHECK_EQ(st->ops->flush(st), 0);
    int n = 0;
    st->ops->kv_each(st, IDEM_NS, count_kv, &n);
    CHECK_EQ(n, 1);
    idem_close(&t);
    st->ops->close(st);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
}

int main(void)
{
    RUN(pending_then_done);
    RUN(forget_and_key);
    RUN(sweep_keeps_pending);
    RUN(max_keys_oldest_first);
    RUN(record_format);
    RUN(survives_restart);
    return UNIT_DONE();
}
