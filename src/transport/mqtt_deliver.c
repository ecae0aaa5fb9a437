/* mqtt_deliver.c - hub messages to MQTT subscribers; see mqtt.c for the broker's files.
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
 * wait in the session's FIFO (mqtt_max_queued, oldest dropped beyond; every session's FIFO
 * together within mqtt_max_queued_bytes_total, see mqtt_queue.h), which acknowledgements
 * and a drained socket pump. QoS 0 messages go at once or are dropped when the socket is backed
 * up (counted, like every transport's slow consumers); for an absent client they wait too
 * (mqtt_queue_qos0).
 *
 * Topic aliases (server to client, MQTT 5 clients whose CONNECT offers a Topic Alias Maximum):
 * the first PUBLISH of a topic carries the topic and a new alias, later ones the alias and an
 * empty topic. Aliases are assigned in order up to min(the client's maximum,
 * mqtt_topic_aliases_out) and never reassigned (topics beyond go with their name). Such a client
 * gets no shared whole PUBLISH: its head is its own, followed by the shared tail; clients without
 * aliases take the paths above unchanged. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"
#include "mqtt_internal.h"

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

/* ---- topic aliases (server to client) ---- */

static bool mqtt__oalias_eq(const hmap_node_t *node, const void *key, size_t n)
{
    const mqtt_oalias_t *a = container_of(node, mqtt_oalias_t, node);
    return a->n == n && memcmp(a->topic, key, n) == 0;
}

/* The alias of topic t on k: 0 when it has none and none can be given; otherwise its alias, with
 * *fresh set when it is a new one that mqtt__oalias_add must record once the PUBLISH is queued. */
static uint16_t mqtt__oalias_get(mqtt_conn_t *k, span_t t, bool *fresh)
{
    *fresh = false;
    if (k->oalias) {
        hmap_node_t *nd = hmap_get(k->oalias, t.p, t.n);
        if (nd) return container_of(nd, mqtt_oalias_t, node)->alias;
    }
    if (k->oalias_n >= k->oalias_max) return 0;
    *fresh = true;
    return (uint16_t)(k->oalias_n + 1);
}

/* Records alias a (k->oalias_n + 1) for topic t; on failure (memory) the topic simply keeps being
 * sent whole, but a was already sent with it: it is then only never used again. */
static void mqtt__oalias_add(mqtt_conn_t *k, span_t t, uint16_t a)
{
    k->oalias_n = a;
    if (!k->oalias) {
        hmap_t *h = malloc(sizeof(*h));
        if (!h || hmap_init(h, 8, mqtt__oalias_eq) < 0) {
            free(h);
            return;
        }
        k->oalias = h;
    }
    mqtt_oalias_t *e = malloc(sizeof(*e) + t.n);
    if (!e) return;
    e->alias = a;
    e->n = (uint16_t)t.n;
    memcpy(e->topic, t.p, t.n);
    hmap_insert(k->oalias, &e->node, hmap_hash(k->oalias, t.p, t.n));
}

void mqtt__oalias_free(mqtt_conn_t *k)
{
    if (!k->oalias) return;
    hmap_iter_t it;
    hmap_iter_init(&it, k->oalias);
    for (hmap_node_t *nd; (nd = hmap_iter_next(&it));) free(container_of(nd, mqtt_oalias_t, node));
    hmap_free(k->oalias);
    free(k->oalias);
    k->oalias = NULL;
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
    if (it->qos == 0 && !it->retain && !sub_id && !expiry && !k->oalias_max) {
        bytes_t *b = v5 ? msg_encoded(m, ENC_MQTT5_Q0, mqtt__enc_q0_v5) : msg_encoded(m, ENC_MQTT3_Q0, mqtt__enc_q0_v3);
        if (!b) return HR_ENOMEM;
        if (k->max_packet && b->len > k->max_packet) return HR_EINVAL;
        return mqtt__send(k, b, NULL, force);
    }
    uint32_t plen = v5 ? m->props_len : 0;
    bytes_t *body = plen ? msg_encoded(m, ENC_MQTT5_BODY, mqtt__enc_body5) : msg_encoded(m, ENC_MQTT_BODY, mqtt__enc_body);
    if (!body) return HR_ENOMEM;
    span_t topic = {m->channel, m->channel_len};
    bool fresh = false;
    uint16_t alias = k->oalias_max ? mqtt__oalias_get(k, topic, &fresh) : 0;
    span_t wire = alias && !fresh ? (span_t){"", 0} : topic;
    uint8_t head[MQTT_PUBLISH_HEAD_MAX(HUB_MAX_CHANNEL, 1)];
    ssize_t hn = mqtt_publish_head_write(head, sizeof(head), k->version, dup, it->qos, it->retain, wire, it->pid,
                                         alias, expiry, &sub_id, sub_id ? 1 : 0, plen, body->len);
    if (hn < 0 || (size_t)hn > sizeof(head)) return HR_EINVAL;
    if (k->max_packet && (size_t)hn + body->len > k->max_packet) return HR_EINVAL;
    bytes_t *h = bytes_copy(head, (size_t)hn);
    if (!h) return HR_ENOMEM;
    int rc = mqtt__send(k, h, body, force);
    bytes_unref(h);
    if (rc == 0 && fresh) mqtt__oalias_add(k, topic, alias);
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
void mqtt__pump(mqtt_conn_t *k)
{
    mqtt_sess_t *s = k->s;
    uint64_t now = 0;
    if (s && s->queue.n) mqtt__dirty(s);
    while (s && s->queue.n && mqtt__live(k)) {
        mq_item_t *it = mq_fifo_peek(&s->queue);
        msg_t *m = it->m; /* the FIFO's reference: dropped after the pop (which reads its size) */
        if (m->expiry_s && msg_expired(m, now ? now : (now = loop_wall_ms()))) {
            mq_fifo_pop(&s->queue);
            msg_unref(m);
            continue;
        }
        if (it->qos && s->out.n >= k->window) return;
        if (mqtt__put(k, it) == HR_EFULL) return;
        mq_fifo_pop(&s->queue);
        msg_unref(m);
    }
}

/* Hands message m to session s at qos (see the file comment for where it goes). */
void mqtt__offer(mqtt_sess_t *s, msg_t *m, uint8_t qos, bool retain, uint32_t sub_id)
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

void mqtt__on_publish(hub_tsub_t *t, msg_t *m)
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
void mqtt__resend(mqtt_conn_t *k)
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
bool mqtt__matches(const char *f, size_t fn, const char *t, size_t tn)
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

void mqtt__send_retained(chan_t *ch, void *arg)
{
    mqtt_sub_t *sub = arg;
    if (!mqtt__matches(sub->filter, sub->flen, ch->name, ch->name_len)) return;
    if (sub->filtered && !(sub->s->id && auth_can_subscribe(sub->s->id, ch->name, ch->name_len))) return;
    mqtt__offer(sub->s, ch->retained, mqtt__msg_qos(ch->retained, MQTT_SUB_QOS(sub->opts)), true, sub->sub_id);
}
