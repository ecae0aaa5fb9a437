/* redis_withdraw.c - withdrawing a message and deleting a channel's messages with engine = redis
 * (engine.h: withdraw, clear; the routes are src/app/withdraw.c).
 *
 * A channel's messages are the entries ID-1 of its stream P:s:CH (redis.c). A withdrawal is one
 * script: XDEL of the entry (the data leaves Redis), the MQTT retained message cleared when it is
 * that message, and a control command {"op":"withdraw",...} published on the feed, so that every
 * node sees it after the message itself (pub/sub keeps order) and puts a tombstone in its place
 * (hub_withdrawn). Readers that load the stream later find a hole at that id above the stream's
 * first entry, which only a withdrawal makes (trimming takes the oldest entries), and fill it with
 * a tombstone (redis.c, RD_READ): ids stay contiguous, nothing is delivered for it. Withdrawing
 * the oldest entry moves the stream's start past it: a client resuming from before it is told of
 * a gap, as for a trimmed message.
 *
 * A deletion is one script: DEL of the stream and of the retained message (P:id:CH stays: ids
 * continue) and {"op":"clear",...,"last_id":N} on the feed; every node drops what it holds up to N
 * (hub_cleared). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/jsonesc.h"
#include "../core/log.h"
#include "redis_internal.h"

/* Both scripts take KEYS: the id counter, the stream, the retained hash, the epoch; ARGV: the
 * channel, an epoch candidate, the control channel, the control payload, the id (withdraw).
 * RD_WITHDRAW answers {epoch, 1} or {epoch, 0} (no such entry); its payload is whole. */
static const char RD_WITHDRAW[] =
    "local e = redis.call('GET', KEYS[4])\n"
    "if not e then e = ARGV[2]; redis.call('SET', KEYS[4], e) end\n"
    "local sid = ARGV[5] .. '-1'\n"
    "if #redis.call('XRANGE', KEYS[2], sid, sid) == 0 then return {e, 0} end\n"
    "redis.call('XDEL', KEYS[2], sid)\n"
    "local ret = redis.call('HGET', KEYS[3], ARGV[1])\n"
    "if ret and string.sub(ret, 1, #ARGV[5] + 1) == ARGV[5] .. ' ' then redis.call('HDEL', KEYS[3], ARGV[1]) end\n"
    "redis.call('PUBLISH', ARGV[3], ARGV[4])\n"
    "return {e, 1}\n";

/* RD_CLEAR answers {epoch, LAST} or {epoch, -1} (no such channel); its payload lacks the last id
 * and its end. */
static const char RD_CLEAR[] =
    "local e = redis.call('GET', KEYS[4])\n"
    "if not e then e = ARGV[2]; redis.call('SET', KEYS[4], e) end\n"
    "local last = redis.call('GET', KEYS[1]) or '0'\n"
    "if last == '0' and redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then return {e, -1} end\n"
    "redis.call('DEL', KEYS[2])\n"
    "redis.call('HDEL', KEYS[3], ARGV[1])\n"
    "redis.call('PUBLISH', ARGV[3], ARGV[4] .. last .. '\"}')\n"
    "return {e, last}\n";

typedef struct {
    rd_req_t q;
    list_node_t wait; /* in r->wds */
    engine_done_cb cb;
    void *arg;
} rd_wd_t;

static void rd__wd_done(rd_t *r, redisReply *rep, rd_req_t *q)
{
    rd_wd_t *w = (rd_wd_t *)q;
    list_unlink(&w->wait);
    if (!r->closing && w->cb) {
        int rc = HR_EUNAVAIL;
        uint64_t last = 0;
        if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 && rep->element[0]->type == REDIS_REPLY_STRING) {
            rd__epoch(r, rep->element[0]->str, rep->element[0]->len);
            const redisReply *v = rep->element[1];
            if (v->type == REDIS_REPLY_INTEGER) rc = v->integer == 1 ? 0 : HR_ENOTFOUND;
            else if (v->type == REDIS_REPLY_STRING) rc = 0, last = strtoull(v->str, NULL, 10);
        } else if (rep && rep->type == REDIS_REPLY_ERROR) {
            log_warn("redis: a withdrawal or deletion failed: %s", rep->str);
        }
        w->cb(w->arg, rc, last);
    }
    free(w);
}

/* Runs script (RD_WITHDRAW with id, RD_CLEAR with id 0) for channel name[0..n); cb gets its
 * answer. */
static int rd__wd_run(rd_t *r, const char *script, size_t slen, const char *name, size_t n, uint64_t id,
                      engine_done_cb cb, void *arg)
{
    rd_wd_t *w = malloc(sizeof(*w));
    if (!w) return HR_ENOMEM;
    *w = (rd_wd_t){.cb = cb, .arg = arg};
    char ki[HUB_MAX_CHANNEL + 80], ks[HUB_MAX_CHANNEL + 80], kr[80], ke[80], ne[33], ctl[sizeof(r->feedpfx) + 8],
        pl[6 * HUB_MAX_CHANNEL + 160], ids[24];
    rd__key(r, ki, sizeof(ki), "id", name, n);
    rd__key(r, ks, sizeof(ks), "s", name, n);
    snprintf(kr, sizeof(kr), "%s:retained", r->prefix);
    snprintf(ke, sizeof(ke), "%s:epoch", r->prefix);
    rd__candidate(r, ne);
    snprintf(ctl, sizeof(ctl), "%s$ctl", r->feedpfx);
    snprintf(ids, sizeof(ids), "%" PRIu64, id);
    /* the control command: "NODE {"op":OP,"channel":"C",...}" (RD_CLEAR appends the last id) */
    size_t pn = (size_t)snprintf(pl, sizeof(pl), "%s {\"op\":\"%s\",\"channel\":\"", r->node, id ? "withdraw" : "clear");
    pn += json_escape(name, n, pl + pn, sizeof(pl) - pn);
    pn += (size_t)snprintf(pl + pn, sizeof(pl) - pn, id ? "\",\"id\":\"%s\"}" : "\",\"last_id\":\"", ids);
    const char *argv[] = {"EVAL", script, "4", ki, ks, kr, ke, name, ne, ctl, pl, ids};
    size_t len[12];
    for (int i = 0; i < 12; i++) len[i] = strlen(argv[i]);
    len[1] = slen;
    len[7] = n;
    len[10] = pn < sizeof(pl) ? pn : sizeof(pl) - 1;
    rd_conn_kick(&r->cmd);
    int rc = rd_conn_send(&r->cmd, &w->q, rd__wd_done, 12, argv, len);
    if (rc < 0) {
        free(w);
        return HR_EUNAVAIL;
    }
    list_push_back(&r->wds, &w->wait);
    return 0;
}

int rd_withdraw(engine_t *e, const char *name, size_t n, uint64_t id, engine_done_cb cb, void *arg)
{
    return rd__wd_run(container_of(e, rd_t, eng), RD_WITHDRAW, sizeof(RD_WITHDRAW) - 1, name, n, id, cb, arg);
}

int rd_clear(engine_t *e, const char *name, size_t n, engine_done_cb cb, void *arg)
{
    return rd__wd_run(container_of(e, rd_t, eng), RD_CLEAR, sizeof(RD_CLEAR) - 1, name, n, 0, cb, arg);
}

void rd_wd_cancel(rd_t *r, void *arg)
{
    for (list_node_t *p = r->wds.next; p != &r->wds; p = p->next) {
        rd_wd_t *w = container_of(p, rd_wd_t, wait);
        if (w->arg == arg) w->cb = NULL;
    }
}
