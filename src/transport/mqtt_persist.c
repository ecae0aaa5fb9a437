/* mqtt_persist.c - MQTT persistent sessions in the store: written when they change, read back
 * at start-up; see the layout below. */
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"
#include "mqtt_internal.h"

/* ---- persistence ----
 *
 * A persistent session (expiry > 0) is one record in the store's MQTT_KV namespace, keyed by
 * client id and rewritten whenever it changed in a loop iteration (the dirty list), just before
 * the store commits: so after kill -9 the record matches the messages the store committed with
 * it. Messages are referred to by channel and id, and found again in the channel histories at
 * start-up (one that history no longer holds is dropped and counted). Little-endian layout:
 *   u8 2 | u16 owner_len, owner | u32 expiry_s | u64 away_wall (0: connected) | u8 has_will
 *   [will: u32 delay, u32 expiry, u8 qos, u8 retain, u32 topic_len, payload_len, props_len, bytes]
 *   u32 nsubs × (u8 opts, u8 filtered, u32 sub_id, u16 len, filter)    u32 nin2 × u16
 * (version 1, written before access control, has no owner and no filtered byte: read as
 * anonymous, unfiltered). The owner is the user id the client id belongs to ("" anonymous).
 *   u32 nout × (u16 pid, u8 qos, u8 state, u8 retain, u32 sub_id, u64 id, u16 len, channel)
 *   u32 nqueue × (u8 qos, u8 retain, u32 sub_id, u64 id, u16 len, channel) */

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} mqtt_w_t;

static void mw_put(mqtt_w_t *w, const void *d, size_t n)
{
    if (w->oom) return;
    if (w->n + n > w->cap) {
        size_t cap = (w->n + n) * 2 + 64;
        char *np = realloc(w->p, cap);
        if (!np) {
            w->oom = true;
            return;
        }
        w->p = np;
        w->cap = cap;
    }
    memcpy(w->p + w->n, d, n);
    w->n += n;
}

static void mw_u(mqtt_w_t *w, uint64_t v, int bytes)
{
    unsigned char b[8];
    for (int i = 0; i < bytes; i++) b[i] = (unsigned char)(v >> (8 * i));
    mw_put(w, b, (size_t)bytes);
}

static void mw_msg(mqtt_w_t *w, const mq_item_t *it, bool flight)
{
    if (flight) {
        mw_u(w, it->pid, 2);
        mw_u(w, it->qos, 1);
        mw_u(w, it->state, 1);
    } else {
        mw_u(w, it->qos, 1);
    }
    mw_u(w, it->retain, 1);
    mw_u(w, it->sub_id, 4);
    mw_u(w, it->m->id, 8);
    mw_u(w, it->m->channel_len, 2);
    mw_put(w, it->m->channel, it->m->channel_len);
}

static void mqtt__pack(mqtt_sess_t *s, mqtt_w_t *w)
{
    mw_u(w, 2, 1);
    size_t on = s->owner ? strlen(s->owner) : 0;
    mw_u(w, on, 2);
    mw_put(w, s->owner ? s->owner : "", on);
    mw_u(w, s->expiry_s, 4);
    mw_u(w, s->conn ? 0 : s->away_wall, 8);
    mqtt_will_t *wl = s->will;
    mw_u(w, wl != NULL, 1);
    if (wl) {
        mw_u(w, wl->delay_s, 4);
        mw_u(w, wl->expiry_s, 4);
        mw_u(w, wl->qos, 1);
        mw_u(w, wl->retain, 1);
        mw_u(w, wl->topic_len, 4);
        mw_u(w, wl->payload_len, 4);
        mw_u(w, wl->props_len, 4);
        mw_put(w, wl->mem, (size_t)wl->topic_len + wl->payload_len + wl->props_len);
    }
    mw_u(w, s->nsubs, 4);
    for (uint32_t i = 0; i < s->nsubs; i++) {
        mw_u(w, s->subs[i]->opts, 1);
        mw_u(w, s->subs[i]->filtered, 1);
        mw_u(w, s->subs[i]->sub_id, 4);
        mw_u(w, s->subs[i]->flen, 2);
        mw_put(w, s->subs[i]->filter, s->subs[i]->flen);
    }
    mw_u(w, s->nin2, 4);
    for (uint32_t i = 0; i < s->nin2; i++) mw_u(w, s->in2[i], 2);
    mq_item_t **v = s->out.n ? malloc(s->out.n * sizeof(*v)) : NULL;
    uint32_t n = v ? mq_flight_ordered(&s->out, v) : 0;
    if (s->out.n && !v) w->oom = true;
    mw_u(w, n, 4);
    for (uint32_t i = 0; i < n; i++) mw_msg(w, v[i], true);
    free(v);
    mw_u(w, s->queue.n, 4);
    for (uint32_t i = 0; i < s->queue.n; i++) mw_msg(w, &s->queue.v[(s->queue.head + i) % s->queue.cap], false);
}

void mqtt_server_persist(mqtt_server_t *srv)
{
    store_t *st = srv->x->hub->store;
    while (!list_empty(&srv->dirty)) {
        mqtt_sess_t *s = container_of(srv->dirty.next, mqtt_sess_t, dirty);
        list_unlink(&s->dirty);
        if (!st->ops->kv_put) continue;
        size_t idn = strlen(s->client_id);
        if (!s->expiry_s) { /* no longer persistent */
            if (s->stored) st->ops->kv_del(st, MQTT_KV, s->client_id, idn);
            s->stored = false;
            continue;
        }
        mqtt_w_t w = {0};
        mqtt__pack(s, &w);
        if (!w.oom && st->ops->kv_put(st, MQTT_KV, s->client_id, idn, w.p, w.n) == 0) {
            s->stored = true;
            list_push_back(&srv->saving, &s->dirty); /* until the commit says it is on disk */
        } else {
            log_warn("mqtt: session %s not saved", s->client_id);
        }
        free(w.p);
    }
}

bool mqtt_server_dirty(const mqtt_server_t *srv) { return !list_empty(&srv->dirty); }

void mqtt_server_committed(mqtt_server_t *srv, bool ok)
{
    while (!list_empty(&srv->saving)) {
        list_node_t *n = srv->saving.next;
        list_unlink(n);
        if (!ok) list_push_back(&srv->dirty, n); /* written again with the next commit */
    }
}

typedef struct {
    const unsigned char *p;
    size_t n, i;
    bool bad;
} mqtt_r_t;

static uint64_t mr_u(mqtt_r_t *r, int bytes)
{
    if (r->bad || r->n - r->i < (size_t)bytes) {
        r->bad = true;
        return 0;
    }
    uint64_t v = 0;
    for (int k = bytes - 1; k >= 0; k--) v = v << 8 | r->p[r->i + (size_t)k];
    r->i += (size_t)bytes;
    return v;
}

static const char *mr_bytes(mqtt_r_t *r, size_t n)
{
    if (r->bad || r->n - r->i < n) {
        r->bad = true;
        return "";
    }
    r->i += n;
    return (const char *)r->p + r->i - n;
}

/* Reads one saved message reference and finds the message; false when malformed. */
static bool mr_msg(mqtt_r_t *r, mqtt_sess_t *s, mq_item_t *it, bool flight)
{
    *it = (mq_item_t){0};
    if (flight) {
        it->pid = (uint16_t)mr_u(r, 2);
        it->qos = (uint8_t)mr_u(r, 1);
        it->state = (uint8_t)mr_u(r, 1);
    } else {
        it->qos = (uint8_t)mr_u(r, 1);
    }
    it->retain = mr_u(r, 1) != 0;
    it->sub_id = (uint32_t)mr_u(r, 4);
    uint64_t id = mr_u(r, 8);
    size_t cn = (size_t)mr_u(r, 2);
    const char *ch = mr_bytes(r, cn);
    if (r->bad || it->qos > 2 || !hub_channel_valid(ch, cn)) return r->bad = true, false;
    it->m = hub_message(s->x->hub, ch, cn, id);
    if (!it->m) s->x->metrics->queue_drops++; /* history no longer holds it */
    return true;
}

int mqtt__restore_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    mqtt_server_t *srv = arg;
    if (klen == 0 || klen > MQTT_MAX_CLIENT_ID || memchr(key, 0, klen)) return 0;
    mqtt_sess_t *s = mqtt__sess_new(srv, key, klen);
    if (!s) return HR_ENOMEM;
    s->stored = true;
    mqtt_r_t r = {val, vlen, 0, false};
    uint64_t ver = mr_u(&r, 1);
    bool ok = ver == 1 || ver == 2;
    size_t on = ver == 2 ? (size_t)mr_u(&r, 2) : 0; /* version 1: sessions from before access control */
    const char *owner = mr_bytes(&r, on);
    if (!r.bad && on <= ACL_MAX_SUB + 8 && (s->owner = malloc(on + 1))) {
        memcpy(s->owner, owner, on);
        s->owner[on] = 0;
    } else {
        ok = false;
    }
    s->expiry_s = (uint32_t)mr_u(&r, 4);
    uint64_t away = mr_u(&r, 8);
    if (mr_u(&r, 1)) {
        uint32_t delay = (uint32_t)mr_u(&r, 4), exp = (uint32_t)mr_u(&r, 4);
        uint8_t qos = (uint8_t)mr_u(&r, 1), ret = (uint8_t)mr_u(&r, 1);
        uint32_t tl = (uint32_t)mr_u(&r, 4), pl = (uint32_t)mr_u(&r, 4), rl = (uint32_t)mr_u(&r, 4);
        const char *mem = mr_bytes(&r, (size_t)tl + pl + rl);
        if (!r.bad && (s->will = malloc(sizeof(mqtt_will_t) + tl + pl + rl))) {
            *s->will = (mqtt_will_t){delay, exp, tl, pl, rl, qos, ret != 0};
            memcpy(s->will->mem, mem, (size_t)tl + pl + rl);
        }
    }
    uint32_t n = (uint32_t)mr_u(&r, 4);
    for (uint32_t i = 0; i < n && !r.bad; i++) {
        uint8_t o = (uint8_t)mr_u(&r, 1);
        bool filtered = ver == 2 ? mr_u(&r, 1) != 0 : false;
        uint32_t sid = (uint32_t)mr_u(&r, 4);
        size_t fl = (size_t)mr_u(&r, 2);
        span_t f = {mr_bytes(&r, fl), fl};
        bool is_new;
        uint8_t code;
        mqtt_sub_t *sub = r.bad ? NULL : mqtt__sub_add(s, true, f, o, sid, &is_new, &code); /* the trie refuses a bad filter */
        if (sub) sub->filtered = filtered; /* until the client is back (s->id), such a subscription gets nothing */
    }
    n = (uint32_t)mr_u(&r, 4);
    if (n && !r.bad && n <= MQTT_RECEIVE_MAX && (s->in2 = malloc(MQTT_RECEIVE_MAX * sizeof(uint16_t))))
        for (uint32_t i = 0; i < n; i++) s->in2[s->nin2++] = (uint16_t)mr_u(&r, 2);
    n = (uint32_t)mr_u(&r, 4);
    for (uint32_t i = 0; i < n && !r.bad; i++) {
        mq_item_t it;
        if (mr_msg(&r, s, &it, true) && it.m && mq_flight_put(&s->out, &it) == 0) msg_ref(it.m);
    }
    n = (uint32_t)mr_u(&r, 4);
    for (uint32_t i = 0; i < n && !r.bad; i++) {
        mq_item_t it;
        if (mr_msg(&r, s, &it, false) && it.m) mqtt__keep(s, &it);
    }
    if (!ok || r.bad || !s->expiry_s) {
        log_warn("mqtt: saved session %.*s is unreadable; dropped", (int)klen, (const char *)key);
        free(s->will);
        s->will = NULL;
        mqtt__sess_free(s, true);
        return 0;
    }
    /* the client is away since it left, or since the restart when it was connected then */
    uint64_t now = loop_wall_ms(), since = away ? away : now;
    s->away_wall = since;
    uint64_t end = since + (uint64_t)s->expiry_s * 1000;
    srv->restored++;
    mqtt__away(s, false, s->expiry_s == UINT32_MAX ? 1 : end > now ? end - now : 0);
    return 0;
}

