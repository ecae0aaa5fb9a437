/* redis.h - the Redis engine (engine = redis): several herald nodes share channels, ids,
 * histories, MQTT retained messages and presence through one Redis server (or the master a
 * set of Sentinels names). See redis.c. */
#ifndef HERALD_REDIS_H
#define HERALD_REDIS_H

#include "../hub/hub.h"
#include "store.h"

typedef struct {
    const char *addr;          /* "host:port" of the Redis server (not used with sentinels) */
    const char *sentinels;     /* "host:port host:port ..." (spaces or commas), or "": no Sentinel */
    const char *master_name;   /* the master the sentinels are asked for */
    const char *user;          /* ACL user for AUTH, or "" (the default user) */
    const char *password;      /* AUTH password, or "" */
    const char *password_file; /* or the file holding it (one line), or "" */
    uint32_t db;               /* SELECT db */
    const char *prefix;        /* of every key and pub/sub channel herald uses ("herald") */
    uint32_t timeout_ms;       /* a command unanswered this long fails and its connection is remade */
    uint32_t max_inflight;     /* commands in flight at most; beyond, publishes fail (HR_EUNAVAIL) */
    uint32_t hist_max;         /* each channel's stream is capped at this (MAXLEN ~) */
    uint32_t presence_ttl_ms;  /* a node silent this long stops counting in presence (0: 10 s) */
    uint64_t seen_ttl_ms;      /* an offline user's last_seen is kept this long (0: 30 days) */
} store_redis_opts_t;

/* Connects to Redis (through the sentinels when o->sentinels is set) with a blocking start-up
 * connection: authenticates, selects the database, and reads or sets the data epoch. NULL with
 * a message in err when Redis cannot be reached or refuses the credentials (the message never
 * holds the password). o's strings are copied. */
store_t *store_redis_open(const store_redis_opts_t *o, loop_t *loop, char *err, size_t errcap);

/* The engine side of the same object (hub/engine.h): Redis orders publishes across nodes. */
engine_t *store_redis_engine(store_t *s);

/* Starts the asynchronous command connection, the pub/sub feed into hub and the presence
 * reports (after hub_init). */
void store_redis_attach(store_t *s, hub_t *hub);

#endif
