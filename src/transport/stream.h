/* stream.h - the push machinery shared by the streaming transports (SSE, iframe, WebSocket,
 * the /ws protocol, STOMP): replay from the cursor with gap notices, subscription to every
 * channel, per-message delivery through the transport's encoder, and the slow-consumer policy.
 * stream_start() runs it over an HTTP chunked response (SSE, iframe: with keepalives from the
 * timer wheel); stream_open() runs it over any connection whose owner handles the rest
 * (WebSocket sessions, which may hold several streams on one connection).
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
    /* A gap notice frame carrying json (a new reference); NULL (the function or its result) in
     * wire formats with no room for one. */
    bytes_t *(*gap_frame)(stream_t *st, const char *json, size_t n);
    /* The first bytes after the response head (a new reference), or NULL. */
    bytes_t *(*preamble)(stream_t *st);
    /* Optional, instead of frame: queues m itself (e.g. a per-subscriber head plus a shared
     * tail) and returns 0, HR_EFULL (nothing queued: the slow policy applies) or another
     * negative code (nothing queued, no policy: the sender dealt with it). */
    int (*send)(stream_t *st, xsub_t *xs, msg_t *m);
    /* stream_start() streams: the last frame before the stream ends because the subscriber's
     * credential expired (a new reference), or NULL. */
    bytes_t *(*expired_frame)(stream_t *st);
    /* stream_start() streams: a notice of event ("disconnect", "unsubscribed") carrying the JSON
     * object json[0..n) (script-safe escaped), with a reconnection delay hint retry_ms (0: none),
     * as a new reference; NULL when the wire format has none. */
    bytes_t *(*notice_frame)(stream_t *st, const char *event, const char *json, size_t n, uint32_t retry_ms);
    /* Optional: a notice of a channel event (sub_t.event: "withdrawn", "unread", "join",
     * "leave") carrying the JSON object json[0..n) (a new reference), or NULL: no notice in this
     * format. */
    bytes_t *(*event_frame)(stream_t *st, const char *event, const char *json, size_t n);
} stream_kind_t;

struct stream {
    xp_ctx_t *x;
    conn_t *c;
    http_conn_t *hc; /* stream_start() streams only */
    void *owner;     /* stream_open(): the session that holds the stream */
    const stream_kind_t *kind;
    bytes_t *keepalive; /* shared keepalive chunk */
    uint32_t keepalive_ms;
    bool gap_pending;
    uint64_t exp_ms;    /* stream_start(): wall ms when the credential expires and the stream ends (0: never) */
    char callback[65]; /* iframe */
    bool exact;        /* SSE: the exact form (subreq_t.sse_exact) */
    uint32_t nch;
    uint32_t loading; /* bit i: channel i's replay waits for the store to load it (sub_t.resync) */
    uint64_t cursor[SUB_MAX_CHANNELS];
    users_conn_t uc; /* stream_start() streams of a user: in x->users (users.h) */
    xsub_t subs[];
};

/* Starts a stream for sr on hc: response head, preamble, replay, subscriptions, keepalives, and
 * the end of the stream at sr->exp_ms (with kind->expired_frame) when the credential expires.
 * Answers with an error itself when it cannot start. */
void stream_start(xp_ctx_t *x, http_conn_t *hc, subreq_t *sr, const stream_kind_t *kind, bytes_t *keepalive,
                  uint32_t keepalive_ms);

/* Starts the push machinery for sr on connection c, which its owner already drives: replays
 * what sr's cursor missed (when it has one) and subscribes. Returns the stream, or NULL on OOM. */
stream_t *stream_open(xp_ctx_t *x, conn_t *c, const subreq_t *sr, const stream_kind_t *kind, void *owner);

/* The owner's connection drained its write queue: sends pending gap notices. */
void stream_drained(stream_t *st);

/* Unsubscribes and frees a stream made by stream_open(). */
void stream_free(stream_t *st);

/* Ends st's subscriptions to channel ch[0..n) (an admin unsubscribe); returns how many ended and
 * sets *live to the subscriptions left. */
uint32_t stream_drop_channel(stream_t *st, const char *ch, size_t n, uint32_t *live);

/* The JSON object {"reason":R,"reconnect":B} (R escaped script-safe) into out; returns its
 * length (0 when cap is too small: needs 6 * strlen(reason) + 40). */
size_t stream_bye_json(const char *reason, bool reconnect, char *out, size_t cap);

#endif
