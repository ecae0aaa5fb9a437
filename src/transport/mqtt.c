/* mqtt.c - the MQTT 3.1.1 / 5.0 broker over TCP and over WebSocket; see mqtt.h.
 *
 * Two structs. A connection (mqtt_conn_t) is one network connection: over TCP it embeds its own
 * conn_t and reads packets straight from the read buffer; over WebSocket it is a ws_t
 * application whose binary messages form the packet stream (a packet may span messages), and
 * every packet it sends is wrapped in one WebSocket binary frame. A session (mqtt_sess_t) is
 * what MQTT keeps per client id across connections: subscriptions, the messages in flight, the
 * messages waiting, the incoming QoS 2 packet ids, the will. A connection attaches to a session
 * at CONNECT; when it goes, the session stays for its expiry interval (v3.1.1: clean session 0
 * gets mqtt_session_expiry; v5: what the client asks, capped by it), collecting messages for
 * its subscriptions, and a reconnect with clean start 0 resumes it: in-flight messages are sent
 * again with DUP (PUBRELs again), then the waiting ones.
 *
 * Delivery: a subscription is a hub_tsub_t in the hub's topic trie. A QoS 0 PUBLISH without
 * per-subscriber parts is encoded once per message and version (ENC_MQTT3_Q0 / ENC_MQTT5_Q0)
 * and shared; otherwise each subscriber queues a small head (fixed header, topic, packet id,
 * message expiry left, subscription identifier) followed by the shared tail (ENC_MQTT_BODY, or
 * ENC_MQTT5_BODY when the message carries MQTT 5 properties). The QoS is the subscription's,
 * capped by the publisher's (messages from HTTP, /ws and STOMP have none, so they go at the
 * subscription's QoS).
 *
 * Flow: QoS 1/2 messages go out while fewer than the window (mqtt_max_inflight, and for v5
 * the client's Receive Maximum) are unacknowledged and the socket takes them; otherwise they
 * wait in the session's FIFO (mqtt_max_queued, oldest dropped beyond), which acknowledgements
 * and a drained socket pump. QoS 0 messages go at once or are dropped when the socket is backed
 * up (counted, like every transport's slow consumers); for an absent client they wait too
 * (mqtt_queue_qos0).
 *
 * Errors: the codec refuses malformed packets with a reason code; mqtt__fail is the one place
 * that answers: CONNACK with the code while connecting (v3: the 3.1.1 return code when one
 * exists), DISCONNECT with it afterwards (v5), or a plain close (v3); logged once. */
#include "mqtt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/err.h"
#include "../core/log.h"
#include "mqtt_internal.h"


static bool mqtt__live(const mqtt_conn_t *k) { return k && k->connected && !k->said_bye && !k->c->closing; }

/* ---- session table ---- */

/* Client ids are chosen by clients: the table hashes them with a random key (siphash.h). */
static uint32_t mqtt__hash(const mqtt_server_t *srv, const char *s)
{
    return (uint32_t)siphash24(&srv->skey, s, strlen(s));
}

static mqtt_sess_t *mqtt__sess_find(mqtt_server_t *srv, const char *id)
{
    if (!srv->stab_cap) return NULL;
    uint32_t h = mqtt__hash(srv, id);
    for (mqtt_sess_t *s = srv->stab[h & (srv->stab_cap - 1)]; s; s = s->hnext)
        if (s->hash == h && strcmp(s->client_id, id) == 0) return s;
    return NULL;
}

static int mqtt__sess_insert(mqtt_server_t *srv, mqtt_sess_t *s)
{
    if (srv->nsess >= srv->stab_cap) {
        uint32_t cap = srv->stab_cap ? srv->stab_cap * 2 : 64;
        mqtt_sess_t **t = calloc(cap, sizeof(*t));
        if (!t) return HR_ENOMEM;
        for (uint32_t i = 0; i < srv->stab_cap; i++)
            for (mqtt_sess_t *e = srv->stab[i], *next; e; e = next) {
                next = e->hnext;
                e->hnext = t[e->hash & (cap - 1)];
                t[e->hash & (cap - 1)] = e;
            }
        free(srv->stab);
        srv->stab = t;
        srv->stab_cap = cap;
    }
    mqtt_sess_t **head = &srv->stab[s->hash & (srv->stab_cap - 1)];
    s->hnext = *head;
    *head = s;
    srv->nsess++;
    return 0;
}

static void mqtt__sess_remove(mqtt_server_t *srv, mqtt_sess_t *s)
{
    for (mqtt_sess_t **pp = &srv->stab[s->hash & (srv->stab_cap - 1)]; *pp; pp = &(*pp)->hnext)
        if (*pp == s) {
            *pp = s->hnext;
            srv->nsess--;
            return;
        }
}

/* A persistent session changed: written to the store before this loop iteration's commit. */
static void mqtt__dirty(mqtt_sess_t *s)
{
    if ((s->expiry_s || s->stored) && !list_linked(&s->dirty)) list_push_back(&s->srv->dirty, &s->dirty);
}

/* ---- sending ---- */

/* Queues a packet (and, when tail is set, a shared tail after it). reply: ignore the queue limit. */
static int mqtt__send(mqtt_conn_t *k, bytes_t *b, bytes_t *tail, bool reply)
{
    conn_t *c = k->c;
    if (c->closing || c->end_after_write) return HR_EIO;
    size_t total = b->len + (tail ? tail->len : 0);
    uint8_t wh[WS_MAX_HEADER];
    size_t hl = k->ws ? ws_header_write(wh, WS_OP_BINARY, true, false, total) : 0;
    if (!reply && !wq_empty(&c->wq) && c->wq.bytes + hl + total > c->wq.limit) return HR_EFULL;
    if (hl) {
        bytes_t *h = bytes_copy(wh, hl);
        if (!h) return HR_ENOMEM;
        conn_send_reply(c, h);
        bytes_unref(h);
    }
    conn_send_reply(c, b);
    if (tail) conn_send_reply(c, tail);
    return 0;
}

/* Encodes and sends a control packet (an answer the client is owed). */
static void mqtt__reply(mqtt_conn_t *k, const mqtt_pkt_t *p)
{
    bytes_t *b = mqtt_encode_new(p);
    if (b) mqtt__send(k, b, NULL, true);
    bytes_unref(b);
}

static void mqtt__ack(mqtt_conn_t *k, uint8_t type, uint16_t pid, uint8_t reason)
{
    mqtt_pkt_t p = {.type = type, .version = k->version, .packet_id = pid, .reason = k->version == MQTT_V5 ? reason : 0};
    mqtt__reply(k, &p);
}

static void mqtt__end(mqtt_conn_t *k)
{
    if (k->ws) ws_close(k->ws, WS_CLOSE_NORMAL, "MQTT session ended");
    else conn_end(k->c);
}

/* The one place that answers a violation (see the file comment): while connecting, a CONNACK
 * with reason (v5) or with its 3.1.1 return code when one exists (mqtt_v3_connack_code; also for
 * a protocol level nobody knows); once connected, DISCONNECT with reason (v5); v3.1.1 otherwise
 * just closes. */
static void mqtt__fail(mqtt_conn_t *k, uint8_t reason, const char *why)
{
    if (k->said_bye || k->c->closing) return;
    k->said_bye = true;
    const char *cid = k->s ? k->s->client_id : "-";
    if (reason == MQTT_RC_SERVER_SHUTTING_DOWN) log_debug("mqtt: fd %d: %s", k->c->w.fd, why);
    else if (reason == MQTT_RC_NOT_AUTHORIZED || reason == MQTT_RC_BAD_USER_OR_PASSWORD) /* logged by access.c */
        log_debug("mqtt: fd %d (%s): 0x%02x %s", k->c->w.fd, cid, reason, why);
    else log_info("mqtt: fd %d (%s): 0x%02x %s", k->c->w.fd, cid, reason, why);
    mqtt_pkt_t p = {.version = k->version, .reason = reason};
    if (!k->connected && k->version == MQTT_V5) {
        p.type = MQTT_CONNACK;
    } else if (!k->connected) {
        p = (mqtt_pkt_t){.type = MQTT_CONNACK, .version = MQTT_V311, .reason = mqtt_v3_connack_code(reason)};
        if (p.reason == 0xFF) p.type = 0;
    } else if (k->version == MQTT_V5) {
        p.type = MQTT_DISCONNECT;
        p.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
        p.props.reason_string = span_of(why);
    }
    if (p.type) mqtt__reply(k, &p);
    mqtt__end(k);
}

/* ---- delivery ---- */

/* A whole PUBLISH, QoS 0, no RETAIN, no per-subscriber properties: the same bytes for every
 * subscriber of one version. */
static bytes_t *mqtt__enc_q0(const msg_t *m, uint8_t version)
{
    uint32_t plen = version == MQTT_V5 ? m->props_len : 0;
    size_t body = (size_t)plen + m->data_len;
    uint8_t head[MQTT_PUBLISH_HEAD_MAX(HUB_MAX_CHANNEL, 0)];
    ssize_t hn = mqtt_publish_head_write(head, sizeof(head), version, false, 0, false,
                                         (span_t){m->channel, m->channel_len}, 0, 0, 0, NULL, 0, plen, body);
    if (hn < 0 || (size_t)hn > sizeof(head)) return NULL;
    bytes_t *b = bytes_new((size_t)hn + body);
    if (!b) return NULL;
    memcpy(b->data, head, (size_t)hn);
    if (plen) memcpy(b->data + hn, m->props, plen);
    memcpy(b->data + hn + plen, m->data, m->data_len);
    return b;
}
static bytes_t *mqtt__enc_q0_v3(const msg_t *m) { return mqtt__enc_q0(m, MQTT_V311); }
static bytes_t *mqtt__enc_q0_v5(const msg_t *m) { return mqtt__enc_q0(m, MQTT_V5); }
static bytes_t *mqtt__enc_body(const msg_t *m) { return bytes_copy(m->data, m->data_len); }

static bytes_t *mqtt__enc_body5(const msg_t *m)
{
    bytes_t *b = bytes_new((size_t)m->props_len + m->data_len);
    if (!b) return NULL;
    memcpy(b->data, m->props, m->props_len);
    memcpy(b->data + m->props_len, m->data, m->data_len);
    return b;
}

static uint8_t mqtt__msg_qos(const msg_t *m, uint8_t sub_qos)
{
    if (m->flags & MSG_FROM_HTTP) return sub_qos;
    uint8_t q = (m->flags & MSG_QOS2) ? 2 : (m->flags & MSG_QOS1) ? 1 : 0;
    return q < sub_qos ? q : sub_qos;
}

/* Writes one PUBLISH of it to k (it->pid for QoS > 0). 0; HR_EFULL when the write queue is over
 * its limit and force is not set (nothing queued); HR_EINVAL when the packet is over the
 * client's Maximum Packet Size (MQTT 5.0 3.1.2.11.4: not sent, as if delivered); HR_ENOMEM. */
static int mqtt__send_pub(mqtt_conn_t *k, const mq_item_t *it, bool dup, bool force)
{
    msg_t *m = it->m;
    bool v5 = k->version == MQTT_V5;
    uint32_t sub_id = v5 ? it->sub_id : 0, expiry = 0;
    if (v5 && m->expiry_s) { /* the time left, rounded up */
        uint64_t age = (loop_wall_ms() - m->time_ms) / 1000;
        expiry = age < m->expiry_s ? m->expiry_s - (uint32_t)age : 1;
    }
    if (it->qos == 0 && !it->retain && !sub_id && !expiry) {
        bytes_t *b = v5 ? msg_encoded(m, ENC_MQTT5_Q0, mqtt__enc_q0_v5) : msg_encoded(m, ENC_MQTT3_Q0, mqtt__enc_q0_v3);
        if (!b) return HR_ENOMEM;
        if (k->max_packet && b->len > k->max_packet) return HR_EINVAL;
        return mqtt__send(k, b, NULL, force);
    }
    uint32_t plen = v5 ? m->props_len : 0;
    bytes_t *body = plen ? msg_encoded(m, ENC_MQTT5_BODY, mqtt__enc_body5) : msg_encoded(m, ENC_MQTT_BODY, mqtt__enc_body);
    if (!body) return HR_ENOMEM;
    uint8_t head[MQTT_PUBLISH_HEAD_MAX(HUB_MAX_CHANNEL, 1)];
    ssize_t hn = mqtt_publish_head_write(head, sizeof(head), k->version, dup, it->qos, it->retain,
                                         (span_t){m->channel, m->channel_len}, it->pid, 0, expiry, &sub_id,
                                         sub_id ? 1 : 0, plen, body->len);
    if (hn < 0 || (size_t)hn > sizeof(head)) return HR_EINVAL;
    if (k->max_packet && (size_t)hn + body->len > k->max_packet) return HR_EINVAL;
    bytes_t *h = bytes_copy(head, (size_t)hn);
    if (!h) return HR_ENOMEM;
    int rc = mqtt__send(k, h, body, force);
    bytes_unref(h);
    return rc;
}

/* Sends it (the message borrowed) to the live connection k: QoS 0 as is, QoS > 0 into the
 * in-flight table. Returns HR_EFULL, with nothing changed, when the socket is backed up; every
 * other outcome (sent, or dropped and counted) returns 0. The caller checked the window. */
static int mqtt__put(mqtt_conn_t *k, const mq_item_t *it)
{
    mqtt_sess_t *s = k->s;
    metrics_t *mt = k->x->metrics;
    if (it->qos == 0) {
        int rc = mqtt__send_pub(k, it, false, false);
        if (rc == HR_EFULL) return rc;
        if (rc == 0) mt->delivered[XP_MQTT]++;
        else mt->queue_drops++;
        return 0;
    }
    mq_item_t x = *it;
    if (mq_flight_add(&s->out, &x, &x.pid) < 0) {
        mt->queue_drops++;
        return 0;
    }
    msg_ref(x.m);
    mqtt__dirty(s);
    int rc = mqtt__send_pub(k, &x, false, false);
    if (rc == 0) {
        mt->delivered[XP_MQTT]++;
        return 0;
    }
    mq_flight_del(&s->out, mq_flight_find(&s->out, x.pid));
    if (rc == HR_EFULL) return rc;
    mt->queue_drops++;
    return 0;
}

/* Keeps a message for later (client away, window full or socket backed up). */
void mqtt__keep(mqtt_sess_t *s, const mq_item_t *it)
{
    msg_ref(it->m);
    const cfg_t *cfg = s->x->cfg;
    int r = mq_fifo_push(&s->queue, it, cfg->mqtt_max_queued, cfg->mqtt_max_queued_bytes);
    if (r < 0) msg_unref(it->m);
    if (r != 0) {
        s->x->metrics->queue_drops += r > 0 ? (uint64_t)r : 1;
        if (!s->drop_logged)
            log_info("mqtt: session %s: queue over mqtt_max_queued (%u) or mqtt_max_queued_bytes (%llu): dropping the "
                     "oldest", s->client_id, cfg->mqtt_max_queued, (unsigned long long)cfg->mqtt_max_queued_bytes);
        s->drop_logged = true;
    }
    mqtt__dirty(s);
}

/* Sends what waits in the session's FIFO while the window and the socket allow. */
static void mqtt__pump(mqtt_conn_t *k)
{
    mqtt_sess_t *s = k->s;
    uint64_t now = 0;
    if (s && s->queue.n) mqtt__dirty(s);
    while (s && s->queue.n && mqtt__live(k)) {
        mq_item_t *it = mq_fifo_peek(&s->queue);
        if (it->m->expiry_s && msg_expired(it->m, now ? now : (now = loop_wall_ms()))) {
            msg_unref(it->m);
            mq_fifo_pop(&s->queue);
            continue;
        }
        if (it->qos && s->out.n >= k->window) return;
        if (mqtt__put(k, it) == HR_EFULL) return;
        msg_unref(it->m);
        mq_fifo_pop(&s->queue);
    }
}

/* Hands message m to session s at qos (see the file comment for where it goes). */
static void mqtt__offer(mqtt_sess_t *s, msg_t *m, uint8_t qos, bool retain, uint32_t sub_id)
{
    if (m->expiry_s && msg_expired(m, loop_wall_ms())) return;
    mq_item_t it = {.m = m, .sub_id = sub_id, .qos = qos, .retain = retain};
    mqtt_conn_t *k = s->conn;
    if (mqtt__live(k)) {
        if (qos == 0 || (!s->queue.n && s->out.n < k->window)) {
            if (mqtt__put(k, &it) == 0) return;
            if (qos == 0) { /* backed up: QoS 0 is not kept for a connected client */
                s->x->metrics->queue_drops++;
                return;
            }
        }
    } else if ((k && !s->expiry_s) || (qos == 0 && !s->x->cfg->mqtt_queue_qos0) || m->channel[0] == '$') {
        return; /* the session ends with this closing connection, or nothing to keep ($SYS figures
                 * are sent fresh on subscribe) */
    }
    mqtt__keep(s, &it);
}

static void mqtt__on_publish(hub_tsub_t *t, msg_t *m)
{
    mqtt_sub_t *sub = container_of(t, mqtt_sub_t, t);
    mqtt_sess_t *s = sub->s;
    if ((sub->opts & MQTT_SUB_NO_LOCAL) && s->conn && m->origin == s->conn) return;
    if (sub->filtered && !(s->id && auth_can_subscribe(s->id, m->channel, m->channel_len))) return;
    bool retain = (sub->opts & MQTT_SUB_RETAIN_AS_PUBLISHED) && (m->flags & MSG_RETAIN);
    mqtt__offer(s, m, mqtt__msg_qos(m, MQTT_SUB_QOS(sub->opts)), retain, sub->sub_id);
}

/* A reconnect resumed the session: unacknowledged PUBLISHes again with DUP, PUBRELs again, in
 * their original order (MQTT 5.0 4.4), then what waits. */
static void mqtt__resend(mqtt_conn_t *k)
{
    mqtt_sess_t *s = k->s;
    if (s->out.n) {
        mq_item_t **v = malloc(s->out.n * sizeof(*v));
        uint16_t *gone = malloc(s->out.n * sizeof(*gone));
        uint32_t n = v && gone ? mq_flight_ordered(&s->out, v) : 0, ngone = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (v[i]->state == MQ_RELEASED) mqtt__ack(k, MQTT_PUBREL, v[i]->pid, 0);
            else if (mqtt__send_pub(k, v[i], true, true) == HR_EINVAL) gone[ngone++] = v[i]->pid;
        }
        for (uint32_t i = 0; i < ngone; i++) mq_flight_del(&s->out, mq_flight_find(&s->out, gone[i]));
        free(v);
        free(gone);
    }
    mqtt__pump(k);
}

/* True when topic t matches filter f (no "$share/" prefix). */
static bool mqtt__matches(const char *f, size_t fn, const char *t, size_t tn)
{
    if (tn && t[0] == '$' && fn && (f[0] == '+' || f[0] == '#')) return false;
    size_t i = 0, j = 0;
    for (;;) {
        size_t fe = i, te = j;
        while (fe < fn && f[fe] != '/') fe++;
        if (fe - i == 1 && f[i] == '#') return true;
        while (te < tn && t[te] != '/') te++;
        if (j > tn) return false; /* the topic ran out of levels */
        if (!(fe - i == 1 && f[i] == '+') && (fe - i != te - j || memcmp(f + i, t + j, fe - i) != 0)) return false;
        bool fend = fe >= fn, tend = te >= tn;
        if (fend && tend) return true;
        if (fend) return false;
        if (tend) /* "a/#" matches "a" */
            return fn - (fe + 1) == 1 && f[fe + 1] == '#';
        i = fe + 1;
        j = te + 1;
    }
}


static void mqtt__send_retained(chan_t *ch, void *arg)
{
    mqtt_sub_t *sub = arg;
    if (!mqtt__matches(sub->filter, sub->flen, ch->name, ch->name_len)) return;
    if (sub->filtered && !(sub->s->id && auth_can_subscribe(sub->s->id, ch->name, ch->name_len))) return;
    mqtt__offer(sub->s, ch->retained, mqtt__msg_qos(ch->retained, MQTT_SUB_QOS(sub->opts)), true, sub->sub_id);
}

/* ---- subscriptions ---- */

static int mqtt__find_sub(mqtt_sess_t *s, span_t f)
{
    for (uint32_t i = 0; i < s->nsubs; i++)
        if (s->subs[i]->flen == f.n && memcmp(s->subs[i]->filter, f.p, f.n) == 0) return (int)i;
    return -1;
}

static void mqtt__drop_sub(mqtt_sess_t *s, uint32_t i)
{
    hub_topic_unsubscribe(s->x->hub, &s->subs[i]->t);
    free(s->subs[i]);
    s->subs[i] = s->subs[--s->nsubs];
}

/* Makes (or replaces) the subscription to f with options o. Returns it, or NULL with *code set. */
mqtt_sub_t *mqtt__sub_add(mqtt_sess_t *s, bool v5, span_t f, uint8_t o, uint32_t sub_id, bool *is_new,
                                 uint8_t *code)
{
    int old = mqtt__find_sub(s, f);
    *code = MQTT_RC_UNSPECIFIED;
    if (old < 0 && s->nsubs == MQTT_MAX_SUBS) {
        if (v5) *code = MQTT_RC_QUOTA_EXCEEDED;
        return NULL;
    }
    if (old < 0 && s->nsubs == s->capsubs) {
        uint32_t cap = s->capsubs ? s->capsubs * 2 : 4;
        mqtt_sub_t **ns = realloc(s->subs, cap * sizeof(*ns));
        if (!ns) return NULL;
        s->subs = ns;
        s->capsubs = cap;
    }
    mqtt_sub_t *sub = calloc(1, sizeof(*sub) + f.n);
    if (!sub) return NULL;
    sub->s = s;
    sub->opts = o;
    sub->sub_id = sub_id;
    sub->flen = (uint16_t)f.n;
    memcpy(sub->filter, f.p, f.n);
    sub->t.deliver = mqtt__on_publish;
    sub->t.owner = s;
    if (hub_topic_subscribe(s->x->hub, &sub->t, f.p, f.n) < 0) {
        free(sub);
        if (v5) *code = MQTT_RC_TOPIC_FILTER_INVALID;
        return NULL;
    }
    *is_new = old < 0;
    if (old >= 0) mqtt__drop_sub(s, (uint32_t)old); /* a new subscription replaces the old one */
    s->subs[s->nsubs++] = sub;
    *code = MQTT_SUB_QOS(o);
    return sub;
}

/* How id's permissions cover filter f (a shared subscription "$share/GROUP/F" is checked as F). */
static acl_cover_t mqtt__cover(const auth_id_t *id, span_t f)
{
    if (f.n > 7 && memcmp(f.p, "$share/", 7) == 0) {
        const char *slash = memchr(f.p + 7, '/', f.n - 7);
        if (slash) f = (span_t){slash + 1, (size_t)(f.p + f.n - slash - 1)};
    }
    return auth_cover(id, f.p, f.n);
}

static void mqtt__subscribe(mqtt_conn_t *k, const mqtt_pkt_t *p)
{
    mqtt_sess_t *s = k->s;
    uint8_t codes[256];
    mqtt_sub_t *fresh[256];
    bool is_new[256];
    uint32_t nc = 0;
    size_t off = 0;
    span_t f;
    uint8_t o;
    uint32_t sub_id = (p->props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)) ? p->props.sub_id : 0;
    while (mqtt_list_next(p, &off, &f, &o) && nc < sizeof(codes)) {
        acl_cover_t cover = mqtt__cover(k->id, f);
        if (cover == ACL_NONE) {
            xp_log_denial(k->x, k->c, k->id, "subscribe to", f.p, f.n);
            fresh[nc] = NULL;
            codes[nc++] = k->version == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED : 0x80;
            continue;
        }
        fresh[nc] = mqtt__sub_add(s, k->version == MQTT_V5, f, o, sub_id, &is_new[nc], &codes[nc]);
        if (fresh[nc]) fresh[nc]->filtered = cover == ACL_PARTIAL;
        nc++;
    }
    mqtt_pkt_t ack = {.type = MQTT_SUBACK, .version = k->version, .packet_id = p->packet_id};
    ack.list = (span_t){(const char *)codes, nc};
    ack.count = nc;
    mqtt__reply(k, &ack);
    /* retained messages after the SUBACK (never for shared subscriptions) */
    for (uint32_t i = 0; i < nc; i++) {
        mqtt_sub_t *sub = fresh[i];
        if (!sub || topic_entry_shared(&sub->t.e)) continue;
        uint8_t rh = MQTT_SUB_RETAIN_HANDLING(sub->opts);
        if (rh == 2 || (rh == 1 && !is_new[i])) continue;
        hub_each_retained(s->x->hub, mqtt__send_retained, sub);
        for (uint32_t j = 0; j < k->srv->nsys; j++) {
            msg_t *m = k->srv->sysmsg[j];
            if (mqtt__matches(sub->filter, sub->flen, m->channel, m->channel_len) &&
                (!sub->filtered || auth_can_subscribe(s->id, m->channel, m->channel_len)))
                mqtt__offer(s, m, 0, true, sub->sub_id);
        }
    }
}

static void mqtt__unsubscribe(mqtt_conn_t *k, const mqtt_pkt_t *p)
{
    uint8_t codes[256];
    uint32_t nc = 0;
    size_t off = 0;
    span_t f;
    uint8_t o;
    while (mqtt_list_next(p, &off, &f, &o) && nc < sizeof(codes)) {
        int i = mqtt__find_sub(k->s, f);
        if (i >= 0) mqtt__drop_sub(k->s, (uint32_t)i);
        codes[nc++] = i >= 0 ? 0 : MQTT_RC_NO_SUBSCRIPTION_EXISTED;
    }
    mqtt_pkt_t ack = {.type = MQTT_UNSUBACK, .version = k->version, .packet_id = p->packet_id};
    if (k->version == MQTT_V5) {
        ack.list = (span_t){(const char *)codes, nc};
        ack.count = nc;
    }
    mqtt__reply(k, &ack);
}

/* ---- publishing ---- */

/* The properties of a PUBLISH (or will) that travel with the message to MQTT 5 subscribers:
 * payload format, content type, response topic, correlation data and user properties, encoded.
 * NULL when there are none; *oom on failure. */
static bytes_t *mqtt__pass_props(const mqtt_props_t *in, bool *oom)
{
    enum { PASS = MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT) | MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE) |
                  MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC) | MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA) };
    *oom = false;
    if (!(in->present & PASS) && !in->user_count) return NULL;
    mqtt_props_t p = {.present = in->present & PASS};
    p.payload_format = in->payload_format;
    p.content_type = in->content_type;
    p.response_topic = in->response_topic;
    p.correlation_data = in->correlation_data;
    p.raw = in->raw; /* the encoder copies the User Properties from it */
    uint32_t plen;
    bytes_t *b = mqtt_publish_body_new(MQTT_V5, &p, (span_t){"", 0}, &plen);
    *oom = !b;
    return b;
}

/* The reason code for a publish the hub or the store refused (one PUBACK/PUBREC allows). */
static uint8_t mqtt__pub_reason(int rc)
{
    return rc == HR_EFULL || rc == HR_ESTOREFULL ? MQTT_RC_QUOTA_EXCEEDED : MQTT_RC_UNSPECIFIED;
}

static const char *mqtt__pub_why(int rc)
{
    return rc == HR_EFULL ? "publish failed: too many channels (max_channels)"
           : rc == HR_ESTOREFULL ? "publish failed: the store is full"
           : rc == HR_EUNAVAIL   ? "publish failed: the store is unavailable"
                                 : "publish failed";
}

/* Sends the acknowledgements at the front of the ring that are ready (in PUBLISH order). */
static void mqtt__ackw_flush(mqtt_conn_t *k)
{
    while (k->ackw_n && k->ackw[k->ackw_head].done) {
        mqtt_ackw_t a = k->ackw[k->ackw_head];
        k->ackw_head = (k->ackw_head + 1) & (k->ackw_cap - 1);
        k->ackw_n--;
        if (a.reason && k->version != MQTT_V5) { /* 3.1.1 cannot refuse in an ack: it resends after reconnecting */
            mqtt__fail(k, a.reason, "publish failed: the store could not take it");
            continue;
        }
        mqtt__ack(k, a.type, a.pid, a.reason);
    }
}

/* Owes an acknowledgement of type for pid: done (reason known now) or waiting for the commit.
 * False when too many are owed (the connection is failed). */
static bool mqtt__ackw_push(mqtt_conn_t *k, uint8_t type, uint16_t pid, bool done, uint8_t reason)
{
    if (done && !k->ackw_n) { /* nothing before it: at once */
        if (reason && k->version != MQTT_V5) mqtt__fail(k, reason, "publish failed");
        else mqtt__ack(k, type, pid, reason);
        return true;
    }
    if (k->ackw_n == k->ackw_cap) {
        uint32_t ncap = k->ackw_cap ? k->ackw_cap * 2 : 16;
        mqtt_ackw_t *n = ncap <= MQTT_MAX_ACKW ? malloc(ncap * sizeof(*n)) : NULL;
        if (!n) {
            mqtt__fail(k, MQTT_RC_RECEIVE_MAX_EXCEEDED, "too many publishes waiting for their acknowledgement");
            return false;
        }
        for (uint32_t i = 0; i < k->ackw_n; i++) n[i] = k->ackw[(k->ackw_head + i) & (k->ackw_cap - 1)];
        free(k->ackw);
        k->ackw = n;
        k->ackw_cap = ncap;
        k->ackw_head = 0;
    }
    k->ackw[(k->ackw_head + k->ackw_n++) & (k->ackw_cap - 1)] = (mqtt_ackw_t){pid, type, reason, done};
    if (!done) k->ackw_wait++;
    return true;
}

/* A QoS 1 or 2 publish of connection arg is committed (rc 0) or failed: its ack is ready. */
static void mqtt__published(void *arg, int rc, const msg_t *m, uint32_t reached)
{
    (void)m, (void)reached;
    mqtt_conn_t *k = arg;
    uint32_t i = 0;
    while (i < k->ackw_n && k->ackw[(k->ackw_head + i) & (k->ackw_cap - 1)].done) i++;
    if (i == k->ackw_n) return; /* cannot happen: completions come in order, one per waiting entry */
    mqtt_ackw_t *a = &k->ackw[(k->ackw_head + i) & (k->ackw_cap - 1)];
    a->done = true;
    k->ackw_wait--;
    if (rc < 0) {
        a->reason = mqtt__pub_reason(rc);
        if (a->type == MQTT_PUBREC && k->s) /* not published: a resend must publish it */
            for (uint32_t j = 0; j < k->s->nin2; j++)
                if (k->s->in2[j] == a->pid) {
                    k->s->in2[j] = k->s->in2[--k->s->nin2];
                    break;
                }
    }
    mqtt__ackw_flush(k);
}

/* Publishes into the hub as session s (the hub keeps or clears the retained message). k: the
 * connection that sent it, told through mqtt__published (QoS > 0); NULL for wills. */
static int mqtt__publish(mqtt_sess_t *s, mqtt_conn_t *k, span_t topic, span_t payload, uint8_t qos, bool retain,
                         uint32_t expiry_s, span_t props)
{
    hub_pubopt_t o = {.flags = (qos == 1 ? MSG_QOS1 : qos == 2 ? MSG_QOS2 : 0) | (retain ? MSG_RETAIN : 0),
                      .expiry_s = expiry_s, .props = props.p, .props_len = props.n, .origin = k};
    bool wait = k && qos;
    return hub_publish_async(s->x->hub, topic.p, topic.n, "message", 7, payload.p, payload.n, &o,
                             wait ? mqtt__published : NULL, wait ? k : NULL);
}

/* Resolves the topic of a v5 PUBLISH with a Topic Alias (setting or using it). 0 or a reason code
 * (after which the connection fails). */
static uint8_t mqtt__alias(mqtt_conn_t *k, const mqtt_pkt_t *p, span_t *topic)
{
    uint16_t a = p->props.topic_alias;
    if (a > k->naliases) return MQTT_RC_TOPIC_ALIAS_INVALID;
    if (!k->alias && !(k->alias = calloc((size_t)k->naliases + 1, sizeof(char *)))) return MQTT_RC_SERVER_UNAVAILABLE;
    if (topic->n) {
        char *t = malloc(topic->n + 1);
        if (!t) return MQTT_RC_SERVER_UNAVAILABLE;
        memcpy(t, topic->p, topic->n);
        t[topic->n] = 0;
        free(k->alias[a]);
        k->alias[a] = t;
    } else if (k->alias[a]) {
        *topic = span_of(k->alias[a]);
    } else {
        return MQTT_RC_PROTOCOL_ERROR;
    }
    return 0;
}

static void mqtt__on_publish_pkt(mqtt_conn_t *k, const mqtt_pkt_t *p)
{
    mqtt_sess_t *s = k->s;
    uint8_t qos = p->publish.qos;
    span_t topic = p->publish.topic;
    if (p->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS)) {
        uint8_t rc = mqtt__alias(k, p, &topic);
        if (rc) {
            mqtt__fail(k, rc, rc == MQTT_RC_PROTOCOL_ERROR ? "topic alias not set" : "topic alias over the maximum");
            return;
        }
    }
    if (!hub_channel_valid(topic.p, topic.n)) {
        if (qos && k->version == MQTT_V5) {
            mqtt__ackw_push(k, qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id, true, MQTT_RC_TOPIC_NAME_INVALID);
            return;
        }
        mqtt__fail(k, MQTT_RC_TOPIC_NAME_INVALID, "topic is not a valid herald channel name");
        return;
    }
    bool allowed = auth_can_publish(k->id, topic.p, topic.n);
    if (!allowed) {
        if (!k->denial_logged) xp_log_denial(k->x, k->c, k->id, "publish to", topic.p, topic.n);
        else k->x->auth->stats.denied++;
        k->denial_logged = true;
        if (qos && k->version == MQTT_V5) { /* MQTT 5: refused in the acknowledgement */
            mqtt__ackw_push(k, qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id, true, MQTT_RC_NOT_AUTHORIZED);
            return;
        }
        /* QoS 0, and MQTT 3.1.1 which cannot say no: acknowledged and dropped (as Mosquitto does) */
    }
    if (qos == 2) {
        for (uint32_t i = 0; i < s->nin2; i++)
            if (s->in2[i] == p->packet_id) { /* a resend before PUBREL: already published */
                mqtt__ackw_push(k, MQTT_PUBREC, p->packet_id, true, 0);
                return;
            }
        if (s->nin2 == MQTT_RECEIVE_MAX) {
            mqtt__fail(k, MQTT_RC_RECEIVE_MAX_EXCEEDED, "too many QoS 2 messages in flight");
            return;
        }
        if (!s->in2 && !(s->in2 = malloc(MQTT_RECEIVE_MAX * sizeof(uint16_t)))) {
            mqtt__fail(k, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
            return;
        }
    }
    bool oom = false;
    bytes_t *props = allowed ? mqtt__pass_props(&p->props, &oom) : NULL;
    uint32_t expiry = (p->props.present & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY)) ? p->props.message_expiry : 0;
    int rc = !allowed ? 1 /* acknowledged, not published */
             : oom    ? HR_ENOMEM
                 : mqtt__publish(s, k, topic, p->publish.payload, qos, p->publish.retain, expiry,
                                 props ? (span_t){(const char *)props->data, props->len} : (span_t){"", 0});
    bytes_unref(props);
    if (rc < 0 && !qos) {
        mqtt__fail(k, mqtt__pub_reason(rc), mqtt__pub_why(rc));
        return;
    }
    if (!qos) return;
    if (qos == 2 && rc >= 0) s->in2[s->nin2++] = p->packet_id; /* a resend is not published twice */
    mqtt__ackw_push(k, qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id, rc != 0, rc < 0 ? mqtt__pub_reason(rc) : 0);
}

/* ---- sessions ---- */

static void mqtt__will_publish(mqtt_sess_t *s)
{
    mqtt_will_t *w = s->will;
    s->will = NULL;
    s->will_at = MQTT_NEVER;
    if (!w) return;
    span_t topic = {w->mem, w->topic_len};
    if (hub_channel_valid(topic.p, topic.n))
        mqtt__publish(s, NULL, topic, (span_t){w->mem + w->topic_len, w->payload_len}, w->qos, w->retain, w->expiry_s,
                      (span_t){w->mem + w->topic_len + w->payload_len, w->props_len});
    free(w);
}

/* Frees a session. forget: it ends (its pending will goes out, unless discarded before, and the
 * store forgets it); otherwise only the memory goes (shutdown: the store keeps the record). */
void mqtt__sess_free(mqtt_sess_t *s, bool forget)
{
    store_t *st = s->x->hub->store;
    if (forget) {
        mqtt__will_publish(s);
        if (s->stored && st->ops->kv_del) st->ops->kv_del(st, MQTT_KV, s->client_id, strlen(s->client_id));
    }
    free(s->will);
    list_unlink(&s->dirty);
    tw_stop(&s->x->hub->loop->wheel, &s->timer);
    mqtt__sess_remove(s->srv, s);
    for (uint32_t i = 0; i < s->nsubs; i++) {
        hub_topic_unsubscribe(s->x->hub, &s->subs[i]->t);
        free(s->subs[i]);
    }
    free(s->subs);
    mq_flight_free(&s->out);
    mq_fifo_free(&s->queue);
    free(s->in2);
    free(s->client_id);
    free(s->owner);
    auth_unref(s->id);
    free(s);
}

static void mqtt__sess_arm(mqtt_sess_t *s)
{
    uint64_t next = s->will ? s->will_at : MQTT_NEVER;
    if (s->expires_at < next) next = s->expires_at;
    loop_t *loop = s->x->hub->loop;
    if (next == MQTT_NEVER) tw_stop(&loop->wheel, &s->timer);
    else loop_timer(loop, &s->timer, next > loop_now(loop) ? next - loop_now(loop) : 0);
}

/* While the client is away: the will delay has passed, or the session expired. */
static void mqtt__sess_timer(tw_entry_t *e)
{
    mqtt_sess_t *s = container_of(e, mqtt_sess_t, timer);
    uint64_t now = loop_now(s->x->hub->loop);
    if (s->will && now >= s->will_at) mqtt__will_publish(s);
    if (now >= s->expires_at) mqtt__sess_free(s, true);
    else mqtt__sess_arm(s);
}

mqtt_sess_t *mqtt__sess_new(mqtt_server_t *srv, const char *id, size_t n)
{
    mqtt_sess_t *s = calloc(1, sizeof(*s));
    if (!s || !(s->client_id = malloc(n + 1))) {
        free(s);
        return NULL;
    }
    memcpy(s->client_id, id, n);
    s->client_id[n] = 0;
    s->srv = srv;
    s->x = srv->x;
    s->hash = mqtt__hash(srv, s->client_id);
    s->will_at = s->expires_at = MQTT_NEVER;
    tw_entry_init(&s->timer, mqtt__sess_timer);
    list_init(&s->dirty);
    if (mqtt__sess_insert(srv, s) < 0) {
        free(s->client_id);
        free(s);
        return NULL;
    }
    return s;
}

/* Separates k from its session, whose client is away from now. Returns the session, or NULL. */
static mqtt_sess_t *mqtt__detach(mqtt_conn_t *k)
{
    mqtt_sess_t *s = k->s;
    if (!s) return NULL;
    k->s = NULL;
    s->conn = NULL;
    s->away_wall = loop_wall_ms();
    mqtt__dirty(s);
    return s;
}

/* Connection k leaves its session (closed, or taken over by a new connection). The will goes
 * out now, or is scheduled after its delay (MQTT 5.0 3.1.3.2.2: the shorter of the delay and the
 * session expiry). Unless a new connection is taking the session over, the session ends now
 * (expiry 0) or is kept until it expires. */
static void mqtt__leave(mqtt_conn_t *k, bool takeover)
{
    mqtt_sess_t *s = mqtt__detach(k);
    if (s) mqtt__away(s, takeover, (uint64_t)s->expiry_s * 1000);
}

/* The client is away (left now, or, for a restored session, earlier): the will goes out now or
 * after its delay; unless a new connection takes the session over, the session ends (expiry 0,
 * or shutting down) or is kept expires_in_ms more. */
void mqtt__away(mqtt_sess_t *s, bool takeover, uint64_t expires_in_ms)
{
    uint64_t now = loop_now(s->x->hub->loop);
    if (s->will) {
        uint32_t d = s->will->delay_s < s->expiry_s ? s->will->delay_s : s->expiry_s;
        if (d == 0) mqtt__will_publish(s);
        else s->will_at = now + (uint64_t)d * 1000;
    }
    if (takeover) return;
    if (s->expiry_s == 0 || expires_in_ms == 0) {
        mqtt__sess_free(s, true);
        return;
    }
    s->expires_at = s->expiry_s == UINT32_MAX ? MQTT_NEVER : now + expires_in_ms;
    mqtt__sess_arm(s);
}

static mqtt_will_t *mqtt__will_new(const mqtt_pkt_t *p, bool *oom)
{
    *oom = false;
    if (!p->connect.will) return NULL;
    const mqtt_props_t *wp = &p->connect.will_props;
    bytes_t *props = mqtt__pass_props(wp, oom);
    if (*oom) return NULL;
    size_t tn = p->connect.will_topic.n, pn = p->connect.will_payload.n, rn = props ? props->len : 0;
    mqtt_will_t *w = malloc(sizeof(*w) + tn + pn + rn);
    if (!w) {
        bytes_unref(props);
        *oom = true;
        return NULL;
    }
    w->delay_s = (wp->present & MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY)) ? wp->will_delay : 0;
    w->expiry_s = (wp->present & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY)) ? wp->message_expiry : 0;
    w->topic_len = (uint32_t)tn;
    w->payload_len = (uint32_t)pn;
    w->props_len = (uint32_t)rn;
    w->qos = p->connect.will_qos;
    w->retain = p->connect.will_retain;
    memcpy(w->mem, p->connect.will_topic.p, tn);
    memcpy(w->mem + tn, p->connect.will_payload.p, pn);
    if (rn) memcpy(w->mem + tn + pn, props->data, rn);
    bytes_unref(props);
    return w;
}

static void mqtt__keepalive(tw_entry_t *e);

/* Who the client of CONNECT p is: its password (a token, or a password-file user), else the
 * connection's identity (anonymous, or the WebSocket handshake's). NULL when refused (answered);
 * otherwise a new reference. */
static auth_id_t *mqtt__who(mqtt_conn_t *k, const mqtt_pkt_t *p)
{
    auth_t *a = k->x->auth;
    auth_id_t *who = NULL;
    const char *why = "bad user name or password";
    if (a->enabled && p->connect.has_password) {
        span_t u = p->connect.has_username ? p->connect.username : (span_t){"", 0};
        if (auth_login(a, u.p, u.n, p->connect.password.p, p->connect.password.n, &who, &why) < 0) {
            xp_log_refused(k->x, k->c, why);
            mqtt__fail(k, MQTT_RC_BAD_USER_OR_PASSWORD, why);
            return NULL;
        }
    } else {
        who = auth_ref(k->id);
    }
    if (!auth_has_any(who)) {
        xp_log_denial(k->x, k->c, who, "connect", NULL, 0);
        auth_unref(who);
        mqtt__fail(k, MQTT_RC_NOT_AUTHORIZED, "not authorized: send a token (or user and password) in CONNECT");
        return NULL;
    }
    if (p->connect.will && !auth_can_publish(who, p->connect.will_topic.p, p->connect.will_topic.n)) {
        xp_log_denial(k->x, k->c, who, "publish the will to", p->connect.will_topic.p, p->connect.will_topic.n);
        auth_unref(who);
        mqtt__fail(k, MQTT_RC_NOT_AUTHORIZED, "not allowed to publish the will topic");
        return NULL;
    }
    return who;
}

/* The connection (and its session) act as who from now (taking the reference); the connection
 * ends when who's credential expires. */
static void mqtt__set_who(mqtt_conn_t *k, auth_id_t *who)
{
    auth_unref(k->id);
    k->id = who;
    auth_unref(k->s->id);
    k->s->id = auth_ref(who);
    if (k->ws) {
        ws_set_id(k->ws, auth_ref(who));
        return;
    }
    /* TCP: the connection's base timer, done with the CONNECT deadline, now waits for the expiry */
    uint64_t in = xp_expires_in(who);
    conn_timer(k->c, in == UINT64_MAX ? 0 : in ? in : 1);
}

/* A resumed session's subscriptions under the (maybe different) permissions of its new token:
 * those no longer allowed end; the others are checked per message where they are covered in part. */
static void mqtt__recheck(mqtt_sess_t *s)
{
    for (uint32_t i = 0; i < s->nsubs;) {
        mqtt_sub_t *sub = s->subs[i];
        acl_cover_t c = mqtt__cover(s->id, (span_t){sub->filter, sub->flen});
        if (c == ACL_NONE) {
            log_info("mqtt: session %s: subscription '%s' no longer allowed: ended", s->client_id, sub->filter);
            mqtt__drop_sub(s, i);
            continue;
        }
        sub->filtered = c == ACL_PARTIAL;
        i++;
    }
}

static void mqtt__expired(mqtt_conn_t *k)
{
    if (k->c->closing || k->said_bye) return;
    k->x->auth->stats.expired++;
    if (!k->connected) {
        mqtt__end(k);
        return;
    }
    mqtt__fail(k, MQTT_RC_MAX_CONNECT_TIME, "token expired");
}


static void mqtt__connect(mqtt_conn_t *k, const mqtt_pkt_t *p)
{
    mqtt_server_t *srv = k->srv;
    const cfg_t *cfg = k->x->cfg;
    k->version = p->version;
    bool v5 = k->version == MQTT_V5, clean = p->connect.clean_start;
    if (srv->closed) {
        mqtt__fail(k, MQTT_RC_SERVER_SHUTTING_DOWN, "server shutting down");
        return;
    }
    const char *cid = p->connect.client_id.p;
    size_t cn = p->connect.client_id.n;
    char assigned[40] = "";
    if (cn == 0) {
        if (!v5 && !clean) {
            mqtt__fail(k, MQTT_RC_CLIENT_ID_INVALID, "an empty client identifier needs a clean session");
            return;
        }
        snprintf(assigned, sizeof(assigned), "herald-%" PRIu64, ++k->x->sessions);
        cid = assigned;
        cn = strlen(assigned);
    }
    if (cn > MQTT_MAX_CLIENT_ID || memchr(cid, 0, cn)) {
        mqtt__fail(k, MQTT_RC_CLIENT_ID_INVALID, "client identifier longer than 256 bytes");
        return;
    }
    char id[MQTT_MAX_CLIENT_ID + 1];
    memcpy(id, cid, cn);
    id[cn] = 0;
    auth_id_t *who = mqtt__who(k, p);
    if (!who) return;
    const char *owner = who->kind == AUTH_USER ? who->sub_id : who->kind == AUTH_KEY ? "$api-key" : "";
    /* the session expiry this connection gets */
    uint32_t want = v5 ? ((p->props.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY)) ? p->props.session_expiry : 0)
                       : (clean ? 0 : UINT32_MAX);
    uint32_t cap = cfg->mqtt_session_expiry;
    uint32_t expiry = want < cap ? want : cap;
    mqtt_sess_t *s = mqtt__sess_find(srv, id);
    /* nobody takes over another user's device; an anonymous session (also one saved before access
     * control was turned on) may be claimed by a user, as any anonymous client could take it */
    const char *had = s && s->owner ? s->owner : "";
    if (s && strcmp(had, owner) != 0 && had[0]) {
        xp_log_denial(k->x, k->c, who, "use the client identifier", id, cn);
        auth_unref(who);
        mqtt__fail(k, MQTT_RC_NOT_AUTHORIZED, "the client identifier belongs to another user");
        return;
    }
    bool oom;
    mqtt_will_t *will = mqtt__will_new(p, &oom);
    if (oom) {
        auth_unref(who);
        mqtt__fail(k, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
        return;
    }
    if (s && s->conn) { /* takeover: the older connection is closed, its will handled as for any loss */
        mqtt_conn_t *old = s->conn;
        mqtt__leave(old, true);
        mqtt__fail(old, MQTT_RC_SESSION_TAKEN_OVER, "session taken over by a new connection");
    }
    if (s && clean) { /* clean start discards the old session (its pending will goes out) */
        mqtt__sess_free(s, true);
        s = NULL;
    }
    bool present = s != NULL;
    if (s) { /* resumed: the client is back before its will was due */
        free(s->will);
        s->will = NULL;
        s->will_at = s->expires_at = MQTT_NEVER;
        tw_stop(&k->c->loop->wheel, &s->timer);
    } else if (!(s = mqtt__sess_new(srv, id, cn)) || !(s->owner = strdup(owner))) {
        if (s) mqtt__sess_free(s, true);
        free(will);
        auth_unref(who);
        mqtt__fail(k, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
        return;
    }
    if (strcmp(s->owner, owner) != 0) { /* claimed */
        char *o = strdup(owner);
        if (o) {
            free(s->owner);
            s->owner = o;
            mqtt__dirty(s);
        }
    }
    s->conn = k;
    k->s = s;
    mqtt__set_who(k, who);
    if (present) mqtt__recheck(s);
    s->will = will;
    s->expiry_s = expiry;
    k->expiry0 = v5 && want == 0;
    k->keepalive = p->connect.keep_alive;
    k->window = cfg->mqtt_max_inflight;
    if (v5 && (p->props.present & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX)) && p->props.receive_max < k->window)
        k->window = p->props.receive_max;
    k->max_packet = v5 && (p->props.present & MQTT_PROP_BIT(MQTT_PROP_MAX_PACKET_SIZE)) ? p->props.max_packet_size : 0;
    k->naliases = v5 ? (uint16_t)cfg->mqtt_topic_aliases : 0;
    mqtt_pkt_t a = {.type = MQTT_CONNACK, .version = k->version};
    a.connack.session_present = present;
    if (v5) {
        mqtt_props_t *pr = &a.props;
        pr->present = MQTT_PROP_BIT(MQTT_PROP_RETAIN_AVAILABLE) | MQTT_PROP_BIT(MQTT_PROP_WILDCARD_SUB_AVAILABLE) |
                      MQTT_PROP_BIT(MQTT_PROP_SUB_ID_AVAILABLE) | MQTT_PROP_BIT(MQTT_PROP_SHARED_SUB_AVAILABLE) |
                      MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAX) | MQTT_PROP_BIT(MQTT_PROP_MAX_PACKET_SIZE) |
                      MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX);
        pr->retain_available = pr->wildcard_sub_available = pr->sub_id_available = pr->shared_sub_available = 1;
        pr->topic_alias_max = k->naliases;
        pr->receive_max = MQTT_RECEIVE_MAX;
        pr->max_packet_size = cfg->mqtt_max_packet;
        if (expiry != want) { /* granted less than asked (MQTT 5.0 3.2.2.3.2) */
            pr->present |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
            pr->session_expiry = expiry;
        }
        if (assigned[0]) {
            pr->present |= MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_ID);
            pr->assigned_client_id = span_of(assigned);
        }
    }
    mqtt__reply(k, &a);
    k->connected = true;
    if (k->keepalive) loop_timer(k->c->loop, &k->ka, (uint64_t)k->keepalive * 1500);
    else tw_stop(&k->c->loop->wheel, &k->ka); /* WebSocket: the CONNECT deadline */
    if (present) mqtt__resend(k);
}

static void mqtt__disconnect(mqtt_conn_t *k, const mqtt_pkt_t *p)
{
    mqtt_sess_t *s = k->s;
    if (p->props.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY)) {
        if (k->expiry0 && p->props.session_expiry) { /* MQTT 5.0 3.14.2.2.2 */
            mqtt__fail(k, MQTT_RC_PROTOCOL_ERROR, "session expiry set on DISCONNECT after 0 on CONNECT");
            return;
        }
        uint32_t cap = k->x->cfg->mqtt_session_expiry;
        s->expiry_s = p->props.session_expiry < cap ? p->props.session_expiry : cap;
    }
    if (p->reason != MQTT_RC_DISCONNECT_WITH_WILL) { /* a normal disconnect discards the will */
        free(s->will);
        s->will = NULL;
    }
    k->said_bye = true;
    mqtt__end(k);
}

/* ---- packets ---- */

static void mqtt__acked(mqtt_conn_t *k, mq_item_t *it)
{
    mq_flight_del(&k->s->out, it);
    mqtt__pump(k);
}

static void mqtt__packet(mqtt_conn_t *k, const mqtt_pkt_t *p)
{
    mq_item_t *it;
    if (p->type != MQTT_CONNECT && !k->s) return; /* refused or shutting down */
    if (k->s && p->type != MQTT_PINGREQ && (p->type != MQTT_PUBLISH || p->publish.qos == 2)) mqtt__dirty(k->s);
    switch (p->type) {
    case MQTT_CONNECT: mqtt__connect(k, p); break;
    case MQTT_PUBLISH: mqtt__on_publish_pkt(k, p); break;
    case MQTT_PUBACK:
        if ((it = mq_flight_find(&k->s->out, p->packet_id)) && it->qos == 1) mqtt__acked(k, it);
        break;
    case MQTT_PUBCOMP:
        if ((it = mq_flight_find(&k->s->out, p->packet_id)) && it->qos == 2) mqtt__acked(k, it);
        break;
    case MQTT_PUBREC:
        it = mq_flight_find(&k->s->out, p->packet_id);
        if (it && it->qos == 2 && p->reason >= 0x80) {
            mqtt__acked(k, it);
            break;
        }
        if (it && it->qos == 2) it->state = MQ_RELEASED;
        mqtt__ack(k, MQTT_PUBREL, p->packet_id, it && it->qos == 2 ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND);
        break;
    case MQTT_PUBREL: {
        mqtt_sess_t *s = k->s;
        bool found = false;
        for (uint32_t i = 0; i < s->nin2 && !found; i++)
            if (s->in2[i] == p->packet_id) {
                s->in2[i] = s->in2[--s->nin2];
                found = true;
            }
        mqtt__ack(k, MQTT_PUBCOMP, p->packet_id, found ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND);
        break;
    }
    case MQTT_SUBSCRIBE: mqtt__subscribe(k, p); break;
    case MQTT_UNSUBSCRIBE: mqtt__unsubscribe(k, p); break;
    case MQTT_PINGREQ: {
        mqtt_pkt_t r = {.type = MQTT_PINGRESP, .version = k->version};
        mqtt__reply(k, &r);
        break;
    }
    case MQTT_DISCONNECT: mqtt__disconnect(k, p); break;
    case MQTT_AUTH: mqtt__fail(k, MQTT_RC_BAD_AUTH_METHOD, "enhanced authentication is not supported"); break;
    default: mqtt__fail(k, MQTT_RC_PROTOCOL_ERROR, "unexpected packet"); break;
    }
}

/* Decodes and handles every whole packet in p[0..n); returns the bytes of an incomplete one left
 * at the end. */
static size_t mqtt__feed(mqtt_conn_t *k, const char *p, size_t n)
{
    size_t off = 0;
    while (off < n && !k->said_bye && !k->c->closing) {
        /* a client that sends requests (PINGREQ, SUBSCRIBE, QoS 1 PUBLISH...) without reading the
         * replies: the rest waits, unparsed, until the queue drains (TCP; ws.c pauses WebSocket) */
        if (!k->ws && k->c->wq.bytes >= k->c->wq.limit) {
            conn_hold_input(k->c);
            return n - off;
        }
        mqtt_opts_t o = {MQTT_ROLE_SERVER, k->version, k->x->cfg->mqtt_max_packet};
        mqtt_pkt_t pkt;
        mqtt_err_t err;
        ssize_t r = mqtt_decode(p + off, n - off, &o, &pkt, &err);
        if (r == HR_EAGAIN) return n - off;
        if (r < 0) {
            if (!k->version) k->version = err.version; /* a refused CONNECT: answer at its level */
            mqtt__fail(k, err.reason, err.why);
            return 0;
        }
        mqtt__packet(k, &pkt);
        off += (size_t)r;
    }
    return 0;
}

static void mqtt__keepalive(tw_entry_t *e)
{
    mqtt_conn_t *k = container_of(e, mqtt_conn_t, ka);
    if (k->c->closing) return;
    if (!k->s) { /* over WebSocket, the keep-alive timer is first the CONNECT deadline */
        k->x->metrics->connect_timeouts++;
        log_info("mqtt: fd %d: no CONNECT within header_timeout: closed", k->c->w.fd);
        if (k->ws) ws_close(k->ws, WS_CLOSE_POLICY, "no CONNECT in time");
        return;
    }
    uint64_t now = loop_now(k->c->loop), limit = (uint64_t)k->keepalive * 1500;
    uint64_t last = k->last_rx_ms;
    if (now - last >= limit) {
        mqtt__fail(k, MQTT_RC_KEEP_ALIVE_TIMEOUT, "keep alive timeout");
        return;
    }
    loop_timer(k->c->loop, &k->ka, limit - (now - last));
}

/* The connection is gone: leave the session (will, expiry), free the connection's state. */
static void mqtt__conn_free(mqtt_conn_t *k)
{
    tw_stop(&k->c->loop->wheel, &k->ka);
    if (k->ackw_wait) hub_cancel(k->x->hub, k); /* its publishes complete unacknowledged */
    free(k->ackw);
    list_unlink(&k->link);
    mqtt__leave(k, false);
    if (k->alias)
        for (uint32_t i = 0; i <= k->naliases; i++) free(k->alias[i]);
    free(k->alias);
    ws_carry_free(&k->in);
    auth_unref(k->id);
    k->id = NULL;
}

static void mqtt__conn_init(mqtt_conn_t *k, xp_ctx_t *x, conn_t *c, ws_t *ws)
{
    k->x = x;
    k->srv = x->mqtt;
    k->c = c;
    k->ws = ws;
    k->id = ws ? auth_ref(ws->id) : auth_anonymous(x->auth);
    tw_entry_init(&k->ka, mqtt__keepalive);
    k->last_rx_ms = loop_now(c->loop);
    list_push_back(&k->srv->conns, &k->link);
}

/* ---- TCP ---- */

static void mqtt__tcp_read(conn_t *c)
{
    mqtt_tcp_t *t = container_of(c, mqtt_tcp_t, base);
    t->k.last_rx_ms = loop_now(c->loop);
    size_t left = mqtt__feed(&t->k, c->rbuf, c->rlen);
    if (c->closing) return;
    conn_consume(c, (uint32_t)(c->rlen - left));
    if (t->k.said_bye && c->rlen) conn_consume(c, c->rlen);
}

static void mqtt__tcp_drain(conn_t *c) { mqtt__pump(&container_of(c, mqtt_tcp_t, base)->k); }

/* The base timer of a TCP connection: the CONNECT deadline from accept, then the credential's
 * expiry (mqtt__set_who). */
static void mqtt__tcp_timer(conn_t *c)
{
    mqtt_conn_t *k = &container_of(c, mqtt_tcp_t, base)->k;
    if (k->said_bye || c->closing) return;
    if (k->connected) {
        mqtt__expired(k);
        return;
    }
    char peer[64];
    log_info("mqtt: %s: no CONNECT within header_timeout: closed", conn_peer(c, peer, sizeof(peer)));
    k->x->metrics->connect_timeouts++;
    conn_close(c, HR_ETIMEDOUT);
}

static void mqtt__tcp_close(conn_t *c)
{
    mqtt_tcp_t *t = container_of(c, mqtt_tcp_t, base);
    iplimit_release(t->k.x->ipl, c->ipl);
    mqtt__conn_free(&t->k);
    t->k.x->metrics->connections[XP_MQTT]--;
    t->k.srv->nconns--;
    free(t);
}

static void mqtt__tcp_eof(conn_t *c) { conn_close(c, 0); }

static const conn_ops_t mqtt_tcp_ops = {
    .on_read = mqtt__tcp_read,
    .on_eof = mqtt__tcp_eof,
    .on_drain = mqtt__tcp_drain,
    .on_timer = mqtt__tcp_timer,
    .on_close = mqtt__tcp_close,
};

static void mqtt__accept(listener_t *l, int fd)
{
    mqtt_server_t *srv = l->ctx;
    xp_ctx_t *x = srv->x;
    ipl_entry_t *ie = NULL;
    if (x->ipl && iplimit_admit(x->ipl, fd, loop_now(l->loop), &ie) < 0) { /* nothing to answer before CONNECT */
        close(fd);
        x->metrics->rejected++;
        return;
    }
    mqtt_tcp_t *t = calloc(1, sizeof(*t));
    if (!t || srv->nconns >= x->cfg->max_connections || l->loop->stopping ||
        conn_init(&t->base, l->loop, fd, &mqtt_tcp_ops, x->cfg->mqtt_max_packet + MQTT_MAX_HEADER,
                  x->cfg->max_queued_bytes) < 0) {
        free(t);
        close(fd);
        iplimit_release(x->ipl, ie);
        x->metrics->rejected++;
        return;
    }
    t->base.ipl = ie;
    mqtt__conn_init(&t->k, x, &t->base, NULL);
    conn_timer(&t->base, x->cfg->header_timeout_ms); /* CONNECT must come first, and soon */
    srv->nconns++;
    x->metrics->accepted++;
    x->metrics->connections[XP_MQTT]++;
}

/* ---- WebSocket (/mqtt) ---- */

static size_t mqtt__parse(void *ctx, char *p, size_t n) { return mqtt__feed(ctx, p, n); }

static void mqtt__ws_message(ws_t *ws, bool text, char *data, size_t n)
{
    mqtt_conn_t *k = &((mqtt_wsc_t *)ws)->k;
    k->last_rx_ms = loop_now(k->c->loop);
    if (text) {
        ws_close(ws, WS_CLOSE_UNSUPPORTED, "MQTT over WebSocket uses binary messages");
        return;
    }
    int rc = ws_carry_feed(&k->in, data, n, (size_t)k->x->cfg->mqtt_max_packet + MQTT_MAX_HEADER, mqtt__parse, k);
    if (rc == HR_EFULL) mqtt__fail(k, MQTT_RC_PACKET_TOO_LARGE, "packet too large");
    else if (rc < 0) mqtt__fail(k, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
}

static void mqtt__ws_drain(ws_t *ws) { mqtt__pump(&((mqtt_wsc_t *)ws)->k); }

static void mqtt__ws_close(ws_t *ws) { mqtt__conn_free(&((mqtt_wsc_t *)ws)->k); }

static const char *const mqtt_protocols[] = {"mqtt", NULL};

static void mqtt__ws_expire(ws_t *ws) { mqtt__expired(&((mqtt_wsc_t *)ws)->k); }

static const ws_app_t mqtt_ws_app = {
    .on_expire = mqtt__ws_expire,
    .xp = XP_MQTT,
    .subprotocols = mqtt_protocols,
    .deflate = false,
    .on_message = mqtt__ws_message,
    .on_drain = mqtt__ws_drain,
    .on_close = mqtt__ws_close,
};

void mqtt_ws_serve(xp_ctx_t *x, http_conn_t *hc, http_req_t *req)
{
    if (!x->mqtt || x->mqtt->closed) {
        http_error(hc, HR_ENOTFOUND, "MQTT is not enabled");
        return;
    }
    mqtt_wsc_t *w = (mqtt_wsc_t *)ws_accept(x, hc, req, &mqtt_ws_app, sizeof(mqtt_wsc_t), true, NULL);
    if (!w) return;
    mqtt__conn_init(&w->k, x, &hc->base, &w->ws);
    loop_timer(hc->base.loop, &w->k.ka, x->cfg->header_timeout_ms); /* CONNECT must come first, and soon */
}

/* ---- server ---- */

int mqtt_server_open(mqtt_server_t *srv, xp_ctx_t *x, loop_t *loop)
{
    memset(srv, 0, sizeof(*srv));
    srv->x = x;
    list_init(&srv->conns);
    list_init(&srv->dirty);
    list_init(&srv->saving);
    x->mqtt = srv;
    sip_key_random(&srv->skey);
    srv->started_ms = loop_wall_ms();
    tw_entry_init(&srv->sys, mqtt__sys);
    if (x->cfg->mqtt_addr[0]) {
        int rc = listener_open(&srv->listener, loop, x->cfg->mqtt_addr, mqtt__accept, srv);
        if (rc < 0) return rc;
        srv->open = true;
    }
    store_t *st = x->hub->store;
    if (st->ops->kv_each && st->ops->kv_each(st, MQTT_KV, mqtt__restore_one, srv) < 0)
        log_warn("mqtt: could not restore every saved session");
    if (srv->restored) log_info("mqtt: %u persistent sessions restored", srv->restored);
    if (x->cfg->mqtt_sys_interval_ms) mqtt__sys(&srv->sys);
    return 0;
}

void mqtt_server_close(mqtt_server_t *srv)
{
    tw_stop(&srv->x->hub->loop->wheel, &srv->sys);
    for (uint32_t i = 0; i < srv->nsys; i++) msg_unref(srv->sysmsg[i]);
    srv->nsys = 0;
    if (srv->open) listener_close(&srv->listener);
    srv->open = false;
    srv->closed = true;
    list_node_t *pos, *tmp;
    list_each_safe(pos, tmp, &srv->conns)
    {
        mqtt_conn_t *k = container_of(pos, mqtt_conn_t, link);
        if (!k->ws) mqtt__fail(k, MQTT_RC_SERVER_SHUTTING_DOWN, "server shutting down");
        k->said_bye = true; /* WebSockets: closed by the HTTP server (Close 1001); nothing more is read */
        mqtt_sess_t *s = mqtt__detach(k);
        if (s) { /* shutting down is not the client's fault: no will */
            free(s->will);
            s->will = NULL;
        }
        if (k->ws) continue;
        bool drained;
        wq_flush(&k->c->wq, k->c->w.fd, &drained);
        conn_close(k->c, HR_ESHUTDOWN);
    }
    /* persistent sessions are saved (they come back at the next start); then every one is freed */
    mqtt_server_persist(srv);
    for (uint32_t i = 0; i < srv->stab_cap; i++)
        while (srv->stab[i]) mqtt__sess_free(srv->stab[i], false);
    free(srv->stab);
    srv->stab = NULL;
    srv->stab_cap = 0;
}
