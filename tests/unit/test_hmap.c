/* test_hmap.c - the seeded hash map (core/hmap.h): lookups, growth, removal during a walk,
 * shrinking, and keys that differ only in length. */
#include "../../src/core/err.h"
#include "../../src/core/hmap.h"
#include "../../src/core/list.h"
#include "unit.h"

typedef struct {
    hmap_node_t node;
    uint32_t len;
    int value;
    char key[24];
} ent_t;

static bool ent_eq(const hmap_node_t *n, const void *key, size_t len)
{
    const ent_t *e = container_of(n, ent_t, node);
    return e->len == len && memcmp(e->key, key, len) == 0;
}

static ent_t *ent_of(hmap_node_t *n) { return n ? container_of(n, ent_t, node) : NULL; }

static ent_t *find(const hmap_t *m, const char *k) { return ent_of(hmap_get(m, k, strlen(k))); }

static ent_t *ent_new(hmap_t *m, int i)
{
    ent_t *e = calloc(1, sizeof(*e));
    e->len = (uint32_t)snprintf(e->key, sizeof(e->key), "key/%d", i);
    e->value = i;
    hmap_insert(m, &e->node, hmap_hash(m, e->key, e->len));
    return e;
}

/* The longest chain: with a load factor at most 1 and a keyed hash it stays short. */
static uint32_t longest_chain(const hmap_t *m)
{
    uint32_t worst = 0;
    for (uint32_t i = 0; i < hmap_buckets(m); i++) {
        uint32_t n = 0;
        for (hmap_node_t *e = m->b[i]; e; e = e->next) n++;
        if (n > worst) worst = n;
    }
    return worst;
}

TEST(many_keys_grow_and_are_found)
{
    hmap_t m;
    CHECK_EQ(hmap_init(&m, 4, ent_eq), 0);
    CHECK_EQ(hmap_buckets(&m), 8);
    enum { N = 100000 };
    for (int i = 0; i < N; i++) ent_new(&m, i);
    CHECK_EQ(m.n, N);
    CHECK(hmap_buckets(&m) >= N);          /* load factor at most 1 */
    CHECK(hmap_buckets(&m) <= 2 * 131072); /* and it doubled, no more */
    CHECK(longest_chain(&m) <= 12);
    int missing = 0;
    for (int i = 0; i < N; i++) {
        char k[24];
        snprintf(k, sizeof(k), "key/%d", i);
        ent_t *e = find(&m, k);
        if (!e || e->value != i) missing++;
    }
    CHECK_EQ(missing, 0);
    CHECK(find(&m, "key/") == NULL);
    CHECK(find(&m, "key/100000") == NULL);
    hmap_iter_t it;
    hmap_iter_init(&it, &m);
    int seen = 0;
    for (ent_t *e; (e = ent_of(hmap_iter_next(&it)));) {
        seen++;
        free(e);
    }
    CHECK_EQ(seen, N);
    hmap_free(&m);
}

TEST(remove_during_iteration_then_shrink)
{
    hmap_t m;
    CHECK_EQ(hmap_init(&m, 16, ent_eq), 0);
    enum { N = 5000 };
    for (int i = 0; i < N; i++) ent_new(&m, i);
    uint32_t grown = hmap_buckets(&m);
    /* remove every odd entry while walking: each node is visited exactly once */
    hmap_iter_t it;
    hmap_iter_init(&it, &m);
    int visited = 0, removed = 0;
    for (ent_t *e; (e = ent_of(hmap_iter_next(&it)));) {
        visited++;
        if (e->value % 2) {
            hmap_remove(&m, &e->node);
            free(e);
            removed++;
        }
    }
    CHECK_EQ(visited, N);
    CHECK_EQ(removed, N / 2);
    CHECK_EQ(m.n, N - N / 2);
    CHECK_EQ(hmap_buckets(&m), grown); /* removing never reallocates */
    CHECK(find(&m, "key/1") == NULL);
    CHECK(find(&m, "key/2") != NULL);
    /* remove all but 10, then shrink: the map gives memory back while under a quarter full */
    hmap_iter_init(&it, &m);
    for (ent_t *e; (e = ent_of(hmap_iter_next(&it)));)
        if (e->value >= 20) {
            hmap_remove(&m, &e->node);
            free(e);
        }
    CHECK_EQ(m.n, 10);
    hmap_shrink(&m);
    CHECK_EQ(hmap_buckets(&m), 32); /* 10 nodes: 32 buckets is not under a quarter full, 64 was */
    for (int i = 0; i < 20; i += 2) {
        char k[24];
        snprintf(k, sizeof(k), "key/%d", i);
        CHECK(find(&m, k) != NULL);
    }
    hmap_iter_init(&it, &m);
    for (ent_t *e; (e = ent_of(hmap_iter_next(&it)));) {
        hmap_remove(&m, &e->node);
        free(e);
    }
    CHECK_EQ(m.n, 0);
    hmap_shrink(&m);
    CHECK_EQ(hmap_buckets(&m), 16); /* never below the size asked at init */
    hmap_iter_init(&it, &m);
    CHECK(hmap_iter_next(&it) == NULL);
    hmap_free(&m);
    hmap_iter_init(&it, &m); /* a freed map walks as empty */
    CHECK(hmap_iter_next(&it) == NULL);
}

TEST(keys_are_byte_strings)
{
    hmap_t m;
    CHECK_EQ(hmap_init(&m, 0, ent_eq), 0);
    ent_t a = {.len = 0}, b = {.len = 1, .key = "a"}, c = {.len = 2, .key = "a\0"};
    hmap_insert(&m, &a.node, hmap_hash(&m, "", 0));
    hmap_insert(&m, &b.node, hmap_hash(&m, "a", 1));
    hmap_insert(&m, &c.node, hmap_hash(&m, "a\0", 2));
    CHECK(ent_of(hmap_get(&m, "", 0)) == &a);
    CHECK(ent_of(hmap_get(&m, "a", 1)) == &b);
    CHECK(ent_of(hmap_get(&m, "a\0", 2)) == &c);
    CHECK(hmap_get(&m, "a\0\0", 3) == NULL);
    hmap_remove(&m, &b.node);
    CHECK(hmap_get(&m, "a", 1) == NULL);
    CHECK(ent_of(hmap_get(&m, "a\0", 2)) == &c);
    hmap_free(&m);
}

TEST(each_map_has_its_own_key)
{
    hmap_t m1, m2;
    CHECK_EQ(hmap_init(&m1, 8, ent_eq), 0);
    CHECK_EQ(hmap_init(&m2, 8, ent_eq), 0);
    /* the same names hash differently in two maps (2^-64 chance of a false failure per key) */
    int same = 0;
    for (int i = 0; i < 16; i++) {
        char k[16];
        int n = snprintf(k, sizeof(k), "c%d", i);
        same += hmap_hash(&m1, k, (size_t)n) == hmap_hash(&m2, k, (size_t)n);
    }
    CHECK_EQ(same, 0);
    hmap_free(&m1);
    hmap_free(&m2);
}

int main(void)
{
    RUN(many_keys_grow_and_are_found);
    RUN(remove_during_iteration_then_shrink);
    RUN(keys_are_byte_strings);
    RUN(each_map_has_its_own_key);
    return UNIT_DONE();
}
