/* mqtt_codec.c - the pure MQTT 3.1.1 / 5.0 packet codec (see mqtt_codec.h for the contract).
 *
 * Framing reads only the fixed header: byte 0 is judged alone (type by role and version, flags),
 * the remaining length as soon as its last byte is in (encoding, then the packet size limit).
 * Nothing else is looked at until the whole packet is present, so a prefix of the input gives
 * HR_EAGAIN or the whole input's result, and the caller may split its reads anywhere.
 *
 * The body decoders walk the packet with a bounds-checked reader: running out of bytes inside a
 * field, or bytes left over where a packet must end, is a Malformed Packet. Properties are
 * driven by one table (PROPS): each id's type, the packets it may appear in (a bit per packet
 * type, bit 0 standing for a will's properties) and where its value lives in mqtt_props_t, so
 * decoding, duplicate detection and encoding share the same facts. Refusals follow the MQTT 5
 * wording: wrong types, lengths and ids are Malformed (0x81); values the spec calls a "Protocol
 * Error" (duplicates, 0 where 0 is forbidden, out-of-range bytes) are 0x82; the specific codes
 * (0x84, 0x85, 0x90, 0x94, 0x95, 0x99) where the spec has one.
 *
 * Encoders write through a writer that counts bytes past the end of the buffer instead of
 * writing them, so one body routine both measures a packet (for its remaining length and the
 * property length) and writes it. */
#include "mqtt_codec.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"

/* ---- the property table ---- */

enum { T_NONE, T_BYTE, T_U16, T_U32, T_VBI, T_STR, T_BIN, T_PAIR };

#define PK(t) (1u << (t))
#define WILL PK(0)
#define PUBW (PK(MQTT_PUBLISH) | WILL)
#define ACKS (PK(MQTT_PUBACK) | PK(MQTT_PUBREC) | PK(MQTT_PUBREL) | PK(MQTT_PUBCOMP))
#define ALLP                                                                                                   \
    (WILL | PK(MQTT_CONNECT) | PK(MQTT_CONNACK) | PK(MQTT_PUBLISH) | ACKS | PK(MQTT_SUBSCRIBE) | PK(MQTT_SUBACK) | \
     PK(MQTT_UNSUBSCRIBE) | PK(MQTT_UNSUBACK) | PK(MQTT_DISCONNECT) | PK(MQTT_AUTH))
#define OFF(f) offsetof(mqtt_props_t, f)

static const struct {
    uint8_t type;
    uint16_t where;
    uint16_t off;
} PROPS[0x2B] = {
    [MQTT_PROP_PAYLOAD_FORMAT] = {T_BYTE, PUBW, OFF(payload_format)},
    [MQTT_PROP_MESSAGE_EXPIRY] = {T_U32, PUBW, OFF(message_expiry)},
    [MQTT_PROP_CONTENT_TYPE] = {T_STR, PUBW, OFF(content_type)},
    [MQTT_PROP_RESPONSE_TOPIC] = {T_STR, PUBW, OFF(response_topic)},
    [MQTT_PROP_CORRELATION_DATA] = {T_BIN, PUBW, OFF(correlation_data)},
    [MQTT_PROP_SUBSCRIPTION_ID] = {T_VBI, PK(MQTT_PUBLISH) | PK(MQTT_SUBSCRIBE), OFF(sub_id)},
    [MQTT_PROP_SESSION_EXPIRY] = {T_U32, PK(MQTT_CONNECT) | PK(MQTT_CONNACK) | PK(MQTT_DISCONNECT),
                                  OFF(session_expiry)},
    [MQTT_PROP_ASSIGNED_CLIENT_ID] = {T_STR, PK(MQTT_CONNACK), OFF(assigned_client_id)},
    [MQTT_PROP_SERVER_KEEP_ALIVE] = {T_U16, PK(MQTT_CONNACK), OFF(server_keep_alive)},
    [MQTT_PROP_AUTH_METHOD] = {T_STR, PK(MQTT_CONNECT) | PK(MQTT_CONNACK) | PK(MQTT_AUTH), OFF(auth_method)},
    [MQTT_PROP_AUTH_DATA] = {T_BIN, PK(MQTT_CONNECT) | PK(MQTT_CONNACK) | PK(MQTT_AUTH), OFF(auth_data)},
    [MQTT_PROP_REQUEST_PROBLEM_INFO] = {T_BYTE, PK(MQTT_CONNECT), OFF(request_problem_info)},
    [MQTT_PROP_WILL_DELAY] = {T_U32, WILL, OFF(will_delay)},
    [MQTT_PROP_REQUEST_RESPONSE_INFO] = {T_BYTE, PK(MQTT_CONNECT), OFF(request_response_info)},
    [MQTT_PROP_RESPONSE_INFO] = {T_STR, PK(MQTT_CONNACK), OFF(response_info)},
    [MQTT_PROP_SERVER_REFERENCE] = {T_STR, PK(MQTT_CONNACK) | PK(MQTT_DISCONNECT), OFF(server_reference)},
    [MQTT_PROP_REASON_STRING] = {T_STR,
                                 PK(MQTT_CONNACK) | ACKS | PK(MQTT_SUBACK) | PK(MQTT_UNSUBACK) | PK(MQTT_DISCONNECT) |
                                     PK(MQTT_AUTH),
                                 OFF(reason_string)},
    [MQTT_PROP_RECEIVE_MAX] = {T_U16, PK(MQTT_CONNECT) | PK(MQTT_CONNACK), OFF(receive_max)},
    [MQTT_PROP_TOPIC_ALIAS_MAX] = {T_U16, PK(MQTT_CONNECT) | PK(MQTT_CONNACK), OFF(topic_alias_max)},
    [MQTT_PROP_TOPIC_ALIAS] = {T_U16, PK(MQTT_PUBLISH), OFF(topic_alias)},
    [MQTT_PROP_MAX_QOS] = {T_BYTE, PK(MQTT_CONNACK), OFF(max_qos)},
    [MQTT_PROP_RETAIN_AVAILABLE] = {T_BYTE, PK(MQTT_CONNACK), OFF(retain_available)},
    [MQTT_PROP_USER] = {T_PAIR, ALLP, 0},
    [MQTT_PROP_MAX_PACKET_SIZE] = {T_U32, PK(MQTT_CONNECT) | PK(MQTT_CONNACK), OFF(max_packet_size)},
    [MQTT_PROP_WILDCARD_SUB_AVAILABLE] = {T_BYTE, PK(MQTT_CONNACK), OFF(wildcard_sub_available)},
    [MQTT_PROP_SUB_ID_AVAILABLE] = {T_BYTE, PK(MQTT_CONNACK), OFF(sub_id_available)},
    [MQTT_PROP_SHARED_SUB_AVAILABLE] = {T_BYTE, PK(MQTT_CONNACK), OFF(shared_sub_available)},
};

static uint8_t prop_type(uint8_t id) { return id < sizeof PROPS / sizeof PROPS[0] ? PROPS[id].type : T_NONE; }

/* ---- UTF-8, topics, filters ---- */

static bool utf8_ok(const uint8_t *p, size_t n, bool allow_nul)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            if (c == 0 && !allow_nul) return false;
            i++;
            continue;
        }
        size_t k;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) {
            k = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i - 1 < k) return false;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (p[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += k + 1;
    }
    return true;
}

bool mqtt_utf8_valid(const void *s, size_t n) { return utf8_ok(s, n, false); }

/* Topic syntax alone (the caller has checked UTF-8). */
static bool topic_syntax(span_t t) { return t.n >= 1 && t.n <= 65535 && !memchr(t.p, '+', t.n) && !memchr(t.p, '#', t.n); }

/* Filter syntax alone, without the $share prefix rules. */
static bool filter_levels(const char *p, size_t n)
{
    if (n == 0) return false;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && p[i] != '/') continue;
        size_t len = i - start;
        for (size_t j = start; j < i; j++) {
            if (p[j] == '+' && len != 1) return false;
            if (p[j] == '#' && (len != 1 || i != n)) return false;
        }
        start = i + 1;
    }
    return true;
}

bool mqtt_filter_share(span_t f, span_t *group, span_t *filter)
{
    static const char pre[] = "$share/";
    size_t pl = sizeof pre - 1;
    if (f.n < pl || memcmp(f.p, pre, pl) != 0) return false;
    const char *g = f.p + pl;
    const char *slash = memchr(g, '/', f.n - pl);
    if (!slash) return false;
    *group = (span_t){g, (size_t)(slash - g)};
    *filter = (span_t){slash + 1, f.n - pl - group->n - 1};
    return true;
}

static bool filter_syntax(span_t f)
{
    if (f.n < 1 || f.n > 65535) return false;
    span_t g, rest;
    if (mqtt_filter_share(f, &g, &rest))
        return g.n > 0 && !memchr(g.p, '+', g.n) && !memchr(g.p, '#', g.n) && filter_levels(rest.p, rest.n);
    if (f.n >= 7 && memcmp(f.p, "$share/", 7) == 0) return false; /* "$share/NAME" with no filter */
    return filter_levels(f.p, f.n);
}

bool mqtt_topic_valid(span_t t) { return topic_syntax(t) && mqtt_utf8_valid(t.p, t.n); }

bool mqtt_filter_valid(span_t f) { return filter_syntax(f) && mqtt_utf8_valid(f.p, f.n); }

uint8_t mqtt_v3_connack_code(uint8_t reason)
{
    switch (reason) {
    case MQTT_RC_UNSUPPORTED_VERSION: return 0x01;
    case MQTT_RC_CLIENT_ID_INVALID: return 0x02;
    case MQTT_RC_SERVER_UNAVAILABLE:
    case MQTT_RC_SERVER_BUSY: return 0x03;
    case MQTT_RC_BAD_USER_OR_PASSWORD: return 0x04;
    case MQTT_RC_NOT_AUTHORIZED:
    case MQTT_RC_BAD_AUTH_METHOD: return 0x05;
    default: return 0xFF;
    }
}

/* ---- reason-code sets ---- */

static const uint8_t RC_PUBACK[] = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
static const uint8_t RC_PUBREL[] = {0x00, 0x92};
static const uint8_t RC_CONNACK[] = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
                                     0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
static const uint8_t RC_SUBACK5[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
static const uint8_t RC_SUBACK3[] = {0x00, 0x01, 0x02, 0x80};
static const uint8_t RC_UNSUBACK[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
static const uint8_t RC_DISCONNECT[] = {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
                                        0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
                                        0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
static const uint8_t RC_AUTH[] = {0x00, 0x18, 0x19};
#define IN_SET(c, set) (memchr((set), (c), sizeof(set)) != NULL)

/* ---- decoding ---- */

typedef struct {
    const uint8_t *b;
    size_t n, i;
    uint8_t version, role;
    mqtt_err_t *err;
} dec_t;

static int fail_e(mqtt_err_t *e, uint8_t version, uint8_t reason, const char *why)
{
    e->reason = reason;
    e->version = version;
    e->why = why;
    return HR_EPROTO;
}

static int fail(dec_t *d, uint8_t reason, const char *why) { return fail_e(d->err, d->version, reason, why); }

#define TRY(x)                                                                                                 \
    do {                                                                                                       \
        int rc_ = (x);                                                                                         \
        if (rc_ < 0) return rc_;                                                                               \
    } while (0)

static int truncated(dec_t *d) { return fail(d, MQTT_RC_MALFORMED, "field runs past the end of the packet"); }

static size_t left(const dec_t *d) { return d->n - d->i; }

static int rd_u8(dec_t *d, uint8_t *v)
{
    if (left(d) < 1) return truncated(d);
    *v = d->b[d->i++];
    return 0;
}

static int rd_u16(dec_t *d, uint16_t *v)
{
    if (left(d) < 2) return truncated(d);
    *v = (uint16_t)(d->b[d->i] << 8 | d->b[d->i + 1]);
    d->i += 2;
    return 0;
}

static int rd_u32(dec_t *d, uint32_t *v)
{
    if (left(d) < 4) return truncated(d);
    const uint8_t *b = d->b + d->i;
    *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    d->i += 4;
    return 0;
}

/* A variable byte integer at p[0..n): 1 with *v and *used, 0 when more bytes are needed, -1
 * when it has a fifth byte or is not minimally encoded. */
static int vbi_read(const uint8_t *p, size_t n, uint32_t *v, size_t *used)
{
    uint32_t x = 0;
    for (size_t k = 0; k < 4; k++) {
        if (k >= n) return 0;
        x |= (uint32_t)(p[k] & 0x7F) << (7 * k);
        if (!(p[k] & 0x80)) {
            if (k > 0 && p[k] == 0) return -1;
            *v = x;
            *used = k + 1;
            return 1;
        }
    }
    return -1;
}

static int rd_vbi(dec_t *d, uint32_t *v)
{
    size_t used;
    int r = vbi_read(d->b + d->i, left(d), v, &used);
    if (r == 0) return truncated(d);
    if (r < 0) return fail(d, MQTT_RC_MALFORMED, "variable byte integer not minimally encoded or too long");
    d->i += used;
    return 0;
}

static int rd_bin(dec_t *d, span_t *s)
{
    uint16_t n;
    TRY(rd_u16(d, &n));
    if (left(d) < n) return truncated(d);
    *s = (span_t){(const char *)d->b + d->i, n};
    d->i += n;
    return 0;
}

static int rd_str(dec_t *d, span_t *s)
{
    TRY(rd_bin(d, s));
    if (!mqtt_utf8_valid(s->p, s->n)) return fail(d, MQTT_RC_MALFORMED, "string is not valid UTF-8 or contains U+0000");
    return 0;
}

static int need_pid(dec_t *d, uint16_t *pid)
{
    TRY(rd_u16(d, pid));
    if (*pid == 0) return fail(d, MQTT_RC_PROTOCOL_ERROR, "packet identifier 0");
    return 0;
}

static int at_end(dec_t *d)
{
    return left(d) ? fail(d, MQTT_RC_MALFORMED, "bytes left over at the end of the packet") : 0;
}

/* Checks a single-byte property that must be 0 or 1. */
static bool is_bool_prop(uint8_t id)
{
    return id == MQTT_PROP_PAYLOAD_FORMAT || id == MQTT_PROP_REQUEST_PROBLEM_INFO ||
           id == MQTT_PROP_REQUEST_RESPONSE_INFO || id == MQTT_PROP_MAX_QOS || id == MQTT_PROP_RETAIN_AVAILABLE ||
           id == MQTT_PROP_WILDCARD_SUB_AVAILABLE || id == MQTT_PROP_SUB_ID_AVAILABLE ||
           id == MQTT_PROP_SHARED_SUB_AVAILABLE;
}

/* Reads a property block (length prefix and properties) for packet type ptype (0: a will). */
static int rd_props(dec_t *d, unsigned ptype, mqtt_props_t *pr)
{
    memset(pr, 0, sizeof *pr);
    uint32_t len;
    TRY(rd_vbi(d, &len));
    if (len > left(d)) return fail(d, MQTT_RC_MALFORMED, "property length exceeds the packet");
    dec_t sub = *d;
    sub.n = d->i + len;
    pr->raw = (span_t){(const char *)d->b + d->i, len};
    d->i += len;

    uint64_t seen = 0;
    while (left(&sub)) {
        uint8_t id;
        TRY(rd_u8(&sub, &id));
        uint8_t t = prop_type(id);
        if (t == T_NONE) return fail(d, MQTT_RC_MALFORMED, "unknown property identifier");
        if (!(PROPS[id].where & PK(ptype))) return fail(d, MQTT_RC_MALFORMED, "property not allowed in this packet");
        bool repeats = id == MQTT_PROP_USER || (id == MQTT_PROP_SUBSCRIPTION_ID && ptype == MQTT_PUBLISH);
        if ((seen & MQTT_PROP_BIT(id)) && !repeats) return fail(d, MQTT_RC_PROTOCOL_ERROR, "duplicate property");
        if (id == MQTT_PROP_SUBSCRIPTION_ID && ptype == MQTT_PUBLISH && d->role == MQTT_ROLE_SERVER)
            return fail(d, MQTT_RC_PROTOCOL_ERROR, "subscription identifier in a PUBLISH from a client");
        char *field = (char *)pr + PROPS[id].off;
        uint32_t v = 0;
        span_t s;
        switch (t) {
        case T_BYTE: {
            uint8_t b;
            TRY(rd_u8(&sub, &b));
            if (is_bool_prop(id) && b > 1) return fail(d, MQTT_RC_PROTOCOL_ERROR, "property value must be 0 or 1");
            *(uint8_t *)field = b;
            break;
        }
        case T_U16: {
            uint16_t w;
            TRY(rd_u16(&sub, &w));
            if (w == 0 && id == MQTT_PROP_RECEIVE_MAX) return fail(d, MQTT_RC_PROTOCOL_ERROR, "receive maximum 0");
            if (w == 0 && id == MQTT_PROP_TOPIC_ALIAS) return fail(d, MQTT_RC_TOPIC_ALIAS_INVALID, "topic alias 0");
            *(uint16_t *)field = w;
            break;
        }
        case T_U32:
            TRY(rd_u32(&sub, &v));
            if (v == 0 && id == MQTT_PROP_MAX_PACKET_SIZE)
                return fail(d, MQTT_RC_PROTOCOL_ERROR, "maximum packet size 0");
            *(uint32_t *)field = v;
            break;
        case T_VBI: /* only the Subscription Identifier */
            TRY(rd_vbi(&sub, &v));
            if (v == 0) return fail(d, MQTT_RC_PROTOCOL_ERROR, "subscription identifier 0");
            if (pr->sub_id_count++ == 0) pr->sub_id = v;
            break;
        case T_STR:
            TRY(rd_str(&sub, &s));
            if (id == MQTT_PROP_RESPONSE_TOPIC && !topic_syntax(s))
                return fail(d, MQTT_RC_PROTOCOL_ERROR, "response topic is not a valid topic name");
            *(span_t *)field = s;
            break;
        case T_BIN:
            TRY(rd_bin(&sub, &s));
            *(span_t *)field = s;
            break;
        case T_PAIR:
            TRY(rd_str(&sub, &s));
            TRY(rd_str(&sub, &s));
            pr->user_count++;
            break;
        }
        seen |= MQTT_PROP_BIT(id);
    }
    pr->present = seen;
    return 0;
}

static bool has(const mqtt_props_t *pr, uint8_t id) { return pr->present & MQTT_PROP_BIT(id); }

static int dec_connect(dec_t *d, mqtt_pkt_t *p)
{
    span_t name;
    TRY(rd_bin(d, &name));
    if (!span_eq(name, "MQTT")) return fail(d, MQTT_RC_UNSUPPORTED_VERSION, "protocol name is not MQTT");
    uint8_t level;
    TRY(rd_u8(d, &level));
    if (level != MQTT_V311 && level != MQTT_V5) return fail(d, MQTT_RC_UNSUPPORTED_VERSION, "unsupported protocol level");
    d->version = p->version = level;
    p->connect.protocol_name = name;

    uint8_t fl;
    TRY(rd_u8(d, &fl));
    if (fl & 0x01) return fail(d, MQTT_RC_MALFORMED, "CONNECT reserved flag set");
    p->connect.clean_start = fl & 0x02;
    p->connect.will = fl & 0x04;
    p->connect.will_qos = (fl >> 3) & 3;
    p->connect.will_retain = fl & 0x20;
    p->connect.has_password = fl & 0x40;
    p->connect.has_username = fl & 0x80;
    if (p->connect.will_qos == 3) return fail(d, MQTT_RC_MALFORMED, "will QoS 3");
    if (!p->connect.will && (p->connect.will_qos || p->connect.will_retain))
        return fail(d, MQTT_RC_MALFORMED, "will QoS or will retain set without a will");
    if (level == MQTT_V311 && p->connect.has_password && !p->connect.has_username)
        return fail(d, MQTT_RC_MALFORMED, "password flag without user name flag");
    TRY(rd_u16(d, &p->connect.keep_alive));
    if (level == MQTT_V5) {
        TRY(rd_props(d, MQTT_CONNECT, &p->props));
        if (has(&p->props, MQTT_PROP_AUTH_DATA) && !has(&p->props, MQTT_PROP_AUTH_METHOD))
            return fail(d, MQTT_RC_PROTOCOL_ERROR, "authentication data without authentication method");
    }
    TRY(rd_str(d, &p->connect.client_id));
    if (level == MQTT_V311 && p->connect.client_id.n == 0 && !p->connect.clean_start)
        return fail(d, MQTT_RC_CLIENT_ID_INVALID, "empty client identifier without clean session");
    if (p->connect.will) {
        if (level == MQTT_V5) TRY(rd_props(d, 0, &p->connect.will_props));
        TRY(rd_str(d, &p->connect.will_topic));
        if (!topic_syntax(p->connect.will_topic))
            return fail(d, MQTT_RC_TOPIC_NAME_INVALID, "will topic is not a valid topic name");
        TRY(rd_bin(d, &p->connect.will_payload));
        if (p->connect.will_props.payload_format == 1 &&
            !utf8_ok((const uint8_t *)p->connect.will_payload.p, p->connect.will_payload.n, true))
            return fail(d, MQTT_RC_PAYLOAD_FORMAT_INVALID, "will payload is not UTF-8 as its format indicator says");
    }
    if (p->connect.has_username) TRY(rd_str(d, &p->connect.username));
    if (p->connect.has_password) TRY(rd_bin(d, &p->connect.password));
    return at_end(d);
}

static int dec_publish(dec_t *d, mqtt_pkt_t *p, uint8_t flags)
{
    p->publish.dup = flags & 8;
    p->publish.qos = (flags >> 1) & 3;
    p->publish.retain = flags & 1;
    TRY(rd_str(d, &p->publish.topic));
    if (p->publish.qos) TRY(need_pid(d, &p->packet_id));
    if (d->version == MQTT_V5) TRY(rd_props(d, MQTT_PUBLISH, &p->props));
    span_t t = p->publish.topic;
    if (t.n == 0) {
        if (d->version == MQTT_V311) return fail(d, MQTT_RC_MALFORMED, "empty topic name");
        if (!has(&p->props, MQTT_PROP_TOPIC_ALIAS))
            return fail(d, MQTT_RC_PROTOCOL_ERROR, "empty topic name without a topic alias");
    } else if (!topic_syntax(t)) {
        return fail(d, MQTT_RC_TOPIC_NAME_INVALID, "wildcard in a PUBLISH topic name");
    }
    p->publish.payload = (span_t){(const char *)d->b + d->i, left(d)};
    d->i = d->n;
    if (p->props.payload_format == 1 && !utf8_ok((const uint8_t *)p->publish.payload.p, p->publish.payload.n, true))
        return fail(d, MQTT_RC_PAYLOAD_FORMAT_INVALID, "payload is not UTF-8 as its format indicator says");
    return 0;
}

/* The tail shared by v5 PUBACK..PUBCOMP, DISCONNECT and AUTH: optional reason, optional props. */
static int rd_reason_props(dec_t *d, mqtt_pkt_t *p, const uint8_t *set, size_t set_n)
{
    if (left(d) == 0) return 0;
    TRY(rd_u8(d, &p->reason));
    if (!memchr(set, p->reason, set_n)) return fail(d, MQTT_RC_PROTOCOL_ERROR, "reason code not valid for this packet");
    if (left(d) == 0) return 0;
    TRY(rd_props(d, p->type, &p->props));
    return at_end(d);
}

static int dec_ack(dec_t *d, mqtt_pkt_t *p)
{
    TRY(need_pid(d, &p->packet_id));
    if (d->version == MQTT_V311) return at_end(d);
    bool rel = p->type == MQTT_PUBREL || p->type == MQTT_PUBCOMP;
    return rel ? rd_reason_props(d, p, RC_PUBREL, sizeof RC_PUBREL) : rd_reason_props(d, p, RC_PUBACK, sizeof RC_PUBACK);
}

static int dec_sub_unsub(dec_t *d, mqtt_pkt_t *p)
{
    bool sub = p->type == MQTT_SUBSCRIBE;
    TRY(need_pid(d, &p->packet_id));
    if (d->version == MQTT_V5) TRY(rd_props(d, p->type, &p->props));
    p->list = (span_t){(const char *)d->b + d->i, left(d)};
    while (left(d)) {
        span_t f;
        TRY(rd_str(d, &f));
        if (!filter_syntax(f)) return fail(d, MQTT_RC_MALFORMED, "invalid topic filter");
        if (sub) {
            uint8_t o;
            TRY(rd_u8(d, &o));
            if (o & (d->version == MQTT_V5 ? 0xC0 : 0xFC))
                return fail(d, MQTT_RC_MALFORMED, "reserved subscription option bits set");
            if (MQTT_SUB_QOS(o) == 3) return fail(d, MQTT_RC_MALFORMED, "subscription QoS 3");
            if (MQTT_SUB_RETAIN_HANDLING(o) == 3) return fail(d, MQTT_RC_PROTOCOL_ERROR, "retain handling 3");
            span_t g, rest;
            if ((o & MQTT_SUB_NO_LOCAL) && mqtt_filter_share(f, &g, &rest))
                return fail(d, MQTT_RC_PROTOCOL_ERROR, "no local on a shared subscription");
        }
        p->count++;
    }
    if (p->count == 0)
        return fail(d, MQTT_RC_PROTOCOL_ERROR, sub ? "SUBSCRIBE without a subscription" : "UNSUBSCRIBE without a filter");
    return 0;
}

static int dec_suback_unsuback(dec_t *d, mqtt_pkt_t *p)
{
    TRY(need_pid(d, &p->packet_id));
    if (p->type == MQTT_UNSUBACK && d->version == MQTT_V311) return at_end(d);
    if (d->version == MQTT_V5) TRY(rd_props(d, p->type, &p->props));
    p->list = (span_t){(const char *)d->b + d->i, left(d)};
    p->count = (uint32_t)left(d);
    if (p->count == 0) return fail(d, MQTT_RC_PROTOCOL_ERROR, "acknowledgement without reason codes");
    for (size_t i = 0; i < p->list.n; i++) {
        uint8_t c = (uint8_t)p->list.p[i];
        bool ok = p->type == MQTT_UNSUBACK ? IN_SET(c, RC_UNSUBACK)
                  : d->version == MQTT_V5  ? IN_SET(c, RC_SUBACK5)
                                           : IN_SET(c, RC_SUBACK3);
        if (!ok) return fail(d, MQTT_RC_PROTOCOL_ERROR, "reason code not valid for this packet");
    }
    d->i = d->n;
    return 0;
}

static int dec_connack(dec_t *d, mqtt_pkt_t *p)
{
    uint8_t fl;
    TRY(rd_u8(d, &fl));
    if (fl & 0xFE) return fail(d, MQTT_RC_MALFORMED, "CONNACK reserved flags set");
    p->connack.session_present = fl & 1;
    TRY(rd_u8(d, &p->reason));
    if (d->version == MQTT_V311) {
        if (p->reason > 5) return fail(d, MQTT_RC_PROTOCOL_ERROR, "CONNACK return code over 5");
    } else {
        if (!IN_SET(p->reason, RC_CONNACK)) return fail(d, MQTT_RC_PROTOCOL_ERROR, "reason code not valid for CONNACK");
        TRY(rd_props(d, MQTT_CONNACK, &p->props));
    }
    if (p->connack.session_present && p->reason)
        return fail(d, MQTT_RC_PROTOCOL_ERROR, "session present with a refusal");
    return at_end(d);
}

/* Byte 0 rules: type by version and role, then flags. */
static int check_byte0(uint8_t b0, const mqtt_opts_t *o, mqtt_err_t *e)
{
    uint8_t type = b0 >> 4, fl = b0 & 15, v = type == MQTT_CONNECT ? 0 : o->version;
    if (type == 0) return fail_e(e, v, MQTT_RC_MALFORMED, "reserved packet type 0");
    if (type == MQTT_AUTH && o->version == MQTT_V311) return fail_e(e, v, MQTT_RC_MALFORMED, "AUTH in MQTT 3.1.1");
    bool from_server = type == MQTT_CONNACK || type == MQTT_SUBACK || type == MQTT_UNSUBACK || type == MQTT_PINGRESP;
    bool from_client = type == MQTT_CONNECT || type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE || type == MQTT_PINGREQ;
    if (o->role == MQTT_ROLE_SERVER) {
        if (from_server) return fail_e(e, v, MQTT_RC_PROTOCOL_ERROR, "packet type only sent by servers");
        if (o->version == 0 && type != MQTT_CONNECT)
            return fail_e(e, v, MQTT_RC_PROTOCOL_ERROR, "first packet is not CONNECT");
        if (o->version != 0 && type == MQTT_CONNECT) return fail_e(e, o->version, MQTT_RC_PROTOCOL_ERROR, "second CONNECT");
    } else {
        if (from_client) return fail_e(e, v, MQTT_RC_PROTOCOL_ERROR, "packet type only sent by clients");
        if (o->version != MQTT_V311 && o->version != MQTT_V5)
            return fail_e(e, v, MQTT_RC_PROTOCOL_ERROR, "client side needs the protocol version");
    }
    if (type == MQTT_PUBLISH) {
        uint8_t qos = (fl >> 1) & 3;
        if (qos == 3) return fail_e(e, v, MQTT_RC_MALFORMED, "PUBLISH QoS 3");
        if ((fl & 8) && qos == 0) return fail_e(e, v, MQTT_RC_MALFORMED, "DUP set on a QoS 0 PUBLISH");
    } else if (type == MQTT_PUBREL || type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE) {
        if (fl != 2) return fail_e(e, v, MQTT_RC_MALFORMED, "fixed header flags must be 0010");
    } else if (fl != 0) {
        return fail_e(e, v, MQTT_RC_MALFORMED, "reserved fixed header flags set");
    }
    return 0;
}

ssize_t mqtt_frame(const void *buf, size_t len, const mqtt_opts_t *opts, mqtt_frame_t *f, mqtt_err_t *err)
{
    const uint8_t *b = buf;
    if (len < 1) return HR_EAGAIN;
    TRY(check_byte0(b[0], opts, err));
    uint8_t v = (b[0] >> 4) == MQTT_CONNECT ? 0 : opts->version;
    uint32_t rem;
    size_t used;
    int r = vbi_read(b + 1, len - 1, &rem, &used);
    if (r == 0) return HR_EAGAIN;
    if (r < 0) return fail_e(err, v, MQTT_RC_MALFORMED, "remaining length not minimally encoded or over 4 bytes");
    uint64_t total = 1 + used + (uint64_t)rem;
    if (opts->max_packet && total > opts->max_packet)
        return fail_e(err, v, MQTT_RC_PACKET_TOO_LARGE, "packet larger than the maximum packet size");
    f->type = b[0] >> 4;
    f->flags = b[0] & 15;
    f->header_len = (uint8_t)(1 + used);
    f->remaining = rem;
    f->total = (uint32_t)total;
    return f->header_len;
}

ssize_t mqtt_decode(const void *buf, size_t len, const mqtt_opts_t *opts, mqtt_pkt_t *p, mqtt_err_t *err)
{
    mqtt_frame_t f;
    ssize_t hl = mqtt_frame(buf, len, opts, &f, err);
    if (hl < 0) return hl;
    if (len < f.total) return HR_EAGAIN;

    memset(p, 0, sizeof *p);
    p->type = f.type;
    p->version = opts->version;
    dec_t d = {(const uint8_t *)buf + hl, f.remaining, 0, opts->version, opts->role, err};
    if (f.type == MQTT_CONNECT) d.version = 0;
    int rc = 0;
    switch (f.type) {
    case MQTT_CONNECT: rc = dec_connect(&d, p); break;
    case MQTT_CONNACK: rc = dec_connack(&d, p); break;
    case MQTT_PUBLISH: rc = dec_publish(&d, p, f.flags); break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: rc = dec_ack(&d, p); break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE: rc = dec_sub_unsub(&d, p); break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK: rc = dec_suback_unsuback(&d, p); break;
    case MQTT_PINGREQ:
    case MQTT_PINGRESP: rc = at_end(&d); break;
    case MQTT_DISCONNECT:
        if (d.version == MQTT_V311) {
            rc = at_end(&d);
            break;
        }
        rc = rd_reason_props(&d, p, RC_DISCONNECT, sizeof RC_DISCONNECT);
        if (rc == 0 && d.role == MQTT_ROLE_CLIENT && has(&p->props, MQTT_PROP_SESSION_EXPIRY))
            rc = fail(&d, MQTT_RC_PROTOCOL_ERROR, "session expiry in a DISCONNECT from the server");
        break;
    case MQTT_AUTH: rc = rd_reason_props(&d, p, RC_AUTH, sizeof RC_AUTH); break;
    }
    if (rc < 0) return rc;
    return (ssize_t)f.total;
}

/* ---- iterators ---- */

static bool take(span_t b, size_t *off, size_t n, const uint8_t **out)
{
    if (b.n - *off < n) return false;
    *out = (const uint8_t *)b.p + *off;
    *off += n;
    return true;
}

static bool take_bin(span_t b, size_t *off, span_t *s)
{
    const uint8_t *h, *body;
    if (!take(b, off, 2, &h)) return false;
    size_t n = (size_t)h[0] << 8 | h[1];
    if (!take(b, off, n, &body)) return false;
    *s = (span_t){(const char *)body, n};
    return true;
}

bool mqtt_prop_next(span_t block, size_t *off, mqtt_prop_t *out)
{
    const uint8_t *h;
    if (*off >= block.n || !take(block, off, 1, &h)) return false;
    memset(out, 0, sizeof *out);
    out->id = h[0];
    switch (prop_type(out->id)) {
    case T_BYTE:
        if (!take(block, off, 1, &h)) return false;
        out->value = h[0];
        return true;
    case T_U16:
        if (!take(block, off, 2, &h)) return false;
        out->value = (uint32_t)h[0] << 8 | h[1];
        return true;
    case T_U32:
        if (!take(block, off, 4, &h)) return false;
        out->value = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
        return true;
    case T_VBI: {
        size_t used;
        if (vbi_read((const uint8_t *)block.p + *off, block.n - *off, &out->value, &used) != 1) return false;
        *off += used;
        return true;
    }
    case T_STR:
    case T_BIN: return take_bin(block, off, &out->s);
    case T_PAIR: return take_bin(block, off, &out->s) && take_bin(block, off, &out->s2);
    default: return false;
    }
}

bool mqtt_list_next(const mqtt_pkt_t *p, size_t *off, span_t *filter, uint8_t *opts)
{
    if (p->type != MQTT_SUBSCRIBE && p->type != MQTT_UNSUBSCRIBE) return false;
    if (*off >= p->list.n || !take_bin(p->list, off, filter)) return false;
    *opts = 0;
    if (p->type == MQTT_SUBSCRIBE) {
        const uint8_t *o;
        if (!take(p->list, off, 1, &o)) return false;
        *opts = o[0];
    }
    return true;
}

/* ---- encoding ---- */

typedef struct {
    uint8_t *p;
    size_t cap, n;
    bool bad;
} wr_t;

static void w_u8(wr_t *w, uint8_t v)
{
    if (w->n < w->cap) w->p[w->n] = v;
    w->n++;
}

static void w_mem(wr_t *w, const void *s, size_t n)
{
    if (n && w->n < w->cap) memcpy(w->p + w->n, s, n <= w->cap - w->n ? n : w->cap - w->n);
    w->n += n;
}

static void w_u16(wr_t *w, uint16_t v)
{
    w_u8(w, (uint8_t)(v >> 8));
    w_u8(w, (uint8_t)v);
}

static void w_u32(wr_t *w, uint32_t v)
{
    w_u16(w, (uint16_t)(v >> 16));
    w_u16(w, (uint16_t)v);
}

static void w_vbi(wr_t *w, uint32_t v)
{
    if (v > MQTT_MAX_REMAINING) w->bad = true;
    do {
        uint8_t c = v & 0x7F;
        v >>= 7;
        w_u8(w, v ? (uint8_t)(c | 0x80) : c);
    } while (v);
}

static size_t vbi_len(uint32_t v) { return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4; }

static void w_bin(wr_t *w, span_t s)
{
    if (s.n > 65535) w->bad = true;
    w_u16(w, (uint16_t)s.n);
    w_mem(w, s.p, s.n);
}

static const wr_t COUNTER = {NULL, 0, 0, false};

/* Writes the properties of pr allowed for packet type ptype (0: a will), without the length. */
static void w_props_body(wr_t *w, const mqtt_props_t *pr, unsigned ptype)
{
    for (uint8_t id = 1; id < sizeof PROPS / sizeof PROPS[0]; id++) {
        uint8_t t = PROPS[id].type;
        if (t == T_NONE || id == MQTT_PROP_USER || id == MQTT_PROP_SUBSCRIPTION_ID || !has(pr, id)) continue;
        if (!(PROPS[id].where & PK(ptype))) {
            w->bad = true;
            continue;
        }
        const char *field = (const char *)pr + PROPS[id].off;
        w_u8(w, id);
        switch (t) {
        case T_BYTE: w_u8(w, *(const uint8_t *)field); break;
        case T_U16: w_u16(w, *(const uint16_t *)field); break;
        case T_U32: w_u32(w, *(const uint32_t *)field); break;
        case T_STR:
        case T_BIN: w_bin(w, *(const span_t *)field); break;
        }
    }
    bool sub_ids = PROPS[MQTT_PROP_SUBSCRIPTION_ID].where & PK(ptype);
    size_t off = 0;
    mqtt_prop_t pp;
    while (mqtt_prop_next(pr->raw, &off, &pp)) {
        if (pp.id == MQTT_PROP_USER) {
            w_u8(w, pp.id);
            w_bin(w, pp.s);
            w_bin(w, pp.s2);
        } else if (pp.id == MQTT_PROP_SUBSCRIPTION_ID && sub_ids) {
            w_u8(w, pp.id);
            w_vbi(w, pp.value);
        }
    }
    for (uint32_t i = 0; i < pr->enc_sub_id_count; i++) {
        if (!sub_ids || pr->enc_sub_ids[i] == 0) w->bad = true;
        w_u8(w, MQTT_PROP_SUBSCRIPTION_ID);
        w_vbi(w, pr->enc_sub_ids[i]);
    }
}

static size_t props_size(const mqtt_props_t *pr, unsigned ptype, bool *bad)
{
    wr_t c = COUNTER;
    w_props_body(&c, pr, ptype);
    if (c.bad) *bad = true;
    return c.n;
}

static void w_props(wr_t *w, const mqtt_props_t *pr, unsigned ptype)
{
    size_t n = props_size(pr, ptype, &w->bad);
    if (n > MQTT_MAX_REMAINING) {
        w->bad = true;
        return;
    }
    w_vbi(w, (uint32_t)n);
    w_props_body(w, pr, ptype);
}

/* v5 tail: reason and properties, in the shortest form. */
static void w_reason_props(wr_t *w, const mqtt_pkt_t *p)
{
    bool bad = false;
    size_t n = props_size(&p->props, p->type, &bad);
    if (n == 0 && p->reason == 0 && !bad) return;
    w_u8(w, p->reason);
    if (n || bad) w_props(w, &p->props, p->type);
}

static void w_body(wr_t *w, const mqtt_pkt_t *p)
{
    bool v5 = p->version == MQTT_V5;
    switch (p->type) {
    case MQTT_CONNECT: {
        const __typeof__(p->connect) *c = &p->connect;
        w_bin(w, SPAN_LIT("MQTT"));
        w_u8(w, p->version);
        if (c->will_qos > 2) w->bad = true;
        w_u8(w, (uint8_t)(c->has_username << 7 | c->has_password << 6 | c->will_retain << 5 | (c->will_qos & 3) << 3 |
                          c->will << 2 | c->clean_start << 1));
        w_u16(w, c->keep_alive);
        if (v5) w_props(w, &p->props, MQTT_CONNECT);
        w_bin(w, c->client_id);
        if (c->will) {
            if (v5) w_props(w, &c->will_props, 0);
            w_bin(w, c->will_topic);
            w_bin(w, c->will_payload);
        }
        if (c->has_username) w_bin(w, c->username);
        if (c->has_password) w_bin(w, c->password);
        break;
    }
    case MQTT_CONNACK:
        w_u8(w, p->connack.session_present);
        w_u8(w, p->reason);
        if (v5) w_props(w, &p->props, MQTT_CONNACK);
        break;
    case MQTT_PUBLISH:
        w_bin(w, p->publish.topic);
        if (p->publish.qos) w_u16(w, p->packet_id);
        if (v5) w_props(w, &p->props, MQTT_PUBLISH);
        w_mem(w, p->publish.payload.p, p->publish.payload.n);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        w_u16(w, p->packet_id);
        if (v5) w_reason_props(w, p);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        w_u16(w, p->packet_id);
        if (v5) w_props(w, &p->props, p->type);
        if (v5 || p->type != MQTT_UNSUBACK) w_mem(w, p->list.p, p->list.n);
        break;
    case MQTT_PINGREQ:
    case MQTT_PINGRESP: break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        if (v5) w_reason_props(w, p);
        break;
    }
}

ssize_t mqtt_encode(const mqtt_pkt_t *p, uint8_t *out, size_t cap)
{
    if (p->version != MQTT_V311 && p->version != MQTT_V5) return HR_EINVAL;
    if (p->type < MQTT_CONNECT || p->type > MQTT_AUTH || (p->type == MQTT_AUTH && p->version != MQTT_V5))
        return HR_EINVAL;
    if (p->type == MQTT_PUBLISH && p->publish.qos > 2) return HR_EINVAL;
    wr_t c = COUNTER;
    w_body(&c, p);
    if (c.bad || c.n > MQTT_MAX_REMAINING) return HR_EINVAL;
    uint8_t b0 = (uint8_t)(p->type << 4);
    if (p->type == MQTT_PUBLISH)
        b0 |= (uint8_t)(p->publish.dup << 3 | p->publish.qos << 1 | p->publish.retain);
    else if (p->type == MQTT_PUBREL || p->type == MQTT_SUBSCRIBE || p->type == MQTT_UNSUBSCRIBE)
        b0 |= 2;
    wr_t w = {out, out ? cap : 0, 0, false};
    w_u8(&w, b0);
    w_vbi(&w, (uint32_t)c.n);
    w_body(&w, p);
    return (ssize_t)w.n;
}

bytes_t *mqtt_encode_new(const mqtt_pkt_t *p)
{
    ssize_t n = mqtt_encode(p, NULL, 0);
    if (n < 0) return NULL;
    bytes_t *b = bytes_new((size_t)n);
    if (!b) return NULL;
    mqtt_encode(p, (uint8_t *)b->data, (size_t)n);
    return b;
}

size_t mqtt_list_put(uint8_t *out, size_t cap, size_t off, span_t filter, int opts)
{
    wr_t w = {out, cap, off, false};
    w_bin(&w, filter);
    if (opts >= 0) w_u8(&w, (uint8_t)opts);
    return w.n;
}

size_t mqtt_prop_user_put(uint8_t *out, size_t cap, size_t off, span_t name, span_t value)
{
    wr_t w = {out, cap, off, false};
    w_u8(&w, MQTT_PROP_USER);
    w_bin(&w, name);
    w_bin(&w, value);
    return w.n;
}

bytes_t *mqtt_publish_body_new(uint8_t version, const mqtt_props_t *props, span_t payload, uint32_t *props_len)
{
    bool bad = false;
    size_t pl = version == MQTT_V5 ? props_size(props, MQTT_PUBLISH, &bad) : 0;
    if (bad || pl > MQTT_MAX_REMAINING || payload.n > MQTT_MAX_REMAINING) return NULL;
    bytes_t *b = bytes_new(pl + payload.n);
    if (!b) return NULL;
    wr_t w = {(uint8_t *)b->data, pl + payload.n, 0, false};
    if (version == MQTT_V5) w_props_body(&w, props, MQTT_PUBLISH);
    w_mem(&w, payload.p, payload.n);
    *props_len = (uint32_t)pl;
    return b;
}

ssize_t mqtt_publish_head_write(uint8_t *out, size_t cap, uint8_t version, bool dup, uint8_t qos, bool retain,
                                span_t topic, uint16_t packet_id, uint16_t topic_alias, uint32_t message_expiry,
                                const uint32_t *sub_ids,
                                size_t n_sub_ids, uint32_t props_len, size_t body_len)
{
    bool v5 = version == MQTT_V5;
    if ((!v5 && version != MQTT_V311) || qos > 2 || (dup && qos == 0) || topic.n > 65535) return HR_EINVAL;
    if (!v5 && (props_len || topic_alias || message_expiry || n_sub_ids)) return HR_EINVAL;
    size_t extra = (topic_alias ? 3 : 0) + (message_expiry ? 5 : 0);
    for (size_t i = 0; i < n_sub_ids; i++) {
        if (sub_ids[i] == 0 || sub_ids[i] > MQTT_MAX_REMAINING) return HR_EINVAL;
        extra += 1 + vbi_len(sub_ids[i]);
    }
    uint64_t plen = (uint64_t)props_len + extra;
    if (plen > MQTT_MAX_REMAINING || props_len > body_len) return HR_EINVAL;
    uint64_t rem = 2 + topic.n + (qos ? 2 : 0) + (v5 ? vbi_len((uint32_t)plen) + extra : 0) + (uint64_t)body_len;
    if (rem > MQTT_MAX_REMAINING) return HR_EINVAL;
    wr_t w = {out, out ? cap : 0, 0, false};
    w_u8(&w, (uint8_t)(MQTT_PUBLISH << 4 | dup << 3 | qos << 1 | retain));
    w_vbi(&w, (uint32_t)rem);
    w_bin(&w, topic);
    if (qos) w_u16(&w, packet_id);
    if (v5) {
        w_vbi(&w, (uint32_t)plen);
        if (message_expiry) {
            w_u8(&w, MQTT_PROP_MESSAGE_EXPIRY);
            w_u32(&w, message_expiry);
        }
        if (topic_alias) {
            w_u8(&w, MQTT_PROP_TOPIC_ALIAS);
            w_u16(&w, topic_alias);
        }
        for (size_t i = 0; i < n_sub_ids; i++) {
            w_u8(&w, MQTT_PROP_SUBSCRIPTION_ID);
            w_vbi(&w, sub_ids[i]);
        }
    }
    return (ssize_t)w.n;
}

int mqtt_publish_set_id(uint8_t *pkt, size_t n, uint16_t packet_id, bool dup)
{
    if (n < 2 || (pkt[0] >> 4) != MQTT_PUBLISH || ((pkt[0] >> 1) & 3) == 0 || ((pkt[0] >> 1) & 3) == 3)
        return HR_EINVAL;
    uint32_t rem;
    size_t used;
    if (vbi_read(pkt + 1, n - 1, &rem, &used) != 1 || 1 + used + (uint64_t)rem != n) return HR_EINVAL;
    size_t at = 1 + used;
    if (rem < 4) return HR_EINVAL;
    size_t tl = (size_t)pkt[at] << 8 | pkt[at + 1];
    if (2 + tl + 2 > rem) return HR_EINVAL;
    at += 2 + tl;
    pkt[at] = (uint8_t)(packet_id >> 8);
    pkt[at + 1] = (uint8_t)packet_id;
    pkt[0] = (uint8_t)(dup ? pkt[0] | 8 : pkt[0] & ~8);
    return 0;
}
