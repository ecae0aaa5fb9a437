/* redis_conn.c - the Redis engine's connections; see redis_internal.h.
 *
 * hiredis async on herald's loop: each context's socket is one watcher; hiredis says when it
 * wants to read or write (addRead/delRead/addWrite/delWrite) and the watcher's events call
 * redisAsyncHandleRead/Write. A context is freed by hiredis (connect failure, read error, EOF) or
 * by us (deadline, close); either way hiredis calls every pending callback with a NULL reply,
 * then our cleanup hook (which unwatches the fd), then, if it was connected, the disconnect
 * callback. A context is never freed by hiredis while one of its callbacks runs: freeing it from
 * inside one only marks it, and it goes when the callback returns.
 *
 * A connection (rd_conn_t) goes DOWN -> RESOLVING (with sentinels: each sentinel in turn is asked
 * SENTINEL get-master-addr-by-name) -> CONNECTING (the handshake is queued first: AUTH [user]
 * password, SELECT db, and ROLE with sentinels, so a demoted master is not used; commands sent
 * meanwhile queue behind it) -> UP. A failure (connect refused, credentials refused, a replica
 * where the master should be, READONLY, a command unanswered for redis_timeout, the connection
 * lost) frees the context, which fails its commands, and starts again after a backoff (100 ms
 * doubling to 5 s). Steps that follow a context freed inside its own callback go through a
 * timer, so a context is never replaced while hiredis still holds the old one.
 *
 * Deadline: the commands in flight are a list, oldest first (Redis answers in order); one timer
 * per connection fires at the oldest one's deadline and is re-armed lazily when it was answered
 * meanwhile. The same timer bounds resolving and connecting.
 *
 * Start-up and shut-down use a blocking connection (rd_boot_connect): nothing is served then,
 * and start-up must fail with a clear message (wrong password, unknown master) rather than
 * retry forever. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/err.h"
#include "../core/log.h"
#include "redis_internal.h"

#define RDC_BACKOFF_MIN_MS 100
#define RDC_BACKOFF_MAX_MS 5000
#define RDC_KICK_MS 250 /* a publish while down connects again at once, at most this often */

/* ---- addresses ---- */

/* The i-th "host:port" (or "[v6]:port") of a space/comma separated list. */
static bool rdc__nth_addr(const char *list, uint32_t i, char *host, size_t cap, int *port)
{
    const char *p = list;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t') p++;
        if (!*p) return false;
        const char *s = p;
        while (*p && *p != ' ' && *p != ',' && *p != '\t') p++;
        if (i--) continue;
        size_t n = (size_t)(p - s);
        const char *colon = NULL;
        for (size_t k = n; k > 0; k--)
            if (s[k - 1] == ':') {
                colon = s + k - 1;
                break;
            }
        if (!colon) return false;
        size_t hn = (size_t)(colon - s);
        if (hn >= 2 && s[0] == '[' && s[hn - 1] == ']') s++, hn -= 2;
        if (!hn || hn >= cap) return false;
        memcpy(host, s, hn);
        host[hn] = 0;
        *port = atoi(colon + 1);
        return *port > 0 && *port < 65536;
    }
}

/* ---- hiredis on our loop ---- */

static void rdl__ev(rd_link_t *l)
{
    if (!l->ac) return;
    loop_t *loop = l->c->r->loop;
    uint32_t ev = (l->rd ? LOOP_READ : 0) | (l->wr ? LOOP_WRITE : 0);
    l->w.fd = l->ac->c.fd;
    if (!l->watching) {
        if (loop_watch(loop, &l->w, ev) == 0) l->watching = true;
    } else {
        loop_modify(loop, &l->w, ev);
    }
}
static void rdl__add_read(void *p) { ((rd_link_t *)p)->rd = true, rdl__ev(p); }
static void rdl__del_read(void *p) { ((rd_link_t *)p)->rd = false, rdl__ev(p); }
static void rdl__add_write(void *p) { ((rd_link_t *)p)->wr = true, rdl__ev(p); }
static void rdl__del_write(void *p) { ((rd_link_t *)p)->wr = false, rdl__ev(p); }

/* hiredis frees the context right after this */
static void rdl__cleanup(void *p)
{
    rd_link_t *l = p;
    if (l->watching) loop_unwatch(l->c->r->loop, &l->w);
    l->watching = l->rd = l->wr = false;
    l->ac = NULL;
}

static void rdl__on_io(loop_t *loop, watcher_t *w, uint32_t events)
{
    (void)loop;
    rd_link_t *l = container_of(w, rd_link_t, w);
    if (l->ac && (events & (LOOP_READ | LOOP_ERR | LOOP_HUP))) redisAsyncHandleRead(l->ac);
    if (l->ac && (events & LOOP_WRITE)) redisAsyncHandleWrite(l->ac);
}

static void rdl__attach(rd_link_t *l, redisAsyncContext *ac)
{
    l->ac = ac;
    ac->data = l->c;
    ac->ev.data = l;
    ac->ev.addRead = rdl__add_read;
    ac->ev.delRead = rdl__del_read;
    ac->ev.addWrite = rdl__add_write;
    ac->ev.delWrite = rdl__del_write;
    ac->ev.cleanup = rdl__cleanup;
    rdl__add_write(l); /* the connect completes when the socket is writable */
}

/* Frees l's context unless hiredis is freeing it already. */
static void rdl__free(rd_link_t *l)
{
    if (l->ac && !(l->ac->c.flags & (REDIS_FREEING | REDIS_DISCONNECTING))) redisAsyncFree(l->ac);
}

/* ---- the connection's states ---- */

static void rdc__arm_deadline(rd_conn_t *c)
{
    if (!tw_armed(&c->deadline)) loop_timer(c->r->loop, &c->deadline, c->r->timeout_ms);
}

/* Down: connect again after the backoff (the caller frees the context, or hiredis does). */
static void rdc__down(rd_conn_t *c)
{
    rd_t *r = c->r;
    /* a publish may connect again at once after a connection that was up is lost, then at most
     * every RDC_KICK_MS */
    c->kick_ms = loop_now(r->loop) + (c->state == RDC_UP ? 0 : RDC_KICK_MS);
    c->state = RDC_DOWN;
    c->state_ms = loop_now(r->loop);
    c->resolved = false; /* with sentinels: ask them again */
    if (r->closing) return;
    loop_timer(r->loop, &c->retry, c->backoff_ms);
    c->backoff_ms = c->backoff_ms * 2 > RDC_BACKOFF_MAX_MS ? RDC_BACKOFF_MAX_MS : c->backoff_ms * 2;
}

/* A failure hiredis handles itself (the context goes when the callback returns). Logged every
 * time: attempts are at least 100 ms apart, and 5 s once Redis has been away a while. */
static void rdc__fail(rd_conn_t *c, bool lost, const char *why)
{
    uint32_t wait = c->backoff_ms;
    if (lost)
        log_warn("redis: %s lost (%s:%d: %s); reconnecting in %u ms", c->name, c->host, c->port,
                 why && *why ? why : "closed", wait);
    else
        log_warn("redis: %s connect to %s:%d failed: %s; retrying in %u ms", c->name, c->host, c->port,
                 why && *why ? why : "unknown error", wait);
    c->warned = true;
    rdc__down(c);
}

void rd_conn_drop(rd_conn_t *c, const char *why)
{
    if (why && !c->warned) log_warn("redis: %s: %s:%d %s; connecting again", c->name, c->host, c->port, why);
    if (why) c->warned = true;
    if (c->state != RDC_DOWN) rdc__down(c);
    rdl__free(&c->link);
    rdl__free(&c->slink);
}

static void rdc__up(rd_conn_t *c)
{
    c->state = RDC_UP;
    c->state_ms = loop_now(c->r->loop);
    c->backoff_ms = RDC_BACKOFF_MIN_MS;
    if (c->warned || c->connects == 1)
        log_info("redis: %s %s %s:%d%s", c->name, c->warned ? "connected again to" : "connected to", c->host, c->port,
                 c->r->sentinels[0] ? " (the master the sentinels named)" : "");
    c->warned = false;
    if (c->on_up) c->on_up(c);
}

/* ---- commands ---- */

static void rdc__reply(redisAsyncContext *ac, void *reply, void *priv)
{
    rd_req_t *q = priv;
    rd_conn_t *c = ac->data;
    redisReply *rep = reply;
    list_unlink(&q->link);
    c->ninflight--;
    q->cb(c->r, rep, q);
    /* a master demoted by a failover answers writes with READONLY: find the master again */
    if (rep && rep->type == REDIS_REPLY_ERROR && !c->r->closing && c->state != RDC_DOWN &&
        strncmp(rep->str, "READONLY", 8) == 0)
        rd_conn_drop(c, "answers READONLY (a replica now)");
}

int rd_conn_send(rd_conn_t *c, rd_req_t *q, rd_reply_cb cb, int argc, const char **argv, const size_t *len)
{
    if ((c->state != RDC_CONNECTING && c->state != RDC_UP) || !c->link.ac || c->r->closing ||
        (c->link.ac->c.flags & (REDIS_FREEING | REDIS_DISCONNECTING)))
        return HR_EUNAVAIL;
    if (!c->feed && c->ninflight >= c->r->max_inflight) return HR_EFULL;
    q->cb = cb;
    q->sent_ms = loop_now(c->r->loop);
    if (redisAsyncCommandArgv(c->link.ac, rdc__reply, q, argc, argv, len) != REDIS_OK) return HR_EUNAVAIL;
    list_push_back(&c->inflight, &q->link);
    c->ninflight++;
    rdc__arm_deadline(c);
    return 0;
}

static void rdc__deadline(tw_entry_t *e)
{
    rd_conn_t *c = container_of(e, rd_conn_t, deadline);
    rd_t *r = c->r;
    uint64_t now = loop_now(r->loop), due = UINT64_MAX;
    if (c->state == RDC_RESOLVING || c->state == RDC_CONNECTING) due = c->state_ms + r->timeout_ms;
    if (!list_empty(&c->inflight)) {
        rd_req_t *q = container_of(c->inflight.next, rd_req_t, link);
        if (q->sent_ms + r->timeout_ms < due) due = q->sent_ms + r->timeout_ms;
    }
    if (due == UINT64_MAX) return;
    if (now < due) {
        tw_arm(&r->loop->wheel, e, due);
        return;
    }
    if (c->state == RDC_RESOLVING) { /* that sentinel is silent: its failure moves to the next one */
        log_warn("redis: %s: sentinel %u did not answer within %u ms", c->name, c->sentinel_i + 1, r->timeout_ms);
        rdl__free(&c->slink);
        return;
    }
    c->timeouts++;
    log_warn("redis: %s: no answer from %s:%d within %u ms (%u commands waiting): they fail, connecting again",
             c->name, c->host, c->port, r->timeout_ms, c->ninflight);
    c->warned = true;
    rd_conn_drop(c, NULL);
}

/* ---- handshake ---- */

enum { RDH_AUTH, RDH_SELECT, RDH_ROLE };

typedef struct {
    rd_req_t q;
    rd_conn_t *c;
    int kind;
} rd_hs_t;

static void rdc__hs_reply(rd_t *r, redisReply *rep, rd_req_t *q)
{
    rd_hs_t *h = (rd_hs_t *)q;
    rd_conn_t *c = h->c;
    int kind = h->kind;
    free(h);
    if (r->closing || !rep || c->state != RDC_CONNECTING) return; /* lost: handled where it was lost */
    if (kind != RDH_ROLE && rep->type == REDIS_REPLY_ERROR) {
        if (!c->warned)
            log_error("redis: %s: %s:%d refused %s: %s", c->name, c->host, c->port,
                      kind == RDH_AUTH ? "the credentials (redis_user / redis_password)" : "SELECT (redis_db)",
                      rep->str);
        c->warned = true;
        rd_conn_drop(c, NULL);
        return;
    }
    bool master = rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 && rep->element[0]->type == REDIS_REPLY_STRING &&
                  strcmp(rep->element[0]->str, "master") == 0;
    if (kind == RDH_ROLE && !master) {
        rd_conn_drop(c, "is not a master (yet): asking the sentinels again");
        return;
    }
    if (--c->handshake == 0) rdc__up(c);
}

static void rdc__hs_send(rd_conn_t *c, int kind, int argc, const char **argv)
{
    size_t len[4];
    for (int i = 0; i < argc; i++) len[i] = strlen(argv[i]);
    rd_hs_t *h = malloc(sizeof(*h));
    if (!h) return;
    h->c = c;
    h->kind = kind;
    if (rd_conn_send(c, &h->q, rdc__hs_reply, argc, argv, len) < 0) {
        free(h);
        return;
    }
    c->handshake++;
}

static void rdc__handshake(rd_conn_t *c)
{
    rd_t *r = c->r;
    c->handshake = 0;
    if (r->password[0]) {
        const char *a[] = {"AUTH", r->user, r->password};
        if (r->user[0]) rdc__hs_send(c, RDH_AUTH, 3, a);
        else rdc__hs_send(c, RDH_AUTH, 2, (const char *[]){"AUTH", r->password});
    }
    if (r->db) {
        char db[16];
        snprintf(db, sizeof(db), "%u", r->db);
        rdc__hs_send(c, RDH_SELECT, 2, (const char *[]){"SELECT", db});
    }
    if (r->sentinels[0]) rdc__hs_send(c, RDH_ROLE, 1, (const char *[]){"ROLE"});
}

/* ---- connecting ---- */

static void rdc__on_connect(const redisAsyncContext *ac, int status)
{
    rd_conn_t *c = ac->data;
    if (c->r->closing || ac != c->link.ac) return;
    if (status != REDIS_OK) { /* hiredis frees it next */
        rdc__fail(c, false, ac->errstr);
        return;
    }
    if (!c->handshake && c->state == RDC_CONNECTING) rdc__up(c);
}

static void rdc__on_disconnect(const redisAsyncContext *ac, int status)
{
    rd_conn_t *c = ac->data;
    if (c->r->closing || c->state == RDC_DOWN) return; /* dropped by us */
    rdc__fail(c, true, status == REDIS_OK ? "closed by the server" : ac->errstr);
}

static void rdc__connect(rd_conn_t *c)
{
    rd_t *r = c->r;
    redisAsyncContext *ac = redisAsyncConnect(c->host, c->port);
    c->connects++;
    if (!ac || ac->err) {
        rdc__fail(c, false, ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        return;
    }
    c->state = RDC_CONNECTING;
    c->state_ms = loop_now(r->loop);
    rdl__attach(&c->link, ac);
    redisAsyncSetConnectCallback(ac, rdc__on_connect);
    redisAsyncSetDisconnectCallback(ac, rdc__on_disconnect);
    rdc__handshake(c);
    rdc__arm_deadline(c);
}

/* ---- Sentinel ---- */

static void rdc__ask(rd_conn_t *c);

static void rdc__s_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    rd_conn_t *c = priv;
    redisReply *rep = reply;
    if (c->r->closing || c->state != RDC_RESOLVING) return;
    c->resolved = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
                  rep->element[0]->type == REDIS_REPLY_STRING && rep->element[1]->type == REDIS_REPLY_STRING &&
                  rep->element[0]->len < sizeof(c->host);
    if (c->resolved) {
        memcpy(c->host, rep->element[0]->str, rep->element[0]->len + 1);
        c->port = atoi(rep->element[1]->str);
    } else {
        c->sentinel_i++;
    }
    if (rep) redisAsyncFree(ac); /* when this callback returns; a NULL reply: hiredis is freeing it */
    loop_timer(c->r->loop, &c->step, 0);
}

static void rdc__s_connect(const redisAsyncContext *ac, int status)
{
    (void)ac, (void)status; /* a failure fails the pending SENTINEL command (rdc__s_reply) */
}

static void rdc__ask(rd_conn_t *c)
{
    rd_t *r = c->r;
    char host[256];
    int port;
    if (!rdc__nth_addr(r->sentinels, c->sentinel_i, host, sizeof(host), &port)) {
        if (!c->warned) log_warn("redis: %s: no sentinel named a master '%s'; retrying", c->name, r->master);
        c->warned = true;
        rdc__down(c);
        return;
    }
    c->state = RDC_RESOLVING;
    c->state_ms = loop_now(r->loop);
    c->resolved = false;
    redisAsyncContext *ac = redisAsyncConnect(host, port);
    if (!ac || ac->err) {
        if (ac) redisAsyncFree(ac);
        c->sentinel_i++;
        rdc__ask(c);
        return;
    }
    rdl__attach(&c->slink, ac);
    redisAsyncSetConnectCallback(ac, rdc__s_connect);
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", r->master};
    size_t len[] = {8, 23, strlen(r->master)};
    if (redisAsyncCommandArgv(ac, rdc__s_reply, c, 3, argv, len) != REDIS_OK) {
        redisAsyncFree(ac);
        c->sentinel_i++;
        rdc__ask(c);
        return;
    }
    rdc__arm_deadline(c);
}

static void rdc__step(tw_entry_t *e)
{
    rd_conn_t *c = container_of(e, rd_conn_t, step);
    if (c->state != RDC_RESOLVING || c->r->closing) return;
    if (c->resolved) rdc__connect(c);
    else rdc__ask(c);
}

void rd_conn_start(rd_conn_t *c)
{
    rd_t *r = c->r;
    if (r->closing) return;
    if (r->sentinels[0] && !c->resolved) { /* (at start-up, rd_boot just asked them) */
        c->sentinel_i = 0;
        rdc__ask(c);
        return;
    }
    if (!r->sentinels[0]) {
        snprintf(c->host, sizeof(c->host), "%s", r->host);
        c->port = r->port;
    }
    rdc__connect(c);
}

static void rdc__retry(tw_entry_t *e) { rd_conn_start(container_of(e, rd_conn_t, retry)); }

void rd_conn_kick(rd_conn_t *c)
{
    if (c->state != RDC_DOWN || c->r->closing || loop_now(c->r->loop) < c->kick_ms) return;
    tw_stop(&c->r->loop->wheel, &c->retry);
    rd_conn_start(c);
}

void rd_conn_init(rd_t *r, rd_conn_t *c, const char *name, bool feed, void (*on_up)(rd_conn_t *c))
{
    memset(c, 0, sizeof(*c));
    c->r = r;
    c->name = name;
    c->feed = feed;
    c->on_up = on_up;
    c->link.c = c->slink.c = c;
    c->link.w.cb = c->slink.w.cb = rdl__on_io;
    c->link.w.fd = c->slink.w.fd = -1;
    c->backoff_ms = RDC_BACKOFF_MIN_MS;
    list_init(&c->inflight);
    tw_entry_init(&c->retry, rdc__retry);
    tw_entry_init(&c->deadline, rdc__deadline);
    tw_entry_init(&c->step, rdc__step);
}

void rd_conn_close(rd_conn_t *c)
{
    tw_t *w = &c->r->loop->wheel;
    tw_stop(w, &c->retry);
    tw_stop(w, &c->deadline);
    tw_stop(w, &c->step);
    c->state = RDC_DOWN;
    rdl__free(&c->link);
    rdl__free(&c->slink);
}

/* ---- blocking, at start-up and shut-down only ---- */

static redisReply *rdb__cmd(redisContext *c, int argc, const char **argv)
{
    size_t len[4];
    for (int i = 0; i < argc; i++) len[i] = strlen(argv[i]);
    return redisCommandArgv(c, argc, argv, len);
}

redisContext *rd_boot_connect(rd_t *r, const char *host, int port, uint32_t timeout_ms, char *err, size_t errcap)
{
    struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) {
        snprintf(err, errcap, "cannot connect to redis at %s:%d: %s", host, port, c ? c->errstr : "out of memory");
        if (c) redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    redisReply *rep = NULL;
    if (r->password[0]) {
        rep = r->user[0] ? rdb__cmd(c, 3, (const char *[]){"AUTH", r->user, r->password})
                         : rdb__cmd(c, 2, (const char *[]){"AUTH", r->password});
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            snprintf(err, errcap, "redis at %s:%d refused the credentials (AUTH%s%s): %s", host, port,
                     r->user[0] ? " as user " : "", r->user, rep ? rep->str : c->errstr);
            goto fail;
        }
        freeReplyObject(rep);
    }
    if (r->db) {
        char db[16];
        snprintf(db, sizeof(db), "%u", r->db);
        rep = rdb__cmd(c, 2, (const char *[]){"SELECT", db});
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            snprintf(err, errcap, "redis at %s:%d: SELECT %u (redis_db) failed: %s", host, port, r->db,
                     rep ? rep->str : c->errstr);
            goto fail;
        }
        freeReplyObject(rep);
    }
    rep = rdb__cmd(c, 1, (const char *[]){"PING"});
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        bool noauth = rep && strncmp(rep->str, "NOAUTH", 6) == 0;
        snprintf(err, errcap, "redis at %s:%d %s: %s", host, port,
                 noauth ? "wants a password (set redis_password or redis_password_file)" : "refused PING",
                 rep ? rep->str : c->errstr);
        goto fail;
    }
    freeReplyObject(rep);
    return c;
fail:
    if (rep) freeReplyObject(rep);
    redisFree(c);
    return NULL;
}

int rd_boot(rd_t *r, char *err, size_t errcap)
{
    char host[256];
    int port = r->port;
    snprintf(host, sizeof(host), "%s", r->host);
    if (r->sentinels[0]) {
        bool found = false;
        char sh[256];
        int sp;
        for (uint32_t i = 0; !found && rdc__nth_addr(r->sentinels, i, sh, sizeof(sh), &sp); i++) {
            struct timeval tv = {(time_t)(r->timeout_ms / 1000), (suseconds_t)(r->timeout_ms % 1000) * 1000};
            redisContext *s = redisConnectWithTimeout(sh, sp, tv);
            if (!s || s->err) {
                log_warn("redis: sentinel %s:%d: %s", sh, sp, s ? s->errstr : "out of memory");
                if (s) redisFree(s);
                continue;
            }
            redisSetTimeout(s, tv);
            redisReply *rep = rdb__cmd(s, 3, (const char *[]){"SENTINEL", "get-master-addr-by-name", r->master});
            if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
                rep->element[0]->type == REDIS_REPLY_STRING && rep->element[0]->len < sizeof(host)) {
                snprintf(host, sizeof(host), "%s", rep->element[0]->str);
                port = atoi(rep->element[1]->str);
                found = true;
            } else {
                log_warn("redis: sentinel %s:%d does not know master '%s'%s%s", sh, sp, r->master,
                         rep && rep->type == REDIS_REPLY_ERROR ? ": " : "",
                         rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "");
            }
            if (rep) freeReplyObject(rep);
            redisFree(s);
        }
        if (!found) {
            snprintf(err, errcap, "no sentinel of '%s' named a master '%s' (redis_sentinel, redis_master_name)",
                     r->sentinels, r->master);
            return HR_EUNAVAIL;
        }
        log_info("redis: the sentinels name %s:%d as master '%s'", host, port, r->master);
    }
    redisContext *c = rd_boot_connect(r, host, port, r->timeout_ms, err, errcap);
    if (!c) return HR_EUNAVAIL;
    if (r->sentinels[0]) {
        redisReply *rep = rdb__cmd(c, 1, (const char *[]){"ROLE"});
        bool master = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
                      rep->element[0]->type == REDIS_REPLY_STRING && strcmp(rep->element[0]->str, "master") == 0;
        if (rep) freeReplyObject(rep);
        if (!master) {
            snprintf(err, errcap, "%s:%d, named master by the sentinels, is not a master", host, port);
            redisFree(c);
            return HR_EUNAVAIL;
        }
    }
    r->boot = c;
    rd_conn_t *conns[] = {&r->cmd, &r->feed}; /* they start with this master */
    for (int i = 0; i < 2; i++) {
        snprintf(conns[i]->host, sizeof(conns[i]->host), "%s", host);
        conns[i]->port = port;
        conns[i]->resolved = true;
    }
    return 0;
}

redisContext *rd_boot_master(rd_t *r, uint32_t timeout_ms, char *err, size_t errcap)
{
    const char *host = r->cmd.port ? r->cmd.host : r->host;
    int port = r->cmd.port ? r->cmd.port : r->port;
    if (!port) {
        snprintf(err, errcap, "no redis master known");
        return NULL;
    }
    return rd_boot_connect(r, host, port, timeout_ms, err, errcap);
}
