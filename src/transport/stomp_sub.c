/* stomp_sub.c - STOMP subscriptions: SUBSCRIBE (a stream of one channel, resumed from last-id),
 * UNSUBSCRIBE, the MESSAGE frames (a per-subscription head before the tail shared by every STOMP
 * subscriber, gap notices), and ACK/NACK with the ring of unacknowledged ids of the client ack
 * modes. See stomp.c for the protocol notes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/err.h"
#include "../core/log.h"
#include "stomp_internal.h"

/* The tail of MESSAGE: destination dest[0..dn) (escaped) ... blank line, body, NUL. */
static bytes_t *stomp__tail_to(const msg_t *m, const char *dest, size_t dn)
{
    char head[STOMP_MAX_DEST + HUB_MAX_EVENT + 200];
    bool plain = m->event_len == 7 && memcmp(m->event, "message", 7) == 0;
    int hn = snprintf(head, sizeof(head), "destination:%.*s\ncontent-type:%s\ncontent-length:%u\nherald-id:%" PRIu64
                      "\n%s%.*s%s\n",
                      (int)dn, dest, (m->flags & MSG_UTF8) ? "text/plain;charset=utf-8" : "application/octet-stream",
                      m->data_len, m->id, plain ? "" : "event:", plain ? 0 : (int)m->event_len, m->event, plain ? "" : "\n");
    if (hn < 0 || (size_t)hn >= sizeof(head)) return NULL;
    bytes_t *b = bytes_new((size_t)hn + m->data_len + 1);
    if (!b) return NULL;
    memcpy(b->data, head, (size_t)hn);
    memcpy(b->data + hn, m->data, m->data_len);
    b->data[hn + m->data_len] = 0;
    return b;
}

/* ENC_STOMP: the tail shared by every STOMP subscriber of a channel (destination /topic/NAME). */
static bytes_t *stomp__tail(const msg_t *m)
{
    char dest[HUB_MAX_CHANNEL * 2 + 8] = "/topic/";
    ssize_t dn = stomp_escape(m->channel, m->channel_len, dest + 7, sizeof(dest) - 7, 12);
    return dn < 0 ? NULL : stomp__tail_to(m, dest, (size_t)dn + 7);
}

static int stomp__pending_add(stomp_sub_t *sub, uint64_t id, uint32_t max)
{
    if (sub->npending == max) return HR_EFULL;
    if (!sub->pending) {
        sub->pending = malloc(max * sizeof(uint64_t));
        if (!sub->pending) return HR_ENOMEM;
    }
    sub->pending[(sub->pending_head + sub->npending) % max] = id;
    sub->npending++;
    return 0;
}

/* stomp__send over a carrier: the whole frame as one unit of its own (encoded per subscriber). */
static int stomp__send_carried(stomp_t *s, stomp_sub_t *sub, msg_t *m, const char *head, size_t hn, bytes_t *tail)
{
    conn_t *c = &s->ws.hc->base;
    bytes_t *u = s->car->unit(s, head, hn, tail);
    if (!u) return HR_ENOMEM;
    if (wq_cost(&c->wq) + u->len + WQ_ENTRY_COST > c->wq.limit && !wq_empty(&c->wq)) {
        bytes_unref(u);
        return HR_EFULL;
    }
    if (sub->ack != ACK_AUTO && stomp__pending_add(sub, m->id, s->ws.x->cfg->stomp_max_unacked) < 0) {
        bytes_unref(u);
        stomp__error(s, NULL, "too many unacknowledged messages",
                     "a client-ack subscription reached stomp_max_unacked outstanding messages", WS_CLOSE_POLICY);
        return HR_EIO;
    }
    int rc = conn_send_reply(c, u);
    bytes_unref(u);
    return rc;
}

/* Queues MESSAGE m for sub: its head, then tail. */
static int stomp__send_tail(stomp_sub_t *sub, msg_t *m, bytes_t *tail)
{
    stomp_t *s = sub->sess;
    conn_t *c = &s->ws.hc->base;
    char head[WS_MAX_HEADER + STOMP_MAX_ID * 2 + 128];
    char *p = head + WS_MAX_HEADER;
    int pn = sub->ack == ACK_AUTO
                 ? snprintf(p, sizeof(head) - WS_MAX_HEADER, "MESSAGE\nsubscription:%.*s\nmessage-id:%" PRIu64 "-%u\n",
                            (int)sub->id_len, sub->id, m->id, sub->key)
                 : snprintf(p, sizeof(head) - WS_MAX_HEADER,
                            "MESSAGE\nsubscription:%.*s\nmessage-id:%" PRIu64 "-%u\nack:%" PRIu64 "-%u\n", (int)sub->id_len,
                            sub->id, m->id, sub->key, m->id, sub->key);
    if (s->car) return stomp__send_carried(s, sub, m, p, (size_t)pn, tail);
    uint8_t wh[WS_MAX_HEADER];
    bool text = sub->text && (m->flags & MSG_UTF8);
    size_t hl = ws_header_write(wh, text ? WS_OP_TEXT : WS_OP_BINARY, true, false, (uint64_t)pn + tail->len);
    if (wq_cost(&c->wq) + hl + (size_t)pn + tail->len + WQ_ENTRY_COST > c->wq.limit && !wq_empty(&c->wq)) return HR_EFULL;
    if (sub->ack != ACK_AUTO) {
        int rc = stomp__pending_add(sub, m->id, s->ws.x->cfg->stomp_max_unacked);
        if (rc < 0) {
            stomp__error(s, NULL, "too many unacknowledged messages",
                         "a client-ack subscription reached stomp_max_unacked outstanding messages", WS_CLOSE_POLICY);
            return HR_EIO;
        }
    }
    memcpy(p - hl, wh, hl);
    bytes_t *h = bytes_copy(p - hl, hl + (size_t)pn);
    if (!h) return HR_ENOMEM;
    conn_send_reply(c, h);
    bytes_unref(h);
    conn_send_reply(c, tail);
    return 0;
}

static int stomp__send(stream_t *st, xsub_t *xs, msg_t *m)
{
    (void)xs;
    stomp_sub_t *sub = st->owner;
    if (sub->sess->ws.close_sent) return HR_EIO;
    if (!sub->dest) { /* the tail every /topic/ subscriber shares */
        bytes_t *tail = msg_encoded(m, ENC_STOMP, stomp__tail);
        return tail ? stomp__send_tail(sub, m, tail) : HR_ENOMEM;
    }
    bytes_t *own = stomp__tail_to(m, sub->dest, sub->dest_len); /* a /user/ destination: its own name */
    if (!own) return HR_ENOMEM;
    int rc = stomp__send_tail(sub, m, own);
    bytes_unref(own);
    return rc;
}

/* A notice as a MESSAGE of the subscription with the header herald-WHAT:true (gap, withdrawn).
 * A gap notice is a MESSAGE of the subscription with the header herald-gap:true and the JSON of
 * the other transports' notices as its body ({"channel","requested","first_available"} after a
 * resume older than history, {"channel","dropped","from","to"} after slow-consumer drops). Its
 * message-id (and ack) are "gap-KEY-N": acknowledging one is allowed and does nothing. */
static bytes_t *stomp__notice(stream_t *st, const char *what, const char *json, size_t n)
{
    stomp_sub_t *sub = st->owner;
    stomp_t *s = sub->sess;
    const chan_t *ch = st->subs[0].s.ch;
    char dest[HUB_MAX_CHANNEL * 2 + 8];
    ssize_t dn = stomp_escape(ch->name, ch->name_len, dest, sizeof(dest), s->version ? s->version : 12);
    if (dn < 0 || n > 2048) return NULL;
    char ackh[48] = "";
    uint32_t seq = ++s->next_gap;
    if (sub->ack != ACK_AUTO) snprintf(ackh, sizeof(ackh), "ack:gap-%u-%u\n", sub->key, seq);
    char buf[STOMP_MAX_ID * 2 + HUB_MAX_CHANNEL * 2 + 2048 + 256];
    int len = snprintf(buf, sizeof(buf),
                       "MESSAGE\nsubscription:%.*s\nmessage-id:gap-%u-%u\n%sdestination:/topic/%.*s\n"
                       "content-type:application/json\ncontent-length:%zu\nherald-%s:true\n\n%.*s",
                       (int)sub->id_len, sub->id, sub->key, seq, ackh, (int)dn, dest, n, what, (int)n, json);
    if (len < 0 || (size_t)len + 1 >= sizeof(buf)) return NULL;
    buf[len++] = 0; /* the frame's NUL */
    if (s->car) return s->car->unit(s, buf, (size_t)len, NULL);
    return ws_frame_new(sub->text ? WS_OP_TEXT : WS_OP_BINARY, false, buf, (size_t)len);
}

static bytes_t *stomp__gap(stream_t *st, const char *json, size_t n) { return stomp__notice(st, "gap", json, n); }

/* A channel event: the same MESSAGE with herald-EVENT:true (withdrawn, unread, join, leave) and
 * the event's JSON as body. */
static bytes_t *stomp__event(stream_t *st, const char *event, const char *json, size_t n)
{
    /* a STOMP client sees every MESSAGE of its subscription as its own: unread counts only
     * when the SUBSCRIBE asked for them */
    if (strcmp(event, "unread") == 0 && !((stomp_sub_t *)st->owner)->unread) return NULL;
    return stomp__notice(st, event, json, n);
}

static const stream_kind_t stomp_kind = {
    .xp = XP_STOMP,
    .send = stomp__send,
    .gap_frame = stomp__gap,
    .event_frame = stomp__event,
};

void stomp__sub_free(stomp_sub_t *sub)
{
    stomp__queue_detach(sub); /* a queue consumer's unacknowledged messages go to the others */
    if (sub->st) stream_free(sub->st);
    free(sub->pending);
    free(sub);
}

static int stomp__find(stomp_t *s, const char *id, size_t n)
{
    for (uint32_t i = 0; i < s->nsubs; i++)
        if (s->subs[i]->id_len == n && memcmp(s->subs[i]->id, id, n) == 0) return (int)i;
    return -1;
}

void stomp__subscribe(stomp_t *s, stomp_frame_t *f)
{
    span_t name, id = stomp_header(f, "id"), ack = stomp_header(f, "ack");
    char buf[HUB_MAX_CHANNEL + 1];
    int kind = stomp__dest(s, f, false, buf, &name);
    if (kind < 0) return;
    if (kind != STOMP_DEST_OWN && !auth_can_subscribe(s->ws.id, name.p, name.n)) { /* one's own /user/: no rule */
        xp_log_denial(s->ws.x, &s->ws.hc->base, s->ws.id, "subscribe to", name.p, name.n);
        stomp__error(s, f, "forbidden", "not allowed to subscribe to this destination", WS_CLOSE_FORBIDDEN);
        return;
    }
    if (!id.p || !id.n) {
        stomp__proto_error(s, f, "missing id header");
        return;
    }
    uint8_t mode = ACK_AUTO;
    if (ack.p && span_eq(ack, "client")) mode = ACK_CLIENT;
    else if (ack.p && span_eq(ack, "client-individual")) mode = ACK_INDIVIDUAL;
    else if (ack.p && !span_eq(ack, "auto")) {
        stomp__proto_error(s, f, "ack must be auto, client or client-individual");
        return;
    }
    char esc[STOMP_MAX_ID * 2 + 1];
    ssize_t en = id.n <= STOMP_MAX_ID ? stomp_escape(id.p, id.n, esc, sizeof(esc), s->version) : HR_EFULL;
    if (en < 0) {
        stomp__proto_error(s, f, "subscription id too long (at most 128 bytes)");
        return;
    }
    if (stomp__find(s, esc, (size_t)en) >= 0) {
        stomp__proto_error(s, f, "subscription id already in use");
        return;
    }
    if (s->nsubs >= s->ws.x->cfg->max_subscriptions) {
        xp_sub_limit(s->ws.x, &s->ws.hc->base, "STOMP");
        char why[80];
        snprintf(why, sizeof(why), "at most %u subscriptions per connection (max_subscriptions)",
                 s->ws.x->cfg->max_subscriptions);
        stomp__error(s, f, "too many subscriptions", why, WS_CLOSE_POLICY);
        return;
    }
    subreq_t sr = {.nch = 1};
    subreq_user(&sr, s->ws.id); /* presence counts it as the user's */
    span_t last = stomp_header(f, "last-id");
    if (last.p) {
        if (cursor_parse(last.p, last.n, sr.cursor, 1) < 0) {
            stomp__proto_error(s, f, "last-id must be a message id");
            return;
        }
        sr.has_cursor = true;
    }
    if (kind == STOMP_DEST_QUEUE && last.p) {
        stomp__proto_error(s, f, "last-id is for topics: a queue delivers what is not acknowledged");
        return;
    }
    if (s->nsubs == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 4;
        stomp_sub_t **ns = realloc(s->subs, cap * sizeof(*ns));
        if (!ns) {
            stomp__error(s, f, "out of memory", NULL, WS_CLOSE_INTERNAL);
            return;
        }
        s->subs = ns;
        s->cap = cap;
    }
    char dest[STOMP_MAX_DEST];
    ssize_t dl = 0;
    if (kind == STOMP_DEST_OWN) { /* its MESSAGEs name the destination subscribed to, as Spring's do */
        span_t d = stomp_header(f, "destination");
        dl = stomp_escape(d.p, d.n, dest, sizeof(dest), s->version);
        if (dl < 0) dl = 0; /* too long to escape: the channel's name is used */
    }
    stomp_sub_t *sub = calloc(1, sizeof(*sub) + (size_t)en + (size_t)dl);
    sr.ch[0] = sub && kind != STOMP_DEST_QUEUE ? hub_channel(s->ws.x->hub, name.p, name.n, true) : NULL;
    if (sub && kind == STOMP_DEST_QUEUE) { /* a consumer of the queue (stomp_queue.c), not a stream */
        *sub = (stomp_sub_t){.sess = s, .key = ++s->next_key, .ack = mode, .text = utf8_valid(esc, (size_t)en),
                             .id_len = (uint16_t)en};
        memcpy(sub->id, esc, (size_t)en);
        if (!stomp__queue_subscribe(s, f, sub, name)) {
            free(sub);
            return;
        }
        s->subs[s->nsubs++] = sub;
        stomp__receipt(s, f);
        stomp__queue_kick(sub);
        return;
    }
    if (!sr.ch[0]) {
        free(sub);
        stomp__error(s, f, "out of memory", NULL, WS_CLOSE_INTERNAL);
        return;
    }
    sub->sess = s;
    sub->key = ++s->next_key;
    sub->ack = mode;
    sub->text = utf8_valid(esc, (size_t)en);
    span_t ur = stomp_header(f, "herald-unread");
    sub->unread = ur.n == 4 && memcmp(ur.p, "true", 4) == 0;
    sub->id_len = (uint16_t)en;
    memcpy(sub->id, esc, (size_t)en);
    if (dl) {
        sub->dest = sub->id + en;
        sub->dest_len = (uint16_t)dl;
        memcpy(sub->dest, dest, (size_t)dl);
    }
    s->subs[s->nsubs++] = sub;
    stomp__receipt(s, f); /* the receipt comes before the replay */
    sub->st = stream_open(s->ws.x, &s->ws.hc->base, &sr, &stomp_kind, sub);
    if (!sub->st) {
        s->nsubs--;
        free(sub);
        stomp__error(s, f, "out of memory", NULL, WS_CLOSE_INTERNAL);
    }
}

void stomp__unsubscribe(stomp_t *s, stomp_frame_t *f)
{
    span_t id = stomp_header(f, "id");
    if (!id.p) {
        stomp__proto_error(s, f, "missing id header");
        return;
    }
    char esc[STOMP_MAX_ID * 2 + 1];
    ssize_t en = id.n <= STOMP_MAX_ID ? stomp_escape(id.p, id.n, esc, sizeof(esc), s->version) : HR_EFULL;
    int i = en < 0 ? -1 : stomp__find(s, esc, (size_t)en);
    if (i < 0) {
        stomp__proto_error(s, f, "no subscription with this id");
        return;
    }
    stomp__sub_free(s->subs[i]);
    s->subs[i] = s->subs[--s->nsubs];
    stomp__receipt(s, f);
}

/* Acknowledges the message with ack id v ("<message id>-<subscription key>"); false (having
 * answered with an ERROR) when it is not pending. */
bool stomp__ack_id(stomp_t *s, stomp_frame_t *f, span_t v, bool nack)
{
    if (v.n > 4 && memcmp(v.p, "gap-", 4) == 0) return true; /* a gap notice: nothing to release */
    uint64_t mid = 0;
    uint32_t key = 0;
    size_t i = 0;
    bool ok = v.n > 0;
    while (ok && i < v.n && v.p[i] != '-') {
        ok = v.p[i] >= '0' && v.p[i] <= '9' && mid <= (UINT64_MAX - 9) / 10;
        mid = mid * 10 + (uint64_t)(v.p[i++] - '0');
    }
    ok = ok && i < v.n && i > 0;
    size_t kstart = ++i;
    while (ok && i < v.n) {
        ok = v.p[i] >= '0' && v.p[i] <= '9' && key <= (UINT32_MAX - 9) / 10;
        key = key * 10 + (uint32_t)(v.p[i++] - '0');
    }
    ok = ok && i > kstart;
    stomp_sub_t *sub = NULL;
    for (uint32_t k = 0; ok && k < s->nsubs && !sub; k++)
        if (s->subs[k]->key == key) sub = s->subs[k];
    if (sub && sub->qc) return stomp__queue_ack(s, f, sub, mid, nack);
    uint32_t max = s->ws.x->cfg->stomp_max_unacked, pos = 0;
    bool found = false;
    for (; sub && pos < sub->npending; pos++)
        if (sub->pending[(sub->pending_head + pos) % max] == mid) {
            found = true;
            break;
        }
    if (!found) {
        stomp__proto_error(s, f, nack ? "NACK of a message that is not pending" : "ACK of a message that is not pending");
        return false;
    }
    if (sub->ack == ACK_CLIENT) { /* cumulative: this one and everything before it */
        sub->pending_head = (sub->pending_head + pos + 1) % max;
        sub->npending -= pos + 1;
    } else { /* individual: close the hole by moving the older ones up */
        for (uint32_t k = pos; k > 0; k--)
            sub->pending[(sub->pending_head + k) % max] = sub->pending[(sub->pending_head + k - 1) % max];
        sub->pending_head = (sub->pending_head + 1) % max;
        sub->npending--;
    }
    return true;
}

void stomp__ack(stomp_t *s, stomp_frame_t *f, bool nack)
{
    span_t v = stomp_header(f, s->version == 12 ? "id" : "message-id");
    if (!v.p) {
        stomp__proto_error(s, f, s->version == 12 ? "missing id header" : "missing message-id header");
        return;
    }
    bool bad;
    stomp_tx_t *tx = stomp__tx_of(s, f, &bad, NULL);
    if (bad) return;
    if (tx) { /* checked when the transaction commits */
        stomp__tx_hold(s, f, tx, nack ? STOMP_NACK : STOMP_ACK, v, (span_t){"", 0}, NULL, 0);
        return;
    }
    if (stomp__ack_id(s, f, v, nack)) stomp__receipt(s, f);
}
