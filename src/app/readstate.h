/* readstate.h - read cursors and unread counts kept by the server, per user and channel.
 *
 * A user's read cursor on a channel is the id up to which they have read it ("mark read up to
 * N"). A user tracks their personal channel (user_channel, always) and every channel they have
 * marked at least once. The unread count of a tracked channel is the number of messages its
 * history still holds after the cursor (trimmed or expired messages no longer count); the total
 * is the sum. Cursors are kept in the store's "read" namespace (LMDB: durable, written with the
 * iteration's commit and answered after it; memory store: in memory only) and in memory, in a
 * seeded map keyed by user and channel.
 *
 * HTTP (src/app/routes.c dispatches):
 *   GET  /unread                     {"user":"42","total":3,"channels":{"user/42":2,"news":1}}
 *   POST /read/{channel}             body {"id":"N"} (or ?id=N): the cursor becomes N (clamped to
 *                                    the channel's last id); answers the channel's unread count
 * for the token's user, or for ?user=ID with an API key (a backend marking on a user's behalf). */
#ifndef HERALD_READSTATE_H
#define HERALD_READSTATE_H

#include <stdint.h>

#include "../core/span.h"
#include "../http/server.h"
#include "../transport/transport.h"

typedef struct readstate readstate_t;

/* Makes the read state and loads the stored cursors (x: the hub, configuration and access
 * control it works with). NULL with a message in err on failure. */
readstate_t *readstate_new(xp_ctx_t *x, char *err, size_t errcap);

void readstate_free(readstate_t *rs);

/* GET /unread */
void readstate_get_unread(readstate_t *rs, http_conn_t *hc, http_req_t *req);

/* POST /read/{channel}: rest is the percent-encoded channel name. */
void readstate_post_read(readstate_t *rs, http_conn_t *hc, http_req_t *req, span_t rest, span_t body);

/* Another node moved user[0..un)'s cursor on ch[0..cn) to id (a control command): applied here
 * and the user's devices here told. 0, HR_EINVAL or HR_EFULL (limits). */
int readstate_remote_read(readstate_t *rs, const char *user, size_t un, const char *ch, size_t cn, uint64_t id);

/* Sends the unread events that are due (unread.c): once per loop iteration, after the commit. */
void readstate_flush(readstate_t *rs);

/* The Prometheus lines of the read state; returns bytes written. */
size_t readstate_metrics(const readstate_t *rs, char *out, size_t cap);

#endif
