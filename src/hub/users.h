/* users.h - the live connections of each user on this node (issue 13: users as first-class).
 *
 * A user is the "sub" of a token or a password-file login (auth.h, AUTH_USER). Each long-lived
 * connection whose identity is a user (SSE, iframe, WebSocket /sub, /ws, STOMP, MQTT over TCP
 * and WebSocket) embeds a users_conn_t and registers it here while it is open; the admin API
 * (GET /users/{id}, POST /users/{id}/disconnect and /unsubscribe) finds them through this table
 * and acts on them through the two operations each transport supplies, so this file knows no
 * wire format.
 *
 * When a user's last connection closes, the user is remembered as offline with the wall time
 * it was last seen, for at most max_offline users (users_offline_max; the oldest is forgotten
 * first, counted in `evicted`, the first time logged). 0 remembers none.
 *
 * Entries are keyed by the user id in the seeded hash map (hmap.h): user ids come from clients'
 * tokens. Everything here runs on the loop that owns the connections. */
#ifndef HERALD_USERS_H
#define HERALD_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/hmap.h"
#include "../core/list.h"

#define USERS_MAX_ID 255     /* bytes of a user id at most (ACL_MAX_SUB fits) */
#define USERS_MAX_REASON 200 /* bytes of a disconnect reason at most */

typedef struct users_conn users_conn_t;
typedef struct users_user users_user_t;

typedef struct {
    /* Ends the connection with its protocol's goodbye carrying reason (and whether the client
     * should reconnect). The connection may unregister itself (users_remove) during the call or
     * later; it is no longer listed either way. */
    void (*disconnect)(users_conn_t *uc, const char *reason, bool reconnect);
    /* Ends the connection's subscriptions to channel ch[0..n), telling the client where its
     * protocol can; returns how many it ended. May end the connection (a stream of that channel
     * alone) and unregister it during the call. NULL: the transport cannot. */
    uint32_t (*unsubscribe)(users_conn_t *uc, const char *ch, size_t n);
} users_conn_ops_t;

/* Embedded in a connection's own struct (zeroed: not registered). */
struct users_conn {
    list_node_t link;    /* in its user's conns */
    users_user_t *u;     /* NULL while not registered */
    const users_conn_ops_t *ops;
    const char *kind;    /* static name of its transport: "sse", "iframe", "websocket", "ws_json", "stomp",
                          * "mqtt", "mqtt_ws" */
};

struct users_user {
    hmap_node_t node;  /* in users_t.map */
    list_node_t olink; /* in users_t.offline while the user has no connection */
    list_t conns;      /* its live users_conn_t */
    uint32_t nconns;
    uint32_t busy;       /* a walk over conns is running: not freed */
    uint64_t last_seen_ms; /* wall ms its last connection closed (0 while online) */
    uint16_t len;
    char id[];
};

typedef struct users {
    hmap_t map;       /* users_user_t by id: online, and offline ones remembered */
    list_t offline;   /* offline users, the longest offline first */
    uint32_t online;  /* users with a connection */
    uint32_t noffline;
    uint32_t max_offline;
    uint64_t conns;   /* registered connections */
    uint64_t evicted; /* offline users forgotten at max_offline */
    uint64_t disconnects; /* connections ended by users_disconnect */
    bool evict_logged;
    /* Optional (presence.c): called with the user's id whenever one of its connections is
     * registered or unregistered (the user may be gone by the time it is acted on). */
    void (*changed)(void *arg, const char *id, size_t n);
    void *changed_arg;
} users_t;

/* Sets up an empty table remembering at most max_offline offline users. 0 or HR_ENOMEM. */
int users_init(users_t *us, uint32_t max_offline);

/* Frees every user entry. Connections still registered are unlinked (not told). */
void users_close(users_t *us);

/* Registers uc (ops and kind set by the caller) under user id[0..n). Registering a connection
 * that is already registered moves it. 0, HR_EINVAL (an empty or too long id) or HR_ENOMEM (uc
 * stays unregistered). */
int users_add(users_t *us, const char *id, size_t n, users_conn_t *uc);

/* Unregisters uc (nothing when it is not registered). */
void users_remove(users_t *us, users_conn_t *uc);

/* The user id[0..n), online or remembered offline, or NULL. */
users_user_t *users_find(const users_t *us, const char *id, size_t n);

/* Ends every connection of user id[0..n) with reason; returns how many. */
uint32_t users_disconnect(users_t *us, const char *id, size_t n, const char *reason, bool reconnect);

/* Ends the subscriptions of user id[0..n) to channel ch[0..cn) on every connection; returns
 * how many subscriptions ended. */
uint32_t users_unsubscribe(users_t *us, const char *id, size_t n, const char *ch, size_t cn);

/* Counts u's connections by kind: fills kinds[] (distinct, in first-seen order) and counts[],
 * at most max; returns how many kinds. */
uint32_t users_count_kinds(const users_user_t *u, const char **kinds, uint32_t *counts, uint32_t max);

/* The Prometheus text of the table (online users, connections, offline remembered, evicted);
 * returns bytes written (0 when cap is too small). */
size_t users_metrics(const users_t *us, char *out, size_t cap);

#endif
