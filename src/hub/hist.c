/* hist.c - see hist.h. The pool's heap is a binary min-heap of (time of the oldest message,
 * history) pairs; each history knows its place (heap_i) so that a change of its oldest message
 * sifts it in O(log n). A history that cannot get a place (out of memory) still counts its bytes
 * but is not found by hist_pool_oldest (only its own limits trim it). */
#include "hist.h"

#include <stdlib.h>

#include "../core/err.h"

void hist_init(hist_t *h) { *h = (hist_t){0}; }

void hist_join(hist_t *h, hist_pool_t *pool) { h->pool = pool; }

/* ---- the pool's heap ---- */

static void hist__heap_set(hist_pool_t *p, uint32_t i, struct hist_heap_ent e)
{
    p->heap[i] = e;
    e.h->heap_i = i + 1;
}

static void hist__sift_up(hist_pool_t *p, uint32_t i)
{
    struct hist_heap_ent e = p->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (p->heap[parent].t <= e.t) break;
        hist__heap_set(p, i, p->heap[parent]);
        i = parent;
    }
    hist__heap_set(p, i, e);
}

static void hist__sift_down(hist_pool_t *p, uint32_t i)
{
    struct hist_heap_ent e = p->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= p->n) break;
        if (c + 1 < p->n && p->heap[c + 1].t < p->heap[c].t) c++;
        if (e.t <= p->heap[c].t) break;
        hist__heap_set(p, i, p->heap[c]);
        i = c;
    }
    hist__heap_set(p, i, e);
}

static void hist__heap_remove(hist_pool_t *p, hist_t *h)
{
    uint32_t i = h->heap_i - 1;
    h->heap_i = 0;
    if (i != --p->n) {
        hist__heap_set(p, i, p->heap[p->n]);
        hist__sift_down(p, i);
        hist__sift_up(p, i);
    }
}

/* h's oldest message changed (or h became empty, or got its first message): its place in the
 * heap follows. */
static void hist__heap_fix(hist_t *h)
{
    hist_pool_t *p = h->pool;
    if (!p || !p->ordered || h->pinned) return;
    if (!h->count) {
        if (h->heap_i) hist__heap_remove(p, h);
        return;
    }
    uint64_t t = hist_at(h, 0)->time_ms;
    if (h->heap_i) {
        uint32_t i = h->heap_i - 1;
        uint64_t old = p->heap[i].t;
        p->heap[i].t = t;
        if (t > old) hist__sift_down(p, i);
        else if (t < old) hist__sift_up(p, i);
        return;
    }
    if (p->n == p->cap) {
        uint32_t cap = p->cap ? p->cap * 2 : 64;
        struct hist_heap_ent *nh = realloc(p->heap, cap * sizeof(*nh));
        if (!nh) return; /* not ordered: see the file comment */
        p->heap = nh;
        p->cap = cap;
    }
    p->heap[p->n] = (struct hist_heap_ent){t, h};
    hist__sift_up(p, p->n++);
}

void hist_pool_free(hist_pool_t *pool)
{
    free(pool->heap);
    pool->heap = NULL;
    pool->n = pool->cap = 0;
}

/* ---- a history ---- */

void hist_free(hist_t *h)
{
    for (uint32_t i = 0; i < h->count; i++) msg_unref(hist_at(h, i));
    free(h->ring);
    hist_pool_t *pool = h->pool;
    if (pool) pool->bytes -= h->bytes;
    h->count = 0;
    hist__heap_fix(h);
    *h = (hist_t){.pool = pool, .pinned = h->pinned};
}

/* A message readers may skip one day: withdrawn, or with its own time-to-live. */
static inline bool hist__skippable(const msg_t *m) { return (m->flags & MSG_WITHDRAWN) || m->expiry_s; }

/* Drops the oldest message; the caller fixes the heap. */
static void hist_pop(hist_t *h)
{
    msg_t *m = h->ring[h->head];
    h->nskip -= hist__skippable(m);
    uint64_t cost = msg_cost(m);
    h->bytes -= cost;
    if (h->pool) h->pool->bytes -= cost;
    msg_unref(m);
    h->head = (h->head + 1) % h->cap;
    h->count--;
}

/* Frees the ring of an empty history (an idle channel holds no array). */
static void hist__release_empty(hist_t *h)
{
    if (h->count == 0 && h->ring) {
        free(h->ring);
        h->ring = NULL;
        h->cap = h->head = 0;
    }
}

void hist_trim(hist_t *h, const hist_limits_t *lim, uint64_t now)
{
    uint32_t before = h->count;
    while (h->count && (h->count > lim->max_messages || h->bytes > lim->max_bytes)) hist_pop(h);
    /* aged out, or past its own time-to-live (msg.expiry_s: ttl, MQTT message expiry); an
     * expired message behind a live one stays until it reaches the head (ids stay contiguous in
     * the ring) and readers skip it (hub_after) */
    while (h->count) {
        const msg_t *m = hist_at(h, 0);
        if (!(lim->max_age_ms && m->time_ms + lim->max_age_ms <= now) && !msg_expired(m, now)) break;
        hist_pop(h);
    }
    if (h->count != before) hist__heap_fix(h);
    hist__release_empty(h);
}

void hist_drop_oldest(hist_t *h)
{
    if (!h->count) return;
    hist_pop(h);
    hist__heap_fix(h);
    hist__release_empty(h);
}

int hist_push(hist_t *h, msg_t *m, const hist_limits_t *lim, uint64_t now)
{
    if (lim->max_messages == 0) return 0;
    if (h->count == h->cap) {
        uint32_t ncap = h->cap ? h->cap * 2 : 8;
        if (ncap > lim->max_messages + 1) ncap = lim->max_messages + 1;
        if (ncap <= h->count) ncap = h->count + 1;
        msg_t **r = malloc(ncap * sizeof(*r));
        if (!r) return HR_ENOMEM;
        for (uint32_t i = 0; i < h->count; i++) r[i] = hist_at(h, i);
        free(h->ring);
        h->ring = r;
        h->cap = ncap;
        h->head = 0;
    }
    h->ring[(h->head + h->count) % h->cap] = msg_ref(m);
    h->count++;
    h->nskip += hist__skippable(m);
    h->bytes += msg_cost(m);
    if (h->pool) h->pool->bytes += msg_cost(m);
    if (h->count == 1) hist__heap_fix(h);
    hist_trim(h, lim, now);
    return 0;
}

void hist_replace(hist_t *h, uint32_t i, msg_t *m)
{
    msg_t **slot = &h->ring[(h->head + i) % h->cap];
    uint64_t old = msg_cost(*slot), cost = msg_cost(m);
    h->nskip = h->nskip - hist__skippable(*slot) + hist__skippable(m);
    h->bytes = h->bytes - old + cost;
    if (h->pool) h->pool->bytes = h->pool->bytes - old + cost;
    msg_unref(*slot);
    *slot = msg_ref(m);
}

uint32_t hist_index_after(const hist_t *h, uint64_t after)
{
    if (!h->count) return 0;
    uint64_t first = hist_at(h, 0)->id;
    if (after < first) return 0;
    uint64_t idx = after - first + 1;
    return idx > h->count ? h->count : (uint32_t)idx;
}

uint64_t hist_count_after(const hist_t *h, uint64_t after, uint64_t now, uint64_t *next_exp)
{
    uint32_t i = hist_index_after(h, after);
    if (!h->nskip) return h->count - i;
    uint64_t k = 0;
    for (; i < h->count; i++) {
        const msg_t *m = hist_at(h, i);
        if ((m->flags & MSG_WITHDRAWN) || msg_expired(m, now)) continue;
        k++;
        if (!m->expiry_s) continue;
        uint64_t at = m->time_ms + (uint64_t)m->expiry_s * 1000;
        if (!*next_exp || at < *next_exp) *next_exp = at;
    }
    return k;
}
