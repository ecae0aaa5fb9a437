/* redis_feed.c - the Redis engine's pub/sub feed, presence and occupancy (see redis.c).
 *
 * Feed. One PSUBSCRIBE P:DB:m:* per node, on its own connection: every message published on any
 * node arrives here as "ID EPOCH PACKED" and goes to rd__deliver(); a channel this node does not
 * hold yet is created (its history up to the message is loaded asynchronously, the message is
 * delivered after it). When the feed (re)subscribes, every channel this node holds is caught up
 * from its stream, a few at a time.
 *
 * Presence. Every second one script replaces the hash P:p:NODE with this node's subscriber
 * counts (expiring after 3.5 s), adds NODE to the set P:nodes, and publishes a ping on
 * P:DB:m:$ping:NODE ("$" never starts a channel name). A tick is skipped while the previous one
 * is unanswered (a paused Redis does not pile them up). The ping is how a node knows its feed is
 * alive: the command connection got it answered, so the feed must have seen it; when it has not
 * within redis_timeout (a half-open socket, or a feed left on a master that failed over), the
 * feed is made again. Occupancy (GET /channels/CH) is one script summing the channel's count
 * over the nodes still present (and forgetting the others), plus this node's live count.
 *
 * Control. An admin command that must run on every node (disconnect a user, unsubscribe a user)
 * is published as "NODE JSON" on P:DB:m:$ctl; each other node's feed hands JSON to the engine's
 * on_control (the sending node ran it already). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"
#include "redis_internal.h"

#define RD_PRESENCE_MS 1000
#define RD_PRESENCE_TTL_MS 3500

static const char RD_PRESENCE[] = "redis.call('DEL', KEYS[1])\n"
                                  "local i = 5\n"
                                  "while i <= #ARGV do\n"
                                  "  local j = math.min(i + 999, #ARGV)\n"
                                  "  redis.call('HSET', KEYS[1], unpack(ARGV, i, j))\n"
                                  "  i = j + 1\n"
                                  "end\n"
                                  "redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
                                  "redis.call('SADD', KEYS[2], ARGV[2])\n"
                                  "redis.call('PUBLISH', ARGV[3], ARGV[4])\n"
                                  "return 1\n";

static const char RD_OCCUPANCY[] = "local total = 0\n"
                                   "for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
                                   "  if n ~= ARGV[1] then\n"
                                   "    local key = ARGV[3] .. n\n"
                                   "    if redis.call('EXISTS', key) == 0 then redis.call('SREM', KEYS[1], n)\n"
                                   "    else total = total + tonumber(redis.call('HGET', key, ARGV[2]) or '0') end\n"
                                   "  end\n"
                                   "end\n"
                                   "return total\n";

/* ---- the feed ---- */

/* A message from the feed: "ID EPOCH PACKED" on P:DB:m:CHANNEL. */
static void rd__on_message(rd_t *r, const redisReply *chan, const redisReply *payload)
{
    if (chan->len <= r->feedpfx_len || memcmp(chan->str, r->feedpfx, r->feedpfx_len) != 0 ||
        payload->type != REDIS_REPLY_STRING)
        return;
    const char *name = chan->str + r->feedpfx_len;
    size_t n = chan->len - r->feedpfx_len, nl = strlen(r->node);
    if (n == 4 && memcmp(name, "$ctl", 4) == 0) { /* a control command: "NODE JSON" */
        const char *sp = memchr(payload->str, ' ', payload->len);
        size_t nn = sp ? (size_t)(sp - payload->str) : 0;
        if (!sp || (nn == nl && memcmp(payload->str, r->node, nl) == 0)) return; /* malformed, or ours */
        if (r->eng.on_control)
            r->eng.on_control(r->eng.control_arg, sp + 1, payload->len - nn - 1);
        return;
    }
    if (n == 5 && memcmp(name, "$pres", 5) == 0) { /* a join or leave (redis_presence.c) */
        rd_pres_on_feed(r, payload->str, payload->len);
        return;
    }
    if (n > 6 && memcmp(name, "$ping:", 6) == 0) { /* a node's ping; this node's says the feed is alive */
        uint64_t seq = strtoull(payload->str, NULL, 10);
        if (n - 6 == nl && memcmp(name + 6, r->node, nl) == 0 && seq > r->ping_seen) r->ping_seen = seq;
        return;
    }
    if (!hub_channel_valid(name, n)) return;
    const char *p = payload->str, *end = p + payload->len;
    const char *sp1 = memchr(p, ' ', payload->len), *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1)) : NULL;
    msg_t *m = sp2 ? msg_unpack(sp2 + 1, (size_t)(end - sp2 - 1), name, n) : NULL;
    if (!m) {
        log_warn("redis: malformed message on %.*s", (int)chan->len, chan->str);
        return;
    }
    m->id = strtoull(p, NULL, 10);
    if (rd__epoch(r, sp1 + 1, (size_t)(sp2 - sp1 - 1)) < 0) { /* from before Redis lost its data */
        msg_unref(m);
        return;
    }
    chan_t *ch = hub_channel(r->hub, name, n, false);
    if (!ch) { /* new here: its history before this message is loaded, then the message goes out */
        r->load_before = m->id;
        ch = hub_channel(r->hub, name, n, true);
        r->load_before = 0;
        if (ch) hub_inject(r->hub, ch, m);
        else if (!r->dropped++) /* max_channels (logged by the hub), or Redis unreachable: counted */
            log_warn("redis: message %" PRIu64 " on %.*s dropped: the channel could not be created here "
                     "(herald_redis_dropped_total; not logged again)",
                     m->id, (int)n, name);
    } else {
        rd__deliver(r, ch, m);
    }
    r->injected++;
    msg_unref(m);
}

static void rd__on_feed(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    rd_t *r = priv;
    redisReply *rep = reply;
    if (!rep || r->closing || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str;
    if (strcmp(kind, "psubscribe") == 0) {
        log_info("redis: feed subscribed to %s* (node %s)", r->feedpfx, r->node);
        r->feed_sub_ms = loop_now(r->loop);
        r->ping_seen = r->ping_acked;
        rd__catch_up_all(r); /* what was published while the feed was down */
    } else if (strcmp(kind, "pmessage") == 0 && rep->elements == 4 && rep->element[2]->type == REDIS_REPLY_STRING) {
        rd__on_message(r, rep->element[2], rep->element[3]);
    }
}

void rd_feed_up(rd_conn_t *c)
{
    rd_t *r = c->r;
    char pat[sizeof(r->feedpfx) + 1];
    snprintf(pat, sizeof(pat), "%s*", r->feedpfx);
    const char *argv[] = {"PSUBSCRIBE", pat};
    size_t len[] = {10, strlen(pat)};
    if (redisAsyncCommandArgv(c->link.ac, rd__on_feed, r, 2, argv, len) != REDIS_OK)
        rd_conn_drop(c, "cannot subscribe");
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
    char *num = a->num[a->n / 2];
    snprintf(num, 12, "%u", ch->nsubs);
    a->argv[a->n] = ch->name;
    a->len[a->n++] = ch->name_len;
    a->argv[a->n] = num;
    a->len[a->n++] = strlen(num);
}

typedef struct {
    rd_req_t q;
    uint64_t seq;
} rd_tick_t;

static void rd__ticked(rd_t *r, redisReply *rep, rd_req_t *q)
{
    rd_tick_t *t = (rd_tick_t *)q;
    uint64_t seq = t->seq;
    free(t);
    if (r->closing) return;
    r->presence_busy = false;
    if (!rep || rep->type != REDIS_REPLY_INTEGER) return;
    if (r->ping_seen >= r->ping_acked) r->unseen_since_ms = loop_now(r->loop); /* the oldest one not seen */
    r->ping_acked = seq;
}

void rd_presence_tick(tw_entry_t *e)
{
    rd_t *r = container_of(e, rd_t, presence);
    loop_timer(r->loop, &r->presence, RD_PRESENCE_MS);
    uint64_t now = loop_now(r->loop), grace = r->timeout_ms > 2 * RD_PRESENCE_MS ? r->timeout_ms : 2 * RD_PRESENCE_MS;
    if (r->feed.state == RDC_UP && r->feed_sub_ms >= r->feed.state_ms && r->ping_acked > r->ping_seen &&
        now - r->unseen_since_ms > grace) {
        r->ping_seen = r->ping_acked;
        rd_conn_drop(&r->feed, "did not deliver this node's ping (a stale feed)");
    }
    if (r->presence_busy || r->cmd.state != RDC_UP) return;
    char key[160], nodes[80], ttl[16], ping[sizeof(r->feedpfx) + 60], seq[24];
    snprintf(key, sizeof(key), "%s:p:%s", r->prefix, r->node);
    snprintf(nodes, sizeof(nodes), "%s:nodes", r->prefix);
    snprintf(ttl, sizeof(ttl), "%u", RD_PRESENCE_TTL_MS);
    snprintf(ping, sizeof(ping), "%s$ping:%s", r->feedpfx, r->node);
    rd_tick_t *t = malloc(sizeof(*t));
    int cap = 2 * (int)r->hub->nchannels + 9;
    rd_args_t a = {malloc((size_t)cap * sizeof(char *)), malloc((size_t)cap * sizeof(size_t)),
                   malloc((size_t)(cap / 2 + 1) * sizeof(*a.num)), 9, cap};
    if (!t || !a.argv || !a.len || !a.num) goto out;
    t->seq = r->ping_acked + 1;
    snprintf(seq, sizeof(seq), "%" PRIu64, t->seq);
    const char *head[] = {"EVAL", RD_PRESENCE, "2", key, nodes, ttl, r->node, ping, seq};
    for (int i = 0; i < 9; i++) a.argv[i] = head[i], a.len[i] = strlen(head[i]);
    a.len[1] = sizeof(RD_PRESENCE) - 1;
    hub_each_channel(r->hub, rd__count, &a);
    if (rd_conn_send(&r->cmd, &t->q, rd__ticked, a.n, a.argv, a.len) == 0) {
        t = NULL;
        r->presence_busy = true;
    }
out:
    free(t);
    free(a.argv);
    free(a.len);
    free(a.num);
}

void rd_presence_leave(rd_t *r)
{
    char err[300];
    redisContext *c = rd_boot_master(r, 300, err, sizeof(err));
    if (!c) return;
    char key[160], nodes[80];
    snprintf(key, sizeof(key), "%s:p:%s", r->prefix, r->node);
    snprintf(nodes, sizeof(nodes), "%s:nodes", r->prefix);
    const char *d[] = {"DEL", key}, *s[] = {"SREM", nodes, r->node};
    size_t dl[] = {3, strlen(key)}, sl[] = {4, strlen(nodes), strlen(r->node)};
    redisReply *x = redisCommandArgv(c, 2, d, dl);
    if (x) freeReplyObject(x);
    if ((x = redisCommandArgv(c, 3, s, sl))) freeReplyObject(x);
    redisFree(c);
}

/* ---- occupancy ---- */

typedef struct {
    rd_req_t q;
    list_node_t wait; /* in r->counts */
    engine_count_cb cb;
    void *arg;
    size_t n;
    char name[];
} rd_count_t;

static void rd__counted(rd_t *r, redisReply *rep, rd_req_t *q)
{
    rd_count_t *c = (rd_count_t *)q;
    list_unlink(&c->wait);
    if (!r->closing && c->cb) {
        if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer >= 0) {
            chan_t *ch = hub_channel(r->hub, c->name, c->n, false);
            c->cb(c->arg, 0, (uint32_t)rep->integer + (ch ? ch->nsubs : 0));
        } else {
            c->cb(c->arg, HR_EUNAVAIL, 0);
        }
    }
    free(c);
}

int rd_occupancy(engine_t *e, const char *ch, size_t n, engine_count_cb cb, void *arg)
{
    rd_t *r = container_of(e, rd_t, eng);
    rd_count_t *c = malloc(sizeof(*c) + n);
    if (!c) return HR_ENOMEM;
    *c = (rd_count_t){.cb = cb, .arg = arg, .n = n};
    memcpy(c->name, ch, n);
    char nodes[80], pfx[80];
    snprintf(nodes, sizeof(nodes), "%s:nodes", r->prefix);
    snprintf(pfx, sizeof(pfx), "%s:p:", r->prefix);
    const char *argv[] = {"EVAL", RD_OCCUPANCY, "1", nodes, r->node, ch, pfx};
    size_t len[] = {4, sizeof(RD_OCCUPANCY) - 1, 1, strlen(nodes), strlen(r->node), n, strlen(pfx)};
    int rc = rd_conn_send(&r->cmd, &c->q, rd__counted, 7, argv, len);
    if (rc < 0) {
        free(c);
        return HR_EUNAVAIL;
    }
    list_push_back(&r->counts, &c->wait);
    return 0;
}

void rd_cancel(engine_t *e, void *arg)
{
    rd_t *r = container_of(e, rd_t, eng);
    rd_pres_cancel(r, arg);
    rd_idem_cancel(r, arg);
    rd_wd_cancel(r, arg);
    for (list_node_t *p = r->counts.next; p != &r->counts; p = p->next) {
        rd_count_t *c = container_of(p, rd_count_t, wait);
        if (c->arg == arg) c->cb = NULL;
    }
}

/* ---- control ---- */

static void rd__controlled(rd_t *r, redisReply *rep, rd_req_t *q)
{
    (void)r, (void)rep; /* fire and forget: a lost command is the admin's to send again */
    free(q);
}

int rd_control(engine_t *e, const char *json, size_t n)
{
    rd_t *r = container_of(e, rd_t, eng);
    size_t nl = strlen(r->node);
    rd_req_t *q = malloc(sizeof(*q) + nl + 1 + n);
    if (!q) return HR_ENOMEM;
    char *payload = (char *)(q + 1);
    memcpy(payload, r->node, nl);
    payload[nl] = ' ';
    memcpy(payload + nl + 1, json, n);
    char chan[sizeof(r->feedpfx) + 8];
    int cn = snprintf(chan, sizeof(chan), "%s$ctl", r->feedpfx);
    const char *argv[] = {"PUBLISH", chan, payload};
    size_t len[] = {7, (size_t)cn, nl + 1 + n};
    int rc = rd_conn_send(&r->cmd, q, rd__controlled, 3, argv, len);
    if (rc < 0) {
        free(q);
        return rc;
    }
    return 0;
}
