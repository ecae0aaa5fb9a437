/* sched.h - scheduled delivery: a publish made now that happens at a later time (the publish
 * routes' "delay" and "at"). The message gets its id when it is published, not when it is
 * scheduled. Schedules are kept in the store's key-value namespace "sched" (LMDB: they survive
 * restarts and overdue ones are published at once at start-up), or in memory with a store that
 * has no key-value records (store = memory). Bounded by max_scheduled. */
#ifndef HERALD_SCHED_H
#define HERALD_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/loop.h"
#include "../hub/hub.h"
#include "../store/store.h"

typedef struct sched_ent sched_ent_t;

typedef struct {
    loop_t *loop;
    hub_t *hub;        /* NULL until sched_start */
    store_t *store;    /* with kv ops, or NULL: in memory only */
    sched_ent_t **heap; /* min-heap by due time */
    uint32_t n, cap;
    uint32_t max;      /* max_scheduled */
    uint64_t next_id;
    uint64_t refused;  /* schedules refused at max */
    uint64_t published; /* schedules that became publishes */
    uint64_t failed;   /* publishes of schedules the hub refused (retried a second later) */
    tw_entry_t timer;
} sched_t;

/* Sets up an empty scheduler (nothing runs before sched_start). store: the store (its kv ops, if
 * any, keep the schedules). */
void sched_init(sched_t *s, loop_t *loop, store_t *store, uint32_t max);

/* Loads the stored schedules and starts publishing through hub (overdue ones at once).
 * 0 or a negative HR_E*. */
int sched_start(sched_t *s, hub_t *hub);

/* Schedules the publish of data on channel at wall time due_ms (the past: at the next loop
 * iteration), with ttl seconds (0: none). Stores it (same commit as the loop iteration's other
 * writes). 0 and *id set, HR_EFULL at max_scheduled (counted; logged the first time), HR_ENOMEM,
 * or the store's HR_E*. */
int sched_add(sched_t *s, const char *channel, size_t cn, const char *event, size_t en, const void *data, size_t dn,
              uint32_t ttl, uint64_t due_ms, uint64_t *id);

/* Cancels schedule id. 0, or HR_ENOTFOUND (unknown or published already). */
int sched_cancel(sched_t *s, uint64_t id);

/* Frees every schedule in memory (the stored ones stay). */
void sched_close(sched_t *s);

/* Metrics (Prometheus text); bytes written. */
size_t sched_metrics(const sched_t *s, char *out, size_t cap);

#endif
