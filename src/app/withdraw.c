/* withdraw.c - the withdrawal route (see withdraw.h). The channel part may be percent-encoded
 * (user%2F42) or not (user/42): the path is split at its last "/messages/", so a channel whose
 * own name ends in "/messages/N" must be written encoded. */
#include "withdraw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"

#define WD_SEP "/messages/"
#define WD_SEP_LEN 10

/* Splits rest into channel and id; false when it is not "X/messages/DIGITS" (id 1..2^64-1). */
static bool withdraw__split(span_t rest, span_t *chan, uint64_t *id)
{
    if (rest.n <= WD_SEP_LEN) return false;
    for (size_t i = rest.n - WD_SEP_LEN; i > 0; i--) {
        if (memcmp(rest.p + i, WD_SEP, WD_SEP_LEN) != 0) continue;
        const char *d = rest.p + i + WD_SEP_LEN;
        size_t dn = rest.n - i - WD_SEP_LEN;
        if (dn == 0 || dn > 20) return false;
        uint64_t v = 0;
        for (size_t k = 0; k < dn; k++) {
            if (d[k] < '0' || d[k] > '9') return false;
            uint64_t nv = v * 10 + (uint64_t)(d[k] - '0');
            if (nv / 10 != v) return false; /* overflow */
            v = nv;
        }
        if (!v) return false;
        *chan = (span_t){rest.p, i};
        *id = v;
        return true;
    }
    return false;
}

/* The channel enc names (percent-decoded into chan) when the request holds an API key: its
 * length, or -1 when the request was answered (400, 401, 403). */
static ssize_t withdraw__admin_channel(app_t *app, http_conn_t *hc, http_req_t *req, span_t enc, char *chan,
                                       size_t cap, const char *action)
{
    ssize_t cn = http_pct_decode(enc.p, enc.n, chan, cap);
    if (cn < 0 || !hub_channel_valid(chan, (size_t)cn)) {
        http_error(hc, HR_ECHANNEL, "invalid channel name");
        return -1;
    }
    return xp_require_admin(&app->xp, hc, req, action, chan, (size_t)cn) ? cn : -1;
}

/* ---- answers (the local engine answers at once, a shared one later) ---- */

static void withdraw__cleared(http_conn_t *hc, const char *chan, size_t cn, int rc, uint64_t last,
                              uint32_t told)
{
    if (rc == HR_ENOTFOUND) {
        http_error(hc, rc, "no such channel");
    } else if (rc < 0) {
        http_error(hc, rc, "deleting the channel failed");
    } else {
        log_info("deleted the messages of %.*s up to %llu (%u subscribers told here)", (int)cn, chan,
                 (unsigned long long)last, told);
        char json[6 * HUB_MAX_CHANNEL + 96], esc[6 * HUB_MAX_CHANNEL + 8];
        size_t el = json_escape(chan, cn, esc, sizeof(esc));
        int n = snprintf(json, sizeof(json), "{\"channel\":\"%.*s\",\"deleted\":true,\"last_id\":\"%llu\",\"told\":%u}",
                         (int)el, esc, (unsigned long long)last, told);
        http_respond(hc, 200, "application/json", json, (size_t)n, "Cache-Control: no-cache\r\n");
    }
}

static void withdraw__withdrawn(http_conn_t *hc, const char *chan, size_t cn, uint64_t id, int rc,
                                uint32_t told)
{
    if (rc == HR_ENOTFOUND) {
        http_error(hc, rc, "no such message in the channel's history");
    } else if (rc < 0) {
        http_error(hc, rc, "withdrawal failed");
    } else {
        log_info("withdrew %.*s message %llu (%u subscribers told here)", (int)cn, chan, (unsigned long long)id, told);
        http_respond(hc, 204, NULL, NULL, 0, "");
    }
}

/* A request parked while a shared engine records the withdrawal (id) or deletion (id 0) for
 * every node; this node's memory follows when it answers. */
typedef struct {
    app_t *app;
    uint64_t id;
    size_t cn;
    char chan[HUB_MAX_CHANNEL + 1];
} withdraw__wait_t;

static void withdraw__recorded(void *arg, int rc, uint64_t last)
{
    http_conn_t *hc = arg;
    withdraw__wait_t *q = hc->xstate;
    hub_t *hub = q->app->xp.hub;
    if (q->id) {
        uint32_t told = rc == 0 ? hub_withdrawn(hub, q->chan, q->cn, q->id) : 0;
        withdraw__withdrawn(hc, q->chan, q->cn, q->id, rc, told);
    } else {
        uint32_t told = rc == 0 ? hub_cleared(hub, q->chan, q->cn, last) : 0;
        withdraw__cleared(hc, q->chan, q->cn, rc, last, told);
    }
    free(q);
}

static void withdraw__wait_close(http_conn_t *hc)
{
    withdraw__wait_t *q = hc->xstate;
    engine_t *e = q->app->xp.hub->engine;
    e->ops->cancel(e, hc);
    free(q);
}

static const http_xport_ops_t withdraw__wait_ops = {.on_close = withdraw__wait_close};

/* Hands the request to the shared engine (true: parked, or answered when it could not be). */
static bool withdraw__engine(app_t *app, http_conn_t *hc, const char *chan, size_t cn, uint64_t id)
{
    engine_t *e = app->xp.hub->engine;
    if (!e) return false;
    withdraw__wait_t *q = e->ops->withdraw && e->ops->clear && e->ops->cancel ? malloc(sizeof(*q)) : NULL;
    if (!q) {
        http_error(hc, e->ops->withdraw ? HR_ENOMEM : HR_ENOTIMPL, "not supported by this engine");
        return true;
    }
    *q = (withdraw__wait_t){.app = app, .id = id, .cn = cn};
    memcpy(q->chan, chan, cn);
    q->chan[cn] = 0;
    int rc = id ? e->ops->withdraw(e, chan, cn, id, withdraw__recorded, hc)
                : e->ops->clear(e, chan, cn, withdraw__recorded, hc);
    if (rc < 0) {
        free(q);
        http_error(hc, HR_EUNAVAIL, "redis is unavailable");
        return true;
    }
    http_park(hc, &withdraw__wait_ops, q, XP_HTTP);
    return true;
}

void withdraw_channel(app_t *app, http_conn_t *hc, http_req_t *req, span_t rest)
{
    char chan[HUB_MAX_CHANNEL + 1];
    ssize_t cn = withdraw__admin_channel(app, hc, req, rest, chan, sizeof(chan), "delete");
    if (cn < 0 || withdraw__engine(app, hc, chan, (size_t)cn, 0)) return;
    uint32_t told = 0;
    uint64_t last = 0;
    int rc = hub_clear(app->xp.hub, chan, (size_t)cn, &told, &last);
    withdraw__cleared(hc, chan, (size_t)cn, rc, last, told);
}

bool withdraw_path(span_t rest)
{
    span_t c;
    uint64_t id;
    return withdraw__split(rest, &c, &id);
}

void withdraw_handle(app_t *app, http_conn_t *hc, http_req_t *req, span_t rest)
{
    if (!span_eq(req->method, "DELETE")) {
        http_method_not_allowed(hc, "DELETE", "use DELETE to withdraw a message");
        return;
    }
    span_t cs;
    uint64_t id;
    withdraw__split(rest, &cs, &id);
    char chan[HUB_MAX_CHANNEL + 1];
    ssize_t cn = withdraw__admin_channel(app, hc, req, cs, chan, sizeof(chan), "withdraw messages of");
    if (cn < 0 || withdraw__engine(app, hc, chan, (size_t)cn, id)) return;
    uint32_t told = 0;
    int rc = hub_withdraw(app->xp.hub, chan, (size_t)cn, id, &told);
    withdraw__withdrawn(hc, chan, (size_t)cn, id, rc, told);
}
