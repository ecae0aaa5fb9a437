/* publish.h - the HTTP publish routes of `herald serve`:
 *   POST /pub/{channel}   one channel, the body is the payload (?event=, X-Event)
 *   POST /publish         one message to many targets (JSON: channels, users), with a per-target
 *                         answer; also at POST /pub (no channel), the name ARCHITECTURE.md uses
 * both with idempotent retries (Idempotency-Key header, or idempotency_key in the JSON).
 *
 * Each target is its own hub_publish_async() (its own id in its own channel). The request waits
 * (http_park) in one small per-request state that counts the targets down as the store commits
 * them; the answer goes when the last one completed. A request whose connection closes first is
 * cancelled (hub_cancel), unless it carries an idempotency key: then it stays until its
 * publishes complete, so that the retry the client is about to make finds the answer. With a
 * shared engine that keeps idempotency keys (engine = redis) a keyed request first claims its
 * key there, parked until the claim is answered (see publish.c). */
#ifndef HERALD_PUBLISH_H
#define HERALD_PUBLISH_H

#include "../core/list.h"
#include "idem.h"
#include "routes.h"
#include "sched.h"

struct publish {
    idem_t idem;
    list_t live;                /* requests waiting for their publishes */
    uint32_t max_targets;       /* max_publish_targets */
    uint64_t targets_refused;   /* requests refused at max_publish_targets */
    uint64_t multi_requests;    /* POST /publish requests answered */
    uint64_t multi_targets;     /* targets those named */
    sched_t sched;              /* scheduled publishes (delay, at) */
};

/* Sets up the publish routes' state: the idempotency records (loaded from the store when it
 * keeps them, see idem.h) and the limits from cfg. 0 or a negative HR_E*. */
int publish_init(publish_t *p, loop_t *loop, store_t *store, const cfg_t *cfg);

/* Frees every request still waiting (their connections are gone; the hub forgets their
 * callbacks when it closes) and the idempotency records. Call before hub_close. */
void publish_close(publish_t *p);

/* POST /pub/{channel}: rest is what follows "/pub/". */
void publish_channel(app_t *app, http_conn_t *hc, http_req_t *req, span_t rest, span_t body);

/* POST /publish (and POST /pub). */
void publish_multi(app_t *app, http_conn_t *hc, http_req_t *req, span_t body);

/* xp_ctx_t.schedule (arg: the publish_t): the /ws publish op's delay or at. */
int publish_schedule_cb(void *arg, const char *ch, size_t cn, const char *ev, size_t en, const void *d, size_t dn,
                        uint32_t ttl, int64_t delay, const char *at, size_t at_n, int64_t at_num, char *out,
                        size_t cap);

/* DELETE /schedules/{id} (API key): cancels a scheduled publish. rest: what follows "/schedules/". */
void publish_schedules(app_t *app, http_conn_t *hc, http_req_t *req, span_t rest);

/* The publish routes' metrics (Prometheus text); returns bytes written. */
size_t publish_metrics(const publish_t *p, char *out, size_t cap);

#endif
