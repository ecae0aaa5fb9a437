/* redis_kv.c - small records shared by every node through Redis (engine.h, kv_put and kv_each):
 * one hash per namespace, PREFIX:kv:NS, field = the record's key, value = its bytes. Writes go
 * on the command connection, fire and forget (a failure is counted and logged once per outage);
 * the namespace is read once at start-up with HSCAN on a blocking connection of its own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"
#include "redis_internal.h"

#define RD_KV_NS_MAX 32

typedef struct {
    rd_req_t q;
} rd_kv_req_t;

static bool kv_fail_logged;

static void rd__kv_put_done(rd_t *r, redisReply *rep, rd_req_t *q)
{
    (void)r;
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        if (!kv_fail_logged)
            log_warn("redis: a shared record (read cursor) was not written: %s (not logged again)",
                     rep ? rep->str : "no answer");
        kv_fail_logged = true;
    } else {
        kv_fail_logged = false;
    }
    free(q);
}

int rd_kv_put(engine_t *e, const char *ns, const void *key, size_t klen, const void *val, size_t vlen)
{
    rd_t *r = container_of(e, rd_t, eng);
    if (strlen(ns) > RD_KV_NS_MAX) return HR_EINVAL;
    rd_kv_req_t *q = malloc(sizeof(*q));
    if (!q) return HR_ENOMEM;
    char hk[sizeof(r->prefix) + RD_KV_NS_MAX + 8];
    rd__key(r, hk, sizeof(hk), "kv", ns, strlen(ns));
    const char *argv[] = {"HSET", hk, key, val};
    size_t len[] = {4, strlen(hk), klen, vlen};
    int rc = rd_conn_send(&r->cmd, &q->q, rd__kv_put_done, 4, argv, len);
    if (rc < 0) free(q);
    return rc < 0 ? rc : 0;
}

int rd_kv_each(engine_t *e, const char *ns, engine_kv_cb cb, void *arg)
{
    rd_t *r = container_of(e, rd_t, eng);
    char err[300];
    redisContext *c = rd_boot_master(r, r->timeout_ms, err, sizeof(err));
    if (!c) {
        log_error("redis: reading shared %s records: %s", ns, err);
        return HR_EUNAVAIL;
    }
    char hk[sizeof(r->prefix) + RD_KV_NS_MAX + 8], cur[32] = "0";
    rd__key(r, hk, sizeof(hk), "kv", ns, strlen(ns));
    int rc = 0;
    do {
        const char *argv[] = {"HSCAN", hk, cur, "COUNT", "1000"};
        size_t len[] = {5, strlen(hk), strlen(cur), 5, 4};
        redisReply *rep = redisCommandArgv(c, 5, argv, len);
        if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 || rep->element[0]->type != REDIS_REPLY_STRING ||
            rep->element[0]->len >= sizeof(cur) || rep->element[1]->type != REDIS_REPLY_ARRAY) {
            log_error("redis: reading shared %s records: %s", ns, rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "bad answer");
            if (rep) freeReplyObject(rep);
            rc = HR_EUNAVAIL;
            break;
        }
        memcpy(cur, rep->element[0]->str, rep->element[0]->len + 1);
        const redisReply *kv = rep->element[1];
        for (size_t i = 0; i + 1 < kv->elements && rc == 0; i += 2)
            if (kv->element[i]->type == REDIS_REPLY_STRING && kv->element[i + 1]->type == REDIS_REPLY_STRING)
                rc = cb(arg, kv->element[i]->str, kv->element[i]->len, kv->element[i + 1]->str, kv->element[i + 1]->len);
        freeReplyObject(rep);
    } while (rc == 0 && strcmp(cur, "0") != 0);
    redisFree(c);
    return rc;
}
