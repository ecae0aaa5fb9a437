/* userapi.h - the admin API on users (issue 13): a user's status on this node, and disconnecting
 * or unsubscribing a user on every node.
 *   GET  /users/{id}               {"user","online","connections":{kind:n},"last_seen","node":"local"}
 *   POST /users/{id}/disconnect    {"reason":"...","reconnect":false} -> {"disconnected":N,"cluster":B}
 *   POST /users/{id}/unsubscribe   {"channel":"..."}                  -> {"unsubscribed":N,"cluster":B}
 * All need an API key (auth_is_admin): 401 without a credential, 403 with one that is not a key.
 * The two actions run on this node at once and, with a shared engine (engine = redis), go to
 * every other node through the engine's control op, where userapi_control runs them. */
#ifndef HERALD_USERAPI_H
#define HERALD_USERAPI_H

#include "routes.h"

/* Answers a request under /users/ (rest: the path after it). */
void userapi_handle(app_t *app, http_conn_t *hc, http_req_t *req, span_t rest, span_t body);

/* engine_control_cb (arg: the app_t): runs a command another node sent. */
void userapi_control(void *arg, const char *json, size_t n);

#endif
