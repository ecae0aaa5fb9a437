/* store.h - where channel histories persist, behind one interface.
 *
 * The hub keeps each channel's recent history in memory (hist_t) and tells the store about every
 * message it accepts; when a channel is first used the store may restore its last id and recent
 * messages. The memory store (mem.c) persists nothing: the in-memory ring is the whole history,
 * and a restart starts every channel afresh. An on-disk store (LMDB/SQLite) slots in here. */
#ifndef HERALD_STORE_H
#define HERALD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "../hub/hist.h"

typedef struct store store_t;

typedef struct {
    /* Records m (id already assigned). Returns 0 or a negative HR_E* (the publish then fails). */
    int (*append)(store_t *s, const msg_t *m);
    /* Restores a channel on first use: fills *last_id and pushes its kept messages into h.
     * Returns 0 (also when the store knows nothing of it) or a negative HR_E*. */
    int (*load)(store_t *s, const char *channel, size_t len, hist_t *h, const hist_limits_t *lim,
                uint64_t *last_id);
    /* Frees the store. */
    void (*close)(store_t *s);
} store_ops_t;

struct store {
    const store_ops_t *ops;
    const char *name;
};

/* The memory store: nothing persists across restarts. */
store_t *store_mem_new(void);

#endif
