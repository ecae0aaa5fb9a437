/* redis.h - the Redis engine (engine = redis): several herald nodes share channels, ids,
 * histories, MQTT retained messages and presence through one Redis server. See redis.c. */
#ifndef HERALD_REDIS_H
#define HERALD_REDIS_H

#include "../hub/hub.h"
#include "store.h"

/* Connects to Redis at addr ("host:port") with a blocking connection. hist_max caps each
 * channel's stream (MAXLEN ~). NULL with a message in err when Redis cannot be reached. */
store_t *store_redis_open(const char *addr, uint32_t hist_max, loop_t *loop, char *err, size_t errcap);

/* Starts the pub/sub feed into hub and the presence updates (after hub_init). */
void store_redis_attach(store_t *s, hub_t *hub);

#endif
