/* hmap.c - the seeded chained hash table; see hmap.h. */
#include "hmap.h"

#include <stdlib.h>

#include "err.h"

#define HMAP_MIN_BUCKETS 8u

int hmap_init(hmap_t *m, uint32_t min_buckets, hmap_eq_fn eq)
{
    uint32_t nb = HMAP_MIN_BUCKETS;
    while (nb < min_buckets && nb < (1u << 31)) nb *= 2;
    *m = (hmap_t){.mask = nb - 1, .min = nb, .eq = eq};
    if (!(m->b = calloc(nb, sizeof(*m->b)))) return HR_ENOMEM;
    sip_key_random(&m->key);
    return 0;
}

void hmap_free(hmap_t *m)
{
    free(m->b);
    m->b = NULL;
    m->n = m->mask = 0;
}

uint64_t hmap_hash(const hmap_t *m, const void *key, size_t n) { return siphash24(&m->key, key, n); }

hmap_node_t *hmap_find(const hmap_t *m, uint64_t h, const void *key, size_t n)
{
    for (hmap_node_t *e = m->b[h & m->mask]; e; e = e->next)
        if (e->hash == h && m->eq(e, key, n)) return e;
    return NULL;
}

hmap_node_t *hmap_get(const hmap_t *m, const void *key, size_t n) { return hmap_find(m, hmap_hash(m, key, n), key, n); }

/* Moves every node into a new array of nb buckets (a power of two). False when out of memory
 * (the map is unchanged). */
static bool hmap__rehash(hmap_t *m, uint32_t nb)
{
    hmap_node_t **t = calloc(nb, sizeof(*t));
    if (!t) return false;
    for (uint32_t i = 0; i <= m->mask; i++)
        for (hmap_node_t *e = m->b[i], *next; e; e = next) {
            next = e->next;
            e->next = t[e->hash & (nb - 1)];
            t[e->hash & (nb - 1)] = e;
        }
    free(m->b);
    m->b = t;
    m->mask = nb - 1;
    return true;
}

void hmap_insert(hmap_t *m, hmap_node_t *node, uint64_t h)
{
    if (m->n >= m->mask + 1 && m->mask < (1u << 31) - 1)
        hmap__rehash(m, (m->mask + 1) * 2); /* on failure the chains get longer */
    node->hash = h;
    node->next = m->b[h & m->mask];
    m->b[h & m->mask] = node;
    m->n++;
}

void hmap_remove(hmap_t *m, hmap_node_t *node)
{
    for (hmap_node_t **pp = &m->b[node->hash & m->mask]; *pp; pp = &(*pp)->next)
        if (*pp == node) {
            *pp = node->next;
            node->next = NULL;
            m->n--;
            return;
        }
}

void hmap_shrink(hmap_t *m)
{
    uint32_t nb = m->mask + 1;
    while (nb > m->min && m->n < nb / 4) nb /= 2;
    if (nb != m->mask + 1) hmap__rehash(m, nb);
}

void hmap_iter_init(hmap_iter_t *it, const hmap_t *m)
{
    *it = (hmap_iter_t){.m = m};
    while (m->b && !it->next && it->i <= m->mask) it->next = m->b[it->i++];
}

hmap_node_t *hmap_iter_next(hmap_iter_t *it)
{
    hmap_node_t *cur = it->next;
    if (!cur) return NULL;
    it->next = cur->next;
    while (!it->next && it->i <= it->m->mask) it->next = it->m->b[it->i++];
    return cur;
}
