/* hub.c - channel table, publish and fan-out; see hub.h. The channel table is the seeded hash
 * map of core/hmap.h (names are chosen by clients); a sweep every few seconds applies history age
 * limits and frees channels that have neither subscribers nor history. */
#include "hub.h"

#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"

#define HUB_SWEEP_MS 5000

struct hub_pend {
    hub_pend_t *next;
    chan_t *ch;
    msg_t *m;
    hub_done_cb cb; /* NULL: nobody waits (or cancelled) */
    void *arg;
    int rc;       /* ordered by the engine: its outcome, once done */
    bool ordered; /* ordered by the engine (engine.h); else waits for the local commit */
    bool done;    /* ordered: hub_published was called */
    uint64_t t0_us; /* when it was taken (herald_publish_latency_seconds) */
};

/* A write waiting for the next commit (hub_when_committed). */
struct hub_waiter {
    struct hub_waiter *next;
    void (*cb)(void *arg, int rc);
    void *arg;
};

/* Messages hub_inject() got while their channel was held (a store loading it), in id order. */
struct hub_held {
    uint32_t n, cap;
    msg_t *m[];
};

static chan_t *hub__chan(hmap_node_t *n) { return n ? container_of(n, chan_t, node) : NULL; }

static bool hub__chan_eq(const hmap_node_t *n, const void *key, size_t len)
{
    const chan_t *ch = container_of(n, chan_t, node);
    return ch->name_len == len && memcmp(ch->name, key, len) == 0;
}

static void hub__drop_held(chan_t *ch)
{
    struct hub_held *h = ch->held;
    ch->held = NULL;
    for (uint32_t i = 0; h && i < h->n; i++) msg_unref(h->m[i]);
    free(h);
}

void hub__held_withdraw(chan_t *ch, uint64_t id, uint64_t upto)
{
    struct hub_held *h = ch->held;
    uint32_t k = 0;
    for (uint32_t i = 0; h && i < h->n; i++) {
        msg_t *m = h->m[i];
        if (m->id == id && !(m->flags & MSG_WITHDRAWN)) {
            msg_t *t = msg_new(m->channel, m->channel_len, m->event, m->event_len, "", 0, m->id, m->time_ms);
            if (t) t->flags = MSG_WITHDRAWN;
            msg_unref(m);
            m = t;
        } else if (m->id <= upto) {
            msg_unref(m);
            m = NULL;
        }
        if (m) h->m[k++] = m;
    }
    if (h) h->n = k;
}

static void hub__free_chan(chan_t *ch)
{
    hub__drop_held(ch);
    if (ch->retained) msg_unref(ch->retained);
    hist_free(&ch->hist);
    free(ch);
}

/* Tells the store when the ring's limits dropped messages, so it drops them too. */
static void hub__trimmed(hub_t *hub, chan_t *ch)
{
    uint64_t first = ch->hist.count ? hist_at(&ch->hist, 0)->id : ch->last_id + 1;
    if (first <= ch->kept_from) return;
    ch->kept_from = first;
    if (hub->store->ops->trim) hub->store->ops->trim(hub->store, ch->name, ch->name_len, first);
}

/* history_policy = trim: while every history together is over max_hist_bytes, the oldest message
 * of any channel goes (the store forgets it too). */
static void hub__fit_history(hub_t *hub)
{
    if (!hub->max_hist_bytes || hub->hist_refuse) return;
    while (hub->hpool.bytes > hub->max_hist_bytes) {
        hist_t *h = hist_pool_oldest(&hub->hpool);
        if (!h) break;
        if (!hub->hist_trimmed++)
            log_warn("limits: history memory over max_history_memory (%llu bytes): the oldest messages of any "
                     "channel are trimmed (counted in herald_limit_hits_total, not logged again)",
                     (unsigned long long)hub->max_hist_bytes);
        hist_drop_oldest(h);
        hub__trimmed(hub, container_of(h, chan_t, hist));
    }
}

static void hub__sweep(tw_entry_t *e)
{
    hub_t *hub = container_of(e, hub_t, sweep);
    uint64_t now = loop_wall_ms();
    hmap_iter_t it;
    hmap_iter_init(&it, &hub->chans);
    for (chan_t *ch; (ch = hub__chan(hmap_iter_next(&it)));) {
        hist_trim(&ch->hist, ch->lim, now);
        hub__trimmed(hub, ch);
        if (ch->nsubs == 0 && ch->hist.count == 0 && !ch->retained && !ch->npending && !ch->loading && !ch->nwatch) {
            hmap_remove(&hub->chans, &ch->node);
            hub->nchannels--;
            hub__free_chan(ch);
        }
    }
    hmap_shrink(&hub->chans);
    hub__fit_history(hub); /* channels loaded from the store may have gone past it */
    loop_timer(hub->loop, &hub->sweep, HUB_SWEEP_MS);
}

int hub_init(hub_t *hub, loop_t *loop, store_t *store, const hist_limits_t *limits)
{
    memset(hub, 0, sizeof(*hub));
    hub->loop = loop;
    hub->store = store;
    hub->limits = *limits;
    if (hmap_init(&hub->chans, 1024, hub__chan_eq) < 0) return HR_ENOMEM;
    topic_tree_init(&hub->topics);
    hub->pend_tail = &hub->pend_head;
    tw_entry_init(&hub->sweep, hub__sweep);
    loop_timer(loop, &hub->sweep, HUB_SWEEP_MS);
    return 0;
}

void hub_close(hub_t *hub)
{
    tw_stop(&hub->loop->wheel, &hub->sweep);
    for (hub_pend_t *p = hub->pend_head, *next; p; p = next) { /* a backend that never answered */
        next = p->next;
        msg_unref(p->m);
        free(p);
    }
    hub->pend_head = NULL;
    for (struct hub_waiter *w = hub->waiters, *next; w; w = next) {
        next = w->next;
        free(w);
    }
    hub->waiters = NULL;
    hmap_iter_t it;
    hmap_iter_init(&it, &hub->chans);
    for (chan_t *ch; (ch = hub__chan(hmap_iter_next(&it)));) hub__free_chan(ch);
    hmap_free(&hub->chans);
    hub->nchannels = 0;
    hist_pool_free(&hub->hpool);
    topic_tree_free(&hub->topics);
    hub__ns_free(hub);
}

static bool hub__name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.' || c == '~' || c == ':' || c == '@' || c == '=' || c == '!';
}

bool hub_channel_valid(const char *name, size_t n)
{
    /* a leading '/' is MQTT's empty first level ("/TopicA", common in the wild): allowed, as one
     * '/' before a real level; other empty levels ("a//b", "a/") are not */
    if (n == 0 || n > HUB_MAX_CHANNEL || name[0] == '$' || name[n - 1] == '/') return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/') {
            if (name[i + 1] == '/') return false; /* empty segment (i + 1 < n: last char is not '/') */
            continue;
        }
        if (!hub__name_char(c)) return false;
    }
    /* "." and ".." segments would read as paths to humans and proxies: refuse them */
    size_t seg = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || name[i] == '/') {
            size_t len = i - seg;
            if ((len == 1 && name[seg] == '.') || (len == 2 && name[seg] == '.' && name[seg + 1] == '.')) return false;
            seg = i + 1;
        }
    }
    return true;
}

bool hub_event_valid(const char *e, size_t n)
{
    if (n == 0 || n > HUB_MAX_EVENT) return false;
    for (size_t i = 0; i < n; i++) {
        char c = e[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.' || c == ':'))
            return false;
    }
    return true;
}

chan_t *hub_channel(hub_t *hub, const char *name, size_t n, bool create)
{
    uint64_t h = hmap_hash(&hub->chans, name, n);
    chan_t *found = hub__chan(hmap_find(&hub->chans, h, name, n));
    if (found || !create) return found;
    if (hub->max_channels && hub->nchannels >= hub->max_channels) {
        if (!hub->channels_refused++)
            log_warn("hub: %u channels: max_channels reached, new channels are refused until idle ones expire",
                     hub->nchannels);
        hub->load_rc = HR_EFULL;
        return NULL;
    }
    hub->load_rc = HR_ENOMEM;
    chan_t *ch = calloc(1, sizeof(*ch) + n + 1);
    if (!ch) return NULL;
    memcpy(ch->name, name, n);
    ch->name_len = (uint32_t)n;
    hist_init(&ch->hist);
    hist_join(&ch->hist, &hub->hpool);
    ch->lim = hub_ns_limits(hub, ch->name, n, NULL);
    ch->hist.pinned = hub__ns_pinned(hub, ch->lim);
    list_init(&ch->subs);
    int rc = hub->store->ops->load(hub->store, ch->name, n, &ch->hist, ch->lim, &ch->last_id);
    if (rc < 0) {
        hub->load_rc = rc;
        hub__free_chan(ch);
        return NULL;
    }
    if (rc == STORE_LOADING) ch->loading = 1; /* hub_loaded() ends it */
    ch->kept_from = 1; /* the first trim check drops whatever the limits no longer keep */
    hmap_insert(&hub->chans, &ch->node, h);
    hub->nchannels++;
    return ch;
}

/* Sets (m, referenced by the channel) or clears (m NULL) ch's retained message in memory (the
 * store heard of it with the publish, or is where it came from). */
void hub__retain(hub_t *hub, chan_t *ch, msg_t *m)
{
    if (ch->retained) {
        hub->retained_bytes -= msg_cost(ch->retained);
        msg_unref(ch->retained);
        hub->nretained--;
    }
    ch->retained = m ? msg_ref(m) : NULL;
    if (m) {
        hub->nretained++;
        hub->retained_bytes += msg_cost(m);
    }
}

typedef struct {
    msg_t *m;
    uint32_t n;
} hub__tmatch_t;

static void hub__tdeliver(topic_entry_t *e, void *arg)
{
    hub__tmatch_t *tm = arg;
    hub_tsub_t *t = container_of(e, hub_tsub_t, e);
    t->deliver(t, tm->m);
    tm->n++;
}

/* Records m (committed, its id assigned) in ch's history and delivers it to the channel's
 * subscribers and the matching MQTT filters. Returns the subscribers reached. */
static uint32_t hub__accept(hub_t *hub, chan_t *ch, msg_t *m)
{
    if (hist_push(&ch->hist, m, ch->lim, loop_wall_ms()) < 0) {
        /* stored, but no memory to keep it here: the ring restarts after it (resumes get a gap) */
        log_warn("hub: message %llu on %.*s not kept in memory: out of memory", (unsigned long long)m->id,
                 (int)ch->name_len, ch->name);
        hub_rebase(hub, ch, m->id);
    }
    hub__trimmed(hub, ch);
    hub__fit_history(hub);
    ch->last_id = m->id;
    if (ch->next_id <= m->id) ch->next_id = m->id + 1;
    if (m->flags & MSG_WITHDRAWN) return 0; /* a shared engine's tombstone: kept in place, never delivered */
    hub->published++;
    uint32_t n = 0;
    list_node_t *pos, *tmp;
    list_each_safe(pos, tmp, &ch->subs)
    {
        sub_t *s = container_of(pos, sub_t, link);
        s->deliver(s, m);
        n++;
    }
    hub__tmatch_t tm = {m, 0};
    if (topic_count(&hub->topics)) topic_match(&hub->topics, ch->name, ch->name_len, hub__tdeliver, &tm);
    if (m->flags & MSG_RETAIN) hub__retain(hub, ch, m->data_len ? m : NULL);
    if (hub->obs) hub->obs->changed(hub->obs->arg, ch);
    return n + tm.n;
}


msg_t *hub_pend_msg(hub_pend_t *p) { return p->m; }

void hub_published(hub_t *hub, hub_pend_t *p, int rc)
{
    p->rc = rc;
    p->done = true;
    hub->loop->wake = true; /* reported at the next hub_commit */
}

/* The store refuses writes (rc): publishes are refused at once until a probe succeeds. */
static void hub__fault(hub_t *hub, int rc)
{
    uint64_t now = hub->loop->now_ms;
    if (!hub->store_fault) {
        hub->fault_since_ms = now;
        log_error("store: %s: publishes are refused until it can write again (retrying every second)",
                  rc == HR_ESTOREFULL ? "full (no room on disk or in store_map_size)" : hr_strerror(rc));
    }
    hub->store_fault = rc;
    hub->probe_at_ms = now + 1000;
}

static void hub__recovered(hub_t *hub)
{
    log_info("store: writing again after %llu ms; %llu publishes were refused or failed",
             (unsigned long long)(hub->loop->now_ms - hub->fault_since_ms), (unsigned long long)hub->publishes_failed);
    hub->store_fault = 0;
}

void hub_set_limits(hub_t *hub, uint32_t max_retained, uint64_t max_retained_bytes, uint64_t max_hist_bytes,
                    bool hist_refuse)
{
    hub->max_retained = max_retained;
    hub->max_retained_bytes = max_retained_bytes;
    hub->max_hist_bytes = max_hist_bytes;
    hub->hist_refuse = hist_refuse;
    hub->hpool.ordered = max_hist_bytes && !hist_refuse; /* only trimming needs the oldest of all */
}

/* The ceilings a publish of cost bytes (msg_cost) to ch must fit: HR_EHISTFULL (history_policy
 * = refuse and every history together, with what waits for its commit, would pass
 * max_hist_bytes) or HR_ERETAINED (a retained message that would pass max_retained or
 * max_retained_bytes; clearing one is always allowed), counted and logged once; else 0. */
static int hub__admit(hub_t *hub, const chan_t *ch, uint64_t cost, bool retain)
{
    if (hub->max_hist_bytes && hub->hist_refuse && ch->lim->max_messages &&
        hub->hpool.bytes + hub->hist_pend_bytes + cost > hub->max_hist_bytes) {
        if (!hub->hist_refused++)
            log_warn("limits: history memory at max_history_memory (%llu bytes): publishes are refused until "
                     "history ages out (history_policy = refuse; counted in herald_limit_hits_total, not logged "
                     "again)", (unsigned long long)hub->max_hist_bytes);
        return HR_EHISTFULL;
    }
    if (!retain) return 0;
    bool counted = ch->retained || ch->retain_pend; /* replaces a retained message: no new one */
    uint64_t count = (uint64_t)hub->nretained + hub->retained_pend_new + (counted ? 0 : 1);
    uint64_t old = ch->retained ? msg_cost(ch->retained) : 0; /* goes when it is replaced */
    uint64_t bytes = hub->retained_bytes + hub->retained_pend_bytes + cost - old;
    bool over_count = hub->max_retained && count > hub->max_retained;
    if (over_count || (hub->max_retained_bytes && bytes > hub->max_retained_bytes)) {
        if (!hub->retained_refused && !hub->retained_bytes_refused)
            log_warn("limits: %s reached (%u retained messages, %llu bytes, with those waiting for their commit): "
                     "new retained messages are refused (counted in herald_limit_hits_total, not logged again)",
                     over_count ? "max_retained" : "max_retained_bytes", hub->nretained + hub->retained_pend_new,
                     (unsigned long long)(hub->retained_bytes + hub->retained_pend_bytes));
        if (over_count) hub->retained_refused++;
        else hub->retained_bytes_refused++;
        return HR_ERETAINED;
    }
    return 0;
}

/* A publish waits for its commit: what it will add counts against the ceilings now. */
static void hub__pend_add(hub_t *hub, chan_t *ch, const msg_t *m)
{
    hub->hist_pend_bytes += msg_cost(m);
    if (!(m->flags & MSG_RETAIN) || !m->data_len) return;
    hub->retained_pend_bytes += msg_cost(m);
    if (ch->retain_pend++ == 0 && !ch->retained) {
        ch->retain_new = true;
        hub->retained_pend_new++;
    }
}

/* The commit of a publish is over (done or failed): it no longer waits. */
static void hub__pend_done(hub_t *hub, chan_t *ch, const msg_t *m)
{
    hub->hist_pend_bytes -= msg_cost(m);
    if (!(m->flags & MSG_RETAIN) || !m->data_len) return;
    hub->retained_pend_bytes -= msg_cost(m);
    if (--ch->retain_pend == 0 && ch->retain_new) {
        ch->retain_new = false;
        hub->retained_pend_new--;
    }
}

int hub_publish_async(hub_t *hub, const char *channel, size_t channel_len, const char *event, size_t event_len,
                      const void *data, size_t data_len, const hub_pubopt_t *o, hub_done_cb cb, void *arg)
{
    if (hub->store_fault) {
        if (hub->loop->now_ms < hub->probe_at_ms) {
            hub->publishes_failed++;
            return hub->store_fault;
        }
        hub->probe_at_ms = hub->loop->now_ms + 1000; /* this one is the probe; the next in a second */
    }
    chan_t *ch = hub_channel(hub, channel, channel_len, true);
    if (!ch) return hub->load_rc < 0 ? hub->load_rc : HR_ENOMEM;
    if (ch->next_id <= ch->last_id) ch->next_id = ch->last_id + 1;
    int lrc = hub__admit(hub, ch, (uint64_t)channel_len + event_len + data_len + sizeof(msg_t),
                         (o->flags & MSG_RETAIN) && data_len);
    if (lrc < 0) return lrc;
    if (hub->gate && (lrc = hub->gate(hub->gate_arg, ch)) < 0) return lrc;
    hub_pend_t *p = calloc(1, sizeof(*p));
    if (p) p->t0_us = histo_now_us();
    msg_t *m = p ? msg_new(ch->name, ch->name_len, event, event_len, data, data_len, ch->next_id, loop_wall_ms()) : NULL;
    if (!m || msg_set_props(m, o->props, o->props_len) < 0) {
        if (m) msg_unref(m);
        free(p);
        return HR_ENOMEM;
    }
    m->flags |= o->flags;
    m->expiry_s = o->expiry_s;
    m->origin = o->origin;
    *p = (hub_pend_t){.ch = ch, .m = m, .cb = cb, .arg = arg, .ordered = hub->engine != NULL};
    int rc;
    if (p->ordered) { /* ordered by the engine across nodes; delivered through hub_inject() */
        rc = hub->engine->ops->publish(hub->engine, ch, p);
    } else {
        rc = hub->store->ops->append(hub->store, m);
        if (rc == 0 && (m->flags & MSG_RETAIN) && hub->store->ops->retain)
            rc = hub->store->ops->retain(hub->store, m->data_len ? m : NULL, ch->name, ch->name_len);
    }
    if (rc < 0) {
        /* a local store that cannot write (Redis has its own reconnection and answers each) */
        if (!p->ordered && (rc == HR_ESTOREFULL || rc == HR_EUNAVAIL || rc == HR_EIO)) {
            hub__fault(hub, rc);
            hub->batch_refused = true; /* this batch's commit does not prove the store recovered */
        }
        if (rc == HR_ESTOREFULL || rc == HR_EUNAVAIL || rc == HR_EIO) hub->publishes_failed++;
        msg_unref(m);
        free(p);
        return rc;
    }
    if (!p->ordered) ch->next_id++;
    ch->npending++;
    hub__pend_add(hub, ch, m);
    hub->npend++;
    *hub->pend_tail = p;
    hub->pend_tail = &p->next;
    hub->loop->wake = true;
    return 0;
}

int hub_when_committed(hub_t *hub, void (*cb)(void *arg, int rc), void *arg)
{
    struct hub_waiter *w = malloc(sizeof(*w));
    if (!w) return HR_ENOMEM;
    *w = (struct hub_waiter){NULL, cb, arg};
    if (!hub->waiters) hub->waiters_tail = &hub->waiters;
    *hub->waiters_tail = w;
    hub->waiters_tail = &w->next;
    hub->loop->wake = true;
    return 0;
}

void hub_cancel(hub_t *hub, void *arg)
{
    for (hub_pend_t *p = hub->pend_head; p; p = p->next)
        if (p->arg == arg) p->cb = NULL;
    for (struct hub_waiter *w = hub->waiters; w; w = w->next)
        if (w->arg == arg) w->cb = NULL;
}

int hub_commit(hub_t *hub)
{
    /* the batch is what waits now: publishes made by the callbacks below (a pipelined request
     * answered, then the next one parsed) go to the store's next commit, not this one */
    hub_pend_t *batch = hub->pend_head;
    hub->pend_head = NULL;
    hub->pend_tail = &hub->pend_head;
    struct hub_waiter *ws = hub->waiters;
    hub->waiters = NULL;
    uint64_t t0 = histo_now_us();
    int rc = hub->store->ops->flush ? hub->store->ops->flush(hub->store) : 0;
    uint64_t t1 = histo_now_us();
    if (hub->store->ops->flush && (batch || ws)) histo_observe(&hub->commit_lat, t1 - t0);
    bool local = false;
    hub_pend_t *p;
    while ((p = batch) && (!p->ordered || p->done)) {
        batch = p->next;
        hub->npend--;
        chan_t *ch = p->ch;
        ch->npending--;
        hub__pend_done(hub, ch, p->m);
        int prc = p->ordered ? p->rc : rc;
        uint32_t reached = 0;
        if (prc < 0) {
            hub->publishes_failed++;
            if (!p->ordered) ch->next_id = ch->last_id + 1; /* nothing of the batch is stored */
        } else if (p->ordered) {
            reached = ch->nsubs;
        } else {
            reached = hub__accept(hub, ch, p->m);
        }
        if (prc == 0) histo_observe(&hub->publish_lat, t1 - p->t0_us);
        local |= !p->ordered || prc == 0; /* an engine recovers with a publish that went through */
        if (p->cb) p->cb(p->arg, prc, p->m, reached);
        msg_unref(p->m);
        free(p);
    }
    /* the other writes of the commit, in the order they were made */
    while (ws) {
        struct hub_waiter *w = ws;
        ws = w->next;
        if (w->cb) w->cb(w->arg, rc);
        free(w);
    }
    if (batch) { /* store publishes still waiting for their backend: back in front, in order */
        hub_pend_t **t = &batch;
        while (*t) t = &(*t)->next;
        if (!(*t = hub->pend_head)) hub->pend_tail = t;
        hub->pend_head = batch;
    }
    if (rc < 0) {
        hub->commits_failed++;
        hub__fault(hub, rc);
    } else if (hub->store_fault && local && !hub->batch_refused) {
        hub__recovered(hub);
    }
    hub->batch_refused = false;
    return rc;
}

typedef struct {
    int rc;
    uint64_t id;
    uint32_t reached;
} hub__sync_t;

static void hub__sync_done(void *arg, int rc, const msg_t *m, uint32_t reached)
{
    hub__sync_t *r = arg;
    r->rc = rc;
    r->id = rc == 0 ? m->id : 0;
    r->reached = reached;
}

int hub_publish(hub_t *hub, const char *channel, size_t channel_len, const char *event, size_t event_len,
                const void *data, size_t data_len, uint64_t *id, uint32_t *reached)
{
    hub_pubopt_t o = {.flags = MSG_FROM_HTTP};
    hub__sync_t r = {HR_EAGAIN, 0, 0};
    int rc = hub_publish_async(hub, channel, channel_len, event, event_len, data, data_len, &o, hub__sync_done, &r);
    if (rc < 0) return rc;
    hub_commit(hub);
    if (r.rc == HR_EAGAIN) { /* a store still waiting for its backend */
        hub_cancel(hub, &r);
        return HR_EUNAVAIL;
    }
    *id = r.id;
    *reached = r.reached;
    return r.rc;
}

/* Keeps m until ch's hold ends: in id order, once per id; a full hold drops its oldest (the
 * release then restarts the ring after the hole: resuming clients are told about the gap). */
static void hub__hold_msg(hub_t *hub, chan_t *ch, msg_t *m)
{
    struct hub_held *h = ch->held;
    uint32_t max = ch->lim->max_messages > 1024 ? ch->lim->max_messages : 1024;
    if (h && h->n == max) {
        if (!hub->held_dropped++)
            log_warn("hub: %.*s: more than %u messages arrived while the store was loading it: the oldest are "
                     "dropped (herald_hold_dropped_total; not logged again)",
                     (int)ch->name_len, ch->name, max);
        msg_unref(h->m[0]);
        memmove(h->m, h->m + 1, --h->n * sizeof(*h->m));
    }
    if (!h || h->n == h->cap) {
        uint32_t cap = h ? h->cap * 2 : 8;
        if (cap > max) cap = max;
        struct hub_held *g = realloc(h, sizeof(*g) + cap * sizeof(g->m[0]));
        if (!g) {
            log_warn("hub: message %llu on %.*s dropped: out of memory", (unsigned long long)m->id, (int)ch->name_len,
                     ch->name);
            return;
        }
        if (!h) g->n = 0;
        g->cap = cap;
        ch->held = h = g;
    }
    uint32_t i = h->n;
    while (i > 0 && h->m[i - 1]->id > m->id) i--;
    if (i > 0 && h->m[i - 1]->id == m->id) return; /* twice (its publish's answer and the feed) */
    memmove(h->m + i + 1, h->m + i, (h->n - i) * sizeof(*h->m));
    h->m[i] = msg_ref(m);
    h->n++;
}

static void hub__inject_now(hub_t *hub, chan_t *ch, msg_t *m)
{
    if (m->id <= ch->last_id) return; /* already here (e.g. loaded with the channel's history) */
    if (m->id > ch->last_id + 1) hub_rebase(hub, ch, m->id - 1); /* a ring holds contiguous ids */
    hub__accept(hub, ch, m);
}

void hub_inject(hub_t *hub, chan_t *ch, msg_t *m)
{
    if (ch->loading) hub__hold_msg(hub, ch, m);
    else hub__inject_now(hub, ch, m);
}

static void hub__resync(hub_t *hub, chan_t *ch)
{
    chan_t *outer = hub->resyncing;
    hub->resyncing = ch;
    list_node_t *pos, *tmp;
    list_each_safe(pos, tmp, &ch->subs)
    {
        sub_t *s = container_of(pos, sub_t, link);
        if (s->resync) s->resync(s);
    }
    hub->resyncing = outer;
    if (hub->obs) hub->obs->changed(hub->obs->arg, ch);
}

void hub_hold(hub_t *hub, chan_t *ch)
{
    (void)hub;
    ch->loading++;
}

void hub_fill(hub_t *hub, chan_t *ch, msg_t *m) { hub__inject_now(hub, ch, m); }

void hub_release(hub_t *hub, chan_t *ch)
{
    if (!ch->loading || --ch->loading) return;
    hub__resync(hub, ch); /* those told "loading" replay now, before anything newer */
    struct hub_held *h = ch->held;
    ch->held = NULL;
    for (uint32_t i = 0; h && i < h->n; i++) {
        /* a hole (e.g. this node's publish was answered before the feed brought the ones before
         * it): the store fills it, holding the channel again, and the rest waits once more */
        if (h->m[i]->id > ch->last_id + 1 && !ch->loading && hub->engine && hub->engine->ops->catch_up)
            hub->engine->ops->catch_up(hub->engine, ch);
        hub_inject(hub, ch, h->m[i]);
        msg_unref(h->m[i]);
    }
    free(h);
}

void hub_loaded(hub_t *hub, chan_t *ch, uint64_t last_id, msg_t **msgs, uint32_t n)
{
    hub_rebase(hub, ch, 0);
    uint64_t now = loop_wall_ms();
    for (uint32_t i = 0; i < n; i++) {
        if (ch->hist.count && msgs[i]->id != ch->last_id + 1) hub_rebase(hub, ch, 0); /* contiguous ids only */
        if (hist_push(&ch->hist, msgs[i], ch->lim, now) < 0) hub_rebase(hub, ch, 0);
        ch->last_id = msgs[i]->id;
    }
    if (last_id > ch->last_id) hub_rebase(hub, ch, last_id); /* kept nothing up to it */
    if (ch->next_id <= ch->last_id) ch->next_id = ch->last_id + 1;
    hub__trimmed(hub, ch);
    hub_release(hub, ch);
}

void hub_reset(hub_t *hub, chan_t *ch, uint64_t last_id)
{
    hub_rebase(hub, ch, last_id);
    ch->next_id = last_id + 1;
    hub__drop_held(ch);
    if (!ch->loading) hub__resync(hub, ch);
}

int hub_topic_subscribe(hub_t *hub, hub_tsub_t *t, const char *f, size_t n)
{
    return topic_subscribe(&hub->topics, &t->e, f, n);
}

void hub_topic_unsubscribe(hub_t *hub, hub_tsub_t *t) { topic_unsubscribe(&hub->topics, &t->e); }

uint32_t hub_topic_deliver(hub_t *hub, msg_t *m)
{
    hub__tmatch_t tm = {m, 0};
    if (topic_count(&hub->topics)) topic_match(&hub->topics, m->channel, m->channel_len, hub__tdeliver, &tm);
    return tm.n;
}

static int hub__restore_one(void *arg, msg_t *m)
{
    hub_t *hub = arg;
    chan_t *ch = hub_channel(hub, m->channel, m->channel_len, true);
    if (!ch) return HR_ENOMEM;
    hub__retain(hub, ch, m);
    return 0;
}

int hub_restore(hub_t *hub)
{
    return hub->store->ops->each_retained ? hub->store->ops->each_retained(hub->store, hub__restore_one, hub) : 0;
}

msg_t *hub_message(hub_t *hub, const char *channel, size_t n, uint64_t id)
{
    chan_t *ch = hub_channel(hub, channel, n, true);
    if (!ch || !ch->hist.count) return NULL;
    uint32_t i = hist_index_after(&ch->hist, id - 1);
    msg_t *m = i < ch->hist.count ? hist_at(&ch->hist, i) : NULL;
    return m && m->id == id && !(m->flags & MSG_WITHDRAWN) && !msg_expired(m, loop_wall_ms()) ? m : NULL;
}

void hub_each_channel(hub_t *hub, void (*cb)(chan_t *ch, void *arg), void *arg)
{
    hmap_iter_t it;
    hmap_iter_init(&it, &hub->chans);
    for (chan_t *ch; (ch = hub__chan(hmap_iter_next(&it)));) cb(ch, arg);
}

void hub_rebase(hub_t *hub, chan_t *ch, uint64_t last_id)
{
    (void)hub;
    hist_free(&ch->hist); /* empty, and still counted in the hub's pool */
    ch->kept_from = 1;
    ch->last_id = last_id;
}

void hub_each_retained(hub_t *hub, void (*cb)(chan_t *ch, void *arg), void *arg)
{
    if (!hub->nretained) return;
    hmap_iter_t it;
    hmap_iter_init(&it, &hub->chans);
    for (chan_t *ch; (ch = hub__chan(hmap_iter_next(&it)));)
        if (ch->retained) cb(ch, arg);
}

void hub_subscribe(hub_t *hub, chan_t *ch, sub_t *s)
{
    s->ch = ch;
    list_push_back(&ch->subs, &s->link);
    ch->nsubs++;
    hub->subscriptions++;
    if (hub->obs) hub->obs->subscribed(hub->obs->arg, ch, s, true);
}

void hub_trim(hub_t *hub, chan_t *ch)
{
    hist_trim(&ch->hist, ch->lim, loop_wall_ms());
    hub__trimmed(hub, ch);
}

void hub_trim_upto(hub_t *hub, chan_t *ch, uint64_t id)
{
    hist_t *h = &ch->hist;
    while (h->count && hist_at(h, 0)->id <= id) hist_drop_oldest(h);
    hub__trimmed(hub, ch);
}

void hub_watch(hub_t *hub, chan_t *ch, int delta)
{
    (void)hub;
    ch->nwatch = (uint32_t)((int64_t)ch->nwatch + delta);
}

void hub_unsubscribe(hub_t *hub, sub_t *s)
{
    if (!s->ch || !list_linked(&s->link)) return;
    if (hub->obs) hub->obs->subscribed(hub->obs->arg, s->ch, s, false);
    list_unlink(&s->link);
    s->ch->nsubs--;
    hub->subscriptions--;
    s->ch = NULL;
}

uint32_t hub_after(hub_t *hub, chan_t *ch, uint64_t cursor, msg_t **out, uint32_t max, hub_cursor_info_t *info)
{
    /* a cursor past what this node holds: a store shared with other nodes may have more (once:
     * not again while the subscribers of the channel it just brought up to date resync) */
    if (!ch->loading && cursor > ch->last_id && hub->resyncing != ch && hub->engine && hub->engine->ops->catch_up)
        hub->engine->ops->catch_up(hub->engine, ch);
    if (ch->loading) { /* the store is bringing it up to date: the caller replays when resynced */
        *info = (hub_cursor_info_t){.loading = true, .first_available = cursor + 1, .last_id = cursor};
        return 0;
    }
    hub_trim(hub, ch);
    hist_t *h = &ch->hist;
    info->loading = false;
    info->last_id = ch->last_id;
    info->first_available = h->count ? hist_at(h, 0)->id : ch->last_id + 1;
    info->gap = cursor > ch->last_id || cursor + 1 < info->first_available;
    uint32_t i = cursor > ch->last_id ? 0 : hist_index_after(h, cursor);
    uint32_t n = 0;
    uint64_t now = loop_wall_ms();
    for (; i < h->count && n < max; i++) { /* expired behind a live one, or withdrawn: skipped */
        msg_t *m = hist_at(h, i);
        if (!(m->flags & MSG_WITHDRAWN) && (!m->expiry_s || !msg_expired(m, now))) out[n++] = m;
    }
    return n;
}
