/* sched.c - scheduled delivery (see sched.h).
 *
 * Schedules wait in a binary min-heap by due time; one timer-wheel entry is armed for the
 * earliest (at most a minute ahead, then re-armed: far deadlines cost nothing). When it fires,
 * every due schedule is published (hub_publish_async, nobody waits for the outcome) and its record
 * deleted from the store in the same loop iteration, so the store's commit holds both or neither:
 * after a crash a schedule is either still there or published, never both. A publish the hub
 * refuses (the store is failing, a ceiling) stays scheduled and is tried again a second later.
 *
 * Record in kv namespace "sched": key = id (8 bytes big-endian); value = due_ms u64, ttl u32,
 * channel_len u16, event_len u16 (little-endian), channel, event, data. */
#include "sched.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"

#define SCHED_NS "sched"
#define SCHED_HDR 16
#define SCHED_MAX_ARM_MS 60000
#define SCHED_RETRY_MS 1000

struct sched_ent {
    uint64_t id, due_ms;
    uint32_t ttl;
    uint16_t cn, en;
    uint32_t dn;
    char mem[]; /* channel, event, data */
};

static void sched__put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t sched__get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void sched__key(uint8_t k[8], uint64_t id)
{
    for (int i = 0; i < 8; i++) k[i] = (uint8_t)(id >> (56 - 8 * i));
}

/* ---- the heap ---- */

static void sched__swap(sched_t *s, uint32_t a, uint32_t b)
{
    sched_ent_t *t = s->heap[a];
    s->heap[a] = s->heap[b];
    s->heap[b] = t;
}

static void sched__up(sched_t *s, uint32_t i)
{
    while (i > 0 && s->heap[(i - 1) / 2]->due_ms > s->heap[i]->due_ms) {
        sched__swap(s, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void sched__down(sched_t *s, uint32_t i)
{
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= s->n) return;
        if (c + 1 < s->n && s->heap[c + 1]->due_ms < s->heap[c]->due_ms) c++;
        if (s->heap[i]->due_ms <= s->heap[c]->due_ms) return;
        sched__swap(s, i, c);
        i = c;
    }
}

static int sched__push(sched_t *s, sched_ent_t *e)
{
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 16;
        sched_ent_t **h = realloc(s->heap, cap * sizeof(*h));
        if (!h) return HR_ENOMEM;
        s->heap = h;
        s->cap = cap;
    }
    s->heap[s->n] = e;
    sched__up(s, s->n++);
    return 0;
}

static void sched__remove_at(sched_t *s, uint32_t i)
{
    s->heap[i] = s->heap[--s->n];
    if (i < s->n) {
        sched__down(s, i);
        sched__up(s, i);
    }
}

/* Arms the timer for the earliest schedule (nothing when there is none or no hub yet). */
static void sched__arm(sched_t *s, uint64_t min_ms)
{
    tw_stop(&s->loop->wheel, &s->timer);
    if (!s->n || !s->hub) return;
    uint64_t now = loop_wall_ms(), due = s->heap[0]->due_ms;
    uint64_t in = due > now ? due - now : 0;
    if (in < min_ms) in = min_ms;
    loop_timer(s->loop, &s->timer, in > SCHED_MAX_ARM_MS ? SCHED_MAX_ARM_MS : in);
}

static int sched__store(sched_t *s, const sched_ent_t *e)
{
    if (!s->store) return 0;
    size_t vn = SCHED_HDR + (size_t)e->cn + e->en + e->dn;
    uint8_t *v = malloc(vn), k[8];
    if (!v) return HR_ENOMEM;
    sched__put_le(v, e->due_ms, 8);
    sched__put_le(v + 8, e->ttl, 4);
    sched__put_le(v + 12, e->cn, 2);
    sched__put_le(v + 14, e->en, 2);
    memcpy(v + SCHED_HDR, e->mem, (size_t)e->cn + e->en + e->dn);
    sched__key(k, e->id);
    int rc = s->store->ops->kv_put(s->store, SCHED_NS, k, 8, v, vn);
    free(v);
    return rc;
}

static void sched__unstore(sched_t *s, uint64_t id)
{
    uint8_t k[8];
    sched__key(k, id);
    if (s->store) s->store->ops->kv_del(s->store, SCHED_NS, k, 8);
}

static sched_ent_t *sched__new(uint64_t id, uint64_t due, uint32_t ttl, const char *c, size_t cn, const char *ev,
                               size_t en, const void *d, size_t dn)
{
    sched_ent_t *e = malloc(sizeof(*e) + cn + en + dn);
    if (!e) return NULL;
    *e = (sched_ent_t){.id = id, .due_ms = due, .ttl = ttl, .cn = (uint16_t)cn, .en = (uint16_t)en, .dn = (uint32_t)dn};
    memcpy(e->mem, c, cn);
    memcpy(e->mem + cn, ev, en);
    if (dn) memcpy(e->mem + cn + en, d, dn);
    return e;
}

/* ---- publishing ---- */

static void sched__fire(tw_entry_t *t)
{
    sched_t *s = container_of(t, sched_t, timer);
    uint64_t now = loop_wall_ms();
    uint64_t retry = 0;
    while (s->n && s->heap[0]->due_ms <= now) {
        sched_ent_t *e = s->heap[0];
        hub_pubopt_t o = {.flags = MSG_FROM_HTTP, .expiry_s = e->ttl};
        int rc = hub_publish_async(s->hub, e->mem, e->cn, e->mem + e->cn, e->en, e->mem + e->cn + e->en, e->dn, &o,
                                   NULL, NULL);
        if (rc < 0) { /* the store or a ceiling refuses for now: all of them wait a second */
            if (!s->failed++)
                log_warn("sched: publishing schedule %" PRIu64 " on %.*s failed (%s): retried every second (counted "
                         "in herald_scheduled_failed_total, not logged again)", e->id, (int)e->cn, e->mem,
                         hr_strerror(rc));
            retry = SCHED_RETRY_MS;
            break;
        }
        sched__remove_at(s, 0);
        sched__unstore(s, e->id); /* in the same commit as the message */
        s->published++;
        free(e);
    }
    sched__arm(s, retry);
}

/* ---- the interface ---- */

void sched_init(sched_t *s, loop_t *loop, store_t *store, uint32_t max)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->store = store && store->ops->kv_put && store->ops->kv_del && store->ops->kv_each ? store : NULL;
    s->max = max;
    s->next_id = 1;
    tw_entry_init(&s->timer, sched__fire);
}

static int sched__load_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    sched_t *s = arg;
    const uint8_t *k = key, *v = val;
    if (klen != 8 || vlen < SCHED_HDR) return 0; /* not ours: skipped */
    uint64_t id = 0;
    for (int i = 0; i < 8; i++) id = id << 8 | k[i];
    size_t cn = sched__get_le(v + 12, 2), en = sched__get_le(v + 14, 2);
    if (SCHED_HDR + cn + en > vlen) return 0;
    size_t dn = vlen - SCHED_HDR - cn - en;
    const char *c = (const char *)v + SCHED_HDR;
    sched_ent_t *e = sched__new(id, sched__get_le(v, 8), (uint32_t)sched__get_le(v + 8, 4), c, cn, c + cn, en,
                                c + cn + en, dn);
    if (!e || sched__push(s, e) < 0) {
        free(e);
        return HR_ENOMEM;
    }
    if (id >= s->next_id) s->next_id = id + 1;
    return 0;
}

int sched_start(sched_t *s, hub_t *hub)
{
    s->hub = hub;
    if (s->store) {
        int rc = s->store->ops->kv_each(s->store, SCHED_NS, sched__load_one, s);
        if (rc < 0) return rc;
        if (s->n) log_info("sched: %u scheduled publishes loaded", s->n);
    }
    sched__arm(s, 0);
    return 0;
}

int sched_add(sched_t *s, const char *channel, size_t cn, const char *event, size_t en, const void *data, size_t dn,
              uint32_t ttl, uint64_t due_ms, uint64_t *id)
{
    if (s->max && s->n >= s->max) {
        if (!s->refused++)
            log_warn("limits: max_scheduled (%u) scheduled publishes reached: more are refused (counted in "
                     "herald_limit_hits_total, not logged again)", s->max);
        return HR_EFULL;
    }
    sched_ent_t *e = sched__new(s->next_id, due_ms, ttl, channel, cn, event, en, data, dn);
    if (!e) return HR_ENOMEM;
    int rc = sched__store(s, e);
    if (rc == 0) rc = sched__push(s, e);
    if (rc < 0) {
        free(e);
        return rc;
    }
    *id = s->next_id++;
    if (s->heap[0] == e) sched__arm(s, 0);
    return 0;
}

int sched_cancel(sched_t *s, uint64_t id)
{
    for (uint32_t i = 0; i < s->n; i++) {
        if (s->heap[i]->id != id) continue;
        free(s->heap[i]);
        sched__remove_at(s, i);
        sched__unstore(s, id);
        sched__arm(s, 0);
        return 0;
    }
    return HR_ENOTFOUND;
}

void sched_close(sched_t *s)
{
    if (s->loop) tw_stop(&s->loop->wheel, &s->timer);
    for (uint32_t i = 0; i < s->n; i++) free(s->heap[i]);
    free(s->heap);
    s->heap = NULL;
    s->n = s->cap = 0;
}

size_t sched_metrics(const sched_t *s, char *out, size_t cap)
{
    int n = snprintf(out, cap,
                     "# HELP herald_scheduled_messages Scheduled publishes waiting (limit max_scheduled).\n"
                     "# TYPE herald_scheduled_messages gauge\nherald_scheduled_messages %u\n"
                     "# HELP herald_scheduled_refused_total Schedules refused at max_scheduled.\n"
                     "# TYPE herald_scheduled_refused_total counter\nherald_scheduled_refused_total %llu\n"
                     "# HELP herald_scheduled_published_total Scheduled publishes made.\n"
                     "# TYPE herald_scheduled_published_total counter\nherald_scheduled_published_total %llu\n"
                     "# HELP herald_scheduled_failed_total Publishes of schedules refused by the hub (retried).\n"
                     "# TYPE herald_scheduled_failed_total counter\nherald_scheduled_failed_total %llu\n",
                     s->n, (unsigned long long)s->refused, (unsigned long long)s->published,
                     (unsigned long long)s->failed);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}
