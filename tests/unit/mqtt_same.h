/* mqtt_same.h - field-by-field equality of decoded MQTT packets, for the codec's unit test and
 * fuzz target (round trips: decode -> encode -> decode must give the same packet). */
#ifndef HERALD_TEST_MQTT_SAME_H
#define HERALD_TEST_MQTT_SAME_H

#include <stdbool.h>
#include <string.h>

#include "../../src/transport/mqtt_codec.h"

static inline bool span_same(span_t a, span_t b) { return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0); }

static inline bool props_same(const mqtt_props_t *a, const mqtt_props_t *b)
{
    if (a->present != b->present || a->payload_format != b->payload_format ||
        a->request_problem_info != b->request_problem_info || a->request_response_info != b->request_response_info ||
        a->max_qos != b->max_qos || a->retain_available != b->retain_available ||
        a->wildcard_sub_available != b->wildcard_sub_available || a->sub_id_available != b->sub_id_available ||
        a->shared_sub_available != b->shared_sub_available || a->server_keep_alive != b->server_keep_alive ||
        a->receive_max != b->receive_max || a->topic_alias_max != b->topic_alias_max ||
        a->topic_alias != b->topic_alias || a->message_expiry != b->message_expiry ||
        a->session_expiry != b->session_expiry || a->will_delay != b->will_delay ||
        a->max_packet_size != b->max_packet_size || a->sub_id != b->sub_id || a->sub_id_count != b->sub_id_count ||
        a->user_count != b->user_count)
        return false;
    if (!span_same(a->content_type, b->content_type) || !span_same(a->response_topic, b->response_topic) ||
        !span_same(a->correlation_data, b->correlation_data) ||
        !span_same(a->assigned_client_id, b->assigned_client_id) || !span_same(a->auth_method, b->auth_method) ||
        !span_same(a->auth_data, b->auth_data) || !span_same(a->response_info, b->response_info) ||
        !span_same(a->server_reference, b->server_reference) || !span_same(a->reason_string, b->reason_string))
        return false;
    /* The repeating properties, in order. */
    size_t oa = 0, ob = 0;
    mqtt_prop_t pa, pb;
    for (;;) {
        bool ha, hb;
        while ((ha = mqtt_prop_next(a->raw, &oa, &pa)) && pa.id != MQTT_PROP_USER && pa.id != MQTT_PROP_SUBSCRIPTION_ID) {}
        while ((hb = mqtt_prop_next(b->raw, &ob, &pb)) && pb.id != MQTT_PROP_USER && pb.id != MQTT_PROP_SUBSCRIPTION_ID) {}
        if (ha != hb) return false;
        if (!ha) return true;
        if (pa.id != pb.id || pa.value != pb.value || !span_same(pa.s, pb.s) || !span_same(pa.s2, pb.s2)) return false;
    }
}

static inline bool pkt_same(const mqtt_pkt_t *a, const mqtt_pkt_t *b)
{
    const __typeof__(a->connect) *x = &a->connect, *y = &b->connect;
    return a->type == b->type && a->version == b->version && a->packet_id == b->packet_id && a->reason == b->reason &&
           props_same(&a->props, &b->props) && a->publish.dup == b->publish.dup &&
           a->publish.retain == b->publish.retain && a->publish.qos == b->publish.qos &&
           span_same(a->publish.topic, b->publish.topic) && span_same(a->publish.payload, b->publish.payload) &&
           span_same(x->protocol_name, y->protocol_name) && x->clean_start == y->clean_start && x->will == y->will &&
           x->will_retain == y->will_retain && x->has_username == y->has_username &&
           x->has_password == y->has_password && x->will_qos == y->will_qos && x->keep_alive == y->keep_alive &&
           span_same(x->client_id, y->client_id) && span_same(x->will_topic, y->will_topic) &&
           span_same(x->will_payload, y->will_payload) && span_same(x->username, y->username) &&
           span_same(x->password, y->password) && props_same(&x->will_props, &y->will_props) &&
           a->connack.session_present == b->connack.session_present && span_same(a->list, b->list) &&
           a->count == b->count;
}

#endif
