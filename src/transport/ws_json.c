/* ws_json.c - the /ws protocol: a small JSON protocol over one WebSocket to subscribe to many
 * channels (each with its own resume id), unsubscribe, publish and ping, with replies that carry
 * the request's "ref" and either ok:true or a typed error. Specified in docs/api.md.
 *
 * Each subscription is a stream (stream.h) of one channel, so replay, gap notices and the
 * slow-consumer policy are the same as SSE's. A message frame is
 * {"op":"message",<the message object of the polls>} and is encoded (and compressed) once per
 * message for every /ws subscriber. Client requests are parsed with jansson: they are small and
 * off the fan-out path. A malformed request is answered with an error reply, never a close; only
 * a binary message (not part of the protocol) closes, with 1003. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"
#include "ws.h"

#define WSJ_MAX_REF 128

/* Characters (code points) in the UTF-8 string s[0..n). */
static size_t utf8_chars(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xc0) != 0x80;
    return k;
}

typedef struct {
    ws_t ws;
    uint32_t nsubs, cap;
    stream_t **subs; /* grown on demand: an idle connection holds none */
    stream_t *feed;  /* of them, the user's personal channel subscribed server-side, or NULL */
    stream_t *bcast; /* and the broadcast channel subscribed server-side, or NULL */
    xp_owedq_t owed; /* publish replies waiting for their commit (their refs) */
} wsj_t;

/* A text frame of head followed by obj without its leading "{" (one allocation, one copy). */
static bytes_t *wsj__frame_of(const char *head, size_t hn, const char *obj, size_t on)
{
    uint8_t wh[WS_MAX_HEADER];
    size_t hl = ws_header_write(wh, WS_OP_TEXT, true, false, hn + on - 1);
    bytes_t *f = bytes_new(hl + hn + on - 1);
    if (!f) return NULL;
    memcpy(f->data, wh, hl);
    memcpy(f->data + hl, head, hn);
    memcpy(f->data + hl + hn, obj + 1, on - 1);
    return f;
}

/* ENC_WSJSON: {"op":"message", + the message object after its "{". */
static bytes_t *wsj__encode(const msg_t *m)
{
    bytes_t *j = msg_encoded((msg_t *)m, ENC_JSON, json_encode_msg);
    return j ? wsj__frame_of("{\"op\":\"message\",", 16, j->data, j->len) : NULL;
}

static bytes_t *wsj__frame(stream_t *st, xsub_t *xs, msg_t *m)
{
    (void)xs;
    return ws_frame_for(st->owner, m, ENC_WSJSON, wsj__encode);
}

static bytes_t *wsj__gap(stream_t *st, const char *json, size_t n)
{
    (void)st;
    return n >= 2 ? wsj__frame_of("{\"op\":\"gap\",", 12, json, n) : NULL;
}

/* {"op":"EVENT", + the event's JSON members: {"op":"withdrawn","channel":"c","id":"N"},
 * {"op":"unread","user":..,"total":..,"channels":{..}}, {"op":"join",...} */
static bytes_t *wsj__event(stream_t *st, const char *event, const char *json, size_t n)
{
    (void)st;
    char head[HUB_MAX_EVENT + 16];
    int hn = snprintf(head, sizeof(head), "{\"op\":\"%s\",", event);
    if (hn < 0 || (size_t)hn >= sizeof(head) || n < 2) return NULL;
    if (n == 2) return wsj__frame_of(head, (size_t)hn - 1, "{}", 2); /* no members: drop the comma */
    return wsj__frame_of(head, (size_t)hn, json, n);
}

static const stream_kind_t wsj_kind = {
    .xp = XP_WSJSON,
    .frame = wsj__frame,
    .gap_frame = wsj__gap,
    .event_frame = wsj__event,
};

/* Sends {"op":"reply","ref":R,"ok":true<fields>} (fields: "" or ,"k":v...). */
static void wsj__ok(wsj_t *w, const char *ref, const char *fields)
{
    char buf[2048];
    int n = snprintf(buf, sizeof(buf), "{\"op\":\"reply\",\"ref\":%s,\"ok\":true%s}", ref, fields);
    if (n > 0 && (size_t)n < sizeof(buf)) ws_send_copy(&w->ws, true, buf, (size_t)n);
}

/* The one place that turns a request error into the wire: a typed error reply. message is JSON
 * string text (already escaped). */
static void wsj__err(wsj_t *w, const char *ref, const char *code, const char *message)
{
    char buf[1024];
    char peer[128];
    if (log_level() >= LOG_DEBUG) log_debug("ws_json: %s: %s: %s", conn_peer(&w->ws.hc->base, peer, sizeof(peer)), code, message);
    int n = snprintf(buf, sizeof(buf), "{\"op\":\"reply\",\"ref\":%s,\"ok\":false,\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                     ref, code, message);
    if (n > 0 && (size_t)n < sizeof(buf)) ws_send_copy(&w->ws, true, buf, (size_t)n);
}

/* Ends subscription i (its stream) and forgets it. */
static void wsj__drop(wsj_t *w, uint32_t i)
{
    if (w->subs[i] == w->feed) w->feed = NULL;
    if (w->subs[i] == w->bcast) w->bcast = NULL;
    stream_free(w->subs[i]);
    w->subs[i] = w->subs[--w->nsubs];
}

/* Room for one more subscription. False on OOM. */
static bool wsj__grow(wsj_t *w)
{
    if (w->nsubs < w->cap) return true;
    uint32_t cap = w->cap ? w->cap * 2 : 4;
    stream_t **ns = realloc(w->subs, cap * sizeof(*ns));
    if (!ns) return false;
    w->subs = ns;
    w->cap = cap;
    return true;
}

static int wsj__find(wsj_t *w, const char *name, size_t n)
{
    for (uint32_t i = 0; i < w->nsubs; i++) {
        chan_t *ch = w->subs[i]->subs[0].s.ch;
        if (ch->name_len == n && memcmp(ch->name, name, n) == 0) return (int)i;
    }
    return -1;
}

/* Reads "channel" into name; answers the error itself and returns false when missing or bad. */
static bool wsj__channel(wsj_t *w, json_t *req, const char *ref, const char **name, size_t *n)
{
    json_t *c = json_object_get(req, "channel");
    if (!json_is_string(c)) {
        wsj__err(w, ref, "bad_request", "\\\"channel\\\" (a string) is required");
        return false;
    }
    *name = json_string_value(c);
    *n = json_string_length(c);
    if (!hub_channel_valid(*name, *n)) {
        wsj__err(w, ref, "bad_channel", "invalid channel name");
        return false;
    }
    return true;
}

static void wsj__subscribe(wsj_t *w, json_t *req, const char *ref)
{
    const char *name;
    size_t n;
    if (!wsj__channel(w, req, ref, &name, &n)) return;
    if (!auth_can_subscribe(w->ws.id, name, n)) {
        xp_log_denial(w->ws.x, &w->ws.hc->base, w->ws.id, "subscribe to", name, n);
        wsj__err(w, ref, w->ws.id->kind == AUTH_ANON ? "unauthorized" : "forbidden",
                 "not allowed to subscribe to this channel");
        return;
    }
    int found = wsj__find(w, name, n);
    if (found >= 0 && (w->subs[found] == w->feed || w->subs[found] == w->bcast)) {
        wsj__drop(w, (uint32_t)found); /* a server-side subscription becomes the client's, with its last_id */
        found = -1;
    }
    if (found >= 0) {
        wsj__err(w, ref, "already_subscribed", "already subscribed to this channel");
        return;
    }
    if (w->nsubs >= w->ws.x->cfg->max_subscriptions) {
        xp_sub_limit(w->ws.x, &w->ws.hc->base, "/ws");
        char why[80];
        snprintf(why, sizeof(why), "at most %u subscriptions per connection (max_subscriptions)",
                 w->ws.x->cfg->max_subscriptions);
        wsj__err(w, ref, "too_many_subscriptions", why);
        return;
    }
    if (!wsj__grow(w)) {
        wsj__err(w, ref, "internal", "out of memory");
        return;
    }
    subreq_t sr = {.nch = 1};
    subreq_user(&sr, w->ws.id); /* presence counts it as the user's */
    json_t *last = json_object_get(req, "last_id");
    if (last && !json_is_null(last)) {
        char tmp[32];
        const char *text = tmp;
        size_t tl;
        if (json_is_string(last)) {
            text = json_string_value(last);
            tl = json_string_length(last);
        } else if (json_is_integer(last) && json_integer_value(last) >= 0) {
            tl = (size_t)snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(last));
        } else {
            tl = 0;
            text = "";
        }
        if (!tl || cursor_parse(text, tl, sr.cursor, 1) < 0) {
            wsj__err(w, ref, "bad_cursor", "last_id must be a message id (a decimal string)");
            return;
        }
        sr.has_cursor = true;
    }
    sr.ch[0] = hub_channel(w->ws.x->hub, name, n, true);
    if (!sr.ch[0]) {
        wsj__err(w, ref, "internal", "cannot create channel");
        return;
    }
    char fields[64];
    snprintf(fields, sizeof(fields), ",\"last_id\":\"%" PRIu64 "\"", sr.ch[0]->last_id);
    wsj__ok(w, ref, fields); /* the reply comes before the replay */
    stream_t *st = stream_open(w->ws.x, &w->ws.hc->base, &sr, &wsj_kind, &w->ws);
    if (!st) {
        ws_close(&w->ws, WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    w->subs[w->nsubs++] = st;
}

static void wsj__unsubscribe(wsj_t *w, json_t *req, const char *ref)
{
    const char *name;
    size_t n;
    if (!wsj__channel(w, req, ref, &name, &n)) return;
    int i = wsj__find(w, name, n);
    if (i < 0) {
        wsj__err(w, ref, "not_subscribed", "not subscribed to this channel");
        return;
    }
    wsj__drop(w, (uint32_t)i);
    wsj__ok(w, ref, "");
}

/* Sends the publish replies that are ready, in order. */
static void wsj__answer_owed(wsj_t *w)
{
    xp_owed_t *e;
    while ((e = xp_owed_pop(&w->owed))) {
        if (e->rc < 0) {
            wsj__err(w, e->data, "publish_failed", hr_strerror(e->rc));
        } else {
            char fields[128]; /* engine = redis: this node's subscribers only, and it says so */
            snprintf(fields, sizeof(fields), ",\"id\":\"%" PRIu64 "\",\"subscribers\":%u%s", e->id, e->reached,
                     w->ws.x->hub->engine ? ",\"subscribers_scope\":\"node\"" : "");
            wsj__ok(w, e->data, fields);
        }
        free(e);
    }
}

/* A publish of connection arg is committed or failed: its reply (and any after it) can go. */
static void wsj__published(void *arg, int rc, const msg_t *m, uint32_t reached)
{
    wsj_t *w = arg;
    xp_owed_done(&w->owed, rc, m, reached);
    wsj__answer_owed(w);
}

/* A publish names only fields it understands: anything else (a typo) is refused
 * rather than silently ignored. Answers the error itself and returns false. */
static bool wsj__publish_fields(wsj_t *w, json_t *req, const char *ref)
{
    static const char *const KNOWN[] = {"op", "ref", "channel", "data", "event", "encoding", "ttl", "delay", "at", NULL};
    const char *key;
    json_t *v;
    json_object_foreach(req, key, v) {
        size_t i = 0;
        while (KNOWN[i] && strcmp(KNOWN[i], key) != 0) i++;
        if (KNOWN[i]) continue;
        char msg[96] = "unknown field: ";
        size_t k = strlen(msg);
        for (size_t j = 0; key[j] && j < 64; j++) { /* JSON-safe: other bytes become '?' */
            char c = key[j];
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '-' || c == '.';
            msg[k++] = ok ? c : '?';
        }
        msg[k] = 0;
        wsj__err(w, ref, "bad_request", msg);
        return false;
    }
    return true;
}

/* A publish with "delay" or "at": scheduled at once, the reply says
 * {"op":"reply","ref":R,"ok":true,"scheduled":"ID","at":"..."}. */
static void wsj__schedule(wsj_t *w, const char *ref, const char *ch, size_t cn, const char *ev, size_t en,
                          const void *d, size_t dn, uint32_t ttl, json_t *delay, json_t *at)
{
    xp_ctx_t *x = w->ws.x;
    if (!x->schedule) {
        wsj__err(w, ref, "bad_request", "scheduled publishes are not available");
        return;
    }
    int64_t dl = -1, at_num = 0;
    if (delay && !json_is_null(delay)) dl = json_is_integer(delay) ? json_integer_value(delay) : 0;
    if (at && !json_is_null(at) && !json_is_string(at)) at_num = json_is_integer(at) ? json_integer_value(at) : -1;
    const char *at_s = at && json_is_string(at) ? json_string_value(at) : NULL;
    size_t at_n = at_s ? json_string_length(at) : 0;
    char out[160], fields[176];
    int rc = x->schedule(x->schedule_arg, ch, cn, ev, en, d, dn, ttl, dl, at_s, at_n, at_num, out, sizeof(out));
    if (rc == HR_EINVAL) {
        wsj__err(w, ref, "bad_request", out);
    } else if (rc < 0) {
        wsj__err(w, ref, rc == HR_EFULL ? "busy" : "publish_failed", out);
    } else {
        snprintf(fields, sizeof(fields), ",%s", out);
        wsj__ok(w, ref, fields);
    }
}

static void wsj__publish(wsj_t *w, json_t *req, const char *ref)
{
    const char *name;
    size_t n;
    if (!wsj__publish_fields(w, req, ref)) return;
    if (!wsj__channel(w, req, ref, &name, &n)) return;
    if (!w->ws.x->cfg->client_publish) {
        wsj__err(w, ref, "forbidden", "publishing from clients is disabled (client_publish = false)");
        return;
    }
    if (!auth_can_publish(w->ws.id, name, n)) {
        xp_log_denial(w->ws.x, &w->ws.hc->base, w->ws.id, "publish to", name, n);
        wsj__err(w, ref, w->ws.id->kind == AUTH_ANON ? "unauthorized" : "forbidden",
                 "not allowed to publish to this channel");
        return;
    }
    json_t *data = json_object_get(req, "data"), *event = json_object_get(req, "event");
    json_t *enc = json_object_get(req, "encoding");
    if (!json_is_string(data)) {
        wsj__err(w, ref, "bad_request", "\\\"data\\\" (a string) is required");
        return;
    }
    const char *ev = "message";
    size_t evn = 7;
    if (event && !json_is_null(event)) {
        if (!json_is_string(event) || !hub_event_valid(json_string_value(event), json_string_length(event))) {
            wsj__err(w, ref, "bad_event", "invalid event name (1-64 of A-Z a-z 0-9 _ - . :)");
            return;
        }
        ev = json_string_value(event);
        evn = json_string_length(event);
    }
    json_t *ttl = json_object_get(req, "ttl"); /* seconds in history, as POST /publish's (1-315360000) */
    json_int_t ttl_s = ttl && !json_is_null(ttl) ? (json_is_integer(ttl) ? json_integer_value(ttl) : -1) : 0;
    if (ttl_s < 0 || ttl_s > 315360000 || (ttl && !json_is_null(ttl) && ttl_s == 0)) {
        wsj__err(w, ref, "bad_request", "ttl must be an integer number of seconds (1-315360000)");
        return;
    }
    const char *p = json_string_value(data);
    size_t pn = json_string_length(data);
    char *decoded = NULL;
    if (enc && !json_is_null(enc)) {
        if (!json_is_string(enc) || strcmp(json_string_value(enc), "base64") != 0) {
            wsj__err(w, ref, "bad_request", "encoding must be \\\"base64\\\" when given");
            return;
        }
        decoded = malloc(pn / 4 * 3 + 1);
        ssize_t dn = decoded ? b64_decode(p, pn, decoded, pn / 4 * 3 + 1) : HR_ENOMEM;
        if (dn < 0) {
            free(decoded);
            wsj__err(w, ref, "bad_data", "data is not valid base64");
            return;
        }
        p = decoded;
        pn = (size_t)dn;
    }
    json_t *delay = json_object_get(req, "delay"), *at = json_object_get(req, "at");
    if ((delay && !json_is_null(delay)) || (at && !json_is_null(at))) { /* scheduled (the app's sched.h) */
        wsj__schedule(w, ref, name, n, ev, evn, p, pn, (uint32_t)ttl_s, delay, at);
        free(decoded);
        return;
    }
    xp_owed_t *e = xp_owed_push(&w->owed, ref, strlen(ref) + 1, true);
    if (!e) {
        free(decoded);
        wsj__err(w, ref, "busy", "too many publishes waiting for their commit");
        return;
    }
    hub_pubopt_t o = {.flags = MSG_FROM_HTTP, .origin = w, .expiry_s = (uint32_t)ttl_s};
    int rc = hub_publish_async(w->ws.x->hub, name, n, ev, evn, p, pn, &o, wsj__published, w);
    free(decoded);
    if (rc < 0) xp_owed_settle(&w->owed, e, rc);
    wsj__answer_owed(w);
}

#define WSJ_USER_JSON (ACL_MAX_SUB * 6 + 8)

/* id's user as a JSON value: the quoted, escaped user id, or null. Returns buf. */
static const char *wsj__user(const auth_id_t *id, char *buf, size_t cap)
{
    if (id->kind != AUTH_USER || cap < WSJ_USER_JSON) return "null";
    buf[0] = '"';
    size_t el = json_escape(id->sub_id, id->sub_len, buf + 1, cap - 3);
    buf[1 + el] = '"';
    buf[2 + el] = 0;
    return buf;
}

/* users.h: the admin disconnected the user: {"op":"disconnect","reason":R,"reconnect":B}, then
 * a Close with 4001 (4002 when reconnecting is fine). */
static void wsj__user_disconnect(users_conn_t *uc, const char *reason, bool reconnect)
{
    wsj_t *w = (wsj_t *)container_of(uc, ws_t, uc);
    char json[USERS_MAX_REASON * 6 + 64], buf[USERS_MAX_REASON * 6 + 96];
    size_t n = stream_bye_json(reason, reconnect, json, sizeof(json));
    int bn = n ? snprintf(buf, sizeof(buf), "{\"op\":\"disconnect\",%.*s", (int)(n - 1), json + 1) : 0;
    if (bn > 0 && (size_t)bn < sizeof(buf)) ws_send_copy(&w->ws, true, buf, (size_t)bn);
    ws_close(&w->ws, reconnect ? WS_CLOSE_RECONNECT : WS_CLOSE_DISCONNECTED, reason);
}

/* Tells the client its subscription to ch[0..n) ended (reason: a static JSON-safe word). */
static void wsj__unsubscribed(wsj_t *w, const char *ch, size_t n, const char *reason)
{
    char buf[6 * HUB_MAX_CHANNEL + 96], esc[6 * HUB_MAX_CHANNEL + 8];
    size_t el = json_escape(ch, n, esc, sizeof(esc));
    int bn = snprintf(buf, sizeof(buf), "{\"op\":\"unsubscribed\",\"channel\":\"%.*s\",\"reason\":\"%s\"}", (int)el,
                      esc, reason);
    if (bn > 0 && (size_t)bn < sizeof(buf)) ws_send_copy(&w->ws, true, buf, (size_t)bn);
}

/* users.h: the admin unsubscribed the user from ch: the subscription ends with a notice. */
static uint32_t wsj__user_unsubscribe(users_conn_t *uc, const char *ch, size_t n)
{
    wsj_t *w = (wsj_t *)container_of(uc, ws_t, uc);
    int i = wsj__find(w, ch, n);
    if (i < 0 || w->ws.close_sent) return 0;
    wsj__drop(w, (uint32_t)i);
    wsj__unsubscribed(w, ch, n, "admin");
    return 1;
}

static const users_conn_ops_t wsj_user_ops = {
    .disconnect = wsj__user_disconnect,
    .unsubscribe = wsj__user_unsubscribe,
};

/* Subscribes server-side to name[0..n) from its last id on (once: kept when already subscribed).
 * Writes ,"KEY":"name" at fields. */
static size_t wsj__server_sub(wsj_t *w, const char *key, const char *name, size_t n, stream_t **slot, char *fields,
                              size_t cap)
{
    if (wsj__find(w, name, n) < 0) {
        chan_t *ch = wsj__grow(w) ? hub_channel(w->ws.x->hub, name, n, true) : NULL;
        subreq_t sr = {.nch = 1, .ch = {ch}, .cursor = {ch ? ch->last_id : 0}};
        subreq_user(&sr, w->ws.id);
        stream_t *st = ch ? stream_open(w->ws.x, &w->ws.hc->base, &sr, &wsj_kind, &w->ws) : NULL;
        if (!st) {
            char peer[128];
            log_info("ws_json: %s: cannot subscribe to the %s channel", conn_peer(&w->ws.hc->base, peer, sizeof(peer)), key);
            return 0;
        }
        w->subs[w->nsubs++] = st;
        *slot = st;
    }
    char esc[6 * HUB_MAX_CHANNEL + 8];
    size_t el = json_escape(name, n, esc, sizeof(esc));
    int k = snprintf(fields, cap, ",\"%s\":\"%.*s\"", key, (int)el, esc);
    return k > 0 && (size_t)k < cap ? (size_t)k : 0;
}

/* A user's connection: listed under its user and subscribed server-side to its personal channel
 * (user_channel) and the broadcast channel, once. Writes ,"feed":"user/42","broadcast":"broadcast"
 * into fields ("" without a user). */
static void wsj__feed(wsj_t *w, char *fields, size_t cap)
{
    fields[0] = 0;
    const auth_id_t *id = w->ws.id;
    if (id->kind != AUTH_USER) return;
    ws_user_register(&w->ws, &wsj_user_ops, "ws_json");
    char name[HUB_MAX_CHANNEL + 1];
    ssize_t n = xp_user_feed(w->ws.x, id, name, sizeof(name));
    size_t o = n < 0 ? 0 : wsj__server_sub(w, "feed", name, (size_t)n, &w->feed, fields, cap);
    const char *bc = w->ws.x->cfg->broadcast_channel;
    if (bc[0]) wsj__server_sub(w, "broadcast", bc, strlen(bc), &w->bcast, fields + o, cap - o);
}

/* {"op":"auth","token":T}: authenticates the connection, or refreshes its token before it
 * expires. The user may not change (anonymous may become a user); subscriptions the new token no
 * longer allows are ended with an "unsubscribed" notice. */
static void wsj__auth(wsj_t *w, json_t *req, const char *ref)
{
    json_t *t = json_object_get(req, "token");
    if (!json_is_string(t) || !json_string_length(t)) {
        wsj__err(w, ref, "bad_request", "\\\"token\\\" (a string) is required");
        return;
    }
    auth_t *a = w->ws.x->auth;
    if (!a->enabled) { /* open: nothing to check, every client may do everything */
        wsj__ok(w, ref, ",\"user\":null,\"expires\":0");
        return;
    }
    auth_id_t *id = NULL;
    const char *why = "invalid token";
    if (auth_bearer(a, json_string_value(t), json_string_length(t), &id, &why) < 0) {
        xp_log_refused(w->ws.x, &w->ws.hc->base, why);
        char msg[6 * 160 + 8]; /* wsj__err takes JSON string text: the reason is escaped */
        size_t mn = strlen(why);
        msg[json_escape(why, mn > 160 ? 160 : mn, msg, sizeof(msg) - 1)] = 0;
        wsj__err(w, ref, "unauthorized", msg);
        return;
    }
    const auth_id_t *old = w->ws.id;
    if (old->kind == AUTH_USER && (id->kind != AUTH_USER || strcmp(old->sub_id, id->sub_id) != 0)) {
        auth_unref(id);
        wsj__err(w, ref, "forbidden", "the token is for another user (open a new connection)");
        return;
    }
    ws_set_id(&w->ws, id);
    for (uint32_t i = 0; i < w->nsubs;) {
        chan_t *ch = w->subs[i]->subs[0].s.ch;
        if (auth_can_subscribe(id, ch->name, ch->name_len)) {
            i++;
            continue;
        }
        char buf[6 * HUB_MAX_CHANNEL + 96], esc[6 * HUB_MAX_CHANNEL + 8];
        size_t el = json_escape(ch->name, ch->name_len, esc, sizeof(esc));
        int bn = snprintf(buf, sizeof(buf), "{\"op\":\"unsubscribed\",\"channel\":\"%.*s\",\"reason\":\"forbidden\"}",
                          (int)el, esc);
        wsj__drop(w, i);
        if (bn > 0 && (size_t)bn < sizeof(buf)) ws_send_copy(&w->ws, true, buf, (size_t)bn);
    }
    char feed[2 * (6 * HUB_MAX_CHANNEL + 32)];
    wsj__feed(w, feed, sizeof(feed));
    char fields[WSJ_USER_JSON + sizeof(feed) + 40], user[WSJ_USER_JSON];
    snprintf(fields, sizeof(fields), ",\"user\":%s,\"expires\":%lld%s", wsj__user(id, user, sizeof(user)),
             (long long)(id->exp_ms / 1000), feed);
    wsj__ok(w, ref, fields);
}

static void wsj__on_message(ws_t *ws, bool text, char *data, size_t n)
{
    wsj_t *w = (wsj_t *)ws;
    if (!text) {
        ws_close(ws, WS_CLOSE_UNSUPPORTED, "the /ws protocol speaks JSON text messages");
        return;
    }
    json_error_t jerr;
    json_t *req = json_loadb(data, n, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(req)) {
        wsj__err(w, "null", req ? "bad_request" : "bad_json", req ? "a request is a JSON object" : "not valid JSON");
        json_decref(req);
        return;
    }
    char ref[6 * WSJ_MAX_REF + 3] = "null"; /* a 128-character string, every one escaped, with quotes */
    json_t *r = json_object_get(req, "ref");
    if (r && !json_is_null(r)) {
        bool ok = json_is_integer(r) || (json_is_string(r) && utf8_chars(json_string_value(r), json_string_length(r)) <= WSJ_MAX_REF);
        char *dump = ok ? json_dumps(r, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        if (!dump || strlen(dump) >= sizeof(ref)) {
            free(dump);
            wsj__err(w, "null", "bad_request", "ref must be a string or an integer (at most 128 characters)");
            json_decref(req);
            return;
        }
        /* jansson escapes only what JSON needs; the script-unsafe '<' '>' '&' cannot break a
         * WebSocket text frame, so the dump goes back as it is */
        strcpy(ref, dump);
        free(dump);
    }
    json_t *op = json_object_get(req, "op");
    const char *o = json_is_string(op) ? json_string_value(op) : NULL;
    if (!o) wsj__err(w, ref, "bad_request", "\\\"op\\\" (a string) is required");
    else if (strcmp(o, "subscribe") == 0) wsj__subscribe(w, req, ref);
    else if (strcmp(o, "unsubscribe") == 0) wsj__unsubscribe(w, req, ref);
    else if (strcmp(o, "publish") == 0) wsj__publish(w, req, ref);
    else if (strcmp(o, "ping") == 0) wsj__ok(w, ref, "");
    else if (strcmp(o, "auth") == 0) wsj__auth(w, req, ref);
    else wsj__err(w, ref, "unknown_op", "op must be subscribe, unsubscribe, publish, auth or ping");
    json_decref(req);
}

static void wsj__on_drain(ws_t *ws)
{
    wsj_t *w = (wsj_t *)ws;
    for (uint32_t i = 0; i < w->nsubs; i++) stream_drained(w->subs[i]);
}

static void wsj__on_close(ws_t *ws)
{
    wsj_t *w = (wsj_t *)ws;
    for (uint32_t i = 0; i < w->nsubs; i++) stream_free(w->subs[i]);
    free(w->subs);
    w->nsubs = 0;
    if (w->owed.waiting) hub_cancel(w->ws.x->hub, w); /* its publishes complete unanswered */
    xp_owed_free(&w->owed);
}

static const char *const wsj_protocols[] = {"herald.v1", NULL};

static const ws_app_t wsj_app = {
    .xp = XP_WSJSON,
    .subprotocols = wsj_protocols,
    .deflate = true,
    .on_message = wsj__on_message,
    .on_drain = wsj__on_drain,
    .on_close = wsj__on_close,
};

static void wsj__start(xp_ctx_t *x, wsj_t *w);

void ws_json_serve(xp_ctx_t *x, http_conn_t *hc, http_req_t *req)
{
    wsj_t *w = (wsj_t *)ws_accept(x, hc, req, &wsj_app, sizeof(wsj_t), false, NULL);
    if (w) wsj__start(x, w);
}

ws_t *ws_json_open_carried(xp_ctx_t *x, http_conn_t *vc, auth_id_t *id)
{
    wsj_t *w = (wsj_t *)ws_open_carried(x, vc, &wsj_app, sizeof(wsj_t), id);
    if (!w) return NULL;
    wsj__start(x, w);
    return &w->ws;
}

/* The session opened: the user's channels, then the welcome. */
static void wsj__start(xp_ctx_t *x, wsj_t *w)
{
    xp_owed_init(&w->owed);
    char feed[2 * (6 * HUB_MAX_CHANNEL + 32)];
    wsj__feed(w, feed, sizeof(feed));
    char hello[160 + WSJ_USER_JSON + sizeof(feed)], user[WSJ_USER_JSON];
    int n = snprintf(hello, sizeof(hello),
                     "{\"op\":\"welcome\",\"protocol\":\"herald.v1\",\"max_message\":%u,\"auth\":%s,\"user\":%s%s}",
                     x->cfg->ws_max_message, x->auth->enabled ? "true" : "false", wsj__user(w->ws.id, user, sizeof(user)),
                     feed);
    ws_send_copy(&w->ws, true, hello, (size_t)n);
}
