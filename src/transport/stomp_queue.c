/* stomp_queue.c - STOMP destinations beyond /topic/: the destination table, and /queue/NAME
 * with queue semantics (see stomp_queue.h for the model).
 *
 * Destinations (stomp__dest):
 *   /topic/NAME               channel NAME (subscribe, send)
 *   /app/NAME                 channel NAME (send only: Spring front ends send to /app/...)
 *   /queue/NAME               queue channel queue/NAME (subscribe = consume, send = enqueue)
 *   /user/queue/NAME          channel {personal}/queue/NAME of the connection's user, where
 *   /user/topic/NAME          {personal} is user_channel with its sub ({personal}/topic/NAME);
 *                             subscribing to one's own needs no permission rule
 *   /user/{id}/queue/NAME     send only: user id's {personal}/queue/NAME (Spring's form),
 *   /user/{id}/topic/NAME     permission-checked like any channel
 *
 * The dispatcher of a queue: each queue (stq_t) is a hub subscriber of its channel; a message
 * arriving, a consumer subscribing, an ACK/NACK or a consumer's output draining runs dispatch,
 * which walks the ready ids of the window (stomp_qstate.h) and hands each to the next consumer
 * in round-robin order that has room: fewer than its prefetch messages in flight (client
 * modes) and a connection whose output is not full. ack:auto acknowledges a message when it is
 * written to its consumer's connection. A message the channel's history no longer holds
 * (withdrawn, its ttl passed) is acknowledged as gone.
 *
 * Bounds: the hub's publish gate (hub_t.gate) refuses a publish to queue/... from any route when
 * the queue's window is full (stomp_queue_max, HR_EHISTFULL: HTTP 507) or a new queue would pass
 * stomp_max_queues (HR_EFULL); a STOMP SEND gets an ERROR "queue full". A queue that is empty
 * and has no consumer is forgotten (its record deleted) at the next flush.
 *
 * Durability: a queue that changed is written (record in namespace "stompq", key the channel
 * name) by stomp_queues_flush just before the hub's commit, and its acknowledged messages are
 * trimmed from the channel then; an ACK's RECEIPT is written to the socket after that commit
 * (the loop writes after before_write). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app/pubreq.h"
#include "../core/err.h"
#include "../core/log.h"
#include "stomp_internal.h"
#include "stomp_qstate.h"
#include "stomp_queue.h"

#define STQ_KV "stompq"
#define STQ_PREFIX "queue/"
#define STQ_PREFIX_LEN 6

typedef struct stq stq_t;

struct stq_cons {
    stq_t *q;
    stomp_sub_t *sub;
    uint32_t prefetch, n; /* in flight at most, and now (client modes) */
    bool blocked;         /* its connection's output was full: skipped until it drains */
    uint64_t ids[];       /* the ids in flight, in delivery order */
};

struct stq {
    hmap_node_t node; /* in qs->byname */
    stomp_queues_t *qs;
    sub_t hs;         /* the dispatcher: the channel's subscriber */
    chan_t *ch;
    stq_state_t st;
    stq_cons_t **cons;
    uint32_t ncons, capc, rr;
    uint64_t scan;    /* no ready id before this one */
    stq_t *dirty_next;
    bool dirty, dispatching, again;
    uint32_t name_len;
    char name[];
};

struct stomp_queues {
    xp_ctx_t *x;
    hmap_t byname;
    uint32_t n;
    stq_t *dirty;
    uint64_t refused_full, refused_queues, delivered, redelivered, acked, gone, write_errors;
};

static bool stq__eq(const hmap_node_t *n, const void *key, size_t len)
{
    const stq_t *q = container_of(n, stq_t, node);
    return q->name_len == len && memcmp(q->name, key, len) == 0;
}

static bool stq__is_queue(const char *name, size_t n)
{
    return n > STQ_PREFIX_LEN && memcmp(name, STQ_PREFIX, STQ_PREFIX_LEN) == 0;
}

/* The newest id the channel has handed out (publishes waiting for their commit included). */
static uint64_t stq__top(const chan_t *ch) { return ch->next_id > ch->last_id + 1 ? ch->next_id - 1 : ch->last_id; }

static void stq__dirty(stq_t *q)
{
    if (q->dirty) return;
    q->dirty = true;
    q->dirty_next = q->qs->dirty;
    q->qs->dirty = q;
}

static void stq__deliver(sub_t *s, msg_t *m);

/* A queue object for channel ch with state st (taken). NULL: out of memory. */
static stq_t *stq__new(stomp_queues_t *qs, chan_t *ch, stq_state_t *st)
{
    stq_t *q = calloc(1, sizeof(*q) + ch->name_len + 1);
    if (!q) return NULL;
    q->qs = qs;
    q->ch = ch;
    q->st = *st;
    q->name_len = ch->name_len;
    memcpy(q->name, ch->name, ch->name_len);
    q->hs.deliver = stq__deliver;
    q->hs.owner = q;
    hub_subscribe(qs->x->hub, ch, &q->hs);
    hmap_insert(&qs->byname, &q->node, hmap_hash(&qs->byname, q->name, q->name_len));
    qs->n++;
    return q;
}

static void stq__free(stomp_queues_t *qs, stq_t *q)
{
    hub_unsubscribe(qs->x->hub, &q->hs);
    hmap_remove(&qs->byname, &q->node);
    qs->n--;
    stq_free(&q->st);
    free(q->cons);
    free(q);
}

/* The queue of channel ch, made when missing and create is set. NULL with *rc: HR_EFULL
 * (stomp_max_queues, counted and logged once) or HR_ENOMEM. */
static stq_t *stq__get(stomp_queues_t *qs, chan_t *ch, bool create, int *rc)
{
    hmap_node_t *nd = hmap_get(&qs->byname, ch->name, ch->name_len);
    stq_t *q = nd ? container_of(nd, stq_t, node) : NULL;
    if (q || !create) return q;
    if (qs->n >= qs->x->cfg->stomp_max_queues) {
        if (!qs->refused_queues++)
            log_warn("stomp: %u queues: stomp_max_queues reached, new queues are refused until one is empty and "
                     "unused (herald_stomp_queue_refused_total, not logged again)", qs->n);
        *rc = HR_EFULL;
        return NULL;
    }
    stq_state_t st;
    *rc = HR_ENOMEM;
    if (stq_init(&st, qs->x->cfg->stomp_queue_max, stq__top(ch)) < 0) return NULL;
    q = stq__new(qs, ch, &st);
    if (!q) {
        stq_free(&st);
        return NULL;
    }
    stq__dirty(q); /* its record is written with the publish that made it */
    return q;
}

/* A publish to q was refused: it is full. Counted; logged the first time. */
static void stq__refused(stq_t *q)
{
    if (!q->qs->refused_full++)
        log_warn("stomp: queue %.*s holds stomp_queue_max (%u) messages from its oldest unacknowledged one: "
                 "publishes to it are refused (herald_stomp_queue_refused_total, not logged again)",
                 (int)q->name_len, q->name, q->st.cap);
}

/* hub_t.gate: a publish to a queue channel needs room in the queue's window. */
static int stq__gate(void *arg, chan_t *ch)
{
    stomp_queues_t *qs = arg;
    if (!stq__is_queue(ch->name, ch->name_len)) return 0;
    int rc;
    stq_t *q = stq__get(qs, ch, true, &rc);
    if (!q) return rc;
    if (stq_room(&q->st, ch->next_id)) return 0;
    stq__refused(q);
    return HR_EHISTFULL;
}

/* ---- dispatch ---- */

/* The next consumer in round-robin order that can take a message now, or NULL. */
static stq_cons_t *stq__pick(stq_t *q)
{
    for (uint32_t k = 0; k < q->ncons; k++) {
        uint32_t i = (q->rr + k) % q->ncons;
        stq_cons_t *c = q->cons[i];
        if (c->blocked || c->sub->sess->ws.close_sent) continue;
        if (c->sub->ack != ACK_AUTO && c->n >= c->prefetch) continue;
        q->rr = (i + 1) % q->ncons;
        return c;
    }
    return NULL;
}

/* Writes m as a MESSAGE of c's subscription. 0, HR_EFULL (its output is full) or HR_E*. */
static int stq__send(stq_cons_t *c, const msg_t *m, bool redelivered)
{
    stomp_sub_t *sub = c->sub;
    stomp_t *s = sub->sess;
    char dest[HUB_MAX_CHANNEL * 2 + 8] = "/queue/";
    ssize_t dn = stomp_escape(m->channel + STQ_PREFIX_LEN, m->channel_len - STQ_PREFIX_LEN, dest + 7, sizeof(dest) - 7,
                              s->version);
    if (dn < 0) return HR_EINVAL;
    bool plain = m->event_len == 7 && memcmp(m->event, "message", 7) == 0;
    char ackh[64] = "";
    if (sub->ack != ACK_AUTO) snprintf(ackh, sizeof(ackh), "ack:%" PRIu64 "-%u\n", m->id, sub->key);
    char head[STOMP_MAX_ID * 2 + HUB_MAX_CHANNEL * 2 + HUB_MAX_EVENT + 400];
    int hn = snprintf(head, sizeof(head),
                      "MESSAGE\nsubscription:%.*s\nmessage-id:%" PRIu64 "-%u\n%sdestination:%.*s\ncontent-type:%s\n"
                      "content-length:%u\nherald-id:%" PRIu64 "\n%s%.*s%s%s\n",
                      (int)sub->id_len, sub->id, m->id, sub->key, ackh, (int)(dn + 7), dest,
                      (m->flags & MSG_UTF8) ? "text/plain;charset=utf-8" : "application/octet-stream", m->data_len, m->id,
                      plain ? "" : "event:", plain ? 0 : (int)m->event_len, m->event, plain ? "" : "\n",
                      redelivered ? "redelivered:true\n" : "");
    if (hn < 0 || (size_t)hn >= sizeof(head)) return HR_EINVAL;
    size_t len = (size_t)hn + m->data_len + 1;
    if (!stomp__room(s, len)) return HR_EFULL;
    char *buf = malloc(len);
    if (!buf) return HR_ENOMEM;
    memcpy(buf, head, (size_t)hn);
    memcpy(buf + hn, m->data, m->data_len);
    buf[len - 1] = 0;
    stomp__send_raw(s, buf, len);
    free(buf);
    return 0;
}

static void stq__dispatch(stq_t *q)
{
    if (q->dispatching) {
        q->again = true;
        return;
    }
    stomp_queues_t *qs = q->qs;
    hub_t *hub = qs->x->hub;
    q->dispatching = true;
    do {
        q->again = false;
        for (;;) {
            uint64_t id = stq_next_ready(&q->st, q->scan, q->ch->last_id);
            if (!id) {
                uint64_t end = q->st.acked_to + q->st.cap;
                q->scan = (end < q->ch->last_id ? end : q->ch->last_id) + 1;
                break;
            }
            q->scan = id;
            msg_t *m = hub_message(hub, q->name, q->name_len, id);
            if (!m) { /* withdrawn, expired or lost: nothing to deliver */
                qs->gone++;
                stq_ack(&q->st, id);
                stq__dirty(q);
                continue;
            }
            stq_cons_t *c = stq__pick(q);
            if (!c) break;
            bool redelivered = (stq_get(&q->st, id) & STQ_REDELIVER) != 0;
            int rc = stq__send(c, m, redelivered);
            if (rc < 0) { /* full output (or failing): skip it until it drains */
                c->blocked = true;
                continue;
            }
            qs->delivered++;
            if (redelivered) qs->redelivered++;
            if (id > q->st.seen_to) q->st.seen_to = id;
            if (c->sub->ack == ACK_AUTO) {
                stq_ack(&q->st, id);
                qs->acked++;
            } else {
                stq_set(&q->st, id, STQ_INFLIGHT | (stq_get(&q->st, id) & STQ_REDELIVER));
                c->ids[c->n++] = id;
            }
            stq__dirty(q);
        }
    } while (q->again);
    q->dispatching = false;
}

static void stq__deliver(sub_t *s, msg_t *m)
{
    (void)m;
    stq__dispatch(s->owner);
}

/* ---- the session's side ---- */

bool stomp__queue_room(stomp_t *s, stomp_frame_t *f, span_t name)
{
    stomp_queues_t *qs = s->ws.x->stq;
    chan_t *ch = hub_channel(qs->x->hub, name.p, name.n, true);
    if (!ch) return true; /* the publish reports why */
    if (ch->next_id <= ch->last_id) ch->next_id = ch->last_id + 1;
    int rc;
    stq_t *q = stq__get(qs, ch, true, &rc);
    if (!q && rc == HR_EFULL) {
        stomp__error(s, f, "too many queues", "the server holds stomp_max_queues queues", WS_CLOSE_TRY_LATER);
        return false;
    }
    if (q && !stq_room(&q->st, ch->next_id)) {
        stq__refused(q);
        char why[160];
        snprintf(why, sizeof(why), "the queue holds stomp_queue_max (%u) messages from its oldest unacknowledged one",
                 q->st.cap);
        stomp__error(s, f, "queue full", why, WS_CLOSE_TRY_LATER);
        return false;
    }
    return true;
}

bool stomp__queue_subscribe(stomp_t *s, stomp_frame_t *f, stomp_sub_t *sub, span_t name)
{
    stomp_queues_t *qs = s->ws.x->stq;
    const cfg_t *cfg = s->ws.x->cfg;
    uint32_t prefetch = cfg->stomp_prefetch;
    span_t pc = stomp_header(f, "prefetch-count");
    if (pc.p) {
        uint64_t v = 0;
        bool ok = pc.n > 0 && pc.n <= 10;
        for (size_t i = 0; ok && i < pc.n; i++) {
            ok = pc.p[i] >= '0' && pc.p[i] <= '9';
            v = v * 10 + (uint64_t)(pc.p[i] - '0');
        }
        if (!ok) {
            stomp__proto_error(s, f, "prefetch-count must be a number");
            return false;
        }
        if (v) prefetch = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v; /* 0 (RabbitMQ: no limit): the server's */
    }
    if (prefetch > cfg->stomp_max_unacked) prefetch = cfg->stomp_max_unacked;
    chan_t *ch = hub_channel(qs->x->hub, name.p, name.n, true);
    int rc = HR_ENOMEM;
    stq_t *q = ch ? stq__get(qs, ch, true, &rc) : NULL;
    if (!q) {
        if (!ch && qs->x->hub->load_rc == HR_EFULL) rc = HR_EFULL;
        stomp__error(s, f, rc == HR_EFULL ? "too many queues" : "out of memory",
                     rc == HR_EFULL ? "the server holds stomp_max_queues queues (or max_channels channels)" : NULL,
                     rc == HR_EFULL ? WS_CLOSE_TRY_LATER : WS_CLOSE_INTERNAL);
        return false;
    }
    if (q->ncons == q->capc) {
        uint32_t cap = q->capc ? q->capc * 2 : 4;
        stq_cons_t **nc = realloc(q->cons, cap * sizeof(*nc));
        if (!nc) {
            stomp__error(s, f, "out of memory", NULL, WS_CLOSE_INTERNAL);
            return false;
        }
        q->cons = nc;
        q->capc = cap;
    }
    stq_cons_t *c = calloc(1, sizeof(*c) + (sub->ack == ACK_AUTO ? 0 : (size_t)prefetch * sizeof(uint64_t)));
    if (!c) {
        stomp__error(s, f, "out of memory", NULL, WS_CLOSE_INTERNAL);
        return false;
    }
    c->q = q;
    c->sub = sub;
    c->prefetch = prefetch;
    q->cons[q->ncons++] = c;
    sub->qc = c;
    return true;
}

const chan_t *stomp__queue_chan(const stomp_sub_t *sub) { return sub->qc ? sub->qc->q->ch : NULL; }

void stomp__queue_kick(stomp_sub_t *sub)
{
    if (!sub->qc) return;
    sub->qc->blocked = false;
    stq__dispatch(sub->qc->q);
}

/* Puts in-flight id back as ready, marked redelivered. */
static void stq__release(stq_t *q, uint64_t id)
{
    stq_set(&q->st, id, STQ_READY | STQ_REDELIVER);
    if (id < q->scan) q->scan = id;
}

void stomp__queue_detach(stomp_sub_t *sub)
{
    stq_cons_t *c = sub->qc;
    if (!c) return;
    stq_t *q = c->q;
    for (uint32_t i = 0; i < c->n; i++) stq__release(q, c->ids[i]);
    for (uint32_t i = 0; i < q->ncons; i++)
        if (q->cons[i] == c) {
            q->cons[i] = q->cons[--q->ncons];
            break;
        }
    if (q->rr >= q->ncons) q->rr = 0;
    sub->qc = NULL;
    free(c);
    stq__dirty(q); /* forgotten at the flush if it is empty and unused now */
    stq__dispatch(q);
}

bool stomp__queue_ack(stomp_t *s, stomp_frame_t *f, stomp_sub_t *sub, uint64_t mid, bool nack)
{
    stq_cons_t *c = sub->qc;
    uint32_t pos = 0;
    while (pos < c->n && c->ids[pos] != mid) pos++;
    if (pos == c->n) {
        stomp__proto_error(s, f, nack ? "NACK of a message that is not pending" : "ACK of a message that is not pending");
        return false;
    }
    stq_t *q = c->q;
    uint32_t from = sub->ack == ACK_CLIENT ? 0 : pos; /* client: cumulative */
    for (uint32_t i = from; i <= pos; i++) {
        if (nack) stq__release(q, c->ids[i]);
        else {
            stq_ack(&q->st, c->ids[i]);
            q->qs->acked++;
        }
    }
    memmove(c->ids + from, c->ids + pos + 1, (size_t)(c->n - pos - 1) * sizeof(uint64_t));
    c->n -= pos + 1 - from;
    for (uint32_t i = 0; nack && i < q->ncons; i++) /* a NACKed message goes to another consumer first */
        if (q->cons[i] == c) q->rr = (i + 1) % q->ncons;
    stq__dirty(q);
    stq__dispatch(q);
    return true;
}

/* ---- destinations ---- */

static bool stq__prefix(span_t d, const char *p, span_t *rest)
{
    size_t n = strlen(p);
    if (d.n <= n || memcmp(d.p, p, n) != 0) return false;
    *rest = (span_t){d.p + n, d.n - n};
    return true;
}

/* Appends a[0..n) to buf (length *len, capacity HUB_MAX_CHANNEL); false when too long. */
static bool stq__cat(char *buf, size_t *len, const char *a, size_t n)
{
    if (*len + n > HUB_MAX_CHANNEL) return false;
    memcpy(buf + *len, a, n);
    *len += n;
    buf[*len] = 0;
    return true;
}

/* "queue/NAME" or "topic/NAME" with a non-empty NAME. */
static bool stq__user_kind(span_t r)
{
    return r.n > 6 && (memcmp(r.p, "queue/", 6) == 0 || memcmp(r.p, "topic/", 6) == 0);
}

int stomp__dest(stomp_t *s, stomp_frame_t *f, bool send, char *buf, span_t *name)
{
    span_t d = stomp_header(f, "destination"), r;
    if (!d.p) {
        stomp__proto_error(s, f, "missing destination header");
        return -1;
    }
    xp_ctx_t *x = s->ws.x;
    size_t len = 0;
    int kind = -1;
    const char *why = "destinations are /topic/NAME, /queue/NAME, /user/queue/NAME, /user/topic/NAME and (to send) "
                      "/app/NAME, with NAME a valid channel name";
    buf[0] = 0;
    if (stq__prefix(d, "/topic/", &r)) {
        if (stq__cat(buf, &len, r.p, r.n)) kind = STOMP_DEST_TOPIC;
    } else if (stq__prefix(d, "/app/", &r)) {
        if (!send) why = "/app/ destinations are only sent to: subscribe to /topic/NAME";
        else if (stq__cat(buf, &len, r.p, r.n)) kind = STOMP_DEST_TOPIC;
    } else if (stq__prefix(d, "/queue/", &r)) {
        if (!x->stq) {
            stomp__error(s, f, "queues are not available",
                         "/queue/ destinations need the local engine: with engine = redis they are refused", WS_CLOSE_POLICY);
            return -1;
        }
        if (stq__cat(buf, &len, STQ_PREFIX, STQ_PREFIX_LEN) && stq__cat(buf, &len, r.p, r.n)) kind = STOMP_DEST_QUEUE;
    } else if (stq__prefix(d, "/user/", &r)) {
        if (stq__user_kind(r)) { /* the connection's own: /user/queue/NAME, /user/topic/NAME */
            ssize_t fn = xp_user_feed(x, s->ws.id, buf, HUB_MAX_CHANNEL + 1);
            if (fn < 0) {
                xp_log_denial(x, &s->ws.hc->base, s->ws.id, send ? "send to" : "subscribe to", d.p, d.n);
                stomp__error(s, f, "forbidden", "/user/ destinations need a user: connect with a token (its sub)",
                             WS_CLOSE_FORBIDDEN);
                return -1;
            }
            len = (size_t)fn;
            if (stq__cat(buf, &len, "/", 1) && stq__cat(buf, &len, r.p, r.n)) kind = STOMP_DEST_OWN;
        } else if (send) { /* Spring's /user/{id}/queue/NAME: user id's destination */
            const char *sl = memchr(r.p, '/', r.n);
            span_t rest = sl ? (span_t){sl + 1, r.n - (size_t)(sl + 1 - r.p)} : (span_t){NULL, 0};
            char uid[ACL_MAX_SUB + 1];
            size_t un = sl ? (size_t)(sl - r.p) : 0;
            if (sl && un && un <= ACL_MAX_SUB && stq__user_kind(rest)) {
                memcpy(uid, r.p, un);
                uid[un] = 0;
                ssize_t fn = pubreq_user_channel(x->cfg->user_channel, uid, un, buf, HUB_MAX_CHANNEL + 1);
                len = fn < 0 ? 0 : (size_t)fn;
                if (fn >= 0 && stq__cat(buf, &len, "/", 1) && stq__cat(buf, &len, rest.p, rest.n))
                    kind = STOMP_DEST_TOPIC;
            }
        }
    }
    if (kind < 0 || !hub_channel_valid(buf, len)) {
        stomp__error(s, f, "unsupported destination", why, WS_CLOSE_POLICY);
        return -1;
    }
    *name = (span_t){buf, len};
    return kind;
}

/* ---- the app's side ---- */

int stomp_queues_ns(hub_t *hub, const cfg_t *cfg)
{
    if (cfg->engine == ENGINE_REDIS) return 0;
    hist_limits_t lim = {.max_messages = cfg->stomp_queue_max, .max_bytes = UINT64_MAX / 4, .max_age_ms = 0};
    int rc = hub_ns_add(hub, "stomp-queues", STQ_PREFIX "#", &lim);
    if (rc == 0) hub_ns_pin(hub);
    return rc;
}

typedef struct stq_rec {
    struct stq_rec *next;
    size_t klen, vlen;
    uint8_t mem[]; /* key, then value */
} stq_rec_t;

static int stq__collect(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    stq_rec_t **head = arg;
    stq_rec_t *r = malloc(sizeof(*r) + klen + vlen);
    if (!r) return HR_ENOMEM;
    r->klen = klen;
    r->vlen = vlen;
    memcpy(r->mem, key, klen);
    memcpy(r->mem + klen, val, vlen);
    r->next = *head;
    *head = r;
    return 0;
}

stomp_queues_t *stomp_queues_open(xp_ctx_t *x, char *err, size_t cap)
{
    err[0] = 0;
    hub_t *hub = x->hub;
    if (hub->engine) return NULL;
    stomp_queues_t *qs = calloc(1, sizeof(*qs));
    if (!qs || hmap_init(&qs->byname, 64, stq__eq) < 0) {
        free(qs);
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    qs->x = x;
    store_t *st = hub->store;
    stq_rec_t *recs = NULL;
    int rc = st->ops->kv_each ? st->ops->kv_each(st, STQ_KV, stq__collect, &recs) : 0;
    uint32_t restored = 0, bad = 0;
    for (stq_rec_t *r; (r = recs); free(r)) { /* created after the walk: loading a channel reads the store */
        recs = r->next;
        if (rc < 0) continue;
        const char *name = (const char *)r->mem;
        chan_t *ch = stq__is_queue(name, r->klen) && hub_channel_valid(name, r->klen)
                         ? hub_channel(hub, name, r->klen, true) : NULL;
        stq_state_t s;
        if (!ch || stq_decode(&s, r->mem + r->klen, r->vlen, x->cfg->stomp_queue_max) < 0) {
            bad++;
            continue;
        }
        if (s.acked_to > ch->last_id) { /* the store lost the channel: its ids count again */
            stq_free(&s);
            if (stq_init(&s, x->cfg->stomp_queue_max, ch->last_id) < 0) continue;
        }
        if (!stq__new(qs, ch, &s)) stq_free(&s);
        else restored++;
    }
    if (rc < 0) {
        snprintf(err, cap, "cannot read the STOMP queues from the store: %s", hr_strerror(rc));
        stomp_queues_close(qs);
        return NULL;
    }
    if (restored || bad)
        log_info("stomp: %u queues restored from the store%s", restored, bad ? " (unreadable records skipped)" : "");
    hub->gate = stq__gate;
    hub->gate_arg = qs;
    x->stq = qs;
    return qs;
}

void stomp_queues_flush(stomp_queues_t *qs)
{
    if (!qs) return;
    store_t *st = qs->x->hub->store;
    while (qs->dirty) {
        stq_t *q = qs->dirty;
        qs->dirty = q->dirty_next;
        q->dirty = false;
        uint64_t top = stq__top(q->ch);
        int rc = 0;
        if (q->st.acked_to) hub_trim_upto(qs->x->hub, q->ch, q->st.acked_to);
        if (!q->ncons && !q->st.ninflight && q->st.acked_to >= top && !q->ch->npending) {
            if (st->ops->kv_del) rc = st->ops->kv_del(st, STQ_KV, q->name, q->name_len);
            stq__free(qs, q); /* empty and unused: forgotten (made again by the next publish) */
        } else if (st->ops->kv_put) {
            uint8_t small[256], *v = small;
            size_t n = stq_encoded_len(&q->st);
            if (n > sizeof(small) && !(v = malloc(n))) rc = HR_ENOMEM;
            if (v) {
                n = stq_encode(&q->st, v, n);
                rc = st->ops->kv_put(st, STQ_KV, q->name, q->name_len, v, n);
                if (v != small) free(v);
            }
        }
        if (rc < 0 && !qs->write_errors++)
            log_warn("stomp: cannot save a queue's state: %s (herald_stomp_queue_write_errors_total, not logged again)",
                     hr_strerror(rc));
    }
}

size_t stomp_queues_metrics(const stomp_queues_t *qs, char *out, size_t cap)
{
    uint64_t depth = 0, inflight = 0;
    hmap_iter_t it;
    hmap_iter_init(&it, &qs->byname);
    for (hmap_node_t *nd; (nd = hmap_iter_next(&it));) {
        const stq_t *q = container_of(nd, stq_t, node);
        depth += stq_depth(&q->st, q->ch->last_id);
        inflight += q->st.ninflight;
    }
    int n = snprintf(out, cap,
                     "# HELP herald_stomp_queues STOMP /queue/ destinations held (limit stomp_max_queues).\n"
                     "# TYPE herald_stomp_queues gauge\nherald_stomp_queues %u\n"
                     "# HELP herald_stomp_queue_messages Queue messages not acknowledged yet (ready or in flight).\n"
                     "# TYPE herald_stomp_queue_messages gauge\nherald_stomp_queue_messages %" PRIu64 "\n"
                     "# HELP herald_stomp_queue_inflight Queue messages handed to a consumer, not acknowledged yet.\n"
                     "# TYPE herald_stomp_queue_inflight gauge\nherald_stomp_queue_inflight %" PRIu64 "\n"
                     "# HELP herald_stomp_queue_delivered_total Queue messages handed to a consumer.\n"
                     "# TYPE herald_stomp_queue_delivered_total counter\nherald_stomp_queue_delivered_total %" PRIu64 "\n"
                     "# HELP herald_stomp_queue_redelivered_total Of them, handed out again (NACK, consumer gone, "
                     "restart).\n"
                     "# TYPE herald_stomp_queue_redelivered_total counter\n"
                     "herald_stomp_queue_redelivered_total %" PRIu64 "\n"
                     "# HELP herald_stomp_queue_acked_total Queue messages acknowledged.\n"
                     "# TYPE herald_stomp_queue_acked_total counter\nherald_stomp_queue_acked_total %" PRIu64 "\n"
                     "# HELP herald_stomp_queue_gone_total Queue messages withdrawn or expired before delivery.\n"
                     "# TYPE herald_stomp_queue_gone_total counter\nherald_stomp_queue_gone_total %" PRIu64 "\n"
                     "# HELP herald_stomp_queue_refused_total Publishes to queues refused at a limit.\n"
                     "# TYPE herald_stomp_queue_refused_total counter\n"
                     "herald_stomp_queue_refused_total{limit=\"stomp_queue_max\"} %" PRIu64 "\n"
                     "herald_stomp_queue_refused_total{limit=\"stomp_max_queues\"} %" PRIu64 "\n"
                     "# HELP herald_stomp_queue_write_errors_total Queue states the store refused to write.\n"
                     "# TYPE herald_stomp_queue_write_errors_total counter\n"
                     "herald_stomp_queue_write_errors_total %" PRIu64 "\n",
                     qs->n, depth, inflight, qs->delivered, qs->redelivered, qs->acked, qs->gone, qs->refused_full,
                     qs->refused_queues, qs->write_errors);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

void stomp_queues_close(stomp_queues_t *qs)
{
    if (!qs) return;
    stomp_queues_flush(qs);
    if (qs->x->hub->gate_arg == qs) qs->x->hub->gate = NULL;
    hmap_iter_t it;
    hmap_iter_init(&it, &qs->byname);
    for (hmap_node_t *nd; (nd = hmap_iter_next(&it));) stq__free(qs, container_of(nd, stq_t, node));
    hmap_free(&qs->byname);
    if (qs->x->stq == qs) qs->x->stq = NULL;
    free(qs);
}
