/* ws_sub.c - the two simplest WebSocket applications.
 *
 * Plain subscribe (GET /sub/{channels} with Upgrade: websocket): each message's data goes out as
 * one frame, text when the payload is valid UTF-8 and binary otherwise, after a replay from
 * last_id / Last-Event-ID like every other transport. The frame carries nothing but the data
 * (what nchan and plain WebSocket clients expect), so there is no room for ids or gap notices:
 * clients that need them use the /ws protocol. Frames are encoded (and compressed) once per
 * message and shared. Messages from the client are not part of this protocol: a text or binary
 * message closes the connection with 1003.
 *
 * Echo (/echo, only with echo = true): every message comes back as it was (text or binary),
 * for third-party WebSocket conformance suites. */
#include <stdlib.h>

#include "../core/err.h"
#include "../core/log.h"
#include "ws.h"

typedef struct {
    ws_t ws;
    stream_t *st;
} ws_sub_t;

static bytes_t *ws_sub__encode(const msg_t *m)
{
    return ws_frame_new((m->flags & MSG_UTF8) ? WS_OP_TEXT : WS_OP_BINARY, false, m->data, m->data_len);
}

static bytes_t *ws_sub__frame(stream_t *st, xsub_t *xs, msg_t *m)
{
    (void)xs;
    return ws_frame_for(st->owner, m, ENC_WS, ws_sub__encode);
}

static const stream_kind_t ws_sub_kind = {
    .xp = XP_WS,
    .frame = ws_sub__frame,
};

static void ws_sub__on_message(ws_t *ws, bool text, char *data, size_t n)
{
    (void)text, (void)data, (void)n;
    ws_close(ws, WS_CLOSE_UNSUPPORTED, "this endpoint only sends; use /ws to talk to the server");
}

static void ws_sub__on_drain(ws_t *ws)
{
    ws_sub_t *s = (ws_sub_t *)ws;
    if (s->st) stream_drained(s->st);
}

static void ws_sub__on_close(ws_t *ws)
{
    ws_sub_t *s = (ws_sub_t *)ws;
    if (s->st) stream_free(s->st);
}

static const ws_app_t ws_sub_app = {
    .xp = XP_WS,
    .deflate = true,
    .on_message = ws_sub__on_message,
    .on_drain = ws_sub__on_drain,
    .on_close = ws_sub__on_close,
};

/* users.h: the admin disconnected the user: a Close with 4001 (or 4002: reconnect) and the
 * reason (there is no room for a notice in this protocol). */
static void ws_sub__user_disconnect(users_conn_t *uc, const char *reason, bool reconnect)
{
    ws_t *ws = container_of(uc, ws_t, uc);
    ws_close(ws, reconnect ? WS_CLOSE_RECONNECT : WS_CLOSE_DISCONNECTED, reason);
}

/* users.h: the admin unsubscribed the user from ch; with no channel left the connection closes
 * with 1000 "unsubscribed". */
static uint32_t ws_sub__user_unsubscribe(users_conn_t *uc, const char *ch, size_t n)
{
    ws_sub_t *s = (ws_sub_t *)container_of(uc, ws_t, uc);
    uint32_t live;
    uint32_t k = s->st ? stream_drop_channel(s->st, ch, n, &live) : 0;
    if (k && !live) ws_close(&s->ws, WS_CLOSE_NORMAL, "unsubscribed");
    return k;
}

static const users_conn_ops_t ws_sub_user_ops = {
    .disconnect = ws_sub__user_disconnect,
    .unsubscribe = ws_sub__user_unsubscribe,
};

void ws_sub_serve(xp_ctx_t *x, http_conn_t *hc, http_req_t *req, subreq_t *sr, auth_id_t *id)
{
    ws_sub_t *s = (ws_sub_t *)ws_accept(x, hc, req, &ws_sub_app, sizeof(ws_sub_t), false, id);
    if (!s) return;
    s->st = stream_open(x, &hc->base, sr, &ws_sub_kind, &s->ws);
    if (!s->st) {
        ws_close(&s->ws, WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    ws_user_register(&s->ws, &ws_sub_user_ops, "websocket");
}

static void ws_echo__on_message(ws_t *ws, bool text, char *data, size_t n)
{
    /* a peer that sends faster than it reads is paused by ws.c until its echoes drain */
    if (ws_send_copy(ws, text, data, n) < 0) ws_close(ws, WS_CLOSE_INTERNAL, "cannot echo");
}

static void ws_echo__on_close(ws_t *ws) { (void)ws; }

static const ws_app_t ws_echo_app = {
    .xp = XP_WS,
    .deflate = true,
    .on_message = ws_echo__on_message,
    .on_close = ws_echo__on_close,
};

void ws_echo_serve(xp_ctx_t *x, http_conn_t *hc, http_req_t *req)
{
    ws_accept(x, hc, req, &ws_echo_app, sizeof(ws_t), false, NULL);
}
