/* access.c - the client behind a trusted proxy and the access log; see access.h. */
#include "access.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/log.h"

#define HTTP_AL_REQ 420 /* "METHOD TARGET" "User-Agent", as logged */

int http_access_open(http_server_t *srv, const cfg_t *cfg)
{
    char err[160];
    if (ipset_parse(&srv->trusted, cfg->trusted_proxies, err, sizeof(err)) < 0) {
        log_error("trusted_proxies: %s", err);
        return -1;
    }
    srv->alog = NULL;
    if (!cfg->access_log[0]) return 0;
    if (strcmp(cfg->access_log, "stderr") == 0) {
        srv->alog = stderr;
        return 0;
    }
    srv->alog = fopen(cfg->access_log, "ae");
    if (!srv->alog) {
        log_error("access_log: cannot open %s: %s", cfg->access_log, strerror(errno));
        ipset_free(&srv->trusted);
        return -1;
    }
    setvbuf(srv->alog, NULL, _IOLBF, 0);
    return 0;
}

void http_access_close(http_server_t *srv)
{
    ipset_free(&srv->trusted);
    if (srv->alog && srv->alog != stderr) fclose(srv->alog);
    srv->alog = NULL;
}

bool http_access_forwarded(const ipset_t *trusted, span_t v, char *out, size_t cap)
{
    const char *end = v.p + v.n;
    span_t last = {NULL, 0};
    while (end > v.p) {
        const char *s = end;
        while (s > v.p && s[-1] != ',') s--;
        span_t item = {s, (size_t)(end - s)};
        while (item.n && (item.p[0] == ' ' || item.p[0] == '\t')) item.p++, item.n--;
        while (item.n && (item.p[item.n - 1] == ' ' || item.p[item.n - 1] == '\t')) item.n--;
        uint8_t a[16];
        if (!ip_parse16(item.p, item.n, a)) return false; /* not an address: trust none of it */
        last = item;
        if (!ipset_has(trusted, a)) break;
        end = s > v.p ? s - 1 : s;
    }
    if (!last.n || last.n >= cap) return false;
    memcpy(out, last.p, last.n);
    out[last.n] = 0;
    return true;
}

/* Credential parameters whose values an access log never shows. */
static bool http__secret_param(const char *k, size_t n)
{
    static const char *const names[] = {"token", "access_token", "api_key", "password", "passcode", NULL};
    for (int i = 0; names[i]; i++)
        if (strlen(names[i]) == n && memcmp(names[i], k, n) == 0) return true;
    return false;
}

size_t http_access_redact(const char *t, size_t n, char *out, size_t cap)
{
    if (!cap) return 0;
    size_t o = 0;
    const char *q = memchr(t, '?', n);
    size_t head = q ? (size_t)(q - t) + 1 : n;
    for (size_t i = 0; i < head && o + 1 < cap; i++) out[o++] = t[i];
    for (size_t i = head; i < n && o + 1 < cap;) {
        size_t e = i;
        while (e < n && t[e] != '&') e++;
        const char *eq = memchr(t + i, '=', e - i);
        size_t kn = eq ? (size_t)(eq - (t + i)) : e - i;
        bool secret = eq && http__secret_param(t + i, kn);
        size_t copy = secret ? kn + 1 : e - i;
        for (size_t k = 0; k < copy && o + 1 < cap; k++) out[o++] = t[i + k];
        if (secret)
            for (const char *r = "REDACTED"; *r && o + 1 < cap; r++) out[o++] = *r;
        if (e < n && o + 1 < cap) out[o++] = '&';
        i = e + 1;
    }
    out[o] = 0;
    return o;
}

void http_access_request(http_conn_t *hc, http_req_t *req)
{
    http_server_t *srv = hc->srv;
    if (!hc->pp_client) { /* a PROXY header's client stands for the whole connection */
        hc->client[0] = 0;
        hc->base.alias = NULL;
    }
    if (srv->trusted.n && !hc->pp_client) {
        if (hc->peer_trusted < 0) {
            uint8_t a[16];
            hc->peer_trusted = ip_peer16(hc->base.w.fd, a) && ipset_has(&srv->trusted, a);
        }
        span_t xff = http_req_header(req, "X-Forwarded-For");
        if (hc->peer_trusted && xff.n && http_access_forwarded(&srv->trusted, xff, hc->client, sizeof(hc->client)))
            hc->base.alias = hc->client;
    }
    if (!srv->alog) return;
    if (!hc->al_req && !(hc->al_req = malloc(HTTP_AL_REQ))) return;
    hc->t0_ms = loop_now(srv->loop);
    char target[256];
    size_t tn = http_access_redact(req->target.p, req->target.n, target, sizeof(target));
    span_t ua = http_req_header(req, "User-Agent");
    snprintf(hc->al_req, HTTP_AL_REQ, "\"%.*s %.*s\" \"%.*s\"", (int)(req->method.n > 16 ? 16 : req->method.n),
             req->method.p, (int)tn, target, (int)(ua.n > 120 ? 120 : ua.n), ua.p);
    for (char *c = hc->al_req; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?'; /* one line per request, whatever was sent */
}

void http_access_log(http_conn_t *hc, int status, int64_t len)
{
    http_server_t *srv = hc->srv;
    if (!srv->alog || !hc->al_req || !hc->al_req[0]) return;
    char peer[128], stamp[40], bytes[24];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    if (len < 0) snprintf(bytes, sizeof(bytes), "-");
    else snprintf(bytes, sizeof(bytes), "%lld", (long long)len);
    /* the request line carries the User-Agent last: split it back out */
    const char *ua = strstr(hc->al_req, "\" \"");
    int rn = ua ? (int)(ua - hc->al_req) + 1 : (int)strlen(hc->al_req);
    fprintf(srv->alog, "%s [%s.%03ldZ] %.*s %d %s %llums%s\n", conn_peer(&hc->base, peer, sizeof(peer)), stamp,
            ts.tv_nsec / 1000000, rn, hc->al_req, status, bytes,
            (unsigned long long)(loop_now(srv->loop) - hc->t0_ms), ua ? ua + 1 : "");
    hc->al_req[0] = 0; /* one line per request */
}
