/* mem.c - the memory store: the hub's in-memory history ring is all there is, so appending and
 * loading have nothing to do. Used for tests and ephemeral deployments. */
#include <stdlib.h>

#include "store.h"

static int mem_append(store_t *s, const msg_t *m) { return 0; }

static int mem_load(store_t *s, const char *channel, size_t len, hist_t *h, const hist_limits_t *lim,
                    uint64_t *last_id)
{
    *last_id = 0;
    return 0;
}

static void mem_close(store_t *s) { free(s); }

static const store_ops_t mem_ops = {.append = mem_append, .load = mem_load, .close = mem_close};

store_t *store_mem_new(void)
{
    store_t *s = malloc(sizeof(*s));
    if (s) {
        s->ops = &mem_ops;
        s->name = "memory";
    }
    return s;
}
