/* publish.c - the HTTP publish routes (see publish.h): POST /pub/{channel} and the multi-target
 * POST /publish, with idempotent retries.
 *
 * A request becomes one pub_req_t: its targets (channel, and user id for user targets) and, per
 * target, what happened. Targets are published in order with hub_publish_async(req); the hub
 * reports a caller's publishes in the order they were made (one pending queue, completed in
 * order, as /ws relies on too), so each report goes to the next target still waiting. When none
 * waits any more the answer is built, remembered under the idempotency key (only if something
 * was published: a retry of a request that published nothing publishes again), and sent.
 *
 * Idempotency and the store: with a local store that commits a loop iteration's writes together
 * (LMDB), the record goes into the store in the same iteration as the publishes (so the same
 * commit: after a crash both or neither exist), with the ids already assigned but not yet the
 * subscriber counts; the complete answer replaces it in the next commit.
 *
 * Idempotency and a shared engine (engine = redis): keys are the cluster's. This node's table
 * answers first (a replay or a 409 it knows of); otherwise the request claims its key in the
 * engine (engine_t.idem_claim) and waits, parked, holding a copy of what it publishes (the
 * request's buffer is gone by then). A claim won publishes as above and stores the final answer
 * there (idem_settle), or frees the key when nothing was published (idem_release); a key held
 * by another request is a 409, a stored answer is replayed (and kept in this node's table); no
 * answer from the engine is a 503: publishing then could publish twice. */
#include "publish.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/err.h"
#include "../core/log.h"
#include "../core/textbuf.h"
#include "pubreq.h"

enum { PT_FAILED = 0, PT_WAITING, PT_DONE };

typedef struct {
    uint8_t state;     /* PT_* */
    bool user;
    bool broadcast; /* the broadcast target (broadcast_channel) */
    int rc;            /* PT_FAILED: why (HR_E*) */
    uint64_t id;       /* PT_DONE: its id; PT_WAITING: the id assigned (local stores) or 0 */
    uint32_t reached;
    const char *user_id, *chan; /* NUL-terminated, in the request's own block */
    uint16_t user_len, chan_len;
} pub_target_t;

typedef struct {
    list_node_t link;  /* in publish_t.live */
    app_t *app;
    http_conn_t *hc;   /* NULL once its connection closed */
    idem_entry_t *idem;
    bool single;       /* POST /pub/{channel}: the one-object answer */
    bool claiming;     /* waiting for the shared engine's claim of the key */
    bool shared;       /* the key is claimed in the shared engine: settle or release it at the end */
    char *held;        /* while claiming: the event, then the data (copied) */
    size_t held_en, held_dn;
    uint32_t held_ttl;
    uint32_t n, next, waiting;
    pub_target_t t[];  /* then the names */
} pub_req_t;

/* ---- answers ---- */

static const char *pub__error_text(const app_t *app, int rc)
{
    bool redis = app->xp.hub->engine != NULL;
    return rc == HR_EFORBIDDEN                ? "forbidden"
           : rc == HR_EUNAVAIL && redis       ? "publish failed: redis is unavailable"
           : rc == HR_EUNAVAIL                ? "publish failed: the store is unavailable"
           : rc == HR_ESTOREFULL              ? "publish failed: the store is full"
           : rc == HR_EHISTFULL               ? "publish failed: history memory is full (max_history_memory), or the "
                                                "STOMP queue is full (stomp_queue_max)"
           : rc == HR_EFULL                   ? "publish failed: too many channels (max_channels) or STOMP queues "
                                                "(stomp_max_queues)"
                                              : "publish failed";
}

/* The answer of r; provisional: written with the publishes, before they completed (targets
 * still waiting show their assigned id and no subscriber count). With a shared engine
 * (engine = redis) "subscribers" counts this node's subscribers only, and says so with
 * "subscribers_scope":"node" (the other nodes deliver from their feeds). Returns the HTTP status. */
static int pub__answer(const pub_req_t *r, jbuf_t *b, bool provisional)
{
    const char *scope = r->app->xp.hub->engine ? ",\"subscribers_scope\":\"node\"" : "";
    if (r->single) {
        const pub_target_t *t = &r->t[0];
        if (t->state == PT_FAILED) {
            jb_fmt(b, "{\"error\":\"%s\"}", pub__error_text(r->app, t->rc));
            return http_status_for(t->rc);
        }
        jb_fmt(b, "{\"id\":\"%" PRIu64 "\",\"channel\":", t->id);
        jb_str(b, t->chan, t->chan_len);
        if (!provisional || t->state == PT_DONE) jb_fmt(b, ",\"subscribers\":%u%s", t->reached, scope);
        jb_put(b, "}", 1);
        return 200;
    }
    jb_put(b, "{\"results\":[", 12);
    for (uint32_t i = 0; i < r->n; i++) {
        const pub_target_t *t = &r->t[i];
        jb_put(b, i ? ",{" : "{", i ? 2 : 1);
        if (t->user) {
            jb_put(b, "\"user\":", 7);
            jb_str(b, t->user_id, t->user_len);
            jb_put(b, ",", 1);
        }
        if (t->broadcast) jb_put(b, "\"broadcast\":true,", 17);
        jb_put(b, "\"channel\":", 10);
        jb_str(b, t->chan, t->chan_len);
        if (t->state == PT_FAILED)
            jb_fmt(b, ",\"error\":{\"status\":%d,\"message\":\"%s\"}}", http_status_for(t->rc),
                   pub__error_text(r->app, t->rc));
        else if (t->state == PT_DONE)
            jb_fmt(b, ",\"id\":\"%" PRIu64 "\",\"subscribers\":%u%s}", t->id, t->reached, scope);
        else
            jb_fmt(b, ",\"id\":\"%" PRIu64 "\"}", t->id);
    }
    jb_put(b, "]}", 2);
    return 200;
}

static void pub__free(pub_req_t *r)
{
    list_unlink(&r->link);
    free(r->held);
    free(r);
}

/* r's key claimed in the shared engine: stores the final answer body[0..n) there (body NULL:
 * out of memory, the key stays claimed until its lease ends), or frees the key when nothing was
 * published. */
static void pub__settle_shared(pub_req_t *r, bool published, uint16_t status, const char *body, size_t n)
{
    engine_t *eng = r->app->xp.hub->engine;
    idem_t *t = &r->app->pub->idem;
    idem_entry_t *e = r->idem;
    if (!published) {
        eng->ops->idem_release(eng, e->key, e->klen);
        return;
    }
    uint8_t *v = body ? malloc(IDEM_REC_HEAD + n) : NULL;
    if (!v) return; /* retries get 409 until the lease ends, rather than publishing again now */
    idem_rec_t rec = {e->made_ms, status, true, body, n};
    idem_rec_encode(v, &rec);
    uint64_t now = loop_wall_ms(), end = e->made_ms + t->window_ms;
    eng->ops->idem_settle(eng, e->key, e->klen, v, IDEM_REC_HEAD + n, end > now ? end - now : 1);
    free(v);
}

/* Every target of r completed: remember and send the answer. */
static void pub__finish(pub_req_t *r)
{
    publish_t *p = r->app->pub;
    jbuf_t b = {0};
    int status = pub__answer(r, &b, false);
    uint32_t ok = 0;
    for (uint32_t i = 0; i < r->n; i++) ok += r->t[i].state == PT_DONE;
    if (r->idem && r->shared) pub__settle_shared(r, ok > 0, (uint16_t)status, b.oom ? NULL : b.p, b.n);
    if (r->idem) {
        if (ok && !b.oom) idem_finish(&p->idem, r->idem, (uint16_t)status, b.p, b.n);
        else idem_forget(&p->idem, r->idem);
        r->idem = NULL;
    }
    if (r->hc) {
        if (b.oom) http_error(r->hc, HR_ENOMEM, "out of memory");
        else http_respond(r->hc, status, "application/json", b.p, b.n, "");
    }
    free(b.p);
    pub__free(r);
}

/* hub_done_cb: the next waiting target of r completed. */
static void pub__done(void *arg, int rc, const msg_t *m, uint32_t reached)
{
    pub_req_t *r = arg;
    while (r->next < r->n && r->t[r->next].state != PT_WAITING) r->next++;
    if (r->next == r->n) return; /* cannot happen: one report per waiting target */
    pub_target_t *t = &r->t[r->next++];
    if (rc < 0) {
        t->state = PT_FAILED;
        t->rc = rc;
    } else {
        t->state = PT_DONE;
        t->id = m->id;
        t->reached = reached;
    }
    if (--r->waiting == 0) pub__finish(r);
}

static void pub__close(http_conn_t *hc)
{
    pub_req_t *r = hc->xstate;
    /* the retry the client is about to make must find the answer: finish unanswered (a claim
     * still waiting is answered first, so that a key won is freed again, see pub__claimed) */
    if (r->idem) {
        r->hc = NULL;
        return;
    }
    hub_cancel(r->app->xp.hub, r); /* gone before its answer: the publishes complete unanswered */
    pub__free(r);
}

static const http_xport_ops_t pub__ops = {.on_close = pub__close};

/* ---- requests ---- */

/* A new request of n targets whose names take names bytes (NUL included). */
static pub_req_t *pub__new(app_t *app, http_conn_t *hc, uint32_t n, size_t names)
{
    pub_req_t *r = calloc(1, sizeof(*r) + n * sizeof(pub_target_t) + names);
    if (!r) return NULL;
    r->app = app;
    r->hc = hc;
    r->n = n;
    list_init(&r->link);
    return r;
}

/* The idempotency record of key[0..kn) for who: answers a replay (stored answer) or a retry in
 * flight (409) itself and returns false; else true with *e the new pending record (NULL when
 * there is no key, idempotency is off, or out of memory). */
static bool pub__idem(app_t *app, http_conn_t *hc, const auth_id_t *who, const char *key, size_t kn,
                      idem_entry_t **e)
{
    idem_t *t = &app->pub->idem;
    *e = NULL;
    if (!key || !t->window_ms) return true;
    char scope[ACL_MAX_SUB + 8], full[ACL_MAX_SUB + PUBREQ_MAX_KEY + 16];
    size_t sn = auth_scope(who, scope, sizeof(scope));
    size_t fn = idem_key(full, sizeof(full), scope, sn, key, kn);
    uint64_t now = loop_wall_ms();
    idem_entry_t *old = fn ? idem_find(t, full, fn, now) : NULL;
    if (old && old->state == IDEM_DONE) {
        t->replays++;
        http_respond(hc, old->status, "application/json", old->body, old->body_len, "Idempotent-Replay: true\r\n");
        return false;
    }
    if (old) {
        t->conflicts++;
        static const char busy[] = "{\"error\":\"a request with this idempotency key is in flight: retry later\"}";
        http_respond(hc, 409, "application/json", busy, sizeof(busy) - 1, "Retry-After: 1\r\n");
        return false;
    }
    if (fn) *e = idem_begin(t, full, fn, now);
    return true;
}

/* Publishes every allowed target of r (the others are PT_FAILED already), then answers at once
 * when nothing waits, or parks the request. */
static void pub__publish(pub_req_t *r, const char *event, size_t en, const void *data, size_t dn, uint32_t ttl)
{
    app_t *app = r->app;
    hub_t *hub = app->xp.hub;
    bool local = hub->engine == NULL; /* ids are assigned at once, the store commits */
    for (uint32_t i = 0; i < r->n; i++) {
        pub_target_t *t = &r->t[i];
        if (t->state == PT_FAILED) continue;
        hub_pubopt_t o = {.flags = MSG_FROM_HTTP, .expiry_s = ttl};
        int rc = hub_publish_async(hub, t->chan, t->chan_len, event, en, data, dn, &o, pub__done, r);
        if (rc < 0) {
            t->state = PT_FAILED;
            t->rc = rc;
            continue;
        }
        t->state = PT_WAITING;
        r->waiting++;
        chan_t *ch = local ? hub_channel(hub, t->chan, t->chan_len, false) : NULL;
        t->id = ch ? ch->next_id - 1 : 0;
    }
    list_push_back(&app->pub->live, &r->link);
    if (!r->waiting) {
        pub__finish(r);
        return;
    }
    if (r->idem && local) { /* into the same commit as the messages */
        jbuf_t b = {0};
        int status = pub__answer(r, &b, true);
        if (!b.oom) idem_write(&app->pub->idem, r->idem, (uint16_t)status, b.p, b.n, false);
        free(b.p);
    }
    /* answered once the store has committed them: the request waits, pipelined ones behind it */
    http_park(r->hc, &pub__ops, r, XP_HTTP);
}

/* engine_idem_cb: the shared engine answered r's claim of its key. */
static void pub__claimed(void *arg, int rc, const void *rec, size_t n)
{
    pub_req_t *r = arg;
    app_t *app = r->app;
    idem_t *t = &app->pub->idem;
    engine_t *eng = app->xp.hub->engine;
    idem_rec_t x;
    r->claiming = false;
    if (rc == ENGINE_IDEM_NEW && r->hc) {
        r->shared = true;
        list_unlink(&r->link); /* pub__publish links it again */
        pub__publish(r, r->held, r->held_en, r->held + r->held_en, r->held_dn, r->held_ttl);
        return;
    }
    if (rc == ENGINE_IDEM_NEW) { /* its client is gone before anything was published: free the key */
        eng->ops->idem_release(eng, r->idem->key, r->idem->klen);
        idem_forget(t, r->idem);
    } else if (rc == ENGINE_IDEM_DONE && idem_rec_decode(rec, n, &x) == 0) {
        t->replays++;
        if (r->hc)
            http_respond(r->hc, x.status, "application/json", x.body, x.body_len, "Idempotent-Replay: true\r\n");
        if (idem_finish(t, r->idem, x.status, x.body, x.body_len) == 0)
            r->idem->made_ms = x.made_ms; /* kept here until the window of the first request ends */
    } else if (rc == ENGINE_IDEM_BUSY) {
        t->conflicts++;
        idem_forget(t, r->idem);
        static const char busy[] = "{\"error\":\"a request with this idempotency key is in flight: retry later\"}";
        if (r->hc) http_respond(r->hc, 409, "application/json", busy, sizeof(busy) - 1, "Retry-After: 1\r\n");
    } else {
        idem_forget(t, r->idem);
        if (r->hc) http_error(r->hc, HR_EUNAVAIL, "idempotency store unavailable");
    }
    r->idem = NULL;
    pub__free(r);
}

/* With a shared engine that keeps idempotency keys, claims r's key there first (r parks until
 * it is answered: pub__claimed); else publishes at once. */
static void pub__run(pub_req_t *r, const char *event, size_t en, const void *data, size_t dn, uint32_t ttl)
{
    app_t *app = r->app;
    engine_t *eng = app->xp.hub->engine;
    if (!r->idem || !eng || !eng->ops->idem_claim) {
        pub__publish(r, event, en, data, dn, ttl);
        return;
    }
    int rc = HR_ENOMEM;
    if ((r->held = malloc(en + dn + 1))) {
        memcpy(r->held, event, en);
        if (dn) memcpy(r->held + en, data, dn);
        r->held_en = en;
        r->held_dn = dn;
        r->held_ttl = ttl;
        rc = eng->ops->idem_claim(eng, r->idem->key, r->idem->klen, app->pub->idem.window_ms, pub__claimed, r);
    }
    if (rc < 0) {
        idem_forget(&app->pub->idem, r->idem);
        r->idem = NULL;
        if (rc == HR_ENOMEM) http_error(r->hc, HR_ENOMEM, "out of memory");
        else http_error(r->hc, HR_EUNAVAIL, "idempotency store unavailable");
        pub__free(r);
        return;
    }
    r->claiming = true;
    list_push_back(&app->pub->live, &r->link);
    http_park(r->hc, &pub__ops, r, XP_HTTP);
}

/* The Idempotency-Key header into *key (NULL when absent); false (answered 400) when invalid. */
static bool pub__key_header(http_conn_t *hc, http_req_t *req, const char **key, size_t *kn)
{
    span_t h = http_req_header(req, "Idempotency-Key");
    *key = h.p;
    *kn = h.n;
    if (h.p && !pubreq_key_valid(h.p, h.n)) {
        http_error(hc, HR_EINVAL, "invalid Idempotency-Key (1-128 printable ASCII characters)");
        return false;
    }
    return true;
}

static bool pub__query_ok(http_conn_t *hc, http_req_t *req, const char *const *known)
{
    char bad[72], why[96];
    if (pubreq_query_check(req->query, known, bad, sizeof(bad)) == 0) return true;
    snprintf(why, sizeof(why), "unknown parameter: %s", bad);
    http_error(hc, HR_EINVAL, why);
    return false;
}

/* ---- scheduled publishes (delay, at: sched.h) ---- */

/* When ?delay= or ?at= are given: *due_ms (wall) and true; false answered 400 itself. *due_ms = 0
 * when neither is given. */
static bool pub__when_query(http_conn_t *hc, http_req_t *req, uint64_t *due_ms)
{
    char v[64];
    *due_ms = 0;
    ssize_t dn = http_req_query(req, "delay", v, sizeof(v));
    ssize_t an = http_req_query(req, "at", v + 32, 32);
    uint32_t delay;
    if (dn != HR_ENOTFOUND && an != HR_ENOTFOUND) {
        http_error(hc, HR_EINVAL, "give delay or at, not both");
        return false;
    }
    if (dn != HR_ENOTFOUND) {
        if (dn < 0 || dn >= 32 || pubreq_delay_text(v, (size_t)dn, &delay) < 0) {
            http_error(hc, HR_EINVAL, "delay must be an integer number of seconds (1-31536000)");
            return false;
        }
        *due_ms = loop_wall_ms() + (uint64_t)delay * 1000;
    } else if (an != HR_ENOTFOUND && (an < 0 || pubreq_at_text(v + 32, (size_t)an, due_ms) < 0)) {
        http_error(hc, HR_EINVAL, "at must be an RFC 3339 date-time or epoch seconds");
        return false;
    }
    return true;
}

/* "2026-12-06T09:00:00.000Z" */
static void pub__rfc3339(uint64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03uZ", (unsigned)(ms % 1000));
}

/* Schedules one target; appends its JSON (the members after "{") to b. Returns 0 or HR_E*. */
static int pub__schedule_one(app_t *app, jbuf_t *b, const char *chan, size_t cn, const char *event, size_t en,
                             const void *data, size_t dn, uint32_t ttl, uint64_t due)
{
    uint64_t id;
    int rc = sched_add(&app->pub->sched, chan, cn, event, en, data, dn, ttl, due, &id);
    if (rc < 0) return rc;
    char at[40];
    pub__rfc3339(due, at, sizeof(at));
    jb_fmt(b, "\"scheduled\":\"%" PRIu64 "\",\"at\":\"%s\"", id, at);
    return 0;
}

static const char *pub__sched_error(int rc)
{
    return rc == HR_EFULL ? "too many scheduled publishes (max_scheduled)" : "scheduling failed";
}

/* POST /pub/{channel}?delay=|at=: 202 {"scheduled":"ID","at":"..."} (or 503 at max_scheduled). */
static void pub__schedule_channel(app_t *app, http_conn_t *hc, const char *chan, size_t cn, const char *event,
                                  size_t en, span_t body, uint32_t ttl, uint64_t due)
{
    jbuf_t b = {0};
    jb_put(&b, "{", 1);
    int rc = pub__schedule_one(app, &b, chan, cn, event, en, body.p, body.n, ttl, due);
    jb_put(&b, "}", 1);
    if (rc < 0) http_error(hc, rc == HR_EFULL ? HR_EUNAVAIL : rc, pub__sched_error(rc));
    else if (b.oom) http_error(hc, HR_ENOMEM, "out of memory");
    else http_respond(hc, 202, "application/json", b.p, b.n, "");
    free(b.p);
}

int publish_schedule_cb(void *arg, const char *ch, size_t cn, const char *ev, size_t en, const void *d, size_t dn,
                        uint32_t ttl, int64_t delay, const char *at, size_t at_n, int64_t at_num, char *out,
                        size_t cap)
{
    publish_t *p = arg;
    uint64_t due = 0;
    const char *why = NULL;
    if (delay >= 0 && (at || at_num)) why = "give delay or at, not both";
    else if (delay >= 0 && (delay < 1 || delay > PUBREQ_MAX_DELAY))
        why = "delay must be an integer number of seconds (1-31536000)";
    else if (delay >= 0) due = loop_wall_ms() + (uint64_t)delay * 1000;
    else if (at && pubreq_at_text(at, at_n, &due) < 0) why = "at must be an RFC 3339 date-time or epoch seconds";
    else if (!at && (at_num <= 0 || at_num >= 253402300800)) why = "at must be an RFC 3339 date-time or epoch seconds";
    else if (!at) due = (uint64_t)at_num * 1000;
    if (why) {
        snprintf(out, cap, "%s", why);
        return HR_EINVAL;
    }
    uint64_t id;
    int rc = sched_add(&p->sched, ch, cn, ev, en, d, dn, ttl, due, &id);
    if (rc < 0) {
        snprintf(out, cap, "%s", pub__sched_error(rc));
        return rc;
    }
    char when[40];
    pub__rfc3339(due, when, sizeof(when));
    snprintf(out, cap, "\"scheduled\":\"%" PRIu64 "\",\"at\":\"%s\"", id, when);
    return 0;
}

void publish_schedules(app_t *app, http_conn_t *hc, http_req_t *req, span_t rest)
{
    if (!span_eq(req->method, "DELETE")) {
        http_method_not_allowed(hc, "DELETE", "use DELETE to cancel a scheduled publish");
        return;
    }
    uint32_t id32 = 0;
    uint64_t id = 0;
    char idt[24];
    ssize_t n = http_pct_decode(rest.p, rest.n, idt, sizeof(idt));
    if (n > 0 && n <= 10 && pubreq_ttl_text(idt, (size_t)n, &id32) == 0) id = id32;
    if (!xp_require_admin(&app->xp, hc, req, "cancel scheduled publishes", NULL, 0)) return;
    if (!id || sched_cancel(&app->pub->sched, id) < 0) http_error(hc, HR_ENOTFOUND, "no such scheduled publish");
    else http_respond(hc, 204, NULL, NULL, 0, "");
}

void publish_channel(app_t *app, http_conn_t *hc, http_req_t *req, span_t rest, span_t body)
{
    if (!span_eq(req->method, "POST") && !span_eq(req->method, "PUT")) {
        http_method_not_allowed(hc, "POST, PUT", "use POST to publish");
        return;
    }
    static const char *const KNOWN[] = {"event", "token", "ttl", "delay", "at", NULL};
    if (!pub__query_ok(hc, req, KNOWN)) return;
    uint32_t ttl = 0;
    char ttls[16];
    ssize_t tn = http_req_query(req, "ttl", ttls, sizeof(ttls));
    if (tn != HR_ENOTFOUND && (tn < 0 || pubreq_ttl_text(ttls, (size_t)tn, &ttl) < 0)) {
        http_error(hc, HR_EINVAL, "ttl must be an integer number of seconds (1-315360000)");
        return;
    }
    uint64_t due = 0;
    if (!pub__when_query(hc, req, &due)) return;
    char chan[HUB_MAX_CHANNEL + 1];
    ssize_t cn = http_pct_decode(rest.p, rest.n, chan, sizeof(chan));
    if (cn < 0 || !hub_channel_valid(chan, (size_t)cn)) {
        http_error(hc, HR_ECHANNEL, "invalid channel name");
        return;
    }
    char event[HUB_MAX_EVENT + 1] = "message";
    ssize_t en = http_req_query(req, "event", event, sizeof(event));
    if (en == HR_ENOTFOUND) {
        span_t h = http_req_header(req, "X-Event");
        if (h.p && h.n < sizeof(event)) {
            memcpy(event, h.p, h.n);
            event[h.n] = 0;
            en = (ssize_t)h.n;
        } else {
            en = h.p ? HR_EINVAL : 7;
        }
    }
    if (en < 0 || !hub_event_valid(event, (size_t)en)) {
        http_error(hc, HR_EINVAL, "invalid event name (1-64 of A-Z a-z 0-9 _ - . :)");
        return;
    }
    const char *key;
    size_t kn;
    if (!pub__key_header(hc, req, &key, &kn)) return;
    auth_id_t *who = xp_auth_request(&app->xp, hc, req);
    if (!who) return;
    bool ok = auth_can_publish(who, chan, (size_t)cn);
    if (!ok) xp_deny_http(&app->xp, hc, who, "publish to", chan, (size_t)cn);
    if (ok && due) { /* scheduled: published at due, its id assigned then */
        auth_unref(who);
        if (key) http_error(hc, HR_EINVAL, "idempotency keys are not supported with delay or at");
        else pub__schedule_channel(app, hc, chan, (size_t)cn, event, (size_t)en, body, ttl, due);
        return;
    }
    idem_entry_t *e = NULL;
    if (ok) ok = pub__idem(app, hc, who, key, kn, &e);
    auth_unref(who);
    if (!ok) return;
    pub_req_t *r = pub__new(app, hc, 1, (size_t)cn + 1);
    if (!r) {
        if (e) idem_forget(&app->pub->idem, e);
        http_error(hc, HR_ENOMEM, "out of memory");
        return;
    }
    char *names = (char *)&r->t[1];
    memcpy(names, chan, (size_t)cn + 1);
    r->t[0] = (pub_target_t){.state = PT_WAITING, .chan = names, .chan_len = (uint16_t)cn};
    r->single = true;
    r->idem = e;
    pub__run(r, event, (size_t)en, body.p, body.n, ttl);
}

/* Builds the request of q (user targets mapped to their channels) with the access check of each
 * target; answers the refusal itself and returns NULL when who may publish to none of them. */
static pub_req_t *pub__targets(app_t *app, http_conn_t *hc, const pubreq_t *q, const auth_id_t *who)
{
    size_t names = 0;
    for (uint32_t i = 0; i < q->n; i++) names += HUB_MAX_CHANNEL + 1 + (q->t[i].user ? q->t[i].n + 1 : 0);
    pub_req_t *r = pub__new(app, hc, q->n, names);
    if (!r) {
        http_error(hc, HR_ENOMEM, "out of memory");
        return NULL;
    }
    char *at = (char *)&r->t[q->n];
    uint32_t allowed = 0;
    for (uint32_t i = 0; i < q->n; i++) {
        pub_target_t *t = &r->t[i];
        t->user = q->t[i].user;
        t->broadcast = q->t[i].broadcast;
        if (t->broadcast) {
            const char *bc = app->xp.cfg->broadcast_channel;
            if (!bc[0]) {
                free(r);
                http_error(hc, HR_EINVAL, "broadcast is off (broadcast_channel is empty)");
                return NULL;
            }
            t->chan_len = (uint16_t)strlen(bc);
            memcpy(at, bc, t->chan_len + 1u);
        } else if (t->user) {
            memcpy(at, q->t[i].name, q->t[i].n + 1);
            t->user_id = at;
            t->user_len = (uint16_t)q->t[i].n;
            at += q->t[i].n + 1;
            ssize_t cn = pubreq_user_channel(app->xp.cfg->user_channel, t->user_id, t->user_len, at, HUB_MAX_CHANNEL + 1);
            if (cn < 0) {
                free(r);
                http_error(hc, HR_EINVAL, "users cannot be targeted: user_channel does not name one channel");
                return NULL;
            }
            if (q->user_dest) { /* {personal}/queue/NAME: the user's STOMP /user/queue/NAME */
                bool fits = (size_t)cn + 1 + q->user_dest_len <= HUB_MAX_CHANNEL;
                if (fits) {
                    at[cn] = '/';
                    memcpy(at + cn + 1, q->user_dest, q->user_dest_len);
                    cn += 1 + (ssize_t)q->user_dest_len;
                    at[cn] = 0;
                }
                if (!fits || !hub_channel_valid(at, (size_t)cn)) {
                    free(r);
                    http_error(hc, HR_EINVAL, "user_destination makes an invalid channel name");
                    return NULL;
                }
            }
            t->chan_len = (uint16_t)cn;
        } else {
            memcpy(at, q->t[i].name, q->t[i].n + 1);
            t->chan_len = (uint16_t)q->t[i].n;
        }
        t->chan = at;
        at += t->chan_len + 1;
        bool may = auth_can_publish(who, t->chan, t->chan_len);
        t->state = may ? PT_WAITING : PT_FAILED;
        t->rc = may ? 0 : HR_EFORBIDDEN;
        allowed += may;
    }
    if (!allowed) {
        free(r);
        xp_deny_http(&app->xp, hc, who, "publish to these channels", NULL, 0);
        return NULL;
    }
    for (uint32_t i = 0; i < q->n; i++)
        if (r->t[i].state == PT_FAILED) xp_log_denial(&app->xp, &hc->base, who, "publish to", r->t[i].chan, r->t[i].chan_len);
    return r;
}

/* POST /publish with delay or at: each allowed target is scheduled on its own. */
static void pub__schedule_multi(app_t *app, http_conn_t *hc, pub_req_t *r, const pubreq_t *q, bool keyed)
{
    if (keyed) {
        http_error(hc, HR_EINVAL, "idempotency keys are not supported with delay or at");
        return;
    }
    uint64_t due = q->at_ms ? q->at_ms : loop_wall_ms() + (uint64_t)q->delay * 1000;
    jbuf_t b = {0};
    jb_put(&b, "{\"results\":[", 12);
    for (uint32_t i = 0; i < r->n; i++) {
        pub_target_t *t = &r->t[i];
        jb_put(&b, i ? ",{" : "{", i ? 2 : 1);
        if (t->user) {
            jb_put(&b, "\"user\":", 7);
            jb_str(&b, t->user_id, t->user_len);
            jb_put(&b, ",", 1);
        }
        if (t->broadcast) jb_put(&b, "\"broadcast\":true,", 17);
        jb_put(&b, "\"channel\":", 10);
        jb_str(&b, t->chan, t->chan_len);
        jb_put(&b, ",", 1);
        int rc = t->state == PT_FAILED ? t->rc
                                       : pub__schedule_one(app, &b, t->chan, t->chan_len, q->event, q->event_len, q->data,
                                                           q->data_len, q->ttl, due);
        if (rc < 0) {
            int st = rc == HR_EFULL ? 503 : http_status_for(rc);
            jb_fmt(&b, "\"error\":{\"status\":%d,\"message\":\"%s\"}", st,
                   rc == HR_EFORBIDDEN ? "forbidden" : pub__sched_error(rc));
        }
        jb_put(&b, "}", 1);
    }
    jb_put(&b, "]}", 2);
    if (b.oom) http_error(hc, HR_ENOMEM, "out of memory");
    else http_respond(hc, 202, "application/json", b.p, b.n, "");
    free(b.p);
}

void publish_multi(app_t *app, http_conn_t *hc, http_req_t *req, span_t body)
{
    publish_t *p = app->pub;
    if (!span_eq(req->method, "POST")) {
        http_method_not_allowed(hc, "POST", "use POST to publish");
        return;
    }
    static const char *const KNOWN[] = {"token", NULL};
    if (!pub__query_ok(hc, req, KNOWN)) return;
    pubreq_t q;
    char why[160];
    int rc = pubreq_parse(body.p, body.n, p->max_targets, &q, why, sizeof(why));
    if (rc == HR_EFULL) {
        if (!p->targets_refused++)
            log_warn("limits: a publish named more than max_publish_targets (%u) targets and was refused (counted in "
                     "herald_limit_hits_total, not logged again)", p->max_targets);
        snprintf(why, sizeof(why), "too many targets (at most %u: max_publish_targets)", p->max_targets);
        http_error(hc, HR_EINVAL, why);
        return;
    }
    if (rc < 0) {
        http_error(hc, rc, rc == HR_EINVAL ? why : NULL);
        return;
    }
    const char *key = q.key;
    size_t kn = q.key_len;
    const char *hkey;
    size_t hkn;
    if (!pub__key_header(hc, req, &hkey, &hkn)) goto out;
    if (hkey && key && (hkn != kn || memcmp(hkey, key, kn) != 0)) {
        http_error(hc, HR_EINVAL, "Idempotency-Key and idempotency_key differ");
        goto out;
    }
    if (hkey) key = hkey, kn = hkn;
    auth_id_t *who = xp_auth_request(&app->xp, hc, req);
    if (!who) goto out;
    pub_req_t *r = pub__targets(app, hc, &q, who);
    if (r && (q.delay || q.at_ms)) { /* scheduled: 202, per target its schedule id or error */
        auth_unref(who);
        pub__schedule_multi(app, hc, r, &q, key != NULL);
        free(r);
        goto out;
    }
    idem_entry_t *e = NULL;
    bool go = r && pub__idem(app, hc, who, key, kn, &e);
    auth_unref(who);
    if (!go) {
        free(r);
        goto out;
    }
    p->multi_requests++;
    p->multi_targets += q.n;
    r->idem = e;
    pub__run(r, q.event, q.event_len, q.data, q.data_len, q.ttl);
out:
    pubreq_free(&q);
}

/* ---- set-up and metrics ---- */

int publish_init(publish_t *p, loop_t *loop, store_t *store, const cfg_t *cfg)
{
    memset(p, 0, sizeof(*p));
    list_init(&p->live);
    p->max_targets = cfg->max_publish_targets;
    /* a shared engine commits publishes in its backend, not in the local store: keys stay in memory */
    store_t *st = cfg->engine == ENGINE_LOCAL ? store : NULL;
    sched_init(&p->sched, loop, st, cfg->max_scheduled); /* started by sched_start once the hub is up */
    int rc = idem_init(&p->idem, loop, st, cfg->idempotency_window_ms, cfg->idempotency_max_keys);
    if (rc < 0) log_error("idempotency: cannot load the stored keys: %s", hr_strerror(rc));
    return rc;
}

void publish_close(publish_t *p)
{
    list_node_t *pos, *tmp;
    list_each_safe(pos, tmp, &p->live) {
        pub_req_t *r = container_of(pos, pub_req_t, link);
        engine_t *eng = r->app->xp.hub->engine;
        if (r->claiming && eng->ops->cancel) eng->ops->cancel(eng, r);
        pub__free(r);
    }
    idem_close(&p->idem);
    sched_close(&p->sched);
}

size_t publish_metrics(const publish_t *p, char *out, size_t cap)
{
    int n = snprintf(out, cap,
                     "# HELP herald_idempotency_keys Idempotency keys remembered (limit idempotency_max_keys).\n"
                     "# TYPE herald_idempotency_keys gauge\nherald_idempotency_keys %u\n"
                     "# HELP herald_idempotent_replays_total Publishes answered again from an idempotency key "
                     "(nothing published).\n"
                     "# TYPE herald_idempotent_replays_total counter\nherald_idempotent_replays_total %llu\n"
                     "# HELP herald_idempotency_conflicts_total Retries refused (409) while the first request with "
                     "their key was in flight.\n"
                     "# TYPE herald_idempotency_conflicts_total counter\nherald_idempotency_conflicts_total %llu\n"
                     "# HELP herald_publish_targets_total Targets named by POST /publish requests.\n"
                     "# TYPE herald_publish_targets_total counter\nherald_publish_targets_total %llu\n",
                     p->idem.n, (unsigned long long)p->idem.replays, (unsigned long long)p->idem.conflicts,
                     (unsigned long long)p->multi_targets);
    if (n <= 0 || (size_t)n >= cap) return 0;
    return (size_t)n + sched_metrics(&p->sched, out + n, cap - (size_t)n);
}
