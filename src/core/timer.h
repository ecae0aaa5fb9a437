/* timer.h - one hashed timer wheel for every timeout and heartbeat.
 *
 * Entries are embedded in their owners (no allocation). The wheel has TW_SLOTS slots of
 * TW_TICK_MS each; an entry lives in the slot of its deadline's tick, and entries further away
 * than one turn are simply looked at again when their slot comes round. Moving a deadline later
 * is O(1) without relinking (the entry is relinked lazily when its old slot fires), which makes
 * "extend the idle timeout on every read" free. Callbacks may re-arm or stop any entry,
 * including their own. */
#ifndef HERALD_TIMER_H
#define HERALD_TIMER_H

#include <stdint.h>

#include "list.h"

#define TW_SLOTS 1024
#define TW_TICK_MS 16

typedef struct tw_entry tw_entry_t;
typedef void (*tw_cb)(tw_entry_t *e);

struct tw_entry {
    list_node_t link; /* in a slot while armed */
    uint64_t deadline; /* ms, loop clock */
    tw_cb cb;
};

typedef struct {
    list_t slots[TW_SLOTS];
    uint64_t tick;   /* the next tick to process */
    uint64_t armed;  /* number of armed entries */
    int running;     /* inside tw_run */
} tw_t;

void tw_init(tw_t *w, uint64_t now_ms);

/* Prepares an entry (unarmed) with its callback. */
static inline void tw_entry_init(tw_entry_t *e, tw_cb cb)
{
    list_init(&e->link);
    e->deadline = 0;
    e->cb = cb;
}

static inline int tw_armed(const tw_entry_t *e) { return list_linked(&e->link); }

/* Arms (or re-arms) e to fire at deadline_ms. */
void tw_arm(tw_t *w, tw_entry_t *e, uint64_t deadline_ms);

/* Disarms e; harmless when not armed. */
void tw_stop(tw_t *w, tw_entry_t *e);

/* Fires every entry whose deadline is <= now_ms. Returns how many fired. */
int tw_run(tw_t *w, uint64_t now_ms);

/* Milliseconds until the next slot holding an entry is due (0 if overdue), or -1 when nothing is
 * armed. Bounded by one wheel turn. */
int tw_next_ms(const tw_t *w, uint64_t now_ms);

#endif
