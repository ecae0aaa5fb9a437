/* access.c - the HTTP side of access control: finding a request's credential (Authorization:
 * Bearer, the token query parameter, the herald_token cookie) and answering refusals the way
 * RFC 6750 says (401 with WWW-Authenticate for a missing or bad credential, 403 for one that does
 * not allow the action). Every refusal is logged once with the client's address; a credential
 * is never logged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../app/pubreq.h"
#include "../core/log.h"
#include "transport.h"

#define ACCESS_COOKIE "herald_token"

/* The value of cookie name in the Cookie header(s), or a NULL span. */
static span_t access__cookie(const http_req_t *req, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        if (!span_ieq(req->headers[i].name, "Cookie")) continue;
        span_t v = req->headers[i].value;
        size_t p = 0;
        while (p < v.n) {
            while (p < v.n && (v.p[p] == ' ' || v.p[p] == ';')) p++;
            size_t e = p;
            while (e < v.n && v.p[e] != ';') e++;
            if (e - p > nl && memcmp(v.p + p, name, nl) == 0 && v.p[p + nl] == '=')
                return (span_t){v.p + p + nl + 1, e - p - nl - 1};
            p = e;
        }
    }
    return (span_t){NULL, 0};
}

static void access__unauthorized(xp_ctx_t *x, http_conn_t *hc, const char *why)
{
    char extra[300];
    xp_log_refused(x, &hc->base, why);
    snprintf(extra, sizeof(extra), "WWW-Authenticate: Bearer realm=\"herald\", error=\"invalid_token\", error_description=\"%s\"\r\n",
             why);
    http_error_hdr(hc, HR_EAUTH, why, extra);
}

auth_id_t *xp_auth_request(xp_ctx_t *x, http_conn_t *hc, http_req_t *req)
{
    auth_t *a = x->auth;
    if (!a->enabled) return auth_anonymous(a); /* open: a credential changes nothing (none can be checked) */
    span_t cred = {NULL, 0};
    char *qbuf = NULL, qstack[8200];
    span_t h = http_req_header(req, "Authorization");
    if (h.p) {
        if (h.n < 7 || strncasecmp(h.p, "Bearer ", 7) != 0) {
            access__unauthorized(x, hc, "Authorization must be Bearer");
            return NULL;
        }
        cred = (span_t){h.p + 7, h.n - 7};
        while (cred.n && cred.p[0] == ' ') cred.p++, cred.n--;
    } else {
        size_t cap = (size_t)x->cfg->token_max_length + 2;
        if (req->query.n && memmem(req->query.p, req->query.n, "token=", 6)) {
            qbuf = cap <= sizeof(qstack) ? qstack : malloc(cap); /* no big malloc per request */
            ssize_t qn = qbuf ? http_req_query(req, "token", qbuf, cap) : HR_ENOMEM;
            if (qn >= 0) {
                cred = (span_t){qbuf, (size_t)qn};
            } else {
                if (qbuf != qstack) free(qbuf);
                qbuf = NULL;
                if (qn != HR_ENOTFOUND) { /* "token=" was part of another parameter's name otherwise */
                    access__unauthorized(x, hc, "token parameter too long or badly encoded");
                    return NULL;
                }
            }
        }
        if (!cred.p) cred = access__cookie(req, ACCESS_COOKIE);
    }
    if (!cred.p) return auth_anonymous(a);
    auth_id_t *id = NULL;
    const char *why = "invalid token";
    int rc = cred.n ? auth_bearer(a, cred.p, cred.n, &id, &why) : HR_EAUTH;
    if (qbuf) {
        memset(qbuf, 0, cred.n);
        if (qbuf != qstack) free(qbuf);
    }
    if (rc < 0) {
        access__unauthorized(x, hc, why);
        return NULL;
    }
    return id;
}

void xp_log_refused(xp_ctx_t *x, conn_t *c, const char *why)
{
    char peer[64];
    x->auth->stats.denied++;
    log_info("auth: %s: refused credential: %s", conn_peer(c, peer, sizeof(peer)), why);
}

void xp_log_denial(xp_ctx_t *x, conn_t *c, const auth_id_t *id, const char *action, const char *chan, size_t n)
{
    char peer[64], name[ACL_MAX_SUB + 8];
    x->auth->stats.denied++;
    if (chan)
        log_info("auth: %s (%s): may not %s '%.*s'", conn_peer(c, peer, sizeof(peer)), auth_name(id, name, sizeof(name)),
                 action, (int)(n > 255 ? 255 : n), chan);
    else
        log_info("auth: %s (%s): may not %s", conn_peer(c, peer, sizeof(peer)), auth_name(id, name, sizeof(name)),
                 action);
}

void xp_deny_http(xp_ctx_t *x, http_conn_t *hc, const auth_id_t *id, const char *action, const char *chan, size_t n)
{
    xp_log_denial(x, &hc->base, id, action, chan, n);
    char why[96];
    snprintf(why, sizeof(why), "not allowed to %s%s", action, chan ? " this channel" : "");
    if (id->kind == AUTH_ANON) {
        char extra[160];
        snprintf(extra, sizeof(extra), "WWW-Authenticate: Bearer realm=\"herald\"\r\n");
        http_error_hdr(hc, HR_EAUTH, why, extra);
    } else {
        http_error_hdr(hc, HR_EFORBIDDEN, why,
                       "WWW-Authenticate: Bearer realm=\"herald\", error=\"insufficient_scope\"\r\n");
    }
}

uint64_t xp_expires_in(const auth_id_t *id)
{
    if (!id || !id->exp_ms) return UINT64_MAX;
    uint64_t now = loop_wall_ms();
    return (uint64_t)id->exp_ms > now ? (uint64_t)id->exp_ms - now : 0;
}

ssize_t xp_user_feed(const xp_ctx_t *x, const auth_id_t *id, char *out, size_t cap)
{
    if (!id || id->kind != AUTH_USER) return HR_EINVAL;
    return pubreq_user_channel(x->cfg->user_channel, id->sub_id, id->sub_len, out, cap);
}

bool xp_require_admin(xp_ctx_t *x, http_conn_t *hc, http_req_t *req, const char *action, const char *chan, size_t n)
{
    auth_id_t *id = xp_auth_request(x, hc, req);
    if (!id) return false;
    bool ok = auth_is_admin(id);
    if (!ok) xp_deny_http(x, hc, id, action, chan, n);
    auth_unref(id);
    return ok;
}

ssize_t xp_read_channel(xp_ctx_t *x, http_conn_t *hc, http_req_t *req, span_t enc, char *chan, size_t cap,
                        const char *action)
{
    ssize_t cn = http_pct_decode(enc.p, enc.n, chan, cap);
    if (cn < 0 || !hub_channel_valid(chan, (size_t)cn)) {
        http_error(hc, HR_ECHANNEL, "invalid channel name");
        return -1;
    }
    auth_id_t *id = xp_auth_request(x, hc, req);
    if (!id) return -1;
    bool ok = auth_is_admin(id) || auth_can_subscribe(id, chan, (size_t)cn);
    if (!ok) xp_deny_http(x, hc, id, action, chan, (size_t)cn);
    auth_unref(id);
    return ok ? cn : -1;
}
