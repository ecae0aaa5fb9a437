/* sockjs.c - SockJS sessions: the table, the receivers and the frames they carry; see sockjs.h.
 *
 * A session's life: made by its first receiving request (or a framed WebSocket, which is not in
 * the table); "o" to that request; messages wait in the detached connection's write queue and
 * leave as one a[...] frame per receiver turn (the loop's write phase calls sj__flush through
 * conn_ops_t.flush, so a burst of messages makes one frame); "h" every sockjs_heartbeat to a
 * receiver; closed by its application (sockjs_sess_close: the close frame goes after what is
 * queued and answers later requests) or by sockjs_disconnect_delay with no receiver, and freed
 * in the loop's closing phase (conn_close of the detached connection). */
#include "sockjs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/hmap.h"
#include "../core/list.h"
#include "../core/log.h"

struct sockjs_server {
    hmap_t map;
    list_t all;
    uint32_t n;
    uint64_t open[SJ_NKINDS];       /* sessions now, by the transport that made them */
    uint64_t opened_total, refused_total, timeouts_total;
    bool refused_logged;
};

typedef struct sj_ws {
    ws_t ws;
    sockjs_sess_t *ss;
} sj_ws_t;

struct sockjs_sess {
    http_conn_t vc; /* detached: vc.base.wq holds the messages (JSON strings) no receiver took yet */
    hmap_node_t node;
    list_node_t link;
    sockjs_server_t *srv;
    xp_ctx_t *x;
    const sockjs_service_t *svc;
    void *app;
    http_conn_t *rx; /* the receiving request (parked poll or stream), or NULL */
    sj_ws_t *ws;     /* the framed WebSocket that carries the session, or NULL */
    sockjs_rxfmt_t fmt;
    uint64_t rx_sent; /* bytes on the current streaming response */
    tw_entry_t tick;  /* heartbeat while a receiver is attached; the disconnect delay while none */
    uint8_t kind;
    bool in_map, closed;
    uint16_t close_code;
    char close_reason[64];
    char owner[ACL_MAX_SUB + 16]; /* auth_name of the identity that opened it ("" with access control off) */
    uint16_t id_len;
    char id[sizeof(void *) + SOCKJS_MAX_ID]; /* the table's key: the service, then the session id (sj__key) */
};

static const char *const sj_kind_names[SJ_NKINDS] = {"websocket", "xhr", "xhr_streaming", "eventsource", "htmlfile",
                                                     "jsonp"};

/* ---- frames in each receiver's format ---- */

static const char *sj__ctype(uint8_t kind)
{
    switch (kind) {
    case SJ_EVENTSOURCE: return "text/event-stream; charset=UTF-8";
    case SJ_HTMLFILE: return "text/html; charset=UTF-8";
    default: return "application/javascript; charset=UTF-8";
    }
}

/* frame[0..n) as the receiver's body bytes: a new reference or NULL. */
static bytes_t *sj__format(const sockjs_rxfmt_t *f, const char *frame, size_t n)
{
    if (f->kind == SJ_XHR || f->kind == SJ_XHR_STREAMING) {
        bytes_t *b = bytes_new(n + 1);
        if (!b) return NULL;
        memcpy(b->data, frame, n);
        b->data[n] = '\n';
        return b;
    }
    if (f->kind == SJ_EVENTSOURCE) {
        bytes_t *b = bytes_new(n + 10);
        if (!b) return NULL;
        memcpy(b->data, "data: ", 6);
        memcpy(b->data + 6, frame, n);
        memcpy(b->data + 6 + n, "\r\n\r\n", 4);
        return b;
    }
    /* htmlfile and jsonp: the frame as a JavaScript string argument, safe inside <script> */
    size_t cap = n * 6 + SOCKJS_MAX_CALLBACK + 64;
    bytes_t *b = bytes_new(cap);
    if (!b) return NULL;
    size_t o = f->kind == SJ_HTMLFILE ? (size_t)snprintf(b->data, cap, "<script>\np(")
                                      : (size_t)snprintf(b->data, cap, "%s(", f->cb);
    size_t q = sockjs_quote(frame, n, true, b->data + o, cap - o);
    o += q;
    const char *tail = f->kind == SJ_HTMLFILE ? ");\n</script>\r\n" : ");\r\n";
    memcpy(b->data + o, tail, strlen(tail));
    b->len = o + strlen(tail);
    return b;
}

static bytes_t *sj__prelude(const sockjs_rxfmt_t *f)
{
    if (f->kind == SJ_XHR_STREAMING) {
        bytes_t *b = bytes_new(2049);
        if (!b) return NULL;
        memset(b->data, 'h', 2048);
        b->data[2048] = '\n';
        return b;
    }
    if (f->kind == SJ_EVENTSOURCE) return bytes_copy("\r\n", 2);
    if (f->kind != SJ_HTMLFILE) return NULL;
    char head[2048];
    int n = snprintf(head, sizeof(head),
                     "<!doctype html>\n<html><head>\n"
                     "  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n"
                     "  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n"
                     "</head><body><h2>Don't panic!</h2>\n"
                     "  <script>\n    document.domain = document.domain;\n    var c = parent.%s;\n    c.start();\n"
                     "    function p(d) {c.message(d);};\n    window.onload = function() {c.stop();};\n  </script>\n",
                     f->cb);
    if (n < 0 || n > 1200) return NULL;
    size_t len = (size_t)n;
    while (len < 1030) head[len++] = ' '; /* browsers render a streamed page only after 1 KB */
    memcpy(head + len, "\r\n\r\n", 4);
    return bytes_copy(head, len + 4);
}

/* ---- receivers ---- */

static void sj__arm(sockjs_sess_t *ss);

static bool sj__has_rx(const sockjs_sess_t *ss) { return ss->rx || ss->ws; }

static void sj__park_close(http_conn_t *hc);
static void sj__park_shutdown(http_conn_t *hc);
static void sj__stream_close(http_conn_t *hc);
static void sj__stream_shutdown(http_conn_t *hc);

static void sj__stream_drain(http_conn_t *hc);

static const http_xport_ops_t sj_park_ops = {.on_close = sj__park_close, .on_shutdown = sj__park_shutdown};
static const http_xport_ops_t sj_stream_ops = {
    .on_close = sj__stream_close, .on_shutdown = sj__stream_shutdown, .on_drain = sj__stream_drain};

/* The receiver leaves (its request is answered, ended or gone): the disconnect delay starts. */
static void sj__detach(sockjs_sess_t *ss)
{
    if (ss->rx) ss->rx->xstate = NULL;
    ss->rx = NULL;
    if (!ss->vc.base.closing) sj__arm(ss);
}

static void sj__end_stream(http_conn_t *hc)
{
    conn_send_copy(&hc->base, "0\r\n\r\n", 5);
    conn_end(&hc->base);
}

/* Sends one frame to the receiver in its format; a polling receiver is answered (and leaves),
 * a streaming one leaves past sockjs_response_limit. */
static void sj__emit(sockjs_sess_t *ss, const char *frame, size_t n)
{
    if (ss->ws) {
        ws_send_copy(&ss->ws->ws, true, frame, n);
        return;
    }
    http_conn_t *hc = ss->rx;
    if (!hc) return;
    bytes_t *b = sj__format(&ss->fmt, frame, n);
    if (!b) {
        sj__detach(ss);
        conn_close(&hc->base, HR_ENOMEM);
        return;
    }
    if (!ss->fmt.streaming) {
        sj__detach(ss);
        http_respond(hc, 200, sj__ctype(ss->fmt.kind), b->data, b->len, ss->fmt.extra);
    } else {
        bytes_t *ch = http_chunk(b->data, b->len);
        if (ch) conn_send_reply(&hc->base, ch);
        bytes_unref(ch);
        ss->rx_sent += b->len;
        if (!ch || ss->rx_sent >= ss->x->cfg->sockjs_response_limit) { /* the client opens the next */
            sj__detach(ss);
            sj__end_stream(hc);
        }
    }
    bytes_unref(b);
}

/* Ends the receiver after a close frame. */
static void sj__end_rx(sockjs_sess_t *ss)
{
    if (ss->ws) {
        sj_ws_t *w = ss->ws;
        ws_close(&w->ws, WS_CLOSE_NORMAL, "Normal closure");
        return;
    }
    if (!ss->rx) return;
    http_conn_t *hc = ss->rx;
    sj__detach(ss);
    if (hc->state == HC_STREAM) {
        sj__end_stream(hc);
    } else if (hc->state == HC_PARKED) { /* a poll still waiting (the session went without a frame for it) */
        static const char frame[] = "c[1002,\"Connection interrupted\"]";
        bytes_t *b = sj__format(&ss->fmt, frame, sizeof(frame) - 1);
        if (b) http_respond(hc, 200, sj__ctype(ss->fmt.kind), b->data, b->len, ss->fmt.extra);
        else conn_close(&hc->base, HR_ENOMEM);
        bytes_unref(b);
    }
}

static void sj__close_frame(sockjs_sess_t *ss)
{
    char f[160];
    size_t n = sockjs_close_frame(ss->close_code, ss->close_reason, f, sizeof(f));
    sj__emit(ss, f, n);
    sj__end_rx(ss);
}

/* ws_frames mode: the complete WebSocket frames at the head of the queue (server frames: whole,
 * unmasked) as one a[...] frame of their text and binary messages (NULL when there are none, or
 * on OOM); a Close frame ends the walk and is reported in *close_code (0: none) and reason. */
static bytes_t *sj__take_ws(sockjs_sess_t *ss, uint16_t *close_code, char *reason, size_t rcap)
{
    conn_t *c = &ss->vc.base;
    struct iovec iov[WQ_IOV_MAX];
    size_t bytes, pos = 0, o = 0, nmsg = 0;
    int k = wq_peek(&c->wq, iov, WQ_IOV_MAX, &bytes);
    unsigned char *buf = malloc(bytes ? bytes : 1);
    bytes_t *f = bytes_new(bytes * 8 + 16); /* escaping: at most 6 per byte, 3 per message */
    if (!buf || !f) {
        free(buf);
        bytes_unref(f);
        return NULL;
    }
    for (int i = 0; i < k; i++) {
        memcpy(buf + o, iov[i].iov_base, iov[i].iov_len);
        o += iov[i].iov_len;
    }
    o = 0;
    f->data[o++] = 'a';
    while (bytes - pos >= 2) {
        uint8_t op = buf[pos] & 0x0f;
        uint64_t len = buf[pos + 1] & 0x7f;
        size_t hl = 2;
        if (len == 126 || len == 127) {
            size_t ext = len == 126 ? 2 : 8;
            if (bytes - pos < 2 + ext) break;
            len = 0;
            for (size_t b = 0; b < ext; b++) len = (len << 8) | buf[pos + 2 + b];
            hl += ext;
        }
        if (len > bytes - pos - hl) break; /* not complete yet */
        const unsigned char *p = buf + pos + hl;
        pos += hl + (size_t)len;
        if (op == WS_OP_TEXT || op == WS_OP_BINARY) {
            f->data[o++] = nmsg++ ? ',' : '[';
            o += sockjs_quote((const char *)p, (size_t)len, false, f->data + o, f->len - o);
        } else if (op == WS_OP_CLOSE) {
            *close_code = len >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : WS_CLOSE_NORMAL;
            snprintf(reason, rcap, "%.*s", len > 2 ? (int)(len - 2 < rcap - 1 ? len - 2 : rcap - 1) : 0,
                     len > 2 ? (const char *)p + 2 : "");
            break;
        }
    }
    wq_advance(&c->wq, pos);
    free(buf);
    if (!nmsg) {
        bytes_unref(f);
        return NULL;
    }
    f->data[o++] = ']';
    f->len = (uint32_t)o;
    return f;
}

/* True while a streaming receiver (or the WebSocket) still has output queued: messages then wait
 * in the session's queue, where max_queued_bytes and slow_policy bound them, and go when it
 * drains (its on_drain flushes again). A receiver's queue thus holds one batch at a time. */
static bool sj__rx_busy(const sockjs_sess_t *ss)
{
    if (ss->ws) return !wq_empty(&ss->ws->ws.hc->base.wq);
    return ss->rx && ss->fmt.streaming && !wq_empty(&ss->rx->base.wq);
}

/* Takes the queued messages to the receiver, as a[...] frames, then the close frame of a closed
 * session. The detached connection's conn_ops_t.flush. */
static void sj__flush(sockjs_sess_t *ss)
{
    conn_t *c = &ss->vc.base;
    uint16_t close_code = 0;
    char close_reason[64] = "";
    if (sj__rx_busy(ss)) return;
    while (!wq_empty(&c->wq) && sj__has_rx(ss) && !close_code && !sj__rx_busy(ss)) {
        if (ss->svc->app->ws_frames) {
            size_t before = c->wq.bytes;
            bytes_t *af = sj__take_ws(ss, &close_code, close_reason, sizeof(close_reason));
            if (af) sj__emit(ss, af->data, af->len);
            bytes_unref(af);
            if (!af && c->wq.bytes == before) break; /* an incomplete frame, or OOM */
            continue;
        }
        struct iovec iov[WQ_IOV_MAX];
        size_t bytes;
        int k = wq_peek(&c->wq, iov, WQ_IOV_MAX, &bytes);
        bytes_t *f = bytes_new(bytes + (size_t)k + 2);
        if (!f) {
            conn_close(c, HR_ENOMEM);
            return;
        }
        size_t o = 0;
        f->data[o++] = 'a';
        for (int i = 0; i < k; i++) {
            f->data[o++] = i ? ',' : '[';
            memcpy(f->data + o, iov[i].iov_base, iov[i].iov_len);
            o += iov[i].iov_len;
        }
        f->data[o++] = ']';
        wq_advance(&c->wq, bytes);
        sj__emit(ss, f->data, o);
        bytes_unref(f);
    }
    if (close_code) { /* the carried WebSocket application closed */
        wq_clear(&c->wq);
        sockjs_sess_close(ss, close_code, close_reason);
        return;
    }
    if (ss->closed) {
        if (wq_empty(&c->wq) && sj__has_rx(ss)) sj__close_frame(ss);
        return;
    }
    if (wq_empty(&c->wq) && ss->app && ss->svc->app->drained) ss->svc->app->drained(ss->app);
}

static void sj__vc_flush(conn_t *c) { sj__flush(container_of(c, sockjs_sess_t, vc.base)); }

static void sj__tick(tw_entry_t *e)
{
    sockjs_sess_t *ss = container_of(e, sockjs_sess_t, tick);
    if (ss->vc.base.closing) return;
    if (ss->closed && ss->app) { /* closed: the application goes now (its subscriptions with it) */
        void *app = ss->app;
        ss->app = NULL;
        ss->svc->app->free(app);
        sj__arm(ss);
        return;
    }
    if (sj__has_rx(ss)) {
        sj__emit(ss, "h", 1);
        if (sj__has_rx(ss)) sj__arm(ss);
        return;
    }
    ss->srv->timeouts_total++;
    conn_close(&ss->vc.base, ss->closed ? 0 : HR_ETIMEDOUT);
}

static void sj__arm(sockjs_sess_t *ss)
{
    const cfg_t *cfg = ss->x->cfg;
    loop_timer(ss->vc.base.loop, &ss->tick, sj__has_rx(ss) ? cfg->sockjs_heartbeat_ms : cfg->sockjs_disconnect_delay_ms);
}

/* The credential's timer (conn_timer on the detached connection, ws_set_id). */
static void sj__vc_timer(conn_t *c)
{
    sockjs_sess_t *ss = container_of(c, sockjs_sess_t, vc.base);
    if (ss->app && ss->svc->app->expired) ss->svc->app->expired(ss->app);
    else sockjs_sess_close(ss, WS_CLOSE_UNAUTHORIZED, "token expired");
}

static void sj__vc_read(conn_t *c) { (void)c; }

/* The loop's closing phase: the session is gone. */
static void sj__vc_close(conn_t *c)
{
    sockjs_sess_t *ss = container_of(c, sockjs_sess_t, vc.base);
    if (!ss->closed && sj__has_rx(ss)) { /* closed by the slow policy or an error */
        ss->closed = true;
        ss->close_code = c->close_reason == HR_EFULL ? 1011 : 1002;
        snprintf(ss->close_reason, sizeof(ss->close_reason), "%s",
                 c->close_reason == HR_EFULL ? "slow consumer" : "Connection interrupted");
        sj__close_frame(ss);
    }
    if (ss->ws) {
        ss->ws->ss = NULL;
        if (!ss->ws->ws.close_sent) ws_close(&ss->ws->ws, WS_CLOSE_GOING_AWAY, "session closed");
        ss->ws = NULL;
    }
    if (ss->rx) sj__end_rx(ss);
    tw_stop(&c->loop->wheel, &ss->tick);
    sockjs_server_t *srv = ss->srv;
    if (ss->in_map) hmap_remove(&srv->map, &ss->node);
    list_unlink(&ss->link);
    srv->n--;
    srv->open[ss->kind]--;
    if (ss->app) ss->svc->app->free(ss->app);
    free(ss);
}

static const conn_ops_t sj_vc_ops = {
    .on_read = sj__vc_read,
    .on_timer = sj__vc_timer,
    .on_close = sj__vc_close,
    .flush = sj__vc_flush,
};

static void sj__park_close(http_conn_t *hc)
{
    sockjs_sess_t *ss = hc->xstate;
    if (ss && ss->rx == hc) sj__detach(ss);
}

static void sj__stream_close(http_conn_t *hc) { sj__park_close(hc); }

static void sj__stream_drain(http_conn_t *hc)
{
    sockjs_sess_t *ss = hc->xstate;
    if (ss && ss->rx == hc && !ss->vc.base.closing) sj__flush(ss);
}

/* The server is stopping: the session ends with 1001 (its receiver gets the close frame). */
static void sj__goodbye(sockjs_sess_t *ss)
{
    if (!ss->closed) {
        ss->closed = true;
        ss->close_code = WS_CLOSE_GOING_AWAY;
        snprintf(ss->close_reason, sizeof(ss->close_reason), "Server shutting down");
    }
    if (sj__has_rx(ss)) sj__close_frame(ss);
    conn_close(&ss->vc.base, HR_ESHUTDOWN);
}

static void sj__park_shutdown(http_conn_t *hc)
{
    sockjs_sess_t *ss = hc->xstate;
    if (ss) sj__goodbye(ss);
    else http_respond(hc, 200, "application/javascript; charset=UTF-8", "c[1001,\"Server shutting down\"]\n", 31, "");
}

static void sj__stream_shutdown(http_conn_t *hc)
{
    sockjs_sess_t *ss = hc->xstate;
    if (ss) sj__goodbye(ss);
    else sj__end_stream(hc);
}

/* ---- the table ---- */

/* The table's key for session id[0..n) of svc: two services may have sessions of one id. */
static size_t sj__key(const sockjs_service_t *svc, const char *id, size_t n, char *out)
{
    memcpy(out, &svc, sizeof(svc));
    memcpy(out + sizeof(svc), id, n);
    return sizeof(svc) + n;
}

static bool sj__eq(const hmap_node_t *node, const void *key, size_t n)
{
    const sockjs_sess_t *ss = container_of(node, sockjs_sess_t, node);
    return ss->id_len == n && memcmp(ss->id, key, n) == 0;
}

static sockjs_server_t *sj__srv(xp_ctx_t *x)
{
    if (x->sockjs) return x->sockjs;
    sockjs_server_t *srv = calloc(1, sizeof(*srv));
    if (!srv || hmap_init(&srv->map, 64, sj__eq) < 0) {
        free(srv);
        return NULL;
    }
    list_init(&srv->all);
    x->sockjs = srv;
    return srv;
}

/* A new session (not in the table yet), or NULL when the limit is reached (answered) or OOM. */
static sockjs_sess_t *sj__new(xp_ctx_t *x, const sockjs_service_t *svc, http_conn_t *hc, const char *id, size_t n,
                              uint8_t kind)
{
    sockjs_server_t *srv = sj__srv(x);
    if (!srv) {
        http_error(hc, HR_ENOMEM, "out of memory");
        return NULL;
    }
    if (srv->n >= x->cfg->sockjs_max_sessions) {
        srv->refused_total++;
        if (!srv->refused_logged) {
            char peer[128];
            log_warn("sockjs: %s: session refused: sockjs_max_sessions (%u) reached (counted in "
                     "herald_sockjs_sessions_refused_total, not logged again)",
                     conn_peer(&hc->base, peer, sizeof(peer)), x->cfg->sockjs_max_sessions);
            srv->refused_logged = true;
        }
        http_error(hc, HR_EUNAVAIL, "too many SockJS sessions (sockjs_max_sessions)");
        return NULL;
    }
    sockjs_sess_t *ss = calloc(1, sizeof(*ss));
    if (!ss) {
        http_error(hc, HR_ENOMEM, "out of memory");
        return NULL;
    }
    conn_init_detached(&ss->vc.base, hc->base.loop, &sj_vc_ops, x->cfg->max_queued_bytes);
    ss->vc.srv = hc->srv;
    ss->vc.base.alias = NULL;
    ss->srv = srv;
    ss->x = x;
    ss->svc = svc;
    ss->kind = kind;
    ss->id_len = (uint16_t)sj__key(svc, id, n, ss->id);
    tw_entry_init(&ss->tick, sj__tick);
    list_push_back(&srv->all, &ss->link);
    srv->n++;
    srv->open[kind]++;
    srv->opened_total++;
    return ss;
}

sockjs_sess_t *sockjs__find(xp_ctx_t *x, const sockjs_service_t *svc, const char *id, size_t n)
{
    if (!x->sockjs || n > SOCKJS_MAX_ID) return NULL;
    char key[sizeof(void *) + SOCKJS_MAX_ID];
    hmap_node_t *node = hmap_get(&x->sockjs->map, key, sj__key(svc, id, n, key));
    return node ? container_of(node, sockjs_sess_t, node) : NULL;
}

/* Answers a request that will not become the receiver with one frame (2010, or a closed
 * session's close frame that the session's receiver already had). */
static void sj__answer_once(http_conn_t *hc, const sockjs_rxfmt_t *f, const char *frame, size_t n)
{
    bytes_t *b = sj__format(f, frame, n);
    if (!b) {
        http_error(hc, HR_ENOMEM, "out of memory");
        return;
    }
    if (!f->streaming) {
        http_respond(hc, 200, sj__ctype(f->kind), b->data, b->len, f->extra);
    } else if (http_stream_begin(hc, sj__ctype(f->kind), f->extra, &sj_stream_ops, NULL, XP_STOMP) == 0) {
        bytes_t *pre = sj__prelude(f);
        bytes_t *c1 = pre ? http_chunk(pre->data, pre->len) : NULL, *c2 = http_chunk(b->data, b->len);
        if (c1) conn_send_reply(&hc->base, c1);
        if (c2) conn_send_reply(&hc->base, c2);
        bytes_unref(pre);
        bytes_unref(c1);
        bytes_unref(c2);
        sj__end_stream(hc);
    }
    bytes_unref(b);
}

void sockjs__receive(xp_ctx_t *x, const sockjs_service_t *svc, http_conn_t *hc, http_req_t *req, const char *id, size_t n,
                     const sockjs_rxfmt_t *f)
{
    sockjs_sess_t *ss = sockjs__find(x, svc, id, n);
    bool fresh = false;
    if (!ss) {
        auth_id_t *aid = xp_auth_request(x, hc, req);
        if (!aid) return; /* 401 answered */
        ss = sj__new(x, svc, hc, id, n, f->kind);
        if (!ss) {
            auth_unref(aid);
            return;
        }
        hmap_insert(&ss->srv->map, &ss->node, hmap_hash(&ss->srv->map, ss->id, ss->id_len));
        ss->in_map = true;
        if (x->auth->enabled) { /* auth_name may return a literal rather than fill the buffer */
            char name[sizeof(ss->owner)];
            snprintf(ss->owner, sizeof(ss->owner), "%s", auth_name(aid, name, sizeof(name)));
        }
        ss->app = svc->app->open(x, ss, aid);
        if (!ss->app) {
            conn_close(&ss->vc.base, HR_ENOMEM);
            http_error(hc, HR_ENOMEM, "out of memory");
            return;
        }
        fresh = true;
    }
    if (!fresh && !sockjs__owner_ok(x, ss, hc, req)) return;
    if (ss->vc.base.closing) {
        sj__answer_once(hc, f, "c[3000,\"Go away!\"]", strlen("c[3000,\"Go away!\"]"));
        return;
    }
    if (sj__has_rx(ss)) {
        sj__answer_once(hc, f, "c[2010,\"Another connection still open\"]", strlen("c[2010,\"Another connection still open\"]"));
        return;
    }
    if (f->streaming) {
        if (http_stream_begin(hc, sj__ctype(f->kind), f->extra, &sj_stream_ops, ss, XP_STOMP) < 0) {
            http_error(hc, HR_EINVAL, "cannot start the stream");
            return;
        }
        bytes_t *pre = sj__prelude(f);
        bytes_t *ch = pre ? http_chunk(pre->data, pre->len) : NULL;
        if (ch) conn_send_reply(&hc->base, ch);
        bytes_unref(pre);
        bytes_unref(ch);
    } else {
        http_park(hc, &sj_park_ops, ss, XP_STOMP);
    }
    ss->rx = hc;
    ss->fmt = *f;
    ss->rx_sent = 0;
    sj__arm(ss);
    if (fresh) sj__emit(ss, "o", 1);
    if (sj__has_rx(ss)) sj__flush(ss);
}

bool sockjs__owner_ok(xp_ctx_t *x, sockjs_sess_t *ss, http_conn_t *hc, http_req_t *req)
{
    if (!x->auth->enabled) return true;
    auth_id_t *aid = xp_auth_request(x, hc, req);
    if (!aid) return false; /* 401 answered */
    char name[sizeof(ss->owner)];
    bool same = strcmp(auth_name(aid, name, sizeof(name)), ss->owner) == 0;
    auth_unref(aid);
    if (!same) {
        char peer[128];
        log_info("sockjs: %s: a request for a session opened by another identity: 404",
                 conn_peer(&hc->base, peer, sizeof(peer)));
        http_respond(hc, 404, "text/plain; charset=UTF-8", "Session not found.", 18, "");
    }
    return same;
}

bool sockjs__open(const sockjs_sess_t *ss) { return !ss->closed && !ss->vc.base.closing; }

int sockjs__deliver(void *arg, char *m, size_t n)
{
    sockjs_sess_t *ss = arg;
    if (!ss->closed && !ss->vc.base.closing && ss->app) ss->svc->app->message(ss->app, m, n);
    return 0;
}

/* ---- the framed WebSocket ---- */

static void sj__ws_message(ws_t *ws, bool text, char *data, size_t n)
{
    (void)text;
    sj_ws_t *w = (sj_ws_t *)ws;
    if (!n || !w->ss) return; /* empty messages are ignored */
    const char *why;
    ssize_t rc = sockjs_decode(data, n, true, UINT32_MAX, data, n, sockjs__deliver, w->ss, &why);
    if (rc < 0) { /* broken JSON: the connection ends at once, as the protocol says */
        char peer[128];
        log_info("sockjs: %s: %s: WebSocket dropped", conn_peer(&ws->hc->base, peer, sizeof(peer)), why);
        conn_close(&ws->hc->base, HR_EPROTO);
    }
}

static void sj__ws_close(ws_t *ws)
{
    sj_ws_t *w = (sj_ws_t *)ws;
    if (w->ss) {
        w->ss->ws = NULL;
        conn_close(&w->ss->vc.base, 0);
        w->ss = NULL;
    }
}

static void sj__ws_drain(ws_t *ws)
{
    sj_ws_t *w = (sj_ws_t *)ws;
    if (w->ss && !w->ss->vc.base.closing) sj__flush(w->ss);
}

static const ws_app_t sj_ws_app = {
    .xp = XP_STOMP,
    .on_message = sj__ws_message,
    .on_drain = sj__ws_drain,
    .on_close = sj__ws_close,
};

void sockjs__websocket(xp_ctx_t *x, const sockjs_service_t *svc, http_conn_t *hc, http_req_t *req)
{
    sockjs_server_t *srv = sj__srv(x);
    if (srv && srv->n >= x->cfg->sockjs_max_sessions) { /* refused before the upgrade, with a status */
        sj__new(x, svc, hc, "", 0, SJ_WEBSOCKET);
        return;
    }
    sj_ws_t *w = (sj_ws_t *)ws_accept(x, hc, req, &sj_ws_app, sizeof(sj_ws_t), false, NULL);
    if (!w) return;
    sockjs_sess_t *ss = sj__new(x, svc, hc, "", 0, SJ_WEBSOCKET);
    if (!ss) { /* after the upgrade: only the connection can go */
        conn_close(&hc->base, HR_ENOMEM);
        return;
    }
    ss->app = svc->app->open(x, ss, auth_ref(w->ws.id));
    if (!ss->app) {
        conn_close(&ss->vc.base, HR_ENOMEM);
        conn_close(&hc->base, HR_ENOMEM);
        return;
    }
    w->ss = ss;
    ss->ws = w;
    sj__arm(ss);
    sj__emit(ss, "o", 1);
    sj__flush(ss);
}

/* ---- the applications' side ---- */

http_conn_t *sockjs_sess_conn(sockjs_sess_t *ss) { return &ss->vc; }

sockjs_sess_t *sockjs_sess_of(http_conn_t *vc) { return container_of(vc, sockjs_sess_t, vc); }

bytes_t *sockjs_unit(const char *p, size_t n, const bytes_t *tail)
{
    size_t tn = tail ? tail->len : 0, cap = (n + tn) * 6 + 2;
    bytes_t *b = bytes_new(cap);
    if (!b) return NULL;
    if (!tn) {
        b->len = sockjs_quote(p, n, false, b->data, cap);
        return b;
    }
    char *joined = malloc(n + tn); /* escaping works on whole characters: join first */
    if (!joined) {
        bytes_unref(b);
        return NULL;
    }
    memcpy(joined, p, n);
    memcpy(joined + n, tail->data, tn);
    b->len = sockjs_quote(joined, n + tn, false, b->data, cap);
    free(joined);
    return b;
}

int sockjs_sess_send(sockjs_sess_t *ss, const char *p, size_t n)
{
    if (ss->closed) return HR_EIO;
    bytes_t *u = sockjs_unit(p, n, NULL);
    if (!u) return HR_ENOMEM;
    int rc = conn_send_reply(&ss->vc.base, u);
    bytes_unref(u);
    return rc;
}

void sockjs_sess_close(sockjs_sess_t *ss, uint16_t code, const char *reason)
{
    if (ss->closed || ss->vc.base.closing) return;
    ss->closed = true;
    ss->close_code = code;
    snprintf(ss->close_reason, sizeof(ss->close_reason), "%s", reason);
    sj__flush(ss);
    /* the application is freed from the timer (not from inside its own call); the session then
     * answers its close frame until the disconnect delay has passed */
    loop_timer(ss->vc.base.loop, &ss->tick, 0);
}

void sockjs_shutdown(xp_ctx_t *x)
{
    if (!x->sockjs) return;
    list_node_t *pos, *tmp;
    list_each_safe(pos, tmp, &x->sockjs->all)
    {
        sockjs_sess_t *ss = container_of(pos, sockjs_sess_t, link);
        if (!ss->vc.base.closing) sj__goodbye(ss);
    }
}

void sockjs_free(xp_ctx_t *x)
{
    if (!x->sockjs) return;
    hmap_free(&x->sockjs->map);
    free(x->sockjs);
    x->sockjs = NULL;
}

size_t sockjs_metrics(const xp_ctx_t *x, char *out, size_t cap)
{
    const sockjs_server_t *srv = x->sockjs;
    size_t n = 0;
    int k = snprintf(out, cap, "# HELP herald_sockjs_sessions SockJS sessions open, by the transport that opened them.\n"
                               "# TYPE herald_sockjs_sessions gauge\n");
    if (k < 0 || (size_t)k >= cap) return 0;
    n = (size_t)k;
    for (int i = 0; i < SJ_NKINDS; i++) {
        k = snprintf(out + n, cap - n, "herald_sockjs_sessions{transport=\"%s\"} %llu\n", sj_kind_names[i],
                     (unsigned long long)(srv ? srv->open[i] : 0));
        if (k < 0 || (size_t)k >= cap - n) return n;
        n += (size_t)k;
    }
    k = snprintf(out + n, cap - n,
                 "# HELP herald_sockjs_sessions_total SockJS sessions opened.\n# TYPE herald_sockjs_sessions_total counter\n"
                 "herald_sockjs_sessions_total %llu\n"
                 "# HELP herald_sockjs_sessions_refused_total SockJS sessions refused at sockjs_max_sessions.\n"
                 "# TYPE herald_sockjs_sessions_refused_total counter\nherald_sockjs_sessions_refused_total %llu\n"
                 "# HELP herald_sockjs_session_timeouts_total SockJS sessions closed after sockjs_disconnect_delay "
                 "without a receiver.\n# TYPE herald_sockjs_session_timeouts_total counter\n"
                 "herald_sockjs_session_timeouts_total %llu\n",
                 (unsigned long long)(srv ? srv->opened_total : 0), (unsigned long long)(srv ? srv->refused_total : 0),
                 (unsigned long long)(srv ? srv->timeouts_total : 0));
    if (k > 0 && (size_t)k < cap - n) n += (size_t)k;
    return n;
}
