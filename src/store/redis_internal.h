/* redis_internal.h - what the files of the Redis engine share: redis.c (store ops, ids,
 * histories, the epoch), redis_conn.c (connections: hiredis async on herald's loop, AUTH,
 * SELECT, Sentinel, deadlines, reconnects), redis_feed.c (the pub/sub feed, the nodes' counts,
 * occupancy), redis_presence.c (presence and users across nodes), redis_kv.c (shared records)
 * and redis_idem.c (idempotency keys shared by the nodes). Nothing outside
 * src/store/redis*.c includes it. */
#ifndef HERALD_REDIS_INTERNAL_H
#define HERALD_REDIS_INTERNAL_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "../core/list.h"
#include "../core/loop.h"
#include "redis.h"

typedef struct rd rd_t;
typedef struct rd_req rd_req_t;
typedef struct rd_conn rd_conn_t;

/* Called once with a command's reply (possibly an error reply), or with NULL when the command
 * failed: its connection was lost or remade (deadline), or the store is closing (r->closing:
 * then touch nothing but q). The callback owns q again and frees it (or sends it again). */
typedef void (*rd_reply_cb)(rd_t *r, redisReply *rep, rd_req_t *q);

/* A command in flight; the sender embeds it first in its own struct. */
struct rd_req {
    list_node_t link; /* in rd_conn.inflight, oldest first */
    uint64_t sent_ms;
    rd_reply_cb cb;
};

typedef enum {
    RDC_DOWN,       /* no connection; the retry timer is armed (or the store is closing) */
    RDC_RESOLVING,  /* asking a sentinel where the master is */
    RDC_CONNECTING, /* connecting, handshake (AUTH, SELECT, ROLE) sent: commands queue behind it */
    RDC_UP,         /* handshake answered */
} rdc_state_t;

/* One hiredis async context driven by herald's loop (the adapter in redis_conn.c). */
typedef struct {
    rd_conn_t *c;
    redisAsyncContext *ac;
    watcher_t w;
    bool watching, rd, wr;
} rd_link_t;

/* A connection to the master that makes itself again: resolve (Sentinel), connect, handshake,
 * commands with a deadline, reconnect with backoff (100 ms doubling to 5 s). */
struct rd_conn {
    rd_t *r;
    const char *name; /* "commands" or "feed", for logs and metrics */
    bool feed;        /* no command limit; on_up subscribes */
    rd_link_t link;   /* to the master */
    rd_link_t slink;  /* to a sentinel while resolving */
    rdc_state_t state;
    uint64_t state_ms; /* when the state began (resolve and connect deadlines) */
    uint64_t kick_ms;  /* DOWN: a command may start connecting at once from then on (rd_conn_kick) */
    list_t inflight;   /* rd_req_t */
    uint32_t ninflight;
    uint32_t handshake; /* handshake replies still to come */
    tw_entry_t retry, deadline, step;
    uint32_t backoff_ms, sentinel_i;
    bool resolved;  /* the sentinel asked last named a master (host, port) */
    bool warned;    /* this outage was logged */
    char host[256]; /* where link goes */
    int port;
    uint64_t connects, timeouts;
    void (*on_up)(rd_conn_t *c); /* handshake done */
};

struct rd {
    store_t base;
    engine_t eng; /* the same object as the engine that orders publishes (hub/engine.h) */
    hub_t *hub;
    loop_t *loop;
    /* settings */
    char host[256];
    int port;
    char sentinels[512], master[128], user[128], password[512], prefix[65];
    uint32_t db, timeout_ms, max_inflight, hist_max;
    char node[48];     /* this node's id (presence) */
    char epoch[40];    /* the data epoch this node's channels belong to */
    char prev_epoch[40]; /* the one before (answers carrying it are stale) */
    char feedpfx[100]; /* "PREFIX:DB:m:": pub/sub channel = feedpfx + channel name */
    size_t feedpfx_len;
    redisContext *boot; /* the blocking start-up connection, until the retained messages are read */
    rd_conn_t cmd, feed;
    bool closing;
    uint64_t load_before; /* the feed creates a channel for this id: load only older ones */
    /* presence and the feed's liveness: every second one script reports this node's counts and
     * publishes a ping the feed must see */
    tw_entry_t presence;
    bool presence_busy;
    uint64_t feed_sub_ms; /* when the feed last subscribed */
    uint64_t ping_acked, ping_seen, unseen_since_ms;
    list_t counts; /* occupancy requests waiting (rd_count_t) */
    list_t claims; /* idempotency claims waiting (redis_idem.c) */
    list_t wds;    /* withdrawals and deletions waiting (redis_withdraw.c) */
    /* presence and users across nodes (redis_presence.c) */
    struct rd_pres *pres;
    uint32_t pres_ttl_ms; /* presence_node_timeout */
    uint64_t seen_ttl_ms; /* users_last_seen_ttl */
    /* catch-up of every channel after the feed (re)subscribed, a few at a time */
    char **cu;
    uint32_t cu_n, cu_next, cu_busy;
    bool cu_wait; /* the catch-up waits for the command connection to come back */
    /* counters (metrics) */
    uint64_t publishes, injected, filled, refused_down, refused_limit, failed, epoch_changes, loads, dropped;
    bool limit_logged, fail_logged;
};

/* ---- redis_conn.c ---- */

void rd_conn_init(rd_t *r, rd_conn_t *c, const char *name, bool feed, void (*on_up)(rd_conn_t *c));

/* Starts connecting (now). */
void rd_conn_start(rd_conn_t *c);

/* Sends argv as one command; cb(r, reply, q) later. Returns 0 (q is the connection's until cb),
 * HR_EUNAVAIL (no connection) or HR_EFULL (max_inflight commands in flight); q stays the
 * caller's then. */
int rd_conn_send(rd_conn_t *c, rd_req_t *q, rd_reply_cb cb, int argc, const char **argv, const size_t *len);

/* A command wants the connection while it is down: connect now rather than at the end of the
 * backoff (at once after a connection that was up is lost, then at most every 250 ms). */
void rd_conn_kick(rd_conn_t *c);

/* Drops the connection (its commands fail) and connects again after the backoff. */
void rd_conn_drop(rd_conn_t *c, const char *why);

/* Frees the connection for good (its commands fail, with r->closing set). */
void rd_conn_close(rd_conn_t *c);

/* The blocking start-up connection: resolves the master (sentinels), connects, AUTH, SELECT,
 * ROLE; r->boot. 0, or HR_EUNAVAIL with a message in err. */
int rd_boot(rd_t *r, char *err, size_t errcap);

/* A blocking connection to host:port with AUTH and SELECT (start-up and shut-down only), or NULL
 * with a message in err. */
redisContext *rd_boot_connect(rd_t *r, const char *host, int port, uint32_t timeout_ms, char *err, size_t errcap);

/* The same, to the master the command connection uses (or the configured address): a blocking
 * connection for start-up and shut-down work. NULL (err says why) when there is none. */
redisContext *rd_boot_master(rd_t *r, uint32_t timeout_ms, char *err, size_t errcap);

/* ---- redis_feed.c ---- */

/* The feed connection's on_up: PSUBSCRIBE feedpfx*. */
void rd_feed_up(rd_conn_t *c);

/* Presence reports (every second) and the feed's liveness check. */
void rd_presence_tick(tw_entry_t *e);

/* Removes this node's presence at once (shut-down; blocking, bounded). */
void rd_presence_leave(rd_t *r);

/* The store's occupancy and cancel ops (store.h): one script on the command connection. */
int rd_occupancy(engine_t *e, const char *ch, size_t n, engine_count_cb cb, void *arg);
void rd_cancel(engine_t *e, void *arg);

/* The engine's control op (engine.h): PUBLISH "NODE JSON" on feedpfx + "$ctl"; every other
 * node's feed hands JSON to eng.on_control. */
int rd_control(engine_t *e, const char *json, size_t n);

/* ---- redis_kv.c ---- */

/* The engine's kv ops (engine.h): one hash per namespace, PREFIX:kv:NS. */
int rd_kv_put(engine_t *e, const char *ns, const void *key, size_t klen, const void *val, size_t vlen);
int rd_kv_each(engine_t *e, const char *ns, engine_kv_cb cb, void *arg);

/* ---- redis_idem.c ---- */

/* The engine's idempotency ops (engine.h): one key per caller and key, PREFIX:idem:SCOPE KEY. */
int rd_idem_claim(engine_t *e, const void *key, size_t klen, uint64_t window_ms, engine_idem_cb cb, void *arg);
int rd_idem_settle(engine_t *e, const void *key, size_t klen, const void *rec, size_t n, uint64_t ttl_ms);
int rd_idem_release(engine_t *e, const void *key, size_t klen);

/* Forgets the claims waiting with arg (rd_cancel). */
void rd_idem_cancel(rd_t *r, void *arg);

/* ---- redis_withdraw.c ---- */

/* The engine's withdraw and clear ops (engine.h): one script each, which also tells the other
 * nodes (a control command on the feed, in order with the channel's messages). */
int rd_withdraw(engine_t *e, const char *name, size_t n, uint64_t id, engine_done_cb cb, void *arg);
int rd_clear(engine_t *e, const char *name, size_t n, engine_done_cb cb, void *arg);

/* Forgets the answers waiting with arg (rd_cancel). */
void rd_wd_cancel(rd_t *r, void *arg);

/* ---- redis_presence.c ---- */

/* Starts the presence heartbeat (store_redis_attach). */
void rd_pres_start(rd_t *r);

/* Stops it, forgets waiting requests, and removes this node's share from Redis (blocking,
 * bounded: shut-down only). */
void rd_pres_close(rd_t *r);

/* The engine's presence ops (engine.h). */
int rd_pres_write(engine_t *e, const engine_pres_t *v, uint32_t n, int phase);
int rd_pres_list(engine_t *e, const char *ch, size_t n, uint32_t max, engine_roster_cb cb, void *arg);
int rd_user_write(engine_t *e, const engine_user_t *v, uint32_t n, bool reset);
int rd_user_status(engine_t *e, const char *id, size_t n, engine_ustatus_cb cb, void *arg);

/* Forgets the presence callbacks waiting with arg (rd_cancel). */
void rd_pres_cancel(rd_t *r, void *arg);

/* A presence event from the feed (P:DB:m:$pres): "join CH\nUSER" or "leave CH\nUSER". */
void rd_pres_on_feed(rd_t *r, const char *payload, size_t n);

/* Its metrics (Prometheus text); bytes written. */
size_t rd_pres_metrics(const rd_t *r, char *out, size_t cap);

/* ---- redis.c ---- */

/* A message of ch (this node's publish answered, or the feed): delivered in id order, a hole
 * filled from the stream first, a repeated id dropped (or, holding other contents, taken as
 * Redis having lost the channel). */
void rd__deliver(rd_t *r, chan_t *ch, msg_t *m);

/* The epoch Redis answered with: when it differs from this node's, Redis lost its data: every
 * channel restarts (hub_reset), and 1. -1 when it is the epoch this node left (an answer that was
 * overtaken: its data is gone), else 0. */
int rd__epoch(rd_t *r, const char *e, size_t n);

/* A fresh epoch candidate, never the current epoch: a script that finds none sets it. */
void rd__candidate(rd_t *r, char out[33]);

/* Catches up every channel this node holds (the feed was down), a few at a time. */
void rd__catch_up_all(rd_t *r);

/* Key or channel name PREFIX:kind:name into out. */
void rd__key(const rd_t *r, char *out, size_t cap, const char *kind, const char *name, size_t n);

#endif
