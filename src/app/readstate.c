/* readstate.c - read cursors and unread counts per user and channel; see readstate.h.
 *
 * Two seeded maps: cursors by "user NUL channel" (the store's key too), and users by id, each
 * with the list of its cursors (GET /unread walks it). A cursor's value in the store is its id,
 * 8 bytes little-endian. Bounded: max_read_cursors in all and max_tracked_channels per user. */
#include "readstate.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/hmap.h"
#include "../core/list.h"
#include "../core/log.h"
#include "pubreq.h"
#include "readstate_internal.h"

static bool rs__user_eq(const hmap_node_t *n, const void *k, size_t len)
{
    const rs_user_t *u = container_of(n, rs_user_t, node);
    return u->len == len && memcmp(u->id, k, len) == 0;
}

static bool rs__cur_eq(const hmap_node_t *n, const void *k, size_t len)
{
    const rs_cur_t *c = container_of(n, rs_cur_t, node);
    return c->klen == len && memcmp(c->key, k, len) == 0;
}

static size_t rs__key(char *k, const char *user, size_t un, const char *ch, size_t cn)
{
    memcpy(k, user, un);
    k[un] = 0;
    memcpy(k + un + 1, ch, cn);
    return un + 1 + cn;
}

rs_user_t *rs__user(readstate_t *rs, const char *user, size_t un, bool create)
{
    hmap_node_t *n = hmap_get(&rs->users, user, un);
    if (n || !create) return n ? container_of(n, rs_user_t, node) : NULL;
    rs_user_t *u = calloc(1, sizeof(*u) + un + 1);
    if (!u) return NULL;
    memcpy(u->id, user, un);
    u->len = (uint16_t)un;
    u->rs = rs;
    list_init(&u->curs);
    hmap_insert(&rs->users, &u->node, hmap_hash(&rs->users, user, un));
    return u;
}

/* The cursor of user on channel, made when create is set (limits permitting: *why says which
 * refused it). */
static rs_cur_t *rs__cur(readstate_t *rs, const char *user, size_t un, const char *ch, size_t cn, bool create,
                         const char **why)
{
    char k[RS_KEY_MAX];
    size_t kn = rs__key(k, user, un, ch, cn);
    hmap_node_t *n = hmap_get(&rs->curs, k, kn);
    if (n || !create) return n ? container_of(n, rs_cur_t, node) : NULL;
    const cfg_t *cfg = rs->x->cfg;
    if (rs->ncurs >= cfg->max_read_cursors) {
        if (!rs->full_logged) log_warn("readstate: %u read cursors: max_read_cursors reached, new ones are refused", rs->ncurs);
        rs->full_logged = true;
        rs->refused++;
        *why = "too many read cursors on this server (max_read_cursors)";
        return NULL;
    }
    rs_user_t *u = rs__user(rs, user, un, true);
    if (u && u->n >= cfg->max_tracked_channels) {
        if (!rs->user_logged)
            log_warn("readstate: a user tracks %u channels: max_tracked_channels reached (not logged again)", u->n);
        rs->user_logged = true;
        rs->refused++;
        *why = "this user tracks too many channels (max_tracked_channels)";
        return NULL;
    }
    rs_cur_t *c = u ? calloc(1, sizeof(*c) + kn) : NULL;
    if (!c) {
        *why = "out of memory";
        return NULL;
    }
    c->u = u;
    c->klen = (uint16_t)kn;
    memcpy(c->key, k, kn);
    hmap_insert(&rs->curs, &c->node, hmap_hash(&rs->curs, k, kn));
    list_push_back(&u->curs, &c->link);
    u->n++;
    rs->ncurs++;
    rs__cur_added(rs, c);
    return c;
}

static int rs__load_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    readstate_t *rs = arg;
    const char *k = key, *nul = memchr(k, 0, klen);
    if (!nul || vlen != 8 || nul == k || (size_t)(nul - k) > ACL_MAX_SUB || klen - (size_t)(nul - k) - 1 > HUB_MAX_CHANNEL)
        return 0; /* not a record of ours: skipped */
    const char *why = NULL;
    rs_cur_t *c = rs__cur(rs, k, (size_t)(nul - k), nul + 1, klen - (size_t)(nul - k) - 1, true, &why);
    if (c) {
        const unsigned char *v = val;
        c->id = 0;
        for (int i = 7; i >= 0; i--) c->id = c->id << 8 | v[i];
    }
    return 0;
}

readstate_t *readstate_new(xp_ctx_t *x, char *err, size_t errcap)
{
    readstate_t *rs = calloc(1, sizeof(*rs));
    if (!rs || hmap_init(&rs->users, 64, rs__user_eq) < 0) {
        free(rs);
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    if (hmap_init(&rs->curs, 64, rs__cur_eq) < 0) {
        hmap_free(&rs->users);
        free(rs);
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    rs->x = x;
    list_init(&rs->dirty);
    list_init(&rs->onl);
    if (rs__push_init(rs) < 0) {
        hmap_free(&rs->curs);
        hmap_free(&rs->users);
        free(rs);
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    store_t *st = x->hub->store;
    engine_t *eng = x->hub->engine;
    int lrc = eng && eng->ops->kv_each ? eng->ops->kv_each(eng, RS_NS, rs__load_one, rs)
              : st->ops->kv_each       ? st->ops->kv_each(st, RS_NS, rs__load_one, rs)
                                       : 0;
    if (lrc < 0) {
        readstate_free(rs);
        snprintf(err, errcap, "cannot read the stored read cursors");
        return NULL;
    }
    if (rs->ncurs) log_info("readstate: %u read cursors restored", rs->ncurs);
    return rs;
}

void readstate_free(readstate_t *rs)
{
    if (!rs) return;
    rs__push_free(rs);
    hmap_iter_t it;
    hmap_iter_init(&it, &rs->curs);
    for (hmap_node_t *n; (n = hmap_iter_next(&it));) free(container_of(n, rs_cur_t, node));
    hmap_iter_init(&it, &rs->users);
    for (hmap_node_t *n; (n = hmap_iter_next(&it));) free(container_of(n, rs_user_t, node));
    hmap_free(&rs->curs);
    hmap_free(&rs->users);
    free(rs);
}

/* Messages ch's history still holds after cursor, as a subscriber resuming there would get them
 * (withdrawn and expired ones do not count); the channel is loaded when the store knows it.
 * *next_exp becomes the earliest wall ms one of them expires, if sooner. */
static uint64_t rs__unread(readstate_t *rs, const char *ch, size_t n, uint64_t cursor, uint64_t *next_exp,
                           bool *loading)
{
    chan_t *c = hub_channel(rs->x->hub, ch, n, true);
    if (!c) return 0;
    if (c->loading) { /* a shared engine is still loading it: counted once it is here */
        *loading = true;
        return 0;
    }
    if (cursor >= c->last_id) return 0;
    hub_trim(rs->x->hub, c);
    return hist_count_after(&c->hist, cursor, loop_wall_ms(), next_exp);
}

/* The user a request is about: the token's user, or ?user=ID with an API key. Writes it (NUL
 * terminated) into user and returns its length, or answers the request and returns -1. */
static ssize_t rs__who(readstate_t *rs, http_conn_t *hc, http_req_t *req, auth_id_t **idp, char *user, size_t cap)
{
    auth_id_t *id = xp_auth_request(rs->x, hc, req);
    if (!id) return -1;
    ssize_t qn = http_req_query(req, "user", user, cap);
    if (qn >= 0) {
        if (!auth_is_admin(id)) {
            auth_unref(id);
            http_error(hc, HR_EFORBIDDEN, "?user= needs an API key");
            return -1;
        }
        if (qn == 0 || !acl_sub_valid(user, (size_t)qn)) {
            auth_unref(id);
            http_error(hc, HR_EINVAL, "invalid user id");
            return -1;
        }
        *idp = id;
        return qn;
    }
    if (id->kind != AUTH_USER) {
        auth_unref(id);
        http_error(hc, rs->x->auth->enabled ? HR_EAUTH : HR_EINVAL,
                   "read state belongs to a user: send a token (or ?user=ID with an API key)");
        return -1;
    }
    memcpy(user, id->sub_id, id->sub_len);
    user[id->sub_len] = 0;
    *idp = id;
    return id->sub_len;
}

/* One channel of a user's counts, while they are written. */
typedef struct {
    const char *name;
    size_t n;
    uint64_t count;
} rs_count_t;

static int rs__count_cmp(const void *a, const void *b)
{
    const rs_count_t *x = a, *y = b;
    int c = memcmp(x->name, y->name, x->n < y->n ? x->n : y->n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

char *rs__counts(readstate_t *rs, const char *user, size_t un, rs_counts_t *q, size_t *len)
{
    q->total = q->next_exp = q->want_count = 0;
    q->loading = false;
    char feed[HUB_MAX_CHANNEL + 1];
    ssize_t fn = pubreq_user_channel(rs->x->cfg->user_channel, user, un, feed, sizeof(feed));
    const char *bc = rs->x->cfg->broadcast_channel;
    size_t bn = strlen(bc);
    rs_user_t *u = rs__user(rs, user, un, false);
    uint32_t max = (u ? u->n : 0) + 2, k = 0;
    rs_count_t *all = malloc(max * sizeof(*all));
    if (!all) return NULL;
    bool feed_seen = fn <= 0, bc_seen = bn == 0;
    if (u) {
        list_node_t *pos, *tmp;
        list_each_safe(pos, tmp, &u->curs)
        {
            rs_cur_t *c = container_of(pos, rs_cur_t, link);
            size_t cn;
            const char *ch = rs__chan(c, &cn);
            all[k++] = (rs_count_t){ch, cn, rs__unread(rs, ch, cn, c->id, &q->next_exp, &q->loading)};
            feed_seen |= (size_t)fn == cn && memcmp(feed, ch, cn) == 0;
            bc_seen |= bn == cn && memcmp(bc, ch, cn) == 0;
        }
    }
    if (!bc_seen) all[k++] = (rs_count_t){bc, bn, rs__unread(rs, bc, bn, 0, &q->next_exp, &q->loading)};
    if (!feed_seen) /* the personal channel is always tracked */
        all[k++] = (rs_count_t){feed, (size_t)fn, rs__unread(rs, feed, (size_t)fn, 0, &q->next_exp, &q->loading)};
    qsort(all, k, sizeof(*all), rs__count_cmp); /* in name order: the same counts, the same text */
    size_t cap = 64 + 6 * un;
    for (uint32_t i = 0; i < k; i++) {
        cap += 6 * all[i].n + 28;
        q->total += all[i].count;
        if (q->want && q->wn == all[i].n && memcmp(q->want, all[i].name, all[i].n) == 0) q->want_count = all[i].count;
    }
    char *out = malloc(cap);
    if (out) {
        size_t o = (size_t)snprintf(out, cap, "{\"user\":\"");
        o += json_escape(user, un, out + o, cap - o);
        o += (size_t)snprintf(out + o, cap - o, "\",\"total\":%" PRIu64 ",\"channels\":{", q->total);
        for (uint32_t i = 0; i < k; i++) {
            out[o++] = i ? ',' : '"';
            if (i) out[o++] = '"';
            o += json_escape(all[i].name, all[i].n, out + o, cap - o);
            o += (size_t)snprintf(out + o, cap - o, "\":%" PRIu64, all[i].count);
        }
        o += (size_t)snprintf(out + o, cap - o, "}}");
        *len = o;
    }
    free(all);
    return out;
}

/* Answers 200 with the JSON text s[0..n) (freeing it), or 500 when s is NULL. */
static void rs__answer(http_conn_t *hc, char *s, size_t n)
{
    if (!s) {
        http_error(hc, HR_ENOMEM, "out of memory");
        return;
    }
    http_respond(hc, 200, "application/json", s, n, "Cache-Control: no-cache\r\n");
    free(s);
}

/* A GET /unread waiting for channels a shared engine is loading (retried every 10 ms, answered
 * with what is there after redis_timeout). */
typedef struct {
    tw_entry_t tmr;
    readstate_t *rs;
    http_conn_t *hc;
    uint64_t until_ms;
    size_t un;
    char user[];
} rs_get_t;

static void rs__get_close(http_conn_t *hc)
{
    rs_get_t *g = hc->xstate;
    tw_stop(&g->rs->x->hub->loop->wheel, &g->tmr);
    free(g);
}

static const http_xport_ops_t rs_get_ops = {.on_close = rs__get_close};

static void rs__get_retry(tw_entry_t *e)
{
    rs_get_t *g = container_of(e, rs_get_t, tmr);
    loop_t *loop = g->rs->x->hub->loop;
    rs_counts_t q = {0};
    size_t n = 0;
    char *o = rs__counts(g->rs, g->user, g->un, &q, &n);
    if (q.loading && loop_now(loop) < g->until_ms) {
        free(o);
        tw_arm(&loop->wheel, &g->tmr, loop_now(loop) + 10);
        return;
    }
    http_conn_t *hc = g->hc;
    free(g); /* answering unparks the connection: its on_close will not run */
    rs__answer(hc, o, n);
}

void readstate_get_unread(readstate_t *rs, http_conn_t *hc, http_req_t *req)
{
    char user[ACL_MAX_SUB + 2];
    auth_id_t *id = NULL;
    ssize_t un = rs__who(rs, hc, req, &id, user, sizeof(user));
    if (un < 0) return;
    auth_unref(id);
    rs_counts_t q = {0};
    size_t n = 0;
    char *o = rs__counts(rs, user, (size_t)un, &q, &n);
    rs_get_t *g = q.loading ? calloc(1, sizeof(*g) + (size_t)un + 1) : NULL;
    if (!g) { /* loaded (or no memory to wait): what is here */
        rs__answer(hc, o, n);
        return;
    }
    free(o);
    loop_t *loop = rs->x->hub->loop;
    tw_entry_init(&g->tmr, rs__get_retry);
    g->rs = rs;
    g->hc = hc;
    g->until_ms = loop_now(loop) + rs->x->cfg->redis_timeout_ms;
    g->un = (size_t)un;
    memcpy(g->user, user, (size_t)un + 1);
    tw_arm(&loop->wheel, &g->tmr, loop_now(loop) + 10);
    http_park(hc, &rs_get_ops, g, XP_HTTP); /* answered once the channels are loaded */
}

/* A POST /read waiting for the commit that holds its cursor. */
typedef struct {
    readstate_t *rs;
    rs_user_t *u; /* its devices are told once the cursor is committed */
    char *answer; /* the JSON text answered then */
    size_t n;
} rs_wait_t;

static void rs__committed(void *arg, int rc)
{
    http_conn_t *hc = arg;
    rs_wait_t *w = hc->xstate;
    char *o = w->answer;
    size_t n = w->n;
    readstate_t *rs = w->rs;
    rs_user_t *u = w->u;
    free(w); /* answering unparks the connection: its on_close will not run */
    if (rc == 0) rs__dirty(rs, u);
    if (rc < 0) {
        free(o);
        http_error(hc, rc, "the read cursor could not be stored");
        return;
    }
    rs__answer(hc, o, n);
}

static void rs__wait_close(http_conn_t *hc)
{
    rs_wait_t *w = hc->xstate;
    hub_cancel(w->rs->x->hub, hc);
    free(w->answer);
    free(w);
}

static const http_xport_ops_t rs_wait_ops = {.on_close = rs__wait_close};

/* The id of a POST /read: body {"id":"N"} (or a number), or ?id=N. */
static int rs__read_id(http_req_t *req, span_t body, uint64_t *out)
{
    char q[24];
    ssize_t qn = http_req_query(req, "id", q, sizeof(q));
    const char *s = NULL;
    size_t n = 0;
    json_t *j = NULL;
    if (qn >= 0) {
        s = q;
        n = (size_t)qn;
    } else if (body.n) {
        json_error_t e;
        j = json_loadb(body.p, body.n, JSON_REJECT_DUPLICATES, &e);
        json_t *v = json_is_object(j) && json_object_size(j) == 1 ? json_object_get(j, "id") : NULL;
        if (json_is_integer(v) && json_integer_value(v) >= 0) {
            *out = (uint64_t)json_integer_value(v);
            json_decref(j);
            return 0;
        }
        if (json_is_string(v)) {
            s = json_string_value(v);
            n = json_string_length(v);
        }
    }
    int rc = s && cursor_parse(s, n, out, 1) == 0 ? 0 : HR_EINVAL;
    json_decref(j);
    return rc;
}

void readstate_post_read(readstate_t *rs, http_conn_t *hc, http_req_t *req, span_t rest, span_t body)
{
    if (!span_eq(req->method, "POST")) {
        http_method_not_allowed(hc, "POST", "use POST to mark a channel read");
        return;
    }
    char ch[HUB_MAX_CHANNEL + 1];
    ssize_t cn = http_pct_decode(rest.p, rest.n, ch, sizeof(ch));
    if (cn < 0 || !hub_channel_valid(ch, (size_t)cn)) {
        http_error(hc, HR_ECHANNEL, "invalid channel name");
        return;
    }
    uint64_t upto;
    if (rs__read_id(req, body, &upto) < 0) {
        http_error(hc, HR_EINVAL, "the id read up to is required (a JSON body with id, or ?id=N)");
        return;
    }
    char user[ACL_MAX_SUB + 2];
    auth_id_t *id = NULL;
    ssize_t un = rs__who(rs, hc, req, &id, user, sizeof(user));
    if (un < 0) return;
    bool ok = auth_is_admin(id) || auth_can_subscribe(id, ch, (size_t)cn);
    if (!ok) xp_deny_http(rs->x, hc, id, "mark read", ch, (size_t)cn);
    auth_unref(id);
    if (!ok) return;
    const char *why = "out of memory";
    rs_cur_t *c = rs__cur(rs, user, (size_t)un, ch, (size_t)cn, true, &why);
    if (!c) {
        http_error(hc, HR_EFULL, why);
        return;
    }
    chan_t *chan = hub_channel(rs->x->hub, ch, (size_t)cn, true);
    if (chan && upto > chan->last_id) upto = chan->last_id; /* nobody read what does not exist yet */
    c->id = upto;
    rs->marks++;
    rs_counts_t q = {.want = ch, .wn = (size_t)cn};
    size_t qn = 0;
    free(rs__counts(rs, user, (size_t)un, &q, &qn));
    char idtxt[24];
    snprintf(idtxt, sizeof(idtxt), "%" PRIu64, upto);
    char esc[6 * HUB_MAX_CHANNEL + 8];
    size_t el = json_escape(ch, (size_t)cn, esc, sizeof(esc));
    char *o = malloc(el + 128);
    size_t on = o ? (size_t)snprintf(o, el + 128, "{\"channel\":\"%.*s\",\"read\":\"%s\",\"unread\":%" PRIu64
                                     ",\"total\":%" PRIu64 "}", (int)el, esc, idtxt, q.want_count, q.total)
                  : 0;
    store_t *st = rs->x->hub->store;
    engine_t *eng = rs->x->hub->engine;
    unsigned char v[8];
    for (int i = 0; i < 8; i++) v[i] = (unsigned char)(upto >> (8 * i));
    if (eng && eng->ops->kv_put) { /* shared by every node: written to the engine, told to the others */
        int erc = eng->ops->kv_put(eng, RS_NS, c->key, c->klen, v, sizeof(v));
        if (erc < 0) {
            free(o);
            http_error(hc, erc, "the read cursor could not be stored");
            return;
        }
        if (eng->ops->control) {
            json_t *cmd = json_pack("{s:s, s:s%, s:s%, s:s}", "op", "read", "user", user, (size_t)un, "channel", ch,
                                    (size_t)cn, "id", idtxt);
            char *js = cmd ? json_dumps(cmd, JSON_COMPACT) : NULL;
            if (js) eng->ops->control(eng, js, strlen(js));
            free(js);
            json_decref(cmd);
        }
    }
    if (!st->ops->kv_put || eng) { /* nothing to wait for here */
        rs__dirty(rs, c->u);
        rs__answer(hc, o, on);
        return;
    }
    int rc = st->ops->kv_put(st, RS_NS, c->key, c->klen, v, sizeof(v));
    rs_wait_t *w = rc == 0 ? malloc(sizeof(*w)) : NULL;
    if (!w || hub_when_committed(rs->x->hub, rs__committed, hc) < 0) {
        free(w);
        free(o);
        http_error(hc, rc < 0 ? rc : HR_ENOMEM, "the read cursor could not be stored");
        return;
    }
    *w = (rs_wait_t){rs, c->u, o, on};
    http_park(hc, &rs_wait_ops, w, XP_HTTP); /* answered once the cursor is committed */
}

int readstate_remote_read(readstate_t *rs, const char *user, size_t un, const char *ch, size_t cn, uint64_t id)
{
    if (!acl_sub_valid(user, un) || !hub_channel_valid(ch, cn)) return HR_EINVAL;
    const char *why = NULL;
    rs_cur_t *c = rs__cur(rs, user, un, ch, cn, true, &why);
    if (!c) return HR_EFULL;
    c->id = id;
    rs__dirty(rs, c->u);
    return 0;
}

size_t readstate_metrics(const readstate_t *rs, char *out, size_t cap)
{
    int k = snprintf(out, cap,
                     "# HELP herald_read_cursors Read cursors kept (user and channel).\n"
                     "# TYPE herald_read_cursors gauge\nherald_read_cursors %u\n"
                     "# HELP herald_read_marks_total Channels marked read (POST /read).\n"
                     "# TYPE herald_read_marks_total counter\nherald_read_marks_total %" PRIu64 "\n"
                     "# HELP herald_read_refused_total Read cursors refused at max_read_cursors or max_tracked_channels.\n"
                     "# TYPE herald_read_refused_total counter\nherald_read_refused_total %" PRIu64 "\n"
                     "# HELP herald_unread_events_total Unread events sent to personal channel subscriptions.\n"
                     "# TYPE herald_unread_events_total counter\nherald_unread_events_total %" PRIu64 "\n"
                     "# HELP herald_unread_users_online Users with a personal channel subscription on this node.\n"
                     "# TYPE herald_unread_users_online gauge\nherald_unread_users_online %u\n"
                     "# HELP herald_unread_watched_channels Tracked channels watched for online users' unread events.\n"
                     "# TYPE herald_unread_watched_channels gauge\nherald_unread_watched_channels %u\n",
                     rs->ncurs, rs->marks, rs->refused, rs->events, rs->online, rs->nwatches);
    return k > 0 && (size_t)k < cap ? (size_t)k : 0;
}
