/* users.c - the live connections of each user; see users.h. */
#include "users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"
#include "../core/loop.h"

static bool users__eq(const hmap_node_t *node, const void *key, size_t n)
{
    const users_user_t *u = container_of(node, users_user_t, node);
    return u->len == n && memcmp(u->id, key, n) == 0;
}

int users_init(users_t *us, uint32_t max_offline)
{
    memset(us, 0, sizeof(*us));
    list_init(&us->offline);
    us->max_offline = max_offline;
    return hmap_init(&us->map, 64, users__eq);
}

static void users__free(users_t *us, users_user_t *u)
{
    hmap_remove(&us->map, &u->node);
    list_unlink(&u->olink);
    free(u);
}

void users_close(users_t *us)
{
    hmap_iter_t it;
    hmap_iter_init(&it, &us->map);
    hmap_node_t *n;
    while ((n = hmap_iter_next(&it))) {
        users_user_t *u = container_of(n, users_user_t, node);
        list_node_t *p, *t;
        list_each_safe(p, t, &u->conns) {
            users_conn_t *uc = container_of(p, users_conn_t, link);
            list_unlink(&uc->link);
            uc->u = NULL;
        }
        users__free(us, u);
    }
    hmap_free(&us->map);
}

users_user_t *users_find(const users_t *us, const char *id, size_t n)
{
    hmap_node_t *node = hmap_get(&us->map, id, n);
    return node ? container_of(node, users_user_t, node) : NULL;
}

/* Forgets the longest-offline users beyond max_offline. */
static void users__trim(users_t *us)
{
    while (us->noffline > us->max_offline) {
        users_user_t *u = container_of(us->offline.next, users_user_t, olink);
        us->noffline--;
        us->evicted++;
        if (!us->evict_logged) {
            us->evict_logged = true;
            log_info("users: more than users_offline_max (%u) offline users: the longest offline are forgotten "
                     "(last_seen null; herald_users_offline_evicted_total counts them)",
                     us->max_offline);
        }
        users__free(us, u);
    }
}

/* u lost its last connection (and no walk holds it): offline from now, remembered or not. */
static void users__settle(users_t *us, users_user_t *u)
{
    if (u->nconns || u->busy || u->last_seen_ms) return; /* online, held, or offline already */
    us->online--;
    u->last_seen_ms = loop_wall_ms();
    if (!u->last_seen_ms) u->last_seen_ms = 1;
    list_push_back(&us->offline, &u->olink);
    us->noffline++;
    users__trim(us);
}

int users_add(users_t *us, const char *id, size_t n, users_conn_t *uc)
{
    users_remove(us, uc);
    if (!n || n > USERS_MAX_ID) return HR_EINVAL;
    uint64_t h = hmap_hash(&us->map, id, n);
    hmap_node_t *node = hmap_find(&us->map, h, id, n);
    users_user_t *u = node ? container_of(node, users_user_t, node) : NULL;
    if (!u) {
        u = calloc(1, sizeof(*u) + n + 1);
        if (!u) return HR_ENOMEM;
        u->len = (uint16_t)n;
        memcpy(u->id, id, n);
        list_init(&u->conns);
        list_init(&u->olink);
        hmap_insert(&us->map, &u->node, h);
        us->online++;
    } else if (u->last_seen_ms) { /* back online */
        list_unlink(&u->olink);
        us->noffline--;
        us->online++;
    }
    u->last_seen_ms = 0;
    list_push_back(&u->conns, &uc->link);
    u->nconns++;
    uc->u = u;
    us->conns++;
    if (us->changed) us->changed(us->changed_arg, u->id, u->len);
    return 0;
}

/* Unlinks uc from its user without settling the user. */
static users_user_t *users__detach(users_t *us, users_conn_t *uc)
{
    users_user_t *u = uc->u;
    if (!u) return NULL;
    list_unlink(&uc->link);
    uc->u = NULL;
    u->nconns--;
    us->conns--;
    if (us->changed) us->changed(us->changed_arg, u->id, u->len);
    return u;
}

void users_remove(users_t *us, users_conn_t *uc)
{
    users_user_t *u = users__detach(us, uc);
    if (u) users__settle(us, u);
}

uint32_t users_disconnect(users_t *us, const char *id, size_t n, const char *reason, bool reconnect)
{
    users_user_t *u = users_find(us, id, n);
    if (!u || !u->nconns) return 0;
    uint32_t k = 0;
    u->busy++;
    while (!list_empty(&u->conns)) {
        users_conn_t *uc = container_of(u->conns.next, users_conn_t, link);
        users__detach(us, uc); /* not listed any more, whatever the transport does next */
        uc->ops->disconnect(uc, reason, reconnect);
        k++;
    }
    u->busy--;
    us->disconnects += k;
    users__settle(us, u);
    return k;
}

uint32_t users_unsubscribe(users_t *us, const char *id, size_t n, const char *ch, size_t cn)
{
    users_user_t *u = users_find(us, id, n);
    if (!u || !u->nconns) return 0;
    uint32_t k = 0;
    u->busy++;
    /* a connection may unregister itself (its stream ended): walk a snapshot of the list */
    users_conn_t *stack[64];
    users_conn_t **all = u->nconns <= 64 ? stack : malloc(u->nconns * sizeof(*all));
    if (!all) {
        u->busy--;
        return 0;
    }
    uint32_t m = 0;
    list_node_t *p;
    for (p = u->conns.next; p != &u->conns; p = p->next) all[m++] = container_of(p, users_conn_t, link);
    for (uint32_t i = 0; i < m; i++) {
        users_conn_t *uc = all[i];
        /* still this user's (an earlier one's call cannot end another connection, but be sure) */
        if (uc->u == u && uc->ops->unsubscribe) k += uc->ops->unsubscribe(uc, ch, cn);
    }
    if (all != stack) free(all);
    u->busy--;
    users__settle(us, u);
    return k;
}

uint32_t users_count_kinds(const users_user_t *u, const char **kinds, uint32_t *counts, uint32_t max)
{
    uint32_t nk = 0;
    for (const list_node_t *p = u->conns.next; p != &u->conns; p = p->next) {
        const users_conn_t *uc = container_of(p, users_conn_t, link);
        uint32_t i = 0;
        while (i < nk && strcmp(kinds[i], uc->kind) != 0) i++;
        if (i == nk) {
            if (nk == max) continue;
            kinds[nk] = uc->kind;
            counts[nk++] = 0;
        }
        counts[i]++;
    }
    return nk;
}

size_t users_metrics(const users_t *us, char *out, size_t cap)
{
    int n = snprintf(out, cap,
                     "# HELP herald_users_online Users with at least one live connection on this node.\n"
                     "# TYPE herald_users_online gauge\nherald_users_online %u\n"
                     "# HELP herald_users_connections Live connections of users on this node.\n"
                     "# TYPE herald_users_connections gauge\nherald_users_connections %llu\n"
                     "# HELP herald_users_offline Offline users remembered with their last_seen (limit "
                     "users_offline_max).\n"
                     "# TYPE herald_users_offline gauge\nherald_users_offline %u\n"
                     "# HELP herald_users_offline_evicted_total Offline users forgotten at users_offline_max.\n"
                     "# TYPE herald_users_offline_evicted_total counter\nherald_users_offline_evicted_total %llu\n"
                     "# HELP herald_users_disconnected_total Connections ended by the admin disconnect.\n"
                     "# TYPE herald_users_disconnected_total counter\nherald_users_disconnected_total %llu\n",
                     us->online, (unsigned long long)us->conns, us->noffline, (unsigned long long)us->evicted,
                     (unsigned long long)us->disconnects);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}
