/* transport.h - what the HTTP push transports share: the context they run in, the parsed
 * subscription request (channels and cursor), the JSON message encoding, and the per-connection
 * subscription set with its slow-consumer bookkeeping.
 *
 * Each transport turns hub messages into its wire format (encoded once per message through the
 * msg_t cache) and nothing else knows that format. */
#ifndef HERALD_TRANSPORT_H
#define HERALD_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "../app/config.h"
#include "../auth/auth.h"
#include "../core/b64.h"
#include "../core/jsonesc.h"
#include "../core/metrics.h"
#include "../http/server.h"
#include "../hub/hub.h"
#include "../hub/users.h"

#define SUB_MAX_CHANNELS 16

typedef struct {
    hub_t *hub;
    const cfg_t *cfg;
    metrics_t *metrics;
    bytes_t *sse_heartbeat;    /* shared chunk ":\n\n" */
    bytes_t *iframe_keepalive; /* shared chunk "<!-- -->\n" */
    struct ws_zshared *wsz;    /* shared permessage-deflate compressors (ws_deflate.h) */
    uint64_t sessions;         /* WebSocket/STOMP/MQTT session counter (session ids) */
    struct mqtt_server *mqtt;  /* the MQTT session table (mqtt.h), NULL until opened */
    struct stomp_queues *stq;  /* STOMP /queue/ destinations (stomp_queue.h), NULL: none (engine = redis) */
    struct sockjs_server *sockjs; /* the SockJS session table (sockjs.h), NULL until the first session */
    auth_t *auth;              /* identities and permissions (auth.h) */
    iplimit_t *ipl;            /* per-address connection limits (iplimit.h), NULL: none */
    users_t *users;            /* live connections by user (users.h), NULL: none */
    /* Scheduled publishes (the app's sched.h), for the /ws publish op's "delay"/"at"; NULL: none.
     * delay: seconds (-1: not given; other values are checked), at/at_n: the "at" text (NULL: not
     * given), at_num: "at" as a number (0: not given). Writes "scheduled":"ID","at":"..." into
     * out, or an error message (JSON-safe), and returns 0 or HR_E*. */
    int (*schedule)(void *arg, const char *ch, size_t cn, const char *ev, size_t en, const void *d, size_t dn,
                    uint32_t ttl, int64_t delay, const char *at, size_t at_n, int64_t at_num, char *out, size_t cap);
    void *schedule_arg;
} xp_ctx_t;

/* A parsed GET /sub request. */
typedef struct {
    uint32_t nch;
    chan_t *ch[SUB_MAX_CHANNELS];
    uint64_t cursor[SUB_MAX_CHANNELS];
    bool has_cursor;   /* a cursor was given (else: only new messages) */
    char callback[65]; /* iframe: parent function name */
    bool sse_exact;    /* SSE: ?exact=1, payloads byte for byte (CR too: as EVENT@base64); see sse.c */
    uint64_t exp_ms;   /* wall ms when the subscriber's credential expires and a stream ends (0: never) */
    uint16_t user_len; /* the subscriber's user id (AUTH_USER), for the users table (users.h) */
    char user[ACL_MAX_SUB + 1];
} subreq_t;

/* Parses the channel list (percent-encoded path part after /sub/, comma-separated) and the
 * cursor (Last-Event-ID header, else last_id query). Checks that id may subscribe to every
 * channel before creating any (HR_EFORBIDDEN, with the channel named in *denied). Creates the
 * channels. Returns 0 or an HR_E* with *why set to a static reason. */
int subreq_parse(xp_ctx_t *x, http_req_t *req, span_t chans, const auth_id_t *id, subreq_t *out, const char **why,
                 span_t *denied);

/* Sets sr's user (presence and the users table count the subscription as theirs) from id when id
 * is a user's; leaves it empty (anonymous) otherwise. */
void subreq_user(subreq_t *sr, const auth_id_t *id);

/* ---- access (access.c) ---- */

/* The identity of an HTTP request (an HTTP route or a WebSocket handshake): the credential in
 * "Authorization: Bearer", else the "token" query parameter, else the herald_token cookie (an
 * API key or a token), or none: anonymous. Returns a new reference; on a bad credential answers
 * 401 with WWW-Authenticate (RFC 6750) itself, logs once, and returns NULL. */
auth_id_t *xp_auth_request(xp_ctx_t *x, http_conn_t *hc, http_req_t *req);

/* Answers a refused action on an HTTP route: 401 with WWW-Authenticate when id is anonymous (a
 * credential would help), 403 otherwise; logs it once with the client address. */
void xp_deny_http(xp_ctx_t *x, http_conn_t *hc, const auth_id_t *id, const char *action, const char *chan,
                  size_t n);

/* True when the request's credential is an admin's (an API key, or open mode); otherwise the
 * refusal (401/403, logged once with action and chan, which may be NULL) has been answered. */
bool xp_require_admin(xp_ctx_t *x, http_conn_t *hc, http_req_t *req, const char *action, const char *chan, size_t n);

/* The channel a request is about, percent-decoded from enc into chan (NUL-terminated), when the
 * request may read it (an API key, or a credential that may subscribe to it): its length, or -1
 * when the request was answered (400 bad name, 401/403, logged as a refusal to `action`). */
ssize_t xp_read_channel(xp_ctx_t *x, http_conn_t *hc, http_req_t *req, span_t enc, char *chan, size_t cap,
                        const char *action);

/* The personal channel of id's user (user_channel with its "sub"), NUL-terminated in out;
 * returns its length, or HR_EINVAL (not a user, or user_channel does not name one channel). */
ssize_t xp_user_feed(const xp_ctx_t *x, const auth_id_t *id, char *out, size_t cap);

/* Logs one refused action (a WebSocket, STOMP or MQTT request) with the client address and
 * counts it. chan may be NULL. The protocol's own answer to an access refusal (STOMP ERROR with
 * close 3000/3003, MQTT 0x86/0x87) is not logged again. */
void xp_log_denial(xp_ctx_t *x, conn_t *c, const auth_id_t *id, const char *action, const char *chan, size_t n);

/* Logs a presented credential that was refused (why: a static text, never the credential) with
 * the client address, and counts it. */
void xp_log_refused(xp_ctx_t *x, conn_t *c, const char *why);

/* The wall-clock ms when id stops being valid as a loop-relative delay from now (UINT64_MAX:
 * never; 0: already). */
uint64_t xp_expires_in(const auth_id_t *id);

/* A subscription was refused at max_subscriptions: counts it and logs the first one (with c's
 * peer and the protocol). */
void xp_sub_limit(xp_ctx_t *x, conn_t *c, const char *proto);

/* Parses a composite cursor: exactly nch decimal ids (each < 2^64) separated by single commas.
 * Returns 0 with out[0..nch) set, or HR_EINVAL. */
int cursor_parse(const char *text, size_t len, uint64_t *out, uint32_t nch);

/* Writes the composite cursor ("12" or "12,0,7") into out. Returns its length. */
size_t cursor_format(const uint64_t *cursor, uint32_t n, char *out, size_t cap);

/* The JSON object of a message: {"id":"5","channel":"c","event":"e","time":T,"data":"..."}
 * with "encoding":"base64" for non-UTF-8 payloads. Escapes <, >, & and U+2028/9 so that it is
 * safe inside a <script> block. Cached in slot ENC_JSON. */
bytes_t *json_encode_msg(const msg_t *m);


/* One subscription of a push connection, and the messages it had to drop. */
typedef struct {
    sub_t s;
    uint32_t idx;      /* position in the connection's channel list */
    uint64_t dropped;  /* messages dropped since the last gap notice */
    uint64_t drop_from, drop_to;
    struct pres_member *pm; /* its count in the channel's presence (hub/presence.h), or NULL */
} xsub_t;

/* Gap notice data: {"channel":"c","requested":"3","first_available":"40"} (resume) or
 * {"channel":"c","dropped":N,"from":"A","to":"B"} (slow consumer). Returns length. */
size_t gap_json_resume(const chan_t *ch, uint64_t requested, uint64_t first, char *out, size_t cap);
size_t gap_json_dropped(const chan_t *ch, const xsub_t *xs, char *out, size_t cap);

/* Transport entry points (the connection is the current request's). */
void poll_serve(xp_ctx_t *x, http_conn_t *hc, subreq_t *sr);
void longpoll_serve(xp_ctx_t *x, http_conn_t *hc, subreq_t *sr);
void sse_serve(xp_ctx_t *x, http_conn_t *hc, subreq_t *sr);
void iframe_serve(xp_ctx_t *x, http_conn_t *hc, subreq_t *sr);

/* Builds the poll/long-poll JSON answer for msgs (pointers into history) into a new block:
 * names are the subscription's channels, cursor the composite cursor after msgs. */
bytes_t *poll_answer(const span_t *names, uint32_t nch, const uint64_t *cursor, msg_t **msgs, uint32_t n,
                     const char *gap_info);

/* Answers the request at once like a short poll (counting deliveries as xp) and returns true;
 * with only_if_any, answers only when there are messages or a gap to report, and otherwise
 * returns false with cursor[] set to the current position (the caller parks). Also returns false
 * (cursor[] = the request's) while the store is still loading one of the channels. */
bool poll_respond_now(xp_ctx_t *x, http_conn_t *hc, const subreq_t *sr, uint8_t xp, bool only_if_any,
                      uint64_t *cursor);

/* Parks the poll hc for sr's channels with cursor[]: answered with the first message, or at
 * longpoll_timeout. answer_now (a short poll waiting only for its channels to load): answered as soon as
 * every channel is loaded, messages or not. */
void longpoll_wait(xp_ctx_t *x, http_conn_t *hc, const subreq_t *sr, const uint64_t *cursor, bool answer_now);

/* Fills names with sr's channel names; returns sr->nch. */
uint32_t subreq_names(const subreq_t *sr, span_t *names);

/* Collects up to max messages after sr's cursors (channel by channel) into msgs, updating
 * cursor[] to the last id taken per channel (channels with nothing new keep their cursor).
 * Gap notices (one JSON object per channel with a gap, comma-separated) go to gap (empty when
 * none). Returns the message count. */
uint32_t poll_collect(xp_ctx_t *x, const subreq_t *sr, uint64_t *cursor, msg_t **msgs, uint32_t max, char *gap,
                      size_t gapcap);

/* Replies a connection owes in order while its publishes wait for their commit (/ws publish
 * replies, STOMP receipts): a publish pushes a waiting entry; a reply that must not overtake it
 * pushes a ready one; hub completions mark the oldest waiting entry (they come in publish
 * order); the owner sends ready entries from the front. */
typedef struct xp_owed {
    struct xp_owed *next;
    bool waiting; /* a publish not yet committed */
    int rc;       /* when done: the publish's outcome */
    uint64_t id;
    uint32_t reached;
    uint32_t len;
    char data[]; /* the reply's context (a /ws ref, a STOMP receipt id), len bytes */
} xp_owed_t;

typedef struct {
    xp_owed_t *head, **tail;
    xp_owed_t *wait; /* the oldest waiting entry (completions mark it), or NULL */
    uint32_t n, waiting;
} xp_owedq_t;

#define XP_MAX_OWED 4096 /* replies owed per connection at most (more: the connection is failed) */

void xp_owed_init(xp_owedq_t *q);
/* Appends an entry with data[0..len): waiting (a publish) or ready. NULL: XP_MAX_OWED or OOM. */
xp_owed_t *xp_owed_push(xp_owedq_t *q, const void *data, size_t len, bool waiting);
/* A waiting entry whose publish was refused at once: ready with rc. */
void xp_owed_settle(xp_owedq_t *q, xp_owed_t *e, int rc);
/* The oldest waiting publish completed (a hub_done_cb's arguments). */
void xp_owed_done(xp_owedq_t *q, int rc, const msg_t *m, uint32_t reached);
/* Unlinks and returns the front entry if it is ready (the caller frees it), else NULL. */
xp_owed_t *xp_owed_pop(xp_owedq_t *q);
void xp_owed_free(xp_owedq_t *q);

#endif
