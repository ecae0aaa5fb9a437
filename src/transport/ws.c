/* ws.c - WebSocket sessions; see ws.h.
 *
 * Input: frames are parsed straight out of the connection's read buffer (whose limit is raised
 * to one whole frame at ws_max_message), unmasked in place, and an unfragmented message is
 * handed to the application without a copy. Fragments of a longer message are gathered in a
 * buffer that exists only while such a message is in progress. Text is checked for UTF-8 as
 * its bytes arrive, also inside a frame still being received (a frame is unmasked and checked in
 * place piece by piece, rx_done counting what is done, so no byte is unmasked or checked
 * twice): the first invalid sequence fails the connection with 1007 at once, even if the frame
 * announced 64 KiB and the rest never comes. A compressed message is checked once inflated
 * (when its last frame arrived).
 *
 * Liveness: the connection's one timer wakes every ws_ping_interval; if the peer sent nothing
 * since the last wake, a Ping goes out, and a peer that stays silent for ws_ping_timeout after it
 * is dropped. Any input counts as life (a Pong, a message, a ping of its own).
 *
 * Closing: a Close from the peer is answered with the same code and the TCP connection is
 * closed once it is written (the server closes first, RFC 6455 section 7.1.1). A violation is
 * answered with a Close carrying the RFC's code and a reason, then the connection ends. */
#include "ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"

bool ws_same_origin(const http_req_t *req, span_t origin)
{
    span_t host = http_req_header(req, "Host");
    const char *sep = origin.p ? memmem(origin.p, origin.n, "://", 3) : NULL;
    if (!host.p || !sep) return false;
    span_t auth = {sep + 3, (size_t)(origin.p + origin.n - sep - 3)};
    if (auth.n != host.n || !auth.n) return false;
    for (size_t i = 0; i < auth.n; i++)
        if ((auth.p[i] | 0x20) != (host.p[i] | 0x20)) return false;
    return true;
}

/* Decides whether origin may open a WebSocket: the page's own origin always; ws_origins "*" any;
 * otherwise the origins it lists (cross-site WebSocket hijacking: a page elsewhere must not open
 * a connection that carries the user's cookie). */
static bool ws__origin_ok(const cfg_t *cfg, const http_req_t *req, span_t origin)
{
    if (!origin.p) return true; /* not a browser: nothing to protect against */
    return ws_same_origin(req, origin) || span_list_has(cfg->ws_origins, SPAN_LIT("*")) ||
           (origin.n && span_list_has(cfg->ws_origins, origin));
}

/* Joins every value of header name (it may be repeated) with ", " into out. Returns the length. */
static size_t ws__header_all(const http_req_t *req, const char *name, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (!span_ieq(req->headers[i].name, name)) continue;
        span_t v = req->headers[i].value;
        if (o + v.n + 3 > cap) break;
        if (o) {
            memcpy(out + o, ", ", 2);
            o += 2;
        }
        memcpy(out + o, v.p, v.n);
        o += v.n;
    }
    out[o] = 0;
    return o;
}

/* The one place that maps a failure to a Close code: logs once, says goodbye, ends. */
static void ws__fail(ws_t *ws, uint16_t code, const char *why)
{
    if (ws->hc->base.closing || ws->close_sent) return;
    char peer[128];
    log_info("ws: %s: closing with %u: %s", conn_peer(&ws->hc->base, peer, sizeof(peer)), code, why);
    ws_close(ws, code, why);
}

void ws_close(ws_t *ws, uint16_t code, const char *reason)
{
    conn_t *c = &ws->hc->base;
    if (c->closing || ws->close_sent) return;
    ws->close_sent = true;
    bytes_t *f = ws_close_new(code, reason);
    if (f) conn_send_reply(c, f);
    bytes_unref(f);
    conn_end(c);
}

int ws_send_frame(ws_t *ws, bytes_t *frame)
{
    if (ws->close_sent) return HR_EIO;
    return conn_send(&ws->hc->base, frame);
}

int ws_send_copy(ws_t *ws, bool text, const void *p, size_t n)
{
    if (ws->close_sent) return HR_EIO;
    bytes_t *f = ws_frame_new(text ? WS_OP_TEXT : WS_OP_BINARY, false, p, n);
    if (!f) return HR_ENOMEM;
    int rc = conn_send_reply(&ws->hc->base, f);
    bytes_unref(f);
    return rc;
}

/* Context for compressing a cached plain frame into a compressed slot. */
typedef struct {
    ws_zshared_t *zs;
    int bits;
    bytes_t *plain;
    uint32_t min;
} ws_zjob_t;

static bytes_t *ws__compress(void *ctx, const msg_t *m)
{
    (void)m;
    ws_zjob_t *j = ctx;
    const uint8_t *d = (const uint8_t *)j->plain->data;
    uint8_t len7 = d[1] & 0x7f;
    size_t hl = len7 < 126 ? 2 : len7 == 126 ? 4 : 10;
    size_t n = j->plain->len - hl;
    bytes_t *z = n >= j->min ? ws_zframe(j->zs, j->bits, d[0] & 0x0f, d + hl, n) : NULL;
    /* not worth it: the slot keeps the plain frame, so the decision is made once */
    return z ? z : bytes_ref(j->plain);
}

bytes_t *ws_frame_for(ws_t *ws, msg_t *m, int slot, msg_encoder encode)
{
    bytes_t *plain = msg_encoded(m, slot, encode);
    if (!plain || !ws->dfl.enabled || !ws->x->wsz) return plain ? bytes_ref(plain) : NULL;
    ws_zjob_t j = {ws->x->wsz, ws->dfl.server_max_window_bits >= 15 ? 15 : 9, plain, ws->x->cfg->ws_deflate_min};
    bytes_t *z = msg_encoded_ctx(m, j.bits == 15 ? slot + 1 : slot + 2, ws__compress, &j);
    return z ? bytes_ref(z) : NULL;
}

/* Hands a complete message to the application (inflating it first when compressed). */
static void ws__deliver(ws_t *ws, bool text, bool compressed, char *p, size_t n)
{
    if (!compressed) {
        ws->app->on_message(ws, text, p, n);
        return;
    }
    char *out;
    size_t len;
    int rc = ws_zinflate(&ws->zin, p, n, ws->x->cfg->ws_max_message, ws->dfl.client_no_context_takeover, &out, &len);
    if (rc == HR_EFULL) {
        ws__fail(ws, WS_CLOSE_TOO_BIG, "message too big once inflated");
        return;
    }
    if (rc < 0) {
        ws__fail(ws, rc == HR_ENOMEM ? WS_CLOSE_INTERNAL : WS_CLOSE_INVALID_DATA, "invalid compressed data");
        return;
    }
    if (text && !utf8_valid(out, len)) {
        free(out);
        ws__fail(ws, WS_CLOSE_INVALID_DATA, "text message is not valid UTF-8");
        return;
    }
    ws->app->on_message(ws, text, out, len);
    free(out);
}

static void ws__frag_free(ws_t *ws)
{
    free(ws->frag);
    ws->frag = NULL;
    ws->frag_len = ws->frag_cap = 0;
}

static int ws__frag_append(ws_t *ws, const char *p, size_t n)
{
    if (!ws->frag || ws->frag_len + n > ws->frag_cap) { /* an empty first fragment still gets a buffer */
        size_t cap = ws->frag_cap ? ws->frag_cap : 4096;
        while (cap < ws->frag_len + n) cap *= 2;
        if (cap > (size_t)ws->x->cfg->ws_max_message + 4096) cap = (size_t)ws->x->cfg->ws_max_message + 4096;
        char *nb = realloc(ws->frag, cap);
        if (!nb) return HR_ENOMEM;
        ws->frag = nb;
        ws->frag_cap = (uint32_t)cap;
    }
    memcpy(ws->frag + ws->frag_len, p, n);
    ws->frag_len += (uint32_t)n;
    return 0;
}

static void ws__control(ws_t *ws, ws_frame_t *f)
{
    conn_t *c = &ws->hc->base;
    if (f->opcode == WS_OP_PING) {
        if (ws->close_sent) return;
        bytes_t *pong = ws_frame_new(WS_OP_PONG, false, f->payload, f->payload_len);
        if (pong) conn_send_reply(c, pong);
        bytes_unref(pong);
    } else if (f->opcode == WS_OP_CLOSE) {
        uint16_t code, close_code;
        const char *why;
        if (ws_close_parse(f->payload, f->payload_len, &code, &close_code, &why) < 0) {
            ws__fail(ws, close_code, why);
            return;
        }
        if (ws->close_sent) { /* the answer to ours: done */
            conn_close(c, 0);
            return;
        }
        char peer[128];
        if (log_level() >= LOG_DEBUG) log_debug("ws: %s: the peer closed with %u", conn_peer(c, peer, sizeof(peer)), code);
        ws->close_sent = true;
        bytes_t *echo = ws_close_new(code == WS_CLOSE_NO_STATUS ? 0 : code, "");
        if (echo) conn_send_reply(c, echo);
        bytes_unref(echo);
        conn_end(c);
    }
    /* a Pong needs nothing: any input already counted as life */
}

/* Whether data frame f, not yet accounted by ws_msg_frame(), carries bytes of an uncompressed
 * text message (as ws__data() will decide once the frame is whole). */
static bool ws__plain_text(const ws_t *ws, const ws_frame_t *f)
{
    if (f->opcode == WS_OP_TEXT) return !ws->msg.in_message && !f->rsv1;
    if (f->opcode == WS_OP_CONT) return ws->msg.in_message && ws->msg.opcode == WS_OP_TEXT && !ws->msg.compressed;
    return false;
}

/* Part of frame f has arrived: payload bytes [from, ws->rx_done) were just unmasked; checks them
 * when they are text. */
static void ws__partial(ws_t *ws, const ws_frame_t *f, uint64_t from)
{
    if (!ws__plain_text(ws, f)) return;
    if (from == 0 && f->opcode == WS_OP_TEXT) memset(&ws->utf8, 0, sizeof(ws->utf8)); /* a new message */
    if (!ws_utf8_feed(&ws->utf8, f->payload + from, (size_t)(ws->rx_done - from))) {
        ws__fail(ws, WS_CLOSE_INVALID_DATA, "text message is not valid UTF-8");
    }
}

/* A whole data frame; its payload's first `checked` bytes were checked as they arrived
 * (ws__partial), when it is uncompressed text. */
static void ws__data(ws_t *ws, ws_frame_t *f, uint64_t checked)
{
    bool first = !ws->msg.in_message;
    uint16_t code;
    const char *why;
    if (ws_msg_frame(&ws->msg, f, ws->x->cfg->ws_max_message, &code, &why) < 0) {
        ws__fail(ws, code, why);
        return;
    }
    if (ws->msg.in_message && ws->msg.frames > ws->x->cfg->ws_max_fragments) {
        /* an endless message of (empty) fragments costs a frame parse each: bounded */
        ws->x->metrics->ws_fragment_limit++;
        ws__fail(ws, WS_CLOSE_POLICY, "message in too many fragments (ws_max_fragments)");
        return;
    }
    bool text = ws->msg.opcode == WS_OP_TEXT;
    bool compressed = ws->msg.compressed;
    if (text && !compressed) {
        if (first && !checked) memset(&ws->utf8, 0, sizeof(ws->utf8));
        if (!ws_utf8_feed(&ws->utf8, f->payload + checked, (size_t)(f->payload_len - checked)) ||
            (f->fin && !ws_utf8_done(&ws->utf8))) {
            ws__fail(ws, WS_CLOSE_INVALID_DATA, "text message is not valid UTF-8");
            return;
        }
    }
    if (first && f->fin) { /* the common case: a whole message in one frame, no copy */
        ws__deliver(ws, text, compressed, f->payload, f->payload_len);
        return;
    }
    if (ws__frag_append(ws, f->payload, f->payload_len) < 0) {
        ws__fail(ws, WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    if (f->fin) {
        ws__deliver(ws, text, compressed, ws->frag, ws->frag_len);
        ws__frag_free(ws);
    }
}

static void ws__on_read(http_conn_t *hc)
{
    ws_t *ws = hc->xstate;
    conn_t *c = &hc->base;
    ws->last_input_ms = loop_now(c->loop);
    ws->ping_at_ms = 0;
    while (c->rlen && !c->closing && !c->end_after_write && !c->read_paused) {
        ws_frame_t f;
        uint16_t code = 0;
        const char *why = NULL;
        uint64_t from = ws->rx_done;
        ssize_t r = ws_frame_parse_partial(c->rbuf, c->rlen, &ws->lim, &f, &ws->rx_done, &code, &why);
        if (r == HR_EAGAIN) {
            /* a data frame still arriving: what came of it is checked now (fail fast) */
            if (ws->rx_done > from && f.opcode < WS_OP_CLOSE) ws__partial(ws, &f, from);
            return;
        }
        if (r < 0) {
            ws__fail(ws, code, why);
            return;
        }
        ws->rx_done = 0;
        if (f.opcode >= WS_OP_CLOSE) ws__control(ws, &f);
        else ws__data(ws, &f, from);
        if (c->closing) return;
        conn_consume(c, (uint32_t)r);
        /* replies (pongs, echoes, protocol answers) skip the queue limit; a peer that sends
         * requests without reading the answers is paused until its queue drains */
        if (wq_full(&c->wq)) conn_hold_input(c);
    }
    if (c->end_after_write && c->rlen) conn_consume(c, c->rlen); /* after our Close: ignored */
}

/* The connection's one timer serves the pings and the credential's expiry: it is armed for ms, or
 * sooner when the credential expires before. */
static void ws__rearm(ws_t *ws, uint64_t ms)
{
    if (ws->exp_ms) {
        uint64_t now = loop_wall_ms();
        if (ws->exp_ms < now + ms) ms = ws->exp_ms > now ? ws->exp_ms - now : 0;
    }
    conn_timer(&ws->hc->base, ms);
}

static void ws__expired(ws_t *ws);

static void ws__on_timer(http_conn_t *hc)
{
    ws_t *ws = hc->xstate;
    const cfg_t *cfg = ws->x->cfg;
    uint64_t now = loop_now(hc->base.loop);
    if (ws->exp_ms && loop_wall_ms() >= ws->exp_ms) {
        ws__expired(ws);
        return;
    }
    if (ws->ping_at_ms) {
        if (now - ws->ping_at_ms >= cfg->ws_ping_timeout_ms) {
            char peer[128];
            if (log_level() >= LOG_DEBUG) log_debug("ws: %s: no answer to ping: dropped", conn_peer(&hc->base, peer, sizeof(peer)));
            conn_close(&hc->base, HR_ETIMEDOUT);
            return;
        }
        ws__rearm(ws, cfg->ws_ping_timeout_ms - (now - ws->ping_at_ms));
        return;
    }
    if (now - ws->last_input_ms >= cfg->ws_ping_interval_ms && !ws->close_sent) {
        static const char ping[2] = {(char)0x89, 0x00};
        bytes_t *f = bytes_copy(ping, 2);
        if (f) conn_send_reply(&hc->base, f);
        bytes_unref(f);
        ws->ping_at_ms = now;
        ws__rearm(ws, cfg->ws_ping_timeout_ms);
        return;
    }
    ws__rearm(ws, cfg->ws_ping_interval_ms - (now - ws->last_input_ms));
}

static void ws__on_drain(http_conn_t *hc)
{
    ws_t *ws = hc->xstate;
    if (ws->close_sent) return;
    if (ws->app->on_drain) ws->app->on_drain(ws);
}

static void ws__on_close(http_conn_t *hc)
{
    ws_t *ws = hc->xstate;
    if (ws->x->users) users_remove(ws->x->users, &ws->uc);
    ws->app->on_close(ws);
    auth_unref(ws->id);
    ws__frag_free(ws);
    ws_zin_free(ws->zin);
    free(ws);
}

static void ws__on_shutdown(http_conn_t *hc)
{
    ws_t *ws = hc->xstate;
    ws_close(ws, WS_CLOSE_GOING_AWAY, "server shutting down");
}

static const http_xport_ops_t ws_ops = {
    .on_close = ws__on_close,
    .on_timer = ws__on_timer,
    .on_drain = ws__on_drain,
    .on_read = ws__on_read,
    .on_shutdown = ws__on_shutdown,
};

static ws_t *ws__accept(xp_ctx_t *x, http_conn_t *hc, http_req_t *req, const ws_app_t *app, size_t size,
                        bool required_proto, auth_id_t **idp);

ws_t *ws_accept(xp_ctx_t *x, http_conn_t *hc, http_req_t *req, const ws_app_t *app, size_t size, bool required_proto,
                auth_id_t *id)
{
    ws_t *ws = ws__accept(x, hc, req, app, size, required_proto, &id);
    if (!ws) auth_unref(id);
    return ws;
}

static void ws__expired(ws_t *ws)
{
    if (ws->hc->base.closing || ws->close_sent) return;
    char peer[64];
    log_info("ws: %s: credential expired", conn_peer(&ws->hc->base, peer, sizeof(peer)));
    ws->x->auth->stats.expired++;
    if (ws->app->on_expire) ws->app->on_expire(ws);
    else ws_close(ws, WS_CLOSE_UNAUTHORIZED, "token expired");
}

ws_t *ws_open_carried(xp_ctx_t *x, http_conn_t *vc, const ws_app_t *app, size_t size, auth_id_t *id)
{
    ws_t *ws = calloc(1, size < sizeof(ws_t) ? sizeof(ws_t) : size);
    if (!ws) {
        auth_unref(id);
        return NULL;
    }
    ws->hc = vc;
    ws->x = x;
    ws->app = app;
    ws->lim = (ws_limits_t){.max_payload = x->cfg->ws_max_message, .server = true};
    ws->last_input_ms = loop_now(vc->base.loop);
    ws->id = id;
    ws->exp_ms = id && id->exp_ms > 0 ? (uint64_t)id->exp_ms : 0;
    ws_carried_timer(ws);
    return ws;
}

void ws_carried_timer(ws_t *ws)
{
    if (!ws->exp_ms) return;
    uint64_t now = loop_wall_ms();
    if (now >= ws->exp_ms) ws__expired(ws);
    else conn_timer(&ws->hc->base, ws->exp_ms - now);
}

void ws_carried_free(ws_t *ws)
{
    if (ws->x->users) users_remove(ws->x->users, &ws->uc);
    ws->app->on_close(ws);
    auth_unref(ws->id);
    ws__frag_free(ws);
    free(ws);
}

void ws_user_register(ws_t *ws, const users_conn_ops_t *ops, const char *kind)
{
    if (!ws->x->users || !ws->id || ws->id->kind != AUTH_USER || ws->uc.u) return;
    ws->uc.ops = ops;
    ws->uc.kind = kind;
    users_add(ws->x->users, ws->id->sub_id, ws->id->sub_len, &ws->uc); /* on failure it is only not listed */
}

void ws_set_id(ws_t *ws, auth_id_t *id)
{
    conn_t *c = &ws->hc->base;
    auth_unref(ws->id);
    ws->id = id;
    ws->exp_ms = id && id->exp_ms > 0 ? (uint64_t)id->exp_ms : 0;
    /* keep the ping schedule: the timer's current wait, now capped by the new expiry */
    uint64_t now = loop_now(c->loop), wait = ws->x->cfg->ws_ping_interval_ms;
    if (tw_armed(&c->timer)) wait = c->timer.deadline > now ? c->timer.deadline - now : 0;
    ws__rearm(ws, wait);
}

/* ws_accept's work; *idp stays the caller's to release on failure. */
static ws_t *ws__accept(xp_ctx_t *x, http_conn_t *hc, http_req_t *req, const ws_app_t *app, size_t size,
                        bool required_proto, auth_id_t **idp)
{
    const cfg_t *cfg = x->cfg;
    if (!span_eq(req->method, "GET")) {
        http_method_not_allowed(hc, "GET", "a WebSocket handshake is a GET");
        return NULL;
    }
    if (req->minor < 1) {
        http_error(hc, HR_EBADREQ, "a WebSocket handshake needs HTTP/1.1");
        return NULL;
    }
    if (!http_req_header(req, "Host").p) {
        http_error(hc, HR_EBADREQ, "missing Host header");
        return NULL;
    }
    if (!http_req_header(req, "Upgrade").p) {
        hc->keepalive = false;
        http_respond(hc, 426, "application/json", "{\"error\":\"this endpoint speaks WebSocket only\"}", 47,
                     "Upgrade: websocket\r\n");
        return NULL;
    }
    if (!http_req_header_has(req, "Upgrade", "websocket") || !http_req_header_has(req, "Connection", "upgrade")) {
        http_error(hc, HR_EBADREQ, "not a WebSocket upgrade (Upgrade: websocket, Connection: Upgrade)");
        return NULL;
    }
    span_t ver = http_req_header(req, "Sec-WebSocket-Version");
    if (!ver.p || !span_eq(ver, "13")) {
        hc->keepalive = false;
        http_respond(hc, 426, "application/json", "{\"error\":\"unsupported WebSocket version (want 13)\"}", 51,
                     "Sec-WebSocket-Version: 13\r\n");
        return NULL;
    }
    span_t key = http_req_header(req, "Sec-WebSocket-Key");
    char accept[29];
    if (!key.p || ws_accept_key(key.p, key.n, accept) < 0) {
        http_error(hc, HR_EBADREQ, "missing or invalid Sec-WebSocket-Key");
        return NULL;
    }
    if (!ws__origin_ok(cfg, req, http_req_header(req, "Origin"))) {
        char peer[64];
        log_info("ws: %s: origin not allowed", conn_peer(&hc->base, peer, sizeof(peer)));
        http_error(hc, HR_EFORBIDDEN, "origin not allowed (ws_origins)");
        return NULL;
    }
    if (!*idp && !(*idp = xp_auth_request(x, hc, req))) return NULL;
    char buf[1024];
    int proto = -1;
    if (app->subprotocols) {
        size_t n = ws__header_all(req, "Sec-WebSocket-Protocol", buf, sizeof(buf));
        proto = ws_pick_subprotocol(buf, n, app->subprotocols);
        if (proto < 0 && required_proto) {
            http_error(hc, HR_EBADREQ, "no supported subprotocol in Sec-WebSocket-Protocol");
            return NULL;
        }
    }
    ws_deflate_t dfl = {0};
    char ext[160] = "";
    size_t extn = 0;
    if (app->deflate && cfg->ws_deflate && x->wsz) {
        size_t n = ws__header_all(req, "Sec-WebSocket-Extensions", buf, sizeof(buf));
        if (n) extn = ws_deflate_negotiate(buf, n, &dfl, ext, sizeof(ext));
    }
    char extra[512];
    int en = snprintf(extra, sizeof(extra), "Sec-WebSocket-Accept: %s\r\n%s%s%s%s%s", accept,
                      proto >= 0 ? "Sec-WebSocket-Protocol: " : "", proto >= 0 ? app->subprotocols[proto] : "",
                      proto >= 0 ? "\r\n" : "", extn ? "Sec-WebSocket-Extensions: " : "", extn ? ext : "");
    if (extn && en > 0 && (size_t)en + 2 < sizeof(extra)) strcat(extra, "\r\n");
    ws_t *ws = calloc(1, size < sizeof(ws_t) ? sizeof(ws_t) : size);
    if (!ws) {
        http_error(hc, HR_ENOMEM, "out of memory");
        return NULL;
    }
    ws->hc = hc;
    ws->x = x;
    ws->app = app;
    ws->dfl = dfl;
    ws->lim = (ws_limits_t){.max_payload = cfg->ws_max_message, .server = true, .rsv1_ok = dfl.enabled};
    ws->last_input_ms = loop_now(hc->base.loop);
    int rc = http_upgrade(hc, "websocket", extra, &ws_ops, ws, app->xp, cfg->ws_max_message + WS_MAX_HEADER);
    if (rc < 0) {
        free(ws);
        http_error(hc, rc, "cannot upgrade");
        return NULL;
    }
    ws_set_id(ws, *idp); /* arms the timer: the first ping, or the expiry when sooner */
    *idp = NULL;
    return ws;
}

int ws_carry_feed(ws_carry_t *c, char *data, size_t n, size_t max, ws_carry_parse parse, void *ctx)
{
    char *p = data;
    size_t total = n;
    if (c->len) { /* a unit continued from an earlier message: join and parse again */
        total = (size_t)c->len + n;
        if (total > max) return HR_EFULL;
        p = realloc(c->buf, total);
        if (!p) return HR_ENOMEM;
        memcpy(p + c->len, data, n);
        c->buf = NULL;
        c->len = 0;
    }
    size_t left = parse(ctx, p, total);
    if (p != data && !left) {
        free(p);
    } else if (p != data) {
        memmove(p, p + total - left, left);
        c->buf = p;
        c->len = (uint32_t)left;
    } else if (left) {
        c->buf = malloc(left);
        if (!c->buf) return HR_ENOMEM;
        memcpy(c->buf, data + n - left, left);
        c->len = (uint32_t)left;
    }
    return 0;
}

void ws_carry_free(ws_carry_t *c)
{
    free(c->buf);
    c->buf = NULL;
    c->len = 0;
}

int ws_ctx_init(xp_ctx_t *x)
{
    x->wsz = ws_zshared_new();
    return x->wsz ? 0 : HR_ENOMEM;
}

void ws_ctx_close(xp_ctx_t *x)
{
    ws_zshared_free(x->wsz);
    x->wsz = NULL;
}
