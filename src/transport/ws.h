/* ws.h - WebSocket sessions (RFC 6455): the opening handshake, the frame loop, fragmentation,
 * UTF-8 checks, permessage-deflate, ping/pong heartbeats and the closing handshake. The
 * applications that run over it (plain /sub subscribe, the /ws JSON protocol, STOMP, /echo)
 * see only whole messages and send through the helpers below.
 *
 * An application embeds ws_t as the first member of its own struct (ws_accept allocates `size`
 * bytes, zeroed) and supplies ws_app_t. Every protocol violation is answered here with the Close
 * code the RFC names (through ws_fail, the one place that maps errors to close codes), logged
 * once, and ends only that connection. */
#ifndef HERALD_WS_H
#define HERALD_WS_H

#include "stream.h"
#include "transport.h"
#include "ws_codec.h"
#include "ws_deflate.h"

typedef struct ws ws_t;

typedef struct {
    uint8_t xp;                        /* metrics: what the connection counts as */
    const char *const *subprotocols;   /* NULL-terminated list spoken here, best first (NULL: none) */
    bool deflate;                      /* permessage-deflate may be negotiated */
    /* A complete message (decompressed; text is valid UTF-8). data is writable and valid only
     * during the call. */
    void (*on_message)(ws_t *ws, bool text, char *data, size_t n);
    /* The write queue drained (optional). */
    void (*on_drain)(ws_t *ws);
    /* Release the application's state (not ws itself). Required. */
    void (*on_close)(ws_t *ws);
    /* The connection's credential expired (optional; the default closes with 3000 "token
     * expired"). The application says goodbye in its own protocol. */
    void (*on_expire)(ws_t *ws);
} ws_app_t;

struct ws {
    http_conn_t *hc;
    xp_ctx_t *x;
    const ws_app_t *app;
    ws_limits_t lim;
    ws_deflate_t dfl;
    ws_zin_t *zin;          /* inflater, only while a compressed message context is alive */
    ws_msg_t msg;           /* fragment sequencing */
    ws_utf8_t utf8;         /* UTF-8 state of the text message in progress */
    uint64_t rx_done;       /* payload bytes of the frame at the read buffer's start already unmasked
                             * (and, in an uncompressed text message, checked for UTF-8) */
    char *frag;             /* payload of a fragmented message so far */
    uint32_t frag_len, frag_cap;
    uint64_t last_input_ms; /* loop time of the last bytes from the peer */
    uint64_t ping_at_ms;    /* when the outstanding ping was sent (0: none) */
    bool close_sent;
    auth_id_t *id;          /* who the peer is (one reference) */
    uint64_t exp_ms;        /* wall ms when id's credential expires (0: never); the ping timer wakes for it */
    users_conn_t uc;        /* while listed under its user (ws_user_register) */
};

#define WS_CLOSE_UNAUTHORIZED 3000 /* IANA-registered: the credential is missing, bad or expired */
#define WS_CLOSE_FORBIDDEN 3003    /* IANA-registered: the credential does not allow it */
#define WS_CLOSE_DISCONNECTED 4001 /* the admin disconnected the user; do not reconnect */
#define WS_CLOSE_RECONNECT 4002    /* the admin disconnected the user; reconnecting is fine */

/* Checks req as a WebSocket opening handshake (GET, HTTP/1.1, Upgrade/Connection, version 13,
 * a valid key, an allowed Origin, a subprotocol from app->subprotocols when required_proto, a
 * valid credential when one is presented) and answers 101, negotiating a subprotocol and
 * permessage-deflate. id is the identity already found for the request (the reference passes to
 * the session, also on failure), or NULL to find it here (xp_auth_request). On success returns
 * the new session (size bytes, zeroed past ws_t) owned by the connection, with ws->id set and
 * its expiry armed. On failure answers the HTTP error itself (400, 401, 403, 426 with
 * Sec-WebSocket-Version) and returns NULL. */
ws_t *ws_accept(xp_ctx_t *x, http_conn_t *hc, http_req_t *req, const ws_app_t *app, size_t size, bool required_proto,
                auth_id_t *id);

/* Lists the session under its identity's user in x->users (users.h) with ops and kind, when
 * the identity is a user and the session is not listed yet (a session's user never changes).
 * Unlisted when the connection closes. */
void ws_user_register(ws_t *ws, const users_conn_ops_t *ops, const char *kind);

/* Replaces the session's identity with id (taking the reference) and re-arms its expiry. */
void ws_set_id(ws_t *ws, auth_id_t *id);

/* True when Origin origin names the same origin as the request's Host (scheme ignored). */
bool ws_same_origin(const http_req_t *req, span_t origin);

/* Queues a shared frame (a pushed message). Returns 0, HR_EFULL (over the queue limit: nothing
 * queued) or HR_EIO (closing). */
int ws_send_frame(ws_t *ws, bytes_t *frame);

/* Sends p[0..n) as one uncompressed text (or binary) message: a reply the peer asked for, so the
 * queue limit does not apply. Returns 0 or a negative code. */
int ws_send_copy(ws_t *ws, bool text, const void *p, size_t n);

/* Starts the closing handshake with code and reason and ends the connection once the Close
 * frame is written. Further input is ignored. */
void ws_close(ws_t *ws, uint16_t code, const char *reason);

/* The frame carrying payload(m) for this connection, from m's encoding cache: slot is the plain
 * frame's slot, slot + 1 and slot + 2 the 15-bit and 9-bit compressed ones; encode makes the
 * plain frame (a new reference). Returns a new reference or NULL. */
bytes_t *ws_frame_for(ws_t *ws, msg_t *m, int slot, msg_encoder encode);

/* A stream protocol carried in WebSocket messages (STOMP, MQTT): a unit (frame, packet) may
 * span messages and a message may hold several. Holds the incomplete unit at the end of a
 * message until the next one; holds nothing between whole units. */
typedef struct {
    char *buf;
    uint32_t len;
} ws_carry_t;

/* Parses every whole unit in p[0..n) and returns the bytes of an incomplete one left at its end
 * (0 after a unit that ended the session). p is writable. */
typedef size_t (*ws_carry_parse)(void *ctx, char *p, size_t n);

/* Hands message data[0..n), after any bytes carried from earlier messages, to parse, and keeps
 * what is left over. Returns 0, HR_EFULL (carried bytes plus data would pass max: nothing is
 * parsed) or HR_ENOMEM. */
int ws_carry_feed(ws_carry_t *c, char *data, size_t n, size_t max, ws_carry_parse parse, void *ctx);

/* Frees the carried bytes. */
void ws_carry_free(ws_carry_t *c);

/* A WebSocket application with no WebSocket under it (carried by a SockJS session): ws->hc is
 * the carrier's detached connection (conn_init_detached), whose write queue receives the
 * application's frames exactly as a socket would (whole, unmasked, uncompressed); the carrier
 * takes them apart and hands input to app->on_message (text only). The identity id passes to
 * the session. Returns it (size bytes, zeroed past ws_t), or NULL on OOM. */
ws_t *ws_open_carried(xp_ctx_t *x, http_conn_t *vc, const ws_app_t *app, size_t size, auth_id_t *id);

/* The carrier's connection timer fired: ends the session when its credential expired (as a
 * WebSocket's does), else re-arms for the expiry. No pings: the carrier has its own heartbeat. */
void ws_carried_timer(ws_t *ws);

/* Ends a carried session: the application's on_close, its user listing, its identity; frees it. */
void ws_carried_free(ws_t *ws);

/* The /ws protocol over a carrier (ws_json.c): opens the session on vc and sends its welcome. */
ws_t *ws_json_open_carried(xp_ctx_t *x, http_conn_t *vc, auth_id_t *id);

/* Loop-wide state: the shared compressors (in xp_ctx_t). */
int ws_ctx_init(xp_ctx_t *x);
void ws_ctx_close(xp_ctx_t *x);

/* The applications (ws_sub.c, ws_json.c, stomp.c). */
void ws_sub_serve(xp_ctx_t *x, http_conn_t *hc, http_req_t *req, subreq_t *sr, auth_id_t *id);
void ws_echo_serve(xp_ctx_t *x, http_conn_t *hc, http_req_t *req);
void ws_json_serve(xp_ctx_t *x, http_conn_t *hc, http_req_t *req);
void stomp_serve(xp_ctx_t *x, http_conn_t *hc, http_req_t *req);

#endif
