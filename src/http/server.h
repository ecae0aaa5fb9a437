/* server.h - the HTTP/1.1 connection state machine: keep-alive, pipelining, request bodies
 * (Content-Length and chunked), limits, the header-read timeout, CORS, error answers, and the
 * hand-off of a connection to a push transport.
 *
 * Life of a connection: READ_HEAD (header timeout armed from the first byte; idle keep-alive
 * timeout before it) -> READ_BODY -> the handler runs with the whole request in the read buffer.
 * The handler either answers at once (http_respond: the next pipelined request is parsed right
 * after), or parks the connection (long poll: input is paused until it answers), or turns it
 * into a stream (SSE, iframe: http_stream_begin; from then on the connection belongs to the
 * transport through http_xport_ops_t). Request slices point into the read buffer and are valid
 * only during the handler call: handlers copy what they keep. */
#ifndef HERALD_HTTP_SERVER_H
#define HERALD_HTTP_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <stdio.h>

#include "../core/ipset.h"
#include "../app/config.h"
#include "../core/conn.h"
#include "../core/iplimit.h"
#include "../core/listener.h"
#include "../core/metrics.h"
#include "chunked.h"
#include "parse.h"
#include "request.h"

typedef struct http_server http_server_t;
typedef struct http_conn http_conn_t;

/* A transport that owns a parked or streaming connection. */
typedef struct {
    void (*on_close)(http_conn_t *hc); /* release transport state (required) */
    void (*on_timer)(http_conn_t *hc); /* hc->base.timer fired (heartbeat, poll timeout) */
    void (*on_drain)(http_conn_t *hc); /* the write queue emptied */
    void (*on_read)(http_conn_t *hc);  /* upgraded: bytes wait in hc->base.rbuf (consume what is understood) */
    void (*on_shutdown)(http_conn_t *hc); /* upgraded: the server is stopping (say goodbye; it closes next) */
} http_xport_ops_t;

/* Handles a complete request. body is the decoded request body. */
typedef void (*http_handler_cb)(http_conn_t *hc, http_req_t *req, span_t body);

typedef enum { HC_HEAD = 0, HC_BODY, HC_PARKED, HC_STREAM, HC_UPGRADED } http_conn_state_t;

struct http_conn {
    conn_t base;
    http_server_t *srv;
    list_node_t all; /* in srv->conns */
    http_conn_state_t state;
    uint8_t xp;      /* XP_* this connection counts as in the metrics */
    bool keepalive;  /* of the current request */
    bool head_only;  /* HEAD request: answer without a body */
    uint32_t head_len;
    http_body_kind_t body_kind;
    uint64_t body_len;      /* Content-Length */
    uint32_t body_decoded;  /* chunked: decoded bytes after the head */
    chunked_dec_t chunk;
    const http_xport_ops_t *xops;
    void *xstate;
    char origin[128]; /* allowed Origin of the current request, echoed in CORS headers ("" none) */
    char client[46];  /* the client a trusted proxy forwarded the current request for ("" none; access.h) */
    int8_t peer_trusted; /* the TCP peer is a trusted proxy: 1, 0, or -1 not looked up yet */
    bool pp_client;   /* client was named by the connection's PROXY header (listener.h): kept */
    uint64_t t0_ms;   /* access log: when the current request was dispatched */
    char *al_req;     /* access log: the current request's line (NULL without an access log) */
    bool origin_listed; /* origin is named in cors_origins (not only allowed by "*"): credentials may go */
};

struct http_server {
    loop_t *loop;
    const cfg_t *cfg;
    metrics_t *metrics;
    listener_t listener;
    listener_t tls_listener; /* https (http_server_listen_tls), or w.fd -1 */
    struct tls_ctx *tls;     /* its TLS context (tls.h), or NULL */
    list_t conns;
    uint32_t nconns;
    http_handler_cb handler;
    void *ctx; /* for the handler (the app) */
    http_limits_t limits;
    bool cors_any;
    const char *const *own_options; /* path prefixes whose OPTIONS go to the handler (SockJS), NULL-ended; NULL: none */
    iplimit_t *ipl;    /* per-address limits shared with MQTT (NULL: none) */
    ipset_t trusted;   /* trusted_proxies: whose X-Forwarded-For names the client (access.h) */
    uint32_t lingering; /* refused connections whose request is being read and dropped */
    uint64_t linger_skipped; /* refused connections closed at once: max_lingering_closes were lingering */
    bool linger_full;        /* the bound was reached (logged); cleared below half of it */
    list_t lingers;     /* their http_linger_t */
    FILE *alog;        /* access_log, or NULL */
    int64_t date_sec;  /* second of the cached Date header line */
    char date[48];     /* "Date: ...\r\n" */
    size_t date_len;
};

/* The server is stopping gracefully: stops accepting, says goodbye on streams and upgraded
 * connections (closed once written), answers parked long polls, closes idle connections; parked
 * publishes are answered when their commit comes (then closed). http_server_close() ends what
 * is left. */
void http_server_drain(http_server_t *srv);

/* Binds cfg->http_addr and starts accepting. Returns 0, or HR_EIO/HR_EINVAL. */
int http_server_open(http_server_t *srv, loop_t *loop, const cfg_t *cfg, metrics_t *metrics,
                     http_handler_cb handler, void *ctx);

/* Also accepts HTTPS on addr: connections whose bytes go through TLS context tls (tls.h, kept by
 * the caller until the server is closed), served exactly as the plain ones. 0, or
 * HR_EIO/HR_EINVAL as listener_open. */
int http_server_listen_tls(http_server_t *srv, const char *addr, struct tls_ctx *tls);

/* Stops accepting and closes every connection (transports get on_close in the closing phase). */
void http_server_close(http_server_t *srv);

/* Answers the current request with a complete response. extra is "" or full header lines
 * ("Name: value\r\n..."). When the connection was parked, parsing of pipelined input resumes. */
void http_respond(http_conn_t *hc, int status, const char *ctype, const void *body, size_t len, const char *extra);

/* Like http_respond, but the body is a shared block: the connection queues its own head and a
 * reference to body (encode once, many answers). */
void http_respond_shared(http_conn_t *hc, int status, const char *ctype, bytes_t *body, const char *extra);

/* Answers with {"error":"why"} and the status for rc (an HR_E* code), then closes the
 * connection if the request framing can no longer be trusted. */
void http_error(http_conn_t *hc, int rc, const char *why);

/* Like http_error, with extra response header lines ("Name: value\r\n..."). */
void http_error_hdr(http_conn_t *hc, int rc, const char *why, const char *extra);

/* Answers 405 with {"error":"why"} and "Allow: <allow>". */
void http_method_not_allowed(http_conn_t *hc, const char *allow, const char *why);

/* Parks the connection: the transport will call http_respond later. */
void http_park(http_conn_t *hc, const http_xport_ops_t *ops, void *state, uint8_t xp);

/* Sends a chunked streaming response head and hands the connection to the transport for good. */
int http_stream_begin(http_conn_t *hc, const char *ctype, const char *extra, const http_xport_ops_t *ops,
                      void *state, uint8_t xp);

/* Answers 101 Switching Protocols (Upgrade/Connection headers plus extra, "" or full header
 * lines) and hands the connection to another protocol for good: from then on its input goes to
 * ops->on_read, and its read buffer may grow to rmax bytes. Bytes after the request in the read
 * buffer are kept for on_read. Returns 0 or a negative HR_E* (the caller answers the error). */
int http_upgrade(http_conn_t *hc, const char *protocol, const char *extra, const http_xport_ops_t *ops, void *state,
                 uint8_t xp, uint32_t rmax);

/* Releases a parked connection's transport (after http_respond, before the next request). */
void http_unpark(http_conn_t *hc);

/* Text of a status code ("Not Found"). */
const char *http_status_text(int status);

/* Status for an HR_E* code (e.g. HR_EURITOOLONG -> 414). */
int http_status_for(int rc);

/* Frames b as one HTTP chunk: returns a new block "<hex>\r\n" b "\r\n". NULL on OOM. */
bytes_t *http_chunk(const void *p, size_t n);

#endif
