/* idem.c - the idempotency records of the publish routes (see idem.h). */
#include "idem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"

#define IDEM_SWEEP_MAX_MS 60000
#define IDEM_SWEEP_MIN_MS 100

static idem_entry_t *idem__of(hmap_node_t *n) { return n ? container_of(n, idem_entry_t, node) : NULL; }

static bool idem__eq(const hmap_node_t *n, const void *key, size_t len)
{
    const idem_entry_t *e = container_of(n, idem_entry_t, node);
    return e->klen == len && memcmp(e->key, key, len) == 0;
}

static bool idem__durable(const idem_t *t) { return t->store != NULL; }

static void idem__free(idem_t *t, idem_entry_t *e, bool unstore)
{
    if (unstore && e->stored && idem__durable(t)) t->store->ops->kv_del(t->store, IDEM_NS, e->key, e->klen);
    hmap_remove(&t->map, &e->node);
    list_unlink(&e->age);
    t->n--;
    free(e->body);
    free(e);
}

static uint64_t idem__sweep_ms(const idem_t *t)
{
    uint64_t ms = t->window_ms / 4;
    return ms < IDEM_SWEEP_MIN_MS ? IDEM_SWEEP_MIN_MS : ms > IDEM_SWEEP_MAX_MS ? IDEM_SWEEP_MAX_MS : ms;
}

static void idem__sweep_timer(tw_entry_t *e)
{
    idem_t *t = container_of(e, idem_t, sweep);
    if (idem_sweep(t, loop_wall_ms())) t->loop->wake = true; /* the deletes go out with the next commit */
    hmap_shrink(&t->map);
    loop_timer(t->loop, &t->sweep, idem__sweep_ms(t));
}

void idem_rec_encode(uint8_t *out, const idem_rec_t *r)
{
    out[0] = 'H';
    out[1] = 1;
    for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(r->made_ms >> (56 - 8 * i));
    out[10] = (uint8_t)(r->status >> 8);
    out[11] = (uint8_t)r->status;
    out[12] = r->final ? 1 : 0;
    memcpy(out + IDEM_REC_HEAD, r->body, r->body_len);
}

int idem_rec_decode(const void *v, size_t n, idem_rec_t *r)
{
    const uint8_t *p = v;
    if (n < IDEM_REC_HEAD || p[0] != 'H' || p[1] != 1 || p[12] > 1) return HR_EINVAL;
    r->made_ms = 0;
    for (int i = 0; i < 8; i++) r->made_ms = r->made_ms << 8 | p[2 + i];
    r->status = (uint16_t)(p[10] << 8 | p[11]);
    if (r->status < 100 || r->status > 599) return HR_EINVAL;
    r->final = p[12] == 1;
    r->body = (const char *)p + IDEM_REC_HEAD;
    r->body_len = n - IDEM_REC_HEAD;
    return 0;
}

/* ---- start-up: the stored records, oldest first ---- */

typedef struct {
    idem_entry_t **v;
    size_t n, cap;
    int rc;
} idem__load_t;

static idem_entry_t *idem__new(const char *key, size_t n)
{
    idem_entry_t *e = calloc(1, sizeof(*e) + n);
    if (!e) return NULL;
    memcpy(e->key, key, n);
    e->klen = (uint16_t)n;
    list_init(&e->age);
    return e;
}

static int idem__load_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    idem__load_t *l = arg;
    idem_rec_t r;
    idem_entry_t *e = NULL;
    bool ok = klen && klen <= UINT16_MAX && idem_rec_decode(val, vlen, &r) == 0 && r.body_len <= UINT32_MAX;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        idem_entry_t **v = realloc(l->v, cap * sizeof(*v));
        if (!v) return l->rc = HR_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    if (!(e = idem__new(key, klen))) return l->rc = HR_ENOMEM;
    if (ok && !(e->body = malloc(r.body_len ? r.body_len : 1))) {
        free(e);
        return l->rc = HR_ENOMEM;
    }
    e->stored = true;
    e->state = IDEM_DONE;
    if (ok) {
        memcpy(e->body, r.body, r.body_len);
        e->body_len = (uint32_t)r.body_len;
        e->status = r.status;
        e->made_ms = r.made_ms;
    } else {
        e->made_ms = 0; /* unreadable: forgotten (in the store too) as if it were too old */
    }
    l->v[l->n++] = e;
    return 0;
}

static int idem__by_age(const void *a, const void *b)
{
    const idem_entry_t *x = *(idem_entry_t *const *)a, *y = *(idem_entry_t *const *)b;
    return x->made_ms < y->made_ms ? -1 : x->made_ms > y->made_ms;
}

static int idem__load(idem_t *t)
{
    idem__load_t l = {0};
    int rc = t->store->ops->kv_each(t->store, IDEM_NS, idem__load_one, &l);
    if (rc == 0) rc = l.rc;
    if (rc < 0) {
        for (size_t i = 0; i < l.n; i++) free(l.v[i]->body), free(l.v[i]);
        free(l.v);
        return rc;
    }
    if (l.n) qsort(l.v, l.n, sizeof(*l.v), idem__by_age);
    uint64_t now = loop_wall_ms();
    size_t keep_from = l.n > t->max_keys ? l.n - t->max_keys : 0; /* the newest max_keys */
    uint32_t dropped = 0;
    for (size_t i = 0; i < l.n; i++) {
        idem_entry_t *e = l.v[i];
        uint64_t h = hmap_hash(&t->map, e->key, e->klen);
        if (i < keep_from || e->made_ms + t->window_ms <= now || hmap_find(&t->map, h, e->key, e->klen)) {
            t->store->ops->kv_del(t->store, IDEM_NS, e->key, e->klen);
            free(e->body);
            free(e);
            dropped++;
            continue;
        }
        hmap_insert(&t->map, &e->node, h);
        list_push_back(&t->order, &e->age);
        t->n++;
    }
    free(l.v);
    t->loaded = t->n;
    if (l.n) log_info("idempotency: %u keys loaded from the store (%u expired ones dropped)", t->n, dropped);
    return 0;
}

int idem_init(idem_t *t, loop_t *loop, store_t *store, uint64_t window_ms, uint32_t max_keys)
{
    memset(t, 0, sizeof(*t));
    list_init(&t->order);
    t->window_ms = window_ms;
    t->max_keys = max_keys ? max_keys : 1;
    bool kv = store && store->ops->kv_put && store->ops->kv_del && store->ops->kv_each;
    t->store = kv ? store : NULL;
    if (hmap_init(&t->map, 64, idem__eq) < 0) return HR_ENOMEM;
    if (t->store) {
        int rc = window_ms ? idem__load(t) : 0;
        if (rc < 0) {
            hmap_free(&t->map);
            return rc;
        }
    }
    if (loop && window_ms) {
        t->loop = loop;
        tw_entry_init(&t->sweep, idem__sweep_timer);
        loop_timer(loop, &t->sweep, idem__sweep_ms(t));
    }
    return 0;
}

void idem_close(idem_t *t)
{
    if (t->loop) tw_stop(&t->loop->wheel, &t->sweep);
    list_node_t *pos, *tmp;
    list_each_safe(pos, tmp, &t->order) idem__free(t, container_of(pos, idem_entry_t, age), false);
    hmap_free(&t->map);
}

size_t idem_key(char *out, size_t cap, const char *scope, size_t sn, const char *key, size_t kn)
{
    if (sn + 1 + kn > cap) return 0;
    memcpy(out, scope, sn);
    out[sn] = ' ';
    memcpy(out + sn + 1, key, kn);
    return sn + 1 + kn;
}

idem_entry_t *idem_find(idem_t *t, const char *key, size_t n, uint64_t now_ms)
{
    idem_entry_t *e = idem__of(hmap_get(&t->map, key, n));
    if (e && e->state == IDEM_DONE && e->made_ms + t->window_ms <= now_ms) {
        t->expired++;
        idem__free(t, e, true);
        return NULL;
    }
    return e;
}

idem_entry_t *idem_begin(idem_t *t, const char *key, size_t n, uint64_t now_ms)
{
    if (n > UINT16_MAX) return NULL;
    /* the oldest done records go first; pending ones (young, few) are skipped */
    list_node_t *pos, *tmp;
    list_each_safe(pos, tmp, &t->order) {
        if (t->n < t->max_keys) break;
        idem_entry_t *o = container_of(pos, idem_entry_t, age);
        if (o->state == IDEM_PENDING) continue;
        if (!t->evicted++)
            log_warn("limits: idempotency_max_keys (%u) reached: the oldest keys are forgotten before their window "
                     "ends (counted in herald_limit_hits_total, not logged again)", t->max_keys);
        idem__free(t, o, true);
    }
    idem_entry_t *e = idem__new(key, n);
    if (!e) return NULL;
    e->made_ms = now_ms;
    e->state = IDEM_PENDING;
    hmap_insert(&t->map, &e->node, hmap_hash(&t->map, key, n));
    list_push_back(&t->order, &e->age);
    t->n++;
    return e;
}

int idem_write(idem_t *t, idem_entry_t *e, uint16_t status, const char *body, size_t n, bool final)
{
    if (!idem__durable(t)) return 0;
    uint8_t *v = malloc(IDEM_REC_HEAD + n);
    if (!v) return HR_ENOMEM;
    idem_rec_t r = {e->made_ms, status, final, body, n};
    idem_rec_encode(v, &r);
    int rc = t->store->ops->kv_put(t->store, IDEM_NS, e->key, e->klen, v, IDEM_REC_HEAD + n);
    free(v);
    if (rc == 0) e->stored = true;
    return rc;
}

int idem_finish(idem_t *t, idem_entry_t *e, uint16_t status, const char *body, size_t n)
{
    char *b = malloc(n ? n : 1);
    if (!b) {
        idem_forget(t, e);
        return HR_ENOMEM;
    }
    memcpy(b, body, n);
    free(e->body);
    e->body = b;
    e->body_len = (uint32_t)n;
    e->status = status;
    e->state = IDEM_DONE;
    if (idem__durable(t)) {
        idem_write(t, e, status, body, n, true); /* failing, the record written with the publishes stays */
        if (t->loop) t->loop->wake = true;
    }
    return 0;
}

void idem_forget(idem_t *t, idem_entry_t *e) { idem__free(t, e, true); }

uint32_t idem_sweep(idem_t *t, uint64_t now_ms)
{
    uint32_t k = 0;
    list_node_t *pos, *tmp;
    list_each_safe(pos, tmp, &t->order) {
        idem_entry_t *e = container_of(pos, idem_entry_t, age);
        if (e->made_ms + t->window_ms > now_ms) break; /* in age order: the rest are younger */
        if (e->state == IDEM_PENDING) continue;
        idem__free(t, e, true);
        t->expired++;
        k++;
    }
    return k;
}
