/* withdraw.h - DELETE /channels/{channel}/messages/{id}: withdraws a published message (see
 * hub_withdraw). API key required (auth_is_admin): 401 without a credential, 403 with one that is
 * not a key. 204 when withdrawn, 404 when the id is not in the channel's history (never there,
 * trimmed, expired or withdrawn already); with a shared engine (engine = redis) the request waits
 * for it (engine_t.withdraw), 503 when it cannot answer. */
#ifndef HERALD_WITHDRAW_H
#define HERALD_WITHDRAW_H

#include "routes.h"

/* True when rest (the path after "/channels/") names a message: "{channel}/messages/{id}". */
bool withdraw_path(span_t rest);

/* Answers the request for rest (withdraw_path(rest) is true). */
void withdraw_handle(app_t *app, http_conn_t *hc, http_req_t *req, span_t rest);

/* DELETE /channels/{channel} (rest: the channel, percent-encoded or not), admin only: deletes its
 * messages (hub_clear): 200 {"channel","deleted":true,"last_id","told"}, 404 when there is no
 * such channel; with a shared engine as above (engine_t.clear). */
void withdraw_channel(app_t *app, http_conn_t *hc, http_req_t *req, span_t rest);

#endif
