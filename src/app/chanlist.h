/* chanlist.h - GET /channels: the channels this node holds, by name, a page at a time (admin).
 *   GET /channels?prefix=P&limit=N&cursor=C
 *   -> {"channels":[{"channel":"a","subscribers":1,"last_id":"3"},...],"next_cursor":"a"|null,"node":"local"}
 * Names in byte order; a page holds the first `limit` (default 100, at most 1000) names after
 * `cursor` (exclusive) that start with `prefix`; next_cursor is the page's last name while more
 * follow, null at the end. Needs an API key (401/403 otherwise). */
#ifndef HERALD_CHANLIST_H
#define HERALD_CHANLIST_H

#include "routes.h"

#define CHANLIST_DEFAULT 100
#define CHANLIST_MAX 1000

void chanlist_handle(app_t *app, http_conn_t *hc, http_req_t *req);

#endif
