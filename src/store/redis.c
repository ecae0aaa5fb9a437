/* redis.c - the Redis engine: several herald nodes share channels through one Redis server
 * (engine = redis; see store.h).
 *
 * Ordering. A publish on any node runs one Lua script on Redis that takes the channel's next id
 * (INCR herald:id:CH), appends the message to the channel's stream (XADD herald:s:CH with the id
 * as the stream id, MAXLEN ~ history_messages), keeps or clears the MQTT retained message
 * (HSET/HDEL herald:retained) and publishes it (PUBLISH herald:m:CH "ID PACKED"). Redis runs
 * scripts one at a time, so every node sees the same ids in the same order. The publishing node
 * hands the message to hub_inject() as soon as the script answers (read-your-writes; when its
 * feed is behind it first loads the missing ids), every other node when its pub/sub feed brings
 * it; hub_inject() records and delivers what a node does not have yet, in id order.
 *
 * Connections. Two per node. The feed is a hiredis async connection on herald's own event loop
 * (our adapter below) with one PSUBSCRIBE herald:m:* for the whole node: one subscription
 * however many channels and clients. Everything else goes over a blocking connection (short
 * timeouts, loopback or LAN latency): the publish script, history loads when a channel is first
 * used on this node, gap fills, presence. Blocking keeps the publish path synchronous (the
 * caller gets the id at once); it costs one round trip per publish.
 *
 * Faults. A publish while Redis is unreachable fails with HR_EUNAVAIL (HTTP 503, MQTT reason
 * code): nothing is lost silently. A blocking connection found dead (Redis restarted since its
 * last use) is made again and the command sent once more: if Redis died after running it, that
 * publish could exist twice (at least once, never lost). The feed reconnects with backoff (100 ms doubling to 5 s) and
 * then catches up: for every channel this node knows, the stream entries after its last id are
 * loaded and injected, so subscribers resume without a gap. A message arriving with an id past
 * the next expected one (missed while the feed was down) triggers the same fill first; if the
 * stream no longer has the missing ids (trimmed), the channel's local history restarts at the
 * new message and resuming clients are told about the gap as usual.
 *
 * Presence. Every second each node writes its channels' local subscriber counts to the hash
 * herald:p:NODE (expiring after 3.5 s) and its id to the set herald:nodes; occupancy sums the
 * hashes of the nodes still present, with this node's live count. */
#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "../core/err.h"
#include "../core/log.h"
#include "redis.h"

#define RD_PRESENCE_MS 1000
#define RD_PRESENCE_TTL_MS 3500
#define RD_BACKOFF_MIN_MS 100
#define RD_BACKOFF_MAX_MS 5000
#define RD_FILL_BATCH 1000

static const char RD_SCRIPT[] =
    "local id = redis.call('INCR', KEYS[1])\n"
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], id .. '-1', 'm', ARGV[1])\n"
    "if ARGV[3] == '1' then redis.call('HSET', KEYS[3], ARGV[4], id .. ' ' .. ARGV[1])\n"
    "elseif ARGV[3] == '2' then redis.call('HDEL', KEYS[3], ARGV[4]) end\n"
    "redis.call('PUBLISH', KEYS[4], id .. ' ' .. ARGV[1])\n"
    "return id\n";

typedef struct {
    store_t base;
    hub_t *hub;
    loop_t *loop;
    char host[64];
    int port;
    char node[48];
    uint32_t hist_max;
    redisContext *sync;
    uint64_t sync_retry_at; /* loop ms: no new blocking connect before this */
    redisAsyncContext *feed;
    watcher_t w;
    bool watching, want_read, want_write, feed_ready, closing;
    tw_entry_t retry, presence;
    uint32_t backoff_ms;
    uint64_t load_before; /* rd_load: the feed creates the channel for this id: load only older ones */
    uint64_t publishes, injected, filled;
} rd_t;

/* ---- the blocking connection ---- */

static redisContext *rd__sync(rd_t *r)
{
    if (r->sync) return r->sync;
    if (loop_now(r->loop) < r->sync_retry_at) return NULL;
    struct timeval ct = {0, 300000}, io = {1, 0};
    redisContext *c = redisConnectWithTimeout(r->host, r->port, ct);
    if (!c || c->err) {
        log_warn("redis: cannot connect to %s:%d: %s", r->host, r->port, c ? c->errstr : "out of memory");
        if (c) redisFree(c);
        r->sync_retry_at = loop_now(r->loop) + 250;
        return NULL;
    }
    redisSetTimeout(c, io);
    r->sync = c;
    return c;
}

/* Runs a command on the blocking connection; NULL when Redis is unreachable (the connection is
 * dropped, to be made again later). The caller frees the reply. */
static redisReply *rd__cmd(rd_t *r, int argc, const char **argv, const size_t *len)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh = r->sync == NULL;
        redisContext *c = rd__sync(r);
        if (!c) return NULL;
        redisReply *rep = redisCommandArgv(c, argc, argv, len);
        if (rep) return rep;
        log_warn("redis: %s", c->errstr[0] ? c->errstr : "connection lost");
        redisFree(c);
        r->sync = NULL;
        /* a connection that had gone stale (Redis restarted since) is made again at once, once;
         * a fresh one that fails means Redis is down: no new attempt for a while */
        if (fresh) break;
    }
    r->sync_retry_at = loop_now(r->loop) + 250;
    return NULL;
}

static void rd__key(char *out, size_t cap, const char *kind, const char *ch, size_t n)
{
    snprintf(out, cap, "herald:%s:%.*s", kind, (int)n, ch);
}

/* ---- messages from Redis ---- */

/* "ID PACKED" -> a message of channel ch (NULL when malformed). */
static msg_t *rd__parse(const char *p, size_t n, const char *ch, size_t cn)
{
    const char *sp = memchr(p, ' ', n);
    if (!sp) return NULL;
    uint64_t id = strtoull(p, NULL, 10);
    msg_t *m = msg_unpack(sp + 1, n - (size_t)(sp + 1 - p), ch, cn);
    if (m) m->id = id;
    return m;
}

/* Runs XRANGE on channel ch's stream for ids from..to (to 0: the end), at most count, and calls
 * cb with each message in id order. Returns the entries read, or -1 when Redis cannot be asked. */
static int64_t rd__range(rd_t *r, const char *ch, size_t n, uint64_t from, uint64_t to, uint32_t count,
                         void (*cb)(void *arg, msg_t *m), void *arg)
{
    char key[HUB_MAX_CHANNEL + 16], fs[32], ts[32] = "+", cnt[16];
    rd__key(key, sizeof(key), "s", ch, n);
    snprintf(fs, sizeof(fs), "%" PRIu64 "-0", from);
    if (to) snprintf(ts, sizeof(ts), "%" PRIu64 "-1", to);
    snprintf(cnt, sizeof(cnt), "%u", count);
    const char *argv[] = {"XRANGE", key, fs, ts, "COUNT", cnt};
    size_t len[] = {6, strlen(key), strlen(fs), strlen(ts), 5, strlen(cnt)};
    redisReply *rep = rd__cmd(r, 6, argv, len);
    if (!rep) return -1;
    int64_t k = 0;
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++, k++) {
        redisReply *e = rep->element[i]; /* [id, ["m", PACKED]] */
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[1]->type != REDIS_REPLY_ARRAY ||
            e->element[1]->elements != 2)
            continue;
        redisReply *v = e->element[1]->element[1];
        msg_t *m = msg_unpack(v->str, v->len, ch, n);
        if (!m) continue;
        m->id = strtoull(e->element[0]->str, NULL, 10);
        cb(arg, m);
        msg_unref(m);
    }
    freeReplyObject(rep);
    return k;
}

typedef struct {
    rd_t *r;
    chan_t *ch;
} rd_fill_t;

static void rd__inject_cb(void *arg, msg_t *m)
{
    rd_fill_t *f = arg;
    hub_inject(f->r->hub, f->ch, m);
    f->r->filled++;
}

/* Loads the channel's stream entries after its last id (up to upto - 1; 0: all) and injects
 * them: gap fill and catch-up (ids the stream no longer has make hub_inject restart the ring).
 * Gives up quietly when Redis cannot be asked. */
static void rd__fill(rd_t *r, chan_t *ch, uint64_t upto)
{
    rd_fill_t f = {r, ch};
    while (!upto || ch->last_id + 1 < upto) {
        uint64_t before = ch->last_id;
        if (rd__range(r, ch->name, ch->name_len, before + 1, upto ? upto - 1 : 0, RD_FILL_BATCH, rd__inject_cb, &f) <
                RD_FILL_BATCH ||
            ch->last_id == before)
            return;
    }
}

/* A message from the feed. */
static void rd__on_message(rd_t *r, const redisReply *chan, const redisReply *payload)
{
    static const char pfx[] = "herald:m:";
    if (chan->len <= sizeof(pfx) - 1 || memcmp(chan->str, pfx, sizeof(pfx) - 1) != 0) return;
    const char *name = chan->str + sizeof(pfx) - 1;
    size_t n = chan->len - (sizeof(pfx) - 1);
    if (!hub_channel_valid(name, n)) return;
    msg_t *m = rd__parse(payload->str, payload->len, name, n);
    if (!m) {
        log_warn("redis: malformed message on %.*s", (int)chan->len, chan->str);
        return;
    }
    chan_t *ch = hub_channel(r->hub, name, n, false);
    if (!ch) { /* new here: load its history up to this message, which is then delivered */
        r->load_before = m->id;
        ch = hub_channel(r->hub, name, n, true);
        r->load_before = 0;
        if (!ch) {
            log_warn("redis: message %" PRIu64 " on %.*s dropped: channel not loaded", m->id, (int)n, name);
            msg_unref(m);
            return;
        }
    } else if (m->id <= ch->last_id) {
        /* normally a message this node has already (its own publish, a fill); but one that differs
         * from what this node holds under that id means Redis lost the channel (restarted
         * without persistence) and counts again: start the channel afresh from it */
        msg_t *old = hub_message(r->hub, name, n, m->id);
        if (old && (old->time_ms != m->time_ms || old->data_len != m->data_len ||
                    memcmp(old->data, m->data, m->data_len) != 0)) {
            log_warn("redis: channel %.*s went back to id %" PRIu64 " (redis lost its data?)", (int)n, name, m->id);
            hub_rebase(r->hub, ch, m->id - 1);
        }
    } else if (m->id > ch->last_id + 1) {
        rd__fill(r, ch, m->id); /* missed some: load them first */
    }
    hub_inject(r->hub, ch, m);
    r->injected++;
    msg_unref(m);
}

/* ---- the feed: hiredis async on our loop ---- */

static void rd__schedule(rd_t *r);

static void rd__ev(rd_t *r)
{
    if (!r->feed) return;
    uint32_t ev = (r->want_read ? EPOLLIN : 0) | (r->want_write ? EPOLLOUT : 0);
    r->w.fd = r->feed->c.fd;
    if (!r->watching) {
        if (loop_watch(r->loop, &r->w, ev) == 0) r->watching = true;
    } else {
        loop_modify(r->loop, &r->w, ev);
    }
}
static void rd__add_read(void *p) { ((rd_t *)p)->want_read = true, rd__ev(p); }
static void rd__del_read(void *p) { ((rd_t *)p)->want_read = false, rd__ev(p); }
static void rd__add_write(void *p) { ((rd_t *)p)->want_write = true, rd__ev(p); }
static void rd__del_write(void *p) { ((rd_t *)p)->want_write = false, rd__ev(p); }
static void rd__cleanup(void *p)
{
    rd_t *r = p;
    if (r->watching) loop_unwatch(r->loop, &r->w);
    r->watching = r->want_read = r->want_write = false;
}

static void rd__on_io(loop_t *loop, watcher_t *w, uint32_t events)
{
    (void)loop;
    rd_t *r = container_of(w, rd_t, w);
    if (r->feed && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) redisAsyncHandleRead(r->feed);
    if (r->feed && (events & EPOLLOUT)) redisAsyncHandleWrite(r->feed);
}

static void rd__catch_up(chan_t *ch, void *arg) { rd__fill(arg, ch, 0); }

static void rd__on_feed(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    rd_t *r = priv;
    redisReply *rep = reply;
    if (!rep || r->closing || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3) return;
    const char *kind = rep->element[0]->str;
    if (strcmp(kind, "psubscribe") == 0) {
        r->feed_ready = true;
        r->backoff_ms = RD_BACKOFF_MIN_MS;
        log_info("redis: subscribed on %s:%d (node %s)", r->host, r->port, r->node);
        hub_each_channel(r->hub, rd__catch_up, r); /* what was published while the feed was down */
    } else if (strcmp(kind, "pmessage") == 0 && rep->elements == 4) {
        rd__on_message(r, rep->element[2], rep->element[3]);
    }
}

static void rd__on_connect(const redisAsyncContext *ac, int status)
{
    rd_t *r = ac->data;
    if (status != REDIS_OK) {
        log_warn("redis: feed connect to %s:%d failed: %s", r->host, r->port, ac->errstr);
        r->feed = NULL; /* hiredis frees the context after this callback */
        rd__schedule(r);
        return;
    }
    redisAsyncCommand(r->feed, rd__on_feed, r, "PSUBSCRIBE herald:m:*");
}

static void rd__on_disconnect(const redisAsyncContext *ac, int status)
{
    rd_t *r = ac->data;
    r->feed = NULL;
    r->feed_ready = false;
    if (r->closing) return;
    log_warn("redis: feed lost (%s); reconnecting", status == REDIS_OK ? "closed" : ac->errstr);
    rd__schedule(r);
}

static void rd__connect_feed(rd_t *r)
{
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac || ac->err) {
        log_warn("redis: feed connect to %s:%d failed: %s", r->host, r->port, ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        rd__schedule(r);
        return;
    }
    ac->data = r;
    ac->ev.data = r;
    ac->ev.addRead = rd__add_read;
    ac->ev.delRead = rd__del_read;
    ac->ev.addWrite = rd__add_write;
    ac->ev.delWrite = rd__del_write;
    ac->ev.cleanup = rd__cleanup;
    r->feed = ac;
    redisAsyncSetConnectCallback(ac, rd__on_connect);
    redisAsyncSetDisconnectCallback(ac, rd__on_disconnect);
    rd__add_write(r); /* the connect completes when the socket is writable */
}

static void rd__retry(tw_entry_t *e) { rd__connect_feed(container_of(e, rd_t, retry)); }

static void rd__schedule(rd_t *r)
{
    if (r->closing) return;
    loop_timer(r->loop, &r->retry, r->backoff_ms);
    r->backoff_ms = r->backoff_ms * 2 > RD_BACKOFF_MAX_MS ? RD_BACKOFF_MAX_MS : r->backoff_ms * 2;
}

/* ---- presence ---- */

typedef struct {
    const char **argv;
    size_t *len;
    char (*num)[12];
    int n, cap;
} rd_args_t;

static void rd__count(chan_t *ch, void *arg)
{
    rd_args_t *a = arg;
    if (!ch->nsubs || a->n + 2 > a->cap) return;
    snprintf(a->num[a->n / 2], 12, "%u", ch->nsubs);
    a->argv[a->n] = ch->name;
    a->len[a->n++] = ch->name_len;
    a->argv[a->n] = a->num[(a->n - 1) / 2];
    a->len[a->n] = strlen(a->argv[a->n]);
    a->n++;
}

static void rd__presence(tw_entry_t *e)
{
    rd_t *r = container_of(e, rd_t, presence);
    loop_timer(r->loop, &r->presence, RD_PRESENCE_MS);
    redisContext *c = rd__sync(r);
    if (!c) return;
    char key[80], ttl[16];
    snprintf(key, sizeof(key), "herald:p:%s", r->node);
    snprintf(ttl, sizeof(ttl), "%u", RD_PRESENCE_TTL_MS);
    int cap = 2 * (int)r->hub->nchannels + 2;
    rd_args_t a = {malloc((size_t)cap * sizeof(char *)), malloc((size_t)cap * sizeof(size_t)),
                   malloc((size_t)(cap / 2 + 1) * sizeof(*a.num)), 2, cap};
    if (!a.argv || !a.len || !a.num) goto out;
    a.argv[0] = "HSET";
    a.len[0] = 4;
    a.argv[1] = key;
    a.len[1] = strlen(key);
    hub_each_channel(r->hub, rd__count, &a);
    const char *del[] = {"DEL", key}, *exp[] = {"PEXPIRE", key, ttl}, *add[] = {"SADD", "herald:nodes", r->node};
    size_t dl[] = {3, strlen(key)}, el[] = {7, strlen(key), strlen(ttl)}, al[] = {4, 12, strlen(r->node)};
    int sent = 0;
    redisAppendCommandArgv(c, 2, del, dl), sent++;
    if (a.n > 2) redisAppendCommandArgv(c, a.n, a.argv, a.len), sent++;
    redisAppendCommandArgv(c, 3, exp, el), sent++;
    redisAppendCommandArgv(c, 3, add, al), sent++;
    for (int i = 0; i < sent; i++) {
        void *rep = NULL;
        if (redisGetReply(c, &rep) != REDIS_OK) {
            redisFree(c);
            r->sync = NULL;
            break;
        }
        freeReplyObject(rep);
    }
out:
    free(a.argv);
    free(a.len);
    free(a.num);
}

static int rd_occupancy(store_t *st, const char *ch, size_t n, uint32_t *subs)
{
    rd_t *r = (rd_t *)st;
    chan_t *local = hub_channel(r->hub, ch, n, false);
    uint32_t total = local ? local->nsubs : 0;
    const char *sm[] = {"SMEMBERS", "herald:nodes"};
    size_t sl[] = {8, 12};
    redisReply *nodes = rd__cmd(r, 2, sm, sl);
    if (!nodes) return HR_EUNAVAIL;
    for (size_t i = 0; nodes->type == REDIS_REPLY_ARRAY && i < nodes->elements; i++) {
        const char *id = nodes->element[i]->str;
        if (strcmp(id, r->node) == 0) continue;
        char key[80];
        snprintf(key, sizeof(key), "herald:p:%s", id);
        const char *hg[] = {"HGET", key, ch}, *ex[] = {"EXISTS", key};
        size_t hl[] = {4, strlen(key), n}, xl[] = {6, strlen(key)};
        redisReply *v = rd__cmd(r, 3, hg, hl);
        if (!v) break;
        if (v->type == REDIS_REPLY_STRING) total += (uint32_t)strtoul(v->str, NULL, 10);
        freeReplyObject(v);
        redisReply *x = rd__cmd(r, 2, ex, xl);
        if (x && x->type == REDIS_REPLY_INTEGER && x->integer == 0) { /* that node is gone */
            const char *rm[] = {"SREM", "herald:nodes", id};
            size_t rl[] = {4, 12, strlen(id)};
            redisReply *y = rd__cmd(r, 3, rm, rl);
            if (y) freeReplyObject(y);
        }
        if (x) freeReplyObject(x);
    }
    freeReplyObject(nodes);
    *subs = total;
    return 0;
}

/* ---- store ops ---- */

static int rd_append(store_t *s, const msg_t *m)
{
    (void)s, (void)m;
    return 0; /* the publish script recorded it */
}

static int rd__publish(rd_t *r, chan_t *ch, msg_t *m)
{
    size_t plen = msg_pack_size(m);
    char *packed = malloc(plen);
    if (!packed) return HR_ENOMEM;
    m->id = 0;
    msg_pack(m, packed);
    char k1[HUB_MAX_CHANNEL + 16], k2[HUB_MAX_CHANNEL + 16], k4[HUB_MAX_CHANNEL + 16], maxlen[16];
    rd__key(k1, sizeof(k1), "id", m->channel, m->channel_len);
    rd__key(k2, sizeof(k2), "s", m->channel, m->channel_len);
    rd__key(k4, sizeof(k4), "m", m->channel, m->channel_len);
    snprintf(maxlen, sizeof(maxlen), "%u", r->hist_max);
    const char *retain = !(m->flags & MSG_RETAIN) ? "0" : m->data_len ? "1" : "2";
    const char *argv[] = {"EVAL", RD_SCRIPT, "4", k1, k2, "herald:retained", k4, packed, maxlen, retain, m->channel};
    size_t len[] = {4, sizeof(RD_SCRIPT) - 1, 1, strlen(k1), strlen(k2), 15, strlen(k4), plen, strlen(maxlen), 1,
                    m->channel_len};
    redisReply *rep = rd__cmd(r, 11, argv, len);
    free(packed);
    if (!rep) return HR_EUNAVAIL;
    int rc = 0;
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer > 0) {
        m->id = (uint64_t)rep->integer;
        r->publishes++;
        /* read-your-writes: delivered here now, in order (the feed's copy is then a duplicate) */
        if (m->id <= ch->last_id) hub_rebase(r->hub, ch, m->id - 1); /* redis counts again */
        else if (m->id > ch->last_id + 1) rd__fill(r, ch, m->id);
        hub_inject(r->hub, ch, m);
    } else {
        log_warn("redis: publish script failed: %s", rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        rc = HR_EUNAVAIL;
    }
    freeReplyObject(rep);
    return rc;
}

static int rd_publish(store_t *st, chan_t *ch, hub_pend_t *p)
{
    rd_t *r = (rd_t *)st;
    hub_published(r->hub, p, rd__publish(r, ch, hub_pend_msg(p)));
    return 0;
}

typedef struct {
    hist_t *h;
    const hist_limits_t *lim;
    uint64_t now;
    int rc;
} rd_load_t;

static void rd__push_cb(void *arg, msg_t *m)
{
    rd_load_t *l = arg;
    if (l->rc == 0) l->rc = hist_push(l->h, m, l->lim, l->now);
}

static int rd_load(store_t *st, const char *ch, size_t n, hist_t *h, const hist_limits_t *lim, uint64_t *last_id)
{
    rd_t *r = (rd_t *)st;
    *last_id = 0;
    if (r->load_before) { /* created by the feed for message load_before: history before it */
        *last_id = r->load_before - 1;
    } else {
        char k1[HUB_MAX_CHANNEL + 16];
        rd__key(k1, sizeof(k1), "id", ch, n);
        const char *g[] = {"GET", k1};
        size_t gl[] = {3, strlen(k1)};
        redisReply *rep = rd__cmd(r, 2, g, gl);
        if (!rep) return HR_EUNAVAIL;
        if (rep->type == REDIS_REPLY_STRING) *last_id = strtoull(rep->str, NULL, 10);
        freeReplyObject(rep);
    }
    uint32_t max = lim->max_messages;
    if (!*last_id || !max) return 0;
    rd_load_t l = {h, lim, loop_wall_ms(), 0};
    uint64_t from = *last_id >= max ? *last_id - max + 1 : 1;
    if (rd__range(r, ch, n, from, *last_id, max, rd__push_cb, &l) < 0) return HR_EUNAVAIL;
    return l.rc;
}

typedef struct {
    store_retained_cb cb;
    void *arg;
} rd_ret_t;

static int rd_each_retained(store_t *st, store_retained_cb cb, void *arg)
{
    rd_t *r = (rd_t *)st;
    const char *a[] = {"HGETALL", "herald:retained"};
    size_t al[] = {7, 15};
    redisReply *rep = rd__cmd(r, 2, a, al);
    if (!rep) return HR_EUNAVAIL;
    int rc = 0;
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements && rc == 0; i += 2) {
        redisReply *k = rep->element[i], *v = rep->element[i + 1];
        if (!hub_channel_valid(k->str, k->len)) continue;
        msg_t *m = rd__parse(v->str, v->len, k->str, k->len);
        if (!m) continue;
        rc = cb(arg, m);
        msg_unref(m);
    }
    freeReplyObject(rep);
    return rc;
}

static void rd_close(store_t *st)
{
    rd_t *r = (rd_t *)st;
    r->closing = true;
    tw_stop(&r->loop->wheel, &r->retry);
    tw_stop(&r->loop->wheel, &r->presence);
    if (r->feed) redisAsyncFree(r->feed);
    r->feed = NULL;
    if (r->sync) { /* leave the cluster's presence at once */
        char key[80];
        snprintf(key, sizeof(key), "herald:p:%s", r->node);
        const char *d[] = {"DEL", key}, *s[] = {"SREM", "herald:nodes", r->node};
        size_t dl[] = {3, strlen(key)}, sl[] = {4, 12, strlen(r->node)};
        redisReply *x = rd__cmd(r, 2, d, dl);
        if (x) freeReplyObject(x);
        if ((x = rd__cmd(r, 3, s, sl))) freeReplyObject(x);
        if (r->sync) redisFree(r->sync);
    }
    log_info("redis: closed (%" PRIu64 " publishes, %" PRIu64 " messages from the feed, %" PRIu64 " filled)",
             r->publishes, r->injected, r->filled);
    free(r);
}

static void rd_catch_up(store_t *st, chan_t *ch) { rd__fill((rd_t *)st, ch, 0); }

static const store_ops_t rd_ops = {
    .append = rd_append,
    .load = rd_load,
    .close = rd_close,
    .each_retained = rd_each_retained,
    .publish = rd_publish,
    .occupancy = rd_occupancy,
    .catch_up = rd_catch_up,
};

store_t *store_redis_open(const char *addr, uint32_t hist_max, loop_t *loop, char *err, size_t errcap)
{
    rd_t *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    const char *colon = strrchr(addr, ':');
    size_t hn = colon ? (size_t)(colon - addr) : 0;
    if (!colon || hn == 0 || hn >= sizeof(r->host)) {
        snprintf(err, errcap, "bad redis address '%s'", addr);
        free(r);
        return NULL;
    }
    memcpy(r->host, addr, hn);
    if (r->host[0] == '[' && hn > 2 && r->host[hn - 1] == ']') { /* [v6]:port */
        memmove(r->host, r->host + 1, hn - 2);
        r->host[hn - 2] = 0;
    }
    r->port = atoi(colon + 1);
    r->base.ops = &rd_ops;
    r->base.name = "redis";
    r->loop = loop;
    r->hist_max = hist_max;
    r->w.cb = rd__on_io;
    r->w.fd = -1;
    r->backoff_ms = RD_BACKOFF_MIN_MS;
    snprintf(r->node, sizeof(r->node), "%d-%08x", (int)getpid(), (unsigned)(loop_wall_ms() * 2654435761u));
    tw_entry_init(&r->retry, rd__retry);
    tw_entry_init(&r->presence, rd__presence);
    if (!rd__sync(r)) {
        snprintf(err, errcap, "cannot connect to redis at %s", addr);
        free(r);
        return NULL;
    }
    return &r->base;
}

void store_redis_attach(store_t *st, hub_t *hub)
{
    rd_t *r = (rd_t *)st;
    r->hub = hub;
    rd__connect_feed(r);
    loop_timer(r->loop, &r->presence, 0);
}
