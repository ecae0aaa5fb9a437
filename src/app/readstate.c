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

#define RS_NS "read"
#define RS_KEY_MAX (ACL_MAX_SUB + 1 + HUB_MAX_CHANNEL)

typedef struct {
    hmap_node_t node;
    list_t curs; /* rs_cur_t.link */
    uint32_t n;
    uint16_t len;
    char id[];
} rs_user_t;

typedef struct {
    hmap_node_t node;
    list_node_t link; /* in its user's curs */
    rs_user_t *u;
    uint64_t id;      /* read up to here */
    uint16_t klen;
    char key[];       /* user, NUL, channel */
} rs_cur_t;

struct readstate {
    xp_ctx_t *x;
    hmap_t users, curs;
    uint32_t ncurs;
    uint64_t marks, refused;
    bool full_logged, user_logged;
};

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

static const char *rs__chan(const rs_cur_t *c, size_t *n)
{
    size_t ul = c->u->len + 1u;
    *n = c->klen - ul;
    return c->key + ul;
}

static size_t rs__key(char *k, const char *user, size_t un, const char *ch, size_t cn)
{
    memcpy(k, user, un);
    k[un] = 0;
    memcpy(k + un + 1, ch, cn);
    return un + 1 + cn;
}

static rs_user_t *rs__user(readstate_t *rs, const char *user, size_t un, bool create)
{
    hmap_node_t *n = hmap_get(&rs->users, user, un);
    if (n || !create) return n ? container_of(n, rs_user_t, node) : NULL;
    rs_user_t *u = calloc(1, sizeof(*u) + un + 1);
    if (!u) return NULL;
    memcpy(u->id, user, un);
    u->len = (uint16_t)un;
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
    store_t *st = x->hub->store;
    if (st->ops->kv_each && st->ops->kv_each(st, RS_NS, rs__load_one, rs) < 0) {
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
 * (withdrawn and expired ones do not count); the channel is loaded when the store knows it. */
static uint64_t rs__unread(readstate_t *rs, const char *ch, size_t n, uint64_t cursor)
{
    chan_t *c = hub_channel(rs->x->hub, ch, n, true);
    if (!c || cursor >= c->last_id) return 0;
    uint64_t total = 0;
    msg_t *batch[256];
    for (;;) {
        hub_cursor_info_t info;
        uint32_t k = hub_after(rs->x->hub, c, cursor, batch, 256, &info);
        if (info.loading) break; /* a shared engine is still loading it: what is here */
        total += k;
        if (k < 256) break;
        cursor = batch[k - 1]->id;
    }
    return total;
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

/* Adds the unread counts of user's tracked channels (and their total) to obj. */
static uint64_t rs__fill(readstate_t *rs, const char *user, size_t un, json_t *chans)
{
    uint64_t total = 0;
    char feed[HUB_MAX_CHANNEL + 1];
    ssize_t fn = pubreq_user_channel(rs->x->cfg->user_channel, user, un, feed, sizeof(feed));
    bool feed_seen = false;
    rs_user_t *u = rs__user(rs, user, un, false);
    if (u) {
        list_node_t *pos, *tmp;
        list_each_safe(pos, tmp, &u->curs)
        {
            rs_cur_t *c = container_of(pos, rs_cur_t, link);
            size_t cn;
            const char *ch = rs__chan(c, &cn);
            uint64_t k = rs__unread(rs, ch, cn, c->id);
            char name[HUB_MAX_CHANNEL + 1];
            memcpy(name, ch, cn);
            name[cn] = 0;
            json_object_set_new(chans, name, json_integer((json_int_t)k));
            total += k;
            feed_seen |= fn > 0 && (size_t)fn == cn && memcmp(feed, ch, cn) == 0;
        }
    }
    if (fn > 0 && !feed_seen) { /* the personal channel is always tracked */
        uint64_t k = rs__unread(rs, feed, (size_t)fn, 0);
        json_object_set_new(chans, feed, json_integer((json_int_t)k));
        total += k;
    }
    return total;
}

static void rs__answer(http_conn_t *hc, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) {
        http_error(hc, HR_ENOMEM, "out of memory");
        return;
    }
    http_respond(hc, 200, "application/json", s, strlen(s), "Cache-Control: no-cache\r\n");
    free(s);
}

void readstate_get_unread(readstate_t *rs, http_conn_t *hc, http_req_t *req)
{
    char user[ACL_MAX_SUB + 2];
    auth_id_t *id = NULL;
    ssize_t un = rs__who(rs, hc, req, &id, user, sizeof(user));
    if (un < 0) return;
    auth_unref(id);
    json_t *chans = json_object();
    uint64_t total = rs__fill(rs, user, (size_t)un, chans);
    json_t *o = json_pack("{s:s, s:I, s:o}", "user", user, "total", (json_int_t)total, "channels", chans);
    rs__answer(hc, o);
}

/* A POST /read waiting for the commit that holds its cursor. */
typedef struct {
    readstate_t *rs;
    json_t *answer;
} rs_wait_t;

static void rs__committed(void *arg, int rc)
{
    http_conn_t *hc = arg;
    rs_wait_t *w = hc->xstate;
    json_t *o = w->answer;
    free(w); /* answering unparks the connection: its on_close will not run */
    if (rc < 0) {
        json_decref(o);
        http_error(hc, rc, "the read cursor could not be stored");
        return;
    }
    rs__answer(hc, o);
}

static void rs__wait_close(http_conn_t *hc)
{
    rs_wait_t *w = hc->xstate;
    hub_cancel(w->rs->x->hub, hc);
    json_decref(w->answer);
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
    json_t *chans = json_object();
    uint64_t total = rs__fill(rs, user, (size_t)un, chans);
    json_t *k = json_object_get(chans, ch);
    json_t *o = json_pack("{s:s, s:s, s:I, s:I}", "channel", ch, "read", "", "unread",
                          (json_int_t)(json_is_integer(k) ? json_integer_value(k) : 0), "total", (json_int_t)total);
    json_decref(chans);
    char idtxt[24];
    snprintf(idtxt, sizeof(idtxt), "%" PRIu64, upto);
    json_object_set_new(o, "read", json_string(idtxt));
    store_t *st = rs->x->hub->store;
    if (!st->ops->kv_put) { /* the memory store: nothing to wait for */
        rs__answer(hc, o);
        return;
    }
    unsigned char v[8];
    for (int i = 0; i < 8; i++) v[i] = (unsigned char)(upto >> (8 * i));
    int rc = st->ops->kv_put(st, RS_NS, c->key, c->klen, v, sizeof(v));
    rs_wait_t *w = rc == 0 ? malloc(sizeof(*w)) : NULL;
    if (!w || hub_when_committed(rs->x->hub, rs__committed, hc) < 0) {
        free(w);
        json_decref(o);
        http_error(hc, rc < 0 ? rc : HR_ENOMEM, "the read cursor could not be stored");
        return;
    }
    *w = (rs_wait_t){rs, o};
    http_park(hc, &rs_wait_ops, w, XP_HTTP); /* answered once the cursor is committed */
}

size_t readstate_metrics(const readstate_t *rs, char *out, size_t cap)
{
    int k = snprintf(out, cap,
                     "# HELP herald_read_cursors Read cursors kept (user and channel).\n"
                     "# TYPE herald_read_cursors gauge\nherald_read_cursors %u\n"
                     "# HELP herald_read_marks_total Channels marked read (POST /read).\n"
                     "# TYPE herald_read_marks_total counter\nherald_read_marks_total %" PRIu64 "\n"
                     "# HELP herald_read_refused_total Read cursors refused at max_read_cursors or max_tracked_channels.\n"
                     "# TYPE herald_read_refused_total counter\nherald_read_refused_total %" PRIu64 "\n",
                     rs->ncurs, rs->marks, rs->refused);
    return k > 0 && (size_t)k < cap ? (size_t)k : 0;
}
