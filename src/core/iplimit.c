/* iplimit.c - per client address limits; see iplimit.h. */
#include "iplimit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "err.h"
#include "list.h"
#include "log.h"
#include "span.h"

#define IPL_MAX_ENTRIES 65536
#define IPL_SWEEP_EVERY 4096

static ipl_entry_t *ipl__entry(hmap_node_t *n) { return n ? container_of(n, ipl_entry_t, node) : NULL; }

static bool ipl__eq(const hmap_node_t *n, const void *key, size_t len)
{
    return len == 16 && memcmp(container_of(n, ipl_entry_t, node)->addr, key, 16) == 0;
}

int iplimit_init(iplimit_t *t, uint32_t max_conns, uint32_t rate, const char *exempt, char *err, size_t cap)
{
    memset(t, 0, sizeof(*t));
    t->max_conns = max_conns;
    t->rate = rate;
    t->max_entries = IPL_MAX_ENTRIES;
    if (ipset_parse(&t->exempt, exempt, err, cap) < 0) return -1;
    if (hmap_init(&t->map, 1024, ipl__eq) < 0) {
        snprintf(err, cap, "out of memory");
        iplimit_free(t);
        return -1;
    }
    return 0;
}

void iplimit_free(iplimit_t *t)
{
    hmap_iter_t it;
    hmap_iter_init(&it, &t->map);
    for (ipl_entry_t *e; (e = ipl__entry(hmap_iter_next(&it)));) free(e);
    hmap_free(&t->map);
    ipset_free(&t->exempt);
    t->n = 0;
}

static void ipl__refill(const iplimit_t *t, ipl_entry_t *e, uint64_t now_ms)
{
    if (now_ms > e->at_ms) {
        e->tokens += (double)(now_ms - e->at_ms) * t->rate / 1000.0;
        if (e->tokens > t->rate) e->tokens = t->rate;
    }
    e->at_ms = now_ms;
}

/* Frees the entries of addresses with no connection whose bucket is full again. */
static void ipl__sweep(iplimit_t *t, uint64_t now_ms)
{
    t->admits = 0;
    hmap_iter_t it;
    hmap_iter_init(&it, &t->map);
    for (ipl_entry_t *e; (e = ipl__entry(hmap_iter_next(&it)));) {
        if (!e->conns) ipl__refill(t, e, now_ms);
        if (!e->conns && (!t->rate || e->tokens >= t->rate)) {
            hmap_remove(&t->map, &e->node);
            free(e);
            t->n--;
        }
    }
    hmap_shrink(&t->map);
}

static void ipl__refuse_log(ipl_entry_t *e, const char *why)
{
    if (e->logged) return;
    e->logged = true;
    char host[INET6_ADDRSTRLEN] = "?";
    static const uint8_t v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(e->addr, v4, 12) == 0) inet_ntop(AF_INET, e->addr + 12, host, sizeof(host));
    else inet_ntop(AF_INET6, e->addr, host, sizeof(host));
    log_warn("limits: %s: %s (further refusals of this address are not logged)", host, why);
}

int iplimit_admit(iplimit_t *t, int fd, uint64_t now_ms, ipl_entry_t **out)
{
    *out = NULL;
    uint8_t a[16];
    if ((!t->max_conns && !t->rate) || !t->map.b || !ip_peer16(fd, a)) return 0;
    return iplimit_admit_addr(t, a, now_ms, out);
}

int iplimit_admit_addr(iplimit_t *t, const uint8_t a[16], uint64_t now_ms, ipl_entry_t **out)
{
    *out = NULL;
    if ((!t->max_conns && !t->rate) || !t->map.b) return 0;
    if (ipset_has(&t->exempt, a)) return 0;
    if (++t->admits >= IPL_SWEEP_EVERY) ipl__sweep(t, now_ms);
    uint64_t h = hmap_hash(&t->map, a, 16);
    ipl_entry_t *e = ipl__entry(hmap_find(&t->map, h, a, 16));
    if (!e) {
        if (t->n >= t->max_entries) ipl__sweep(t, now_ms);
        if (t->n >= t->max_entries || !(e = calloc(1, sizeof(*e)))) return 0; /* untracked */
        memcpy(e->addr, a, 16);
        e->tokens = t->rate;
        e->at_ms = now_ms;
        hmap_insert(&t->map, &e->node, h);
        t->n++;
    }
    if (t->max_conns && e->conns >= t->max_conns) {
        t->refused_conns++;
        ipl__refuse_log(e, "max_connections_per_ip reached: new connections refused");
        return HR_EFULL;
    }
    if (t->rate) {
        ipl__refill(t, e, now_ms);
        if (e->tokens < 1.0) {
            t->refused_rate++;
            ipl__refuse_log(e, "max_new_connections_per_ip reached: new connections refused");
            return HR_EAGAIN;
        }
        e->tokens -= 1.0;
    }
    e->conns++;
    *out = e;
    return 0;
}

void iplimit_release(iplimit_t *t, ipl_entry_t *e)
{
    (void)t;
    if (e && e->conns) e->conns--;
}
