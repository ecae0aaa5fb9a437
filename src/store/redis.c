/* redis.c - the Redis engine: several herald nodes share channels through one Redis server
 * (engine = redis; see store.h). Connections live in redis_conn.c, the pub/sub feed and the
 * nodes' subscriber counts in redis_feed.c, presence and users across nodes in redis_presence.c,
 * shared records in redis_kv.c, idempotency keys shared by the nodes in redis_idem.c.
 *
 * Ordering. A publish on any node runs one Lua script on Redis that takes the channel's next id
 * (INCR P:id:CH), appends the message to the channel's stream (XADD P:s:CH with the id as the
 * stream id, MAXLEN ~ history_messages), keeps or clears the MQTT retained message (HSET/HDEL
 * P:retained) and publishes it (PUBLISH P:DB:m:CH "ID EPOCH PACKED"; P is redis_prefix, DB
 * redis_db, because pub/sub ignores databases). Redis runs scripts one at a time, so every node
 * sees the same ids in the same order. The publishing node hands the message to the hub when the
 * script answers (read-your-writes), every other node when its feed brings it.
 *
 * Nothing blocks the loop. Everything after start-up goes over one hiredis async command
 * connection (plus the feed): a publish is sent and its publisher answered when the script's
 * reply comes (hub_published; replies come in order, so a channel's publishes complete in
 * order); commands in flight are bounded by redis_max_inflight (beyond: publishes fail at once
 * with HR_EUNAVAIL, counted, logged the first time), and one unanswered for redis_timeout fails
 * with every command behind it while the connection is made again (a publish failed that way
 * may still have run on Redis, which answered too late: the publisher got 503 and subscribers
 * get the message once; herald never sends a command twice).
 *
 * Reads are asynchronous and hold their channel (hub_hold, see hub.h) until they are answered:
 * - first use of a channel on this node: the load op sends one READ script (last id and the
 *   newest history_messages stream entries) and answers STORE_LOADING; the channel exists at once
 *   and serves live messages, its resuming subscribers replay when hub_loaded() comes (a channel
 *   the feed creates loads only what precedes the message that created it, which is then
 *   delivered: an MQTT filter on a new channel gets its first message);
 * - a hole (a message whose id is past the next expected one: the feed was behind or down) and
 *   catch-up (a client's cursor is ahead of this node; the feed came back) read the missing range
 *   in batches and hub_fill() it; messages that arrive meanwhile wait in the hold, in id order;
 * - presence and occupancy (GET /channels/CH, parked by the route until answered) are scripts on
 *   the same connection.
 * When Redis cannot be asked (down, the limit reached), a channel is not created (503 "redis is
 * unavailable"), a hole restarts the channel's history after it (resuming clients are told about
 * the gap), a catch-up is skipped.
 *
 * Epoch. P:epoch holds a random value, set by the first script that finds it missing. Every
 * script answers with it and every published message carries it: a different one means Redis
 * lost its data (ids count from 1 again): every channel this node holds restarts (hub_reset) and
 * its subscribers get a gap notice instead of seeing ids go back. Within one epoch, a message
 * whose id this node holds with other contents (a failover lost the last writes) restarts that
 * channel the same way. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "../core/err.h"
#include "../core/log.h"
#include "redis_internal.h"

#define RD_FILL_BATCH 1000
#define RD_CATCHUP_WINDOW 16 /* channels caught up at once after the feed came back */

static const char RD_PUBLISH[] =
    "local e = redis.call('GET', KEYS[4])\n"
    "if not e then e = ARGV[5]; redis.call('SET', KEYS[4], e) end\n"
    "local id = redis.call('INCR', KEYS[1])\n"
    "local s = string.format('%d', id)\n"
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], s .. '-1', 'm', ARGV[1])\n"
    "if ARGV[3] == '1' then redis.call('HSET', KEYS[3], ARGV[4], s .. ' ' .. ARGV[1])\n"
    "elseif ARGV[3] == '2' then redis.call('HDEL', KEYS[3], ARGV[4]) end\n"
    "redis.call('PUBLISH', ARGV[6], s .. ' ' .. e .. ' ' .. ARGV[1])\n"
    "return {id, e}\n";

/* ARGV: from (0: the newest count entries up to `to`), to (0: the last id), count, epoch.
 * Answers {epoch, to, entries, the stream's first entry id ("0": empty), from}. */
static const char RD_READ[] =
    "local e = redis.call('GET', KEYS[3])\n"
    "if not e then e = ARGV[4]; redis.call('SET', KEYS[3], e) end\n"
    "local last = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "local from, to, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "if to == 0 or to > last then to = last end\n"
    "if from == 0 then from = math.max(1, to - n + 1) end\n"
    "local r = {}\n"
    "if n > 0 and from <= to then\n"
    "  r = redis.call('XRANGE', KEYS[2], string.format('%d-0', from), string.format('%d-1', to), 'COUNT', n)\n"
    "end\n"
    "local f = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)\n"
    "local first = '0'\n"
    "if #f > 0 then first = f[1][1] end\n"
    "return {e, string.format('%d', to), r, first, string.format('%d', from)}\n";

static const char RD_EPOCH[] = "local e = redis.call('GET', KEYS[1])\n"
                               "if not e then e = ARGV[1]; redis.call('SET', KEYS[1], e) end\n"
                               "return e\n";

enum { RDF_LOAD, RDF_FILL, RDF_CATCHUP };

/* A READ in flight: a load, a fill or a catch-up of one channel. */
typedef struct {
    rd_req_t q;
    uint64_t to; /* the range's end (0: the channel's last id) */
    uint32_t count;
    int kind;
    size_t n;
    char name[];
} rd_read_t;

/* A publish in flight (the channel stays alive: it has a publish pending). */
typedef struct {
    rd_req_t q;
    hub_pend_t *p;
    chan_t *ch;
} rd_pub_t;

void rd__key(const rd_t *r, char *out, size_t cap, const char *kind, const char *name, size_t n)
{
    snprintf(out, cap, "%s:%s:%.*s", r->prefix, kind, (int)n, name);
}

void rd__candidate(rd_t *r, char out[33])
{
    uint64_t v[2] = {0, 0};
    if (getrandom(v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
        v[0] = loop_mono_ms() ^ ((uint64_t)getpid() << 32);
        v[1] = loop_wall_ms();
    }
    snprintf(out, 33, "%016" PRIx64 "%016" PRIx64, v[0], v[1]);
    if (strcmp(out, r->epoch) == 0) out[0] = out[0] == '0' ? '1' : '0';
}

static void rd__reset_one(chan_t *ch, void *arg) { hub_reset(((rd_t *)arg)->hub, ch, 0); }

int rd__epoch(rd_t *r, const char *e, size_t n)
{
    if (!n || n >= sizeof(r->epoch) || (strlen(r->epoch) == n && memcmp(r->epoch, e, n) == 0)) return 0;
    /* an answer to a command Redis ran before it lost its data, come after one that ran since
     * (the feed and the command connection are not ordered with each other): stale */
    if (strlen(r->prev_epoch) == n && memcmp(r->prev_epoch, e, n) == 0) return -1;
    log_warn("redis: the data epoch changed (%s -> %.*s): redis lost its data and ids count from 1 again; every "
             "channel restarts and its subscribers are told about the gap",
             r->epoch, (int)n, e);
    memcpy(r->prev_epoch, r->epoch, sizeof(r->epoch));
    memcpy(r->epoch, e, n);
    r->epoch[n] = 0;
    r->epoch_changes++;
    if (r->hub) hub_each_channel(r->hub, rd__reset_one, r);
    return 1;
}

/* ---- reads: loads, fills, catch-ups ---- */

/* A tombstone for withdrawn id (redis_withdraw.c) at about the time of its neighbour near. */
static msg_t *rd__tomb(const char *name, size_t n, uint64_t id, const msg_t *near)
{
    msg_t *t = msg_new(name, n, "message", 7, "", 0, id, near ? near->time_ms : loop_wall_ms());
    if (t) t->flags = MSG_WITHDRAWN;
    return t;
}

/* Parses a READ reply: the epoch, the range's end and its messages (of channel name), into a new
 * array *out (referenced), with a tombstone for each withdrawn id (a hole above the stream's first
 * entry: at most as many as the entries asked for; a longer run stays a hole, a gap for resuming
 * clients). *raw: the entries Redis returned. Returns the count, or -1 when malformed or on OOM. */
static int rd__read_reply(const redisReply *rep, const char *name, size_t n, uint32_t count, const redisReply **epoch,
                          uint64_t *to, msg_t ***out, int *raw)
{
    *out = NULL;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 5 || rep->element[0]->type != REDIS_REPLY_STRING ||
        rep->element[1]->type != REDIS_REPLY_STRING || rep->element[2]->type != REDIS_REPLY_ARRAY ||
        rep->element[3]->type != REDIS_REPLY_STRING || rep->element[4]->type != REDIS_REPLY_STRING)
        return -1;
    *epoch = rep->element[0];
    *to = strtoull(rep->element[1]->str, NULL, 10);
    uint64_t first = strtoull(rep->element[3]->str, NULL, 10), from = strtoull(rep->element[4]->str, NULL, 10);
    const redisReply *a = rep->element[2];
    size_t cap = a->elements + count + 1;
    msg_t **m = malloc(cap * sizeof(*m));
    if (!m) return -1;
    int k = 0;
    uint32_t tombs = 0;
    uint64_t next = first && from < first ? first : from; /* ids before the stream's first entry were trimmed */
    for (size_t i = 0; i <= a->elements; i++) {
        msg_t *x = NULL;
        uint64_t id = *to + 1; /* past the end: the holes up to `to` */
        if (i < a->elements) {
            const redisReply *e = a->element[i]; /* [id, ["m", PACKED]] */
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
                e->element[1]->type != REDIS_REPLY_ARRAY || e->element[1]->elements != 2)
                continue;
            const redisReply *v = e->element[1]->element[1];
            if (!(x = v->type == REDIS_REPLY_STRING ? msg_unpack(v->str, v->len, name, n) : NULL)) continue;
            x->id = id = strtoull(e->element[0]->str, NULL, 10);
        } else if (a->elements >= count || !first) {
            break; /* cut at count (the next batch goes on from the last entry), or an empty stream */
        }
        while (first && next < id && tombs < count && (size_t)k < cap) { /* withdrawn */
            msg_t *t = rd__tomb(name, n, next++, x ? x : (k ? m[k - 1] : NULL));
            if (t) m[k++] = t, tombs++;
        }
        if (x) m[k++] = x;
        next = id + 1;
    }
    *raw = (int)a->elements;
    *out = m;
    return k;
}

static void rd__free_msgs(msg_t **m, int k)
{
    for (int i = 0; i < k; i++) msg_unref(m[i]);
    free(m);
}

static void rd__read_done(rd_t *r, redisReply *rep, rd_req_t *q);
static void rd__cu_pump(rd_t *r);

static int rd__send_read(rd_t *r, rd_read_t *x, uint64_t from)
{
    char k1[HUB_MAX_CHANNEL + 80], k2[HUB_MAX_CHANNEL + 80], k3[80], fs[24], ts[24], cs[16], ne[33];
    rd__key(r, k1, sizeof(k1), "id", x->name, x->n);
    rd__key(r, k2, sizeof(k2), "s", x->name, x->n);
    snprintf(k3, sizeof(k3), "%s:epoch", r->prefix);
    snprintf(fs, sizeof(fs), "%" PRIu64, from);
    snprintf(ts, sizeof(ts), "%" PRIu64, x->to);
    snprintf(cs, sizeof(cs), "%u", x->count);
    rd__candidate(r, ne);
    const char *argv[] = {"EVAL", RD_READ, "3", k1, k2, k3, fs, ts, cs, ne};
    size_t len[10];
    for (int i = 0; i < 10; i++) len[i] = i == 1 ? sizeof(RD_READ) - 1 : strlen(argv[i]);
    return rd_conn_send(&r->cmd, &x->q, rd__read_done, 10, argv, len);
}

static rd_read_t *rd__read_new(const char *name, size_t n, uint64_t to, uint32_t count, int kind)
{
    rd_read_t *x = malloc(sizeof(*x) + n + 1);
    if (!x) return NULL;
    *x = (rd_read_t){.to = to, .count = count, .kind = kind, .n = n};
    memcpy(x->name, name, n);
    x->name[n] = 0;
    return x;
}

/* Reads ch's stream from `from` to `to` (0: its end) into the channel, holding it meanwhile.
 * False when Redis cannot be asked now. */
static bool rd__fill(rd_t *r, chan_t *ch, uint64_t from, uint64_t to, int kind)
{
    rd_read_t *x = rd__read_new(ch->name, ch->name_len, to, RD_FILL_BATCH, kind);
    if (!x) return false;
    if (rd__send_read(r, x, from) < 0) {
        free(x);
        return false;
    }
    hub_hold(r->hub, ch);
    return true;
}

static void rd__read_end(rd_t *r, rd_read_t *x)
{
    if (x->kind == RDF_CATCHUP && !r->closing) {
        r->cu_busy--;
        rd__cu_pump(r);
    }
    free(x);
}

static void rd__read_done(rd_t *r, redisReply *rep, rd_req_t *q)
{
    rd_read_t *x = (rd_read_t *)q;
    if (r->closing) {
        free(x);
        return;
    }
    chan_t *ch = hub_channel(r->hub, x->name, x->n, false);
    if (!ch || !ch->loading) { /* a held channel is never swept: not expected */
        rd__read_end(r, x);
        return;
    }
    const redisReply *e = NULL;
    uint64_t to = 0;
    msg_t **m;
    int raw = 0, k = rd__read_reply(rep, x->name, x->n, x->count, &e, &to, &m, &raw);
    if (k < 0) { /* lost, too late, or refused: the channel goes on with what it has */
        if (rep && !r->fail_logged)
            log_warn("redis: reading %s failed: %s", x->name, rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply");
        if (rep) r->fail_logged = true;
        hub_release(r->hub, ch);
        rd__read_end(r, x);
        return;
    }
    int ep = rd__epoch(r, e->str, e->len);
    if (x->kind == RDF_LOAD && ep >= 0) {
        hub_loaded(r->hub, ch, to, m, (uint32_t)k);
    } else if (ep != 0) { /* data of a lost epoch, or a range asked for in one: it means nothing now */
        hub_release(r->hub, ch);
    } else {
        for (int i = 0; i < k; i++) hub_fill(r->hub, ch, m[i]);
        r->filled += (uint64_t)k;
        bool more = k > 0 && (uint32_t)raw >= x->count && (!x->to || m[k - 1]->id < x->to);
        if (more && rd__send_read(r, x, m[k - 1]->id + 1) == 0) { /* the next batch, still held */
            rd__free_msgs(m, k);
            return;
        }
        hub_release(r->hub, ch);
    }
    rd__free_msgs(m, k);
    rd__read_end(r, x);
}

static void rd__cu_free(rd_t *r)
{
    for (uint32_t i = 0; r->cu && i < r->cu_n; i++) free(r->cu[i]);
    free(r->cu);
    r->cu = NULL;
    r->cu_n = r->cu_next = 0;
}

static void rd__cu_collect(chan_t *ch, void *arg)
{
    rd_t *r = arg;
    char *s = r->cu_n < r->hub->nchannels ? strndup(ch->name, ch->name_len) : NULL;
    if (s) r->cu[r->cu_n++] = s;
}

/* Reads the next channels of the catch-up list, a window at a time. The feed and the command
 * connection come back each on its own schedule: while the command connection is down the
 * catch-up waits for it (rd__cmd_up) rather than skipping what the feed missed. */
static void rd__cu_pump(rd_t *r)
{
    while (r->cu && r->cu_busy < RD_CATCHUP_WINDOW && r->cu_next < r->cu_n) {
        if (r->cmd.state != RDC_CONNECTING && r->cmd.state != RDC_UP) {
            r->cu_wait = true;
            rd_conn_kick(&r->cmd);
            return;
        }
        const char *name = r->cu[r->cu_next++];
        chan_t *ch = hub_channel(r->hub, name, strlen(name), false);
        if (ch && rd__fill(r, ch, ch->last_id + 1, 0, RDF_CATCHUP)) r->cu_busy++;
    }
    if (r->cu && r->cu_next == r->cu_n) rd__cu_free(r);
}

/* The command connection is up (again): a catch-up that waited for it goes on. */
static void rd__cmd_up(rd_conn_t *c)
{
    rd_t *r = c->r;
    if (!r->cu_wait || r->closing) return;
    r->cu_wait = false;
    rd__cu_pump(r);
}

void rd__catch_up_all(rd_t *r)
{
    rd__cu_free(r);
    if (!r->hub->nchannels || !(r->cu = calloc(r->hub->nchannels, sizeof(*r->cu)))) return;
    hub_each_channel(r->hub, rd__cu_collect, r);
    rd__cu_pump(r);
}

/* ---- messages into the hub ---- */

/* True when this node holds m's id with other contents. */
static bool rd__differs(const chan_t *ch, const msg_t *m)
{
    if (!ch->hist.count || !m->id) return false;
    uint32_t i = hist_index_after(&ch->hist, m->id - 1);
    if (i >= ch->hist.count) return false;
    const msg_t *old = hist_at(&ch->hist, i);
    return old->id == m->id && (old->time_ms != m->time_ms || old->data_len != m->data_len ||
                                memcmp(old->data, m->data, m->data_len) != 0);
}

void rd__deliver(rd_t *r, chan_t *ch, msg_t *m)
{
    if (!ch->loading) {
        if (m->id <= ch->last_id) {
            if (!rd__differs(ch, m)) return; /* here already: its publish's answer, or a fill */
            log_warn("redis: channel %.*s went back to id %" PRIu64 " (redis lost writes?): it restarts there",
                     (int)ch->name_len, ch->name, m->id);
            hub_reset(r->hub, ch, m->id - 1);
        } else if (m->id > ch->last_id + 1) {
            /* missed some (the feed was behind or down): m waits until they are read; when Redis
             * cannot be asked, the ring restarts at m */
            rd__fill(r, ch, ch->last_id + 1, m->id - 1, RDF_FILL);
        }
    }
    hub_inject(r->hub, ch, m);
}

/* ---- store ops ---- */

static int rd_append(store_t *s, const msg_t *m)
{
    (void)s, (void)m;
    return 0; /* the publish script recorded it */
}

static void rd__published(rd_t *r, redisReply *rep, rd_req_t *q)
{
    rd_pub_t *x = (rd_pub_t *)q;
    if (r->closing) { /* the hub is gone */
        free(x);
        return;
    }
    msg_t *m = hub_pend_msg(x->p);
    int rc = HR_EUNAVAIL;
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 && rep->element[0]->type == REDIS_REPLY_INTEGER &&
        rep->element[0]->integer > 0 && rep->element[1]->type == REDIS_REPLY_STRING) {
        int ep = rd__epoch(r, rep->element[1]->str, rep->element[1]->len);
        m->id = (uint64_t)rep->element[0]->integer;
        r->publishes++;
        /* read-your-writes: here now, in order (the feed's copy is a repeat); one Redis ran in an
         * epoch that is gone since was acknowledged, and then lost with the rest of that data */
        if (ep >= 0) rd__deliver(r, x->ch, m);
        rc = 0;
    } else {
        r->failed++;
        if (rep && !r->fail_logged)
            log_warn("redis: publish script failed: %s",
                     rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        if (rep) r->fail_logged = true;
    }
    hub_published(r->hub, x->p, rc);
    free(x);
}

static int rd_publish(engine_t *e, chan_t *ch, hub_pend_t *p)
{
    rd_t *r = container_of(e, rd_t, eng);
    msg_t *m = hub_pend_msg(p);
    rd_pub_t *x = malloc(sizeof(*x));
    size_t plen = msg_pack_size(m);
    char *packed = malloc(plen);
    if (!x || !packed) {
        free(x);
        free(packed);
        return HR_ENOMEM;
    }
    x->p = p;
    x->ch = ch;
    m->id = 0;
    msg_pack(m, packed);
    char k1[HUB_MAX_CHANNEL + 80], k2[HUB_MAX_CHANNEL + 80], k3[80], k4[80], pc[HUB_MAX_CHANNEL + 120], maxlen[16],
        ne[33];
    rd__key(r, k1, sizeof(k1), "id", m->channel, m->channel_len);
    rd__key(r, k2, sizeof(k2), "s", m->channel, m->channel_len);
    snprintf(k3, sizeof(k3), "%s:retained", r->prefix);
    snprintf(k4, sizeof(k4), "%s:epoch", r->prefix);
    snprintf(pc, sizeof(pc), "%s%.*s", r->feedpfx, (int)m->channel_len, m->channel);
    snprintf(maxlen, sizeof(maxlen), "%u", r->hist_max);
    rd__candidate(r, ne);
    const char *retain = !(m->flags & MSG_RETAIN) ? "0" : m->data_len ? "1" : "2";
    const char *argv[] = {"EVAL", RD_PUBLISH, "4", k1, k2, k3, k4, packed, maxlen, retain, m->channel, ne, pc};
    size_t len[13];
    for (int i = 0; i < 13; i++) len[i] = strlen(argv[i]);
    len[1] = sizeof(RD_PUBLISH) - 1;
    len[7] = plen;
    len[10] = m->channel_len;
    rd_conn_kick(&r->cmd); /* down: try now, not at the end of the backoff */
    int rc = rd_conn_send(&r->cmd, &x->q, rd__published, 13, argv, len);
    free(packed);
    if (rc == 0) return 0;
    free(x);
    if (rc == HR_EFULL) { /* refused at once, and by the hub for a moment (its store fault probe) */
        r->refused_limit++;
        if (!r->limit_logged)
            log_warn("redis: %u commands in flight (redis_max_inflight): publishes fail until Redis answers "
                     "(herald_redis_refused_total)",
                     r->cmd.ninflight);
        r->limit_logged = true;
        return HR_EUNAVAIL;
    }
    /* down: this publish fails at the hub's next commit (nothing waits ahead of it: the commands
     * in flight failed with the connection), and the next one tries again */
    r->refused_down++;
    hub_published(r->hub, p, HR_EUNAVAIL);
    return 0;
}

static int rd_load(store_t *st, const char *ch, size_t n, hist_t *h, const hist_limits_t *lim, uint64_t *last_id)
{
    rd_t *r = (rd_t *)st;
    *last_id = 0;
    if (r->load_before == 1) return 0; /* created by the first message it ever had */
    rd_read_t *x = rd__read_new(ch, n, r->load_before ? r->load_before - 1 : 0, lim->max_messages, RDF_LOAD);
    if (!x) return HR_ENOMEM;
    r->loads++;
    if (r->boot) { /* start-up (retained messages): the blocking connection, nothing is served yet */
        char k1[HUB_MAX_CHANNEL + 80], k2[HUB_MAX_CHANNEL + 80], k3[80], cs[16], ts[24], ne[33];
        rd__key(r, k1, sizeof(k1), "id", ch, n);
        rd__key(r, k2, sizeof(k2), "s", ch, n);
        snprintf(k3, sizeof(k3), "%s:epoch", r->prefix);
        snprintf(ts, sizeof(ts), "%" PRIu64, x->to);
        snprintf(cs, sizeof(cs), "%u", x->count);
        rd__candidate(r, ne);
        free(x);
        const char *argv[] = {"EVAL", RD_READ, "3", k1, k2, k3, "0", ts, cs, ne};
        size_t len[10];
        for (int i = 0; i < 10; i++) len[i] = strlen(argv[i]);
        redisReply *rep = redisCommandArgv(r->boot, 10, argv, len);
        const redisReply *e;
        msg_t **m;
        int raw, k = rd__read_reply(rep, ch, n, lim->max_messages, &e, last_id, &m, &raw), rc = k < 0 ? HR_EUNAVAIL : 0;
        if (k >= 0) rd__epoch(r, e->str, e->len);
        for (int i = 0; i < k && rc == 0; i++) rc = hist_push(h, m[i], lim, loop_wall_ms());
        rd__free_msgs(m, k > 0 ? k : 0);
        if (rep) freeReplyObject(rep);
        return rc;
    }
    if (rd__send_read(r, x, 0) == 0) return STORE_LOADING;
    free(x);
    if (!r->load_before) return HR_EUNAVAIL;
    *last_id = r->load_before - 1; /* the feed's message goes out live; what came before is not known here */
    return 0;
}

static void rd_catch_up(engine_t *e, chan_t *ch)
{
    rd_t *r = container_of(e, rd_t, eng);
    rd__fill(r, ch, ch->last_id + 1, 0, RDF_FILL);
}

static int rd_each_retained(store_t *st, store_retained_cb cb, void *arg)
{
    rd_t *r = (rd_t *)st;
    if (!r->boot) return 0;
    char key[80];
    snprintf(key, sizeof(key), "%s:retained", r->prefix);
    const char *a[] = {"HGETALL", key};
    size_t al[] = {7, strlen(key)};
    redisReply *rep = redisCommandArgv(r->boot, 2, a, al);
    int rc = rep ? 0 : HR_EUNAVAIL;
    for (size_t i = 0; rep && rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements && rc == 0; i += 2) {
        redisReply *k = rep->element[i], *v = rep->element[i + 1];
        if (!hub_channel_valid(k->str, k->len)) continue;
        const char *sp = memchr(v->str, ' ', v->len); /* "ID PACKED" */
        msg_t *m = sp ? msg_unpack(sp + 1, v->len - (size_t)(sp + 1 - v->str), k->str, k->len) : NULL;
        if (!m) continue;
        m->id = strtoull(v->str, NULL, 10);
        rc = cb(arg, m);
        msg_unref(m);
    }
    if (rep) freeReplyObject(rep);
    redisFree(r->boot); /* start-up is over: from now on nothing blocks */
    r->boot = NULL;
    return rc;
}

static size_t rd_metrics(engine_t *e, char *out, size_t cap)
{
    rd_t *r = container_of(e, rd_t, eng);
    int n = snprintf(
        out, cap,
        "# HELP herald_redis_connected 1 while the connection to Redis is up.\n"
        "# TYPE herald_redis_connected gauge\n"
        "herald_redis_connected{conn=\"commands\"} %d\nherald_redis_connected{conn=\"feed\"} %d\n"
        "# HELP herald_redis_commands_in_flight Commands sent to Redis and not answered yet (limit "
        "redis_max_inflight).\n"
        "# TYPE herald_redis_commands_in_flight gauge\nherald_redis_commands_in_flight %u\n"
        "# HELP herald_redis_refused_total Publishes failed at once: Redis unreachable, or redis_max_inflight "
        "commands in flight.\n"
        "# TYPE herald_redis_refused_total counter\n"
        "herald_redis_refused_total{reason=\"down\"} %" PRIu64 "\nherald_redis_refused_total{reason=\"limit\"} %" PRIu64
        "\n"
        "# HELP herald_redis_timeouts_total Times Redis left a command unanswered for redis_timeout (the "
        "connection was made again).\n"
        "# TYPE herald_redis_timeouts_total counter\n"
        "herald_redis_timeouts_total{conn=\"commands\"} %" PRIu64 "\n"
        "# HELP herald_redis_connects_total Connection attempts to Redis.\n"
        "# TYPE herald_redis_connects_total counter\n"
        "herald_redis_connects_total{conn=\"commands\"} %" PRIu64 "\n"
        "herald_redis_connects_total{conn=\"feed\"} %" PRIu64 "\n"
        "# HELP herald_redis_publishes_total Publishes Redis ran for this node, and the ones that failed.\n"
        "# TYPE herald_redis_publishes_total counter\n"
        "herald_redis_publishes_total{result=\"ok\"} %" PRIu64 "\n"
        "herald_redis_publishes_total{result=\"failed\"} %" PRIu64 "\n"
        "# HELP herald_redis_messages_total Messages from the feed, and read from the streams (holes, catch-ups).\n"
        "# TYPE herald_redis_messages_total counter\n"
        "herald_redis_messages_total{from=\"feed\"} %" PRIu64 "\nherald_redis_messages_total{from=\"stream\"} %" PRIu64
        "\n"
        "# HELP herald_redis_epoch_changes_total Times Redis was found to have lost its data (channels restarted).\n"
        "# TYPE herald_redis_epoch_changes_total counter\nherald_redis_epoch_changes_total %" PRIu64 "\n"
        "# HELP herald_redis_dropped_total Messages from the feed for a channel that could not be created here "
        "(max_channels).\n"
        "# TYPE herald_redis_dropped_total counter\nherald_redis_dropped_total %" PRIu64 "\n"
        "# HELP herald_hold_dropped_total Messages dropped while their channel was loading: more came than "
        "history_messages (at least 1024).\n"
        "# TYPE herald_hold_dropped_total counter\nherald_hold_dropped_total %" PRIu64 "\n",
        r->cmd.state == RDC_UP, r->feed.state == RDC_UP, r->cmd.ninflight, r->refused_down, r->refused_limit,
        r->cmd.timeouts, r->cmd.connects, r->feed.connects, r->publishes, r->failed, r->injected, r->filled,
        r->epoch_changes, r->dropped, r->hub ? r->hub->held_dropped : 0);
    if (n <= 0 || (size_t)n >= cap) return 0;
    return (size_t)n + rd_pres_metrics(r, out + n, cap - (size_t)n);
}

static void rd_close(store_t *st)
{
    rd_t *r = (rd_t *)st;
    r->closing = true;
    tw_stop(&r->loop->wheel, &r->presence);
    rd_presence_leave(r);
    rd_pres_close(r);
    rd_conn_close(&r->cmd); /* what is in flight fails quietly: the hub is gone */
    rd_conn_close(&r->feed);
    rd__cu_free(r);
    if (r->boot) redisFree(r->boot);
    log_info("redis: closed (%" PRIu64 " publishes, %" PRIu64 " messages from the feed, %" PRIu64 " filled)",
             r->publishes, r->injected, r->filled);
    free(r);
}

static const store_ops_t rd_ops = {
    .append = rd_append,
    .load = rd_load,
    .close = rd_close,
    .each_retained = rd_each_retained,
};

static bool rd_up(engine_t *e) { return container_of(e, rd_t, eng)->cmd.state == RDC_UP; }

static const engine_ops_t rd_engine_ops = {
    .up = rd_up,
    .publish = rd_publish,
    .occupancy = rd_occupancy,
    .cancel = rd_cancel,
    .catch_up = rd_catch_up,
    .metrics = rd_metrics,
    .control = rd_control,
    .pres_write = rd_pres_write,
    .pres_list = rd_pres_list,
    .user_write = rd_user_write,
    .user_status = rd_user_status,
    .kv_put = rd_kv_put,
    .kv_each = rd_kv_each,
    .idem_claim = rd_idem_claim,
    .idem_settle = rd_idem_settle,
    .idem_release = rd_idem_release,
    .withdraw = rd_withdraw,
    .clear = rd_clear,
};

engine_t *store_redis_engine(store_t *s) { return &((rd_t *)s)->eng; }

/* Reads the password file's first line into r->password. */
static int rd__password_file(rd_t *r, const char *path, char *err, size_t errcap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errcap, "redis_password_file %s: cannot read it", path);
        return HR_EINVAL;
    }
    size_t n = fread(r->password, 1, sizeof(r->password) - 1, f);
    fclose(f);
    r->password[n] = 0;
    r->password[strcspn(r->password, "\r\n")] = 0;
    if (!r->password[0]) {
        snprintf(err, errcap, "redis_password_file %s is empty", path);
        return HR_EINVAL;
    }
    return 0;
}

static bool rd__copy(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) return false;
    memcpy(dst, src ? src : "", n + 1);
    return true;
}

store_t *store_redis_open(const store_redis_opts_t *o, loop_t *loop, char *err, size_t errcap)
{
    rd_t *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    r->base.ops = &rd_ops;
    r->base.name = "redis";
    r->eng.ops = &rd_engine_ops;
    r->eng.name = "redis";
    r->loop = loop;
    r->hist_max = o->hist_max;
    r->db = o->db;
    r->timeout_ms = o->timeout_ms ? o->timeout_ms : 2000;
    r->max_inflight = o->max_inflight ? o->max_inflight : 10000;
    r->pres_ttl_ms = o->presence_ttl_ms ? o->presence_ttl_ms : 10000;
    r->seen_ttl_ms = o->seen_ttl_ms ? o->seen_ttl_ms : 30ull * 86400 * 1000;
    list_init(&r->counts);
    list_init(&r->claims);
    list_init(&r->wds);
    if (!rd__copy(r->sentinels, sizeof(r->sentinels), o->sentinels) ||
        !rd__copy(r->master, sizeof(r->master), o->master_name) || !rd__copy(r->user, sizeof(r->user), o->user) ||
        !rd__copy(r->password, sizeof(r->password), o->password) ||
        !rd__copy(r->prefix, sizeof(r->prefix), o->prefix && *o->prefix ? o->prefix : "herald")) {
        snprintf(err, errcap, "a redis setting is too long");
        goto fail;
    }
    if (strpbrk(r->prefix, "*?[]\\ ")) {
        snprintf(err, errcap, "redis_prefix '%s': no spaces or pattern characters (* ? [ ] \\)", r->prefix);
        goto fail;
    }
    if (o->password_file && o->password_file[0]) {
        if (r->password[0]) {
            snprintf(err, errcap, "redis_password and redis_password_file are both set");
            goto fail;
        }
        if (rd__password_file(r, o->password_file, err, errcap) < 0) goto fail;
    }
    if (r->sentinels[0] && !r->master[0]) {
        snprintf(err, errcap, "redis_sentinel needs redis_master_name");
        goto fail;
    }
    if (!r->sentinels[0]) {
        const char *addr = o->addr ? o->addr : "", *colon = strrchr(addr, ':');
        size_t hn = colon ? (size_t)(colon - addr) : 0;
        if (!colon || hn == 0 || hn >= sizeof(r->host)) {
            snprintf(err, errcap, "bad redis address '%s'", addr);
            goto fail;
        }
        memcpy(r->host, addr, hn);
        if (r->host[0] == '[' && hn > 2 && r->host[hn - 1] == ']') { /* [v6]:port */
            memmove(r->host, r->host + 1, hn - 2);
            r->host[hn - 2] = 0;
        }
        r->port = atoi(colon + 1);
    }
    snprintf(r->feedpfx, sizeof(r->feedpfx), "%s:%u:m:", r->prefix, r->db);
    r->feedpfx_len = strlen(r->feedpfx);
    snprintf(r->node, sizeof(r->node), "%d-%08x", (int)getpid(), (unsigned)(loop_wall_ms() * 2654435761u));
    rd_conn_init(r, &r->cmd, "commands", false, rd__cmd_up);
    rd_conn_init(r, &r->feed, "feed", true, rd_feed_up);
    tw_entry_init(&r->presence, rd_presence_tick);
    if (rd_boot(r, err, errcap) < 0) goto fail;
    /* the data epoch: set now if Redis has none (a fresh Redis, or one that lost its data) */
    char key[80], ne[33];
    snprintf(key, sizeof(key), "%s:epoch", r->prefix);
    rd__candidate(r, ne);
    const char *argv[] = {"EVAL", RD_EPOCH, "1", key, ne};
    size_t len[] = {4, sizeof(RD_EPOCH) - 1, 1, strlen(key), strlen(ne)};
    redisReply *rep = redisCommandArgv(r->boot, 5, argv, len);
    if (!rep || rep->type != REDIS_REPLY_STRING || rep->len >= sizeof(r->epoch)) {
        snprintf(err, errcap, "redis: reading the data epoch failed: %s",
                 rep && rep->type == REDIS_REPLY_ERROR ? rep->str : rep ? "bad reply" : r->boot->errstr);
        if (rep) freeReplyObject(rep);
        goto fail;
    }
    memcpy(r->epoch, rep->str, rep->len + 1);
    freeReplyObject(rep);
    return &r->base;
fail:
    if (r->boot) redisFree(r->boot);
    free(r);
    return NULL;
}

void store_redis_attach(store_t *st, hub_t *hub)
{
    rd_t *r = (rd_t *)st;
    r->hub = hub;
    rd_conn_start(&r->cmd);
    rd_conn_start(&r->feed);
    loop_timer(r->loop, &r->presence, 0);
    rd_pres_start(r);
}
