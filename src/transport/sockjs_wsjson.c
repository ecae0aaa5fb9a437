/* sockjs_wsjson.c - the /ws JSON protocol over SockJS at /ws/...: the /ws application runs as it
 * is (ws_json_open_carried), writing WebSocket frames to the SockJS session's queue; the session
 * turns each text frame into one SockJS message (encoded once per message for every /ws
 * subscriber, as over WebSocket) and a Close frame into the session's close frame. Each SockJS
 * message from the client is one /ws request. */
#include "sockjs.h"

static void *wsj_sj__open(xp_ctx_t *x, sockjs_sess_t *ss, auth_id_t *id)
{
    return ws_json_open_carried(x, sockjs_sess_conn(ss), id);
}

static void wsj_sj__message(void *app, char *m, size_t n)
{
    ws_t *ws = app;
    ws->last_input_ms = loop_now(ws->hc->base.loop);
    if (!ws->close_sent) ws->app->on_message(ws, true, m, n);
}

static void wsj_sj__drained(void *app)
{
    ws_t *ws = app;
    if (!ws->close_sent && ws->app->on_drain) ws->app->on_drain(ws);
}

static void wsj_sj__expired(void *app) { ws_carried_timer(app); }

static void wsj_sj__free(void *app) { ws_carried_free(app); }

static const sockjs_app_t wsj_sj_app = {
    .name = "ws_json",
    .open = wsj_sj__open,
    .message = wsj_sj__message,
    .drained = wsj_sj__drained,
    .expired = wsj_sj__expired,
    .free = wsj_sj__free,
    .ws_frames = true,
};

const sockjs_service_t ws_json_sockjs_service = {.app = &wsj_sj_app, .raw_websocket = ws_json_serve};
