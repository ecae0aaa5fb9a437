/* stream.h - the machinery shared by the streaming transports (SSE, iframe): replay from the
 * cursor with gap notices, subscription to every channel, per-message delivery through the
 * transport's encoder, keepalives from the timer wheel, and the slow-consumer policy.
 *
 * Slow consumers: a delivery that would take the connection's write queue over
 * max_queued_bytes is handled by slow_policy. "disconnect" closes the connection (the client
 * reconnects and resumes from its last id). "drop" drops the message and remembers the dropped
 * id range per channel; as soon as the queue has room again (the socket drained) the client gets
 * one gap notice naming the range, before any later message, so it can fetch the range from
 * history. Either way memory stays bounded. */
#ifndef HERALD_STREAM_H
#define HERALD_STREAM_H

#include "transport.h"

typedef struct stream stream_t;

typedef struct {
    uint8_t xp;
    const char *ctype;
    const char *headers; /* extra response header lines */
    /* The frame to queue for m on subscription xs (a new reference). */
    bytes_t *(*frame)(stream_t *st, xsub_t *xs, msg_t *m);
    /* A gap notice frame carrying json (a new reference). */
    bytes_t *(*gap_frame)(stream_t *st, const char *json, size_t n);
    /* The first bytes after the response head (a new reference), or NULL. */
    bytes_t *(*preamble)(stream_t *st);
} stream_kind_t;

struct stream {
    xp_ctx_t *x;
    http_conn_t *hc;
    const stream_kind_t *kind;
    bytes_t *keepalive; /* shared keepalive chunk */
    uint32_t keepalive_ms;
    bool gap_pending;
    char callback[65]; /* iframe */
    uint32_t nch;
    uint64_t cursor[SUB_MAX_CHANNELS];
    xsub_t subs[];
};

/* Starts a stream for sr on hc: response head, preamble, replay, subscriptions, keepalives.
 * Answers with an error itself when it cannot start. */
void stream_start(xp_ctx_t *x, http_conn_t *hc, subreq_t *sr, const stream_kind_t *kind, bytes_t *keepalive,
                  uint32_t keepalive_ms);

#endif
