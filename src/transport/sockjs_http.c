/* sockjs_http.c - the SockJS URL space under a service's prefix (sockjs-protocol 0.3.3):
 *   GET  /  (or "")                   "Welcome to SockJS!"
 *   GET|OPTIONS /info                 {"websocket","cookie_needed","origins":["*:*"],"entropy"}
 *   GET  /iframe.html, /iframe-V.html the page that loads sockjs_url (cacheable, ETag)
 *   GET  /websocket                   the service's plain WebSocket (no SockJS framing)
 *   /{server}/{session}/T             T: websocket (GET), xhr, xhr_streaming, xhr_send (POST),
 *                                     eventsource, htmlfile?c=, jsonp?c= (GET), jsonp_send (POST)
 * Cross-origin use is governed by ws_origins, as for WebSocket (a page from an origin it does not
 * allow gets 403; the default "*" allows any): allowed requests get Access-Control-Allow-Origin
 * (the Origin, or "*") with credentials, so the JSESSIONID and herald_token cookies travel. Also
 * the test services of the protocol's suite (echo = true). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "../core/err.h"
#include "../core/log.h"
#include "sockjs.h"

#define SJ_NOCACHE "Cache-Control: no-store, no-cache, must-revalidate, max-age=0\r\n"
#define SJ_TEXT "text/plain; charset=UTF-8"

/* True when the page at Origin may use SockJS: as for WebSocket (ws_origins). A request without
 * Origin that the browser marks as cross-site (Sec-Fetch-Site: a <script> for jsonp, an <iframe>
 * for htmlfile, which carry the herald_token cookie but no Origin) comes from a page whose origin
 * cannot be checked: only ws_origins "*" lets it through, so another site cannot read a user's
 * session (the /ws protocol subscribes the user's own channel without being asked). */
static bool sj__origin_ok(const cfg_t *cfg, const http_req_t *req, span_t origin)
{
    if (!origin.p) {
        span_t site = http_req_header(req, "Sec-Fetch-Site");
        if (site.p && (span_ieq(site, "cross-site") || span_ieq(site, "same-site")))
            return span_list_has(cfg->ws_origins, SPAN_LIT("*"));
        return true;
    }
    return ws_same_origin(req, origin) || span_list_has(cfg->ws_origins, SPAN_LIT("*")) ||
           (origin.n && span_list_has(cfg->ws_origins, origin));
}

static bool sj__printable(span_t v, size_t max)
{
    if (!v.p || !v.n || v.n > max) return false;
    for (size_t i = 0; i < v.n; i++)
        if ((unsigned char)v.p[i] < 0x20 || (unsigned char)v.p[i] == 0x7f) return false;
    return true;
}

/* The JSESSIONID the client sent (a token of at most 64 bytes), or "dummy". */
static void sj__jsessionid(const http_req_t *req, char *out, size_t cap)
{
    snprintf(out, cap, "dummy");
    span_t ck = http_req_header(req, "Cookie");
    for (size_t i = 0; ck.p && i + 11 <= ck.n; i++) {
        if ((i == 0 || ck.p[i - 1] == ' ' || ck.p[i - 1] == ';') && memcmp(ck.p + i, "JSESSIONID=", 11) == 0) {
            size_t s = i + 11, e = s;
            while (e < ck.n && ck.p[e] != ';' && ck.p[e] != ' ' && ck.p[e] != ',' && ck.p[e] != '"' && ck.p[e] != '\\' &&
                   (unsigned char)ck.p[e] > 0x20 && (unsigned char)ck.p[e] < 0x7f)
                e++;
            if (e > s && e - s <= 64 && e - s < cap) snprintf(out, cap, "%.*s", (int)(e - s), ck.p + s);
            return;
        }
    }
}

/* The response header lines every SockJS answer carries: CORS, and optionally no-cache and the
 * JSESSIONID cookie. The HTTP server's own CORS lines are left out (the request's origin is
 * cleared). Returns the length (0: did not fit). */
static size_t sj__headers(const sockjs_service_t *svc, const cfg_t *cfg, http_conn_t *hc, http_req_t *req, bool nocache,
                          bool cookie, char *out, size_t cap)
{
    span_t origin = http_req_header(req, "Origin"), rh = http_req_header(req, "Access-Control-Request-Headers");
    bool echo = sj__printable(origin, 200) && !span_eq(origin, "null");
    hc->origin[0] = 0;
    int n = snprintf(out, cap, "Access-Control-Allow-Origin: %.*s\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n",
                     echo ? (int)origin.n : 1, echo ? origin.p : "*");
    if (n < 0 || (size_t)n >= cap) return 0;
    size_t o = (size_t)n;
    if (sj__printable(rh, 200)) {
        n = snprintf(out + o, cap - o, "Access-Control-Allow-Headers: %.*s\r\n", (int)rh.n, rh.p);
        if (n < 0 || (size_t)n >= cap - o) return 0;
        o += (size_t)n;
    }
    if (nocache) {
        n = snprintf(out + o, cap - o, SJ_NOCACHE);
        if (n < 0 || (size_t)n >= cap - o) return 0;
        o += (size_t)n;
    }
    if (cookie && (svc->cookie_needed || cfg->sockjs_cookie_needed)) {
        char id[72];
        sj__jsessionid(req, id, sizeof(id));
        n = snprintf(out + o, cap - o, "Set-Cookie: JSESSIONID=%s; path=/\r\n", id);
        if (n < 0 || (size_t)n >= cap - o) return 0;
        o += (size_t)n;
    }
    return o;
}

/* "Cache-Control: public ..." and Expires a year from now. */
static size_t sj__cache_year(char *out, size_t cap)
{
    time_t t = time(NULL) + 31536000;
    struct tm tm;
    gmtime_r(&t, &tm);
    char date[64];
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    int n = snprintf(out, cap, "Cache-Control: public, max-age=31536000\r\nExpires: %s\r\n", date);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static void sj__options(const sockjs_service_t *svc, const cfg_t *cfg, http_conn_t *hc, http_req_t *req,
                        const char *methods)
{
    char extra[1024];
    size_t n = sj__headers(svc, cfg, hc, req, false, true, extra, sizeof(extra));
    n += sj__cache_year(extra + n, sizeof(extra) - n);
    snprintf(extra + n, sizeof(extra) - n, "Access-Control-Max-Age: 31536000\r\nAccess-Control-Allow-Methods: %s\r\n",
             methods);
    http_respond(hc, 204, SJ_TEXT, "", 0, extra);
}

static void sj__info(xp_ctx_t *x, const sockjs_service_t *svc, http_conn_t *hc, http_req_t *req)
{
    uint32_t entropy = 0;
    if (getrandom(&entropy, sizeof(entropy), 0) != (ssize_t)sizeof(entropy)) entropy = (uint32_t)time(NULL);
    char body[160], extra[768];
    int n = snprintf(body, sizeof(body), "{\"websocket\":%s,\"cookie_needed\":%s,\"origins\":[\"*:*\"],\"entropy\":%u}",
                     x->cfg->sockjs_websocket && !svc->no_websocket ? "true" : "false",
                     x->cfg->sockjs_cookie_needed || svc->cookie_needed ? "true" : "false", entropy);
    sj__headers(svc, x->cfg, hc, req, true, false, extra, sizeof(extra));
    http_respond(hc, 200, "application/json; charset=UTF-8", body, (size_t)n, extra);
}

static void sj__iframe(xp_ctx_t *x, const sockjs_service_t *svc, http_conn_t *hc, http_req_t *req)
{
    const char *url = x->cfg->sockjs_url;
    if (strpbrk(url, "\"<>&")) url = ""; /* an attribute value: no quoting games */
    char body[1024];
    int n = snprintf(body, sizeof(body),
                     "<!DOCTYPE html>\n<html>\n<head>\n"
                     "  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n"
                     "  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n"
                     "  <script>\n    document.domain = document.domain;\n"
                     "    _sockjs_onload = function(){SockJS.bootstrap_iframe();};\n  </script>\n"
                     "  <script src=\"%s\"></script>\n</head>\n<body>\n  <h2>Don't panic!</h2>\n"
                     "  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n</body>\n</html>",
                     url);
    if (n < 0 || (size_t)n >= sizeof(body)) {
        http_error(hc, HR_EINVAL, "sockjs_url too long");
        return;
    }
    uint64_t h = 1469598103934665603ull; /* FNV-1a of the page: the same page, the same ETag */
    for (int i = 0; i < n; i++) h = (h ^ (unsigned char)body[i]) * 1099511628211ull;
    char etag[24], extra[1024];
    snprintf(etag, sizeof(etag), "\"%016llx\"", (unsigned long long)h);
    size_t e = sj__headers(svc, x->cfg, hc, req, false, false, extra, sizeof(extra));
    e += sj__cache_year(extra + e, sizeof(extra) - e);
    snprintf(extra + e, sizeof(extra) - e, "ETag: %s\r\n", etag);
    span_t inm = http_req_header(req, "If-None-Match");
    if (inm.p && span_eq(inm, etag)) {
        http_respond(hc, 304, SJ_TEXT, "", 0, extra);
        return;
    }
    http_respond(hc, 200, "text/html; charset=UTF-8", body, (size_t)n, extra);
}

/* /iframe.html or /iframe-ANYTHING.html (no '/'). */
static bool sj__iframe_path(span_t p)
{
    if (span_eq(p, "/iframe.html")) return true;
    if (p.n < 13 || memcmp(p.p, "/iframe-", 8) != 0 || memcmp(p.p + p.n - 5, ".html", 5) != 0) return false;
    return !memchr(p.p + 8, '/', p.n - 13);
}

static void sj__error500(http_conn_t *hc, const char *extra, const char *why)
{
    http_respond(hc, 500, SJ_TEXT, why, strlen(why), extra);
}

/* xhr_send and jsonp_send: the messages in body go to the session. */
static void sj__send(xp_ctx_t *x, const sockjs_service_t *svc, http_conn_t *hc, http_req_t *req, span_t id, span_t body,
                     bool jsonp)
{
    char extra[768];
    sj__headers(svc, x->cfg, hc, req, true, true, extra, sizeof(extra));
    sockjs_sess_t *ss = sockjs__find(x, svc, id.p, id.n);
    if (!ss || !sockjs__open(ss)) {
        http_respond(hc, 404, SJ_TEXT, "Session not found.", 18, extra);
        return;
    }
    if (!sockjs__owner_ok(x, ss, hc, req)) return;
    if (body.n > x->cfg->ws_max_message + 64) { /* the batch, as a WebSocket message would be */
        char peer[128];
        log_info("sockjs: %s: send of %zu bytes over ws_max_message refused", conn_peer(&hc->base, peer, sizeof(peer)),
                 body.n);
        http_respond(hc, 413, SJ_TEXT, "Payload too large.", 18, extra);
        return;
    }
    char *scratch = malloc(body.n + 1);
    if (!scratch) {
        http_error(hc, HR_ENOMEM, "out of memory");
        return;
    }
    span_t data = body;
    span_t ct = http_req_header(req, "Content-Type");
    if (jsonp && ct.p && ct.n >= 33 && strncasecmp(ct.p, "application/x-www-form-urlencoded", 33) == 0) {
        ssize_t dn = sockjs_form_field(body.p, body.n, "d", scratch, body.n + 1);
        if (dn == HR_EINVAL) {
            free(scratch);
            sj__error500(hc, extra, "Broken JSON encoding.");
            return;
        }
        data = dn > 0 ? (span_t){scratch, (size_t)dn} : (span_t){NULL, 0};
    }
    if (!data.n) {
        free(scratch);
        sj__error500(hc, extra, "Payload expected.");
        return;
    }
    char *out = malloc(data.n);
    const char *why = NULL;
    ssize_t rc = out ? sockjs_decode(data.p, data.n, false, UINT32_MAX, out, data.n, sockjs__deliver, ss, &why) : HR_ENOMEM;
    free(out);
    free(scratch);
    if (rc == HR_ENOMEM) http_error(hc, HR_ENOMEM, "out of memory");
    else if (rc < 0) sj__error500(hc, extra, why ? why : "Broken JSON encoding.");
    else if (jsonp) http_respond(hc, 200, SJ_TEXT, "ok", 2, extra);
    else {
        char e2[sizeof(extra) + 48];
        snprintf(e2, sizeof(e2), "Content-Type: " SJ_TEXT "\r\n%s", extra);
        http_respond(hc, 204, SJ_TEXT, "", 0, e2);
    }
}

static const struct {
    const char *name;
    uint8_t kind;
    bool streaming, post, callback;
} sj_receivers[] = {
    {"xhr", SJ_XHR, false, true, false},           {"xhr_streaming", SJ_XHR_STREAMING, true, true, false},
    {"eventsource", SJ_EVENTSOURCE, true, false, false}, {"htmlfile", SJ_HTMLFILE, true, false, true},
    {"jsonp", SJ_JSONP, false, false, true},
};

/* /{server}/{session}/{transport} */
static void sj__session_url(xp_ctx_t *x, const sockjs_service_t *svc, http_conn_t *hc, http_req_t *req, span_t rest,
                            span_t body)
{
    const char *p = rest.p + 1, *end = rest.p + rest.n;
    const char *s1 = memchr(p, '/', (size_t)(end - p));
    const char *s2 = s1 ? memchr(s1 + 1, '/', (size_t)(end - s1 - 1)) : NULL;
    if (!s2) {
        http_error(hc, HR_ENOTFOUND, "not found");
        return;
    }
    span_t server = {p, (size_t)(s1 - p)}, id = {s1 + 1, (size_t)(s2 - s1 - 1)}, t = {s2 + 1, (size_t)(end - s2 - 1)};
    if (!sockjs_id_valid(server.p, server.n) || !sockjs_id_valid(id.p, id.n)) {
        http_error(hc, HR_ENOTFOUND, "not found");
        return;
    }
    bool options = span_eq(req->method, "OPTIONS"), post = span_eq(req->method, "POST"),
         get = span_eq(req->method, "GET");
    if (span_eq(t, "websocket")) {
        if (!x->cfg->sockjs_websocket || svc->no_websocket) http_error(hc, HR_ENOTFOUND, "not found");
        else sockjs__websocket(x, svc, hc, req);
        return;
    }
    if (span_eq(t, "xhr_send") || span_eq(t, "jsonp_send")) {
        bool jsonp = t.n == 10;
        if (options && !jsonp) sj__options(svc, x->cfg, hc, req, "OPTIONS, POST");
        else if (!post) http_method_not_allowed(hc, jsonp ? "POST" : "OPTIONS, POST", "use POST");
        else sj__send(x, svc, hc, req, id, body, jsonp);
        return;
    }
    for (size_t i = 0; i < sizeof(sj_receivers) / sizeof(sj_receivers[0]); i++) {
        if (!span_eq(t, sj_receivers[i].name)) continue;
        if (options && sj_receivers[i].post) {
            sj__options(svc, x->cfg, hc, req, "OPTIONS, POST");
            return;
        }
        if (sj_receivers[i].post ? !post : !get) {
            http_method_not_allowed(hc, sj_receivers[i].post ? "OPTIONS, POST" : "GET", "method not allowed");
            return;
        }
        sockjs_rxfmt_t f = {.kind = sj_receivers[i].kind, .streaming = sj_receivers[i].streaming};
        size_t en = sj__headers(svc, x->cfg, hc, req, true, true, f.extra, sizeof(f.extra));
        if (sj_receivers[i].callback) {
            ssize_t cn = http_req_query(req, "c", f.cb, sizeof(f.cb));
            if (cn == HR_ENOTFOUND || cn == 0) {
                sj__error500(hc, f.extra, "\"callback\" parameter required");
                return;
            }
            if (cn < 0 || !sockjs_callback_valid(f.cb, (size_t)cn)) {
                sj__error500(hc, f.extra, "invalid \"callback\" parameter");
                return;
            }
        }
        if (f.streaming && en >= sizeof(SJ_NOCACHE) - 1) { /* http_stream_begin says no-cache itself */
            char *nc = strstr(f.extra, SJ_NOCACHE);
            if (nc) memmove(nc, nc + sizeof(SJ_NOCACHE) - 1, strlen(nc + sizeof(SJ_NOCACHE) - 1) + 1);
        }
        sockjs__receive(x, svc, hc, req, id.p, id.n, &f);
        return;
    }
    http_error(hc, HR_ENOTFOUND, "not found");
}

void sockjs_serve(xp_ctx_t *x, const sockjs_service_t *svc, http_conn_t *hc, http_req_t *req, span_t rest, span_t body)
{
    span_t origin = http_req_header(req, "Origin");
    if (!sj__origin_ok(x->cfg, req, origin)) {
        char peer[128];
        log_info("sockjs: %s: origin not allowed", conn_peer(&hc->base, peer, sizeof(peer)));
        http_error(hc, HR_EFORBIDDEN, "origin not allowed (ws_origins)");
        return;
    }
    bool get = span_eq(req->method, "GET") || span_eq(req->method, "HEAD");
    if (rest.n == 0 || span_eq(rest, "/")) {
        if (!get) http_method_not_allowed(hc, "GET", "use GET");
        else http_respond(hc, 200, SJ_TEXT, "Welcome to SockJS!\n", 19, "");
    } else if (span_eq(rest, "/info")) {
        if (span_eq(req->method, "OPTIONS")) sj__options(svc, x->cfg, hc, req, "OPTIONS, GET");
        else if (!get) http_method_not_allowed(hc, "OPTIONS, GET", "use GET");
        else sj__info(x, svc, hc, req);
    } else if (sj__iframe_path(rest)) {
        if (!get) http_method_not_allowed(hc, "GET", "use GET");
        else sj__iframe(x, svc, hc, req);
    } else if (span_eq(rest, "/websocket")) {
        if (!svc->raw_websocket || !x->cfg->sockjs_websocket || svc->no_websocket) http_error(hc, HR_ENOTFOUND, "not found");
        else svc->raw_websocket(x, hc, req);
    } else {
        sj__session_url(x, svc, hc, req, rest, body);
    }
}

/* ---- the protocol test suite's services (echo = true) ---- */

static void *sj__echo_open(xp_ctx_t *x, sockjs_sess_t *ss, auth_id_t *id)
{
    (void)x;
    auth_unref(id);
    return ss;
}

static void sj__echo_message(void *app, char *m, size_t n) { sockjs_sess_send(app, m, n); }

static void sj__echo_free(void *app) { (void)app; }

static void *sj__close_open(xp_ctx_t *x, sockjs_sess_t *ss, auth_id_t *id)
{
    (void)x;
    auth_unref(id);
    sockjs_sess_close(ss, 3000, "Go away!");
    return ss;
}

static const sockjs_app_t sj_echo_app = {
    .name = "echo", .open = sj__echo_open, .message = sj__echo_message, .free = sj__echo_free};
static const sockjs_app_t sj_close_app = {
    .name = "close", .open = sj__close_open, .message = sj__echo_message, .free = sj__echo_free};

static const sockjs_service_t sj_echo = {.app = &sj_echo_app, .raw_websocket = ws_echo_serve};
static const sockjs_service_t sj_nows_echo = {.app = &sj_echo_app, .no_websocket = true};
static const sockjs_service_t sj_cookie_echo = {.app = &sj_echo_app, .cookie_needed = true, .raw_websocket = ws_echo_serve};
static const sockjs_service_t sj_close = {.app = &sj_close_app};

const sockjs_service_t *sockjs_test_service(span_t name)
{
    if (span_eq(name, "echo")) return &sj_echo;
    if (span_eq(name, "disabled_websocket_echo")) return &sj_nows_echo;
    if (span_eq(name, "cookie_needed_echo")) return &sj_cookie_echo;
    if (span_eq(name, "close")) return &sj_close;
    return NULL;
}
