/* routes.c - request routing for `herald serve`. The only place that knows URL shapes:
 *   POST /pub/{channel}            publish (body = data; ?event= or X-Event)
 *   GET  /sub/{ch}[,{ch}...]       subscribe: mode=sse|poll|longpoll|iframe (SSE by default)
 *   GET  /sub/{ch}... + Upgrade    WebSocket: each message's data as one frame
 *   GET  /ws  /stomp  /echo        WebSocket: the JSON protocol, STOMP, the test echo
 *   GET  /channels/{channel}       channel info
 *   GET  /healthz, /metrics, /     operations and the demo page */
#include "routes.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"
#include "web.h"

static bool routes__prefix(span_t path, const char *lit, span_t *rest)
{
    size_t n = strlen(lit);
    if (path.n < n || memcmp(path.p, lit, n) != 0) return false;
    *rest = (span_t){path.p + n, path.n - n};
    return true;
}

static bool routes__callback_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64) return false;
    bool start = true;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
        bool digit = c >= '0' && c <= '9';
        if (c == '.') {
            if (start) return false;
            start = true;
            continue;
        }
        if (start ? !alpha : !(alpha || digit)) return false;
        start = false;
    }
    return !start;
}

static void routes__publish(app_t *app, http_conn_t *hc, http_req_t *req, span_t rest, span_t body)
{
    if (!span_eq(req->method, "POST") && !span_eq(req->method, "PUT")) {
        http_method_not_allowed(hc, "POST, PUT", "use POST to publish");
        return;
    }
    char chan[HUB_MAX_CHANNEL + 1];
    ssize_t cn = http_pct_decode(rest.p, rest.n, chan, sizeof(chan));
    if (cn < 0 || !hub_channel_valid(chan, (size_t)cn)) {
        http_error(hc, HR_ECHANNEL, "invalid channel name");
        return;
    }
    char event[HUB_MAX_EVENT + 1] = "message";
    ssize_t en = http_req_query(req, "event", event, sizeof(event));
    if (en == HR_ENOTFOUND) {
        span_t h = http_req_header(req, "X-Event");
        if (h.p && h.n < sizeof(event)) {
            memcpy(event, h.p, h.n);
            event[h.n] = 0;
            en = (ssize_t)h.n;
        } else if (h.p) {
            en = HR_EINVAL;
        } else {
            en = 7;
        }
    }
    if (en < 0 || !hub_event_valid(event, (size_t)en)) {
        http_error(hc, HR_EINVAL, "invalid event name (1-64 of A-Z a-z 0-9 _ - . :)");
        return;
    }
    uint64_t id = 0;
    uint32_t reached = 0;
    int rc = hub_publish(app->xp.hub, chan, (size_t)cn, event, (size_t)en, body.p, body.n, &id, &reached);
    if (rc < 0) {
        http_error(hc, rc, rc == HR_EUNAVAIL ? "publish failed: redis is unavailable" : "publish failed");
        return;
    }
    char json[6 * HUB_MAX_CHANNEL + 96], esc[6 * HUB_MAX_CHANNEL + 8];
    size_t el = json_escape(chan, (size_t)cn, esc, sizeof(esc));
    int n = snprintf(json, sizeof(json), "{\"id\":\"%" PRIu64 "\",\"channel\":\"%.*s\",\"subscribers\":%u}", id,
                     (int)el, esc, reached);
    http_respond(hc, 200, "application/json", json, (size_t)n, "");
}

static void routes__subscribe(app_t *app, http_conn_t *hc, http_req_t *req, span_t rest)
{
    if (!span_eq(req->method, "GET")) {
        http_method_not_allowed(hc, "GET", "use GET to subscribe");
        return;
    }
    char mode[16] = "";
    ssize_t mn = http_req_query(req, "mode", mode, sizeof(mode));
    if (mn == HR_EINVAL) {
        http_error(hc, HR_EINVAL, "unknown mode (sse, poll, longpoll, iframe)");
        return;
    }
    if (mn == HR_ENOTFOUND) strcpy(mode, "sse");
    bool ws = http_req_header_has(req, "Upgrade", "websocket");
    void (*serve)(xp_ctx_t *, http_conn_t *, subreq_t *) = NULL;
    if (strcmp(mode, "sse") == 0 || strcmp(mode, "eventsource") == 0) serve = sse_serve;
    else if (strcmp(mode, "poll") == 0) serve = poll_serve;
    else if (strcmp(mode, "longpoll") == 0) serve = longpoll_serve;
    else if (strcmp(mode, "iframe") == 0) serve = iframe_serve;
    if (!serve && !ws) {
        http_error(hc, HR_EINVAL, "unknown mode (sse, poll, longpoll, iframe)");
        return;
    }
    const char *why = NULL;
    subreq_t sr;
    int rc = subreq_parse(&app->xp, req, rest, &sr, &why);
    if (rc < 0) {
        http_error(hc, rc, why);
        return;
    }
    if (ws) {
        ws_sub_serve(&app->xp, hc, req, &sr);
        return;
    }
    if ((serve == sse_serve || serve == iframe_serve) && req->minor == 0) {
        http_error(hc, HR_EVERSION, "streaming modes need HTTP/1.1");
        return;
    }
    if (serve == iframe_serve) {
        strcpy(sr.callback, "herald_message");
        ssize_t cbn = http_req_query(req, "callback", sr.callback, sizeof(sr.callback));
        if (cbn != HR_ENOTFOUND && (cbn < 0 || !routes__callback_valid(sr.callback))) {
            http_error(hc, HR_EINVAL, "invalid callback (a dotted JavaScript identifier)");
            return;
        }
    }
    serve(&app->xp, hc, &sr);
}

static void routes__channel_info(app_t *app, http_conn_t *hc, span_t rest)
{
    char chan[HUB_MAX_CHANNEL + 1];
    ssize_t cn = http_pct_decode(rest.p, rest.n, chan, sizeof(chan));
    if (cn < 0 || !hub_channel_valid(chan, (size_t)cn)) {
        http_error(hc, HR_ECHANNEL, "invalid channel name");
        return;
    }
    store_t *st = app->xp.hub->store;
    /* a store shared by several nodes knows channels this node has not used yet */
    chan_t *ch = hub_channel(app->xp.hub, chan, (size_t)cn, st->ops->publish != NULL);
    uint64_t last = 0, first = 0, bytes = 0;
    uint32_t subs = 0, count = 0;
    if (ch) {
        hist_trim(&ch->hist, &app->xp.hub->limits, loop_wall_ms());
        last = ch->last_id;
        subs = ch->nsubs;
        count = ch->hist.count;
        bytes = ch->hist.bytes;
        first = count ? hist_at(&ch->hist, 0)->id : 0;
    }
    uint32_t all;
    if (st->ops->occupancy && st->ops->occupancy(st, chan, (size_t)cn, &all) == 0) subs = all; /* every node */
    char json[6 * HUB_MAX_CHANNEL + 256], esc[6 * HUB_MAX_CHANNEL + 8];
    size_t el = json_escape(chan, (size_t)cn, esc, sizeof(esc));
    int n = snprintf(json, sizeof(json),
                     "{\"channel\":\"%.*s\",\"subscribers\":%u,\"last_id\":\"%" PRIu64 "\","
                     "\"history\":{\"messages\":%u,\"bytes\":%" PRIu64 ",\"first_id\":\"%" PRIu64 "\"}}",
                     (int)el, esc, subs, last, count, bytes, first);
    http_respond(hc, 200, "application/json", json, (size_t)n, "Cache-Control: no-cache\r\n");
}

void routes_handle(http_conn_t *hc, http_req_t *req, span_t body)
{
    app_t *app = hc->srv->ctx;
    span_t rest;
    bool get = span_eq(req->method, "GET") || span_eq(req->method, "HEAD");
    if (routes__prefix(req->path, "/pub/", &rest)) {
        routes__publish(app, hc, req, rest, body);
    } else if (routes__prefix(req->path, "/sub/", &rest)) {
        routes__subscribe(app, hc, req, rest);
    } else if (routes__prefix(req->path, "/channels/", &rest)) {
        if (!get) {
            http_method_not_allowed(hc, "GET, HEAD", "method not allowed");
            return;
        }
        routes__channel_info(app, hc, rest);
    } else if (span_eq(req->path, "/ws")) {
        ws_json_serve(&app->xp, hc, req);
    } else if (span_eq(req->path, "/mqtt")) {
        mqtt_ws_serve(&app->xp, hc, req);
    } else if (span_eq(req->path, "/stomp")) {
        stomp_serve(&app->xp, hc, req);
    } else if (span_eq(req->path, "/echo") && app->xp.cfg->echo) {
        ws_echo_serve(&app->xp, hc, req);
    } else if (span_eq(req->path, "/healthz")) {
        http_respond(hc, 200, "application/json", "{\"status\":\"ok\"}", 15, "Cache-Control: no-cache\r\n");
    } else if (span_eq(req->path, "/metrics")) {
        char out[8192];
        size_t n = metrics_render(app->xp.metrics, app->xp.hub->published, app->xp.hub->nchannels, app->xp.hub->subscriptions,
                                  hc->srv->loop->bytes_in, hc->srv->loop->bytes_out, out, sizeof(out));
        http_respond(hc, 200, "text/plain; version=0.0.4; charset=utf-8", out, n, "Cache-Control: no-cache\r\n");
    } else {
        const web_file_t *f = web_find(req->path.p, req->path.n);
        if (!f) {
            http_error(hc, HR_ENOTFOUND, "not found");
            return;
        }
        if (!get) {
            http_method_not_allowed(hc, "GET, HEAD", "method not allowed");
            return;
        }
        http_respond(hc, 200, f->ctype, f->data, f->len, "Cache-Control: no-cache\r\n");
    }
}
