/* presence_api.c - GET /channels/{channel}/presence and presence's set-up; see presence_api.h.
 *
 * With the local engine the answer is this node's table (presence_local). With a shared engine
 * this node's pending changes are flushed first (so the engine's answer, which comes after them
 * on the same connection, includes them), then the request is parked until the engine's pres_list
 * answers (it sums every live node's share); a request whose connection closes meanwhile cancels
 * its callback. The answer is bounded by max_presence_users. */
#include "presence_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"

int presence_setup(presence_t *p, hub_t *hub, users_t *users, const cfg_t *cfg)
{
    presence_opts_t o = {.list = cfg->presence, .events = cfg->join_leave, .max_channels = cfg->max_presence_channels,
                         .max_entries = cfg->max_presence_entries};
    int rc = presence_init(p, hub, users, &o);
    for (uint32_t i = 0; rc == 0 && i < cfg->nnamespaces; i++) {
        const cfg_ns_t *ns = &cfg->namespaces[i];
        rc = presence_ns_add(p, ns->pattern, ns->set & CFG_NS_PRESENCE ? ns->presence : PRES_UNSET,
                             ns->set & CFG_NS_JOIN_LEAVE ? ns->join_leave : PRES_UNSET);
    }
    if (rc < 0) {
        log_error("presence: cannot set up: %s", hr_strerror(rc));
        if (hub->pres == p) presence_close(p);
        return rc;
    }
    if (p->any)
        log_info("presence: on (presence = %s, join_leave = %s, and per namespace; at most %u channels, %u entries, "
                 "%u users per answer)",
                 cfg->presence ? "true" : "false", cfg->join_leave ? "true" : "false", cfg->max_presence_channels,
                 cfg->max_presence_entries, cfg->max_presence_users);
    return 0;
}

bool presence_api_path(span_t rest)
{
    static const char tail[] = "/presence";
    size_t n = sizeof(tail) - 1;
    return rest.n > n && memcmp(rest.p + rest.n - n, tail, n) == 0;
}

/* A list to answer: the users (already cut to what is shown), the totals. */
typedef struct {
    uint32_t nusers, total_users, anonymous, connections, nodes;
    bool shared; /* add "nodes" */
    const char *const *ids;
    const size_t *lens;
    const uint32_t *conns;
} pres_answer_t;

static void presence__answer(app_t *app, http_conn_t *hc, const char *chan, size_t cn, const pres_answer_t *a)
{
    size_t cap = 6 * cn + 160;
    for (uint32_t i = 0; i < a->nusers; i++) cap += 6 * a->lens[i] + 40;
    char *out = malloc(cap);
    if (!out) {
        http_error(hc, HR_ENOMEM, "out of memory");
        return;
    }
    size_t o = (size_t)snprintf(out, cap, "{\"channel\":\"");
    o += json_escape(chan, cn, out + o, cap - o);
    o += (size_t)snprintf(out + o, cap - o, "\",\"users\":{");
    for (uint32_t i = 0; i < a->nusers; i++) {
        o += (size_t)snprintf(out + o, cap - o, "%s\"", i ? "," : "");
        o += json_escape(a->ids[i], a->lens[i], out + o, cap - o);
        o += (size_t)snprintf(out + o, cap - o, "\":{\"connections\":%u}", a->conns[i]);
    }
    o += (size_t)snprintf(out + o, cap - o, "},\"anonymous\":%u,\"connections\":%u", a->anonymous, a->connections);
    if (a->shared) o += (size_t)snprintf(out + o, cap - o, ",\"nodes\":%u", a->nodes);
    if (a->total_users > a->nusers) {
        o += (size_t)snprintf(out + o, cap - o, ",\"truncated\":true");
        presence_truncated(app->xp.hub->pres, app->xp.cfg->max_presence_users);
    }
    o += (size_t)snprintf(out + o, cap - o, "}");
    http_respond(hc, 200, "application/json", out, o, "Cache-Control: no-cache\r\n");
    free(out);
}

/* This node's table (the local engine). */
static void presence__local(app_t *app, http_conn_t *hc, const char *chan, size_t cn)
{
    uint32_t max = app->xp.cfg->max_presence_users;
    presence_user_t *u = malloc((size_t)max * sizeof(*u));
    const char **ids = malloc((size_t)max * sizeof(*ids));
    size_t *lens = malloc((size_t)max * sizeof(*lens));
    uint32_t *conns = malloc((size_t)max * sizeof(*conns));
    if (!u || !ids || !lens || !conns) {
        http_error(hc, HR_ENOMEM, "out of memory");
    } else {
        pres_answer_t a = {.ids = ids, .lens = lens, .conns = conns};
        a.nusers = presence_local(app->xp.hub->pres, chan, cn, u, max, &a.total_users, &a.anonymous, &a.connections);
        for (uint32_t i = 0; i < a.nusers; i++) ids[i] = u[i].id, lens[i] = u[i].len, conns[i] = u[i].conns;
        presence__answer(app, hc, chan, cn, &a);
    }
    free(u);
    free(ids);
    free(lens);
    free(conns);
}

/* A request parked while the shared engine sums every node's share. */
typedef struct {
    app_t *app;
    size_t cn;
    char chan[HUB_MAX_CHANNEL + 1];
} presence__wait_t;

static void presence__listed(void *arg, int rc, const engine_roster_t *r)
{
    http_conn_t *hc = arg;
    presence__wait_t *q = hc->xstate;
    if (rc < 0) {
        http_error(hc, HR_EUNAVAIL, "presence is unavailable: redis cannot answer");
    } else {
        pres_answer_t a = {.nusers = r->nusers, .total_users = r->total_users, .anonymous = r->anonymous,
                           .connections = r->connections, .nodes = r->nodes, .shared = true, .ids = r->ids,
                           .lens = r->lens, .conns = r->conns};
        presence__answer(q->app, hc, q->chan, q->cn, &a);
    }
    free(q);
}

static void presence__wait_close(http_conn_t *hc)
{
    presence__wait_t *q = hc->xstate;
    engine_t *e = q->app->xp.hub->engine;
    if (e->ops->cancel) e->ops->cancel(e, hc);
    free(q);
}

static const http_xport_ops_t presence__wait_ops = {.on_close = presence__wait_close};

void presence_api_handle(app_t *app, http_conn_t *hc, http_req_t *req, span_t rest)
{
    if (!span_eq(req->method, "GET") && !span_eq(req->method, "HEAD")) {
        http_method_not_allowed(hc, "GET, HEAD", "use GET for a channel's presence");
        return;
    }
    char chan[HUB_MAX_CHANNEL + 1];
    span_t enc = {rest.p, rest.n - 9 /* "/presence" */};
    ssize_t cn = xp_read_channel(&app->xp, hc, req, enc, chan, sizeof(chan), "read the presence of");
    if (cn < 0) return; /* an admin (API key), or a client that may read the channel */
    presence_t *p = app->xp.hub->pres;
    if (!(presence_flags(p, chan, (size_t)cn) & PRES_LIST)) {
        http_error(hc, HR_ENOTFOUND, "presence is not enabled for this channel");
        return;
    }
    engine_t *e = app->xp.hub->engine;
    if (!e || !e->ops->pres_list) {
        presence__local(app, hc, chan, (size_t)cn);
        return;
    }
    presence__wait_t *q = malloc(sizeof(*q));
    if (!q) {
        http_error(hc, HR_ENOMEM, "out of memory");
        return;
    }
    *q = (presence__wait_t){.app = app, .cn = (size_t)cn};
    memcpy(q->chan, chan, (size_t)cn + 1);
    presence_flush(p); /* this node's latest changes go first: the answer includes them */
    if (e->ops->pres_list(e, chan, (size_t)cn, app->xp.cfg->max_presence_users, presence__listed, hc) < 0) {
        free(q);
        http_error(hc, HR_EUNAVAIL, "presence is unavailable: redis cannot answer");
        return;
    }
    http_park(hc, &presence__wait_ops, q, XP_HTTP);
}
