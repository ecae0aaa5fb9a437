/* metrics.h - the server's counters and gauges, rendered in the Prometheus text format. One
 * metrics_t lives in the server context and is passed to whoever counts. */
#ifndef HERALD_METRICS_H
#define HERALD_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Transports, for per-transport connection gauges and delivery counters. */
enum { XP_HTTP = 0, XP_POLL, XP_LONGPOLL, XP_IFRAME, XP_SSE, XP_WS, XP_WSJSON, XP_STOMP, XP_MQTT, XP_MAX };

typedef struct {
    uint64_t connections[XP_MAX];  /* open connections by what they are doing now */
    uint64_t delivered[XP_MAX];    /* messages queued to subscribers */
    uint64_t queue_drops;          /* messages dropped or subscribers cut by the slow-consumer policy */
    uint64_t http_requests;
    uint64_t http_errors;          /* 4xx/5xx answers */
    uint64_t accepted;             /* connections accepted */
    uint64_t rejected;             /* connections refused at max_connections */
    uint64_t connect_timeouts;     /* MQTT connections closed for sending no CONNECT within header_timeout */
    uint64_t ws_fragment_limit;    /* WebSockets closed for a message in more than ws_max_fragments frames */
    uint64_t subs_refused;         /* subscriptions refused at max_subscriptions (every transport) */
} metrics_t;

extern const char *const xp_names[XP_MAX];

/* Renders m plus the given hub counters and gauges and the loop's byte and backpressure counters
 * as Prometheus text into out (cap bytes). Returns the length (truncated output is cut at a line
 * end). */
size_t metrics_render(const metrics_t *m, uint64_t published, uint64_t channels, uint64_t subscriptions, uint64_t bytes_in,
                      uint64_t bytes_out, uint64_t input_holds, char *out, size_t cap);

#endif
