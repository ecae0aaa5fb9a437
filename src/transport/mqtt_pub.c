/* mqtt_pub.c - PUBLISHes from MQTT clients (and wills) into the hub: topic aliases, the MQTT 5
 * properties that travel with a message, refusals with their reason codes, and the PUBACKs and
 * PUBRECs a connection owes, sent in PUBLISH order as the store commits (the ackw ring). See
 * mqtt.c for the broker's files. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"
#include "mqtt_internal.h"

/* ---- publishing ---- */

/* The properties of a PUBLISH (or will) that travel with the message to MQTT 5 subscribers:
 * payload format, content type, response topic, correlation data and user properties, encoded.
 * NULL when there are none; *oom on failure. */
bytes_t *mqtt__pass_props(const mqtt_props_t *in, bool *oom)
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
    return rc == HR_EFULL || rc == HR_ESTOREFULL || rc == HR_EHISTFULL || rc == HR_ERETAINED ? MQTT_RC_QUOTA_EXCEEDED
                                                                                           : MQTT_RC_UNSPECIFIED;
}

static const char *mqtt__pub_why(int rc)
{
    return rc == HR_EFULL ? "publish failed: too many channels (max_channels)"
           : rc == HR_ESTOREFULL ? "publish failed: the store is full"
           : rc == HR_EHISTFULL  ? "publish failed: history memory is full (max_history_memory)"
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
        if (k->ackw_wait) k->ackw_at--; /* ready entries only ever precede the oldest waiting one */
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
    if (!done && !k->ackw_wait++) k->ackw_at = k->ackw_n;
    k->ackw[(k->ackw_head + k->ackw_n++) & (k->ackw_cap - 1)] = (mqtt_ackw_t){pid, type, reason, done};
    return true;
}

/* A QoS 1 or 2 publish of connection arg is committed (rc 0) or failed: its ack is ready. */
static void mqtt__published(void *arg, int rc, const msg_t *m, uint32_t reached)
{
    (void)reached;
    mqtt_conn_t *k = arg;
    if (!k->ackw_wait) return; /* cannot happen: completions come in order, one per waiting entry */
    uint32_t mask = k->ackw_cap - 1, i = k->ackw_at;
    mqtt_ackw_t *a = &k->ackw[(k->ackw_head + i) & mask];
    a->done = true;
    if (--k->ackw_wait) { /* the next waiting one: forward only, O(1) amortized per publish */
        while (k->ackw[(k->ackw_head + ++i) & mask].done) {}
        k->ackw_at = i;
    }
    if (rc < 0) {
        mqtt__refused(k->srv, k, MQTT_REF_FAILED, mqtt__pub_why(rc), m ? m->channel : "", m ? m->channel_len : 0);
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
int mqtt__publish(mqtt_sess_t *s, mqtt_conn_t *k, span_t topic, span_t payload, uint8_t qos, bool retain,
                  uint32_t expiry_s, span_t props)
{
    hub_pubopt_t o = {.flags = (qos == 1 ? MSG_QOS1 : qos == 2 ? MSG_QOS2 : 0) | (retain ? MSG_RETAIN : 0),
                      .expiry_s = expiry_s, .props = props.p, .props_len = props.n, .origin = k};
    bool wait = k && qos;
    int rc = hub_publish_async(s->x->hub, topic.p, topic.n, "message", 7, payload.p, payload.n, &o,
                               wait ? mqtt__published : NULL, wait ? k : NULL);
    if (rc == HR_ERETAINED && !(wait && k->version == MQTT_V5)) {
        /* over max_retained: only a v5 PUBACK/PUBREC can say so (0x97); 3.1.1, QoS 0 and wills
         * cannot be refused, so the message goes out without being retained */
        o.flags &= ~(uint32_t)MSG_RETAIN;
        rc = hub_publish_async(s->x->hub, topic.p, topic.n, "message", 7, payload.p, payload.n, &o,
                               wait ? mqtt__published : NULL, wait ? k : NULL);
    }
    return rc;
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

void mqtt__on_publish_pkt(mqtt_conn_t *k, const mqtt_pkt_t *p)
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
        /* a valid MQTT topic that is no herald channel: a '$' topic (the server's own, read-only
         * for clients) or one herald cannot name ("a//b", characters outside the channel alphabet).
         * v5 QoS > 0: refused in the acknowledgement (0x90); QoS 0 and 3.1.1, which cannot say no:
         * acknowledged and dropped, as Mosquitto does for $SYS. The connection stays. */
        bool dollar = topic.n && topic.p[0] == '$';
        mqtt__refused(k->srv, k, dollar ? MQTT_REF_DOLLAR : MQTT_REF_TOPIC,
                      dollar ? "'$' topics are the server's own" : "the topic is not a herald channel name", topic.p,
                      topic.n);
        if (qos)
            mqtt__ackw_push(k, qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id, true,
                            k->version == MQTT_V5 ? MQTT_RC_TOPIC_NAME_INVALID : 0);
        return;
    }
    bool allowed = auth_can_publish(k->id, topic.p, topic.n);
    if (!allowed) {
        if (!k->denial_logged) xp_log_denial(k->x, k->c, k->id, "publish to", topic.p, topic.n);
        else k->x->auth->stats.denied++;
        k->denial_logged = true;
        k->srv->refused[MQTT_REF_DENIED]++;
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
    if (rc < 0) mqtt__refused(k->srv, k, MQTT_REF_FAILED, mqtt__pub_why(rc), topic.p, topic.n);
    if (rc < 0 && !qos) {
        mqtt__fail(k, mqtt__pub_reason(rc), mqtt__pub_why(rc));
        return;
    }
    if (!qos) return;
    if (qos == 2 && rc >= 0) s->in2[s->nin2++] = p->packet_id; /* a resend is not published twice */
    mqtt__ackw_push(k, qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id, rc != 0, rc < 0 ? mqtt__pub_reason(rc) : 0);
}
