/* mqtt_sess.c - MQTT sessions: the table of sessions by client id (the seeded map of core/hmap.h,
 * with the total of their waiting queues, mqtt_max_queued_bytes_total), how long a session lives
 * without its client (expiry, takeover, the will and its delay), and its subscriptions (entries
 * in the hub's topic trie). See mqtt.c for the broker's files. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"
#include "../hub/presence.h"
#include "mqtt_internal.h"

/* ---- session table ---- */

/* Client ids are chosen by clients: sessions live in the seeded hash map of core/hmap.h. */
static mqtt_sess_t *mqtt__sess_of(hmap_node_t *n) { return n ? container_of(n, mqtt_sess_t, node) : NULL; }

static bool mqtt__sess_eq(const hmap_node_t *n, const void *key, size_t len)
{
    const char *id = container_of(n, mqtt_sess_t, node)->client_id;
    return strlen(id) == len && memcmp(id, key, len) == 0;
}

mqtt_sess_t *mqtt__sess_find(mqtt_server_t *srv, const char *id)
{
    return mqtt__sess_of(hmap_get(&srv->sessions, id, strlen(id)));
}

static void mqtt__sess_remove(mqtt_server_t *srv, mqtt_sess_t *s)
{
    hmap_remove(&srv->sessions, &s->node);
    srv->nsess--;
    if (!srv->closed) hmap_shrink(&srv->sessions); /* mqtt_server_close walks the map while freeing */
}

/* A persistent session changed: written to the store before this loop iteration's commit. */
void mqtt__dirty(mqtt_sess_t *s)
{
    if ((s->expiry_s || s->stored) && !list_linked(&s->dirty)) list_push_back(&s->srv->dirty, &s->dirty);
}

/* A message waiting for s was dropped to keep every session's queue within
 * mqtt_max_queued_bytes_total (the oldest of the largest queue goes first). */
static void mqtt__total_dropped(void *arg, mq_fifo_t *q)
{
    mqtt_server_t *srv = arg;
    mqtt_sess_t *s = container_of(q, mqtt_sess_t, queue);
    srv->x->metrics->queue_drops++;
    if (!srv->queued_drops++)
        log_warn("limits: MQTT queues over mqtt_max_queued_bytes_total (%llu bytes): the oldest messages of the "
                 "largest queues are dropped, first for session %s (counted in herald_limit_hits_total, not logged "
                 "again)", (unsigned long long)srv->queued.max, s->client_id);
    mqtt__dirty(s);
}

/* Sets up srv's session table and the total of their queues. 0 or HR_ENOMEM. */
int mqtt__sessions_init(mqtt_server_t *srv)
{
    if (hmap_init(&srv->sessions, 64, mqtt__sess_eq) < 0) return HR_ENOMEM;
    srv->queued = (mq_total_t){.max = srv->x->cfg->mqtt_max_queued_bytes_total, .dropped = mqtt__total_dropped,
                               .arg = srv};
    return 0;
}

/* Frees every session (the store keeps the persistent ones) and the table. */
void mqtt__sessions_free(mqtt_server_t *srv)
{
    hmap_iter_t it;
    hmap_iter_init(&it, &srv->sessions);
    for (mqtt_sess_t *s; (s = mqtt__sess_of(hmap_iter_next(&it)));) mqtt__sess_free(s, false);
    hmap_free(&srv->sessions);
    mq_total_free(&srv->queued);
}

/* ---- sessions ---- */

static void mqtt__will_publish(mqtt_sess_t *s)
{
    mqtt_will_t *w = s->will;
    s->will = NULL;
    s->will_at = MQTT_NEVER;
    if (!w) return;
    span_t topic = {w->mem, w->topic_len};
    /* CONNECT refused a will whose topic is not a channel (or one its client may not publish to);
     * a will restored from a store written by an older version might still be one */
    int rc = hub_channel_valid(topic.p, topic.n)
                 ? mqtt__publish(s, NULL, topic, (span_t){w->mem + w->topic_len, w->payload_len}, w->qos, w->retain,
                                 w->expiry_s, (span_t){w->mem + w->topic_len + w->payload_len, w->props_len})
                 : HR_ECHANNEL;
    if (rc < 0) {
        char why[96];
        snprintf(why, sizeof(why), "session %s ended: its will could not be published (%s)", s->client_id,
                 rc == HR_ECHANNEL ? "not a channel name" : hr_strerror(rc));
        mqtt__refused(s->srv, NULL, MQTT_REF_WILL_FAILED, why, topic.p, topic.n);
    }
    free(w);
}

/* Frees a session. forget: it ends (its pending will goes out, unless discarded before, and the
 * store forgets it); otherwise only the memory goes (shutdown: the store keeps the record). */
void mqtt__sess_free(mqtt_sess_t *s, bool forget)
{
    store_t *st = s->x->hub->store;
    if (forget) {
        mqtt__will_publish(s);
        if (s->stored && st->ops->kv_del) st->ops->kv_del(st, MQTT_KV, s->client_id, strlen(s->client_id));
    }
    free(s->will);
    list_unlink(&s->dirty);
    tw_stop(&s->x->hub->loop->wheel, &s->timer);
    mqtt__sess_remove(s->srv, s);
    for (uint32_t i = 0; i < s->nsubs; i++) {
        hub_topic_unsubscribe(s->x->hub, &s->subs[i]->t);
        presence_part(s->x->hub->pres, s->subs[i]->pm);
        free(s->subs[i]);
    }
    free(s->subs);
    mq_flight_free(&s->out);
    mq_fifo_free(&s->queue);
    free(s->in2);
    free(s->client_id);
    free(s->owner);
    auth_unref(s->id);
    free(s);
}

static void mqtt__sess_arm(mqtt_sess_t *s)
{
    uint64_t next = s->will ? s->will_at : MQTT_NEVER;
    if (s->expires_at < next) next = s->expires_at;
    loop_t *loop = s->x->hub->loop;
    if (next == MQTT_NEVER) tw_stop(&loop->wheel, &s->timer);
    else loop_timer(loop, &s->timer, next > loop_now(loop) ? next - loop_now(loop) : 0);
}

/* While the client is away: the will delay has passed, or the session expired. */
static void mqtt__sess_timer(tw_entry_t *e)
{
    mqtt_sess_t *s = container_of(e, mqtt_sess_t, timer);
    uint64_t now = loop_now(s->x->hub->loop);
    if (s->will && now >= s->will_at) mqtt__will_publish(s);
    if (now >= s->expires_at) mqtt__sess_free(s, true);
    else mqtt__sess_arm(s);
}

mqtt_sess_t *mqtt__sess_new(mqtt_server_t *srv, const char *id, size_t n)
{
    mqtt_sess_t *s = calloc(1, sizeof(*s));
    if (!s || !(s->client_id = malloc(n + 1))) {
        free(s);
        return NULL;
    }
    memcpy(s->client_id, id, n);
    s->client_id[n] = 0;
    s->srv = srv;
    s->x = srv->x;
    s->will_at = s->expires_at = MQTT_NEVER;
    s->queue.total = &srv->queued;
    tw_entry_init(&s->timer, mqtt__sess_timer);
    list_init(&s->dirty);
    hmap_insert(&srv->sessions, &s->node, hmap_hash(&srv->sessions, id, n));
    srv->nsess++;
    return s;
}

/* Presence: an exact filter (a channel name: no wildcard, no $share or $SYS) counts on its channel
 * while the session's client is connected, as that connection's user's (anonymous without one). */
static void mqtt__pres_join(mqtt_sess_t *s, mqtt_sub_t *sub)
{
    presence_t *p = s->x->hub->pres;
    if (!p || sub->pm || !s->conn || !hub_channel_valid(sub->filter, sub->flen) ||
        memchr(sub->filter, '+', sub->flen) || memchr(sub->filter, '#', sub->flen))
        return;
    const auth_id_t *id = s->conn->id;
    bool user = id && id->kind == AUTH_USER;
    sub->pm = presence_join(p, sub->filter, sub->flen, user ? id->sub_id : NULL, user ? id->sub_len : 0);
}

static void mqtt__pres_part(mqtt_sess_t *s, mqtt_sub_t *sub)
{
    presence_part(s->x->hub->pres, sub->pm);
    sub->pm = NULL;
}

void mqtt__pres_attach(mqtt_sess_t *s)
{
    for (uint32_t i = 0; i < s->nsubs; i++) mqtt__pres_join(s, s->subs[i]);
}

/* Separates k from its session, whose client is away from now. Returns the session, or NULL. */
mqtt_sess_t *mqtt__detach(mqtt_conn_t *k)
{
    mqtt_sess_t *s = k->s;
    if (!s) return NULL;
    for (uint32_t i = 0; i < s->nsubs; i++) mqtt__pres_part(s, s->subs[i]);
    k->s = NULL;
    s->conn = NULL;
    s->away_wall = loop_wall_ms();
    mqtt__dirty(s);
    return s;
}

/* Connection k leaves its session (closed, or taken over by a new connection). The will goes
 * out now, or is scheduled after its delay (MQTT 5.0 3.1.3.2.2: the shorter of the delay and the
 * session expiry). Unless a new connection is taking the session over, the session ends now
 * (expiry 0) or is kept until it expires. */
void mqtt__leave(mqtt_conn_t *k, bool takeover)
{
    mqtt_sess_t *s = mqtt__detach(k);
    if (s) mqtt__away(s, takeover, (uint64_t)s->expiry_s * 1000);
}

/* The client is away (left now, or, for a restored session, earlier): the will goes out now or
 * after its delay; unless a new connection takes the session over, the session ends (expiry 0,
 * or shutting down) or is kept expires_in_ms more. */
void mqtt__away(mqtt_sess_t *s, bool takeover, uint64_t expires_in_ms)
{
    uint64_t now = loop_now(s->x->hub->loop);
    if (s->will) {
        uint32_t d = s->will->delay_s < s->expiry_s ? s->will->delay_s : s->expiry_s;
        if (d == 0) mqtt__will_publish(s);
        else s->will_at = now + (uint64_t)d * 1000;
    }
    if (takeover) return;
    if (s->expiry_s == 0 || expires_in_ms == 0) {
        mqtt__sess_free(s, true);
        return;
    }
    s->expires_at = s->expiry_s == UINT32_MAX ? MQTT_NEVER : now + expires_in_ms;
    mqtt__sess_arm(s);
}

mqtt_will_t *mqtt__will_new(const mqtt_pkt_t *p, bool *oom)
{
    *oom = false;
    if (!p->connect.will) return NULL;
    const mqtt_props_t *wp = &p->connect.will_props;
    bytes_t *props = mqtt__pass_props(wp, oom);
    if (*oom) return NULL;
    size_t tn = p->connect.will_topic.n, pn = p->connect.will_payload.n, rn = props ? props->len : 0;
    mqtt_will_t *w = malloc(sizeof(*w) + tn + pn + rn);
    if (!w) {
        bytes_unref(props);
        *oom = true;
        return NULL;
    }
    w->delay_s = (wp->present & MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY)) ? wp->will_delay : 0;
    w->expiry_s = (wp->present & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY)) ? wp->message_expiry : 0;
    w->topic_len = (uint32_t)tn;
    w->payload_len = (uint32_t)pn;
    w->props_len = (uint32_t)rn;
    w->qos = p->connect.will_qos;
    w->retain = p->connect.will_retain;
    memcpy(w->mem, p->connect.will_topic.p, tn);
    memcpy(w->mem + tn, p->connect.will_payload.p, pn);
    if (rn) memcpy(w->mem + tn + pn, props->data, rn);
    bytes_unref(props);
    return w;
}

/* ---- subscriptions ---- */

static int mqtt__find_sub(mqtt_sess_t *s, span_t f)
{
    for (uint32_t i = 0; i < s->nsubs; i++)
        if (s->subs[i]->flen == f.n && memcmp(s->subs[i]->filter, f.p, f.n) == 0) return (int)i;
    return -1;
}

void mqtt__drop_sub(mqtt_sess_t *s, uint32_t i)
{
    hub_topic_unsubscribe(s->x->hub, &s->subs[i]->t);
    mqtt__pres_part(s, s->subs[i]);
    free(s->subs[i]);
    s->subs[i] = s->subs[--s->nsubs];
}

/* Makes (or replaces) the subscription to f with options o. Returns it, or NULL with *code set. */
mqtt_sub_t *mqtt__sub_add(mqtt_sess_t *s, bool v5, span_t f, uint8_t o, uint32_t sub_id, bool *is_new,
                                 uint8_t *code)
{
    int old = mqtt__find_sub(s, f);
    *code = MQTT_RC_UNSPECIFIED;
    if (old < 0 && s->nsubs >= s->x->cfg->max_subscriptions) {
        if (s->conn) xp_sub_limit(s->x, s->conn->c, "MQTT"); /* not when restoring a saved session */
        if (v5) *code = MQTT_RC_QUOTA_EXCEEDED;
        return NULL;
    }
    if (old < 0 && s->nsubs == s->capsubs) {
        uint32_t cap = s->capsubs ? s->capsubs * 2 : 4;
        mqtt_sub_t **ns = realloc(s->subs, cap * sizeof(*ns));
        if (!ns) return NULL;
        s->subs = ns;
        s->capsubs = cap;
    }
    mqtt_sub_t *sub = calloc(1, sizeof(*sub) + f.n);
    if (!sub) return NULL;
    sub->s = s;
    sub->opts = o;
    sub->sub_id = sub_id;
    sub->flen = (uint16_t)f.n;
    memcpy(sub->filter, f.p, f.n);
    sub->t.deliver = mqtt__on_publish;
    sub->t.owner = s;
    if (hub_topic_subscribe(s->x->hub, &sub->t, f.p, f.n) < 0) {
        free(sub);
        if (v5) *code = MQTT_RC_TOPIC_FILTER_INVALID;
        return NULL;
    }
    *is_new = old < 0;
    if (old >= 0) mqtt__drop_sub(s, (uint32_t)old); /* a new subscription replaces the old one */
    s->subs[s->nsubs++] = sub;
    mqtt__pres_join(s, sub);
    *code = MQTT_SUB_QOS(o);
    return sub;
}

/* How id's permissions cover filter f (a shared subscription "$share/GROUP/F" is checked as F). */
acl_cover_t mqtt__cover(const auth_id_t *id, span_t f)
{
    if (f.n > 7 && memcmp(f.p, "$share/", 7) == 0) {
        const char *slash = memchr(f.p + 7, '/', f.n - 7);
        if (slash) f = (span_t){slash + 1, (size_t)(f.p + f.n - slash - 1)};
    }
    return auth_cover(id, f.p, f.n);
}

void mqtt__subscribe(mqtt_conn_t *k, const mqtt_pkt_t *p)
{
    mqtt_sess_t *s = k->s;
    uint8_t codes[256];
    mqtt_sub_t *fresh[256];
    bool is_new[256];
    uint32_t nc = 0;
    size_t off = 0;
    span_t f;
    uint8_t o;
    uint32_t sub_id = (p->props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)) ? p->props.sub_id : 0;
    while (mqtt_list_next(p, &off, &f, &o) && nc < sizeof(codes)) {
        acl_cover_t cover = mqtt__cover(k->id, f);
        if (cover == ACL_NONE) {
            xp_log_denial(k->x, k->c, k->id, "subscribe to", f.p, f.n);
            fresh[nc] = NULL;
            codes[nc++] = k->version == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED : 0x80;
            continue;
        }
        fresh[nc] = mqtt__sub_add(s, k->version == MQTT_V5, f, o, sub_id, &is_new[nc], &codes[nc]);
        if (fresh[nc]) fresh[nc]->filtered = cover == ACL_PARTIAL;
        nc++;
    }
    mqtt_pkt_t ack = {.type = MQTT_SUBACK, .version = k->version, .packet_id = p->packet_id};
    ack.list = (span_t){(const char *)codes, nc};
    ack.count = nc;
    mqtt__reply(k, &ack);
    /* retained messages after the SUBACK (never for shared subscriptions) */
    for (uint32_t i = 0; i < nc; i++) {
        mqtt_sub_t *sub = fresh[i];
        if (!sub || topic_entry_shared(&sub->t.e)) continue;
        uint8_t rh = MQTT_SUB_RETAIN_HANDLING(sub->opts);
        if (rh == 2 || (rh == 1 && !is_new[i])) continue;
        hub_each_retained(s->x->hub, mqtt__send_retained, sub);
        for (uint32_t j = 0; j < k->srv->nsys; j++) {
            msg_t *m = k->srv->sysmsg[j];
            if (mqtt__matches(sub->filter, sub->flen, m->channel, m->channel_len) &&
                (!sub->filtered || auth_can_subscribe(s->id, m->channel, m->channel_len)))
                mqtt__offer(s, m, 0, true, sub->sub_id);
        }
    }
}

void mqtt__unsubscribe(mqtt_conn_t *k, const mqtt_pkt_t *p)
{
    uint8_t codes[256];
    uint32_t nc = 0;
    size_t off = 0;
    span_t f;
    uint8_t o;
    while (mqtt_list_next(p, &off, &f, &o) && nc < sizeof(codes)) {
        int i = mqtt__find_sub(k->s, f);
        if (i >= 0) mqtt__drop_sub(k->s, (uint32_t)i);
        codes[nc++] = i >= 0 ? 0 : MQTT_RC_NO_SUBSCRIPTION_EXISTED;
    }
    mqtt_pkt_t ack = {.type = MQTT_UNSUBACK, .version = k->version, .packet_id = p->packet_id};
    if (k->version == MQTT_V5) {
        ack.list = (span_t){(const char *)codes, nc};
        ack.count = nc;
    }
    mqtt__reply(k, &ack);
}
