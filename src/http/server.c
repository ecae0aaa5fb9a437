/* server.c - HTTP/1.1 connections; see server.h for the life of a connection. */
#include "server.h"

#include <errno.h>
#include <sys/socket.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/err.h"
#include "access.h"
#include "../core/log.h"
#include "../core/tls.h"

#define HTTP_BODY_SLACK 65536 /* read-buffer room beyond head + body (chunk framing, pipelining) */

const char *http_status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

int http_status_for(int rc)
{
    switch (rc) {
    case HR_EBADREQ:
    case HR_ECHANNEL:
    case HR_EINVAL:
    case HR_EPROTO: return 400;
    case HR_EAUTH: return 401;
    case HR_EFORBIDDEN: return 403;
    case HR_ENOTFOUND: return 404;
    case HR_EMETHOD: return 405;
    case HR_ETIMEDOUT: return 408;
    case HR_EBODYTOOBIG: return 413;
    case HR_EURITOOLONG: return 414;
    case HR_EHDRTOOBIG: return 431;
    case HR_ENOTIMPL: return 501;
    case HR_ENOMEM:
    case HR_EFULL:
    case HR_EUNAVAIL:
    case HR_ESHUTDOWN: return 503;
    case HR_EVERSION: return 505;
    case HR_ESTOREFULL:
    case HR_EHISTFULL:
    case HR_ERETAINED: return 507;
    default: return 500;
    }
}

bytes_t *http_chunk(const void *p, size_t n)
{
    char line[24];
    size_t ln = chunked_size_line(line, n);
    bytes_t *b = bytes_new(ln + n + 2);
    if (!b) return NULL;
    memcpy(b->data, line, ln);
    if (n) memcpy(b->data + ln, p, n);
    memcpy(b->data + ln + n, "\r\n", 2);
    return b;
}

static void http__set_xp(http_conn_t *hc, uint8_t xp)
{
    hc->srv->metrics->connections[hc->xp]--;
    hc->xp = xp;
    hc->srv->metrics->connections[xp]++;
}

/* Appends the CORS response headers for the current request, if its origin is allowed. */
static size_t http__cors_headers(http_conn_t *hc, char *out, size_t cap)
{
    if (!hc->origin[0]) return 0;
    int n = snprintf(out, cap,
                     "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n%s"
                     "Access-Control-Expose-Headers: Content-Type, Last-Event-ID, WWW-Authenticate\r\n",
                     hc->origin, hc->origin_listed ? "Access-Control-Allow-Credentials: true\r\n" : "");
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* The Date header line, formatted once per second. */
static size_t http__date(http_server_t *srv, char *out, size_t cap)
{
    time_t t = time(NULL);
    if (t != srv->date_sec) {
        struct tm tm;
        gmtime_r(&t, &tm);
        srv->date_len = strftime(srv->date, sizeof(srv->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        srv->date_sec = t;
    }
    if (srv->date_len >= cap) return 0;
    memcpy(out, srv->date, srv->date_len);
    return srv->date_len;
}

static void http__after_response(http_conn_t *hc)
{
    if (hc->state == HC_PARKED) {
        hc->xops = NULL;
        hc->xstate = NULL;
        http__set_xp(hc, XP_HTTP);
        hc->state = HC_HEAD;
        conn_pause_read(&hc->base, false);
        if (!hc->keepalive || hc->srv->loop->stopping) conn_end(&hc->base);
        else if (hc->base.rlen == 0) conn_timer(&hc->base, hc->srv->cfg->keepalive_timeout_ms);
        return;
    }
    hc->state = HC_HEAD;
    if (!hc->keepalive || hc->srv->loop->stopping) conn_end(&hc->base);
}

/* Writes the response head for a body of len bytes into head (cap bytes). Returns its length or
 * 0 when it does not fit. */
static size_t http__head(http_conn_t *hc, int status, const char *ctype, size_t len, const char *extra, char *head,
                         size_t cap)
{
    if (hc->srv->alog) http_access_log(hc, status, hc->head_only || status == 204 ? 0 : (int64_t)len);
    size_t n = (size_t)snprintf(head, cap, "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
    n += http__date(hc->srv, head + n, cap - n);
    n += http__cors_headers(hc, head + n, cap - n);
    int k;
    if (status == 204)
        k = snprintf(head + n, cap - n, "%s%s\r\n", hc->keepalive ? "" : "Connection: close\r\n", extra);
    else
        k = snprintf(head + n, cap - n, "Content-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n", ctype, len,
                     hc->keepalive ? "" : "Connection: close\r\n", extra);
    if (k < 0 || (size_t)k >= cap - n) return 0;
    return n + (size_t)k;
}

void http_respond(http_conn_t *hc, int status, const char *ctype, const void *body, size_t len, const char *extra)
{
    if (hc->base.closing) return;
    if (status >= 400) hc->srv->metrics->http_errors++;
    char head[1536];
    size_t n = http__head(hc, status, ctype, len, extra, head, sizeof(head));
    if (!n) {
        conn_close(&hc->base, HR_EINVAL);
        return;
    }
    if (hc->head_only || status == 204) len = 0;
    bytes_t *b = bytes_new(n + len);
    if (!b) {
        conn_close(&hc->base, HR_ENOMEM);
        return;
    }
    memcpy(b->data, head, n);
    if (len) memcpy(b->data + n, body, len);
    conn_send_reply(&hc->base, b);
    bytes_unref(b);
    http__after_response(hc);
}

void http_respond_shared(http_conn_t *hc, int status, const char *ctype, bytes_t *body, const char *extra)
{
    if (hc->base.closing) return;
    char head[1536];
    size_t n = http__head(hc, status, ctype, body->len, extra, head, sizeof(head));
    bytes_t *h = n ? bytes_copy(head, n) : NULL;
    if (!h) {
        conn_close(&hc->base, HR_ENOMEM);
        return;
    }
    conn_send_reply(&hc->base, h);
    bytes_unref(h);
    if (!hc->head_only) conn_send_reply(&hc->base, body);
    http__after_response(hc);
}

/* The one place that turns an HR_E* code into an HTTP answer. */
static void http__error(http_conn_t *hc, int rc, const char *why, const char *extra)
{
    int status = http_status_for(rc);
    if (!why) why = hr_strerror(rc);
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}", why);
    /* framing errors leave the byte stream untrustworthy: answer, then close */
    bool fatal = rc == HR_EBADREQ || rc == HR_EURITOOLONG || rc == HR_EHDRTOOBIG || rc == HR_EVERSION ||
                 rc == HR_EBODYTOOBIG || rc == HR_ENOTIMPL || rc == HR_ETIMEDOUT;
    if (fatal) {
        hc->keepalive = false;
        char peer[128];
        log_info("http: %s: %d %s", conn_peer(&hc->base, peer, sizeof(peer)), status, why);
    } else {
        log_debug("http: %d %s", status, why);
    }
    http_respond(hc, status, "application/json", body, (size_t)n, extra);
}

void http_error(http_conn_t *hc, int rc, const char *why) { http__error(hc, rc, why, ""); }

void http_error_hdr(http_conn_t *hc, int rc, const char *why, const char *extra) { http__error(hc, rc, why, extra); }

void http_method_not_allowed(http_conn_t *hc, const char *allow, const char *why)
{
    char extra[96];
    snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
    http__error(hc, HR_EMETHOD, why, extra);
}

void http_park(http_conn_t *hc, const http_xport_ops_t *ops, void *state, uint8_t xp)
{
    hc->state = HC_PARKED;
    hc->xops = ops;
    hc->xstate = state;
    http__set_xp(hc, xp);
    conn_timer(&hc->base, 0);
}

int http_stream_begin(http_conn_t *hc, const char *ctype, const char *extra, const http_xport_ops_t *ops,
                      void *state, uint8_t xp)
{
    char head[1536];
    size_t n = (size_t)snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\n");
    n += http__date(hc->srv, head + n, sizeof(head) - n);
    n += http__cors_headers(hc, head + n, sizeof(head) - n);
    int k = snprintf(head + n, sizeof(head) - n,
                     "Content-Type: %s\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache\r\n%s\r\n", ctype,
                     extra);
    if (k < 0 || (size_t)k >= sizeof(head) - n) return HR_EINVAL;
    n += (size_t)k;
    int rc = conn_send_copy(&hc->base, head, n);
    if (rc < 0) return rc;
    if (hc->srv->alog) http_access_log(hc, 200, -1);
    hc->state = HC_STREAM;
    hc->xops = ops;
    hc->xstate = state;
    http__set_xp(hc, xp);
    conn_timer(&hc->base, 0);
    return 0;
}

int http_upgrade(http_conn_t *hc, const char *protocol, const char *extra, const http_xport_ops_t *ops, void *state,
                 uint8_t xp, uint32_t rmax)
{
    char head[1024];
    int n = snprintf(head, sizeof(head), "HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n%s\r\n",
                     protocol, extra);
    if (n < 0 || (size_t)n >= sizeof(head)) return HR_EINVAL;
    int rc = conn_send_copy(&hc->base, head, (size_t)n);
    if (rc < 0) return rc;
    if (hc->srv->alog) http_access_log(hc, 101, -1);
    hc->state = HC_UPGRADED;
    hc->keepalive = false;
    hc->xops = ops;
    hc->xstate = state;
    hc->base.rmax = rmax;
    http__set_xp(hc, xp);
    conn_timer(&hc->base, 0);
    return 0;
}

/* Decides whether the request's Origin may use CORS; remembers it for the response headers. */
static bool http__origin_allowed(http_conn_t *hc, span_t origin)
{
    hc->origin[0] = 0;
    hc->origin_listed = false;
    if (!origin.p || origin.n == 0 || origin.n >= sizeof(hc->origin)) return false;
    for (size_t i = 0; i < origin.n; i++)
        if ((unsigned char)origin.p[i] <= ' ' || origin.p[i] == ',') return false;
    hc->origin_listed = span_list_has(hc->srv->cfg->cors_origins, origin);
    bool ok = hc->srv->cors_any || hc->origin_listed;
    if (ok) {
        memcpy(hc->origin, origin.p, origin.n);
        hc->origin[origin.n] = 0;
    }
    return ok;
}

static void http__preflight(http_conn_t *hc, http_req_t *req)
{
    span_t origin = http_req_header(req, "Origin");
    span_t method = http_req_header(req, "Access-Control-Request-Method");
    if (!origin.p || !method.p) {
        http_respond(hc, 204, "", NULL, 0, "Allow: GET, HEAD, POST, OPTIONS\r\n");
        return;
    }
    if (!http__origin_allowed(hc, origin)) {
        http_error(hc, HR_EFORBIDDEN, "origin not allowed");
        return;
    }
    /* Authorization (and, through Allow-Credentials, cookies) only for origins named in the list */
    http_respond(hc, 204, "", NULL, 0,
                 hc->origin_listed
                     ? "Access-Control-Allow-Methods: GET, HEAD, POST, PUT, OPTIONS\r\n"
                       "Access-Control-Allow-Headers: Content-Type, Last-Event-ID, X-Event, Cache-Control, "
                       "X-Requested-With, Authorization\r\n"
                       "Access-Control-Max-Age: 600\r\n"
                     : "Access-Control-Allow-Methods: GET, HEAD, POST, PUT, OPTIONS\r\n"
                       "Access-Control-Allow-Headers: Content-Type, Last-Event-ID, X-Event, Cache-Control, X-Requested-With\r\n"
                       "Access-Control-Max-Age: 600\r\n");
}

static void http__dispatch(http_conn_t *hc, http_req_t *req, span_t body)
{
    http_server_t *srv = hc->srv;
    srv->metrics->http_requests++;
    http_access_request(hc, req); /* the client behind a trusted proxy; the access log's request line */
    hc->keepalive = http_req_keepalive(req);
    hc->head_only = span_eq(req->method, "HEAD");
    /* absolute-form target (RFC 9112 3.2.2): a server must accept it; route on its path */
    if (req->path.n > 7 && (strncasecmp(req->path.p, "http://", 7) == 0 || strncasecmp(req->path.p, "https://", 8) == 0)) {
        const char *auth = memchr(req->path.p, ':', req->path.n) + 3;
        const char *slash = memchr(auth, '/', (size_t)(req->path.p + req->path.n - auth));
        req->path = slash ? (span_t){slash, (size_t)(req->path.p + req->path.n - slash)} : SPAN_LIT("/");
    }
    conn_timer(&hc->base, 0);
    bool own = false; /* a protocol that answers its own preflights (SockJS) */
    for (const char *const *pp = srv->own_options; pp && *pp && !own; pp++)
        own = req->path.n >= strlen(*pp) && memcmp(req->path.p, *pp, strlen(*pp)) == 0;
    if (span_eq(req->method, "OPTIONS") && !own) {
        http__preflight(hc, req);
        return;
    }
    http__origin_allowed(hc, http_req_header(req, "Origin"));
    if (srv->loop->stopping) {
        hc->keepalive = false;
        http_error(hc, HR_ESHUTDOWN, "shutting down");
        return;
    }
    srv->handler(hc, req, body);
}

/* Parses and dispatches as many complete requests as the read buffer holds. */
static void http__process(http_conn_t *hc)
{
    conn_t *c = &hc->base;
    http_server_t *srv = hc->srv;
    while (!c->closing && !c->end_after_write) {
        if (hc->state == HC_STREAM) { /* a stream takes no more requests: discard input */
            conn_consume(c, c->rlen);
            return;
        }
        if (hc->state == HC_UPGRADED) {
            if (c->rlen) hc->xops->on_read(hc);
            return;
        }
        if (hc->state == HC_PARKED) {
            conn_pause_read(c, true);
            return;
        }
        http_req_t req;
        if (hc->state == HC_HEAD) {
            if (c->rlen == 0) return;
            if (wq_full(&c->wq)) {
                /* pipelined requests whose answers are not being read: no more is parsed (or read
                 * from the socket) until the queue drains, so memory stays at max_queued_bytes */
                conn_hold_input(c);
                return;
            }
            if (!tw_armed(&c->timer) || c->timer.deadline > loop_now(c->loop) + srv->cfg->header_timeout_ms)
                conn_timer(c, srv->cfg->header_timeout_ms); /* from the request's first byte, never extended */
            ssize_t r = http_parse_request(c->rbuf, c->rlen, &srv->limits, &req);
            if (r == HR_EAGAIN) return;
            if (r < 0) {
                http_error(hc, (int)r, req.why);
                return;
            }
            hc->head_len = (uint32_t)r;
            int rc = http_req_body(&req, &hc->body_kind, &hc->body_len);
            if (rc < 0) {
                hc->keepalive = false;
                http_error(hc, rc, req.why);
                return;
            }
            if (hc->body_kind == HTTP_BODY_LENGTH && hc->body_len > srv->cfg->max_body) {
                hc->keepalive = false;
                http_error(hc, HR_EBODYTOOBIG, "request body too large");
                return;
            }
            hc->body_decoded = 0;
            memset(&hc->chunk, 0, sizeof(hc->chunk));
            hc->state = HC_BODY;
            /* a client that asked to be told before sending its body (curl does for > 1 KiB) */
            if (hc->body_kind != HTTP_BODY_NONE && req.minor >= 1 && c->rlen == hc->head_len &&
                http_req_header_has(&req, "Expect", "100-continue"))
                conn_send_copy(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        }
        /* HC_BODY: wait for the whole body, decoding chunks in place as they come */
        span_t body = {NULL, 0};
        uint32_t total = hc->head_len;
        if (hc->body_kind == HTTP_BODY_LENGTH) {
            if (c->rlen - hc->head_len < hc->body_len) return;
            body = (span_t){c->rbuf + hc->head_len, (size_t)hc->body_len};
            total += (uint32_t)hc->body_len;
        } else if (hc->body_kind == HTTP_BODY_CHUNKED) {
            char *area = c->rbuf + hc->head_len + hc->body_decoded;
            size_t alen = c->rlen - hc->head_len - hc->body_decoded, out = 0;
            ssize_t r = chunked_decode(&hc->chunk, area, alen, &out, srv->cfg->max_body);
            hc->body_decoded += (uint32_t)out;
            if (r == HR_EAGAIN) {
                c->rlen = hc->head_len + hc->body_decoded;
                return;
            }
            if (r < 0) {
                hc->keepalive = false;
                http_error(hc, (int)r, r == HR_EBODYTOOBIG ? "request body too large" : "malformed chunked body");
                return;
            }
            size_t leftover = alen - (size_t)r;
            memmove(area + out, area + r, leftover);
            c->rlen = hc->head_len + hc->body_decoded + (uint32_t)leftover;
            body = (span_t){c->rbuf + hc->head_len, hc->body_decoded};
            total += hc->body_decoded;
        }
        /* the buffer may have moved since the head was parsed: parse it again (cheap, pure) */
        http_parse_request(c->rbuf, hc->head_len, &srv->limits, &req);
        if (!body.p) body = (span_t){c->rbuf + hc->head_len, 0};
        http__dispatch(hc, &req, body);
        if (c->closing) return;
        conn_consume(c, total);
        if (hc->state == HC_BODY) hc->state = HC_HEAD; /* handler answered without http_respond? */
        if (hc->state == HC_HEAD && c->rlen == 0 && !c->end_after_write)
            conn_timer(c, srv->cfg->keepalive_timeout_ms);
    }
}

static void http__on_read(conn_t *c)
{
    http_conn_t *hc = container_of(c, http_conn_t, base);
    http__process(hc);
    /* a head that filled the whole buffer without completing is refused by the parser's limits;
     * a body is bounded by max_body, so a full buffer here means the peer sent too much */
    if (!c->closing && !c->end_after_write && !c->held && hc->state <= HC_BODY && c->rlen >= c->rmax)
        http_error(hc, HR_EBODYTOOBIG, "request too large");
}

static void http__on_eof(conn_t *c)
{
    http_conn_t *hc = container_of(c, http_conn_t, base);
    if (hc->state == HC_STREAM || hc->state == HC_PARKED || hc->state == HC_UPGRADED)
        conn_close(c, 0);
    else
        conn_end(c);
}

static void http__on_drain(conn_t *c)
{
    http_conn_t *hc = container_of(c, http_conn_t, base);
    if (hc->xops && hc->xops->on_drain) hc->xops->on_drain(hc);
}

static void http__on_timer(conn_t *c)
{
    http_conn_t *hc = container_of(c, http_conn_t, base);
    switch (hc->state) {
    case HC_PARKED:
    case HC_STREAM:
    case HC_UPGRADED:
        if (hc->xops && hc->xops->on_timer) hc->xops->on_timer(hc);
        return;
    case HC_HEAD:
        if (c->rlen == 0) { /* idle keep-alive connection */
            conn_close(c, 0);
            return;
        }
        __attribute__((fallthrough)); /* a request started but did not finish in time */
    case HC_BODY:
        hc->keepalive = false;
        http_error(hc, HR_ETIMEDOUT, "request timeout");
        return;
    }
}

static void http__on_close(conn_t *c)
{
    http_conn_t *hc = container_of(c, http_conn_t, base);
    if (hc->xops) hc->xops->on_close(hc);
    iplimit_release(hc->srv->ipl, c->ipl);
    hc->srv->metrics->connections[hc->xp]--;
    list_unlink(&hc->all);
    hc->srv->nconns--;
    free(hc->al_req);
    free(hc);
}

static const conn_ops_t http_conn_ops = {
    .on_read = http__on_read,
    .on_eof = http__on_eof,
    .on_drain = http__on_drain,
    .on_timer = http__on_timer,
    .on_close = http__on_close,
};

/* A refused connection lingers a moment after its 503 (what nginx calls a lingering close): its
 * request, sent right after connecting, is read and dropped until the client closes or
 * HTTP_LINGER_MS pass, so the close does not reset the connection (a reset can reach the client
 * before the answer does, and the answer is lost). At most max_lingering_closes at once; beyond,
 * the socket is closed at once (counted; logged when the bound is first reached). */
#define HTTP_LINGER_MS 1000

typedef struct {
    watcher_t w;
    tw_entry_t t;
    list_node_t link; /* in srv->lingers */
    http_server_t *srv;
} http_linger_t;

static void http__linger_end(http_linger_t *g)
{
    list_unlink(&g->link);
    loop_unwatch(g->srv->loop, &g->w);
    tw_stop(&g->srv->loop->wheel, &g->t);
    close(g->w.fd);
    g->srv->lingering--;
    free(g);
}

static void http__linger_timeout(tw_entry_t *e) { http__linger_end(container_of(e, http_linger_t, t)); }

static void http__linger_read(loop_t *loop, watcher_t *w, uint32_t events)
{
    (void)loop, (void)events;
    http_linger_t *g = container_of(w, http_linger_t, w);
    char sink[4096];
    ssize_t k;
    while ((k = recv(w->fd, sink, sizeof(sink), MSG_DONTWAIT)) > 0) {}
    if (k == 0 || (errno != EAGAIN && errno != EINTR)) http__linger_end(g); /* the client closed */
}

/* Refuses a just-accepted connection with a 503 and {"error":why}: one best-effort write. */
static void http__refuse(http_server_t *srv, int fd, const char *why)
{
    srv->metrics->rejected++;
    char busy[256];
    int n = snprintf(busy, sizeof(busy),
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n{\"error\":\"%s\"}",
                     strlen(why) + 12, why);
    ssize_t w = n > 0 ? write(fd, busy, (size_t)n) : 0;
    (void)w;
    shutdown(fd, SHUT_WR);
    bool room = srv->lingering < srv->cfg->max_lingering_closes;
    if (!room) {
        srv->linger_skipped++;
        if (!srv->linger_full) log_warn("http: %u refused connections linger (max_lingering_closes): closing further ones "
                                        "at once, their 503 may be lost", srv->lingering);
        srv->linger_full = true;
    } else if (srv->lingering < srv->cfg->max_lingering_closes / 2) {
        srv->linger_full = false; /* logged again when it fills up again */
    }
    http_linger_t *g = room && !srv->loop->stopping ? calloc(1, sizeof(*g)) : NULL;
    if (g) {
        g->srv = srv;
        g->w.fd = fd;
        g->w.cb = http__linger_read;
        tw_entry_init(&g->t, http__linger_timeout);
        if (loop_watch(srv->loop, &g->w, LOOP_READ | LOOP_RDHUP) == 0) {
            srv->lingering++;
            list_push_back(&srv->lingers, &g->link);
            tw_arm(&srv->loop->wheel, &g->t, loop_now(srv->loop) + HTTP_LINGER_MS);
            return;
        }
        free(g);
    }
    close(fd);
}

/* A new connection, plain or (tls set) TLS. A refused TLS peer is closed without an answer: it
 * could not read a plain one. */
static void http__accept(http_server_t *srv, int fd, struct tls_ctx *tls, const proxyproto_t *pp)
{
    if (srv->nconns >= srv->cfg->max_connections || srv->loop->stopping) {
        if (tls) srv->metrics->rejected++, close(fd);
        else http__refuse(srv, fd, "too many connections");
        return;
    }
    ipl_entry_t *ie = NULL;
    if (srv->ipl && (pp ? iplimit_admit_addr(srv->ipl, pp->src, loop_now(srv->loop), &ie)
                        : iplimit_admit(srv->ipl, fd, loop_now(srv->loop), &ie)) < 0) {
        if (tls) srv->metrics->rejected++, close(fd);
        else http__refuse(srv, fd, "too many connections from your address");
        return;
    }
    http_conn_t *hc = calloc(1, sizeof(*hc));
    if (!hc) {
        iplimit_release(srv->ipl, ie);
        close(fd);
        return;
    }
    hc->srv = srv;
    hc->peer_trusted = -1;
    if (pp) { /* the load balancer's PROXY header names the client for the connection's life */
        proxyproto_format(pp, hc->client, sizeof(hc->client));
        hc->pp_client = true;
    }
    hc->xp = XP_HTTP;
    uint64_t rmax = (uint64_t)srv->cfg->max_head + srv->cfg->max_body + HTTP_BODY_SLACK;
    if (rmax > UINT32_MAX / 2) rmax = UINT32_MAX / 2;
    if (conn_init(&hc->base, srv->loop, fd, &http_conn_ops, (uint32_t)rmax, srv->cfg->max_queued_bytes) < 0) {
        iplimit_release(srv->ipl, ie);
        close(fd);
        free(hc);
        return;
    }
    hc->base.ipl = ie;
    if (hc->pp_client) hc->base.alias = hc->client;
    list_push_back(&srv->conns, &hc->all);
    srv->nconns++;
    srv->metrics->accepted++;
    srv->metrics->connections[XP_HTTP]++;
    conn_timer(&hc->base, srv->cfg->header_timeout_ms);
    if (tls && tls_conn_start(&hc->base, tls) < 0) conn_close(&hc->base, HR_ENOMEM);
}

static void http__on_accept(listener_t *l, int fd) { http__accept(l->ctx, fd, NULL, l->pp); }

static void http__on_accept_tls(listener_t *l, int fd)
{
    http_server_t *srv = l->ctx;
    http__accept(srv, fd, srv->tls, l->pp);
}

int http_server_listen_tls(http_server_t *srv, const char *addr, struct tls_ctx *tls)
{
    srv->tls = tls;
    int rc = listener_open(&srv->tls_listener, srv->loop, addr, http__on_accept_tls, srv);
    if (rc == 0 && srv->cfg->proxy_protocol) listener_proxy(&srv->tls_listener, srv->cfg->header_timeout_ms);
    return rc;
}

int http_server_open(http_server_t *srv, loop_t *loop, const cfg_t *cfg, metrics_t *metrics,
                     http_handler_cb handler, void *ctx)
{
    memset(srv, 0, sizeof(*srv));
    srv->loop = loop;
    srv->cfg = cfg;
    srv->metrics = metrics;
    srv->handler = handler;
    srv->ctx = ctx;
    list_init(&srv->conns);
    list_init(&srv->lingers);
    srv->limits = (http_limits_t){.max_target = cfg->max_target, .max_head = cfg->max_head,
                                  .max_headers = cfg->max_headers};
    srv->cors_any = strchr(cfg->cors_origins, '*') != NULL;
    srv->tls_listener.w.fd = srv->tls_listener.reserve_fd = -1;
    if (http_access_open(srv, cfg) < 0) return HR_EINVAL;
    int rc = listener_open(&srv->listener, loop, cfg->http_addr, http__on_accept, srv);
    if (rc == 0 && cfg->proxy_protocol) listener_proxy(&srv->listener, cfg->header_timeout_ms);
    return rc;
}

void http_server_drain(http_server_t *srv)
{
    listener_close(&srv->listener);
    listener_close(&srv->tls_listener);
    list_node_t *pos, *tmp;
    list_each_safe(pos, tmp, &srv->conns)
    {
        http_conn_t *hc = container_of(pos, http_conn_t, all);
        conn_t *c = &hc->base;
        if (c->closing || c->end_after_write) continue;
        switch (hc->state) {
        case HC_UPGRADED: /* a goodbye (WebSocket Close 1001, MQTT DISCONNECT), closed once written */
        case HC_STREAM:   /* a "shutdown" notice with the retry hint and the last chunk */
            if (hc->xops && hc->xops->on_shutdown) hc->xops->on_shutdown(hc);
            else if (hc->state == HC_STREAM) conn_send_copy(c, "0\r\n\r\n", 5);
            if (!c->closing) conn_end(c);
            break;
        case HC_PARKED: /* long polls answer now; publishes are answered once committed */
            hc->keepalive = false;
            if (hc->xops && hc->xops->on_shutdown) hc->xops->on_shutdown(hc);
            break;
        default: /* idle keep-alive connections and requests still arriving */
            conn_close(c, HR_ESHUTDOWN);
            break;
        }
    }
}

void http_server_close(http_server_t *srv)
{
    listener_close(&srv->listener);
    listener_close(&srv->tls_listener);
    while (srv->lingers.next && !list_empty(&srv->lingers))
        http__linger_end(container_of(srv->lingers.next, http_linger_t, link));
    http_access_close(srv); /* nothing is logged from here on */
    list_node_t *pos, *tmp;
    list_each_safe(pos, tmp, &srv->conns)
    {
        http_conn_t *hc = container_of(pos, http_conn_t, all);
        bool bye = false;
        if (hc->state == HC_UPGRADED && hc->xops->on_shutdown && !hc->base.closing) {
            /* a goodbye (WebSocket Close 1001, MQTT DISCONNECT) */
            hc->xops->on_shutdown(hc);
            bye = true;
        } else if (hc->state == HC_STREAM && !hc->base.closing) {
            /* the last chunk ends SSE / iframe streams properly (browsers then reconnect quietly) */
            bye = conn_send_copy(&hc->base, "0\r\n\r\n", 5) == 0;
        }
        if (bye) conn_flush_now(&hc->base); /* one best-effort write, no wait */
        conn_close(&hc->base, HR_ESHUTDOWN);
    }
}
