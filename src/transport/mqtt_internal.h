/* mqtt_internal.h - what the MQTT broker's files share (mqtt.c: connections and packets;
 * mqtt_sess.c: sessions and subscriptions; mqtt_deliver.c: delivery to subscribers; mqtt_pub.c:
 * client publishes; mqtt_persist.c: sessions in the store; mqtt_sys.c: $SYS figures; mqtt_refuse.c:
 * refusals and lingering closes counted). Not a public interface: only src/transport/mqtt*.c include it. */
#ifndef HERALD_MQTT_INTERNAL_H
#define HERALD_MQTT_INTERNAL_H

#include "mqtt.h"
#include "mqtt_codec.h"
#include "mqtt_queue.h"
#include "ws.h"

#define MQTT_RECEIVE_MAX 1024 /* incoming QoS 2 messages awaiting PUBREL, offered as Receive Maximum */
#define MQTT_MAX_CLIENT_ID 256
#define MQTT_NEVER UINT64_MAX
#define MQTT_KV "mqtt.session" /* the store's key-value namespace for persistent sessions */
/* After its last packet (a v5 DISCONNECT, a CONNACK refusal) a TCP connection lingers: its input
 * is read and dropped until the peer closes, MQTT_LINGER_MS pass or MQTT_LINGER_BYTES arrive, so
 * closing with unread input does not reset the connection before the client reads the reason. At
 * most max_lingering_closes at once (beyond, closed at once; herald_mqtt_lingers_total). */
#define MQTT_LINGER_MS 2000
#define MQTT_LINGER_WRITE_MS 10000 /* first, at most this to write what is queued (the last packet last) */
#define MQTT_LINGER_BYTES (256u << 10)

typedef struct mqtt_sess mqtt_sess_t;
typedef struct mqtt_conn mqtt_conn_t;

/* A topic alias herald assigned to a connection (server to client, MQTT 5), keyed by topic. */
typedef struct {
    hmap_node_t node;
    uint16_t alias;
    uint16_t n;
    char topic[];
} mqtt_oalias_t;

typedef struct {
    hub_tsub_t t;
    mqtt_sess_t *s;
    uint8_t opts; /* SUBSCRIBE options byte */
    bool filtered; /* the permissions cover the filter only in part: each message's channel is checked */
    uint32_t sub_id;
    struct pres_member *pm; /* counted in its channel's presence (exact filters, client connected) */
    uint16_t flen;
    char filter[];
} mqtt_sub_t;

/* A will: published when the connection ends without a normal DISCONNECT (after its delay). */
typedef struct {
    uint32_t delay_s, expiry_s;
    uint32_t topic_len, payload_len, props_len;
    uint8_t qos;
    bool retain;
    char mem[]; /* topic, payload, properties */
} mqtt_will_t;

struct mqtt_sess {
    mqtt_server_t *srv;
    xp_ctx_t *x;
    hmap_node_t node;      /* in srv->sessions, keyed by client id */
    mqtt_conn_t *conn;     /* NULL while the client is away */
    char *client_id;
    uint32_t expiry_s;     /* session expiry interval; UINT32_MAX: never */
    tw_entry_t timer;      /* while away: the will delay, then the expiry */
    uint64_t will_at, expires_at; /* loop ms; MQTT_NEVER when not due */
    uint32_t nsubs, capsubs, nin2;
    mqtt_sub_t **subs;
    mq_flight_t out;       /* outgoing QoS > 0 in flight */
    mq_fifo_t queue;       /* waiting to be sent */
    uint16_t *in2;         /* incoming QoS 2 packet ids awaiting PUBREL */
    mqtt_will_t *will;
    list_node_t dirty;     /* in srv->dirty: to be written to the store */
    bool stored;           /* the store has a record of it */
    uint64_t away_wall;    /* wall ms when the client left (0: connected) */
    bool drop_logged;      /* the queue's overflow was logged (once per session) */
    auth_id_t *id;         /* whose session it is (for filtered subscriptions); NULL when restored, until the
                              client is back */
    char *owner;           /* the user id owning the client id ("" anonymous); kept with the session */
};

/* An acknowledgement owed for a QoS 1 or 2 PUBLISH: sent in the order the PUBLISHes came, each
 * once its publish is committed (or failed). */
typedef struct {
    uint16_t pid;
    uint8_t type;   /* MQTT_PUBACK or MQTT_PUBREC */
    uint8_t reason; /* when done */
    bool done;
} mqtt_ackw_t;

#define MQTT_MAX_ACKW 65536 /* acknowledgements owed at most (packet ids are 16 bits) */

struct mqtt_conn {
    xp_ctx_t *x;
    mqtt_server_t *srv;
    conn_t *c;
    ws_t *ws;              /* set when carried over WebSocket */
    list_node_t link;      /* in srv->conns */
    tw_entry_t ka;         /* keepalive check */
    mqtt_sess_t *s;        /* after CONNECT */
    uint8_t version;       /* the level the peer speaks: 0 until CONNECT (or a refused one) says */
    bool connected;        /* CONNACK accepted it */
    bool said_bye;         /* DISCONNECT or CONNACK refusal queued */
    bool expiry0;          /* v5 CONNECT asked for session expiry 0 (DISCONNECT may not raise it) */
    uint16_t keepalive;
    uint16_t naliases;     /* topic aliases the client may use (v5) */
    uint32_t window;       /* outgoing QoS > 0 messages allowed in flight */
    uint32_t max_packet;   /* the client's Maximum Packet Size (0: the protocol's) */
    uint64_t last_rx_ms;   /* loop time of the last input (keepalive) */
    ws_carry_t in;         /* WebSocket: a packet cut at the end of a message */
    char **alias;          /* incoming topic aliases, [1..naliases], made on first use */
    auth_id_t *id;         /* who the peer is */
    bool denial_logged;    /* refused publishes are logged once per connection */
    uint8_t refused_logged; /* bits: reasons (MQTT_REF_*) already logged on this connection */
    bool lingering;        /* its last packet is queued: input is read and dropped until it closes */
    bool linger_written;   /* ... and written: MQTT_LINGER_MS run */
    uint32_t linger_bytes; /* input dropped while lingering */
    uint16_t oalias_max;   /* topic aliases herald may assign (v5: min(client's maximum, mqtt_topic_aliases_out)) */
    uint16_t oalias_n;     /* assigned so far (1..oalias_n; never reused: the rest go with their topic) */
    hmap_t *oalias;        /* topic -> mqtt_oalias_t, made on first use */
    mqtt_ackw_t *ackw;     /* acknowledgements owed, a ring (in order) */
    uint32_t ackw_cap, ackw_head, ackw_n;
    uint32_t ackw_wait;    /* of them, publishes still waiting for their commit */
    uint32_t ackw_at;      /* offset from ackw_head of the oldest waiting one (while ackw_wait) */
    users_conn_t uc;       /* a user's connection, after CONNACK: in x->users (users.h) */
};

typedef struct {
    conn_t base;
    mqtt_conn_t k;
    char client[46]; /* the client a PROXY header named (conn_t.alias), or "" */
} mqtt_tcp_t;

typedef struct {
    ws_t ws;
    mqtt_conn_t k;
} mqtt_wsc_t;

/* ---- connections (mqtt.c) ---- */

/* True when k is connected (CONNACK sent) and neither leaving nor closing. */
bool mqtt__live(const mqtt_conn_t *k);

/* Queues a packet (and, when tail is set, a shared tail after it) on k, framed for WebSocket when
 * k is one. reply: ignore the write queue's limit. 0, HR_EFULL (over the limit, nothing queued),
 * HR_EIO (closing) or HR_ENOMEM. */
int mqtt__send(mqtt_conn_t *k, bytes_t *b, bytes_t *tail, bool reply);

/* Encodes and sends a control packet (an answer the client is owed). */
void mqtt__reply(mqtt_conn_t *k, const mqtt_pkt_t *p);

/* Sends a PUBACK, PUBREC, PUBREL or PUBCOMP for pid (reason: v5 only). */
void mqtt__ack(mqtt_conn_t *k, uint8_t type, uint16_t pid, uint8_t reason);

/* The one place that answers a violation: while connecting, a CONNACK with reason (v5) or with
 * its 3.1.1 return code when one exists; once connected, DISCONNECT with reason (v5); v3.1.1
 * otherwise just closes. Logged once; the connection ends. */
void mqtt__fail(mqtt_conn_t *k, uint8_t reason, const char *why);

/* Counts a refused publish or will (reason MQTT_REF_*) and logs it: once per connection and reason
 * when k is set (the connection that sent it), always when k is NULL (a will due after its
 * connection ended). */
void mqtt__refused(mqtt_server_t *srv, mqtt_conn_t *k, int reason, const char *why, const char *topic, size_t n);

/* ---- sessions and subscriptions (mqtt_sess.c) ---- */

/* Sets up srv's session table and the total of their queues. 0 or HR_ENOMEM. */
int mqtt__sessions_init(mqtt_server_t *srv);

/* Frees every session (the store keeps the persistent ones) and the table. */
void mqtt__sessions_free(mqtt_server_t *srv);

/* A new, empty session for client id id[0..n), in the session table; NULL when out of memory. */
mqtt_sess_t *mqtt__sess_new(mqtt_server_t *srv, const char *id, size_t n);

/* Frees a session. forget: it ends (its pending will goes out, unless discarded before, and the
 * store forgets it); otherwise only the memory goes (shutdown: the store keeps the record). */
void mqtt__sess_free(mqtt_sess_t *s, bool forget);

/* The session of client id id (NUL-terminated), or NULL. */
mqtt_sess_t *mqtt__sess_find(mqtt_server_t *srv, const char *id);

/* A persistent session changed: written to the store before this loop iteration's commit. */
void mqtt__dirty(mqtt_sess_t *s);

/* The client is away (left now, or, for a restored session, earlier): the will goes out now or
 * after its delay; unless a new connection takes the session over, the session ends (expiry 0,
 * or shutting down) or is kept expires_in_ms more. */
void mqtt__away(mqtt_sess_t *s, bool takeover, uint64_t expires_in_ms);

/* Separates k from its session, whose client is away from now. Returns the session, or NULL. */
mqtt_sess_t *mqtt__detach(mqtt_conn_t *k);

/* Connection k leaves its session (closed, or taken over by a new connection): the will goes
 * out now or after its delay; unless taken over, the session ends now (expiry 0) or is kept
 * until it expires. */
void mqtt__leave(mqtt_conn_t *k, bool takeover);

/* The will of CONNECT p (NULL when it has none, or on failure with *oom set). */
mqtt_will_t *mqtt__will_new(const mqtt_pkt_t *p, bool *oom);

/* Makes (or replaces) s's subscription to f with options o. Returns it, or NULL with *code set. */
mqtt_sub_t *mqtt__sub_add(mqtt_sess_t *s, bool v5, span_t f, uint8_t o, uint32_t sub_id, bool *is_new,
                          uint8_t *code);

/* Ends s's i-th subscription (the last one takes its place). */
void mqtt__drop_sub(mqtt_sess_t *s, uint32_t i);

/* Counts the session's exact-filter subscriptions in their channels' presence (hub/presence.h) as
 * its connection's user's: its client is connected (again). mqtt__detach uncounts them. */
void mqtt__pres_attach(mqtt_sess_t *s);

/* How id's permissions cover filter f (a shared subscription "$share/GROUP/F" is checked as F). */
acl_cover_t mqtt__cover(const auth_id_t *id, span_t f);

/* SUBSCRIBE and UNSUBSCRIBE from k: answered with SUBACK (then the retained messages) and
 * UNSUBACK. */
void mqtt__subscribe(mqtt_conn_t *k, const mqtt_pkt_t *p);
void mqtt__unsubscribe(mqtt_conn_t *k, const mqtt_pkt_t *p);

/* ---- delivery (mqtt_deliver.c) ---- */

/* Sends what waits in k's session FIFO while the window and the socket allow. */
void mqtt__pump(mqtt_conn_t *k);

/* Keeps a message for s to send later (its waiting FIFO, oldest dropped beyond the limit). */
void mqtt__keep(mqtt_sess_t *s, const mq_item_t *it);

/* Hands message m to session s at qos (sent, put in flight, kept for later, or dropped). */
void mqtt__offer(mqtt_sess_t *s, msg_t *m, uint8_t qos, bool retain, uint32_t sub_id);

/* The hub's deliver callback of a subscription (mqtt_sub_t.t). */
void mqtt__on_publish(hub_tsub_t *t, msg_t *m);

/* A reconnect resumed the session: unacknowledged PUBLISHes again with DUP, PUBRELs again, in
 * their original order (MQTT 5.0 4.4), then what waits. */
void mqtt__resend(mqtt_conn_t *k);

/* True when topic t matches filter f (no "$share/" prefix). */
bool mqtt__matches(const char *f, size_t fn, const char *t, size_t tn);

/* hub_each_retained callback: offers ch's retained message to the subscription arg when its
 * filter matches (and its permissions allow). */
void mqtt__send_retained(chan_t *ch, void *arg);

/* Frees the topic aliases herald assigned to k (mqtt_deliver.c). */
void mqtt__oalias_free(mqtt_conn_t *k);

/* ---- publishing (mqtt_pub.c) ---- */

/* The properties of a PUBLISH (or will) that travel with the message to MQTT 5 subscribers,
 * encoded; NULL when there are none; *oom on failure. */
bytes_t *mqtt__pass_props(const mqtt_props_t *in, bool *oom);

/* Publishes into the hub as session s (the hub keeps or clears the retained message). k: the
 * connection that sent it, told when it is committed (QoS > 0); NULL for wills. 0 or HR_E*. */
int mqtt__publish(mqtt_sess_t *s, mqtt_conn_t *k, span_t topic, span_t payload, uint8_t qos, bool retain,
                  uint32_t expiry_s, span_t props);

/* A PUBLISH from k: checked, published, and acknowledged in order once committed. */
void mqtt__on_publish_pkt(mqtt_conn_t *k, const mqtt_pkt_t *p);

/* ---- the store and $SYS (mqtt_persist.c, mqtt_sys.c) ---- */

/* The store's kv_each callback: brings one saved session back (mqtt_persist.c). */
int mqtt__restore_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen);

/* The $SYS timer: publishes the broker's figures (mqtt_sys.c). */
void mqtt__sys(tw_entry_t *e);

#endif
