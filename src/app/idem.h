/* idem.h - idempotent publishing: the answer to a publish made with a client-chosen key,
 * remembered per caller so that a retry (after a timeout, a lost connection, a restart) gets
 * the same answer and publishes nothing again.
 *
 * A record is keyed by "SCOPE KEY": the caller (auth_scope: a user, an API key) and the key, so
 * two callers may use the same key. It is "pending" from the moment the first request is
 * accepted until its publishes completed (a retry meanwhile is told to come back: 409), then
 * "done" with the HTTP status and body of the answer. Records are forgotten window_ms after
 * they were made (a periodic sweep, and any lookup, drops older ones) and, past max_keys, the
 * oldest first. In memory they are one seeded hash map (hmap.h) plus a list in age order.
 *
 * Durability: with a store that has the kv operations and commits a loop iteration's writes
 * together (LMDB), records live in the store's "idem" namespace too: idem_write() in the same
 * loop iteration as the publishes puts the record into the same commit as the messages (both
 * or neither survive a crash), and idem_init() loads them back. Without kv operations (memory
 * store), or with a store that orders publishes itself (engine = redis, whose commits are not
 * the local store's), records live in this node's memory only; with engine = redis the publish
 * routes also claim and settle each key in Redis (engine.h idem_claim, see publish.c), so that
 * every node, and a node started afresh, shares them.
 *
 * Stored value: 'H' 1 (format), made at (8 bytes, big-endian wall-clock ms), status (2 bytes,
 * big-endian), flags (1 byte: 1 = the final answer; 0 = written with the publishes, before
 * their subscriber counts were known), then the body. */
#ifndef HERALD_IDEM_H
#define HERALD_IDEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/hmap.h"
#include "../core/list.h"
#include "../core/loop.h"
#include "../store/store.h"

#define IDEM_NS "idem"
#define IDEM_REC_HEAD 13 /* bytes before the body in a stored value */

typedef enum { IDEM_PENDING = 0, IDEM_DONE = 1 } idem_state_t;

typedef struct idem_entry {
    hmap_node_t node;    /* in idem->map by key */
    list_node_t age;     /* in idem->order, oldest first */
    uint64_t made_ms;    /* wall clock */
    idem_state_t state;
    bool stored;         /* written to the store (delete it there too) */
    uint16_t status;     /* IDEM_DONE: the HTTP status */
    uint32_t body_len;
    char *body;          /* IDEM_DONE: the answer (owned) */
    uint16_t klen;
    char key[];          /* scope, ' ', client key */
} idem_entry_t;

typedef struct {
    hmap_t map;
    list_t order;
    uint32_t n;
    uint64_t window_ms;  /* 0: idempotency is off (nothing is remembered) */
    uint32_t max_keys;
    store_t *store;      /* the durable store, or NULL (memory only) */
    loop_t *loop;        /* NULL: no periodic sweep (tests) */
    tw_entry_t sweep;
    uint64_t evicted;    /* records forgotten early at max_keys */
    uint64_t expired;    /* records forgotten at the end of the window */
    uint64_t replays;    /* answers given again */
    uint64_t conflicts;  /* retries refused while the first was in flight (409) */
    uint64_t loaded;     /* records loaded at start-up */
} idem_t;

/* A stored value decoded (body points into the value). */
typedef struct {
    uint64_t made_ms;
    uint16_t status;
    bool final;
    const char *body;
    size_t body_len;
} idem_rec_t;

/* Sets up the table. store: the records are also kept there when it has kv operations (NULL: in
 * memory only; pass NULL with a shared engine, whose publishes the local store does not commit). Loads the stored
 * records that are still inside the window (forgetting, in the store too, those that are not),
 * and, with a loop, starts the periodic sweep. Returns 0 or HR_ENOMEM / the store's HR_E*. */
int idem_init(idem_t *t, loop_t *loop, store_t *store, uint64_t window_ms, uint32_t max_keys);

/* Frees every record (their stored copies stay) and stops the sweep. */
void idem_close(idem_t *t);

/* Writes the table key "SCOPE KEY" into out (cap bytes); returns its length, or 0 when it does
 * not fit. */
size_t idem_key(char *out, size_t cap, const char *scope, size_t sn, const char *key, size_t kn);

/* The live record for key[0..n), or NULL (a record older than the window is forgotten here). */
idem_entry_t *idem_find(idem_t *t, const char *key, size_t n, uint64_t now_ms);

/* Adds a pending record for key[0..n) (which must not be live), forgetting the oldest done
 * records beyond max_keys (counted; the first time logged). NULL on HR_ENOMEM. */
idem_entry_t *idem_begin(idem_t *t, const char *key, size_t n, uint64_t now_ms);

/* Writes e to the store with this answer (final: the answer is complete), in the store's open
 * commit. 0 (also without a durable store) or the store's HR_E*. */
int idem_write(idem_t *t, idem_entry_t *e, uint16_t status, const char *body, size_t n, bool final);

/* The publishes of e completed: e becomes done with this answer (copied) and is written to the
 * store (the next commit). 0 or HR_ENOMEM (e is then forgotten). */
int idem_finish(idem_t *t, idem_entry_t *e, uint16_t status, const char *body, size_t n);

/* Forgets e now (nothing was published under it), in the store too if it was written. */
void idem_forget(idem_t *t, idem_entry_t *e);

/* Forgets the records made before now_ms - window (not pending ones). Returns how many. */
uint32_t idem_sweep(idem_t *t, uint64_t now_ms);

/* Encodes a stored value into out (IDEM_REC_HEAD + body_len bytes). */
void idem_rec_encode(uint8_t *out, const idem_rec_t *r);

/* Decodes a stored value; 0 or HR_EINVAL (not a record of this format). */
int idem_rec_decode(const void *v, size_t n, idem_rec_t *r);

#endif
