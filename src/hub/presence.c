/* presence.c - who is subscribed to each channel, join/leave, and the reports to a shared
 * engine; see presence.h.
 *
 * Tables. Tracked channels are in a seeded hash map by name (names come from clients), each with
 * its own map of members by user id (ids come from tokens) and one anonymous member. A member
 * lives while it counts a subscription or has a change to report; its channel while it has a
 * member. A subscription holds a pointer to its member, so parting is O(1) and needs no lookup.
 *
 * Reports. presence_join/part only count and put the member on the dirty list (once); the flush
 * timer (armed for "now": the next loop iteration) walks the list in order. "shown" is what was
 * last reported, so a member that went 0 -> 1 -> 0 between two flushes reports nothing, and one
 * whose count moved 2 -> 1 reports only to a shared engine (which keeps counts). */
#include "presence.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../auth/acl.h"
#include "../core/err.h"
#include "../core/jsonesc.h"
#include "../core/log.h"

#define PRES_BATCH 256 /* channel entries per engine write */
#define PRES_UBATCH 64 /* users per engine write */

struct pres_ns {
    int8_t list, events; /* 0, 1 or PRES_UNSET */
    size_t len;
    char pattern[];
};

/* A user id whose connections changed, to report (shared engine). */
struct pres_uid {
    hmap_node_t node; /* in presence_t.udirty */
    list_node_t link; /* in presence_t.ulist */
    uint16_t len;
    char id[];
};

static bool pres__chan_eq(const hmap_node_t *n, const void *key, size_t len)
{
    const pres_chan_t *pc = container_of(n, pres_chan_t, node);
    return pc->len == len && memcmp(pc->name, key, len) == 0;
}

static bool pres__member_eq(const hmap_node_t *n, const void *key, size_t len)
{
    const pres_member_t *m = container_of(n, pres_member_t, node);
    return m->len == len && memcmp(m->id, key, len) == 0;
}

static bool pres__uid_eq(const hmap_node_t *n, const void *key, size_t len)
{
    const struct pres_uid *u = container_of(n, struct pres_uid, node);
    return u->len == len && memcmp(u->id, key, len) == 0;
}

static bool pres__shared(const presence_t *p)
{
    const engine_t *e = p->hub->engine;
    return e && e->ops->pres_write;
}

static void pres__on_flush(tw_entry_t *e);
static void pres__on_engine(void *arg, int ev, const char *ch, size_t cn, const char *user, size_t un);
static void pres__user_changed(void *arg, const char *id, size_t n);

int presence_init(presence_t *p, hub_t *hub, users_t *users, const presence_opts_t *o)
{
    memset(p, 0, sizeof(*p));
    p->hub = hub;
    p->o = *o;
    p->any = o->list || o->events;
    list_init(&p->dirty);
    list_init(&p->ulist);
    tw_entry_init(&p->flush, pres__on_flush);
    if (hmap_init(&p->chans, 64, pres__chan_eq) < 0) return HR_ENOMEM;
    if (hmap_init(&p->udirty, 64, pres__uid_eq) < 0) {
        hmap_free(&p->chans);
        return HR_ENOMEM;
    }
    hub->pres = p;
    engine_t *e = hub->engine;
    if (e && e->ops->pres_write) {
        e->on_presence = pres__on_engine;
        e->presence_arg = p;
    }
    if (users && e && e->ops->user_write) { /* only a shared engine needs each user's changes */
        p->users = users;
        users->changed = pres__user_changed;
        users->changed_arg = p;
    }
    return 0;
}

int presence_ns_add(presence_t *p, const char *pattern, int list, int events)
{
    size_t n = strlen(pattern);
    if (!acl_pattern_valid(pattern, n) || memchr(pattern, '{', n)) return HR_EINVAL;
    struct pres_ns **arr = realloc(p->ns, (p->nns + 1) * sizeof(*arr));
    if (!arr) return HR_ENOMEM;
    p->ns = arr;
    struct pres_ns *ns = malloc(sizeof(*ns) + n + 1);
    if (!ns) return HR_ENOMEM;
    ns->list = (int8_t)list;
    ns->events = (int8_t)events;
    ns->len = n;
    memcpy(ns->pattern, pattern, n + 1);
    arr[p->nns++] = ns;
    if (list == 1 || events == 1) p->any = true;
    return 0;
}

static void pres__free_chan(presence_t *p, pres_chan_t *pc)
{
    hmap_iter_t it;
    hmap_iter_init(&it, &pc->users);
    for (hmap_node_t *n; (n = hmap_iter_next(&it));) {
        pres_member_t *m = container_of(n, pres_member_t, node);
        list_unlink(&m->dirty);
        p->entries--;
        free(m);
    }
    hmap_free(&pc->users);
    list_unlink(&pc->anon->dirty);
    free(pc->anon);
    hmap_remove(&p->chans, &pc->node);
    free(pc);
}

void presence_close(presence_t *p)
{
    tw_stop(&p->hub->loop->wheel, &p->flush);
    engine_t *e = p->hub->engine;
    if (e && e->presence_arg == p) {
        e->on_presence = NULL;
        e->presence_arg = NULL;
    }
    if (p->users) {
        p->users->changed = NULL;
        p->users->changed_arg = NULL;
    }
    hmap_iter_t it;
    hmap_iter_init(&it, &p->chans);
    for (hmap_node_t *n; (n = hmap_iter_next(&it));) pres__free_chan(p, container_of(n, pres_chan_t, node));
    hmap_free(&p->chans);
    hmap_iter_init(&it, &p->udirty);
    for (hmap_node_t *n; (n = hmap_iter_next(&it));) free(container_of(n, struct pres_uid, node));
    hmap_free(&p->udirty);
    for (uint32_t i = 0; i < p->nns; i++) free(p->ns[i]);
    free(p->ns);
    p->hub->pres = NULL;
}

unsigned presence_flags(const presence_t *p, const char *ch, size_t n)
{
    if (!p || !p->any) return 0;
    int list = PRES_UNSET, events = PRES_UNSET;
    for (uint32_t i = 0; i < p->nns; i++)
        if (acl_match(p->ns[i]->pattern, p->ns[i]->len, NULL, 0, ch, n)) { /* the first match decides */
            list = p->ns[i]->list;
            events = p->ns[i]->events;
            break;
        }
    if (list == PRES_UNSET) list = p->o.list;
    if (events == PRES_UNSET) events = p->o.events;
    return (list ? PRES_LIST : 0u) | (events ? PRES_EVENTS : 0u);
}

static pres_chan_t *pres__find(const presence_t *p, const char *ch, size_t n)
{
    hmap_node_t *node = hmap_get(&p->chans, ch, n);
    return node ? container_of(node, pres_chan_t, node) : NULL;
}

/* m changed: it goes on the dirty list (once) and the flush runs on the next iteration. */
static void pres__touch(presence_t *p, pres_member_t *m)
{
    if (!list_linked(&m->dirty)) list_push_back(&p->dirty, &m->dirty);
    if (!tw_armed(&p->flush)) loop_timer(p->hub->loop, &p->flush, 0);
}

/* Frees m once it counts nothing and has nothing left to report, and its channel once empty. */
static void pres__settle(presence_t *p, pres_member_t *m)
{
    pres_chan_t *pc = m->pc;
    if (m->len && !m->count && !list_linked(&m->dirty)) {
        hmap_remove(&pc->users, &m->node);
        p->entries--;
        free(m);
    }
    if (!pc->users.n && !pc->anon->count && !list_linked(&pc->anon->dirty)) pres__free_chan(p, pc);
}

static pres_chan_t *pres__new_chan(presence_t *p, const char *ch, size_t n, unsigned flags)
{
    if (p->chans.n >= p->o.max_channels) {
        p->refused_channels++;
        if (!p->channels_logged) {
            p->channels_logged = true;
            log_warn("presence: more than max_presence_channels (%u) channels tracked: subscriptions to channel %.*s "
                     "and other new ones are not counted (herald_presence_refused_total; not logged again)",
                     p->o.max_channels, (int)n, ch);
        }
        return NULL;
    }
    pres_chan_t *pc = calloc(1, sizeof(*pc) + n + 1);
    pres_member_t *anon = pc ? calloc(1, sizeof(*anon)) : NULL;
    if (!anon || hmap_init(&pc->users, 8, pres__member_eq) < 0) {
        free(anon);
        free(pc);
        return NULL;
    }
    pc->anon = anon;
    anon->pc = pc;
    list_init(&anon->dirty);
    pc->flags = (uint8_t)flags;
    pc->len = (uint16_t)n;
    memcpy(pc->name, ch, n);
    hmap_insert(&p->chans, &pc->node, hmap_hash(&p->chans, ch, n));
    return pc;
}

/* A new member for user[0..un) on pc, or NULL at max_presence_entries (counted, logged once) or
 * out of memory. */
static pres_member_t *pres__new_member(presence_t *p, pres_chan_t *pc, const char *user, size_t un, uint64_t h)
{
    if (p->entries >= p->o.max_entries) {
        p->refused_entries++;
        if (!p->entries_logged) {
            p->entries_logged = true;
            log_warn("presence: more than max_presence_entries (%u) users on channels: user %.*s on %.*s and other "
                     "new ones are not counted (herald_presence_refused_total; not logged again)",
                     p->o.max_entries, (int)un, user, (int)pc->len, pc->name);
        }
        return NULL;
    }
    pres_member_t *m = calloc(1, sizeof(*m) + un + 1);
    if (!m) return NULL;
    m->pc = pc;
    m->len = (uint16_t)un;
    memcpy(m->id, user, un);
    list_init(&m->dirty);
    hmap_insert(&pc->users, &m->node, h);
    p->entries++;
    return m;
}

pres_member_t *presence_join(presence_t *p, const char *ch, size_t n, const char *user, size_t un)
{
    if (!p || !p->any || !n || n > HUB_MAX_CHANNEL || un > USERS_MAX_ID) return NULL;
    pres_chan_t *pc = pres__find(p, ch, n);
    if (!pc) {
        unsigned flags = presence_flags(p, ch, n);
        if (!flags || !(pc = pres__new_chan(p, ch, n, flags))) return NULL;
    }
    pres_member_t *m = pc->anon;
    if (un) {
        uint64_t h = hmap_hash(&pc->users, user, un);
        hmap_node_t *node = hmap_find(&pc->users, h, user, un);
        m = node ? container_of(node, pres_member_t, node) : pres__new_member(p, pc, user, un, h);
        if (!m) {
            pres__settle(p, pc->anon); /* a channel made for this subscription goes again */
            return NULL;
        }
    }
    m->count++;
    pc->conns++;
    pres__touch(p, m);
    return m;
}

void presence_part(presence_t *p, pres_member_t *m)
{
    if (!p || !m || !m->count) return;
    m->count--;
    m->pc->conns--;
    pres__touch(p, m);
}

static int pres__user_cmp(const void *a, const void *b)
{
    const presence_user_t *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->id, y->id, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

uint32_t presence_local(presence_t *p, const char *ch, size_t n, presence_user_t *out, uint32_t max,
                        uint32_t *nusers, uint32_t *anon, uint32_t *conns)
{
    pres_chan_t *pc = p ? pres__find(p, ch, n) : NULL;
    *nusers = *anon = *conns = 0;
    if (!pc) return 0;
    *anon = pc->anon->count;
    *conns = pc->conns;
    presence_user_t *all = malloc((pc->users.n + 1) * sizeof(*all));
    if (!all) return 0;
    uint32_t k = 0;
    hmap_iter_t it;
    hmap_iter_init(&it, &pc->users);
    for (hmap_node_t *node; (node = hmap_iter_next(&it));) {
        pres_member_t *m = container_of(node, pres_member_t, node);
        if (m->count) all[k++] = (presence_user_t){m->id, m->len, m->count};
    }
    qsort(all, k, sizeof(*all), pres__user_cmp);
    *nusers = k;
    uint32_t w = k < max ? k : max;
    if (w) memcpy(out, all, w * sizeof(*all));
    free(all);
    return w;
}

void presence_truncated(presence_t *p, uint32_t max)
{
    p->truncated++;
    if (!p->truncated_logged) {
        p->truncated_logged = true;
        log_info("presence: a presence list had more than max_presence_users (%u) users and was cut "
                 "(\"truncated\":true; herald_presence_truncated_total; not logged again)",
                 max);
    }
}

uint32_t presence_deliver(presence_t *p, const char *name, size_t n, bool join, const char *user, size_t un)
{
    pres_chan_t *pc = pres__find(p, name, n);
    unsigned flags = pc ? pc->flags : presence_flags(p, name, n);
    chan_t *ch = flags & PRES_EVENTS ? hub_channel(p->hub, name, n, false) : NULL;
    if (!ch || !un || un > USERS_MAX_ID) return 0;
    char json[6 * (HUB_MAX_CHANNEL + USERS_MAX_ID) + 64];
    size_t jn = (size_t)snprintf(json, sizeof(json), "{\"channel\":\"");
    jn += json_escape(ch->name, ch->name_len, json + jn, sizeof(json) - jn);
    jn += (size_t)snprintf(json + jn, sizeof(json) - jn, "\",\"user\":\"");
    jn += json_escape(user, un, json + jn, sizeof(json) - jn);
    jn += (size_t)snprintf(json + jn, sizeof(json) - jn, "\"}");
    if (join) p->joins++;
    else p->leaves++;
    uint32_t told = 0;
    list_node_t *pos, *tmp;
    list_each_safe(pos, tmp, &ch->subs) /* a subscriber may only drop itself (hub.h) */
    {
        sub_t *s = container_of(pos, sub_t, link);
        if (s->event) {
            s->event(s, join ? "join" : "leave", json, jn);
            told++;
        }
    }
    return told;
}

/* ---- reports ---- */

/* The local engine: joins and leaves are decided here. */
static void pres__flush_local(presence_t *p)
{
    while (!list_empty(&p->dirty)) {
        pres_member_t *m = container_of(p->dirty.next, pres_member_t, dirty);
        list_unlink(&m->dirty);
        pres_chan_t *pc = m->pc;
        uint32_t now = m->count > 0, was = m->shown;
        m->shown = now;
        /* pc and m stay during the delivery: only pres__settle frees them */
        if (m->len && now != was && (pc->flags & PRES_EVENTS))
            presence_deliver(p, pc->name, pc->len, now, m->id, m->len);
        pres__settle(p, m);
    }
}

/* A shared engine: this node's counts are written; it decides joins and leaves for the cluster.
 * full: a full rewrite (every entry is dirty): its batches are marked, and the engine then
 * forgets whatever this node wrote before that was not written again. */
static void pres__flush_shared(presence_t *p, bool full)
{
    engine_t *e = p->hub->engine;
    int phase = full ? ENGINE_WRITE_BEGIN : ENGINE_WRITE;
    while (phase == ENGINE_WRITE_BEGIN || !list_empty(&p->dirty)) {
        engine_pres_t v[PRES_BATCH];
        uint32_t k = 0, nd = 0;
        /* the batch stays on the dirty list during the write (it uses their names), then each
         * member leaves it and is settled in turn, as in pres__flush_local: settling one may free
         * its channel, but only once none of the channel's members is still on the list */
        for (list_node_t *pos = p->dirty.next; nd < PRES_BATCH && pos != &p->dirty; pos = pos->next, nd++) {
            pres_member_t *m = container_of(pos, pres_member_t, dirty);
            if (m->count == m->shown) continue;
            m->shown = m->count;
            v[k++] = (engine_pres_t){.ch = m->pc->name, .cn = m->pc->len, .user = m->id, .un = m->len,
                                     .count = m->count, .events = (m->pc->flags & PRES_EVENTS) != 0};
        }
        if ((k || phase == ENGINE_WRITE_BEGIN) && e->ops->pres_write(e, k ? v : NULL, k, phase) < 0)
            p->writes_failed++; /* the engine resyncs */
        if (phase == ENGINE_WRITE_BEGIN) phase = ENGINE_WRITE_MORE;
        for (uint32_t i = 0; i < nd; i++) {
            pres_member_t *m = container_of(p->dirty.next, pres_member_t, dirty);
            list_unlink(&m->dirty);
            pres__settle(p, m);
        }
    }
    if (full && e->ops->pres_write(e, NULL, 0, ENGINE_WRITE_END) < 0) p->writes_failed++;
}

/* Writes the connections by kind of the users that changed (shared engine); reset: the engine
 * forgets this node's earlier writes first. */
static void pres__flush_users(presence_t *p, bool reset)
{
    engine_t *e = p->hub->engine;
    reset = reset && p->users;
    while (reset || !list_empty(&p->ulist)) {
        engine_user_t v[PRES_UBATCH];
        struct pres_uid *done[PRES_UBATCH];
        char kinds[PRES_UBATCH][160];
        uint32_t k = 0;
        while (k < PRES_UBATCH && !list_empty(&p->ulist)) {
            struct pres_uid *d = container_of(p->ulist.next, struct pres_uid, link);
            list_unlink(&d->link);
            hmap_remove(&p->udirty, &d->node);
            done[k] = d;
            const users_user_t *u = p->users ? users_find(p->users, d->id, d->len) : NULL;
            const char *names[16];
            uint32_t counts[16], nk = u && u->nconns ? users_count_kinds(u, names, counts, 16) : 0;
            size_t kn = 0;
            for (uint32_t i = 0; i < nk && kn < sizeof(kinds[k]); i++)
                kn += (size_t)snprintf(kinds[k] + kn, sizeof(kinds[k]) - kn, "%s%s=%u", i ? "," : "", names[i],
                                       counts[i]);
            if (kn >= sizeof(kinds[k])) kn = sizeof(kinds[k]) - 1;
            v[k] = (engine_user_t){.id = d->id, .n = d->len, .kinds = kinds[k], .kn = kn,
                                   .last_seen_ms = u && u->last_seen_ms ? u->last_seen_ms : loop_wall_ms()};
            k++;
        }
        if (p->users && (k || reset) && e->ops->user_write(e, v, k, reset) < 0) p->writes_failed++;
        reset = false;
        for (uint32_t i = 0; i < k; i++) free(done[i]);
    }
}

void presence_flush(presence_t *p)
{
    if (!p) return;
    tw_stop(&p->hub->loop->wheel, &p->flush);
    if (!pres__shared(p)) {
        pres__flush_local(p);
        return;
    }
    bool reset = p->resync;
    p->resync = false;
    pres__flush_shared(p, reset);
    pres__flush_users(p, reset);
}

static void pres__on_flush(tw_entry_t *e) { presence_flush(container_of(e, presence_t, flush)); }

/* users.h: a user's connections changed (shared engine): remembered until the flush. */
static void pres__user_changed(void *arg, const char *id, size_t n)
{
    presence_t *p = arg;
    uint64_t h = hmap_hash(&p->udirty, id, n);
    if (hmap_find(&p->udirty, h, id, n)) return;
    struct pres_uid *d = malloc(sizeof(*d) + n);
    if (!d) return; /* not reported: the next change of this user, or a resync, writes it */
    d->len = (uint16_t)n;
    memcpy(d->id, id, n);
    hmap_insert(&p->udirty, &d->node, h);
    list_push_back(&p->ulist, &d->link);
    if (!tw_armed(&p->flush)) loop_timer(p->hub->loop, &p->flush, 0);
}

/* The shared engine lost this node's share: every entry (and every online user) is written again,
 * after the engine forgot what this node wrote before. */
static void pres__resync(presence_t *p)
{
    p->resync = true;
    hmap_iter_t it;
    hmap_iter_init(&it, &p->chans);
    for (hmap_node_t *n; (n = hmap_iter_next(&it));) {
        pres_chan_t *pc = container_of(n, pres_chan_t, node);
        hmap_iter_t mi;
        hmap_iter_init(&mi, &pc->users);
        for (hmap_node_t *mn; (mn = hmap_iter_next(&mi));) {
            pres_member_t *m = container_of(mn, pres_member_t, node);
            m->shown = UINT32_MAX; /* differs from any count: written */
            if (!list_linked(&m->dirty)) list_push_back(&p->dirty, &m->dirty);
        }
        pc->anon->shown = UINT32_MAX;
        if (!list_linked(&pc->anon->dirty)) list_push_back(&p->dirty, &pc->anon->dirty);
    }
    if (p->users) {
        hmap_iter_init(&it, &p->users->map);
        for (hmap_node_t *n; (n = hmap_iter_next(&it));) {
            users_user_t *u = container_of(n, users_user_t, node);
            if (u->nconns) pres__user_changed(p, u->id, u->len);
        }
    }
    if (!tw_armed(&p->flush)) loop_timer(p->hub->loop, &p->flush, 0);
}

/* engine_t.on_presence */
static void pres__on_engine(void *arg, int ev, const char *ch, size_t cn, const char *user, size_t un)
{
    presence_t *p = arg;
    if (ev == ENGINE_PRES_RESYNC) {
        pres__resync(p);
        return;
    }
    p->events_in++;
    presence_deliver(p, ch, cn, ev == ENGINE_PRES_JOIN, user, un);
}

size_t presence_metrics(const presence_t *p, char *out, size_t cap)
{
    int n = snprintf(out, cap,
                     "# HELP herald_presence_channels Channels whose subscribers are tracked on this node (limit "
                     "max_presence_channels).\n"
                     "# TYPE herald_presence_channels gauge\nherald_presence_channels %u\n"
                     "# HELP herald_presence_entries Users tracked on channels on this node (limit "
                     "max_presence_entries).\n"
                     "# TYPE herald_presence_entries gauge\nherald_presence_entries %" PRIu64 "\n"
                     "# HELP herald_presence_refused_total Subscriptions not counted in presence at a limit.\n"
                     "# TYPE herald_presence_refused_total counter\n"
                     "herald_presence_refused_total{limit=\"max_presence_channels\"} %" PRIu64 "\n"
                     "herald_presence_refused_total{limit=\"max_presence_entries\"} %" PRIu64 "\n"
                     "# HELP herald_presence_events_total Join and leave events delivered on this node.\n"
                     "# TYPE herald_presence_events_total counter\n"
                     "herald_presence_events_total{event=\"join\"} %" PRIu64 "\n"
                     "herald_presence_events_total{event=\"leave\"} %" PRIu64 "\n"
                     "# HELP herald_presence_truncated_total Presence lists cut at max_presence_users.\n"
                     "# TYPE herald_presence_truncated_total counter\nherald_presence_truncated_total %" PRIu64 "\n"
                     "# HELP herald_presence_write_failures_total Presence reports a shared engine could not take "
                     "(written again in full once it can).\n"
                     "# TYPE herald_presence_write_failures_total counter\n"
                     "herald_presence_write_failures_total %" PRIu64 "\n",
                     p->chans.n, p->entries, p->refused_channels, p->refused_entries, p->joins, p->leaves,
                     p->truncated, p->writes_failed);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}
