/* stomp.c - STOMP 1.2 and 1.1 over WebSocket at /stomp (subprotocols v12.stomp, v11.stomp).
 *
 * The WebSocket messages form one byte stream of STOMP frames (a frame may span messages and a
 * message may hold several frames); the pure codec (stomp_codec.h) cuts it. A frame that is not
 * complete at the end of a message is kept, bounded by the frame limits.
 *
 * Destinations: /topic/NAME is channel NAME, shared with every other transport. SUBSCRIBE may
 * carry the herald extension header last-id (resume after that message id, from history).
 * /queue/NAME (queues), /user/... and /app/NAME are mapped in stomp_queue.c (stomp__dest); a
 * queue subscription is a consumer of the queue's dispatcher, not a stream.
 * Each subscription is a stream (stream.h) of one channel. A MESSAGE frame is a small
 * per-subscription head (MESSAGE, subscription, message-id, ack) followed by a tail that is
 * encoded once per message and shared by every STOMP subscriber (destination, content-type,
 * content-length, herald-id, event, the body and the NUL), inside one WebSocket frame whose
 * header is per subscriber. message-id (and ack) are "<message id>-<subscription key>", unique on
 * the connection, so ACK finds its subscription without a table.
 *
 * Acknowledgement: in ack:client and ack:client-individual modes a subscription keeps the ids
 * it delivered until they are acknowledged (ACK in client mode also acknowledges everything
 * before it; client-individual only that one). NACK releases a message too: a topic has no
 * queue to put it back on (a /queue/ subscription's ACK and NACK go to stomp_queue.c). A topic
 * subscription with stomp_max_unacked messages outstanding has stopped keeping up: it gets an
 * ERROR and the connection closes, rather than memory growing.
 *
 * Transactions: SEND, ACK and NACK frames naming an open transaction are held (copied, bounded)
 * and run in order at COMMIT; ABORT, DISCONNECT and a dropped connection discard them.
 *
 * Heart-beats are negotiated as the specification says (max of what each side offers and
 * wants); the server's EOLs and its check of the client's come from a timer-wheel entry.
 *
 * Errors: every violation is answered with one ERROR frame (message header, receipt-id when the
 * frame asked for a receipt, a text body), logged once, and the connection is closed after it
 * is written, as the specification requires. stomp__error is the only place that does this.
 *
 * Over SockJS (stomp_sockjs.c) the same session runs on a carrier (stomp_internal.h,
 * stomp_t.car) instead of ws_send_copy/ws_close; the WebSocket path is unchanged.
 *
 * Files: stomp.c (the session: CONNECT, heart-beats, SEND, transactions, receipts and errors, the
 * frame loop), stomp_sub.c (subscriptions: SUBSCRIBE/UNSUBSCRIBE, MESSAGE frames, ACK/NACK),
 * stomp_internal.h (what they share), stomp_codec.c (frames). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/err.h"
#include "../core/log.h"
#include "stomp_internal.h"

static const char *const stomp_protocols[] = {"v12.stomp", "v11.stomp", NULL};

void stomp__send_raw(stomp_t *s, const char *buf, size_t n)
{
    if (s->car) { /* a reply: past the queue limit, like ws_send_copy */
        bytes_t *u = s->ws.close_sent ? NULL : s->car->unit(s, buf, n, NULL);
        if (u) conn_send_reply(&s->ws.hc->base, u);
        bytes_unref(u);
        return;
    }
    ws_send_copy(&s->ws, utf8_valid(buf, n), buf, n);
}

bool stomp__room(stomp_t *s, size_t n)
{
    const wq_t *q = &s->ws.hc->base.wq;
    return wq_empty(q) || wq_cost(q) + n + WS_MAX_HEADER + WQ_ENTRY_COST <= q->limit;
}

/* The one place that answers a violation: ERROR frame, log, close after it is written. */
static void stomp__error_r(stomp_t *s, span_t receipt, const char *why, const char *detail, uint16_t code)
{
    if (s->ws.close_sent) return;
    if (code != WS_CLOSE_UNAUTHORIZED && code != WS_CLOSE_FORBIDDEN) { /* access refusals: logged by access.c, ws.c */
        char peer[128];
        log_info("stomp: %s: ERROR %s", conn_peer(&s->ws.hc->base, peer, sizeof(peer)), why);
    }
    span_t names[3], values[3];
    uint32_t nh = 0;
    names[nh] = SPAN_LIT("message");
    values[nh++] = span_of(why);
    if (receipt.p && receipt.n <= STOMP_MAX_ID) {
        names[nh] = SPAN_LIT("receipt-id");
        values[nh++] = receipt;
    }
    names[nh] = SPAN_LIT("content-type");
    values[nh++] = SPAN_LIT("text/plain");
    char buf[1024];
    const char *body = detail ? detail : why;
    ssize_t n = stomp_frame_write(buf, sizeof(buf), "ERROR", names, values, nh, s->version ? s->version : 12, body,
                                  strlen(body), true);
    if (n > 0) stomp__send_raw(s, buf, (size_t)n);
    stomp__close(s, code, "STOMP error");
}

void stomp__error(stomp_t *s, const stomp_frame_t *f, const char *why, const char *detail, uint16_t code)
{
    stomp__error_r(s, f ? stomp_header(f, "receipt") : (span_t){NULL, 0}, why, detail, code);
}

/* The receipt header of a frame the codec refused, found in its raw head (best effort: the
 * first "receipt:" line before the blank line; the value as sent, not unescaped). */
static span_t stomp__raw_receipt(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && (p[i] == '\n' || p[i] == '\r')) i++; /* heart-beats */
    while (i < n) {
        const char *nl = memchr(p + i, '\n', n - i);
        if (!nl) break;
        size_t line = (size_t)(nl + 1 - p);
        if (line >= n || p[line] == '\n' || (p[line] == '\r' && line + 1 < n && p[line + 1] == '\n')) break;
        i = line;
        if (n - i > 8 && memcmp(p + i, "receipt:", 8) == 0) {
            const char *e = memchr(p + i + 8, '\n', n - i - 8);
            size_t vn = e ? (size_t)(e - (p + i + 8)) : 0;
            if (vn && p[i + 8 + vn - 1] == '\r') vn--;
            if (e) return (span_t){p + i + 8, vn};
            break;
        }
    }
    return (span_t){NULL, 0};
}

void stomp__proto_error(stomp_t *s, const stomp_frame_t *f, const char *why)
{
    stomp__error(s, f, why, NULL, WS_CLOSE_PROTOCOL);
}

static void stomp__send_receipt(stomp_t *s, span_t r)
{
    span_t name = SPAN_LIT("receipt-id");
    char buf[STOMP_MAX_ID * 2 + 64];
    ssize_t n = stomp_frame_write(buf, sizeof(buf), "RECEIPT", &name, &r, 1, s->version, NULL, 0, false);
    if (n > 0) stomp__send_raw(s, buf, (size_t)n);
}

/* Answers f's receipt header, if any; behind SENDs still waiting for their commit, in order. */
void stomp__receipt(stomp_t *s, const stomp_frame_t *f)
{
    span_t r = stomp_header(f, "receipt");
    if (!r.p) return;
    if (!s->owed.n) stomp__send_receipt(s, r);
    else if (!xp_owed_push(&s->owed, r.p, r.n, false))
        stomp__error(s, f, "too many frames waiting", "too many receipts waiting for publishes", WS_CLOSE_TRY_LATER);
}

/* Sends the receipts that are ready, in order; a SEND that failed ends the connection with an
 * ERROR (with its receipt-id): the client learns its message was not taken. */
static void stomp__answer_owed(stomp_t *s)
{
    xp_owed_t *e;
    while ((e = xp_owed_pop(&s->owed))) {
        span_t r = {e->data, e->len};
        if (e->rc < 0 && !s->ws.close_sent)
            stomp__error_r(s, e->len ? r : (span_t){NULL, 0}, "publish failed", hr_strerror(e->rc),
                           e->rc == HR_ESTOREFULL || e->rc == HR_EUNAVAIL ? WS_CLOSE_TRY_LATER : WS_CLOSE_INTERNAL);
        else if (e->len && !s->ws.close_sent) stomp__send_receipt(s, r);
        free(e);
    }
    if (s->bye && !s->owed.n) stomp__close(s, WS_CLOSE_NORMAL, "disconnected");
}

static void stomp__published(void *arg, int rc, const msg_t *m, uint32_t reached)
{
    stomp_t *s = arg;
    xp_owed_done(&s->owed, rc, m, reached);
    stomp__answer_owed(s);
}

/* Heart-beat tick: send an EOL when nothing is queued; drop a client that went silent. Before
 * CONNECT the same timer is the CONNECT deadline (header_timeout). */
static void stomp__hb(tw_entry_t *e)
{
    stomp_t *s = container_of(e, stomp_t, hb);
    conn_t *c = &s->ws.hc->base;
    if (c->closing || s->ws.close_sent) return;
    if (!s->version) {
        s->ws.x->metrics->connect_timeouts++;
        stomp__error(s, NULL, "no CONNECT in time", "CONNECT must be the first frame, within header_timeout",
                     WS_CLOSE_POLICY);
        return;
    }
    uint64_t now = loop_now(c->loop);
    if (s->hb_recv_ms && now - s->ws.last_input_ms > (uint64_t)s->hb_recv_ms * 2) {
        stomp__error(s, NULL, "heart-beat timeout", "nothing received within twice the agreed heart-beat",
                     WS_CLOSE_POLICY);
        return;
    }
    if (s->hb_send_ms && wq_empty(&c->wq)) stomp__send_raw(s, "\n", 1);
    uint32_t next = s->hb_send_ms ? s->hb_send_ms : s->hb_recv_ms;
    if (s->hb_recv_ms && s->hb_recv_ms < next) next = s->hb_recv_ms;
    loop_timer(c->loop, &s->hb, next);
}

/* Parses "cx,cy" into two unsigned integers. */
static bool stomp__parse_hb(span_t v, uint32_t *a, uint32_t *b)
{
    uint64_t x[2] = {0, 0};
    size_t i = 0;
    for (int k = 0; k < 2; k++) {
        size_t start = i;
        while (i < v.n && v.p[i] >= '0' && v.p[i] <= '9') {
            x[k] = x[k] * 10 + (uint64_t)(v.p[i] - '0');
            if (x[k] > UINT32_MAX) return false;
            i++;
        }
        if (i == start) return false;
        if (k == 0) {
            if (i >= v.n || v.p[i] != ',') return false;
            i++;
        }
    }
    if (i != v.n) return false;
    *a = (uint32_t)x[0];
    *b = (uint32_t)x[1];
    return true;
}

/* CONNECT's credential: an "Authorization: Bearer T" header, or passcode (a token, an API key,
 * or with login a password-file user); none keeps the identity of the WebSocket handshake. False
 * when refused (answered). */
static bool stomp__login(stomp_t *s, stomp_frame_t *f)
{
    auth_t *a = s->ws.x->auth;
    span_t authz = stomp_header(f, "Authorization"), login = stomp_header(f, "login"),
           pass = stomp_header(f, "passcode");
    if (a->enabled && (authz.p || pass.p)) {
        auth_id_t *id = NULL;
        const char *why = "bad credentials";
        int rc;
        if (authz.p)
            rc = authz.n > 7 && strncasecmp(authz.p, "Bearer ", 7) == 0 ? auth_bearer(a, authz.p + 7, authz.n - 7, &id, &why)
                                                                         : HR_EAUTH;
        else
            rc = auth_login(a, login.p ? login.p : "", login.p ? login.n : 0, pass.p, pass.n, &id, &why);
        if (rc < 0) {
            xp_log_refused(s->ws.x, &s->ws.hc->base, why);
            stomp__error(s, f, "authentication failed", why, WS_CLOSE_UNAUTHORIZED);
            return false;
        }
        ws_set_id(&s->ws, id);
    }
    if (!auth_has_any(s->ws.id)) {
        xp_log_denial(s->ws.x, &s->ws.hc->base, s->ws.id, "connect", NULL, 0);
        stomp__error(s, f, "authentication required", "anonymous clients may do nothing here: send a token as passcode",
                     WS_CLOSE_UNAUTHORIZED);
        return false;
    }
    return true;
}

/* users.h: the admin disconnected the user: an ERROR frame (message "disconnected", body
 * {"reason":R,"reconnect":B}), then a Close with 4001 (4002 when reconnecting is fine). */
static void stomp__user_disconnect(users_conn_t *uc, const char *reason, bool reconnect)
{
    stomp_t *s = (stomp_t *)container_of(uc, ws_t, uc);
    char json[USERS_MAX_REASON * 6 + 64];
    size_t n = stream_bye_json(reason, reconnect, json, sizeof(json));
    stomp__error_r(s, (span_t){NULL, 0}, "disconnected", n ? json : "disconnected",
                   reconnect ? WS_CLOSE_RECONNECT : WS_CLOSE_DISCONNECTED);
}

/* users.h: the admin unsubscribed the user from ch: its subscriptions to ch end (STOMP has no
 * frame to tell the client). */
static uint32_t stomp__user_unsubscribe(users_conn_t *uc, const char *ch, size_t n)
{
    stomp_t *s = (stomp_t *)container_of(uc, ws_t, uc);
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->nsubs;) {
        const chan_t *c = s->subs[i]->st ? s->subs[i]->st->subs[0].s.ch : stomp__queue_chan(s->subs[i]);
        if (c && c->name_len == n && memcmp(c->name, ch, n) == 0) {
            stomp__sub_free(s->subs[i]);
            s->subs[i] = s->subs[--s->nsubs];
            k++;
        } else {
            i++;
        }
    }
    return k;
}

static const users_conn_ops_t stomp_user_ops = {
    .disconnect = stomp__user_disconnect,
    .unsubscribe = stomp__user_unsubscribe,
};

static void stomp__connect(stomp_t *s, stomp_frame_t *f)
{
    if (s->version) {
        stomp__proto_error(s, f, "already connected");
        return;
    }
    span_t av = stomp_header(f, "accept-version");
    int version = 0;
    for (size_t i = 0; av.p && i < av.n;) {
        size_t j = i;
        while (j < av.n && av.p[j] != ',') j++;
        span_t v = {av.p + i, j - i};
        if (span_eq(v, "1.2")) version = 12;
        else if (span_eq(v, "1.1") && version < 11) version = 11;
        i = j + 1;
    }
    if (!version) {
        span_t names[2] = {SPAN_LIT("version"), SPAN_LIT("message")};
        span_t values[2] = {SPAN_LIT("1.1,1.2"), SPAN_LIT("supported protocol versions are 1.1 and 1.2")};
        char buf[256];
        ssize_t n = stomp_frame_write(buf, sizeof(buf), "ERROR", names, values, 2, 12, "", 0, false);
        char peer[128];
        log_info("stomp: %s: ERROR no common protocol version", conn_peer(&s->ws.hc->base, peer, sizeof(peer)));
        if (n > 0) stomp__send_raw(s, buf, (size_t)n);
        stomp__close(s, WS_CLOSE_PROTOCOL, "STOMP error");
        return;
    }
    uint32_t cx = 0, cy = 0;
    span_t hb = stomp_header(f, "heart-beat");
    if (hb.p && !stomp__parse_hb(hb, &cx, &cy)) {
        s->version = version;
        stomp__proto_error(s, f, "malformed heart-beat header (want two integers: cx,cy)");
        return;
    }
    s->version = version;
    if (!stomp__login(s, f)) return;
    uint32_t sx = s->ws.x->cfg->stomp_heartbeat_ms, sy = sx;
    s->hb_send_ms = sx && cy ? (sx > cy ? sx : cy) : 0;
    s->hb_recv_ms = cx && sy ? (cx > sy ? cx : sy) : 0;
    char hbv[32], sess[32];
    snprintf(hbv, sizeof(hbv), "%u,%u", sx, sy);
    snprintf(sess, sizeof(sess), "herald-%" PRIu64, ++s->ws.x->sessions);
    span_t names[4] = {SPAN_LIT("version"), SPAN_LIT("heart-beat"), SPAN_LIT("server"), SPAN_LIT("session")};
    span_t values[4] = {version == 12 ? SPAN_LIT("1.2") : SPAN_LIT("1.1"), span_of(hbv), SPAN_LIT("herald/0.3"),
                        span_of(sess)};
    char buf[256];
    ssize_t n = stomp_frame_write(buf, sizeof(buf), "CONNECTED", names, values, 4, version, "", 0, false);
    if (n > 0) stomp__send_raw(s, buf, (size_t)n);
    ws_user_register(&s->ws, &stomp_user_ops, "stomp");
    if (s->hb_send_ms || s->hb_recv_ms) stomp__hb(&s->hb);
    else tw_stop(&s->ws.hc->base.loop->wheel, &s->hb); /* the CONNECT deadline */
}

static void stomp__tx_free(stomp_tx_t *tx)
{
    for (stomp_txop_t *op = tx->head, *next; op; op = next) {
        next = op->next;
        free(op);
    }
    free(tx);
}

/* The open transaction named by the frame's transaction header (NULL: none named). Answers
 * the ERROR itself and sets *bad when the header names no open transaction. */
stomp_tx_t *stomp__tx_of(stomp_t *s, stomp_frame_t *f, bool *bad, stomp_tx_t ***link)
{
    *bad = false;
    span_t t = stomp_header(f, "transaction");
    if (!t.p) return NULL;
    for (stomp_tx_t **pp = &s->txs; *pp; pp = &(*pp)->next)
        if ((*pp)->name_len == t.n && memcmp((*pp)->name, t.p, t.n) == 0) {
            if (link) *link = pp;
            return *pp;
        }
    *bad = true;
    stomp__proto_error(s, f, "no open transaction with this name");
    return NULL;
}

/* Holds one operation in tx; false (having answered) when the transaction is full. */
bool stomp__tx_hold(stomp_t *s, stomp_frame_t *f, stomp_tx_t *tx, stomp_cmd_t cmd, span_t a, span_t b,
                    const char *body, size_t body_len)
{
    size_t cost = a.n + b.n + body_len;
    if (tx->nops == STOMP_MAX_TX_OPS || tx->bytes + cost > (size_t)s->ws.x->cfg->ws_max_message * 4) {
        stomp__error(s, f, "transaction too large", "at most 1024 frames and 4 x ws_max_message bytes per transaction",
                     WS_CLOSE_POLICY);
        return false;
    }
    stomp_txop_t *op = malloc(sizeof(*op) + cost);
    if (!op) {
        stomp__error(s, f, "out of memory", NULL, WS_CLOSE_INTERNAL);
        return false;
    }
    op->next = NULL;
    op->cmd = cmd;
    op->a_len = (uint32_t)a.n;
    op->b_len = (uint32_t)b.n;
    op->body_len = body_len;
    memcpy(op->mem, a.p, a.n);
    if (b.n) memcpy(op->mem + a.n, b.p, b.n);
    if (body_len) memcpy(op->mem + a.n + b.n, body, body_len);
    *tx->tail = op;
    tx->tail = &op->next;
    tx->nops++;
    tx->bytes += cost;
    stomp__receipt(s, f);
    return true;
}

static void stomp__begin(stomp_t *s, stomp_frame_t *f)
{
    span_t t = stomp_header(f, "transaction");
    if (!t.p || !t.n || t.n > STOMP_MAX_ID) {
        stomp__proto_error(s, f, "missing or too long transaction header");
        return;
    }
    uint32_t open = 0;
    for (stomp_tx_t *tx = s->txs; tx; tx = tx->next, open++)
        if (tx->name_len == t.n && memcmp(tx->name, t.p, t.n) == 0) {
            stomp__proto_error(s, f, "transaction already open");
            return;
        }
    if (open == STOMP_MAX_TX) {
        stomp__error(s, f, "too many open transactions", "at most 16 per connection", WS_CLOSE_POLICY);
        return;
    }
    stomp_tx_t *tx = calloc(1, sizeof(*tx) + t.n);
    if (!tx) {
        stomp__error(s, f, "out of memory", NULL, WS_CLOSE_INTERNAL);
        return;
    }
    tx->tail = &tx->head;
    tx->name_len = (uint16_t)t.n;
    memcpy(tx->name, t.p, t.n);
    tx->next = s->txs;
    s->txs = tx;
    stomp__receipt(s, f);
}

static void stomp__publish(stomp_t *s, stomp_frame_t *f, span_t chan, span_t ev, const char *body, size_t n,
                           span_t receipt);

/* COMMIT runs the held operations in order; ABORT drops them. */
static void stomp__end_tx(stomp_t *s, stomp_frame_t *f, bool commit)
{
    bool bad;
    stomp_tx_t **link = NULL;
    stomp_tx_t *tx = stomp__tx_of(s, f, &bad, &link);
    if (bad) return;
    if (!tx) {
        stomp__proto_error(s, f, "missing transaction header");
        return;
    }
    *link = tx->next;
    for (stomp_txop_t *op = commit ? tx->head : NULL; op && !s->ws.close_sent; op = op->next) {
        span_t a = {op->mem, op->a_len}, b = {op->mem + op->a_len, op->b_len};
        if (op->cmd == STOMP_SEND)
            stomp__publish(s, f, a, b, op->mem + op->a_len + op->b_len, op->body_len, (span_t){"", 0});
        else stomp__ack_id(s, f, a, op->cmd == STOMP_NACK);
    }
    stomp__tx_free(tx);
    if (!s->ws.close_sent) stomp__receipt(s, f);
}

/* Publishes; the receipt (or the ERROR) goes once the store has committed it. */
static void stomp__publish(stomp_t *s, stomp_frame_t *f, span_t chan, span_t ev, const char *body, size_t n,
                           span_t receipt)
{
    xp_owed_t *e = xp_owed_push(&s->owed, receipt.p, receipt.p ? receipt.n : 0, true);
    if (!e) {
        stomp__error(s, f, "too many frames waiting", "too many SENDs waiting for their commit", WS_CLOSE_TRY_LATER);
        return;
    }
    hub_pubopt_t o = {.flags = MSG_FROM_HTTP, .origin = s};
    int rc = hub_publish_async(s->ws.x->hub, chan.p, chan.n, ev.p, ev.n, body, n, &o, stomp__published, s);
    if (rc < 0) xp_owed_settle(&s->owed, e, rc);
    stomp__answer_owed(s);
}

static void stomp__send_frame(stomp_t *s, stomp_frame_t *f)
{
    span_t name;
    char buf[HUB_MAX_CHANNEL + 1];
    int kind = stomp__dest(s, f, true, buf, &name);
    if (kind < 0) return;
    if (!s->ws.x->cfg->client_publish) {
        stomp__error(s, f, "publishing is disabled", "the server runs with client_publish = false", WS_CLOSE_POLICY);
        return;
    }
    if (!auth_can_publish(s->ws.id, name.p, name.n)) {
        xp_log_denial(s->ws.x, &s->ws.hc->base, s->ws.id, "publish to", name.p, name.n);
        stomp__error(s, f, "forbidden", "not allowed to send to this destination", WS_CLOSE_FORBIDDEN);
        return;
    }
    span_t ev = stomp_header(f, "event");
    if (ev.p && !hub_event_valid(ev.p, ev.n)) {
        stomp__proto_error(s, f, "invalid event header (1-64 of A-Z a-z 0-9 _ - . :)");
        return;
    }
    if (!ev.p) ev = SPAN_LIT("message");
    bool bad;
    stomp_tx_t *tx = stomp__tx_of(s, f, &bad, NULL);
    if (bad) return;
    if (kind == STOMP_DEST_QUEUE && !stomp__queue_room(s, f, name)) return; /* COMMIT: the hub's gate refuses */
    if (tx) {
        stomp__tx_hold(s, f, tx, STOMP_SEND, name, ev, f->body, f->body_len);
        return;
    }
    stomp__publish(s, f, name, ev, f->body, f->body_len, stomp_header(f, "receipt"));
}

static void stomp__frame(stomp_t *s, stomp_frame_t *f)
{
    if (f->cmd == STOMP_NONE || s->bye) return; /* heart-beat, or after DISCONNECT */
    if (!s->version && f->cmd != STOMP_CONNECT && f->cmd != STOMP_STOMP) {
        stomp__proto_error(s, f, "not connected: send CONNECT first");
        return;
    }
    switch (f->cmd) {
    case STOMP_CONNECT:
    case STOMP_STOMP: stomp__connect(s, f); break;
    case STOMP_SUBSCRIBE: stomp__subscribe(s, f); break;
    case STOMP_UNSUBSCRIBE: stomp__unsubscribe(s, f); break;
    case STOMP_SEND: stomp__send_frame(s, f); break;
    case STOMP_ACK: stomp__ack(s, f, false); break;
    case STOMP_NACK: stomp__ack(s, f, true); break;
    case STOMP_DISCONNECT:
        stomp__receipt(s, f);
        if (s->owed.n) s->bye = true; /* closed once the SENDs before it are answered */
        else stomp__close(s, WS_CLOSE_NORMAL, "disconnected");
        break;
    case STOMP_BEGIN: stomp__begin(s, f); break;
    case STOMP_COMMIT: stomp__end_tx(s, f, true); break;
    case STOMP_ABORT: stomp__end_tx(s, f, false); break;
    default: stomp__proto_error(s, f, "not a client frame"); break;
    }
}

/* Parses every whole frame in p[0..n); returns the bytes left over (an incomplete frame). */
static size_t stomp__feed(stomp_t *s, char *p, size_t n)
{
    const cfg_t *cfg = s->ws.x->cfg;
    stomp_limits_t lim = {.max_headers = STOMP_MAX_HEADERS,
                          .max_header_len = STOMP_MAX_LINE,
                          .max_frame_head = STOMP_MAX_HEAD,
                          .max_body = cfg->ws_max_message,
                          .version = s->version ? s->version : 12};
    size_t off = 0;
    while (off < n && !s->ws.close_sent) {
        stomp_frame_t f;
        const char *why = NULL;
        lim.version = s->version ? s->version : 12;
        ssize_t r = stomp_frame_parse(p + off, n - off, &lim, &f, &why);
        if (r == HR_EAGAIN) return n - off;
        if (r < 0) {
            stomp__error_r(s, stomp__raw_receipt(p + off, n - off), why ? why : "malformed frame", NULL,
                           WS_CLOSE_PROTOCOL);
            return 0;
        }
        stomp__frame(s, &f);
        off += (size_t)r;
    }
    return 0;
}

static size_t stomp__parse(void *ctx, char *p, size_t n)
{
    stomp_t *s = ctx;
    return s->ws.close_sent ? 0 : stomp__feed(s, p, n);
}

static void stomp__on_message(ws_t *ws, bool text, char *data, size_t n)
{
    (void)text;
    stomp_t *s = (stomp_t *)ws;
    /* the parser's limits bound a carried frame already; max is a backstop */
    int rc = ws_carry_feed(&s->in, data, n, (size_t)ws->x->cfg->ws_max_message + STOMP_MAX_HEAD + 16, stomp__parse, s);
    if (rc == HR_EFULL) stomp__error(s, NULL, "frame too large", NULL, WS_CLOSE_TOO_BIG);
    else if (rc < 0) stomp__error(s, NULL, "out of memory", NULL, WS_CLOSE_INTERNAL);
}

static void stomp__on_drain(ws_t *ws)
{
    stomp_t *s = (stomp_t *)ws;
    for (uint32_t i = 0; i < s->nsubs; i++)
        if (s->subs[i]->st) stream_drained(s->subs[i]->st);
        else stomp__queue_kick(s->subs[i]);
}

static void stomp__on_close(ws_t *ws)
{
    stomp_t *s = (stomp_t *)ws;
    tw_stop(&ws->hc->base.loop->wheel, &s->hb);
    for (uint32_t i = 0; i < s->nsubs; i++) stomp__sub_free(s->subs[i]);
    free(s->subs);
    ws_carry_free(&s->in);
    if (s->owed.waiting) hub_cancel(s->ws.x->hub, s); /* its SENDs complete unanswered */
    xp_owed_free(&s->owed);
    while (s->txs) { /* open transactions are aborted */
        stomp_tx_t *tx = s->txs;
        s->txs = tx->next;
        stomp__tx_free(tx);
    }
}

static void stomp__on_expire(ws_t *ws)
{
    stomp__error((stomp_t *)ws, NULL, "token expired", "the connection's token expired: reconnect with a new one",
                 WS_CLOSE_UNAUTHORIZED);
}

static const ws_app_t stomp_app = {
    .on_expire = stomp__on_expire,
    .xp = XP_STOMP,
    .subprotocols = stomp_protocols,
    .deflate = false, /* MESSAGE frames differ per subscriber: nothing to compress once and share */
    .on_message = stomp__on_message,
    .on_drain = stomp__on_drain,
    .on_close = stomp__on_close,
};

void stomp_serve(xp_ctx_t *x, http_conn_t *hc, http_req_t *req)
{
    stomp_t *s = (stomp_t *)ws_accept(x, hc, req, &stomp_app, sizeof(stomp_t), false, NULL);
    if (!s) return;
    tw_entry_init(&s->hb, stomp__hb);
    xp_owed_init(&s->owed);
    loop_timer(hc->base.loop, &s->hb, x->cfg->header_timeout_ms); /* CONNECT must come first, and soon */
}

/* ---- over a carrier ---- */

stomp_t *stomp_carried_open(xp_ctx_t *x, http_conn_t *hc, const stomp_carrier_t *car, auth_id_t *id)
{
    stomp_t *s = calloc(1, sizeof(*s));
    if (!s) {
        auth_unref(id);
        return NULL;
    }
    s->ws.hc = hc;
    s->ws.x = x;
    s->ws.app = &stomp_app;
    s->ws.id = id;
    s->ws.exp_ms = id && id->exp_ms > 0 ? (uint64_t)id->exp_ms : 0;
    s->ws.last_input_ms = loop_now(hc->base.loop);
    s->car = car;
    tw_entry_init(&s->hb, stomp__hb);
    xp_owed_init(&s->owed);
    loop_timer(hc->base.loop, &s->hb, x->cfg->header_timeout_ms);
    return s;
}

void stomp_carried_input(stomp_t *s, char *data, size_t n)
{
    s->ws.last_input_ms = loop_now(s->ws.hc->base.loop);
    if (!s->ws.close_sent) stomp__on_message(&s->ws, true, data, n);
}

void stomp_carried_drained(stomp_t *s) { stomp__on_drain(&s->ws); }

void stomp_carried_expired(stomp_t *s) { stomp__on_expire(&s->ws); }

void stomp_carried_free(stomp_t *s)
{
    stomp__on_close(&s->ws);
    if (s->ws.x->users) users_remove(s->ws.x->users, &s->ws.uc);
    auth_unref(s->ws.id);
    free(s);
}
