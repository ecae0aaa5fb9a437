/* mqtt.h - the MQTT 3.1.1 / 5.0 broker, on TCP (mqtt_server_*) and over WebSocket at /mqtt
 * (mqtt_ws_serve, subprotocol "mqtt"). Topic a/b is channel a/b: MQTT publishes go through
 * hub_publish (history, every transport), and every publish reaches MQTT subscribers whose filters
 * match through the hub's topic trie. Sessions outlive their connections (persistent sessions,
 * session expiry) in a table keyed by client id. See docs/internals/mqtt.md. */
#ifndef HERALD_MQTT_H
#define HERALD_MQTT_H

#include "../core/hmap.h"
#include "../core/listener.h"
#include "mqtt_queue.h"
#include "transport.h"

/* Why a publish or a will was refused (herald_mqtt_refused_total{reason}). */
enum {
    MQTT_REF_TOPIC,      /* not a herald channel name ("a//b", characters outside the channel alphabet) */
    MQTT_REF_DOLLAR,     /* a '$' topic: the server's own ($SYS) */
    MQTT_REF_DENIED,     /* the permissions do not allow it */
    MQTT_REF_FAILED,     /* the hub or the store refused it (full, unavailable) */
    MQTT_REF_WILL_TOPIC, /* CONNECT refused: its will topic is not a channel, or a '$' topic */
    MQTT_REF_WILL_DENIED, /* CONNECT refused: the will's topic is not allowed */
    MQTT_REF_WILL_FAILED, /* a will could not be published when it was due */
    MQTT_REF_MAX
};

typedef struct mqtt_server {
    listener_t listener;
    listener_t tls_listener;  /* mqtts (mqtt_server_listen_tls) */
    struct tls_ctx *tls;      /* its TLS context (tls.h), or NULL */
    bool tls_open;
    xp_ctx_t *x;
    list_t conns;            /* every MQTT connection, TCP and WebSocket */
    hmap_t sessions;         /* sessions by client id, connected or not */
    uint32_t nsess;          /* sessions.n */
    uint32_t nconns;         /* TCP connections (max_connections) */
    mq_total_t queued;       /* every session's waiting messages (mqtt_max_queued_bytes_total) */
    uint64_t queued_drops;   /* messages dropped for mqtt_max_queued_bytes_total */
    uint64_t refused[MQTT_REF_MAX]; /* publishes and wills refused, by reason */
    uint32_t lingering;      /* connections reading and dropping input after their last packet (max_lingering_closes) */
    uint64_t lingers, linger_skipped; /* lingering closes done; closed at once because max_lingering_closes were lingering */
    bool linger_full;        /* the bound was reached (logged); cleared below half of it */
    bool ka_v3_logged;       /* a 3.1.1 client held to mqtt_max_keepalive was logged */
    uint64_t ka_capped;      /* connections held to mqtt_max_keepalive (they asked for more, or v5 for none) */
    bool open;
    bool closed;             /* mqtt_server_close ran: no new sessions */
    list_t dirty;            /* persistent sessions changed since the last mqtt_server_persist */
    list_t saving;           /* sessions written by mqtt_server_persist, waiting for the commit */
    uint32_t restored;       /* sessions brought back from the store at start-up */
    tw_entry_t sys;          /* $SYS/ statistics every mqtt_sys_interval */
    uint64_t started_ms;
    uint32_t nsys;
    struct msg *sysmsg[16];  /* the latest $SYS/ messages, sent to new matching subscriptions */
} mqtt_server_t;

/* Binds cfg->mqtt_addr (empty: MQTT over TCP disabled) and starts accepting. Also makes x->mqtt
 * point at srv, so /mqtt over WebSocket shares the session table, and restores the persistent
 * sessions the store kept. 0 or HR_EIO/HR_EINVAL. */
int mqtt_server_open(mqtt_server_t *srv, xp_ctx_t *x, loop_t *loop);

/* Also accepts MQTT over TLS on addr (mqtts), through TLS context tls (tls.h, kept by the caller
 * until the server is closed). 0, or HR_EIO/HR_EINVAL as listener_open. */
int mqtt_server_listen_tls(mqtt_server_t *srv, const char *addr, struct tls_ctx *tls);

/* Serves MQTT over WebSocket on hc (GET /mqtt, subprotocol "mqtt" required). */
void mqtt_ws_serve(xp_ctx_t *x, http_conn_t *hc, http_req_t *req);

/* Writes the persistent sessions changed since the last call to the store (the loop calls this
 * just before the store commits, so a session's state is stored with the messages it refers to). */
void mqtt_server_persist(mqtt_server_t *srv);

/* Tells the sessions mqtt_server_persist wrote whether their commit succeeded (if not, they are
 * written again with the next one). */
void mqtt_server_committed(mqtt_server_t *srv, bool ok);

/* True when persistent sessions changed since the last mqtt_server_persist (e.g. a commit's
 * messages were queued for offline clients). */
bool mqtt_server_dirty(const mqtt_server_t *srv);

/* Renders the broker's own metrics (herald_mqtt_refused_total{reason}, herald_mqtt_lingers_total,
 * herald_mqtt_keepalive_capped_total) into out; returns the bytes written (0 when they do not fit). */
size_t mqtt_server_metrics(const mqtt_server_t *srv, char *out, size_t cap);

/* Stops accepting; every connection gets DISCONNECT 0x8B (v5) and is closed; persistent
 * sessions are written to the store (they come back at the next start), every session freed. */
void mqtt_server_close(mqtt_server_t *srv);

#endif
