/* mqtt_sys.c - the broker's $SYS/ figures. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "mqtt_internal.h"

/* ---- $SYS/ ---- */

/* Publishes the broker's figures to "$SYS/broker/..." (MQTT subscribers only: '$' topics are
 * not channels) and keeps them for subscriptions made later, as retained messages would be. */
void mqtt__sys(tw_entry_t *e)
{
    mqtt_server_t *srv = container_of(e, mqtt_server_t, sys);
    xp_ctx_t *x = srv->x;
    const metrics_t *mt = x->metrics;
    uint64_t delivered = 0;
    for (int i = 1; i < XP_MAX; i++) delivered += mt->delivered[i];
    uint32_t clients = 0;
    list_node_t *pos;
    for (pos = srv->conns.next; pos != &srv->conns; pos = pos->next)
        clients += container_of(pos, mqtt_conn_t, link)->connected;
    struct {
        const char *topic;
        uint64_t value;
    } figs[] = {
        {"$SYS/broker/uptime", (loop_wall_ms() - srv->started_ms) / 1000},
        {"$SYS/broker/clients/connected", clients},
        {"$SYS/broker/clients/disconnected", srv->nsess > clients ? srv->nsess - clients : 0},
        {"$SYS/broker/messages/published", x->hub->published},
        {"$SYS/broker/messages/delivered", delivered},
        {"$SYS/broker/messages/dropped", mt->queue_drops},
        {"$SYS/broker/subscriptions/count", topic_count(&x->hub->topics) + x->hub->subscriptions},
        {"$SYS/broker/retained messages/count", x->hub->nretained},
        {"$SYS/broker/channels/count", x->hub->nchannels},
        {"$SYS/broker/connections/total", mt->accepted},
    };
    for (uint32_t i = 0; i < srv->nsys; i++) msg_unref(srv->sysmsg[i]);
    srv->nsys = 0;
    uint64_t now = loop_wall_ms();
    msg_t *version = msg_new("$SYS/broker/version", 19, "message", 7, "herald 0.3", 10, 0, now);
    if (version) srv->sysmsg[srv->nsys++] = version;
    for (size_t i = 0; i < sizeof(figs) / sizeof(figs[0]); i++) {
        char v[24];
        int n = snprintf(v, sizeof(v), "%" PRIu64, figs[i].value);
        msg_t *m = msg_new(figs[i].topic, strlen(figs[i].topic), "message", 7, v, (size_t)n, 0, now);
        if (m) srv->sysmsg[srv->nsys++] = m;
    }
    for (uint32_t i = 0; i < srv->nsys; i++) {
        srv->sysmsg[i]->flags |= MSG_RETAIN;
        hub_topic_deliver(x->hub, srv->sysmsg[i]);
    }
    loop_timer(x->hub->loop, &srv->sys, x->cfg->mqtt_sys_interval_ms);
}

