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

/* KEYS: stream, retained hash, epoch. ARGV: id, channel, epoch candidate, control channel,
 * control payload. Answers {epoch, 1} or {epoch, 0} (no such entry). */
static const char RD_WITHDRAW[] =
    "local e = redis.call('GET', KEYS[3])\n"
    "if not e then e = ARGV[3]; redis.call('SET', KEYS[3], e) end\n"
    "local sid = ARGV[1] .. '-1'\n"
    "if #redis.call('XRANGE', KEYS[1], sid, sid) == 0 then return {e, 0} end\n"
    "redis.call('XDEL', KEYS[1], sid)\n"
    "local ret = redis.call('HGET', KEYS[2], ARGV[2])\n"
    "if ret and string.sub(ret, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then redis.call('HDEL', KEYS[2], ARGV[2]) end\n"
    "redis.call('PUBLISH', ARGV[4], ARGV[5])\n"
    "return {e, 1}\n";

/* KEYS: id counter, stream, retained hash, epoch. ARGV: channel, epoch candidate, control
 * channel, control payload without the last id and its end. Answers {epoch, LAST} or {epoch, -1}
 * (no such channel). */
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

/* The control command's payload: "NODE {"op":OP,"channel":"C"<rest>" into out (at least
 * 6 * HUB_MAX_CHANNEL + 128 bytes). Returns its length. */
static size_t rd__wd_payload(const rd_t *r, const char *op, const char *name, size_t n, const char *rest, char *out,
                             size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "%s {\"op\":\"%s\",\"channel\":\"", r->node, op);
    o += json_escape(name, n, out + o, cap - o);
    o += (size_t)snprintf(out + o, cap - o, "\"%s", rest);
    return o < cap ? o : cap - 1;
}

static int rd__wd_send(rd_t *r, rd_wd_t *w, int argc, const char **argv, const size_t *len)
{
    rd_conn_kick(&r->cmd);
    int rc = rd_conn_send(&r->cmd, &w->q, rd__wd_done, argc, argv, len);
    if (rc < 0) {
        free(w);
        return HR_EUNAVAIL;
    }
    list_push_back(&r->wds, &w->wait);
    return 0;
}

int rd_withdraw(engine_t *e, const char *name, size_t n, uint64_t id, engine_done_cb cb, void *arg)
{
    rd_t *r = container_of(e, rd_t, eng);
    rd_wd_t *w = malloc(sizeof(*w));
    if (!w) return HR_ENOMEM;
    *w = (rd_wd_t){.cb = cb, .arg = arg};
    char ks[HUB_MAX_CHANNEL + 80], kr[80], ke[80], ids[24], ne[33], ctl[sizeof(r->feedpfx) + 8],
        pl[6 * HUB_MAX_CHANNEL + 160], rest[48];
    rd__key(r, ks, sizeof(ks), "s", name, n);
    snprintf(kr, sizeof(kr), "%s:retained", r->prefix);
    snprintf(ke, sizeof(ke), "%s:epoch", r->prefix);
    snprintf(ids, sizeof(ids), "%" PRIu64, id);
    rd__candidate(r, ne);
    snprintf(ctl, sizeof(ctl), "%s$ctl", r->feedpfx);
    snprintf(rest, sizeof(rest), ",\"id\":\"%" PRIu64 "\"}", id);
    size_t pn = rd__wd_payload(r, "withdraw", name, n, rest, pl, sizeof(pl));
    const char *argv[] = {"EVAL", RD_WITHDRAW, "3", ks, kr, ke, ids, name, ne, ctl, pl};
    size_t len[11];
    for (int i = 0; i < 11; i++) len[i] = strlen(argv[i]);
    len[1] = sizeof(RD_WITHDRAW) - 1;
    len[7] = n;
    len[10] = pn;
    return rd__wd_send(r, w, 11, argv, len);
}

int rd_clear(engine_t *e, const char *name, size_t n, engine_done_cb cb, void *arg)
{
    rd_t *r = container_of(e, rd_t, eng);
    rd_wd_t *w = malloc(sizeof(*w));
    if (!w) return HR_ENOMEM;
    *w = (rd_wd_t){.cb = cb, .arg = arg};
    char ki[HUB_MAX_CHANNEL + 80], ks[HUB_MAX_CHANNEL + 80], kr[80], ke[80], ne[33], ctl[sizeof(r->feedpfx) + 8],
        pl[6 * HUB_MAX_CHANNEL + 160];
    rd__key(r, ki, sizeof(ki), "id", name, n);
    rd__key(r, ks, sizeof(ks), "s", name, n);
    snprintf(kr, sizeof(kr), "%s:retained", r->prefix);
    snprintf(ke, sizeof(ke), "%s:epoch", r->prefix);
    rd__candidate(r, ne);
    snprintf(ctl, sizeof(ctl), "%s$ctl", r->feedpfx);
    size_t pn = rd__wd_payload(r, "clear", name, n, ",\"last_id\":\"", pl, sizeof(pl));
    const char *argv[] = {"EVAL", RD_CLEAR, "4", ki, ks, kr, ke, name, ne, ctl, pl};
    size_t len[11];
    for (int i = 0; i < 11; i++) len[i] = strlen(argv[i]);
    len[1] = sizeof(RD_CLEAR) - 1;
    len[7] = n;
    len[10] = pn;
    return rd__wd_send(r, w, 11, argv, len);
}

void rd_wd_cancel(rd_t *r, void *arg)
{
    for (list_node_t *p = r->wds.next; p != &r->wds; p = p->next) {
        rd_wd_t *w = container_of(p, rd_wd_t, wait);
        if (w->arg == arg) w->cb = NULL;
    }
}
