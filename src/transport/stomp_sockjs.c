/* stomp_sockjs.c - STOMP over SockJS at /stomp/...: the SockJS session (sockjs.h) is the STOMP
 * session's carrier (stomp_internal.h). Each STOMP frame is one SockJS message; a MESSAGE frame
 * is escaped for its subscriber as a whole (per message: the WebSocket path's shared tail cannot
 * be shared inside a JSON string). Identity and access are those of /stomp over WebSocket: the
 * request that opens the session (Authorization, ?token=, the herald_token cookie), then
 * CONNECT's passcode. */
#include "../core/err.h"
#include "sockjs.h"
#include "stomp_internal.h"

static bytes_t *stomp_sj__unit(stomp_t *s, const char *p, size_t n, const bytes_t *tail)
{
    (void)s;
    return sockjs_unit(p, n, tail);
}

static void stomp_sj__close(stomp_t *s, uint16_t code, const char *reason)
{
    if (s->ws.close_sent) return;
    s->ws.close_sent = true;
    sockjs_sess_close(sockjs_sess_of(s->ws.hc), code, reason);
}

static const stomp_carrier_t stomp_sj_carrier = {.unit = stomp_sj__unit, .close = stomp_sj__close};

static void *stomp_sj__open(xp_ctx_t *x, sockjs_sess_t *ss, auth_id_t *id)
{
    http_conn_t *vc = sockjs_sess_conn(ss);
    uint64_t in = xp_expires_in(id);
    stomp_t *s = stomp_carried_open(x, vc, &stomp_sj_carrier, id);
    if (s && in != UINT64_MAX) conn_timer(&vc->base, in ? in : 1);
    return s;
}

static void stomp_sj__message(void *app, char *m, size_t n) { stomp_carried_input(app, m, n); }

static void stomp_sj__drained(void *app) { stomp_carried_drained(app); }

static void stomp_sj__expired(void *app)
{
    stomp_t *s = app;
    uint64_t now = loop_wall_ms();
    if (s->ws.exp_ms && now >= s->ws.exp_ms) stomp_carried_expired(s);
    else if (s->ws.exp_ms) conn_timer(&s->ws.hc->base, s->ws.exp_ms - now);
}

static void stomp_sj__free(void *app) { stomp_carried_free(app); }

static const sockjs_app_t stomp_sj_app = {
    .name = "stomp",
    .open = stomp_sj__open,
    .message = stomp_sj__message,
    .drained = stomp_sj__drained,
    .expired = stomp_sj__expired,
    .free = stomp_sj__free,
};

const sockjs_service_t stomp_sockjs_service = {.app = &stomp_sj_app, .raw_websocket = stomp_serve};
