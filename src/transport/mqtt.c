/* mqtt.c - the MQTT 3.1.1 / 5.0 broker over TCP and over WebSocket (see mqtt.h): connections,
 * CONNECT and DISCONNECT, the packet loop, the TCP listener and /mqtt, the server.
 *
 * Two structs. A connection (mqtt_conn_t) is one network connection: over TCP it embeds its own
 * conn_t and reads packets straight from the read buffer; over WebSocket it is a ws_t
 * application whose binary messages form the packet stream (a packet may span messages), and
 * every packet it sends is wrapped in one WebSocket binary frame. A session (mqtt_sess_t) is
 * what MQTT keeps per client id across connections: subscriptions, the messages in flight, the
 * messages waiting, the incoming QoS 2 packet ids, the will. A connection attaches to a session
 * at CONNECT; when it goes, the session stays for its expiry interval (v3.1.1: clean session 0
 * gets mqtt_session_expiry; v5: what the client asks, capped by it), collecting messages for
 * its subscriptions, and a reconnect with clean start 0 resumes it: in-flight messages are sent
 * again with DUP (PUBRELs again), then the waiting ones.
 *
 * The broker's other files: mqtt_sess.c (the session table, session lifetimes and wills,
 * subscriptions), mqtt_deliver.c (hub messages to subscribers: encoding, the window, the waiting
 * FIFO), mqtt_pub.c (client PUBLISHes into the hub: topic aliases, passed-through properties, the
 * acknowledgements in PUBLISH order), mqtt_persist.c (sessions in the store), mqtt_sys.c ($SYS),
 * mqtt_queue.c (in flight and waiting), mqtt_refuse.c (refusals and lingering closes counted),
 * mqtt_codec.c (packets); mqtt_internal.h is what they share.
 *
 * Errors: the codec refuses malformed packets with a reason code; mqtt__fail is the one place
 * that answers: CONNACK with the code while connecting (v3: the 3.1.1 return code when one
 * exists), DISCONNECT with it afterwards (v5), or a plain close (v3); logged once. */
#include "mqtt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/err.h"
#include "../core/log.h"
#include "../core/tls.h"
#include "mqtt_internal.h"

bool mqtt__live(const mqtt_conn_t *k) { return k && k->connected && !k->said_bye && !k->c->closing; }

/* ---- sending ---- */

/* Queues a packet (and, when tail is set, a shared tail after it). reply: ignore the queue limit. */
int mqtt__send(mqtt_conn_t *k, bytes_t *b, bytes_t *tail, bool reply)
{
    conn_t *c = k->c;
    if (c->closing || c->end_after_write || k->lingering) return HR_EIO;
    size_t total = b->len + (tail ? tail->len : 0);
    uint8_t wh[WS_MAX_HEADER];
    size_t hl = k->ws ? ws_header_write(wh, WS_OP_BINARY, true, false, total) : 0;
    if (!reply && !wq_empty(&c->wq) && wq_cost(&c->wq) + hl + total + WQ_ENTRY_COST > c->wq.limit) return HR_EFULL;
    if (hl) {
        bytes_t *h = bytes_copy(wh, hl);
        if (!h) return HR_ENOMEM;
        conn_send_reply(c, h);
        bytes_unref(h);
    }
    conn_send_reply(c, b);
    if (tail) conn_send_reply(c, tail);
    return 0;
}

/* Encodes and sends a control packet (an answer the client is owed). */
void mqtt__reply(mqtt_conn_t *k, const mqtt_pkt_t *p)
{
    bytes_t *b = mqtt_encode_new(p);
    if (b) mqtt__send(k, b, NULL, true);
    bytes_unref(b);
}

void mqtt__ack(mqtt_conn_t *k, uint8_t type, uint16_t pid, uint8_t reason)
{
    mqtt_pkt_t p = {.type = type, .version = k->version, .packet_id = pid, .reason = k->version == MQTT_V5 ? reason : 0};
    mqtt__reply(k, &p);
}

/* The connection ends once its output is written. linger: its last packet is an answer the
 * client must read (DISCONNECT, a CONNACK refusal): over TCP its input is then read and dropped
 * for a moment (MQTT_LINGER_MS, MQTT_LINGER_BYTES), so that unread input does not turn the
 * close into a reset that can destroy the answer before the client reads it (the HTTP server's
 * lingering close does the same for its 503s; this one keeps the connection, so TLS lingers too). */
static void mqtt__end_linger(mqtt_conn_t *k, bool linger)
{
    conn_t *c = k->c;
    if (k->ws) {
        ws_close(k->ws, WS_CLOSE_NORMAL, "MQTT session ended");
        return;
    }
    if (!linger || k->lingering || c->loop->stopping || c->closing) {
        conn_end(c);
        return;
    }
    mqtt_server_t *srv = k->srv;
    uint32_t max = srv->x->cfg->max_lingering_closes; /* the bound HTTP's lingering close has too */
    if (srv->lingering >= max) {
        srv->linger_skipped++;
        if (!srv->linger_full)
            log_warn("mqtt: %u connections linger after their last packet (max_lingering_closes): further ones "
                     "close at once, their last packet may be lost", srv->lingering);
        srv->linger_full = true;
        conn_end(c);
        return;
    }
    if (srv->lingering < max / 2) srv->linger_full = false; /* logged again when it fills up again */
    k->lingering = true;
    k->srv->lingering++;
    k->srv->lingers++;
    /* replaces the credential's expiry (mqtt__tcp_timer closes): first the time to write what is
     * queued, the last packet included; once written, MQTT_LINGER_MS (mqtt__tcp_drain) */
    conn_timer(c, MQTT_LINGER_WRITE_MS);
    if (c->read_paused && !c->held) conn_pause_read(c, false);
}

static void mqtt__end(mqtt_conn_t *k) { mqtt__end_linger(k, false); }

/* The one place that answers a violation (see the file comment): while connecting, a CONNACK
 * with reason (v5) or with its 3.1.1 return code when one exists (mqtt_v3_connack_code; also for
 * a protocol level nobody knows); once connected, DISCONNECT with reason (v5); v3.1.1 otherwise
 * just closes. */
void mqtt__fail(mqtt_conn_t *k, uint8_t reason, const char *why)
{
    if (k->said_bye || k->c->closing) return;
    k->said_bye = true;
    const char *cid = k->s ? k->s->client_id : "-";
    char peer[128];
    conn_peer(k->c, peer, sizeof(peer));
    if (reason == MQTT_RC_SERVER_SHUTTING_DOWN) log_debug("mqtt: %s: %s", peer, why);
    else if (reason == MQTT_RC_NOT_AUTHORIZED || reason == MQTT_RC_BAD_USER_OR_PASSWORD) /* logged by access.c */
        log_debug("mqtt: %s (%s): 0x%02x %s", peer, cid, reason, why);
    else log_info("mqtt: %s (%s): 0x%02x %s", peer, cid, reason, why);
    mqtt_pkt_t p = {.version = k->version, .reason = reason};
    if (!k->connected && k->version == MQTT_V5) {
        p.type = MQTT_CONNACK;
    } else if (!k->connected) {
        p = (mqtt_pkt_t){.type = MQTT_CONNACK, .version = MQTT_V311, .reason = mqtt_v3_connack_code(reason)};
        if (p.reason == 0xFF) p.type = 0;
    } else if (k->version == MQTT_V5) {
        p.type = MQTT_DISCONNECT;
        p.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
        p.props.reason_string = span_of(why);
    }
    if (p.type) mqtt__reply(k, &p);
    mqtt__end_linger(k, p.type != 0);
}

static void mqtt__keepalive(tw_entry_t *e);

/* users.h: the admin disconnected the user: v5 DISCONNECT 0x98 (administrative action) with the
 * reason string; v3.1.1 has no server DISCONNECT: the connection closes. */
static void mqtt__user_disconnect(users_conn_t *uc, const char *reason, bool reconnect)
{
    (void)reconnect; /* MQTT clients reconnect by their own policy */
    mqtt__fail(container_of(uc, mqtt_conn_t, uc), MQTT_RC_ADMIN_ACTION, reason);
}

/* users.h: the admin unsubscribed the user from ch: the session's subscriptions whose filter is
 * exactly ch end (wildcard filters stay); MQTT has no packet to tell the client. */
static uint32_t mqtt__user_unsubscribe(users_conn_t *uc, const char *ch, size_t n)
{
    mqtt_sess_t *s = container_of(uc, mqtt_conn_t, uc)->s;
    uint32_t k = 0;
    for (uint32_t i = 0; s && i < s->nsubs;) {
        if (s->subs[i]->flen == n && memcmp(s->subs[i]->filter, ch, n) == 0) {
            mqtt__drop_sub(s, i);
            k++;
        } else {
            i++;
        }
    }
    return k;
}

static const users_conn_ops_t mqtt_user_ops = {
    .disconnect = mqtt__user_disconnect,
    .unsubscribe = mqtt__user_unsubscribe,
};

/* Who the client of CONNECT p is: its password (a token, or a password-file user), else the
 * connection's identity (anonymous, or the WebSocket handshake's). NULL when refused (answered);
 * otherwise a new reference. */
static auth_id_t *mqtt__who(mqtt_conn_t *k, const mqtt_pkt_t *p)
{
    auth_t *a = k->x->auth;
    auth_id_t *who = NULL;
    const char *why = "bad user name or password";
    char cn[ACL_MAX_SUB + 1];
    ssize_t cnl = a->certs && !k->ws ? tls_conn_peer_cn(k->c, cn, sizeof(cn)) : -1;
    if (cnl > 0) { /* mqtt_cert_identity: the certificate names the user; CONNECT's credentials are not used */
        if (auth_cert_user(a, cn, (size_t)cnl, &who, &why) < 0) {
            xp_log_refused(k->x, k->c, why);
            mqtt__fail(k, MQTT_RC_BAD_USER_OR_PASSWORD, why);
            return NULL;
        }
    } else if (a->enabled && p->connect.has_password) {
        span_t u = p->connect.has_username ? p->connect.username : (span_t){"", 0};
        if (auth_login(a, u.p, u.n, p->connect.password.p, p->connect.password.n, &who, &why) < 0) {
            xp_log_refused(k->x, k->c, why);
            mqtt__fail(k, MQTT_RC_BAD_USER_OR_PASSWORD, why);
            return NULL;
        }
    } else {
        who = auth_ref(k->id);
    }
    if (!auth_has_any(who)) {
        xp_log_denial(k->x, k->c, who, "connect", NULL, 0);
        auth_unref(who);
        mqtt__fail(k, MQTT_RC_NOT_AUTHORIZED, "not authorized: send a token (or user and password) in CONNECT");
        return NULL;
    }
    span_t wt = p->connect.will_topic;
    if (p->connect.will && !hub_channel_valid(wt.p, wt.n)) { /* it could never be published: say so now */
        bool dollar = wt.n && wt.p[0] == '$';
        const char *wwhy = dollar ? "the will topic is a '$' topic (the server's own)"
                                  : "the will topic is not a herald channel name";
        mqtt__refused(k->srv, k, MQTT_REF_WILL_TOPIC, wwhy, wt.p, wt.n);
        auth_unref(who);
        /* v5: 0x90 Topic Name invalid; 3.1.1 has no such return code: 0x05 not authorized */
        mqtt__fail(k, k->version == MQTT_V5 ? MQTT_RC_TOPIC_NAME_INVALID : MQTT_RC_NOT_AUTHORIZED, wwhy);
        return NULL;
    }
    if (p->connect.will && !auth_can_publish(who, wt.p, wt.n)) {
        xp_log_denial(k->x, k->c, who, "publish the will to", wt.p, wt.n);
        k->srv->refused[MQTT_REF_WILL_DENIED]++;
        auth_unref(who);
        mqtt__fail(k, MQTT_RC_NOT_AUTHORIZED, "not allowed to publish the will topic");
        return NULL;
    }
    return who;
}

/* The connection (and its session) act as who from now (taking the reference); the connection
 * ends when who's credential expires. */
static void mqtt__set_who(mqtt_conn_t *k, auth_id_t *who)
{
    auth_unref(k->id);
    k->id = who;
    auth_unref(k->s->id);
    k->s->id = auth_ref(who);
    if (k->ws) {
        ws_set_id(k->ws, auth_ref(who));
        return;
    }
    /* TCP: the connection's base timer, done with the CONNECT deadline, now waits for the expiry */
    uint64_t in = xp_expires_in(who);
    conn_timer(k->c, in == UINT64_MAX ? 0 : in ? in : 1);
}

/* A resumed session's subscriptions under the (maybe different) permissions of its new token:
 * those no longer allowed end; the others are checked per message where they are covered in part. */
static void mqtt__recheck(mqtt_sess_t *s)
{
    for (uint32_t i = 0; i < s->nsubs;) {
        mqtt_sub_t *sub = s->subs[i];
        acl_cover_t c = mqtt__cover(s->id, (span_t){sub->filter, sub->flen});
        if (c == ACL_NONE) {
            log_info("mqtt: session %s: subscription '%s' no longer allowed: ended", s->client_id, sub->filter);
            mqtt__drop_sub(s, i);
            continue;
        }
        sub->filtered = c == ACL_PARTIAL;
        i++;
    }
}

static void mqtt__expired(mqtt_conn_t *k)
{
    if (k->c->closing || k->said_bye) return;
    k->x->auth->stats.expired++;
    if (!k->connected) {
        mqtt__end(k);
        return;
    }
    mqtt__fail(k, MQTT_RC_MAX_CONNECT_TIME, "token expired");
}

static void mqtt__connect(mqtt_conn_t *k, const mqtt_pkt_t *p)
{
    mqtt_server_t *srv = k->srv;
    const cfg_t *cfg = k->x->cfg;
    k->version = p->version;
    bool v5 = k->version == MQTT_V5, clean = p->connect.clean_start;
    if (srv->closed) {
        mqtt__fail(k, MQTT_RC_SERVER_SHUTTING_DOWN, "server shutting down");
        return;
    }
    const char *cid = p->connect.client_id.p;
    size_t cn = p->connect.client_id.n;
    char assigned[40] = "";
    if (cn == 0) {
        if (!v5 && !clean) {
            mqtt__fail(k, MQTT_RC_CLIENT_ID_INVALID, "an empty client identifier needs a clean session");
            return;
        }
        snprintf(assigned, sizeof(assigned), "herald-%" PRIu64, ++k->x->sessions);
        cid = assigned;
        cn = strlen(assigned);
    }
    if (cn > MQTT_MAX_CLIENT_ID || memchr(cid, 0, cn)) {
        mqtt__fail(k, MQTT_RC_CLIENT_ID_INVALID, "client identifier longer than 256 bytes");
        return;
    }
    char id[MQTT_MAX_CLIENT_ID + 1];
    memcpy(id, cid, cn);
    id[cn] = 0;
    auth_id_t *who = mqtt__who(k, p);
    if (!who) return;
    const char *owner = who->kind == AUTH_USER ? who->sub_id : who->kind == AUTH_KEY ? "$api-key" : "";
    /* the session expiry this connection gets */
    uint32_t want = v5 ? ((p->props.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY)) ? p->props.session_expiry : 0)
                       : (clean ? 0 : UINT32_MAX);
    uint32_t cap = cfg->mqtt_session_expiry;
    uint32_t expiry = want < cap ? want : cap;
    mqtt_sess_t *s = mqtt__sess_find(srv, id);
    /* nobody takes over another user's device; an anonymous session (also one saved before access
     * control was turned on) may be claimed by a user, as any anonymous client could take it */
    const char *had = s && s->owner ? s->owner : "";
    if (s && strcmp(had, owner) != 0 && had[0]) {
        xp_log_denial(k->x, k->c, who, "use the client identifier", id, cn);
        auth_unref(who);
        mqtt__fail(k, MQTT_RC_NOT_AUTHORIZED, "the client identifier belongs to another user");
        return;
    }
    bool oom;
    mqtt_will_t *will = mqtt__will_new(p, &oom);
    if (oom) {
        auth_unref(who);
        mqtt__fail(k, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
        return;
    }
    if (s && s->conn) { /* takeover: the older connection is closed, its will handled as for any loss */
        mqtt_conn_t *old = s->conn;
        mqtt__leave(old, true);
        mqtt__fail(old, MQTT_RC_SESSION_TAKEN_OVER, "session taken over by a new connection");
    }
    if (s && clean) { /* clean start discards the old session (its pending will goes out) */
        mqtt__sess_free(s, true);
        s = NULL;
    }
    bool present = s != NULL;
    if (s) { /* resumed: the client is back before its will was due */
        free(s->will);
        s->will = NULL;
        s->will_at = s->expires_at = MQTT_NEVER;
        tw_stop(&k->c->loop->wheel, &s->timer);
    } else if (!(s = mqtt__sess_new(srv, id, cn)) || !(s->owner = strdup(owner))) {
        if (s) mqtt__sess_free(s, true);
        free(will);
        auth_unref(who);
        mqtt__fail(k, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
        return;
    }
    if (strcmp(s->owner, owner) != 0) { /* claimed */
        char *o = strdup(owner);
        if (o) {
            free(s->owner);
            s->owner = o;
            mqtt__dirty(s);
        }
    }
    s->conn = k;
    k->s = s;
    mqtt__set_who(k, who);
    if (present) mqtt__recheck(s);
    mqtt__pres_attach(s); /* presence: its exact-filter subscriptions count again */
    s->will = will;
    s->expiry_s = expiry;
    k->expiry0 = v5 && want == 0;
    /* mqtt_max_keepalive: v5 clients asking for more (or for none) are told the Server Keep Alive;
     * 3.1.1 has no way to tell, so a client asking for more is held to the maximum (the connection
     * ends after 1.5 times it without a packet) and one asking for none keeps none */
    uint16_t ka = p->connect.keep_alive, kmax = (uint16_t)cfg->mqtt_max_keepalive;
    bool ka_told = false;
    if (kmax && (ka > kmax || (v5 && ka == 0))) {
        srv->ka_capped++;
        if (v5) ka_told = true;
        else if (!srv->ka_v3_logged) { /* the first only: herald_mqtt_keepalive_capped_total counts them */
            srv->ka_v3_logged = true;
            char peer[128];
            log_info("mqtt: %s (%s): keep alive %u s over mqtt_max_keepalive: held to %u s (MQTT 3.1.1 cannot be "
                     "told; the client should ask for less; not logged again)",
                     conn_peer(k->c, peer, sizeof(peer)), id, ka, kmax);
        }
        ka = kmax;
    }
    k->keepalive = ka;
    uint16_t ta = v5 && (p->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAX)) ? p->props.topic_alias_max : 0;
    k->oalias_max = ta < cfg->mqtt_topic_aliases_out ? ta : (uint16_t)cfg->mqtt_topic_aliases_out;
    k->window = cfg->mqtt_max_inflight;
    if (v5 && (p->props.present & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX)) && p->props.receive_max < k->window)
        k->window = p->props.receive_max;
    k->max_packet = v5 && (p->props.present & MQTT_PROP_BIT(MQTT_PROP_MAX_PACKET_SIZE)) ? p->props.max_packet_size : 0;
    k->naliases = v5 ? (uint16_t)cfg->mqtt_topic_aliases : 0;
    mqtt_pkt_t a = {.type = MQTT_CONNACK, .version = k->version};
    a.connack.session_present = present;
    if (v5) {
        mqtt_props_t *pr = &a.props;
        pr->present = MQTT_PROP_BIT(MQTT_PROP_RETAIN_AVAILABLE) | MQTT_PROP_BIT(MQTT_PROP_WILDCARD_SUB_AVAILABLE) |
                      MQTT_PROP_BIT(MQTT_PROP_SUB_ID_AVAILABLE) | MQTT_PROP_BIT(MQTT_PROP_SHARED_SUB_AVAILABLE) |
                      MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAX) | MQTT_PROP_BIT(MQTT_PROP_MAX_PACKET_SIZE) |
                      MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX);
        pr->retain_available = pr->wildcard_sub_available = pr->sub_id_available = pr->shared_sub_available = 1;
        pr->topic_alias_max = k->naliases;
        pr->receive_max = MQTT_RECEIVE_MAX;
        pr->max_packet_size = cfg->mqtt_max_packet;
        if (ka_told) {
            pr->present |= MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEP_ALIVE);
            pr->server_keep_alive = ka;
        }
        if (expiry != want) { /* granted less than asked (MQTT 5.0 3.2.2.3.2) */
            pr->present |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
            pr->session_expiry = expiry;
        }
        if (assigned[0]) {
            pr->present |= MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_ID);
            pr->assigned_client_id = span_of(assigned);
        }
    }
    mqtt__reply(k, &a);
    k->connected = true;
    if (k->x->users && k->id->kind == AUTH_USER && !k->uc.u) {
        k->uc.ops = &mqtt_user_ops;
        k->uc.kind = k->ws ? "mqtt_ws" : "mqtt";
        users_add(k->x->users, k->id->sub_id, k->id->sub_len, &k->uc); /* on failure it is only not listed */
    }
    if (k->keepalive) loop_timer(k->c->loop, &k->ka, (uint64_t)k->keepalive * 1500);
    else tw_stop(&k->c->loop->wheel, &k->ka); /* WebSocket: the CONNECT deadline */
    if (present) mqtt__resend(k);
}

static void mqtt__disconnect(mqtt_conn_t *k, const mqtt_pkt_t *p)
{
    mqtt_sess_t *s = k->s;
    if (p->props.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY)) {
        if (k->expiry0 && p->props.session_expiry) { /* MQTT 5.0 3.14.2.2.2 */
            mqtt__fail(k, MQTT_RC_PROTOCOL_ERROR, "session expiry set on DISCONNECT after 0 on CONNECT");
            return;
        }
        uint32_t cap = k->x->cfg->mqtt_session_expiry;
        s->expiry_s = p->props.session_expiry < cap ? p->props.session_expiry : cap;
    }
    if (p->reason != MQTT_RC_DISCONNECT_WITH_WILL) { /* a normal disconnect discards the will */
        free(s->will);
        s->will = NULL;
    }
    k->said_bye = true;
    mqtt__end(k);
}

/* ---- packets ---- */

static void mqtt__acked(mqtt_conn_t *k, mq_item_t *it)
{
    mq_flight_del(&k->s->out, it);
    mqtt__pump(k);
}

static void mqtt__packet(mqtt_conn_t *k, const mqtt_pkt_t *p)
{
    mq_item_t *it;
    if (p->type != MQTT_CONNECT && !k->s) return; /* refused or shutting down */
    if (k->s && p->type != MQTT_PINGREQ && (p->type != MQTT_PUBLISH || p->publish.qos == 2)) mqtt__dirty(k->s);
    switch (p->type) {
    case MQTT_CONNECT: mqtt__connect(k, p); break;
    case MQTT_PUBLISH: mqtt__on_publish_pkt(k, p); break;
    case MQTT_PUBACK:
        if ((it = mq_flight_find(&k->s->out, p->packet_id)) && it->qos == 1) mqtt__acked(k, it);
        break;
    case MQTT_PUBCOMP:
        if ((it = mq_flight_find(&k->s->out, p->packet_id)) && it->qos == 2) mqtt__acked(k, it);
        break;
    case MQTT_PUBREC:
        it = mq_flight_find(&k->s->out, p->packet_id);
        if (it && it->qos == 2 && p->reason >= 0x80) {
            mqtt__acked(k, it);
            break;
        }
        if (it && it->qos == 2) it->state = MQ_RELEASED;
        mqtt__ack(k, MQTT_PUBREL, p->packet_id, it && it->qos == 2 ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND);
        break;
    case MQTT_PUBREL: {
        mqtt_sess_t *s = k->s;
        bool found = false;
        for (uint32_t i = 0; i < s->nin2 && !found; i++)
            if (s->in2[i] == p->packet_id) {
                s->in2[i] = s->in2[--s->nin2];
                found = true;
            }
        mqtt__ack(k, MQTT_PUBCOMP, p->packet_id, found ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND);
        break;
    }
    case MQTT_SUBSCRIBE: mqtt__subscribe(k, p); break;
    case MQTT_UNSUBSCRIBE: mqtt__unsubscribe(k, p); break;
    case MQTT_PINGREQ: {
        mqtt_pkt_t r = {.type = MQTT_PINGRESP, .version = k->version};
        mqtt__reply(k, &r);
        break;
    }
    case MQTT_DISCONNECT: mqtt__disconnect(k, p); break;
    case MQTT_AUTH: mqtt__fail(k, MQTT_RC_BAD_AUTH_METHOD, "enhanced authentication is not supported"); break;
    default: mqtt__fail(k, MQTT_RC_PROTOCOL_ERROR, "unexpected packet"); break;
    }
}

/* Decodes and handles every whole packet in p[0..n); returns the bytes of an incomplete one left
 * at the end. */
static size_t mqtt__feed(mqtt_conn_t *k, const char *p, size_t n)
{
    size_t off = 0;
    while (off < n && !k->said_bye && !k->c->closing) {
        /* a client that sends requests (PINGREQ, SUBSCRIBE, QoS 1 PUBLISH...) without reading the
         * replies: the rest waits, unparsed, until the queue drains (TCP; ws.c pauses WebSocket) */
        if (!k->ws && wq_full(&k->c->wq)) {
            conn_hold_input(k->c);
            return n - off;
        }
        mqtt_opts_t o = {MQTT_ROLE_SERVER, k->version, k->x->cfg->mqtt_max_packet};
        mqtt_pkt_t pkt;
        mqtt_err_t err;
        ssize_t r = mqtt_decode(p + off, n - off, &o, &pkt, &err);
        if (r == HR_EAGAIN) return n - off;
        if (r < 0) {
            if (!k->version) k->version = err.version; /* a refused CONNECT: answer at its level */
            mqtt__fail(k, err.reason, err.why);
            return 0;
        }
        mqtt__packet(k, &pkt);
        off += (size_t)r;
    }
    return 0;
}

static void mqtt__keepalive(tw_entry_t *e)
{
    mqtt_conn_t *k = container_of(e, mqtt_conn_t, ka);
    if (k->c->closing) return;
    if (!k->s) { /* over WebSocket, the keep-alive timer is first the CONNECT deadline */
        k->x->metrics->connect_timeouts++;
        char peer[128];
        log_info("mqtt: %s: no CONNECT within header_timeout: closed", conn_peer(k->c, peer, sizeof(peer)));
        if (k->ws) ws_close(k->ws, WS_CLOSE_POLICY, "no CONNECT in time");
        return;
    }
    uint64_t now = loop_now(k->c->loop), limit = (uint64_t)k->keepalive * 1500;
    uint64_t last = k->last_rx_ms;
    if (now - last >= limit) {
        mqtt__fail(k, MQTT_RC_KEEP_ALIVE_TIMEOUT, "keep alive timeout");
        return;
    }
    loop_timer(k->c->loop, &k->ka, limit - (now - last));
}

/* The connection is gone: leave the session (will, expiry), free the connection's state. */
static void mqtt__conn_free(mqtt_conn_t *k)
{
    if (k->x->users) users_remove(k->x->users, &k->uc);
    tw_stop(&k->c->loop->wheel, &k->ka);
    if (k->ackw_wait) hub_cancel(k->x->hub, k); /* its publishes complete unacknowledged */
    free(k->ackw);
    list_unlink(&k->link);
    mqtt__leave(k, false);
    if (k->alias)
        for (uint32_t i = 0; i <= k->naliases; i++) free(k->alias[i]);
    free(k->alias);
    mqtt__oalias_free(k);
    ws_carry_free(&k->in);
    auth_unref(k->id);
    k->id = NULL;
}

static void mqtt__conn_init(mqtt_conn_t *k, xp_ctx_t *x, conn_t *c, ws_t *ws)
{
    k->x = x;
    k->srv = x->mqtt;
    k->c = c;
    k->ws = ws;
    k->id = ws ? auth_ref(ws->id) : auth_anonymous(x->auth);
    tw_entry_init(&k->ka, mqtt__keepalive);
    k->last_rx_ms = loop_now(c->loop);
    list_push_back(&k->srv->conns, &k->link);
}

/* ---- TCP ---- */

static void mqtt__tcp_read(conn_t *c)
{
    mqtt_tcp_t *t = container_of(c, mqtt_tcp_t, base);
    t->k.last_rx_ms = loop_now(c->loop);
    if (t->k.lingering) { /* after the last packet: dropped, within bounds */
        t->k.linger_bytes += c->rlen;
        conn_consume(c, c->rlen);
        if (t->k.linger_bytes > MQTT_LINGER_BYTES) conn_close(c, 0);
        return;
    }
    size_t left = mqtt__feed(&t->k, c->rbuf, c->rlen);
    if (c->closing) return;
    conn_consume(c, (uint32_t)(c->rlen - left));
    if (t->k.said_bye && c->rlen) conn_consume(c, c->rlen);
}

static void mqtt__tcp_drain(conn_t *c)
{
    mqtt_conn_t *k = &container_of(c, mqtt_tcp_t, base)->k;
    if (k->lingering) { /* the last packet is written: the client sees the end (TLS: waits for its close) */
        if (!k->linger_written) {
            k->linger_written = true;
            conn_timer(c, MQTT_LINGER_MS);
            if (!c->tls) shutdown(c->w.fd, SHUT_WR);
        }
        return;
    }
    mqtt__pump(k);
}

/* The base timer of a TCP connection: the CONNECT deadline from accept, then the credential's
 * expiry (mqtt__set_who). */
static void mqtt__tcp_timer(conn_t *c)
{
    mqtt_conn_t *k = &container_of(c, mqtt_tcp_t, base)->k;
    if (k->lingering) { /* MQTT_LINGER_MS after the last packet */
        conn_close(c, 0);
        return;
    }
    if (k->said_bye || c->closing) return;
    if (k->connected) {
        mqtt__expired(k);
        return;
    }
    char peer[64];
    log_info("mqtt: %s: no CONNECT within header_timeout: closed", conn_peer(c, peer, sizeof(peer)));
    k->x->metrics->connect_timeouts++;
    conn_close(c, HR_ETIMEDOUT);
}

static void mqtt__tcp_close(conn_t *c)
{
    mqtt_tcp_t *t = container_of(c, mqtt_tcp_t, base);
    iplimit_release(t->k.x->ipl, c->ipl);
    if (t->k.lingering) t->k.srv->lingering--;
    mqtt__conn_free(&t->k);
    t->k.x->metrics->connections[XP_MQTT]--;
    t->k.srv->nconns--;
    free(t);
}

static void mqtt__tcp_eof(conn_t *c) { conn_close(c, 0); }

static const conn_ops_t mqtt_tcp_ops = {
    .on_read = mqtt__tcp_read,
    .on_eof = mqtt__tcp_eof,
    .on_drain = mqtt__tcp_drain,
    .on_timer = mqtt__tcp_timer,
    .on_close = mqtt__tcp_close,
};

static void mqtt__accept_any(listener_t *l, int fd, struct tls_ctx *tls)
{
    mqtt_server_t *srv = l->ctx;
    xp_ctx_t *x = srv->x;
    ipl_entry_t *ie = NULL;
    if (x->ipl && (l->pp ? iplimit_admit_addr(x->ipl, l->pp->src, loop_now(l->loop), &ie)
                         : iplimit_admit(x->ipl, fd, loop_now(l->loop), &ie)) < 0) { /* nothing to answer before CONNECT */
        close(fd);
        x->metrics->rejected++;
        return;
    }
    mqtt_tcp_t *t = calloc(1, sizeof(*t));
    if (!t || srv->nconns >= x->cfg->max_connections || l->loop->stopping ||
        conn_init(&t->base, l->loop, fd, &mqtt_tcp_ops, x->cfg->mqtt_max_packet + MQTT_MAX_HEADER,
                  x->cfg->max_queued_bytes) < 0) {
        free(t);
        close(fd);
        iplimit_release(x->ipl, ie);
        x->metrics->rejected++;
        return;
    }
    t->base.ipl = ie;
    if (l->pp) { /* the load balancer's PROXY header names the client */
        proxyproto_format(l->pp, t->client, sizeof(t->client));
        t->base.alias = t->client;
    }
    mqtt__conn_init(&t->k, x, &t->base, NULL);
    conn_timer(&t->base, x->cfg->header_timeout_ms); /* CONNECT must come first, and soon */
    srv->nconns++;
    x->metrics->accepted++;
    x->metrics->connections[XP_MQTT]++;
    if (tls && tls_conn_start(&t->base, tls) < 0) conn_close(&t->base, HR_ENOMEM);
}

static void mqtt__accept(listener_t *l, int fd) { mqtt__accept_any(l, fd, NULL); }

static void mqtt__accept_tls(listener_t *l, int fd)
{
    mqtt_server_t *srv = l->ctx;
    mqtt__accept_any(l, fd, srv->tls);
}

int mqtt_server_listen_tls(mqtt_server_t *srv, const char *addr, struct tls_ctx *tls)
{
    srv->tls = tls;
    int rc = listener_open(&srv->tls_listener, srv->x->hub->loop, addr, mqtt__accept_tls, srv);
    srv->tls_open = rc == 0;
    if (rc == 0 && srv->x->cfg->proxy_protocol) listener_proxy(&srv->tls_listener, srv->x->cfg->header_timeout_ms);
    return rc;
}

/* ---- WebSocket (/mqtt) ---- */

static size_t mqtt__parse(void *ctx, char *p, size_t n) { return mqtt__feed(ctx, p, n); }

static void mqtt__ws_message(ws_t *ws, bool text, char *data, size_t n)
{
    mqtt_conn_t *k = &((mqtt_wsc_t *)ws)->k;
    k->last_rx_ms = loop_now(k->c->loop);
    if (text) {
        ws_close(ws, WS_CLOSE_UNSUPPORTED, "MQTT over WebSocket uses binary messages");
        return;
    }
    int rc = ws_carry_feed(&k->in, data, n, (size_t)k->x->cfg->mqtt_max_packet + MQTT_MAX_HEADER, mqtt__parse, k);
    if (rc == HR_EFULL) mqtt__fail(k, MQTT_RC_PACKET_TOO_LARGE, "packet too large");
    else if (rc < 0) mqtt__fail(k, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
}

static void mqtt__ws_drain(ws_t *ws) { mqtt__pump(&((mqtt_wsc_t *)ws)->k); }

static void mqtt__ws_close(ws_t *ws) { mqtt__conn_free(&((mqtt_wsc_t *)ws)->k); }

static const char *const mqtt_protocols[] = {"mqtt", NULL};

static void mqtt__ws_expire(ws_t *ws) { mqtt__expired(&((mqtt_wsc_t *)ws)->k); }

static const ws_app_t mqtt_ws_app = {
    .on_expire = mqtt__ws_expire,
    .xp = XP_MQTT,
    .subprotocols = mqtt_protocols,
    .deflate = false,
    .on_message = mqtt__ws_message,
    .on_drain = mqtt__ws_drain,
    .on_close = mqtt__ws_close,
};

void mqtt_ws_serve(xp_ctx_t *x, http_conn_t *hc, http_req_t *req)
{
    if (!x->mqtt || x->mqtt->closed) {
        http_error(hc, HR_ENOTFOUND, "MQTT is not enabled");
        return;
    }
    mqtt_wsc_t *w = (mqtt_wsc_t *)ws_accept(x, hc, req, &mqtt_ws_app, sizeof(mqtt_wsc_t), true, NULL);
    if (!w) return;
    mqtt__conn_init(&w->k, x, &hc->base, &w->ws);
    loop_timer(hc->base.loop, &w->k.ka, x->cfg->header_timeout_ms); /* CONNECT must come first, and soon */
}

/* ---- server ---- */

int mqtt_server_open(mqtt_server_t *srv, xp_ctx_t *x, loop_t *loop)
{
    memset(srv, 0, sizeof(*srv));
    srv->x = x;
    list_init(&srv->conns);
    list_init(&srv->dirty);
    list_init(&srv->saving);
    x->mqtt = srv;
    if (mqtt__sessions_init(srv) < 0) return HR_ENOMEM;
    srv->started_ms = loop_wall_ms();
    tw_entry_init(&srv->sys, mqtt__sys);
    if (x->cfg->mqtt_addr[0]) {
        int rc = listener_open(&srv->listener, loop, x->cfg->mqtt_addr, mqtt__accept, srv);
        if (rc < 0) {
            mqtt__sessions_free(srv);
            return rc;
        }
        if (x->cfg->proxy_protocol) listener_proxy(&srv->listener, x->cfg->header_timeout_ms);
        srv->open = true;
    }
    store_t *st = x->hub->store;
    if (st->ops->kv_each && st->ops->kv_each(st, MQTT_KV, mqtt__restore_one, srv) < 0)
        log_warn("mqtt: could not restore every saved session");
    if (srv->restored) log_info("mqtt: %u persistent sessions restored", srv->restored);
    if (x->cfg->mqtt_sys_interval_ms) mqtt__sys(&srv->sys);
    return 0;
}

void mqtt_server_close(mqtt_server_t *srv)
{
    tw_stop(&srv->x->hub->loop->wheel, &srv->sys);
    for (uint32_t i = 0; i < srv->nsys; i++) msg_unref(srv->sysmsg[i]);
    srv->nsys = 0;
    if (srv->open) listener_close(&srv->listener);
    if (srv->tls_open) listener_close(&srv->tls_listener);
    srv->open = srv->tls_open = false;
    srv->closed = true;
    list_node_t *pos, *tmp;
    list_each_safe(pos, tmp, &srv->conns)
    {
        mqtt_conn_t *k = container_of(pos, mqtt_conn_t, link);
        if (!k->ws) mqtt__fail(k, MQTT_RC_SERVER_SHUTTING_DOWN, "server shutting down");
        k->said_bye = true; /* WebSockets: closed by the HTTP server (Close 1001); nothing more is read */
        mqtt_sess_t *s = mqtt__detach(k);
        if (s) { /* shutting down is not the client's fault: no will */
            free(s->will);
            s->will = NULL;
        }
        if (k->ws) continue;
        conn_flush_now(k->c);
        if (!k->c->tls && !k->c->closing) { /* input already here is dropped: a close with unread input
                                               resets the connection, which can destroy the DISCONNECT */
            shutdown(k->c->w.fd, SHUT_WR);
            char sink[4096];
            for (int i = 0; i < 16 && recv(k->c->w.fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++) {}
        }
        conn_close(k->c, HR_ESHUTDOWN);
    }
    /* persistent sessions are saved (they come back at the next start); then every one is freed */
    mqtt_server_persist(srv);
    mqtt__sessions_free(srv);
}
