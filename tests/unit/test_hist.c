/* test_hist.c - histories counted in a pool (hist.h): the bytes of every history together, and
 * the history holding the oldest message of all, checked against a brute-force model while
 * histories grow, trim, drop their oldest and are freed. */
#include "../../src/core/err.h"
#include "../../src/hub/hist.h"
#include "unit.h"

static msg_t *M(uint64_t id, uint64_t t, size_t n)
{
    static char pay[256];
    return msg_new("c", 1, "message", 7, pay, n, id, t);
}

/* Pushes (and drops the caller's reference to) a message of n bytes at time t. */
static void push(hist_t *h, const hist_limits_t *lim, uint64_t id, uint64_t t, size_t n)
{
    msg_t *m = M(id, t, n);
    CHECK_EQ(hist_push(h, m, lim, t), 0);
    msg_unref(m);
}

TEST(pool_counts_bytes_and_finds_the_oldest)
{
    hist_pool_t pool = {.ordered = true};
    hist_t a, b, c;
    hist_t *hs[3] = {&a, &b, &c};
    for (int i = 0; i < 3; i++) {
        hist_init(hs[i]);
        hist_join(hs[i], &pool);
    }
    hist_limits_t lim = {3, 1 << 20, 0};
    CHECK(hist_pool_oldest(&pool) == NULL);
    push(&b, &lim, 1, 100, 10);
    push(&a, &lim, 1, 200, 10);
    push(&c, &lim, 1, 300, 10);
    push(&b, &lim, 2, 400, 10);
    uint64_t one = a.bytes;
    CHECK_EQ(pool.bytes, 4 * one);
    CHECK(hist_pool_oldest(&pool) == &b); /* b's oldest (t 100) is the oldest of all */
    hist_drop_oldest(&b);
    CHECK(hist_pool_oldest(&pool) == &a); /* now 200 */
    CHECK_EQ(pool.bytes, 3 * one);
    hist_drop_oldest(&a); /* a is empty: out of the heap */
    CHECK_EQ(a.count, 0);
    CHECK_EQ(a.heap_i, 0);
    CHECK(hist_pool_oldest(&pool) == &c);
    /* the per-history limit trims too, and the pool follows */
    push(&c, &lim, 2, 500, 10);
    push(&c, &lim, 3, 600, 10);
    push(&c, &lim, 4, 700, 10); /* c keeps 3: its oldest is now t 500 */
    CHECK_EQ(c.count, 3);
    CHECK(hist_pool_oldest(&pool) == &b); /* b's 400 */
    CHECK_EQ(pool.bytes, (uint64_t)(b.count + c.count) * one);
    /* an age limit trims on read */
    hist_limits_t aged = {3, 1 << 20, 100};
    hist_trim(&c, &aged, 700); /* 500 and 600 are 100 ms old or more at 700 */
    CHECK_EQ(c.count, 1);
    CHECK(hist_pool_oldest(&pool) == &b);
    hist_free(&b);
    CHECK(b.pool == &pool);
    CHECK(hist_pool_oldest(&pool) == &c);
    CHECK_EQ(pool.bytes, one);
    hist_free(&c);
    hist_free(&a);
    CHECK_EQ(pool.bytes, 0);
    CHECK(hist_pool_oldest(&pool) == NULL);
    hist_pool_free(&pool);
}

TEST(pool_random_against_model)
{
    enum { NH = 40 };
    static hist_t h[NH];
    static uint64_t next_id[NH];
    hist_pool_t pool = {.ordered = true};
    for (int i = 0; i < NH; i++) {
        hist_init(&h[i]);
        hist_join(&h[i], &pool);
        next_id[i] = 1;
    }
    hist_limits_t lim = {20, 4000, 0};
    srand(5);
    uint64_t t = 1;
    int bad_bytes = 0, bad_oldest = 0;
    for (int step = 0; step < 30000; step++) {
        int i = rand() % NH;
        int op = rand() % 10;
        if (op < 6) {
            push(&h[i], &lim, next_id[i]++, t, (size_t)(rand() % 200));
            t += (uint64_t)(rand() % 3); /* equal times happen */
        } else if (op < 9) {
            hist_t *o = hist_pool_oldest(&pool);
            if (o) hist_drop_oldest(o);
        } else if (rand() % 20 == 0) {
            hist_free(&h[i]); /* an emptied channel, as hub_rebase does */
        }
        uint64_t sum = 0, oldest = UINT64_MAX;
        for (int k = 0; k < NH; k++) {
            sum += h[k].bytes;
            if (h[k].count && hist_at(&h[k], 0)->time_ms < oldest) oldest = hist_at(&h[k], 0)->time_ms;
        }
        if (sum != pool.bytes) bad_bytes++;
        hist_t *o = hist_pool_oldest(&pool);
        if ((o == NULL) != (oldest == UINT64_MAX) || (o && hist_at(o, 0)->time_ms != oldest)) bad_oldest++;
    }
    CHECK_EQ(bad_bytes, 0);
    CHECK_EQ(bad_oldest, 0);
    for (int i = 0; i < NH; i++) hist_free(&h[i]);
    CHECK_EQ(pool.bytes, 0);
    CHECK_EQ(pool.n, 0);
    hist_pool_free(&pool);
}

TEST(unordered_pool_only_counts)
{
    hist_pool_t pool = {0};
    hist_t a;
    hist_init(&a);
    hist_join(&a, &pool);
    hist_limits_t lim = {10, 1 << 20, 0};
    push(&a, &lim, 1, 1, 50);
    CHECK(pool.bytes == a.bytes && a.bytes > 50);
    CHECK(hist_pool_oldest(&pool) == NULL); /* no heap kept */
    hist_free(&a);
    CHECK_EQ(pool.bytes, 0);
    hist_pool_free(&pool);
}

TEST(count_after_skips_withdrawn_and_expired)
{
    hist_t h;
    hist_init(&h);
    hist_limits_t lim = {.max_messages = 100, .max_bytes = 1u << 20};
    for (uint64_t id = 1; id <= 6; id++) {
        msg_t *m = M(id, 1000, 8);
        if (id == 3) m->expiry_s = 5;  /* expires at 6000 */
        if (id == 5) m->expiry_s = 60; /* at 61000 */
        CHECK_EQ(hist_push(&h, m, &lim, 1000), 0);
        msg_unref(m);
    }
    uint64_t exp = 0;
    CHECK_EQ(h.nskip, 2u);
    CHECK_EQ(hist_count_after(&h, 0, 2000, &exp), 6u);
    CHECK_EQ(exp, 6000u); /* the earliest expiry among those counted */
    exp = 0;
    CHECK_EQ(hist_count_after(&h, 3, 2000, &exp), 3u);
    CHECK_EQ(exp, 61000u);
    exp = 0;
    CHECK_EQ(hist_count_after(&h, 0, 7000, &exp), 5u); /* 3 expired: skipped */
    CHECK_EQ(hist_count_after(&h, 6, 7000, &exp), 0u);
    CHECK_EQ(hist_count_after(&h, 9, 7000, &exp), 0u);
    /* a tombstone in place of 4 */
    msg_t *t = M(4, 1000, 0);
    t->flags = MSG_WITHDRAWN;
    hist_replace(&h, 3, t);
    msg_unref(t);
    CHECK_EQ(h.nskip, 3u);
    CHECK_EQ(hist_count_after(&h, 0, 2000, &exp), 5u);
    /* without skippable messages left the count is arithmetic */
    while (h.count > 1) hist_drop_oldest(&h);
    CHECK_EQ(h.nskip, 0u);
    CHECK_EQ(hist_count_after(&h, 0, 2000, &exp), 1u);
    CHECK_EQ(hist_count_after(&h, 5, 2000, &exp), 1u);
    hist_free(&h);
}

int main(void)
{
    RUN(pool_counts_bytes_and_finds_the_oldest);
    RUN(pool_random_against_model);
    RUN(unordered_pool_only_counts);
    RUN(count_after_skips_withdrawn_and_expired);
    return UNIT_DONE();
}
