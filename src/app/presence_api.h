/* presence_api.h - GET /channels/{channel}/presence, and the set-up of presence (hub/presence.h)
 * from the configuration.
 *
 *   GET /channels/{channel}/presence
 *   -> {"channel":"c","users":{"42":{"connections":2}},"anonymous":1,"connections":3}
 *      (+ "nodes":N with a shared engine: the nodes whose subscribers were counted;
 *       + "truncated":true when more than max_presence_users users were subscribed: the first
 *       ones by id are listed, "connections" still counts every subscription)
 *
 * Who may ask: an API key (or open mode), or a client allowed to subscribe to the channel (403
 * otherwise, 401 without a credential). 404 {"error":"presence is not enabled for this channel"}
 * when `presence` is off for it. With a shared engine (engine = redis) the answer sums every
 * node's share and waits for Redis without blocking the loop (the request is parked); when Redis
 * cannot answer: 503. The channel may be percent-encoded; a channel whose own name ends in
 * "/presence" is reached for GET /channels/{ch} by encoding that slash (%2F). */
#ifndef HERALD_PRESENCE_API_H
#define HERALD_PRESENCE_API_H

#include "../hub/presence.h"
#include "config.h"
#include "routes.h"

/* Sets up p (presence_init) with the configuration's global keys and each namespace's presence
 * keys, for hub (users: reported to a shared engine). 0 or HR_E*, logged. */
int presence_setup(presence_t *p, hub_t *hub, users_t *users, const cfg_t *cfg);

/* True when rest (the path after /channels/) names a presence list: it ends in "/presence". */
bool presence_api_path(span_t rest);

/* Answers GET /channels/{channel}/presence (rest: the path after /channels/). */
void presence_api_handle(app_t *app, http_conn_t *hc, http_req_t *req, span_t rest);

#endif
