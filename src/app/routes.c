/* routes.c - request routing for `herald serve`. The only place that knows URL shapes:
 *   POST /pub/{channel}            publish (body = data; ?event= or X-Event)   publish.c
 *   POST /publish (also /pub)      one message to many channels and users (JSON)  publish.c
 *   GET  /sub/{ch}[,{ch}...]       subscribe: mode=sse|poll|longpoll|iframe (SSE by default)
 *   GET  /sub/{ch}... + Upgrade    WebSocket: each message's data as one frame
 *   GET  /ws  /stomp  /echo        WebSocket: the JSON protocol, STOMP, the test echo
 *   /stomp/... /ws/... (/sockjs/NAME/...)  SockJS: STOMP, the /ws protocol (the protocol suite's services, echo = true)   sockjs.h
 *   GET  /channels/{channel}       channel info
 *   DELETE /channels/{channel}     delete its messages (admin)                    withdraw.c
 *   DELETE /channels/{channel}/messages/{id}   withdraw one (admin)              withdraw.c
 *   GET  /channels/{channel}/presence   who is subscribed                          presence_api.c
 *   GET  /channels?prefix=&limit=&cursor=   the channels this node holds (admin)   chanlist.c
 *   GET  /users/{id}, POST /users/{id}/disconnect, /unsubscribe   admin on users   userapi.c
 *   GET  /healthz, /metrics, /     operations and the demo page
 * Before any route: the Host check (DNS rebinding) and the cross-origin write check (CSRF).
 * Each route finds the request's identity (access.c) and checks what it may do. */
#include "routes.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"
#include "../core/procstat.h"
#include <strings.h>
#include "publish.h"
#include "chanlist.h"
#include "presence_api.h"
#include "userapi.h"
#include "withdraw.h"
#include "readstate.h"
#include "tls_setup.h"
#include "version.h"
#include "web.h"
#include "../transport/stomp_queue.h"
#include "../transport/sockjs.h"

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

/* /healthz (liveness: 200 while the process serves) and /readyz (readiness: 503 while the store
 * refuses writes or the server is stopping); both say why. */
static void routes__health(app_t *app, http_conn_t *hc, bool ready)
{
    const hub_t *hub = app->xp.hub;
    const char *store = hub->store_fault == HR_ESTOREFULL ? "full"
                        : hub->store_fault                ? "failing"
                                                          : "ok";
    bool stopping = hc->srv->loop->stopping;
    const engine_t *e = hub->engine;
    bool engine_up = !e || !e->ops->up || e->ops->up((engine_t *)e);
    bool ok = !hub->store_fault && !stopping && engine_up;
    char body[192], eng[48] = "";
    if (e) snprintf(eng, sizeof(eng), ",\"engine\":\"%s %s\"", e->name, engine_up ? "up" : "down");
    int n = snprintf(body, sizeof(body), "{\"status\":\"%s\",\"store\":\"%s\"%s%s}",
                     ok ? "ok" : ready ? "not ready" : "degraded", store, eng, stopping ? ",\"stopping\":true" : "");
    http_respond(hc, ok || !ready ? 200 : 503, "application/json", body, (size_t)n, "Cache-Control: no-cache\r\n");
}

/* The store's health in the Prometheus text format. */
static size_t routes__store_metrics(const hub_t *hub, char *out, size_t cap)
{
    int k = snprintf(out, cap,
                     "# HELP herald_store_writable 1 while the store takes publishes, 0 while it refuses them.\n"
                     "# TYPE herald_store_writable gauge\nherald_store_writable %d\n"
                     "# HELP herald_store_commit_failures_total Store commits that failed (none of their publishes "
                     "was acknowledged).\n"
                     "# TYPE herald_store_commit_failures_total counter\nherald_store_commit_failures_total %llu\n"
                     "# HELP herald_store_publishes_failed_total Publishes refused or failed because the store could "
                     "not write.\n"
                     "# TYPE herald_store_publishes_failed_total counter\nherald_store_publishes_failed_total %llu\n",
                     !hub->store_fault, (unsigned long long)hub->commits_failed, (unsigned long long)hub->publishes_failed);
    return k > 0 && (size_t)k < cap ? (size_t)k : 0;
}

/* The ceilings of [limits]: what each refused or dropped, and what the bounded things hold. */
static size_t routes__limit_metrics(const app_t *app, char *out, size_t cap)
{
    const hub_t *hub = app->xp.hub;
    const mqtt_server_t *mq = app->mqtt;
    int n = snprintf(out, cap,
                     "# HELP herald_limit_hits_total Times a limit refused something or dropped data: "
                     "subscriptions refused (max_subscriptions), channels refused (max_channels, also "
                     "herald_channels_refused_total), retained publishes refused (max_retained, "
                     "max_retained_bytes), messages trimmed or publishes refused (max_history_memory), queued MQTT "
                     "messages dropped (mqtt_max_queued_bytes_total).\n"
                     "# TYPE herald_limit_hits_total counter\n"
                     "herald_limit_hits_total{limit=\"max_subscriptions\"} %llu\n"
                     "herald_limit_hits_total{limit=\"max_channels\"} %llu\n"
                     "herald_limit_hits_total{limit=\"max_retained\"} %llu\n"
                     "herald_limit_hits_total{limit=\"max_retained_bytes\"} %llu\n"
                     "herald_limit_hits_total{limit=\"max_history_memory\"} %llu\n"
                     "herald_limit_hits_total{limit=\"mqtt_max_queued_bytes_total\"} %llu\n"
                     "herald_limit_hits_total{limit=\"max_publish_targets\"} %llu\n"
                     "herald_limit_hits_total{limit=\"idempotency_max_keys\"} %llu\n"
                     "herald_limit_hits_total{limit=\"max_scheduled\"} %llu\n"
                     "# HELP herald_retained_messages MQTT retained messages held (limit max_retained).\n"
                     "# TYPE herald_retained_messages gauge\nherald_retained_messages %u\n"
                     "# HELP herald_retained_bytes Bytes held by retained messages (limit max_retained_bytes).\n"
                     "# TYPE herald_retained_bytes gauge\nherald_retained_bytes %llu\n"
                     "# HELP herald_history_bytes Bytes held by every channel's history (limit max_history_memory).\n"
                     "# TYPE herald_history_bytes gauge\nherald_history_bytes %llu\n"
                     "# HELP herald_mqtt_queued_bytes Bytes of messages waiting in MQTT sessions (limit "
                     "mqtt_max_queued_bytes_total).\n"
                     "# TYPE herald_mqtt_queued_bytes gauge\nherald_mqtt_queued_bytes %llu\n",
                     (unsigned long long)app->xp.metrics->subs_refused, (unsigned long long)hub->channels_refused,
                     (unsigned long long)hub->retained_refused,
                     (unsigned long long)hub->retained_bytes_refused,
                     (unsigned long long)(hub->hist_trimmed + hub->hist_refused),
                     (unsigned long long)(mq ? mq->queued_drops : 0),
                     (unsigned long long)(app->pub ? app->pub->targets_refused : 0),
                     (unsigned long long)(app->pub ? app->pub->idem.evicted : 0),
                     (unsigned long long)(app->pub ? app->pub->sched.refused : 0), hub->nretained,
                     (unsigned long long)hub->retained_bytes, (unsigned long long)hub->hpool.bytes,
                     (unsigned long long)(mq ? mq->queued.bytes : 0));
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
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
    auth_id_t *id = xp_auth_request(&app->xp, hc, req);
    if (!id) return;
    const char *why = NULL;
    subreq_t sr;
    span_t denied = {NULL, 0};
    int rc = subreq_parse(&app->xp, req, rest, id, &sr, &why, &denied);
    if (rc == HR_EFORBIDDEN) {
        xp_deny_http(&app->xp, hc, id, "subscribe to", denied.p, denied.n);
        auth_unref(id);
        return;
    }
    if (rc < 0) {
        auth_unref(id);
        http_error(hc, rc, why);
        return;
    }
    sr.exp_ms = id->exp_ms > 0 ? (uint64_t)id->exp_ms : 0;
    if (ws) {
        ws_sub_serve(&app->xp, hc, req, &sr, id);
        return;
    }
    auth_unref(id);
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
    if (serve == sse_serve) {
        char exact[8];
        sr.sse_exact = http_req_query(req, "exact", exact, sizeof(exact)) > 0 && strcmp(exact, "0") != 0;
    }
    serve(&app->xp, hc, &sr);
}

/* Answers GET /channels/CH from what this node holds; subs: every node's subscribers (all),
 * else this node's. */
static void routes__channel_answer(app_t *app, http_conn_t *hc, const char *chan, size_t cn, bool all, uint32_t subs)
{
    chan_t *ch = hub_channel(app->xp.hub, chan, cn, false);
    uint64_t last = 0, first = 0, bytes = 0;
    uint32_t count = 0;
    if (ch) {
        hist_trim(&ch->hist, ch->lim, loop_wall_ms());
        last = ch->last_id;
        count = ch->hist.count;
        bytes = ch->hist.bytes;
        first = count ? hist_at(&ch->hist, 0)->id : 0;
    }
    if (!all) subs = ch ? ch->nsubs : 0;
    char json[6 * HUB_MAX_CHANNEL + 256], esc[6 * HUB_MAX_CHANNEL + 8];
    size_t el = json_escape(chan, cn, esc, sizeof(esc));
    int n = snprintf(json, sizeof(json),
                     "{\"channel\":\"%.*s\",\"subscribers\":%u,\"last_id\":\"%" PRIu64 "\","
                     "\"history\":{\"messages\":%u,\"bytes\":%" PRIu64 ",\"first_id\":\"%" PRIu64 "\"}}",
                     (int)el, esc, subs, last, count, bytes, first);
    http_respond(hc, 200, "application/json", json, (size_t)n, "Cache-Control: no-cache\r\n");
}

/* A GET /channels/CH parked while the store counts its subscribers on every node. */
typedef struct {
    app_t *app;
    size_t cn;
    char chan[HUB_MAX_CHANNEL + 1];
} routes__info_t;

static void routes__counted(void *arg, int rc, uint32_t subs)
{
    http_conn_t *hc = arg;
    routes__info_t *q = hc->xstate;
    routes__channel_answer(q->app, hc, q->chan, q->cn, rc == 0, subs);
    free(q);
}

static void routes__info_close(http_conn_t *hc)
{
    routes__info_t *q = hc->xstate;
    engine_t *e = q->app->xp.hub->engine;
    e->ops->cancel(e, hc);
    free(q);
}

static const http_xport_ops_t routes__info_ops = {.on_close = routes__info_close};

static void routes__channel_info(app_t *app, http_conn_t *hc, http_req_t *req, span_t rest)
{
    char chan[HUB_MAX_CHANNEL + 1];
    ssize_t cn = xp_read_channel(&app->xp, hc, req, rest, chan, sizeof(chan), "read"); /* an admin, or a reader */
    if (cn < 0) return;
    engine_t *e = app->xp.hub->engine;
    /* an engine shared by several nodes knows channels this node has not used yet: it loads the
     * channel, counts its subscribers on every node, and the answer waits for both (it never
     * blocks the loop) */
    if (e) hub_channel(app->xp.hub, chan, (size_t)cn, true);
    routes__info_t *q = e && e->ops->occupancy ? malloc(sizeof(*q)) : NULL;
    if (q) {
        *q = (routes__info_t){.app = app, .cn = (size_t)cn};
        memcpy(q->chan, chan, (size_t)cn + 1);
        if (e->ops->occupancy(e, chan, (size_t)cn, routes__counted, hc) == 0) {
            http_park(hc, &routes__info_ops, q, XP_HTTP);
            return;
        }
        free(q);
    }
    routes__channel_answer(app, hc, chan, (size_t)cn, false, 0); /* this node's own view */
}

/* The operator's figures: connections refused by reason, latency histograms, process_*. */
static size_t routes__ops_metrics(app_t *app, http_conn_t *hc, char *out, size_t cap)
{
    const iplimit_t *ipl = app->xp.ipl;
    int k = snprintf(out, cap,
                     "# HELP herald_connections_refused_total Connections refused, by reason.\n"
                     "# TYPE herald_connections_refused_total counter\n"
                     "herald_connections_refused_total{reason=\"max_connections\"} %llu\n"
                     "herald_connections_refused_total{reason=\"max_connections_per_ip\"} %llu\n"
                     "herald_connections_refused_total{reason=\"max_new_connections_per_ip\"} %llu\n"
                     "herald_connections_refused_total{reason=\"fd_limit\"} %llu\n"
                     "herald_connections_refused_total{reason=\"proxy_protocol\"} %llu\n"
                     "# HELP herald_http_lingering Refused connections read and dropped a moment after their 503 "
                     "(limit max_lingering_closes).\n"
                     "# TYPE herald_http_lingering gauge\nherald_http_lingering %u\n"
                     "# HELP herald_http_linger_skipped_total Refused connections closed at once, max_lingering_closes "
                     "being reached.\n"
                     "# TYPE herald_http_linger_skipped_total counter\nherald_http_linger_skipped_total %llu\n",
                     (unsigned long long)app->xp.metrics->rejected, (unsigned long long)(ipl ? ipl->refused_conns : 0),
                     (unsigned long long)(ipl ? ipl->refused_rate : 0), (unsigned long long)hc->srv->loop->fd_shed,
                     (unsigned long long)(app->http->listener.pp_refused + app->http->tls_listener.pp_refused +
                                          app->mqtt->listener.pp_refused + app->mqtt->tls_listener.pp_refused),
                     hc->srv->lingering, (unsigned long long)hc->srv->linger_skipped);
    size_t n = k > 0 && (size_t)k < cap ? (size_t)k : 0;
    n += histo_render(&app->xp.hub->commit_lat, "herald_store_commit_seconds",
                      "Store commits that held writes, by how long they took.", out + n, cap - n);
    n += histo_render(&app->xp.hub->publish_lat, "herald_publish_latency_seconds",
                      "Publishes from being taken to being delivered and answered (the store's commit or the engine's "
                      "answer included).",
                      out + n, cap - n);
    n += procstat_render(out + n, cap - n);
    return n;
}

static size_t routes__auth_metrics(const auth_t *a, char *out, size_t cap)
{
    const auth_stats_t *s = &a->stats;
    int n = snprintf(out, cap,
                     "# HELP herald_auth_tokens_total Tokens presented, by result.\n"
                     "# TYPE herald_auth_tokens_total counter\n"
                     "herald_auth_tokens_total{result=\"ok\"} %llu\n"
                     "herald_auth_tokens_total{result=\"refused\"} %llu\n"
                     "# HELP herald_auth_token_cache_hits_total Tokens found verified in the cache.\n"
                     "# TYPE herald_auth_token_cache_hits_total counter\n"
                     "herald_auth_token_cache_hits_total %llu\n"
                     "# HELP herald_auth_token_cache_entries Verified tokens in the cache (limit token_cache_size).\n"
                     "# TYPE herald_auth_token_cache_entries gauge\n"
                     "herald_auth_token_cache_entries %u\n"
                     "# HELP herald_auth_logins_total Password logins (MQTT, STOMP), by result.\n"
                     "# TYPE herald_auth_logins_total counter\n"
                     "herald_auth_logins_total{result=\"ok\"} %llu\n"
                     "herald_auth_logins_total{result=\"refused\"} %llu\n"
                     "# HELP herald_auth_api_keys_total API keys presented, by result.\n"
                     "# TYPE herald_auth_api_keys_total counter\n"
                     "herald_auth_api_keys_total{result=\"ok\"} %llu\n"
                     "herald_auth_api_keys_total{result=\"refused\"} %llu\n"
                     "# HELP herald_auth_denied_total Requests refused for a missing or insufficient credential.\n"
                     "# TYPE herald_auth_denied_total counter\n"
                     "herald_auth_denied_total %llu\n"
                     "# HELP herald_auth_expired_total Connections ended because their credential expired.\n"
                     "# TYPE herald_auth_expired_total counter\n"
                     "herald_auth_expired_total %llu\n"
                     "# HELP herald_auth_retired_generations Access control replaced by SIGHUP and still held by "
                     "connections admitted with it.\n"
                     "# TYPE herald_auth_retired_generations gauge\n"
                     "herald_auth_retired_generations %u\n",
                     (unsigned long long)s->tokens_ok, (unsigned long long)s->tokens_bad,
                     (unsigned long long)s->cache_hits, s->cache_entries, (unsigned long long)s->logins_ok,
                     (unsigned long long)s->logins_bad, (unsigned long long)s->keys_ok, (unsigned long long)s->keys_bad,
                     (unsigned long long)s->denied, (unsigned long long)s->expired, auth_retired_live());
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

bool routes_loopback_host(span_t h)
{
    size_t n = h.n;
    if (n && h.p[0] == '[') return n >= 5 && memcmp(h.p, "[::1]", 5) == 0 && (n == 5 || h.p[5] == ':');
    const char *colon = memchr(h.p, ':', n);
    if (colon) n = (size_t)(colon - h.p);
    span_t name = {h.p, n};
    if (span_ieq(name, "localhost")) return true;
    if (n > 10 && strncasecmp(h.p + n - 10, ".localhost", 10) == 0) return true;
    if (n < 7 || memcmp(h.p, "127.", 4) != 0) return false;
    for (size_t i = 4; i < n; i++)
        if (!((h.p[i] >= '0' && h.p[i] <= '9') || h.p[i] == '.')) return false;
    return true;
}

/* DNS rebinding: a page on any site can make the browser send requests to herald through a name
 * that resolves to 127.0.0.1; only the Host header tells. */
static bool routes__host_ok(app_t *app, http_req_t *req)
{
    span_t h = http_req_header(req, "Host");
    if (!h.p) return true; /* HTTP/1.0 without Host: not a browser */
    if (!app->xp.cfg->allowed_hosts[0] && !app->check_host) return true;
    if (app->check_host && routes_loopback_host(h)) return true;
    const char *colon = h.n && h.p[0] != '[' ? memchr(h.p, ':', h.n) : NULL;
    size_t hn = colon ? (size_t)(colon - h.p) : h.n; /* the name without its port */
    const char *list = app->xp.cfg->allowed_hosts;
    for (span_t a; span_list_next(&list, &a);)
        if (span_eq(a, "*") || (a.n == hn && strncasecmp(a.p, h.p, hn) == 0) ||
            (a.n == h.n && strncasecmp(a.p, h.p, h.n) == 0) ||
            (a.p[0] == '.' && hn > a.n && strncasecmp(h.p + hn - a.n, a.p, a.n) == 0))
            return true;
    return false;
}

/* CSRF: a state-changing request from a page of another origin is refused unless that origin is
 * named in cors_origins, or cors_origins is "*" and the request carries no cookie. */
static bool routes__write_origin_ok(http_conn_t *hc, http_req_t *req)
{
    if (span_eq(req->method, "GET") || span_eq(req->method, "HEAD")) return true;
    span_t origin = http_req_header(req, "Origin");
    if (!origin.p || ws_same_origin(req, origin)) return true;
    if (hc->origin_listed) return true;
    return hc->origin[0] && !http_req_header(req, "Cookie").p;
}

void routes_handle(http_conn_t *hc, http_req_t *req, span_t body)
{
    app_t *app = hc->srv->ctx;
    span_t rest;
    bool get = span_eq(req->method, "GET") || span_eq(req->method, "HEAD");
    if (!routes__host_ok(app, req)) {
        char peer[64];
        log_info("http: %s: Host not allowed (DNS rebinding protection)", conn_peer(&hc->base, peer, sizeof(peer)));
        http_error(hc, HR_EFORBIDDEN, "Host not allowed (add it to allowed_hosts)");
        return;
    }
    if (routes__prefix(req->path, "/stomp/", &rest)) { /* SockJS: its own origin rule (ws_origins) */
        sockjs_serve(&app->xp, &stomp_sockjs_service, hc, req, (span_t){rest.p - 1, rest.n + 1}, body);
        return;
    }
    if (routes__prefix(req->path, "/ws/", &rest)) { /* SockJS for the /ws protocol */
        sockjs_serve(&app->xp, &ws_json_sockjs_service, hc, req, (span_t){rest.p - 1, rest.n + 1}, body);
        return;
    }
    if (app->xp.cfg->echo && routes__prefix(req->path, "/sockjs/", &rest)) {
        const char *slash = memchr(rest.p, '/', rest.n);
        span_t name = {rest.p, slash ? (size_t)(slash - rest.p) : rest.n};
        const sockjs_service_t *svc = sockjs_test_service(name);
        if (svc) {
            sockjs_serve(&app->xp, svc, hc, req, (span_t){rest.p + name.n, rest.n - name.n}, body);
            return;
        }
    }
    if (!routes__write_origin_ok(hc, req)) {
        char peer[64];
        log_info("http: %s: cross-origin %.*s refused (CSRF protection)", conn_peer(&hc->base, peer, sizeof(peer)),
                 (int)req->method.n, req->method.p);
        http_error(hc, HR_EFORBIDDEN, "cross-origin request refused (add the origin to cors_origins)");
        return;
    }
    if (routes__prefix(req->path, "/pub/", &rest)) {
        publish_channel(app, hc, req, rest, body);
    } else if (span_eq(req->path, "/publish") || span_eq(req->path, "/pub")) {
        publish_multi(app, hc, req, body);
    } else if (routes__prefix(req->path, "/sub/", &rest)) {
        routes__subscribe(app, hc, req, rest);
    } else if (routes__prefix(req->path, "/channels/", &rest) && withdraw_path(rest)) {
        withdraw_handle(app, hc, req, rest); /* DELETE /channels/{ch}/messages/{id}: withdraw.c */
    } else if (routes__prefix(req->path, "/channels/", &rest) && presence_api_path(rest)) {
        presence_api_handle(app, hc, req, rest); /* GET /channels/{ch}/presence: presence_api.c */
    } else if (routes__prefix(req->path, "/channels/", &rest) && span_eq(req->method, "DELETE")) {
        withdraw_channel(app, hc, req, rest); /* DELETE /channels/{ch}: withdraw.c */
    } else if (routes__prefix(req->path, "/channels/", &rest)) {
        if (!get) {
            http_method_not_allowed(hc, "GET, HEAD, DELETE", "method not allowed");
            return;
        }
        routes__channel_info(app, hc, req, rest);
    } else if (span_eq(req->path, "/unread")) {
        if (!get) http_method_not_allowed(hc, "GET, HEAD", "use GET for the unread counts");
        else readstate_get_unread(app->reads, hc, req);
    } else if (routes__prefix(req->path, "/read/", &rest)) {
        readstate_post_read(app->reads, hc, req, rest, body);
    } else if (routes__prefix(req->path, "/schedules/", &rest)) {
        publish_schedules(app, hc, req, rest); /* DELETE /schedules/{id}: publish.c */
    } else if (span_eq(req->path, "/channels")) {
        chanlist_handle(app, hc, req);
    } else if (routes__prefix(req->path, "/users/", &rest)) {
        userapi_handle(app, hc, req, rest, body);
    } else if (span_eq(req->path, "/ws")) {
        ws_json_serve(&app->xp, hc, req);
    } else if (span_eq(req->path, "/mqtt")) {
        mqtt_ws_serve(&app->xp, hc, req);
    } else if (span_eq(req->path, "/stomp")) {
        stomp_serve(&app->xp, hc, req);
    } else if (span_eq(req->path, "/echo") && app->xp.cfg->echo) {
        ws_echo_serve(&app->xp, hc, req);
    } else if (span_eq(req->path, "/healthz") || span_eq(req->path, "/readyz")) {
        routes__health(app, hc, span_eq(req->path, "/readyz"));
    } else if (span_eq(req->path, "/metrics")) {
        if (!app->xp.cfg->metrics_public && !xp_require_admin(&app->xp, hc, req, "read metrics", NULL, 0)) return;
        char out[65536]; /* the whole page is about 20 KB with every family (Redis, auth, presence) */
        size_t n = metrics_render(app->xp.metrics, app->xp.hub->published, app->xp.hub->nchannels, app->xp.hub->subscriptions,
                                  hc->srv->loop->bytes_in, hc->srv->loop->bytes_out, hc->srv->loop->input_holds, out,
                                  sizeof(out));
        n += routes__auth_metrics(app->auth, out + n, sizeof(out) - n);
        n += version_metrics(out + n, sizeof(out) - n); /* herald_build_info */
        if (app->tls) { /* herald_tls_* (tls.h) */
            tls_ctx_t *tc[2] = {app->tls->https, app->tls->mqtts};
            n += tls_metrics(tc, 2, out + n, sizeof(out) - n);
        }
        int k = snprintf(out + n, sizeof(out) - n,
                         "# HELP herald_channels_refused_total New channels refused at max_channels.\n"
                         "# TYPE herald_channels_refused_total counter\nherald_channels_refused_total %llu\n",
                         (unsigned long long)app->xp.hub->channels_refused);
        if (k > 0 && (size_t)k < sizeof(out) - n) n += (size_t)k;
        k = snprintf(out + n, sizeof(out) - n,
                     "# HELP herald_ip_refused_total Connections refused by the per-address limits.\n"
                     "# TYPE herald_ip_refused_total counter\n"
                     "herald_ip_refused_total{limit=\"max_connections_per_ip\"} %llu\n"
                     "herald_ip_refused_total{limit=\"max_new_connections_per_ip\"} %llu\n",
                     (unsigned long long)(app->xp.ipl ? app->xp.ipl->refused_conns : 0),
                     (unsigned long long)(app->xp.ipl ? app->xp.ipl->refused_rate : 0));
        if (k > 0 && (size_t)k < sizeof(out) - n) n += (size_t)k;
        n += routes__store_metrics(app->xp.hub, out + n, sizeof(out) - n);
        n += routes__limit_metrics(app, out + n, sizeof(out) - n);
        if (app->pub) n += publish_metrics(app->pub, out + n, sizeof(out) - n);
        n += sockjs_metrics(&app->xp, out + n, sizeof(out) - n);
        if (app->reads) n += readstate_metrics(app->reads, out + n, sizeof(out) - n);
        if (app->mqtt) n += mqtt_server_metrics(app->mqtt, out + n, sizeof(out) - n);
        if (app->xp.stq) n += stomp_queues_metrics(app->xp.stq, out + n, sizeof(out) - n);
        k = snprintf(out + n, sizeof(out) - n,
                     "# HELP herald_send_timeouts_total Connections closed because their queued output did not move "
                     "for send_timeout.\n# TYPE herald_send_timeouts_total counter\nherald_send_timeouts_total %llu\n",
                     (unsigned long long)hc->srv->loop->send_timeouts);
        if (k > 0 && (size_t)k < sizeof(out) - n) n += (size_t)k;
        if (app->xp.users) n += users_metrics(app->xp.users, out + n, sizeof(out) - n);
        if (app->xp.hub->pres) n += presence_metrics(app->xp.hub->pres, out + n, sizeof(out) - n);
        engine_t *e = app->xp.hub->engine;
        if (e && e->ops->metrics) n += e->ops->metrics(e, out + n, sizeof(out) - n);
        n += routes__ops_metrics(app, hc, out + n, sizeof(out) - n);
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
