/* mqtt_internal.h - what the MQTT broker's files share (mqtt.c: connections, sessions,
 * delivery; mqtt_persist.c: sessions in the store; mqtt_sys.c: $SYS figures). Not a public
 * interface: only src/transport/mqtt*.c include it. */
#ifndef HERALD_MQTT_INTERNAL_H
#define HERALD_MQTT_INTERNAL_H

#include "mqtt.h"
#include "mqtt_codec.h"
#include "mqtt_queue.h"
#include "ws.h"

#define MQTT_RECEIVE_MAX 1024 /* incoming QoS 2 messages awaiting PUBREL, offered as Receive Maximum */
#define MQTT_MAX_SUBS 1024
#define MQTT_MAX_CLIENT_ID 256
#define MQTT_NEVER UINT64_MAX
#define MQTT_KV "mqtt.session" /* the store's key-value namespace for persistent sessions */

typedef struct mqtt_sess mqtt_sess_t;
typedef struct mqtt_conn mqtt_conn_t;

typedef struct {
    hub_tsub_t t;
    mqtt_sess_t *s;
    uint8_t opts; /* SUBSCRIBE options byte */
    bool filtered; /* the permissions cover the filter only in part: each message's channel is checked */
    uint32_t sub_id;
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
    mqtt_sess_t *hnext;    /* in srv->stab */
    uint32_t hash;
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
    mqtt_ackw_t *ackw;     /* acknowledgements owed, a ring (in order) */
    uint32_t ackw_cap, ackw_head, ackw_n;
    uint32_t ackw_wait;    /* of them, publishes still waiting for their commit */
};

typedef struct {
    conn_t base;
    mqtt_conn_t k;
} mqtt_tcp_t;

typedef struct {
    ws_t ws;
    mqtt_conn_t k;
} mqtt_wsc_t;

/* A new, empty session for client id id[0..n), in the session table; NULL when out of memory. */
mqtt_sess_t *mqtt__sess_new(mqtt_server_t *srv, const char *id, size_t n);

/* Frees a session. forget: it ends (its pending will goes out, unless discarded before, and the
 * store forgets it); otherwise only the memory goes (shutdown: the store keeps the record). */
void mqtt__sess_free(mqtt_sess_t *s, bool forget);

/* Makes (or replaces) s's subscription to f with options o. Returns it, or NULL with *code set. */
mqtt_sub_t *mqtt__sub_add(mqtt_sess_t *s, bool v5, span_t f, uint8_t o, uint32_t sub_id, bool *is_new,
                          uint8_t *code);

/* Keeps a message for s to send later (its waiting FIFO, oldest dropped beyond the limit). */
void mqtt__keep(mqtt_sess_t *s, const mq_item_t *it);

/* The client is away (left now, or, for a restored session, earlier): the will goes out now or
 * after its delay; unless a new connection takes the session over, the session ends (expiry 0,
 * or shutting down) or is kept expires_in_ms more. */
void mqtt__away(mqtt_sess_t *s, bool takeover, uint64_t expires_in_ms);

/* The store's kv_each callback: brings one saved session back (mqtt_persist.c). */
int mqtt__restore_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen);

/* The $SYS timer: publishes the broker's figures (mqtt_sys.c). */
void mqtt__sys(tw_entry_t *e);

#endif
