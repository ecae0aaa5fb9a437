/* mqtt_refuse.c - what the broker refuses and how it ends connections, counted: refused
 * publishes and wills (logged once per connection and reason), the lingering closes, the
 * connections held to mqtt_max_keepalive; and the Prometheus lines for them. See mqtt.c for the
 * broker's files. */
#include <stdio.h>
#include <string.h>

#include "../core/log.h"
#include "mqtt_internal.h"

static const char *const mqtt_ref_names[MQTT_REF_MAX] = {
    [MQTT_REF_TOPIC] = "topic_invalid",
    [MQTT_REF_DOLLAR] = "dollar_topic",
    [MQTT_REF_DENIED] = "not_authorized",
    [MQTT_REF_FAILED] = "publish_failed",
    [MQTT_REF_WILL_TOPIC] = "will_topic_invalid",
    [MQTT_REF_WILL_DENIED] = "will_not_authorized",
    [MQTT_REF_WILL_FAILED] = "will_failed",
};

static const char *mqtt__ref_name(int reason) { return reason >= 0 && reason < MQTT_REF_MAX ? mqtt_ref_names[reason] : "?"; }

void mqtt__refused(mqtt_server_t *srv, mqtt_conn_t *k, int reason, const char *why, const char *topic, size_t n)
{
    srv->refused[reason]++;
    if (k && (k->refused_logged & (1u << reason))) return;
    if (k) k->refused_logged |= (uint8_t)(1u << reason);
    char peer[128] = "-", shown[72];
    if (k) conn_peer(k->c, peer, sizeof(peer));
    size_t m = 0; /* the topic as a log may show it: printable ASCII, at most 64 bytes */
    for (size_t i = 0; i < n && m < 64; i++) shown[m++] = topic[i] > 0x20 && topic[i] < 0x7f ? topic[i] : '?';
    shown[m] = 0;
    log_info("mqtt: %s (%s): %s to '%s%s' refused: %s (%s%s)", peer, k && k->s ? k->s->client_id : "-",
             reason >= MQTT_REF_WILL_TOPIC ? "will" : "publish", shown, n > 64 ? "..." : "", why,
             mqtt__ref_name(reason), k ? "; logged once per connection" : "");
}

size_t mqtt_server_metrics(const mqtt_server_t *srv, char *out, size_t cap)
{
    size_t n = 0;
    int k = snprintf(out, cap,
                     "# HELP herald_mqtt_refused_total MQTT publishes and wills refused, by reason (each logged once "
                     "per connection).\n# TYPE herald_mqtt_refused_total counter\n");
    if (k <= 0 || (size_t)k >= cap) return 0;
    n += (size_t)k;
    for (int r = 0; r < MQTT_REF_MAX; r++) {
        k = snprintf(out + n, cap - n, "herald_mqtt_refused_total{reason=\"%s\"} %llu\n", mqtt__ref_name(r),
                     (unsigned long long)srv->refused[r]);
        if (k <= 0 || (size_t)k >= cap - n) return 0;
        n += (size_t)k;
    }
    k = snprintf(out + n, cap - n,
                 "# HELP herald_mqtt_lingers_total MQTT connections whose input was read and dropped for a moment "
                 "after their last packet (DISCONNECT, CONNACK refusal), or closed at once because %u were.\n"
                 "# TYPE herald_mqtt_lingers_total counter\n"
                 "herald_mqtt_lingers_total{outcome=\"lingered\"} %llu\n"
                 "herald_mqtt_lingers_total{outcome=\"skipped\"} %llu\n"
                 "# HELP herald_mqtt_lingering MQTT connections lingering now.\n"
                 "# TYPE herald_mqtt_lingering gauge\nherald_mqtt_lingering %u\n"
                 "# HELP herald_mqtt_keepalive_capped_total MQTT connections held to mqtt_max_keepalive.\n"
                 "# TYPE herald_mqtt_keepalive_capped_total counter\nherald_mqtt_keepalive_capped_total %llu\n",
                 srv->x->cfg->max_lingering_closes, (unsigned long long)srv->lingers, (unsigned long long)srv->linger_skipped,
                 srv->lingering, (unsigned long long)srv->ka_capped);
    if (k <= 0 || (size_t)k >= cap - n) return 0;
    return n + (size_t)k;
}
