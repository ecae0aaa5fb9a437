/* sockjs.h - SockJS sessions and transports (sockjs-protocol 0.3.3, as sockjs-client 1.6.1
 * speaks it) under a prefix: /stomp (STOMP, stomp_sockjs.c) and, with echo = true, the test
 * services under /sockjs (echo, disabled_websocket_echo, cookie_needed_echo, close).
 *
 * A session is a detached connection (conn_init_detached): what its application sends waits in
 * that connection's write queue, bounded by max_queued_bytes like any connection (the slow
 * policy applies), one entry per message, already escaped as a JSON string. At most one
 * receiving request at a time (xhr, xhr_streaming, eventsource, htmlfile, jsonp, or the framed
 * WebSocket) takes the queue as one a[...] frame in its own format; a second one gets
 * c[2010,"Another connection still open"]. A session with no receiver for
 * sockjs_disconnect_delay is closed; a receiver gets "h" every sockjs_heartbeat; a streaming
 * response ends after sockjs_response_limit bytes (the client opens the next). A closed session
 * answers its close frame (c[3000,"Go away!"] and the like) until the delay has passed. The
 * framed WebSocket session lives exactly as long as its WebSocket (sessions are not looked up
 * by id there). Files: sockjs.c (sessions, receivers, framing out), sockjs_http.c (the URL
 * space: info, iframe, greeting, CORS, cookies, the send endpoints). */
#ifndef HERALD_SOCKJS_H
#define HERALD_SOCKJS_H

#include "../proto/sockjs.h"
#include "ws.h"

typedef struct sockjs_sess sockjs_sess_t;
typedef struct sockjs_server sockjs_server_t;

/* What runs in a session. */
typedef struct {
    const char *name;
    /* The session opened with identity id (the reference passes). Returns the application's
     * state, or NULL (OOM: the session closes). */
    void *(*open)(xp_ctx_t *x, sockjs_sess_t *ss, auth_id_t *id);
    /* One message from the client, m[0..n) (writable during the call). */
    void (*message)(void *app, char *m, size_t n);
    /* The session's queue drained (optional). */
    void (*drained)(void *app);
    /* The detached connection's timer fired (conn_timer on it: the application's credential
     * expiry). Optional: without it the session closes with 3000. */
    void (*expired)(void *app);
    /* The session is gone: release everything. */
    void (*free)(void *app);
    /* The application writes WebSocket frames to the session's queue (a WebSocket application
     * carried as it is, ws_open_carried): each text or binary frame is one message, a Close frame
     * closes the session with its code and reason. Otherwise each queue entry is one message
     * already escaped (sockjs_unit). */
    bool ws_frames;
} sockjs_app_t;

/* A service: an application under a prefix, with its options. */
typedef struct {
    const sockjs_app_t *app;
    bool no_websocket;  /* websocket off whatever sockjs_websocket says (disabled_websocket_echo) */
    bool cookie_needed; /* JSESSIONID whatever sockjs_cookie_needed says (cookie_needed_echo) */
    void (*raw_websocket)(xp_ctx_t *x, http_conn_t *hc, http_req_t *req); /* GET PREFIX/websocket, or NULL: 404 */
} sockjs_service_t;

/* Transports, for the metrics. */
enum { SJ_WEBSOCKET = 0, SJ_XHR, SJ_XHR_STREAMING, SJ_EVENTSOURCE, SJ_HTMLFILE, SJ_JSONP, SJ_NKINDS };

/* Serves the request for path rest (what follows the service's prefix, "" or "/..."), body its
 * decoded body. */
void sockjs_serve(xp_ctx_t *x, const sockjs_service_t *svc, http_conn_t *hc, http_req_t *req, span_t rest, span_t body);

/* The session's detached connection: its write queue holds what waits for a receiver. */
http_conn_t *sockjs_sess_conn(sockjs_sess_t *ss);

/* The session whose detached connection is vc. */
sockjs_sess_t *sockjs_sess_of(http_conn_t *vc);

/* One message p[0..n) followed by tail (NULL: none), as a queue entry (a JSON string). A new
 * reference, or NULL. */
bytes_t *sockjs_unit(const char *p, size_t n, const bytes_t *tail);

/* Sends p[0..n) as one message (a reply: past the queue limit). 0 or a negative code. */
int sockjs_sess_send(sockjs_sess_t *ss, const char *p, size_t n);

/* Closes the session with code and reason after what is queued: the receiver gets the close
 * frame, and so does every request for the session until the disconnect delay has passed. */
void sockjs_sess_close(sockjs_sess_t *ss, uint16_t code, const char *reason);

/* Ends every session (server stopping): c[1001,...] to their receivers. */
void sockjs_shutdown(xp_ctx_t *x);

/* Frees the session table (every session gone). */
void sockjs_free(xp_ctx_t *x);

/* Prometheus lines for the SockJS metrics into out; returns their length. */
size_t sockjs_metrics(const xp_ctx_t *x, char *out, size_t cap);

/* The services: STOMP at /stomp (stomp_sockjs.c); the protocol test suite's services under
 * /sockjs/NAME with echo = true (sockjs_http.c). */
extern const sockjs_service_t stomp_sockjs_service;
extern const sockjs_service_t ws_json_sockjs_service; /* the /ws protocol at /ws/... (sockjs_wsjson.c) */
const sockjs_service_t *sockjs_test_service(span_t name);

/* ---- between sockjs.c and sockjs_http.c ---- */

/* A receiving request's format. */
typedef struct {
    uint8_t kind;       /* SJ_* */
    bool streaming;     /* xhr_streaming, eventsource, htmlfile (else polling: one answer) */
    char cb[SOCKJS_MAX_CALLBACK + 1]; /* htmlfile, jsonp */
    char extra[768];    /* response header lines (CORS, cookie, no-cache) */
} sockjs_rxfmt_t;

/* Takes request hc as the receiver of session id[0..n) (made when new, within
 * sockjs_max_sessions) of service svc with identity id (the reference passes) and format f. */
void sockjs__receive(xp_ctx_t *x, const sockjs_service_t *svc, http_conn_t *hc, http_req_t *req, const char *id, size_t n,
                     const sockjs_rxfmt_t *f);

/* The session id[0..n) of service svc (open or closed), or NULL. */
sockjs_sess_t *sockjs__find(xp_ctx_t *x, const sockjs_service_t *svc, const char *id, size_t n);

/* True when the request presents the identity that opened the session (always, with access
 * control off): a session id seen in a log or a proxy does not give another client the session.
 * Otherwise answers (401 for a bad credential, 404 as for an unknown session) and returns false. */
bool sockjs__owner_ok(xp_ctx_t *x, sockjs_sess_t *ss, http_conn_t *hc, http_req_t *req);

/* True while the session takes input (not closed). */
bool sockjs__open(const sockjs_sess_t *ss);

/* Hands decoded messages to the session's application. */
int sockjs__deliver(void *ss, char *m, size_t n);

/* The framed WebSocket transport: a session living as long as the WebSocket. */
void sockjs__websocket(xp_ctx_t *x, const sockjs_service_t *svc, http_conn_t *hc, http_req_t *req);

#endif
