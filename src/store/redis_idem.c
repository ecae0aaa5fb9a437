/* redis_idem.c - idempotency keys shared by every node through Redis (engine.h, idem_claim,
 * idem_settle, idem_release), used by the publish routes (src/app/publish.c).
 *
 * One string per caller and key, PREFIX:idem:SCOPE KEY, on the command connection:
 * - a claim is one script: SET key "P" NX PX lease answers 1 (the key is this node's: it
 *   publishes), else the value there: "P" (a request holds it: busy) or the answer stored
 *   (idem_rec_encode's format, starting with 'H'). The lease is the window, but at most
 *   RD_IDEM_LEASE_MS plus ten command deadlines: a publish either completes or fails within one
 *   deadline, so a node that died between claim and answer leaves its key busy for a minute or
 *   so, not for the whole window;
 * - settling is SET key ANSWER XX PX (the rest of the window): only a key still claimed or
 *   answered takes it (a lease that ran out is not made again);
 * - releasing (nothing was published) is DEL key: the retry claims it again.
 * Settle and release are fire and forget: a failure is logged once per outage (a settle that is
 * lost leaves the key busy until its lease ends, a release that is lost the same). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"
#include "redis_internal.h"

#define RD_IDEM_LEASE_MS 60000

static const char RD_IDEM_CLAIM[] = "if redis.call('SET', KEYS[1], 'P', 'NX', 'PX', ARGV[1]) then return 1 end\n"
                                    "return redis.call('GET', KEYS[1])\n";

typedef struct {
    rd_req_t q;
    list_node_t wait; /* in r->claims */
    engine_idem_cb cb;
    void *arg;
} rd_claim_t;

static bool idem_fail_logged;

/* PREFIX:idem:KEY (malloc'd, its length in *n), or NULL. */
static char *rd__idem_key(const rd_t *r, const void *key, size_t klen, size_t *n)
{
    size_t pn = strlen(r->prefix);
    char *k = malloc(pn + 6 + klen + 1);
    if (!k) return NULL;
    memcpy(k, r->prefix, pn);
    memcpy(k + pn, ":idem:", 6);
    memcpy(k + pn + 6, key, klen);
    k[pn + 6 + klen] = 0;
    *n = pn + 6 + klen;
    return k;
}

static void rd__claimed(rd_t *r, redisReply *rep, rd_req_t *q)
{
    rd_claim_t *c = (rd_claim_t *)q;
    list_unlink(&c->wait);
    if (!r->closing && c->cb) {
        if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1)
            c->cb(c->arg, ENGINE_IDEM_NEW, NULL, 0);
        else if (rep && rep->type == REDIS_REPLY_STRING && rep->len == 1 && rep->str[0] == 'P')
            c->cb(c->arg, ENGINE_IDEM_BUSY, NULL, 0);
        else if (rep && rep->type == REDIS_REPLY_STRING)
            c->cb(c->arg, ENGINE_IDEM_DONE, rep->str, rep->len);
        else {
            if (rep && rep->type == REDIS_REPLY_ERROR) log_warn("redis: an idempotency claim failed: %s", rep->str);
            c->cb(c->arg, HR_EUNAVAIL, NULL, 0);
        }
    }
    free(c);
}

int rd_idem_claim(engine_t *e, const void *key, size_t klen, uint64_t window_ms, engine_idem_cb cb, void *arg)
{
    rd_t *r = container_of(e, rd_t, eng);
    uint64_t lease = RD_IDEM_LEASE_MS + 10 * (uint64_t)r->timeout_ms;
    if (window_ms && window_ms < lease) lease = window_ms;
    size_t kn;
    char *k = rd__idem_key(r, key, klen, &kn);
    rd_claim_t *c = malloc(sizeof(*c));
    if (!k || !c) {
        free(k);
        free(c);
        return HR_ENOMEM;
    }
    *c = (rd_claim_t){.cb = cb, .arg = arg};
    char px[24];
    snprintf(px, sizeof(px), "%" PRIu64, lease);
    const char *argv[] = {"EVAL", RD_IDEM_CLAIM, "1", k, px};
    size_t len[] = {4, sizeof(RD_IDEM_CLAIM) - 1, 1, kn, strlen(px)};
    int rc = rd_conn_send(&r->cmd, &c->q, rd__claimed, 5, argv, len);
    free(k);
    if (rc < 0) {
        free(c);
        return rc;
    }
    list_push_back(&r->claims, &c->wait);
    return 0;
}

void rd_idem_cancel(rd_t *r, void *arg)
{
    for (list_node_t *p = r->claims.next; p != &r->claims; p = p->next) {
        rd_claim_t *c = container_of(p, rd_claim_t, wait);
        if (c->arg == arg) c->cb = NULL;
    }
}

static void rd__idem_written(rd_t *r, redisReply *rep, rd_req_t *q)
{
    if (!r->closing) {
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            if (!idem_fail_logged)
                log_warn("redis: an idempotency key was not settled or released: %s (its key stays busy until its "
                         "lease ends; not logged again)", rep ? rep->str : "no answer");
            idem_fail_logged = true;
        } else {
            idem_fail_logged = false;
        }
    }
    free(q);
}

/* Sends argv[0..argc) (argv[1] the key, made here) fire and forget. */
static int rd__idem_send(rd_t *r, const void *key, size_t klen, int argc, const char **argv, size_t *len)
{
    size_t kn;
    char *k = rd__idem_key(r, key, klen, &kn);
    rd_req_t *q = malloc(sizeof(*q));
    if (!k || !q) {
        free(k);
        free(q);
        return HR_ENOMEM;
    }
    argv[1] = k;
    len[1] = kn;
    int rc = rd_conn_send(&r->cmd, q, rd__idem_written, argc, argv, len);
    free(k);
    if (rc < 0) {
        free(q);
        if (!idem_fail_logged)
            log_warn("redis: an idempotency key was not settled or released: %s (its key stays busy until its lease "
                     "ends; not logged again)", hr_strerror(rc));
        idem_fail_logged = true;
    }
    return rc < 0 ? rc : 0;
}

int rd_idem_settle(engine_t *e, const void *key, size_t klen, const void *rec, size_t n, uint64_t ttl_ms)
{
    rd_t *r = container_of(e, rd_t, eng);
    char px[24];
    snprintf(px, sizeof(px), "%" PRIu64, ttl_ms ? ttl_ms : 1);
    const char *argv[] = {"SET", NULL, rec, "XX", "PX", px};
    size_t len[] = {3, 0, n, 2, 2, strlen(px)};
    return rd__idem_send(r, key, klen, 6, argv, len);
}

int rd_idem_release(engine_t *e, const void *key, size_t klen)
{
    rd_t *r = container_of(e, rd_t, eng);
    const char *argv[] = {"DEL", NULL};
    size_t len[] = {3, 0};
    return rd__idem_send(r, key, klen, 2, argv, len);
}
