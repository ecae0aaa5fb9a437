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
            if (ch->nsubs == 0 && ch->hist.count == 0 && !ch->retained) {
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
    tw_entry_init(&hub->sweep, hub__sweep);
    loop_timer(loop, &hub->sweep, HUB_SWEEP_MS);
    return 0;
}

void hub_close(hub_t *hub)
{
    tw_stop(&hub->loop->wheel, &hub->sweep);
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

/* Sets (m, referenced by the channel) or clears (m NULL) ch's retained message; store: also
 * tell the store. */
static void hub__retain(hub_t *hub, chan_t *ch, msg_t *m, bool store)
{
    if (store && hub->store->ops->retain) hub->store->ops->retain(hub->store, m, ch->name, ch->name_len);
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

/* Records m (its id assigned) in ch's history and delivers it to the channel's subscribers and the
 * matching MQTT filters; store: also hand it to the store (not for messages the store itself
 * ordered and fed back). Returns the subscribers reached, or a negative HR_E*. */
static int64_t hub__accept(hub_t *hub, chan_t *ch, msg_t *m, bool store)
{
    int rc = store ? hub->store->ops->append(hub->store, m) : 0;
    if (rc == 0) rc = hist_push(&ch->hist, m, &hub->limits, loop_wall_ms());
    if (rc < 0) return rc;
    hub__trimmed(hub, ch);
    ch->last_id = m->id;
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
    if (m->flags & MSG_RETAIN) hub__retain(hub, ch, m->data_len ? m : NULL, store);
    return n + tm.n;
}

int hub_publish_ex(hub_t *hub, const char *channel, size_t channel_len, const char *event, size_t event_len,
                   const void *data, size_t data_len, const hub_pubopt_t *o, uint64_t *id, uint32_t *reached)
{
    chan_t *ch = hub_channel(hub, channel, channel_len, true);
    if (!ch) return hub->load_rc < 0 ? hub->load_rc : HR_ENOMEM;
    msg_t *m = msg_new(ch->name, ch->name_len, event, event_len, data, data_len, ch->last_id + 1, loop_wall_ms());
    if (!m) return HR_ENOMEM;
    m->flags |= o->flags;
    m->expiry_s = o->expiry_s;
    if (msg_set_props(m, o->props, o->props_len) < 0) {
        msg_unref(m);
        return HR_ENOMEM;
    }
    int64_t rc;
    if (hub->store->ops->publish) { /* ordered by the store across nodes; delivered through hub_inject() */
        rc = hub->store->ops->publish(hub->store, ch, m);
        if (rc == 0) rc = ch->nsubs;
    } else {
        rc = hub__accept(hub, ch, m, true);
    }
    *id = m->id;
    msg_unref(m);
    if (rc < 0) return (int)rc;
    *reached = (uint32_t)rc;
    return 0;
}

void hub_inject(hub_t *hub, chan_t *ch, msg_t *m)
{
    if (m->id <= ch->last_id) return; /* already here (e.g. loaded with the channel's history) */
    if (m->id > ch->last_id + 1) hub_rebase(hub, ch, m->id - 1); /* a ring holds contiguous ids */
    if (hub__accept(hub, ch, m, false) < 0) log_warn("hub: message %llu on %.*s dropped: out of memory",
                                                     (unsigned long long)m->id, (int)m->channel_len, m->channel);
}

int hub_publish(hub_t *hub, const char *channel, size_t channel_len, const char *event, size_t event_len,
                const void *data, size_t data_len, uint64_t *id, uint32_t *reached)
{
    hub_pubopt_t o = {.flags = MSG_FROM_HTTP};
    return hub_publish_ex(hub, channel, channel_len, event, event_len, data, data_len, &o, id, reached);
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
    hub__retain(hub, ch, m, false);
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
