/* metrics.c - Prometheus text exposition (version 0.0.4). */
#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

const char *const xp_names[XP_MAX] = {"http", "poll", "longpoll", "iframe", "sse", "websocket", "ws_json", "stomp", "mqtt"};

typedef struct {
    char *out;
    size_t cap, len;
} wbuf_t;

static void put(wbuf_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(wbuf_t *w, const char *fmt, ...)
{
    if (w->len >= w->cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->out + w->len, w->cap - w->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= w->cap - w->len) {
        w->len = w->cap; /* truncated: stop writing */
        return;
    }
    w->len += (size_t)n;
}

size_t metrics_render(const metrics_t *m, uint64_t published, uint64_t channels, uint64_t subscriptions, uint64_t bytes_in,
                      uint64_t bytes_out, uint64_t input_holds, char *out, size_t cap)
{
    wbuf_t w = {out, cap, 0};
    put(&w, "# HELP herald_connections Open client connections by transport.\n# TYPE herald_connections gauge\n");
    for (int i = 0; i < XP_MAX; i++)
        put(&w, "herald_connections{transport=\"%s\"} %" PRIu64 "\n", xp_names[i], m->connections[i]);
    put(&w, "# HELP herald_messages_published_total Messages accepted for publishing.\n"
            "# TYPE herald_messages_published_total counter\nherald_messages_published_total %" PRIu64 "\n",
        published);
    put(&w, "# HELP herald_messages_delivered_total Messages queued to subscribers, by transport.\n"
            "# TYPE herald_messages_delivered_total counter\n");
    for (int i = 1; i < XP_MAX; i++)
        put(&w, "herald_messages_delivered_total{transport=\"%s\"} %" PRIu64 "\n", xp_names[i], m->delivered[i]);
    put(&w, "# HELP herald_queue_drops_total Deliveries dropped or subscribers disconnected by the slow-consumer policy.\n"
            "# TYPE herald_queue_drops_total counter\nherald_queue_drops_total %" PRIu64 "\n", m->queue_drops);
    put(&w, "# HELP herald_bytes_received_total Bytes read from client sockets.\n"
            "# TYPE herald_bytes_received_total counter\nherald_bytes_received_total %" PRIu64 "\n", bytes_in);
    put(&w, "# HELP herald_bytes_sent_total Bytes written to client sockets.\n"
            "# TYPE herald_bytes_sent_total counter\nherald_bytes_sent_total %" PRIu64 "\n", bytes_out);
    put(&w, "# HELP herald_http_requests_total HTTP requests parsed.\n"
            "# TYPE herald_http_requests_total counter\nherald_http_requests_total %" PRIu64 "\n", m->http_requests);
    put(&w, "# HELP herald_http_errors_total HTTP requests answered with 4xx or 5xx.\n"
            "# TYPE herald_http_errors_total counter\nherald_http_errors_total %" PRIu64 "\n", m->http_errors);
    put(&w, "# HELP herald_connections_accepted_total Connections accepted.\n"
            "# TYPE herald_connections_accepted_total counter\nherald_connections_accepted_total %" PRIu64 "\n",
        m->accepted);
    put(&w, "# HELP herald_connections_rejected_total Connections refused at max_connections.\n"
            "# TYPE herald_connections_rejected_total counter\nherald_connections_rejected_total %" PRIu64 "\n",
        m->rejected);
    put(&w, "# HELP herald_read_pauses_total Times a connection was stopped reading because it did not read its answers.\n"
            "# TYPE herald_read_pauses_total counter\nherald_read_pauses_total %" PRIu64 "\n",
        input_holds);
    put(&w, "# HELP herald_connect_timeouts_total MQTT and STOMP connections closed for sending no CONNECT in time (header_timeout).\n"
            "# TYPE herald_connect_timeouts_total counter\nherald_connect_timeouts_total %" PRIu64 "\n",
        m->connect_timeouts);
    put(&w, "# HELP herald_ws_fragment_limit_total WebSockets closed for a message in more than ws_max_fragments frames.\n"
            "# TYPE herald_ws_fragment_limit_total counter\nherald_ws_fragment_limit_total %" PRIu64 "\n",
        m->ws_fragment_limit);
    put(&w, "# HELP herald_channels Channels in memory.\n# TYPE herald_channels gauge\nherald_channels %" PRIu64 "\n",
        channels);
    put(&w, "# HELP herald_subscriptions Live channel subscriptions.\n# TYPE herald_subscriptions gauge\n"
            "herald_subscriptions %" PRIu64 "\n", subscriptions);
    if (w.len >= cap) { /* cut back to the last complete line */
        while (w.len > 0 && out[w.len - 1] != '\n') w.len--;
    }
    return w.len;
}
