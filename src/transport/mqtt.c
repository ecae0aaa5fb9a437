/* mqtt.c - MQTT 3.1.1 / 5.0 sessions over TCP and over WebSocket; see mqtt.h.
 *
 * One session struct serves both carriers: over TCP it embeds its own conn_t and reads packets
 * straight from the read buffer; over WebSocket it is a ws_t application whose binary messages
 * form the packet stream (a packet may span messages), and every packet it sends is wrapped in
 * one WebSocket binary frame.
 *
 * Delivery: a subscription is a hub_tsub_t in the hub's topic trie. A QoS 0 PUBLISH without
 * per-subscriber parts is encoded once per message and version (ENC_MQTT3_Q0 / ENC_MQTT5_Q0)
 * and shared; otherwise each subscriber queues a small head (fixed header, topic, packet id,
 * subscription identifier) followed by the shared payload (ENC_MQTT_BODY). The QoS is the
 * subscription's, capped by the publisher's (messages from HTTP, /ws and STOMP have none, so
 * they go at the subscription's QoS).
 *
 * QoS: incoming QoS 1 is published then PUBACKed; incoming QoS 2 is published on receipt and
 * its packet id remembered until PUBREL, so a resent PUBLISH is not published twice. Outgoing
 * QoS 1/2 packets are tracked (PUBACK; PUBREC -> PUBREL -> PUBCOMP) in a bounded window
 * (MQTT_INFLIGHT); a subscriber whose window is full has further QoS > 0 messages dropped and
 * counted, like a full write queue. Sessions are not kept after a disconnect yet: clean sessions
 * only (a CONNECT asking for a persistent session is served as a clean one, session present 0).
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
#include "mqtt_codec.h"
#include "ws.h"

#define MQTT_INFLIGHT 1024
#define MQTT_MAX_SUBS 1024
#define MQTT_MAX_CLIENT_ID 256

typedef struct mqtt_sess mqtt_sess_t;

typedef struct {
    hub_tsub_t t;
    mqtt_sess_t *s;
    uint8_t opts; /* SUBSCRIBE options byte */
    uint32_t sub_id;
    uint16_t flen;
    char filter[];
} mqtt_sub_t;

typedef struct {
    uint16_t pid;
    uint8_t state; /* 1: waiting for PUBACK/PUBREC, 2: waiting for PUBCOMP */
} mqtt_out_t;

struct mqtt_sess {
    xp_ctx_t *x;
    mqtt_server_t *srv;
    conn_t *c;
    ws_t *ws;                 /* set when carried over WebSocket */
    list_node_t link;         /* in srv->sessions */
    tw_entry_t ka;            /* keepalive check */
    uint8_t version;          /* the level the peer speaks: 0 until CONNECT (or a refused one) says */
    bool connected;           /* CONNACK accepted it */
    bool publishing;          /* inside our own hub_publish (no-local) */
    bool said_bye;            /* DISCONNECT or CONNACK refusal queued */
    uint16_t keepalive;
    uint16_t next_pid;
    uint64_t last_rx_ms;      /* loop time of the last input (keepalive) */
    uint32_t nout, nin2, nsubs, capsubs;
    mqtt_out_t *out;          /* outgoing QoS > 0 in flight */
    uint16_t *in2;            /* incoming QoS 2 packet ids awaiting PUBREL */
    mqtt_sub_t **subs;
    ws_carry_t in;            /* WebSocket: a packet cut at the end of a message */
    char *client_id;
    /* will (published when the connection ends without a normal DISCONNECT) */
    char *will_topic, *will_payload;
    uint32_t will_topic_len, will_payload_len;
    uint8_t will_qos;
    bool will_retain;
};

typedef struct {
    conn_t base;
    mqtt_sess_t s;
} mqtt_tcp_t;

typedef struct {
    ws_t ws;
    mqtt_sess_t s;
} mqtt_wsc_t;

/* ---- sending ---- */

/* Queues a packet (and, when tail is set, a shared tail after it). reply: ignore the queue limit. */
static int mqtt__send(mqtt_sess_t *s, bytes_t *b, bytes_t *tail, bool reply)
{
    conn_t *c = s->c;
    if (c->closing || c->end_after_write) return HR_EIO;
    size_t total = b->len + (tail ? tail->len : 0);
    uint8_t wh[WS_MAX_HEADER];
    size_t hl = s->ws ? ws_header_write(wh, WS_OP_BINARY, true, false, total) : 0;
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
static void mqtt__reply(mqtt_sess_t *s, const mqtt_pkt_t *p)
{
    bytes_t *b = mqtt_encode_new(p);
    if (b) mqtt__send(s, b, NULL, true);
    bytes_unref(b);
}

static void mqtt__ack(mqtt_sess_t *s, uint8_t type, uint16_t pid, uint8_t reason)
{
    mqtt_pkt_t p = {.type = type, .version = s->version, .packet_id = pid, .reason = s->version == MQTT_V5 ? reason : 0};
    mqtt__reply(s, &p);
}

static void mqtt__end(mqtt_sess_t *s)
{
    if (s->ws) ws_close(s->ws, WS_CLOSE_NORMAL, "MQTT session ended");
    else conn_end(s->c);
}

/* The one place that answers a violation (see the file comment): while connecting, a CONNACK
 * with reason (v5) or with its 3.1.1 return code when one exists (mqtt_v3_connack_code; also for
 * a protocol level nobody knows); once connected, DISCONNECT with reason (v5); v3.1.1 otherwise
 * just closes. */
static void mqtt__fail(mqtt_sess_t *s, uint8_t reason, const char *why)
{
    if (s->said_bye || s->c->closing) return;
    s->said_bye = true;
    if (reason == MQTT_RC_SERVER_SHUTTING_DOWN) log_debug("mqtt: fd %d: %s", s->c->w.fd, why);
    else log_info("mqtt: fd %d (%s): 0x%02x %s", s->c->w.fd, s->client_id ? s->client_id : "-", reason, why);
    mqtt_pkt_t p = {.version = s->version, .reason = reason};
    if (!s->connected && s->version == MQTT_V5) {
        p.type = MQTT_CONNACK;
    } else if (!s->connected) {
        p = (mqtt_pkt_t){.type = MQTT_CONNACK, .version = MQTT_V311, .reason = mqtt_v3_connack_code(reason)};
        if (p.reason == 0xFF) p.type = 0;
    } else if (s->version == MQTT_V5) {
        p.type = MQTT_DISCONNECT;
        p.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
        p.props.reason_string = span_of(why);
    }
    if (p.type) mqtt__reply(s, &p);
    mqtt__end(s);
}

/* ---- delivery ---- */

static bytes_t *mqtt__enc_q0(const msg_t *m, uint8_t version)
{
    mqtt_pkt_t p = {.type = MQTT_PUBLISH, .version = version};
    p.publish.topic = (span_t){m->channel, m->channel_len};
    p.publish.payload = (span_t){m->data, m->data_len};
    return mqtt_encode_new(&p);
}
static bytes_t *mqtt__enc_q0_v3(const msg_t *m) { return mqtt__enc_q0(m, MQTT_V311); }
static bytes_t *mqtt__enc_q0_v5(const msg_t *m) { return mqtt__enc_q0(m, MQTT_V5); }
static bytes_t *mqtt__enc_body(const msg_t *m) { return bytes_copy(m->data, m->data_len); }

static uint8_t mqtt__msg_qos(const msg_t *m, uint8_t sub_qos)
{
    if (m->flags & MSG_FROM_HTTP) return sub_qos;
    uint8_t q = (m->flags & MSG_QOS2) ? 2 : (m->flags & MSG_QOS1) ? 1 : 0;
    return q < sub_qos ? q : sub_qos;
}

static uint16_t mqtt__pid(mqtt_sess_t *s)
{
    for (;;) {
        if (++s->next_pid == 0) s->next_pid = 1;
        bool used = false;
        for (uint32_t i = 0; i < s->nout && !used; i++) used = s->out[i].pid == s->next_pid;
        if (!used) return s->next_pid;
    }
}

/* Sends m to s at qos with the given retain flag and subscription identifier (0: none). */
static void mqtt__deliver(mqtt_sess_t *s, msg_t *m, uint8_t qos, bool retain, uint32_t sub_id)
{
    if (!s->connected || s->said_bye) return;
    metrics_t *mt = s->x->metrics;
    if (qos == 0 && !retain && !(sub_id && s->version == MQTT_V5)) {
        bytes_t *b = s->version == MQTT_V5 ? msg_encoded(m, ENC_MQTT5_Q0, mqtt__enc_q0_v5)
                                           : msg_encoded(m, ENC_MQTT3_Q0, mqtt__enc_q0_v3);
        if (!b) return;
        if (mqtt__send(s, b, NULL, false) == 0) mt->delivered[XP_MQTT]++;
        else mt->queue_drops++;
        return;
    }
    if (qos > 0 && (s->nout == MQTT_INFLIGHT || (!s->out && !(s->out = malloc(MQTT_INFLIGHT * sizeof(mqtt_out_t)))))) {
        mt->queue_drops++; /* the window is full: the client is not keeping up */
        return;
    }
    bytes_t *body = msg_encoded(m, ENC_MQTT_BODY, mqtt__enc_body);
    if (!body) return;
    uint16_t pid = qos ? mqtt__pid(s) : 0;
    uint8_t head[MQTT_PUBLISH_HEAD_MAX(HUB_MAX_CHANNEL, 1)];
    uint32_t ids[1] = {sub_id};
    ssize_t hn = mqtt_publish_head_write(head, sizeof(head), s->version, false, qos, retain,
                                         (span_t){m->channel, m->channel_len}, pid, 0, ids,
                                         sub_id && s->version == MQTT_V5 ? 1 : 0, 0, body->len);
    if (hn < 0 || (size_t)hn > sizeof(head)) return;
    bytes_t *h = bytes_copy(head, (size_t)hn);
    if (!h) return;
    int rc = mqtt__send(s, h, body, false);
    bytes_unref(h);
    if (rc < 0) {
        mt->queue_drops++;
        return;
    }
    mt->delivered[XP_MQTT]++;
    if (qos) s->out[s->nout++] = (mqtt_out_t){pid, 1};
}

static void mqtt__on_publish(hub_tsub_t *t, msg_t *m)
{
    mqtt_sub_t *sub = container_of(t, mqtt_sub_t, t);
    mqtt_sess_t *s = sub->s;
    if ((sub->opts & MQTT_SUB_NO_LOCAL) && s->publishing) return;
    bool retain = (sub->opts & MQTT_SUB_RETAIN_AS_PUBLISHED) && (m->flags & MSG_RETAIN);
    mqtt__deliver(s, m, mqtt__msg_qos(m, MQTT_SUB_QOS(sub->opts)), retain, sub->sub_id);
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
    mqtt__deliver(sub->s, ch->retained, mqtt__msg_qos(ch->retained, MQTT_SUB_QOS(sub->opts)), true, sub->sub_id);
}

/* ---- packets ---- */

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

static void mqtt__subscribe(mqtt_sess_t *s, const mqtt_pkt_t *p)
{
    uint8_t codes[256];
    uint32_t nc = 0;
    size_t off = 0;
    span_t f;
    uint8_t o;
    mqtt_sub_t *fresh[256];
    bool is_new[256];
    while (mqtt_list_next(p, &off, &f, &o) && nc < sizeof(codes)) {
        uint8_t qos = MQTT_SUB_QOS(o);
        int old = mqtt__find_sub(s, f);
        if (old < 0 && s->nsubs == MQTT_MAX_SUBS) {
            codes[nc] = s->version == MQTT_V5 ? MQTT_RC_QUOTA_EXCEEDED : 0x80;
            fresh[nc++] = NULL;
            continue;
        }
        mqtt_sub_t *sub = calloc(1, sizeof(*sub) + f.n);
        if (!sub) {
            codes[nc] = 0x80;
            fresh[nc++] = NULL;
            continue;
        }
        sub->s = s;
        sub->opts = o;
        sub->sub_id = (p->props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)) ? p->props.sub_id : 0;
        sub->flen = (uint16_t)f.n;
        memcpy(sub->filter, f.p, f.n);
        sub->t.deliver = mqtt__on_publish;
        sub->t.owner = s;
        if (hub_topic_subscribe(s->x->hub, &sub->t, f.p, f.n) < 0) {
            free(sub);
            codes[nc] = s->version == MQTT_V5 ? MQTT_RC_TOPIC_FILTER_INVALID : 0x80;
            fresh[nc++] = NULL;
            continue;
        }
        is_new[nc] = old < 0;
        if (old >= 0) mqtt__drop_sub(s, (uint32_t)old); /* a new subscription replaces the old one */
        if (s->nsubs == s->capsubs) {
            uint32_t cap = s->capsubs ? s->capsubs * 2 : 4;
            mqtt_sub_t **ns = realloc(s->subs, cap * sizeof(*ns));
            if (!ns) {
                hub_topic_unsubscribe(s->x->hub, &sub->t);
                free(sub);
                codes[nc] = 0x80;
                fresh[nc++] = NULL;
                continue;
            }
            s->subs = ns;
            s->capsubs = cap;
        }
        s->subs[s->nsubs++] = sub;
        codes[nc] = qos;
        fresh[nc++] = sub;
    }
    mqtt_pkt_t ack = {.type = MQTT_SUBACK, .version = s->version, .packet_id = p->packet_id};
    ack.list = (span_t){(const char *)codes, nc};
    ack.count = nc;
    mqtt__reply(s, &ack);
    /* retained messages after the SUBACK (never for shared subscriptions) */
    for (uint32_t i = 0; i < nc; i++) {
        mqtt_sub_t *sub = fresh[i];
        if (!sub || topic_entry_shared(&sub->t.e)) continue;
        uint8_t rh = MQTT_SUB_RETAIN_HANDLING(sub->opts);
        if (rh == 2 || (rh == 1 && !is_new[i])) continue;
        hub_each_retained(s->x->hub, mqtt__send_retained, sub);
        for (uint32_t k = 0; k < s->srv->nsys; k++) {
            msg_t *m = s->srv->sysmsg[k];
            if (mqtt__matches(sub->filter, sub->flen, m->channel, m->channel_len))
                mqtt__deliver(s, m, 0, true, sub->sub_id);
        }
    }
}

static void mqtt__unsubscribe(mqtt_sess_t *s, const mqtt_pkt_t *p)
{
    uint8_t codes[256];
    uint32_t nc = 0;
    size_t off = 0;
    span_t f;
    uint8_t o;
    while (mqtt_list_next(p, &off, &f, &o) && nc < sizeof(codes)) {
        int i = mqtt__find_sub(s, f);
        if (i >= 0) mqtt__drop_sub(s, (uint32_t)i);
        codes[nc++] = i >= 0 ? 0 : MQTT_RC_NO_SUBSCRIPTION_EXISTED;
    }
    mqtt_pkt_t ack = {.type = MQTT_UNSUBACK, .version = s->version, .packet_id = p->packet_id};
    if (s->version == MQTT_V5) {
        ack.list = (span_t){(const char *)codes, nc};
        ack.count = nc;
    }
    mqtt__reply(s, &ack);
}

/* Publishes into the hub as this session (the hub keeps or clears the retained message). */
static int mqtt__publish(mqtt_sess_t *s, span_t topic, span_t payload, uint8_t qos, bool retain)
{
    uint32_t flags = (qos == 1 ? MSG_QOS1 : qos == 2 ? MSG_QOS2 : 0) | (retain ? MSG_RETAIN : 0);
    uint64_t id;
    uint32_t reached;
    s->publishing = true;
    int rc = hub_publish_ex(s->x->hub, topic.p, topic.n, "message", 7, payload.p, payload.n, flags, &id, &reached);
    s->publishing = false;
    return rc;
}

static void mqtt__on_publish_pkt(mqtt_sess_t *s, const mqtt_pkt_t *p)
{
    uint8_t qos = p->publish.qos;
    span_t topic = p->publish.topic;
    if (!hub_channel_valid(topic.p, topic.n)) {
        if (qos && s->version == MQTT_V5) {
            mqtt__ack(s, qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id, MQTT_RC_TOPIC_NAME_INVALID);
            return;
        }
        mqtt__fail(s, MQTT_RC_TOPIC_NAME_INVALID, "topic is not a valid herald channel name");
        return;
    }
    if (qos == 2) {
        for (uint32_t i = 0; i < s->nin2; i++)
            if (s->in2[i] == p->packet_id) { /* a resend before PUBREL: already published */
                mqtt__ack(s, MQTT_PUBREC, p->packet_id, 0);
                return;
            }
        if (s->nin2 == MQTT_INFLIGHT) {
            mqtt__fail(s, MQTT_RC_RECEIVE_MAX_EXCEEDED, "too many QoS 2 messages in flight");
            return;
        }
    }
    int rc = mqtt__publish(s, topic, p->publish.payload, qos, p->publish.retain);
    if (rc < 0) {
        if (qos && s->version == MQTT_V5) mqtt__ack(s, qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id, 0x80);
        else mqtt__fail(s, MQTT_RC_UNSPECIFIED, "publish failed");
        return;
    }
    if (qos == 1) mqtt__ack(s, MQTT_PUBACK, p->packet_id, 0);
    if (qos == 2) {
        if (!s->in2 && !(s->in2 = malloc(MQTT_INFLIGHT * sizeof(uint16_t)))) return;
        s->in2[s->nin2++] = p->packet_id;
        mqtt__ack(s, MQTT_PUBREC, p->packet_id, 0);
    }
}

static int mqtt__out_find(mqtt_sess_t *s, uint16_t pid)
{
    for (uint32_t i = 0; i < s->nout; i++)
        if (s->out[i].pid == pid) return (int)i;
    return -1;
}

static void mqtt__out_done(mqtt_sess_t *s, int i) { s->out[i] = s->out[--s->nout]; }

static void mqtt__keepalive(tw_entry_t *e);

static void mqtt__connect(mqtt_sess_t *s, const mqtt_pkt_t *p)
{
    s->version = p->version;
    const char *cid = p->connect.client_id.p;
    size_t cn = p->connect.client_id.n;
    char assigned[40] = "";
    if (cn == 0) {
        if (s->version == MQTT_V311 && !p->connect.clean_start) {
            mqtt__fail(s, MQTT_RC_CLIENT_ID_INVALID, "an empty client identifier needs a clean session");
            return;
        }
        snprintf(assigned, sizeof(assigned), "herald-%" PRIu64, ++s->x->sessions);
        cid = assigned;
        cn = strlen(assigned);
    }
    if (cn > MQTT_MAX_CLIENT_ID) {
        mqtt__fail(s, MQTT_RC_CLIENT_ID_INVALID, "client identifier longer than 256 bytes");
        return;
    }
    s->client_id = malloc(cn + 1);
    if (!s->client_id) {
        mqtt__fail(s, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
        return;
    }
    memcpy(s->client_id, cid, cn);
    s->client_id[cn] = 0;
    /* session takeover: an older connection with the same client id is closed */
    list_node_t *pos, *tmp;
    list_each_safe(pos, tmp, &s->srv->sessions)
    {
        mqtt_sess_t *o = container_of(pos, mqtt_sess_t, link);
        /* its will is published when it closes (no will delay: MQTT 5.0 section 3.1.2.5) */
        if (o != s && o->client_id && strcmp(o->client_id, s->client_id) == 0)
            mqtt__fail(o, MQTT_RC_SESSION_TAKEN_OVER, "session taken over by a new connection");
    }
    if (p->connect.will) {
        s->will_topic = malloc(p->connect.will_topic.n + 1);
        s->will_payload = malloc(p->connect.will_payload.n + 1);
        if (!s->will_topic || !s->will_payload) {
            mqtt__fail(s, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
            return;
        }
        memcpy(s->will_topic, p->connect.will_topic.p, p->connect.will_topic.n);
        memcpy(s->will_payload, p->connect.will_payload.p, p->connect.will_payload.n);
        s->will_topic_len = (uint32_t)p->connect.will_topic.n;
        s->will_payload_len = (uint32_t)p->connect.will_payload.n;
        s->will_qos = p->connect.will_qos;
        s->will_retain = p->connect.will_retain;
    }
    s->keepalive = p->connect.keep_alive;
    mqtt_pkt_t a = {.type = MQTT_CONNACK, .version = s->version};
    if (s->version == MQTT_V5) {
        mqtt_props_t *pr = &a.props;
        pr->present = MQTT_PROP_BIT(MQTT_PROP_RETAIN_AVAILABLE) | MQTT_PROP_BIT(MQTT_PROP_WILDCARD_SUB_AVAILABLE) |
                      MQTT_PROP_BIT(MQTT_PROP_SUB_ID_AVAILABLE) | MQTT_PROP_BIT(MQTT_PROP_SHARED_SUB_AVAILABLE) |
                      MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAX) | MQTT_PROP_BIT(MQTT_PROP_MAX_PACKET_SIZE) |
                      MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX);
        pr->retain_available = pr->wildcard_sub_available = pr->sub_id_available = pr->shared_sub_available = 1;
        pr->topic_alias_max = 0;
        pr->receive_max = MQTT_INFLIGHT;
        pr->max_packet_size = s->x->cfg->mqtt_max_packet;
        if (assigned[0]) {
            pr->present |= MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_ID);
            pr->assigned_client_id = span_of(assigned);
        }
    }
    mqtt__reply(s, &a);
    s->connected = true;
    if (s->keepalive) loop_timer(s->c->loop, &s->ka, (uint64_t)s->keepalive * 1500);
}

static void mqtt__packet(mqtt_sess_t *s, const mqtt_pkt_t *p)
{
    int i;
    switch (p->type) {
    case MQTT_CONNECT: mqtt__connect(s, p); break;
    case MQTT_PUBLISH: mqtt__on_publish_pkt(s, p); break;
    case MQTT_PUBACK:
    case MQTT_PUBCOMP:
        if ((i = mqtt__out_find(s, p->packet_id)) >= 0) mqtt__out_done(s, i);
        break;
    case MQTT_PUBREC:
        i = mqtt__out_find(s, p->packet_id);
        if (i >= 0 && p->reason >= 0x80) {
            mqtt__out_done(s, i);
            break;
        }
        if (i >= 0) s->out[i].state = 2;
        mqtt__ack(s, MQTT_PUBREL, p->packet_id, i >= 0 ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND);
        break;
    case MQTT_PUBREL: {
        bool found = false;
        for (uint32_t k = 0; k < s->nin2 && !found; k++)
            if (s->in2[k] == p->packet_id) {
                s->in2[k] = s->in2[--s->nin2];
                found = true;
            }
        mqtt__ack(s, MQTT_PUBCOMP, p->packet_id, found ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND);
        break;
    }
    case MQTT_SUBSCRIBE: mqtt__subscribe(s, p); break;
    case MQTT_UNSUBSCRIBE: mqtt__unsubscribe(s, p); break;
    case MQTT_PINGREQ: {
        mqtt_pkt_t r = {.type = MQTT_PINGRESP, .version = s->version};
        mqtt__reply(s, &r);
        break;
    }
    case MQTT_DISCONNECT:
        if (p->reason != MQTT_RC_DISCONNECT_WITH_WILL) { /* a normal disconnect discards the will */
            free(s->will_topic);
            s->will_topic = NULL;
        }
        s->said_bye = true;
        mqtt__end(s);
        break;
    case MQTT_AUTH: mqtt__fail(s, MQTT_RC_BAD_AUTH_METHOD, "enhanced authentication is not supported"); break;
    default: mqtt__fail(s, MQTT_RC_PROTOCOL_ERROR, "unexpected packet"); break;
    }
}

/* Decodes and handles every whole packet in p[0..n); returns the bytes of an incomplete one left
 * at the end. */
static size_t mqtt__feed(mqtt_sess_t *s, const char *p, size_t n)
{
    size_t off = 0;
    while (off < n && !s->said_bye && !s->c->closing) {
        mqtt_opts_t o = {MQTT_ROLE_SERVER, s->version, s->x->cfg->mqtt_max_packet};
        mqtt_pkt_t pkt;
        mqtt_err_t err;
        ssize_t r = mqtt_decode(p + off, n - off, &o, &pkt, &err);
        if (r == HR_EAGAIN) return n - off;
        if (r < 0) {
            if (!s->version) s->version = err.version; /* a refused CONNECT: answer at its level */
            mqtt__fail(s, err.reason, err.why);
            return 0;
        }
        mqtt__packet(s, &pkt);
        off += (size_t)r;
    }
    return 0;
}

static void mqtt__keepalive(tw_entry_t *e)
{
    mqtt_sess_t *s = container_of(e, mqtt_sess_t, ka);
    if (s->c->closing) return;
    uint64_t now = loop_now(s->c->loop), limit = (uint64_t)s->keepalive * 1500;
    uint64_t last = s->last_rx_ms;
    if (now - last >= limit) {
        mqtt__fail(s, MQTT_RC_KEEP_ALIVE_TIMEOUT, "keep alive timeout");
        return;
    }
    loop_timer(s->c->loop, &s->ka, limit - (now - last));
}

/* The connection is gone: publish the will, drop subscriptions, free. */
static void mqtt__sess_free(mqtt_sess_t *s)
{
    tw_stop(&s->c->loop->wheel, &s->ka);
    list_unlink(&s->link);
    for (uint32_t i = 0; i < s->nsubs; i++) {
        hub_topic_unsubscribe(s->x->hub, &s->subs[i]->t);
        free(s->subs[i]);
    }
    s->nsubs = 0;
    if (s->will_topic && hub_channel_valid(s->will_topic, s->will_topic_len))
        mqtt__publish(s, (span_t){s->will_topic, s->will_topic_len}, (span_t){s->will_payload, s->will_payload_len},
                      s->will_qos, s->will_retain);
    free(s->subs);
    free(s->out);
    free(s->in2);
    ws_carry_free(&s->in);
    free(s->client_id);
    free(s->will_topic);
    free(s->will_payload);
}

static void mqtt__sess_init(mqtt_sess_t *s, xp_ctx_t *x, conn_t *c, ws_t *ws)
{
    s->x = x;
    s->srv = x->mqtt;
    s->c = c;
    s->ws = ws;
    tw_entry_init(&s->ka, mqtt__keepalive);
    s->last_rx_ms = loop_now(c->loop);
    list_push_back(&s->srv->sessions, &s->link);
}

/* ---- TCP ---- */

static void mqtt__tcp_read(conn_t *c)
{
    mqtt_tcp_t *t = container_of(c, mqtt_tcp_t, base);
    t->s.last_rx_ms = loop_now(c->loop);
    size_t left = mqtt__feed(&t->s, c->rbuf, c->rlen);
    if (c->closing) return;
    conn_consume(c, (uint32_t)(c->rlen - left));
    if (t->s.said_bye && c->rlen) conn_consume(c, c->rlen);
}

static void mqtt__tcp_close(conn_t *c)
{
    mqtt_tcp_t *t = container_of(c, mqtt_tcp_t, base);
    mqtt__sess_free(&t->s);
    t->s.x->metrics->connections[XP_MQTT]--;
    t->s.srv->nconns--;
    free(t);
}

static void mqtt__tcp_eof(conn_t *c) { conn_close(c, 0); }

static const conn_ops_t mqtt_tcp_ops = {
    .on_read = mqtt__tcp_read,
    .on_eof = mqtt__tcp_eof,
    .on_close = mqtt__tcp_close,
};

static void mqtt__accept(listener_t *l, int fd)
{
    mqtt_server_t *srv = l->ctx;
    xp_ctx_t *x = srv->x;
    mqtt_tcp_t *t = calloc(1, sizeof(*t));
    if (!t || srv->nconns >= x->cfg->max_connections || l->loop->stopping ||
        conn_init(&t->base, l->loop, fd, &mqtt_tcp_ops, x->cfg->mqtt_max_packet + MQTT_MAX_HEADER,
                  x->cfg->max_queued_bytes) < 0) {
        free(t);
        close(fd);
        x->metrics->rejected++;
        return;
    }
    mqtt__sess_init(&t->s, x, &t->base, NULL);
    srv->nconns++;
    x->metrics->accepted++;
    x->metrics->connections[XP_MQTT]++;
}

/* ---- WebSocket (/mqtt) ---- */

static size_t mqtt__parse(void *ctx, char *p, size_t n) { return mqtt__feed(ctx, p, n); }

static void mqtt__ws_message(ws_t *ws, bool text, char *data, size_t n)
{
    mqtt_sess_t *s = &((mqtt_wsc_t *)ws)->s;
    s->last_rx_ms = loop_now(s->c->loop);
    if (text) {
        ws_close(ws, WS_CLOSE_UNSUPPORTED, "MQTT over WebSocket uses binary messages");
        return;
    }
    int rc = ws_carry_feed(&s->in, data, n, (size_t)s->x->cfg->mqtt_max_packet + MQTT_MAX_HEADER, mqtt__parse, s);
    if (rc == HR_EFULL) mqtt__fail(s, MQTT_RC_PACKET_TOO_LARGE, "packet too large");
    else if (rc < 0) mqtt__fail(s, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
}

static void mqtt__ws_close(ws_t *ws) { mqtt__sess_free(&((mqtt_wsc_t *)ws)->s); }

static const char *const mqtt_protocols[] = {"mqtt", NULL};

static const ws_app_t mqtt_ws_app = {
    .xp = XP_MQTT,
    .subprotocols = mqtt_protocols,
    .deflate = false,
    .on_message = mqtt__ws_message,
    .on_close = mqtt__ws_close,
};

void mqtt_ws_serve(xp_ctx_t *x, http_conn_t *hc, http_req_t *req)
{
    if (!x->mqtt) {
        http_error(hc, HR_ENOTFOUND, "MQTT is not enabled");
        return;
    }
    mqtt_wsc_t *w = (mqtt_wsc_t *)ws_accept(x, hc, req, &mqtt_ws_app, sizeof(mqtt_wsc_t), true);
    if (w) mqtt__sess_init(&w->s, x, &hc->base, &w->ws);
}


/* ---- $SYS/ ---- */

/* Publishes the broker's figures to "$SYS/broker/..." (MQTT subscribers only: '$' topics are
 * not channels) and keeps them for subscriptions made later, as retained messages would be. */
static void mqtt__sys(tw_entry_t *e)
{
    mqtt_server_t *srv = container_of(e, mqtt_server_t, sys);
    xp_ctx_t *x = srv->x;
    const metrics_t *mt = x->metrics;
    uint64_t delivered = 0;
    for (int i = 1; i < XP_MAX; i++) delivered += mt->delivered[i];
    uint32_t clients = 0;
    list_node_t *pos;
    for (pos = srv->sessions.next; pos != &srv->sessions; pos = pos->next) clients++;
    struct {
        const char *topic;
        uint64_t value;
    } figs[] = {
        {"$SYS/broker/uptime", (loop_wall_ms() - srv->started_ms) / 1000},
        {"$SYS/broker/clients/connected", clients},
        {"$SYS/broker/messages/published", x->hub->published},
        {"$SYS/broker/messages/delivered", delivered},
        {"$SYS/broker/messages/dropped", mt->queue_drops},
        {"$SYS/broker/subscriptions/count", topic_count(&x->hub->topics) + x->hub->subscriptions},
        {"$SYS/broker/retained messages/count", x->hub->nretained},
        {"$SYS/broker/channels/count", x->hub->nchannels},
        {"$SYS/broker/connections/total", mt->accepted},
    };
    for (uint32_t i = 0; i < srv->nsys; i++) msg_unref(srv->sysmsg[i]);
    srv->nsys = 0;
    uint64_t now = loop_wall_ms();
    msg_t *version = msg_new("$SYS/broker/version", 19, "message", 7, "herald 0.3", 10, 0, now);
    if (version) srv->sysmsg[srv->nsys++] = version;
    for (size_t i = 0; i < sizeof(figs) / sizeof(figs[0]); i++) {
        char v[24];
        int n = snprintf(v, sizeof(v), "%" PRIu64, figs[i].value);
        msg_t *m = msg_new(figs[i].topic, strlen(figs[i].topic), "message", 7, v, (size_t)n, 0, now);
        if (m) srv->sysmsg[srv->nsys++] = m;
    }
    for (uint32_t i = 0; i < srv->nsys; i++) {
        srv->sysmsg[i]->flags |= MSG_RETAIN;
        hub_topic_deliver(x->hub, srv->sysmsg[i]);
    }
    loop_timer(x->hub->loop, &srv->sys, x->cfg->mqtt_sys_interval_ms);
}

/* ---- server ---- */

int mqtt_server_open(mqtt_server_t *srv, xp_ctx_t *x, loop_t *loop)
{
    memset(srv, 0, sizeof(*srv));
    srv->x = x;
    list_init(&srv->sessions);
    x->mqtt = srv;
    srv->started_ms = loop_wall_ms();
    tw_entry_init(&srv->sys, mqtt__sys);
    if (x->cfg->mqtt_addr[0]) {
        int rc = listener_open(&srv->listener, loop, x->cfg->mqtt_addr, mqtt__accept, srv);
        if (rc < 0) return rc;
        srv->open = true;
    }
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
    list_node_t *pos, *tmp;
    list_each_safe(pos, tmp, &srv->sessions)
    {
        mqtt_sess_t *s = container_of(pos, mqtt_sess_t, link);
        if (s->ws) continue; /* WebSocket sessions are closed by the HTTP server */
        mqtt__fail(s, MQTT_RC_SERVER_SHUTTING_DOWN, "server shutting down");
        bool drained;
        wq_flush(&s->c->wq, s->c->w.fd, &drained);
        conn_close(s->c, HR_ESHUTDOWN);
    }
}
