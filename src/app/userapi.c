/* userapi.c - the admin API on users; see userapi.h.
 *
 * A disconnect or unsubscribe is one small JSON command, {"op":"disconnect","user":U,"reason":R,
 * "reconnect":B} or {"op":"unsubscribe","user":U,"channel":C}: run here at once (the answer
 * counts this node's connections), then handed to the shared engine for the other nodes, which
 * parse and run the same command (userapi_control). Commands are fire and forget: a node whose
 * feed is down misses them, so the answer says whether the command went out ("cluster"). The
 * same channel carries the withdrawals and deletions another node made ({"op":"withdraw",
 * "channel":C,"id":N}, {"op":"clear","channel":C,"last_id":N}: src/store/redis_withdraw.c).
 *
 * A user's status: with the local engine, this node's users table; with a shared engine, every
 * node's share as the engine keeps it (presence.h reports each node's users to it): this node's
 * pending reports go first, then the request is parked until the engine answers, without
 * blocking the loop (when it cannot answer, this node's view, "node":"local"). */
#include "userapi.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../core/err.h"
#include "../core/log.h"
#include "../hub/presence.h"
#include "readstate.h"

#define USERAPI_CMD_MAX 2048

static void userapi__json(http_conn_t *hc, int status, const char *body, size_t n)
{
    http_respond(hc, status, "application/json", body, n, "Cache-Control: no-cache\r\n");
}

/* wall ms as RFC 3339 UTC with milliseconds, quoted, into out (at least 32 bytes). */
static void userapi__time(uint64_t ms, char *out, size_t cap)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char day[24];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "\"%s.%03uZ\"", day, (unsigned)(ms % 1000));
}

/* GET /users/{id} with the local engine (or a shared one that cannot answer): the user's
 * connections on this node by transport, and when it was last seen. */
static void userapi__local(app_t *app, http_conn_t *hc, const char *id, size_t n)
{
    const users_user_t *u = users_find(app->xp.users, id, n);
    const char *kinds[16];
    uint32_t counts[16], nk = u ? users_count_kinds(u, kinds, counts, 16) : 0;
    char esc[6 * USERS_MAX_ID + 8], conns[512] = "", seen[40] = "null";
    size_t el = json_escape(id, n, esc, sizeof(esc)), o = 0;
    for (uint32_t i = 0; i < nk && o < sizeof(conns); i++)
        o += (size_t)snprintf(conns + o, sizeof(conns) - o, "%s\"%s\":%u", i ? "," : "", kinds[i], counts[i]);
    if (u && !u->nconns && u->last_seen_ms) userapi__time(u->last_seen_ms, seen, sizeof(seen));
    char body[sizeof(esc) + sizeof(conns) + 128];
    int bn = snprintf(body, sizeof(body),
                      "{\"user\":\"%.*s\",\"online\":%s,\"connections\":{%s},\"last_seen\":%s,\"node\":\"local\"}",
                      (int)el, esc, u && u->nconns ? "true" : "false", conns, seen);
    userapi__json(hc, 200, body, (size_t)bn);
}

/* A GET /users/{id} parked while the shared engine reads every node's share. */
typedef struct {
    app_t *app;
    size_t n;
    char id[USERS_MAX_ID + 1];
} userapi__wait_t;

static void userapi__statused(void *arg, int rc, const engine_ustatus_t *st)
{
    http_conn_t *hc = arg;
    userapi__wait_t *q = hc->xstate;
    if (rc < 0) {
        userapi__local(q->app, hc, q->id, q->n);
        free(q);
        return;
    }
    char esc[6 * USERS_MAX_ID + 8], conns[512] = "", seen[40] = "null";
    size_t el = json_escape(q->id, q->n, esc, sizeof(esc)), o = 0;
    uint32_t total = 0;
    for (uint32_t i = 0; i < st->nkinds && o < sizeof(conns); i++) {
        o += (size_t)snprintf(conns + o, sizeof(conns) - o, "%s\"%.*s\":%u", o ? "," : "", (int)st->klens[i],
                              st->kinds[i], st->counts[i]);
        total += st->counts[i];
    }
    if (o >= sizeof(conns)) conns[0] = 0;
    if (!total && st->last_seen_ms) userapi__time(st->last_seen_ms, seen, sizeof(seen));
    char body[sizeof(esc) + sizeof(conns) + 128];
    int bn = snprintf(body, sizeof(body),
                      "{\"user\":\"%.*s\",\"online\":%s,\"connections\":{%s},\"last_seen\":%s,\"nodes\":%u}", (int)el,
                      esc, total ? "true" : "false", conns, seen, st->nodes);
    userapi__json(hc, 200, body, (size_t)bn);
    free(q);
}

static void userapi__wait_close(http_conn_t *hc)
{
    userapi__wait_t *q = hc->xstate;
    engine_t *e = q->app->xp.hub->engine;
    if (e->ops->cancel) e->ops->cancel(e, hc);
    free(q);
}

static const http_xport_ops_t userapi__wait_ops = {.on_close = userapi__wait_close};

/* GET /users/{id}: every node's view with a shared engine, else this node's. */
static void userapi__status(app_t *app, http_conn_t *hc, const char *id, size_t n)
{
    engine_t *e = app->xp.hub->engine;
    userapi__wait_t *q = e && e->ops->user_status && app->xp.hub->pres ? malloc(sizeof(*q)) : NULL;
    if (q) {
        *q = (userapi__wait_t){.app = app, .n = n};
        memcpy(q->id, id, n);
        q->id[n] = 0;
        presence_flush(app->xp.hub->pres); /* this node's latest changes go first */
        if (e->ops->user_status(e, id, n, userapi__statused, hc) == 0) {
            http_park(hc, &userapi__wait_ops, q, XP_HTTP);
            return;
        }
        free(q);
    }
    userapi__local(app, hc, id, n);
}

/* True when r[0..n) has no control character (it goes into logs, close frames, MQTT reason
 * strings). */
static bool userapi__reason_ok(const char *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)r[i] < 0x20 || r[i] == 0x7f) return false;
    return n <= USERS_MAX_REASON;
}

/* Another node withdrew message "id" of "channel" (withdraw) or deleted its messages up to
 * "last_id" (redis_withdraw.c): this node's memory follows. Returns the subscribers told. */
static int64_t userapi__history(app_t *app, json_t *cmd, bool withdraw)
{
    json_t *ch = json_object_get(cmd, "channel"), *id = json_object_get(cmd, withdraw ? "id" : "last_id");
    uint64_t v;
    if (!json_is_string(ch) || !hub_channel_valid(json_string_value(ch), json_string_length(ch)) ||
        !json_is_string(id) || cursor_parse(json_string_value(id), json_string_length(id), &v, 1) < 0)
        return HR_EINVAL;
    const char *c = json_string_value(ch);
    size_t cn = json_string_length(ch);
    return withdraw ? hub_withdrawn(app->xp.hub, c, cn, v) : hub_cleared(app->xp.hub, c, cn, v);
}

/* Runs a command (parsed) on this node. Returns what it ended, or HR_EINVAL for a bad command. */
static int64_t userapi__run(app_t *app, json_t *cmd)
{
    json_t *op = json_object_get(cmd, "op"), *user = json_object_get(cmd, "user");
    if (json_is_string(op) && strcmp(json_string_value(op), "withdraw") == 0) return userapi__history(app, cmd, true);
    if (json_is_string(op) && strcmp(json_string_value(op), "clear") == 0) return userapi__history(app, cmd, false);
    if (!json_is_string(op) || !json_is_string(user)) return HR_EINVAL;
    const char *u = json_string_value(user);
    size_t un = json_string_length(user);
    if (!un || un > USERS_MAX_ID || !acl_sub_valid(u, un)) return HR_EINVAL;
    if (strcmp(json_string_value(op), "disconnect") == 0) {
        json_t *reason = json_object_get(cmd, "reason"), *rc = json_object_get(cmd, "reconnect");
        const char *r = json_is_string(reason) ? json_string_value(reason) : "disconnected";
        if (!userapi__reason_ok(r, strlen(r))) return HR_EINVAL;
        uint32_t k = users_disconnect(app->xp.users, u, un, r, json_is_true(rc));
        if (k) log_info("users: user %.*s disconnected by an admin: %u connection(s) here", (int)un, u, k);
        return k;
    }
    if (strcmp(json_string_value(op), "unsubscribe") == 0) {
        json_t *ch = json_object_get(cmd, "channel");
        if (!json_is_string(ch) || !hub_channel_valid(json_string_value(ch), json_string_length(ch))) return HR_EINVAL;
        return users_unsubscribe(app->xp.users, u, un, json_string_value(ch), json_string_length(ch));
    }
    if (strcmp(json_string_value(op), "read") == 0) { /* a read cursor moved on another node */
        json_t *ch = json_object_get(cmd, "channel"), *id = json_object_get(cmd, "id");
        uint64_t upto;
        if (!json_is_string(ch) || !json_is_string(id) || !app->reads ||
            cursor_parse(json_string_value(id), json_string_length(id), &upto, 1) < 0)
            return HR_EINVAL;
        int rc = readstate_remote_read(app->reads, u, un, json_string_value(ch), json_string_length(ch), upto);
        return rc < 0 && rc != HR_EFULL ? rc : 0;
    }
    return HR_EINVAL;
}

void userapi_control(void *arg, const char *json, size_t n)
{
    app_t *app = arg;
    json_t *cmd = json_loadb(json, n, JSON_REJECT_DUPLICATES, NULL);
    int64_t rc = json_is_object(cmd) ? userapi__run(app, cmd) : HR_EINVAL;
    if (rc < 0) log_debug("users: malformed control command from another node (%zu bytes)", n);
    json_decref(cmd);
}

/* POST /users/{id}/disconnect and /unsubscribe: reads the body, runs the command here, sends it
 * to the other nodes, answers {"<what>":N,"cluster":B}. */
static void userapi__act(app_t *app, http_conn_t *hc, const char *id, size_t n, bool disconnect, span_t body)
{
    json_error_t jerr;
    json_t *in = body.n ? json_loadb(body.p, body.n, JSON_REJECT_DUPLICATES, &jerr) : json_object();
    if (!json_is_object(in)) {
        json_decref(in);
        http_error(hc, HR_EINVAL, "the body is a JSON object");
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(in, key, v) {
        bool known = disconnect ? strcmp(key, "reason") == 0 || strcmp(key, "reconnect") == 0
                                : strcmp(key, "channel") == 0;
        if (!known) {
            json_decref(in);
            http_error(hc, HR_EINVAL, disconnect ? "unknown field (reason, reconnect)" : "unknown field (channel)");
            return;
        }
    }
    json_t *reason = json_object_get(in, "reason"), *rc = json_object_get(in, "reconnect"),
           *ch = json_object_get(in, "channel");
    const char *bad = NULL;
    if (disconnect && reason &&
        (!json_is_string(reason) || !userapi__reason_ok(json_string_value(reason), json_string_length(reason))))
        bad = "reason must be a string of at most 200 bytes without control characters";
    else if (disconnect && rc && !json_is_boolean(rc))
        bad = "reconnect must be true or false";
    else if (!disconnect && (!json_is_string(ch) || !hub_channel_valid(json_string_value(ch), json_string_length(ch))))
        bad = "channel (a valid channel name) is required";
    if (bad) {
        json_decref(in);
        http_error(hc, HR_EINVAL, bad);
        return;
    }
    json_t *cmd = json_pack("{s:s, s:s%}", "op", disconnect ? "disconnect" : "unsubscribe", "user", id, n);
    if (disconnect) {
        json_object_set_new(cmd, "reason", reason ? json_copy(reason) : json_string("disconnected"));
        json_object_set_new(cmd, "reconnect", json_boolean(json_is_true(rc)));
    } else {
        json_object_set(cmd, "channel", ch);
    }
    json_decref(in);
    char wire[USERAPI_CMD_MAX];
    size_t wn = cmd ? json_dumpb(cmd, wire, sizeof(wire), JSON_COMPACT) : 0;
    int64_t k = cmd ? userapi__run(app, cmd) : HR_ENOMEM;
    json_decref(cmd);
    if (k < 0 || !wn || wn > sizeof(wire)) {
        http_error(hc, k == HR_ENOMEM ? HR_ENOMEM : HR_EINVAL, "cannot build the command");
        return;
    }
    engine_t *e = app->xp.hub->engine;
    bool cluster = false;
    if (e && e->ops->control) {
        int src = e->ops->control(e, wire, wn);
        cluster = src == 0;
        if (src < 0)
            log_warn("users: %s of user %.*s not sent to the other nodes: %s",
                     disconnect ? "disconnect" : "unsubscribe", (int)n, id, hr_strerror(src));
    }
    char out[96];
    int on = snprintf(out, sizeof(out), "{\"%s\":%lld,\"cluster\":%s}", disconnect ? "disconnected" : "unsubscribed",
                      (long long)k, cluster ? "true" : "false");
    userapi__json(hc, 200, out, (size_t)on);
}

void userapi_handle(app_t *app, http_conn_t *hc, http_req_t *req, span_t rest, span_t body)
{
    const char *slash = memchr(rest.p, '/', rest.n);
    span_t idp = {rest.p, slash ? (size_t)(slash - rest.p) : rest.n};
    span_t action = slash ? (span_t){slash + 1, rest.n - idp.n - 1} : (span_t){NULL, 0};
    bool get = span_eq(req->method, "GET") || span_eq(req->method, "HEAD");
    int what = !slash ? 0 : span_eq(action, "disconnect") ? 1 : span_eq(action, "unsubscribe") ? 2 : -1;
    if (what < 0) {
        http_error(hc, HR_ENOTFOUND, "not found (/users/{id}, /users/{id}/disconnect, /users/{id}/unsubscribe)");
        return;
    }
    if (what == 0 && !get) {
        http_method_not_allowed(hc, "GET, HEAD", "use GET for a user's status");
        return;
    }
    if (what > 0 && !span_eq(req->method, "POST")) {
        http_method_not_allowed(hc, "POST", "use POST");
        return;
    }
    const char *doing = what == 0 ? "read a user's status" : what == 1 ? "disconnect a user" : "unsubscribe a user";
    if (!xp_require_admin(&app->xp, hc, req, doing, NULL, 0)) return;
    char id[USERS_MAX_ID + 1];
    ssize_t n = http_pct_decode(idp.p, idp.n, id, sizeof(id));
    if (n <= 0 || !acl_sub_valid(id, (size_t)n)) {
        http_error(hc, HR_EINVAL, "invalid user id");
        return;
    }
    if (!app->xp.users) {
        http_error(hc, HR_EUNAVAIL, "no users table");
        return;
    }
    if (what == 0) userapi__status(app, hc, id, (size_t)n);
    else userapi__act(app, hc, id, (size_t)n, what == 1, body);
}
