/* stream.c - shared streaming machinery; see stream.h. */
#include "stream.h"

#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"
#include "../hub/presence.h"

static int stream__send(stream_t *st, xsub_t *xs, msg_t *m);

static void stream__flush_gaps(stream_t *st)
{
    st->gap_pending = false;
    for (uint32_t i = 0; i < st->nch; i++) {
        xsub_t *xs = &st->subs[i];
        if (!xs->dropped || !xs->s.ch) continue;
        char json[2048];
        size_t n = gap_json_dropped(xs->s.ch, xs, json, sizeof(json));
        bytes_t *f = st->kind->gap_frame ? st->kind->gap_frame(st, json, n) : NULL;
        if (!f) { /* no in-band gap notice in this wire format */
            xs->dropped = 0;
            continue;
        }
        int rc = conn_send(st->c, f);
        bytes_unref(f);
        if (rc < 0) {
            st->gap_pending = true;
            return;
        }
        xs->dropped = 0;
    }
}

static void stream__overflow(stream_t *st, xsub_t *xs, msg_t *m)
{
    xp_ctx_t *x = st->x;
    x->metrics->queue_drops++;
    if (x->cfg->slow_policy == SLOW_DISCONNECT) {
        log_info("%s: slow subscriber over max_queued_bytes on %s: disconnected", xp_names[st->kind->xp], m->channel);
        conn_close(st->c, HR_EFULL);
        return;
    }
    if (!xs->dropped) {
        xs->drop_from = m->id;
        if (!st->gap_pending)
            log_info("%s: slow subscriber over max_queued_bytes on %s: dropping from id %llu", xp_names[st->kind->xp],
                     m->channel, (unsigned long long)m->id);
    }
    xs->drop_to = m->id;
    xs->dropped++;
    st->gap_pending = true;
}

static int stream__send(stream_t *st, xsub_t *xs, msg_t *m)
{
    if (st->gap_pending) {
        /* dropping until the socket has drained completely (then on_drain sends one gap notice):
         * hysteresis, so a backlogged client gets one gap per stall, not one per message */
        stream__overflow(st, xs, m);
        return HR_EFULL;
    }
    int rc;
    if (st->kind->send) {
        rc = st->kind->send(st, xs, m);
    } else {
        bytes_t *f = st->kind->frame(st, xs, m);
        if (!f) return HR_ENOMEM;
        rc = conn_send(st->c, f);
        bytes_unref(f);
    }
    if (rc == HR_EFULL) {
        stream__overflow(st, xs, m);
        return rc;
    }
    if (rc == 0) {
        st->x->metrics->delivered[st->kind->xp]++;
        st->cursor[xs->idx] = m->id;
    }
    return rc;
}

static void stream__deliver(sub_t *s, msg_t *m)
{
    xsub_t *xs = container_of(s, xsub_t, s);
    stream_t *st = s->owner;
    if (st->c->closing || (st->loading & (1u << xs->idx))) return; /* its replay (when resynced) brings it */
    stream__send(st, xs, m);
}

/* The connection's one timer serves the keepalive and the credential's expiry: it wakes at the
 * sooner of the two. */
static void stream__arm(stream_t *st)
{
    uint64_t wait = st->keepalive_ms;
    if (st->exp_ms) {
        uint64_t now = loop_wall_ms();
        if (st->exp_ms < now + wait) wait = st->exp_ms > now ? st->exp_ms - now : 0;
    }
    conn_timer(st->c, wait);
}

static void stream__expired(stream_t *st);

static void stream__on_timer(http_conn_t *hc)
{
    stream_t *st = hc->xstate;
    if (st->exp_ms && loop_wall_ms() >= st->exp_ms) {
        stream__expired(st);
        return;
    }
    if (wq_empty(&hc->base.wq)) conn_send(&hc->base, st->keepalive);
    stream__arm(st);
}

void stream_drained(stream_t *st)
{
    if (st->gap_pending) stream__flush_gaps(st);
}

void stream_free(stream_t *st)
{
    if (st->x->users) users_remove(st->x->users, &st->uc);
    for (uint32_t i = 0; i < st->nch; i++) {
        hub_unsubscribe(st->x->hub, &st->subs[i].s);
        presence_part(st->x->hub->pres, st->subs[i].pm);
    }
    free(st);
}

static void stream__on_drain(http_conn_t *hc) { stream_drained(hc->xstate); }

static void stream__on_close(http_conn_t *hc) { stream_free(hc->xstate); }

static void stream__notice(stream_t *st, const char *event, const char *json, size_t n, uint32_t retry_ms);
static void stream__end(stream_t *st);

/* The server is stopping: a "shutdown" notice with the reconnection hint (SSE: retry:), then
 * the last chunk: the client reconnects - elsewhere - and resumes from its last id. */
static void stream__on_shutdown(http_conn_t *hc)
{
    stream_t *st = hc->xstate;
    if (st->c->closing || st->c->end_after_write) return;
    static const char bye[] = "{\"reason\":\"server shutting down\",\"reconnect\":true}";
    stream__notice(st, "shutdown", bye, sizeof(bye) - 1, st->x->cfg->sse_retry_ms);
    stream__end(st);
}

static const http_xport_ops_t stream_ops = {
    .on_close = stream__on_close,
    .on_timer = stream__on_timer,
    .on_drain = stream__on_drain,
    .on_shutdown = stream__on_shutdown,
};

/* Sends what the client missed on channel i (after its cursor), with a gap notice first. While
 * the store is still loading the channel, marks the replay as waiting for the resync. */
static void stream__replay(stream_t *st, uint32_t i, uint64_t cursor)
{
    msg_t *batch[256];
    chan_t *ch = st->subs[i].s.ch;
    bool first = true;
    while (!st->c->closing) {
        hub_cursor_info_t info;
        uint32_t n = hub_after(st->x->hub, ch, cursor, batch, 256, &info);
        if (info.loading) {
            st->loading |= 1u << i;
            return;
        }
        if (first && info.gap) {
            if (st->kind->gap_frame) {
                char json[2048];
                size_t len = gap_json_resume(ch, cursor, info.first_available, json, sizeof(json));
                bytes_t *f = st->kind->gap_frame(st, json, len);
                if (f) conn_send(st->c, f);
                bytes_unref(f);
            }
            if (n == 0) st->cursor[i] = info.last_id;
        }
        first = false;
        if (n == 0) return;
        for (uint32_t k = 0; k < n; k++) stream__send(st, &st->subs[i], batch[k]);
        cursor = batch[n - 1]->id;
        if (n < 256) return;
    }
}

uint32_t stream_drop_channel(stream_t *st, const char *ch, size_t n, uint32_t *live)
{
    uint32_t k = 0, left = 0;
    for (uint32_t i = 0; i < st->nch; i++) {
        sub_t *s = &st->subs[i].s;
        if (!s->ch) continue;
        if (s->ch->name_len == n && memcmp(s->ch->name, ch, n) == 0) {
            hub_unsubscribe(st->x->hub, s);
            presence_part(st->x->hub->pres, st->subs[i].pm);
            st->subs[i].pm = NULL;
            st->loading &= ~(1u << i);
            k++;
        } else {
            left++;
        }
    }
    *live = left;
    return k;
}

size_t stream_bye_json(const char *reason, bool reconnect, char *out, size_t cap)
{
    size_t rn = strlen(reason);
    if (cap < 6 * rn + 40) return 0;
    size_t o = (size_t)snprintf(out, cap, "{\"reason\":\"");
    o += json_escape(reason, rn, out + o, cap - o);
    o += (size_t)snprintf(out + o, cap - o, "\",\"reconnect\":%s}", reconnect ? "true" : "false");
    return o;
}

/* Sends kind's notice of event with json (stream_start() streams). */
static void stream__notice(stream_t *st, const char *event, const char *json, size_t n, uint32_t retry_ms)
{
    bytes_t *f = st->kind->notice_frame ? st->kind->notice_frame(st, event, json, n, retry_ms) : NULL;
    if (f) conn_send_reply(st->c, f);
    bytes_unref(f);
}

/* The last chunk: the response ends once it is written. */
static void stream__end(stream_t *st)
{
    conn_send_copy(st->c, "0\r\n\r\n", 5);
    conn_end(st->c);
}

/* users.h: the admin ended the user's connections (a "disconnect" notice, then the end). */
static void stream__user_disconnect(users_conn_t *uc, const char *reason, bool reconnect)
{
    stream_t *st = container_of(uc, stream_t, uc);
    if (st->c->closing || st->c->end_after_write) return;
    char json[USERS_MAX_REASON * 6 + 64];
    size_t n = stream_bye_json(reason, reconnect, json, sizeof(json));
    stream__notice(st, "disconnect", json, n, reconnect ? st->x->cfg->sse_retry_ms : 0);
    stream__end(st);
}

/* users.h: the admin unsubscribed the user from ch: an "unsubscribed" notice; the stream ends
 * when it was its last channel. */
static uint32_t stream__user_unsubscribe(users_conn_t *uc, const char *ch, size_t n)
{
    stream_t *st = container_of(uc, stream_t, uc);
    if (st->c->closing || st->c->end_after_write) return 0;
    uint32_t live;
    uint32_t k = stream_drop_channel(st, ch, n, &live);
    if (!k) return 0;
    char json[6 * HUB_MAX_CHANNEL + 64];
    size_t o = (size_t)snprintf(json, sizeof(json), "{\"channel\":\"");
    o += json_escape(ch, n, json + o, sizeof(json) - o);
    o += (size_t)snprintf(json + o, sizeof(json) - o, "\",\"reason\":\"admin\"}");
    stream__notice(st, "unsubscribed", json, o, 0);
    if (!live) stream__end(st);
    return k;
}

static const users_conn_ops_t stream_user_ops = {
    .disconnect = stream__user_disconnect,
    .unsubscribe = stream__user_unsubscribe,
};

/* The subscriber's credential expired: a last frame saying so, the end of the response. */
static void stream__expired(stream_t *st)
{
    if (st->c->closing || st->c->end_after_write) return;
    char peer[64];
    log_info("%s: %s: credential expired: stream ended", xp_names[st->kind->xp], conn_peer(st->c, peer, sizeof(peer)));
    st->x->auth->stats.expired++;
    bytes_t *f = st->kind->expired_frame ? st->kind->expired_frame(st) : NULL;
    if (f) conn_send_reply(st->c, f);
    bytes_unref(f);
    conn_send_copy(st->c, "0\r\n\r\n", 5);
    conn_end(st->c);
}

/* The channel's history changed under subscription s (see sub_t.resync): a replay that waited
 * for the channel's load runs now; a cursor past the channel's last id (the store lost the
 * channel and counts again) gets a gap notice and moves back, so ids never go back silently. */
static void stream__resync(sub_t *s)
{
    xsub_t *xs = container_of(s, xsub_t, s);
    stream_t *st = s->owner;
    uint32_t bit = 1u << xs->idx;
    if (st->c->closing || (!(st->loading & bit) && st->cursor[xs->idx] <= s->ch->last_id)) return;
    st->loading &= ~bit;
    stream__replay(st, xs->idx, st->cursor[xs->idx]);
}

/* sub_t.event: an event about the channel (a withdrawal, unread counts, presence): the kind's
 * notice, when it has one. Not a message: the cursor does not move, and a full queue just misses
 * the notice. */
static void stream__event(sub_t *s, const char *event, const char *json, size_t n)
{
    stream_t *st = s->owner;
    if (!st->kind->event_frame || st->c->closing) return;
    bytes_t *f = st->kind->event_frame(st, event, json, n);
    if (f) conn_send(st->c, f);
    bytes_unref(f);
}

static stream_t *stream__new(xp_ctx_t *x, conn_t *c, const subreq_t *sr, const stream_kind_t *kind, void *owner)
{
    stream_t *st = calloc(1, sizeof(*st) + sr->nch * sizeof(xsub_t));
    if (!st) return NULL;
    st->x = x;
    st->c = c;
    st->owner = owner;
    st->kind = kind;
    st->nch = sr->nch;
    memcpy(st->callback, sr->callback, sizeof(st->callback));
    st->exact = sr->sse_exact;
    memcpy(st->cursor, sr->cursor, sizeof(st->cursor));
    for (uint32_t i = 0; i < sr->nch; i++) {
        st->subs[i].idx = i;
        st->subs[i].s.deliver = stream__deliver;
        st->subs[i].s.resync = stream__resync;
        st->subs[i].s.event = stream__event;
        st->subs[i].s.owner = st;
        st->subs[i].s.ch = sr->ch[i];
        list_init(&st->subs[i].s.link);
    }
    return st;
}

/* Replays what the cursor missed, then subscribes (nothing can be published in between: the
 * loop is single-threaded), counting each subscription in its channel's presence as sr's user's
 * (anonymous without one). */
static void stream__go(stream_t *st, const subreq_t *sr)
{
    if (sr->has_cursor)
        for (uint32_t i = 0; i < sr->nch; i++) stream__replay(st, i, sr->cursor[i]);
    for (uint32_t i = 0; i < sr->nch; i++) {
        hub_subscribe(st->x->hub, sr->ch[i], &st->subs[i].s);
        st->subs[i].pm = presence_join(st->x->hub->pres, sr->ch[i]->name, sr->ch[i]->name_len, sr->user, sr->user_len);
    }
}

stream_t *stream_open(xp_ctx_t *x, conn_t *c, const subreq_t *sr, const stream_kind_t *kind, void *owner)
{
    stream_t *st = stream__new(x, c, sr, kind, owner);
    if (st) stream__go(st, sr);
    return st;
}

void stream_start(xp_ctx_t *x, http_conn_t *hc, subreq_t *sr, const stream_kind_t *kind, bytes_t *keepalive,
                  uint32_t keepalive_ms)
{
    stream_t *st = stream__new(x, &hc->base, sr, kind, NULL);
    if (!st) {
        http_error(hc, HR_ENOMEM, "out of memory");
        return;
    }
    st->hc = hc;
    st->keepalive = keepalive;
    st->keepalive_ms = keepalive_ms;
    int rc = http_stream_begin(hc, kind->ctype, kind->headers, &stream_ops, st, kind->xp);
    if (rc < 0) {
        free(st);
        http_error(hc, rc, "cannot start stream");
        return;
    }
    bytes_t *pre = kind->preamble ? kind->preamble(st) : NULL;
    if (pre) conn_send_copy(&hc->base, pre->data, pre->len);
    bytes_unref(pre);
    stream__go(st, sr);
    st->exp_ms = sr->exp_ms;
    stream__arm(st);
    if (sr->user_len && x->users) {
        st->uc.ops = &stream_user_ops;
        st->uc.kind = xp_names[kind->xp];
        users_add(x->users, sr->user, sr->user_len, &st->uc); /* on failure it is only not listed */
    }
}
