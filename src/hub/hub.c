/* hub.c - channel table, publish and fan-out; see hub.h. The channel table is a chained hash
 * table (SipHash-2-4 with a random key: names are chosen by clients) that doubles when it gets
 * full; a sweep every few seconds applies history age limits and frees channels that have
 * neither subscribers nor history. */
#include "hub.h"

#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"
#include "../core/siphash.h"

#define HUB_SWEEP_MS 5000

struct hub_pend {
    hub_pend_t *next;
    chan_t *ch;
    msg_t *m;
    hub_done_cb cb; /* NULL: nobody waits (or cancelled) */
    void *arg;
    int rc;       /* ordered by the store: its outcome, once done */
    bool ordered; /* ordered by the store (ops->publish); else waits for the local commit */
    bool done;    /* ordered: hub_published was called */
};

/* Channel names are chosen by clients: the table hashes them with a random key (siphash.h). */
static uint64_t hub__hash(const hub_t *hub, const char *s, size_t n) { return siphash24(&hub->hkey, s, n); }

static void hub__free_chan(chan_t *ch)
{
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

static void hub__sweep(tw_entry_t *e)
{
    hub_t *hub = container_of(e, hub_t, sweep);
    uint64_t now = loop_wall_ms();
    for (uint32_t i = 0; i < hub->table_cap; i++) {
        chan_t **pp = &hub->table[i];
        while (*pp) {
            chan_t *ch = *pp;
            hist_trim(&ch->hist, &hub->limits, now);
            hub__trimmed(hub, ch);
            if (ch->nsubs == 0 && ch->hist.count == 0 && !ch->retained && !ch->npending) {
                *pp = ch->hnext;
                hub->nchannels--;
                hub__free_chan(ch);
                continue;
            }
            pp = &ch->hnext;
        }
    }
    loop_timer(hub->loop, &hub->sweep, HUB_SWEEP_MS);
}

int hub_init(hub_t *hub, loop_t *loop, store_t *store, const hist_limits_t *limits)
{
    memset(hub, 0, sizeof(*hub));
    hub->loop = loop;
    hub->store = store;
    hub->limits = *limits;
    sip_key_random(&hub->hkey);
    hub->table_cap = 1024;
    hub->table = calloc(hub->table_cap, sizeof(*hub->table));
    if (!hub->table) return HR_ENOMEM;
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
    for (uint32_t i = 0; i < hub->table_cap; i++) {
        chan_t *ch = hub->table[i];
        while (ch) {
            chan_t *next = ch->hnext;
            hub__free_chan(ch);
            ch = next;
        }
    }
    free(hub->table);
    hub->table = NULL;
    topic_tree_free(&hub->topics);
}

static bool hub__name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.' || c == '~' || c == ':' || c == '@' || c == '=' || c == '!';
}

bool hub_channel_valid(const char *name, size_t n)
{
    if (n == 0 || n > HUB_MAX_CHANNEL || name[0] == '$' || name[0] == '/' || name[n - 1] == '/') return false;
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

static int hub__grow(hub_t *hub)
{
    uint32_t ncap = hub->table_cap * 2;
    chan_t **nt = calloc(ncap, sizeof(*nt));
    if (!nt) return HR_ENOMEM;
    for (uint32_t i = 0; i < hub->table_cap; i++) {
        chan_t *ch = hub->table[i];
        while (ch) {
            chan_t *next = ch->hnext;
            ch->hnext = nt[ch->hash & (ncap - 1)];
            nt[ch->hash & (ncap - 1)] = ch;
            ch = next;
        }
    }
    free(hub->table);
    hub->table = nt;
    hub->table_cap = ncap;
    return 0;
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
    uint64_t h = hub__hash(hub, name, n);
    for (chan_t *ch = hub->table[h & (hub->table_cap - 1)]; ch; ch = ch->hnext)
        if (ch->hash == h && ch->name_len == n && memcmp(ch->name, name, n) == 0) return ch;
    if (!create) return NULL;
    if (hub->max_channels && hub->nchannels >= hub->max_channels) {
        if (!hub->channels_refused++)
            log_warn("hub: %u channels: max_channels reached, new channels are refused until idle ones expire",
                     hub->nchannels);
        hub->load_rc = HR_EFULL;
        return NULL;
    }
    hub->load_rc = HR_ENOMEM;
    if (hub->nchannels >= hub->table_cap && hub__grow(hub) < 0) return NULL;
    chan_t *ch = calloc(1, sizeof(*ch) + n + 1);
    if (!ch) return NULL;
    memcpy(ch->name, name, n);
    ch->name_len = (uint32_t)n;
    ch->hash = h;
    hist_init(&ch->hist);
    list_init(&ch->subs);
    int rc = hub->store->ops->load(hub->store, ch->name, n, &ch->hist, &hub->limits, &ch->last_id);
    if (rc < 0) {
        hub->load_rc = rc;
        hub__free_chan(ch);
        return NULL;
    }
    ch->kept_from = 1; /* the first trim check drops whatever the limits no longer keep */
    uint32_t b = (uint32_t)(h & (hub->table_cap - 1));
    ch->hnext = hub->table[b];
    hub->table[b] = ch;
    hub->nchannels++;
    return ch;
}

/* Sets (m, referenced by the channel) or clears (m NULL) ch's retained message in memory (the
 * store heard of it with the publish, or is where it came from). */
static void hub__retain(hub_t *hub, chan_t *ch, msg_t *m)
{
    if (ch->retained) {
        msg_unref(ch->retained);
        hub->nretained--;
    }
    ch->retained = m ? msg_ref(m) : NULL;
    if (m) hub->nretained++;
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
    if (hist_push(&ch->hist, m, &hub->limits, loop_wall_ms()) < 0) {
        /* stored, but no memory to keep it here: the ring restarts after it (resumes get a gap) */
        log_warn("hub: message %llu on %.*s not kept in memory: out of memory", (unsigned long long)m->id,
                 (int)ch->name_len, ch->name);
        hub_rebase(hub, ch, m->id);
    }
    hub__trimmed(hub, ch);
    ch->last_id = m->id;
    if (ch->next_id <= m->id) ch->next_id = m->id + 1;
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
    hub_pend_t *p = calloc(1, sizeof(*p));
    msg_t *m = p ? msg_new(ch->name, ch->name_len, event, event_len, data, data_len, ch->next_id, loop_wall_ms()) : NULL;
    if (!m || msg_set_props(m, o->props, o->props_len) < 0) {
        if (m) msg_unref(m);
        free(p);
        return HR_ENOMEM;
    }
    m->flags |= o->flags;
    m->expiry_s = o->expiry_s;
    m->origin = o->origin;
    *p = (hub_pend_t){.ch = ch, .m = m, .cb = cb, .arg = arg, .ordered = hub->store->ops->publish != NULL};
    int rc;
    if (p->ordered) { /* ordered by the store across nodes; delivered through hub_inject() */
        rc = hub->store->ops->publish(hub->store, ch, p);
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
    hub->npend++;
    *hub->pend_tail = p;
    hub->pend_tail = &p->next;
    hub->loop->wake = true;
    return 0;
}

void hub_cancel(hub_t *hub, void *arg)
{
    for (hub_pend_t *p = hub->pend_head; p; p = p->next)
        if (p->arg == arg) p->cb = NULL;
}

int hub_commit(hub_t *hub)
{
    int rc = hub->store->ops->flush ? hub->store->ops->flush(hub->store) : 0;
    bool local = false;
    hub_pend_t *p;
    while ((p = hub->pend_head) && (!p->ordered || p->done)) {
        if (!(hub->pend_head = p->next)) hub->pend_tail = &hub->pend_head;
        hub->npend--;
        chan_t *ch = p->ch;
        ch->npending--;
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
        local |= !p->ordered;
        if (p->cb) p->cb(p->arg, prc, p->m, reached);
        msg_unref(p->m);
        free(p);
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

void hub_inject(hub_t *hub, chan_t *ch, msg_t *m)
{
    if (m->id <= ch->last_id) return; /* already here (e.g. loaded with the channel's history) */
    if (m->id > ch->last_id + 1) hub_rebase(hub, ch, m->id - 1); /* a ring holds contiguous ids */
    hub__accept(hub, ch, m);
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
    return i < ch->hist.count && hist_at(&ch->hist, i)->id == id ? hist_at(&ch->hist, i) : NULL;
}

void hub_each_channel(hub_t *hub, void (*cb)(chan_t *ch, void *arg), void *arg)
{
    for (uint32_t i = 0; i < hub->table_cap; i++)
        for (chan_t *ch = hub->table[i], *next; ch; ch = next) {
            next = ch->hnext;
            cb(ch, arg);
        }
}

void hub_rebase(hub_t *hub, chan_t *ch, uint64_t last_id)
{
    (void)hub;
    hist_free(&ch->hist);
    hist_init(&ch->hist);
    ch->kept_from = 1;
    ch->last_id = last_id;
}

void hub_each_retained(hub_t *hub, void (*cb)(chan_t *ch, void *arg), void *arg)
{
    if (!hub->nretained) return;
    for (uint32_t i = 0; i < hub->table_cap; i++)
        for (chan_t *ch = hub->table[i]; ch; ch = ch->hnext)
            if (ch->retained) cb(ch, arg);
}

void hub_subscribe(hub_t *hub, chan_t *ch, sub_t *s)
{
    s->ch = ch;
    list_push_back(&ch->subs, &s->link);
    ch->nsubs++;
    hub->subscriptions++;
}

void hub_unsubscribe(hub_t *hub, sub_t *s)
{
    if (!s->ch || !list_linked(&s->link)) return;
    list_unlink(&s->link);
    s->ch->nsubs--;
    hub->subscriptions--;
    s->ch = NULL;
}

uint32_t hub_after(hub_t *hub, chan_t *ch, uint64_t cursor, msg_t **out, uint32_t max, hub_cursor_info_t *info)
{
    /* a cursor past what this node holds: a store shared with other nodes may have more */
    if (cursor > ch->last_id && hub->store->ops->catch_up) hub->store->ops->catch_up(hub->store, ch);
    hist_trim(&ch->hist, &hub->limits, loop_wall_ms());
    hub__trimmed(hub, ch);
    hist_t *h = &ch->hist;
    info->last_id = ch->last_id;
    info->first_available = h->count ? hist_at(h, 0)->id : ch->last_id + 1;
    info->gap = cursor > ch->last_id || cursor + 1 < info->first_available;
    uint32_t i = cursor > ch->last_id ? 0 : hist_index_after(h, cursor);
    uint32_t n = 0;
    for (; i < h->count && n < max; i++) out[n++] = hist_at(h, i);
    return n;
}
