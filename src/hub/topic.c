/* topic.c - the MQTT subscription trie; see topic.h for the contract.
 *
 * Shape. Every node is one filter level. A node keeps its children in three places: "+" and "#"
 * have a pointer each (a match follows them unconditionally, so they must not cost a lookup), and
 * exact levels live in a per-node chained hash table whose chain links are inside the child nodes
 * (hnext), so the table itself is one array of pointers. A node also holds the ordinary entries
 * whose filter ends there (subs) and the shared groups whose filter ends there (groups). "#" is
 * always a leaf.
 *
 * Why a hash table and not a sorted array of children: "devices/{id}/cmd" for 100k device ids
 * gives one node 100k children. A sorted array would find a child in log2(100k) = 17 string
 * compares, but every subscribe and unsubscribe would memmove half the array (100k subscribes:
 * about 5e9 pointer moves). The table finds a child in about one compare and inserts in O(1)
 * amortized (it doubles when it holds as many children as buckets, and halves when it is a
 * quarter full, so pruning gives memory back). Nodes with few children, the common case, pay
 * one small array. The level hash is keyed by a per-tree random seed, so which device ids share
 * a bucket is not known in advance; it is a fast mixing hash, not a cryptographic PRF.
 *
 * Matching walks the topic level by level from the root: at a node with a level left it reports
 * the "#" child, then descends into the exact child and the "+" child; at a node where the topic
 * ends it reports the node's own entries and its "#" child ("a/#" matches "a"). At the root, a
 * topic starting with '$' skips both wildcards. The recursion depth is bounded by the trie depth
 * (TOPIC_MAX_LEVELS + 1), because only existing children are visited.
 *
 * Shared groups: the members form a list; a message goes to the head, which then moves to the
 * tail. That is O(1), gives each member one message in turn, and a newcomer joins at the back.
 *
 * Safety during a match. Callbacks may unsubscribe anything, subscribe, and match again. Three
 * rules make that safe:
 *   1. No node or group is freed while any match is running (t->matching > 0). Unsubscribing
 *      only unlinks the entry and queues its node on t->pending; when the outermost match
 *      returns, pending nodes lose their empty groups and are pruned upward.
 *   2. Walking a node's entry list, a marker (a stack topic_entry_t whose node is NULL) is linked
 *      right after the entry being reported, and the walk resumes from the marker. Whatever the
 *      callback unlinks, the marker stays in the list. Entries with node == NULL in a list are
 *      other (nested) walks' markers and are skipped.
 *   3. The walk holds only node pointers across callbacks, never a pointer into a child table,
 *      which a subscribe may reallocate; child lookups happen after the callbacks of a node.
 * Groups are never unlinked during a match (rule 1), so walking a node's group list needs no
 * marker; a member list is never walked, only its head taken. */
#include "topic.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../core/err.h"

#define TOPIC_MIN_BUCKETS 2u
#define SHARE_PREFIX "$share/"
#define SHARE_PREFIX_LEN 7

enum node_kind { NODE_ROOT, NODE_EXACT, NODE_PLUS, NODE_HASH };

struct topic_node {
    topic_node_t *parent;
    topic_node_t *hnext;  /* next in the parent's bucket chain (NODE_EXACT only) */
    topic_node_t **kids;  /* exact-level children: mask + 1 buckets, NULL when there are none */
    topic_node_t *plus;   /* the "+" child */
    topic_node_t *hash;   /* the "#" child, a leaf */
    list_t subs;          /* ordinary entries whose filter ends here */
    list_t groups;        /* topic_group_t whose filter ends here */
    list_node_t pending;  /* in t->pending while queued for pruning */
    uint32_t hv;          /* hash of level */
    uint32_t nkids;       /* children in kids */
    uint32_t mask;        /* buckets - 1 (0 when kids is NULL) */
    uint32_t len;         /* of level */
    uint8_t kind;         /* enum node_kind */
    char level[];
};

struct topic_group {
    list_node_t link;  /* in node->groups */
    list_t members;    /* topic_entry_t.link; the head is the next to receive */
    uint32_t nmembers;
    uint32_t len;
    char name[];
};

/* ---- hashing ---- */

static uint64_t topic__mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint32_t topic__hash(uint64_t seed, const char *s, size_t n)
{
    uint64_t h = seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15ULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = topic__mix(h ^ w);
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    if (n) memcpy(&w, s, n);
    h = topic__mix(h ^ w ^ seed);
    return (uint32_t)(h >> 32);
}

/* ---- validity ---- */

/* The part after any "$share/{group}/": levels, wildcards, NUL, depth. */
static bool topic__filter_body_valid(const char *f, size_t n)
{
    if (n == 0) return false;
    size_t levels = 1;
    for (size_t i = 0; i < n; i++) {
        char c = f[i];
        bool starts = i == 0 || f[i - 1] == '/';
        if (c == '\0') return false;
        if (c == '/') {
            if (++levels > TOPIC_MAX_LEVELS) return false;
        } else if (c == '+') {
            if (!starts || (i + 1 < n && f[i + 1] != '/')) return false;
        } else if (c == '#') {
            if (!starts || i + 1 != n) return false;
        }
    }
    return true;
}

static bool topic__is_shared(const char *f, size_t n)
{
    return n >= SHARE_PREFIX_LEN && memcmp(f, SHARE_PREFIX, SHARE_PREFIX_LEN) == 0;
}

bool topic_filter_valid(const char *f, size_t n)
{
    if (n == 0 || n > TOPIC_MAX_LEN) return false;
    if (topic__is_shared(f, n)) {
        const char *g = f + SHARE_PREFIX_LEN, *end = f + n;
        const char *slash = memchr(g, '/', (size_t)(end - g));
        if (!slash || slash == g) return false;
        for (const char *p = g; p < slash; p++)
            if (*p == '+' || *p == '#' || *p == '\0') return false;
        return topic__filter_body_valid(slash + 1, (size_t)(end - slash - 1));
    }
    return topic__filter_body_valid(f, n);
}

bool topic_name_valid(const char *s, size_t n)
{
    if (n == 0 || n > TOPIC_MAX_LEN) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || s[i] == '+' || s[i] == '#') return false;
    return true;
}

/* ---- nodes ---- */

void topic_tree_init(topic_tree_t *t)
{
    memset(t, 0, sizeof(*t));
    list_init(&t->pending);
    if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != (ssize_t)sizeof(t->seed))
        t->seed = topic__mix((uint64_t)(uintptr_t)t ^ 0x5bd1e9955bd1e995ULL);
}

void topic_entry_init(topic_entry_t *e) { memset(e, 0, sizeof(*e)); }

static topic_node_t *topic__node_new(topic_tree_t *t, topic_node_t *parent, enum node_kind kind, const char *lvl,
                                     size_t len)
{
    topic_node_t *n = malloc(sizeof(*n) + len);
    if (!n) return NULL;
    memset(n, 0, sizeof(*n));
    n->parent = parent;
    n->kind = (uint8_t)kind;
    n->len = (uint32_t)len;
    if (len) memcpy(n->level, lvl, len);
    n->hv = kind == NODE_EXACT ? topic__hash(t->seed, lvl, len) : 0;
    list_init(&n->subs);
    list_init(&n->groups);
    list_init(&n->pending);
    t->nnodes++;
    return n;
}

/* Rehashes n's exact children into nb buckets (a power of two). False when out of memory; the
 * old table is then kept, which stays correct (only chains get longer). */
static bool topic__rehash(topic_node_t *n, uint32_t nb)
{
    topic_node_t **nk = calloc(nb, sizeof(*nk));
    if (!nk) return false;
    for (uint32_t i = 0; n->kids && i <= n->mask; i++) {
        topic_node_t *c = n->kids[i];
        while (c) {
            topic_node_t *next = c->hnext;
            c->hnext = nk[c->hv & (nb - 1)];
            nk[c->hv & (nb - 1)] = c;
            c = next;
        }
    }
    free(n->kids);
    n->kids = nk;
    n->mask = nb - 1;
    return true;
}

static topic_node_t *topic__find(const topic_node_t *n, uint32_t hv, const char *lvl, size_t len)
{
    if (!n->kids) return NULL;
    for (topic_node_t *c = n->kids[hv & n->mask]; c; c = c->hnext)
        if (c->hv == hv && c->len == len && memcmp(c->level, lvl, len) == 0) return c;
    return NULL;
}

/* Returns the child of n for level lvl[0..len), creating it; NULL when out of memory. */
static topic_node_t *topic__child(topic_tree_t *t, topic_node_t *n, const char *lvl, size_t len)
{
    topic_node_t **slot = NULL;
    enum node_kind kind = NODE_EXACT;
    if (len == 1 && lvl[0] == '+') slot = &n->plus, kind = NODE_PLUS;
    if (len == 1 && lvl[0] == '#') slot = &n->hash, kind = NODE_HASH;
    if (slot) {
        if (!*slot) *slot = topic__node_new(t, n, kind, lvl, len);
        return *slot;
    }
    topic_node_t *c = topic__find(n, topic__hash(t->seed, lvl, len), lvl, len);
    if (c) return c;
    if (!n->kids && !topic__rehash(n, TOPIC_MIN_BUCKETS)) return NULL;
    c = topic__node_new(t, n, NODE_EXACT, lvl, len);
    if (!c) return NULL;
    if (n->nkids + 1 > n->mask + 1) topic__rehash(n, (n->mask + 1) * 2); /* failure is harmless */
    c->hnext = n->kids[c->hv & n->mask];
    n->kids[c->hv & n->mask] = c;
    n->nkids++;
    return c;
}

static void topic__unlink_child(topic_node_t *p, topic_node_t *c)
{
    if (c->kind == NODE_PLUS) {
        p->plus = NULL;
        return;
    }
    if (c->kind == NODE_HASH) {
        p->hash = NULL;
        return;
    }
    topic_node_t **pp = &p->kids[c->hv & p->mask];
    while (*pp != c) pp = &(*pp)->hnext;
    *pp = c->hnext;
    p->nkids--;
    if (p->nkids == 0) {
        free(p->kids);
        p->kids = NULL;
        p->mask = 0;
    } else if (p->mask + 1 > TOPIC_MIN_BUCKETS && p->nkids < (p->mask + 1) / 4) {
        topic__rehash(p, (p->mask + 1) / 2); /* failure is harmless */
    }
}

static void topic__group_free(topic_tree_t *t, topic_group_t *g)
{
    list_unlink(&g->link);
    free(g);
    t->ngroups--;
}

static bool topic__node_empty(const topic_node_t *n)
{
    return list_empty(&n->subs) && list_empty(&n->groups) && n->nkids == 0 && !n->plus && !n->hash;
}

/* Frees n and then each ancestor that is left empty, the root included. */
static void topic__prune(topic_tree_t *t, topic_node_t *n)
{
    while (n && topic__node_empty(n)) {
        topic_node_t *p = n->parent;
        if (p)
            topic__unlink_child(p, n);
        else
            t->root = NULL;
        list_unlink(&n->pending);
        free(n->kids); /* allocated but empty when making a child failed */
        free(n);
        t->nnodes--;
        n = p;
    }
}

/* n may have become empty: prune it now, or after the outermost match (rule 1). */
static void topic__release(topic_tree_t *t, topic_node_t *n)
{
    if (t->matching) {
        if (!list_linked(&n->pending)) list_push_back(&t->pending, &n->pending);
        return;
    }
    topic__prune(t, n);
}

static void topic__run_pending(topic_tree_t *t)
{
    while (!list_empty(&t->pending)) {
        topic_node_t *n = container_of(t->pending.next, topic_node_t, pending);
        list_unlink(&n->pending);
        list_node_t *pos, *tmp;
        list_each_safe(pos, tmp, &n->groups)
        {
            topic_group_t *g = container_of(pos, topic_group_t, link);
            if (g->nmembers == 0) topic__group_free(t, g);
        }
        topic__prune(t, n);
    }
}

static topic_group_t *topic__group(topic_tree_t *t, topic_node_t *n, const char *name, size_t len)
{
    for (list_node_t *pos = n->groups.next; pos != &n->groups; pos = pos->next) {
        topic_group_t *g = container_of(pos, topic_group_t, link);
        if (g->len == len && memcmp(g->name, name, len) == 0) return g;
    }
    topic_group_t *g = malloc(sizeof(*g) + len);
    if (!g) return NULL;
    list_init(&g->members);
    g->nmembers = 0;
    g->len = (uint32_t)len;
    memcpy(g->name, name, len);
    list_push_back(&n->groups, &g->link);
    t->ngroups++;
    return g;
}

/* ---- subscribe / unsubscribe ---- */

int topic_subscribe(topic_tree_t *t, topic_entry_t *e, const char *f, size_t n)
{
    if (e->node || !topic_filter_valid(f, n)) return HR_EINVAL;
    const char *group = NULL, *end = f + n;
    size_t glen = 0;
    if (topic__is_shared(f, n)) {
        group = f + SHARE_PREFIX_LEN;
        glen = (size_t)((const char *)memchr(group, '/', (size_t)(end - group)) - group);
        f = group + glen + 1;
    }
    if (!t->root && !(t->root = topic__node_new(t, NULL, NODE_ROOT, "", 0))) return HR_ENOMEM;
    topic_node_t *node = t->root;
    for (const char *p = f;;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *lend = slash ? slash : end;
        topic_node_t *c = topic__child(t, node, p, (size_t)(lend - p));
        if (!c) goto fail;
        node = c;
        if (!slash) break;
        p = slash + 1;
    }
    if (group) {
        topic_group_t *g = topic__group(t, node, group, glen);
        if (!g) goto fail;
        list_push_back(&g->members, &e->link);
        g->nmembers++;
        e->group = g;
    } else {
        list_push_back(&node->subs, &e->link);
        e->group = NULL;
    }
    e->node = node;
    t->nsubs++;
    return 0;
fail:
    topic__release(t, node); /* drops the part of the path made for this filter, if unused */
    return HR_ENOMEM;
}

void topic_unsubscribe(topic_tree_t *t, topic_entry_t *e)
{
    topic_node_t *n = e->node;
    if (!n) return;
    list_unlink(&e->link);
    topic_group_t *g = e->group;
    e->node = NULL;
    e->group = NULL;
    t->nsubs--;
    if (g && --g->nmembers == 0 && !t->matching) topic__group_free(t, g);
    topic__release(t, n);
}

/* ---- match ---- */

typedef struct {
    topic_tree_t *t;
    const char *end; /* of the topic */
    bool dollar;     /* the topic starts with '$': no wildcard at the root */
    topic_match_cb cb;
    void *arg;
    size_t calls;
} topic_walk_t;

/* Reports n's ordinary entries and one member of each of its groups (rule 2). */
static void topic__report(topic_walk_t *w, topic_node_t *n)
{
    topic_entry_t mark = {0}; /* node == NULL: a marker */
    list_node_t *pos = n->subs.next;
    while (pos != &n->subs) {
        topic_entry_t *e = container_of(pos, topic_entry_t, link);
        if (!e->node) { /* another walk's marker */
            pos = pos->next;
            continue;
        }
        mark.link.prev = pos;
        mark.link.next = pos->next;
        pos->next->prev = &mark.link;
        pos->next = &mark.link;
        w->calls++;
        w->cb(e, w->arg);
        pos = mark.link.next;
        list_unlink(&mark.link);
    }
    for (pos = n->groups.next; pos != &n->groups; pos = pos->next) {
        topic_group_t *g = container_of(pos, topic_group_t, link);
        if (list_empty(&g->members)) continue;
        list_node_t *head = g->members.next;
        list_unlink(head);
        list_push_back(&g->members, head); /* round-robin: to the back of the line */
        w->calls++;
        w->cb(container_of(head, topic_entry_t, link), w->arg);
    }
}

/* n has matched the topic's levels before lvl. more: a level starts at lvl; otherwise the whole
 * topic has been matched by n. */
static void topic__walk(topic_walk_t *w, topic_node_t *n, const char *lvl, bool more)
{
    if (!more) {
        topic__report(w, n);
        if (n->hash) topic__report(w, n->hash); /* "a/#" matches "a" */
        return;
    }
    bool wild = !(w->dollar && n->kind == NODE_ROOT);
    if (wild && n->hash) topic__report(w, n->hash);
    const char *slash = memchr(lvl, '/', (size_t)(w->end - lvl));
    const char *lend = slash ? slash : w->end;
    const char *next = slash ? slash + 1 : w->end;
    size_t len = (size_t)(lend - lvl);
    topic_node_t *c = topic__find(n, topic__hash(w->t->seed, lvl, len), lvl, len);
    if (c) topic__walk(w, c, next, slash != NULL);
    if (wild && n->plus) topic__walk(w, n->plus, next, slash != NULL);
}

size_t topic_match(topic_tree_t *t, const char *topic, size_t n, topic_match_cb cb, void *arg)
{
    if (!t->root) return 0;
    topic_walk_t w = {t, topic + n, n > 0 && topic[0] == '$', cb, arg, 0};
    t->matching++;
    topic__walk(&w, t->root, topic, true);
    if (--t->matching == 0) topic__run_pending(t);
    return w.calls;
}

/* ---- teardown ---- */

static void topic__detach_all(list_t *l)
{
    list_node_t *pos, *tmp;
    list_each_safe(pos, tmp, l)
    {
        topic_entry_t *e = container_of(pos, topic_entry_t, link);
        list_unlink(pos);
        e->node = NULL;
        e->group = NULL;
    }
}

static void topic__free_node(topic_node_t *n)
{
    topic__detach_all(&n->subs);
    list_node_t *pos, *tmp;
    list_each_safe(pos, tmp, &n->groups)
    {
        topic_group_t *g = container_of(pos, topic_group_t, link);
        topic__detach_all(&g->members);
        free(g);
    }
    for (uint32_t i = 0; n->kids && i <= n->mask; i++) {
        topic_node_t *c = n->kids[i];
        while (c) {
            topic_node_t *next = c->hnext;
            topic__free_node(c);
            c = next;
        }
    }
    if (n->plus) topic__free_node(n->plus);
    if (n->hash) topic__free_node(n->hash);
    free(n->kids);
    free(n);
}

void topic_tree_free(topic_tree_t *t)
{
    if (t->root) topic__free_node(t->root);
    t->root = NULL;
    t->nsubs = t->nnodes = t->ngroups = 0;
    list_init(&t->pending);
}
