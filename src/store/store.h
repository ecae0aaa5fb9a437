/* store.h - where channel histories persist, behind one interface.
 *
 * The hub keeps each channel's recent history in memory (hist_t) and tells the store about every
 * message it accepts and every message its limits drop; when a channel is first used the store
 * restores its last id and recent messages. The memory store (mem.c) persists nothing: the
 * in-memory ring is the whole history, and a restart starts every channel afresh. The LMDB store
 * (lmdb.c) keeps histories, last ids and MQTT retained messages on disk; its writes of one event
 * loop iteration are committed together by flush(), which the hub calls (hub_commit) before the
 * loop writes to any socket, so nothing is acknowledged or delivered before it is stored; when a
 * commit fails the hub fails that iteration's publishes. Ordering publishes across nodes is the
 * engine's business (hub/engine.h), not the store's. */
#ifndef HERALD_STORE_H
#define HERALD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/loop.h"
#include "../hub/hist.h"

typedef struct store store_t;
struct chan;

/* Called with each stored retained message (the callee takes its own reference); non-zero stops. */
typedef int (*store_retained_cb)(void *arg, msg_t *m);

/* Called with each record of a key-value namespace (valid during the call); non-zero stops. */
typedef int (*store_kv_cb)(void *arg, const void *key, size_t klen, const void *val, size_t vlen);

/* A load op's answer when it loads asynchronously: the channel exists at once, held "loading",
 * and the store calls hub_loaded() when its backend answered (see hub.h). */
#define STORE_LOADING 1

typedef struct {
    /* Records m (id already assigned). Returns 0 or a negative HR_E* (the publish then fails). */
    int (*append)(store_t *s, const msg_t *m);
    /* Restores a channel on first use: fills *last_id and pushes its kept messages into h.
     * Returns 0 (also when the store knows nothing of it), STORE_LOADING (it will call
     * hub_loaded() for the channel instead) or a negative HR_E*. */
    int (*load)(store_t *s, const char *channel, size_t len, hist_t *h, const hist_limits_t *lim,
                uint64_t *last_id);
    /* Frees the store (committing what is pending). */
    void (*close)(store_t *s);
    /* Optional. The channel's history now starts at first_kept: older messages may go. */
    int (*trim)(store_t *s, const char *channel, size_t len, uint64_t first_kept);
    /* Optional. Keeps m as the channel's MQTT retained message, or forgets it (m NULL). */
    int (*retain)(store_t *s, const msg_t *m, const char *channel, size_t len);
    /* Optional. Calls cb with every retained message (at start-up). 0, or cb's or an HR_E* result. */
    int (*each_retained)(store_t *s, store_retained_cb cb, void *arg);
    /* Optional. Commits the writes made since the last flush (end of a loop iteration). 0, or
     * HR_E* when the commit failed: none of those writes happened (HR_ESTOREFULL: no room). */
    int (*flush)(store_t *s);
    /* Optional: small records by key in a namespace (MQTT persistent sessions). put replaces,
     * del of a missing key is 0, each visits a namespace in key order. 0 or HR_E*. */
    int (*kv_put)(store_t *s, const char *ns, const void *key, size_t klen, const void *val, size_t vlen);
    int (*kv_del)(store_t *s, const char *ns, const void *key, size_t klen);
    int (*kv_each)(store_t *s, const char *ns, store_kv_cb cb, void *arg);
} store_ops_t;

struct store {
    const store_ops_t *ops;
    const char *name;
};

/* The memory store: nothing persists across restarts. */
store_t *store_mem_new(void);

typedef struct {
    const char *dir;   /* created when missing; locked against a second herald */
    bool sync;         /* true: fsync every commit (durability = sync) */
    uint32_t flush_ms; /* durability = interval: fsync at least this often */
    uint64_t map_size; /* the largest the database may grow, in bytes */
} store_lmdb_opts_t;

/* Opens (or creates) the LMDB store in o->dir. NULL with a message in err on failure. */
store_t *store_lmdb_open(const store_lmdb_opts_t *o, loop_t *loop, char *err, size_t errcap);

#endif
