/* common.c - what the push transports share; see transport.h. */
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"
#include "transport.h"



bytes_t *json_encode_msg(const msg_t *m)
{
    bool b64 = !(m->flags & MSG_UTF8);
    size_t dcap = b64 ? 4 * ((m->data_len + 2) / 3) + 8 : 6 * (size_t)m->data_len + 8;
    size_t cap = 160 + 6 * (m->channel_len + m->event_len) + dcap;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    size_t o = (size_t)snprintf(buf, cap, "{\"id\":\"%" PRIu64 "\",\"channel\":\"", m->id);
    o += json_escape(m->channel, m->channel_len, buf + o, cap - o);
    o += (size_t)snprintf(buf + o, cap - o, "\",\"event\":\"");
    o += json_escape(m->event, m->event_len, buf + o, cap - o);
    o += (size_t)snprintf(buf + o, cap - o, "\",\"time\":%" PRIu64 ",\"data\":\"", m->time_ms);
    if (b64)
        o += b64_encode(m->data, m->data_len, buf + o, cap - o);
    else
        o += json_escape(m->data, m->data_len, buf + o, cap - o);
    o += (size_t)snprintf(buf + o, cap - o, b64 ? "\",\"encoding\":\"base64\"}" : "\"}");
    bytes_t *b = bytes_copy(buf, o);
    free(buf);
    return b;
}

size_t cursor_format(const uint64_t *cursor, uint32_t n, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = 0;
    for (uint32_t i = 0; i < n && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, i ? ",%" PRIu64 : "%" PRIu64, cursor[i]);
    return o < cap ? o : cap - 1;
}

size_t gap_json_resume(const chan_t *ch, uint64_t requested, uint64_t first, char *out, size_t cap)
{
    char name[6 * HUB_MAX_CHANNEL + 8];
    size_t nl = json_escape(ch->name, ch->name_len, name, sizeof(name));
    int n = snprintf(out, cap, "{\"channel\":\"%.*s\",\"requested\":\"%" PRIu64 "\",\"first_available\":\"%" PRIu64 "\"}",
                     (int)nl, name, requested, first);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t gap_json_dropped(const chan_t *ch, const xsub_t *xs, char *out, size_t cap)
{
    char name[6 * HUB_MAX_CHANNEL + 8];
    size_t nl = json_escape(ch->name, ch->name_len, name, sizeof(name));
    int n = snprintf(out, cap,
                     "{\"channel\":\"%.*s\",\"dropped\":%" PRIu64 ",\"from\":\"%" PRIu64 "\",\"to\":\"%" PRIu64 "\"}",
                     (int)nl, name, xs->dropped, xs->drop_from, xs->drop_to);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

int cursor_parse(const char *text, size_t len, uint64_t *out, uint32_t nch)
{
    const char *p = text, *end = text + len;
    uint32_t i = 0;
    while (p < end) {
        if (i >= nch) return HR_EINVAL;
        uint64_t id = 0;
        const char *start = p;
        while (p < end && *p >= '0' && *p <= '9') {
            uint64_t digit = (uint64_t)(*p - '0');
            if (id > (UINT64_MAX - digit) / 10) return HR_EINVAL;
            id = id * 10 + digit;
            p++;
        }
        if (p == start) return HR_EINVAL;
        out[i++] = id;
        if (p < end) {
            if (*p != ',') return HR_EINVAL;
            p++;
            if (p == end) return HR_EINVAL;
        }
    }
    return i == nch ? 0 : HR_EINVAL;
}

uint32_t subreq_names(const subreq_t *sr, span_t *names)
{
    for (uint32_t i = 0; i < sr->nch; i++) names[i] = (span_t){sr->ch[i]->name, sr->ch[i]->name_len};
    return sr->nch;
}

int subreq_parse(xp_ctx_t *x, http_req_t *req, span_t chans, const auth_id_t *id, subreq_t *out, const char **why,
                 span_t *denied)
{
    memset(out, 0, sizeof(*out));
    char names[SUB_MAX_CHANNELS][HUB_MAX_CHANNEL + 1];
    size_t lens[SUB_MAX_CHANNELS];
    const char *p = chans.p, *end = chans.p + chans.n;
    while (1) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        if (out->nch == SUB_MAX_CHANNELS) {
            *why = "too many channels (at most 16)";
            return HR_ECHANNEL;
        }
        ssize_t n = http_pct_decode(p, (size_t)(e - p), names[out->nch], sizeof(names[0]));
        if (n == 3 && memcmp(names[out->nch], "@me", 3) == 0) { /* the token user's own channel */
            if (!id || id->kind != AUTH_USER) {
                *why = "@me needs a user token";
                return HR_EAUTH;
            }
            n = xp_user_feed(x, id, names[out->nch], sizeof(names[0]));
            if (n < 0) {
                *why = "user_channel does not name one channel";
                return HR_ECHANNEL;
            }
        } else if (n == 4 && memcmp(names[out->nch], "@all", 4) == 0) { /* the broadcast channel */
            n = (ssize_t)strlen(x->cfg->broadcast_channel);
            if (!n) {
                *why = "broadcast is off (broadcast_channel is empty)";
                return HR_ECHANNEL;
            }
            memcpy(names[out->nch], x->cfg->broadcast_channel, (size_t)n + 1);
        }
        if (n < 0 || !hub_channel_valid(names[out->nch], (size_t)n)) {
            *why = "invalid channel name";
            return HR_ECHANNEL;
        }
        for (uint32_t k = 0; k < out->nch; k++)
            if (lens[k] == (size_t)n && memcmp(names[k], names[out->nch], (size_t)n) == 0) {
                *why = "channel listed twice";
                return HR_ECHANNEL;
            }
        lens[out->nch++] = (size_t)n;
        if (!comma) break;
        p = comma + 1;
    }
    subreq_user(out, id);
    span_t v = http_req_header(req, "Last-Event-ID");
    char q[SUB_MAX_CHANNELS * 21 + 1];
    if (!v.p) {
        ssize_t qn = http_req_query(req, "last_id", q, sizeof(q));
        if (qn == HR_EINVAL) {
            *why = "invalid last_id";
            return HR_EINVAL;
        }
        if (qn >= 0) v = (span_t){q, (size_t)qn};
    }
    if (v.p && v.n) {
        if (cursor_parse(v.p, v.n, out->cursor, out->nch) < 0) {
            *why = "invalid cursor: one id per channel, comma-separated";
            return HR_EINVAL;
        }
        out->has_cursor = true;
    }
    for (uint32_t i = 0; id && i < out->nch; i++)
        if (!auth_can_subscribe(id, names[i], lens[i])) {
            /* names[] dies with this call: the caller reports it from its own copy */
            *denied = (span_t){chans.p, chans.n};
            *why = "not allowed to subscribe to this channel";
            out->nch = i;
            return HR_EFORBIDDEN;
        }
    for (uint32_t i = 0; i < out->nch; i++) {
        out->ch[i] = hub_channel(x->hub, names[i], lens[i], true);
        if (!out->ch[i]) {
            int rc = x->hub->load_rc < 0 ? x->hub->load_rc : HR_ENOMEM;
            *why = rc == HR_EUNAVAIL ? "redis is unavailable"
                   : rc == HR_EFULL  ? "too many channels (max_channels)"
                                     : "out of memory";
            return rc;
        }
        if (!out->has_cursor) out->cursor[i] = out->ch[i]->last_id;
    }
    return 0;
}

bytes_t *poll_answer(const span_t *names, uint32_t nch, const uint64_t *cursor, msg_t **msgs, uint32_t n,
                     const char *gap_info)
{
    size_t cap = 256 + (size_t)nch * (HUB_MAX_CHANNEL * 6 + 24) + (gap_info ? strlen(gap_info) : 0);
    for (uint32_t i = 0; i < n; i++) {
        bytes_t *j = msg_encoded(msgs[i], ENC_JSON, json_encode_msg);
        if (!j) return NULL;
        cap += j->len + 1;
    }
    char *buf = malloc(cap);
    if (!buf) return NULL;
    size_t o = (size_t)snprintf(buf, cap, "{\"channel\":\"");
    for (uint32_t i = 0; i < nch; i++) {
        if (i) buf[o++] = ',';
        o += json_escape(names[i].p, names[i].n, buf + o, cap - o);
    }
    o += (size_t)snprintf(buf + o, cap - o, "\",\"last_id\":\"");
    o += cursor_format(cursor, nch, buf + o, cap - o);
    o += (size_t)snprintf(buf + o, cap - o, "\",\"count\":%u,\"gap\":%s", n, gap_info ? "true" : "false");
    if (gap_info) o += (size_t)snprintf(buf + o, cap - o, ",\"gap_info\":[%s]", gap_info);
    o += (size_t)snprintf(buf + o, cap - o, ",\"messages\":[");
    for (uint32_t i = 0; i < n; i++) {
        bytes_t *j = msgs[i]->enc[ENC_JSON];
        if (i) buf[o++] = ',';
        memcpy(buf + o, j->data, j->len);
        o += j->len;
    }
    buf[o++] = ']';
    buf[o++] = '}';
    bytes_t *b = bytes_copy(buf, o);
    free(buf);
    return b;
}

void xp_owed_init(xp_owedq_t *q)
{
    q->head = q->wait = NULL;
    q->tail = &q->head;
    q->n = q->waiting = 0;
}

xp_owed_t *xp_owed_push(xp_owedq_t *q, const void *data, size_t len, bool waiting)
{
    xp_owed_t *e = q->n < XP_MAX_OWED ? malloc(sizeof(*e) + len) : NULL;
    if (!e) return NULL;
    *e = (xp_owed_t){.waiting = waiting, .len = (uint32_t)len};
    if (len) memcpy(e->data, data, len);
    *q->tail = e;
    q->tail = &e->next;
    q->n++;
    q->waiting += waiting;
    if (waiting && !q->wait) q->wait = e;
    return e;
}

/* e is ready: the oldest waiting entry moves on past it (forward only: O(1) amortized per
 * publish, however many a connection pipelines). */
static void xp_owed__ready(xp_owedq_t *q, xp_owed_t *e, int rc)
{
    e->waiting = false;
    q->waiting--;
    e->rc = rc;
    if (q->wait == e)
        for (q->wait = e->next; q->wait && !q->wait->waiting;) q->wait = q->wait->next;
}

void xp_owed_settle(xp_owedq_t *q, xp_owed_t *e, int rc)
{
    if (e->waiting) xp_owed__ready(q, e, rc);
}

void xp_owed_done(xp_owedq_t *q, int rc, const msg_t *m, uint32_t reached)
{
    xp_owed_t *e = q->wait;
    if (!e) return;
    e->id = rc == 0 ? m->id : 0;
    e->reached = reached;
    xp_owed__ready(q, e, rc);
}

xp_owed_t *xp_owed_pop(xp_owedq_t *q)
{
    xp_owed_t *e = q->head;
    if (!e || e->waiting) return NULL;
    if (!(q->head = e->next)) q->tail = &q->head;
    q->n--;
    return e;
}

void xp_owed_free(xp_owedq_t *q)
{
    for (xp_owed_t *e = q->head, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    xp_owed_init(q);
}

void xp_sub_limit(xp_ctx_t *x, conn_t *c, const char *proto)
{
    if (x->metrics->subs_refused++) return;
    char peer[64];
    log_warn("limits: %s (%s): max_subscriptions (%u per connection) reached: subscription refused (further "
             "refusals are counted in herald_limit_hits_total, not logged)",
             conn_peer(c, peer, sizeof(peer)), proto, x->cfg->max_subscriptions);
}

void subreq_user(subreq_t *sr, const auth_id_t *id)
{
    sr->user_len = 0;
    if (!id || id->kind != AUTH_USER || id->sub_len > ACL_MAX_SUB) return;
    memcpy(sr->user, id->sub_id, id->sub_len);
    sr->user_len = id->sub_len;
}
