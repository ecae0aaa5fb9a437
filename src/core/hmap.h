/* hmap.h - the one hash table for keys that clients choose (channel names, MQTT client ids,
 * client addresses, token digests).
 *
 * Intrusive and chained: an entry embeds an hmap_node_t and the map only links nodes, so a
 * lookup costs no allocation and an insert never fails. Keys are byte strings hashed with
 * SipHash-2-4 under a key drawn at random for each map (siphash.h), so nobody can pick many keys
 * that land in one bucket without knowing it. The map does not know where an entry keeps its
 * key: it compares through the eq function given to hmap_init, and only for nodes whose 64-bit
 * hash already matched.
 *
 * Growth: the bucket array doubles when the map holds more nodes than buckets (load factor at
 * most 1), so a chain holds about one node. If doubling fails for want of memory the insert
 * still succeeds with longer chains. Removing never reallocates, which is what makes removing
 * the current node during an iteration safe; hmap_shrink gives memory back at a moment the owner
 * knows no iteration is running (after a sweep). */
#ifndef HERALD_HMAP_H
#define HERALD_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "siphash.h"

typedef struct hmap_node hmap_node_t;
struct hmap_node {
    hmap_node_t *next; /* in its bucket's chain */
    uint64_t hash;     /* of its key, under its map's key */
};

/* True when node's key is key[0..n). */
typedef bool (*hmap_eq_fn)(const hmap_node_t *node, const void *key, size_t n);

typedef struct {
    hmap_node_t **b; /* mask + 1 buckets */
    uint32_t mask;
    uint32_t n;      /* nodes in the map */
    uint32_t min;    /* the fewest buckets (hmap_shrink stops there) */
    hmap_eq_fn eq;
    sip_key_t key;   /* random per map */
} hmap_t;

/* Walks every node once, in no particular order. The node last returned may be removed (and
 * freed) before the next call; nothing else may be inserted or removed during the walk. */
typedef struct {
    const hmap_t *m;
    uint32_t i;        /* the next bucket to look at */
    hmap_node_t *next; /* the node the next call returns */
} hmap_iter_t;

/* Sets up an empty map with at least min_buckets buckets (rounded up to a power of two, at
 * least 8) and a random hash key. Returns 0 or HR_ENOMEM. */
int hmap_init(hmap_t *m, uint32_t min_buckets, hmap_eq_fn eq);

/* Frees the bucket array (not the nodes: they belong to the caller). The map is then empty: a
 * walk over it finds nothing; nothing may be inserted. */
void hmap_free(hmap_t *m);

/* The hash of key[0..n) under m's key. */
uint64_t hmap_hash(const hmap_t *m, const void *key, size_t n);

/* The node whose key is key[0..n) (h = hmap_hash of it), or NULL. */
hmap_node_t *hmap_find(const hmap_t *m, uint64_t h, const void *key, size_t n);

/* hmap_find with the hash computed here. */
hmap_node_t *hmap_get(const hmap_t *m, const void *key, size_t n);

/* Links node, whose key hashes to h and is not in the map yet. Never fails: when the bucket
 * array cannot grow the chains get longer. */
void hmap_insert(hmap_t *m, hmap_node_t *node, uint64_t h);

/* Unlinks node, which must be in m. Never reallocates. */
void hmap_remove(hmap_t *m, hmap_node_t *node);

/* Halves the bucket array while the map is under a quarter full and above its minimum size
 * (failure to allocate keeps the larger array, which stays correct). Not during an iteration. */
void hmap_shrink(hmap_t *m);

/* Starts a walk over m. */
void hmap_iter_init(hmap_iter_t *it, const hmap_t *m);

/* The next node of the walk, or NULL at the end. */
hmap_node_t *hmap_iter_next(hmap_iter_t *it);

/* The number of buckets (tests and metrics). */
static inline uint32_t hmap_buckets(const hmap_t *m) { return m->mask + 1; }

#endif
