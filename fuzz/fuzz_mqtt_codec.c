/* fuzz_mqtt_codec.c - libFuzzer target for the pure MQTT codec (src/transport/mqtt_codec.h).
 *
 * Input: byte 0 picks the side (server reading client packets, or client reading server
 * packets), the protocol version (unknown before CONNECT, 3.1.1 or 5) and a small or no maximum
 * packet size; byte 1 picks a split point; the rest is a stream of packets. Every decode reads an
 * exact-size heap copy, so ASan catches a read past the end. For each packet:
 *   - the result is in range, a refusal has a known reason code and a text;
 *   - a prefix of the remaining input gives HR_EAGAIN or exactly the same result;
 *   - an accepted packet re-encodes (mqtt_encode() never refuses what mqtt_decode() accepted),
 *     the encoding decodes to the same fields, and encoding that again gives the same bytes;
 *   - a PUBLISH split into mqtt_publish_body_new() + mqtt_publish_head_write() equals the whole
 *     encoding, and mqtt_publish_set_id() changes only the packet id and DUP;
 *   - the list and property iterators visit exactly count entries / the property block.
 * The data is also checked with mqtt_topic_valid() / mqtt_filter_valid() for consistency. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/err.h"
#include "../src/transport/mqtt_codec.h"
#include "../tests/unit/mqtt_same.h"

static uint8_t *dup_exact(const void *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    if (!c) abort();
    if (n) memcpy(c, p, n);
    return c;
}


static bool reason_known(uint8_t r)
{
    return r == 0x81 || r == 0x82 || r == 0x84 || r == 0x85 || r == 0x90 || r == 0x94 || r == 0x95 || r == 0x99;
}

typedef struct {
    ssize_t rc;
    uint8_t reason;
} outcome_t;

static outcome_t decode_copy(const uint8_t *d, size_t n, const mqtt_opts_t *o)
{
    uint8_t *c = dup_exact(d, n);
    mqtt_pkt_t p;
    mqtt_err_t e = {0, 0, NULL};
    outcome_t r = {mqtt_decode(c, n, o, &p, &e), 0};
    if (r.rc == HR_EPROTO) r.reason = e.reason;
    free(c);
    return r;
}

static void check_props_block(const mqtt_props_t *pr)
{
    size_t off = 0, users = 0, subs = 0;
    mqtt_prop_t pp;
    while (mqtt_prop_next(pr->raw, &off, &pp)) {
        assert(pr->present & MQTT_PROP_BIT(pp.id));
        users += pp.id == MQTT_PROP_USER;
        subs += pp.id == MQTT_PROP_SUBSCRIPTION_ID;
    }
    assert(off == pr->raw.n && users == pr->user_count && subs == pr->sub_id_count);
}

static void check_publish_split(const mqtt_pkt_t *p, const uint8_t *whole, size_t wn)
{
    uint32_t plen = 0;
    bytes_t *body = mqtt_publish_body_new(p->version, &p->props, p->publish.payload, &plen);
    if (!body) abort();
    uint8_t head[MQTT_PUBLISH_HEAD_MAX(65535, 0)];
    ssize_t hn = mqtt_publish_head_write(head, sizeof head, p->version, p->publish.dup, p->publish.qos,
                                         p->publish.retain, p->publish.topic, p->packet_id, 0, 0, NULL, 0, plen,
                                         body->len);
    assert(hn > 0 && (size_t)hn + body->len == wn);
    assert(memcmp(head, whole, (size_t)hn) == 0 && memcmp(body->data, whole + hn, body->len) == 0);
    bytes_unref(body);

    if (p->publish.qos) {
        uint8_t *c = dup_exact(whole, wn);
        uint16_t pid = (uint16_t)(p->packet_id * 7 + 1);
        if (pid == 0) pid = 1;
        assert(mqtt_publish_set_id(c, wn, pid, !p->publish.dup) == 0);
        mqtt_opts_t o = {MQTT_ROLE_CLIENT, p->version, 0};
        mqtt_pkt_t q;
        mqtt_err_t e;
        assert(mqtt_decode(c, wn, &o, &q, &e) == (ssize_t)wn);
        assert(q.packet_id == pid && q.publish.dup == !p->publish.dup);
        free(c);
    }
}

/* Re-encodes an accepted packet and decodes it again. */
static void roundtrip(const mqtt_pkt_t *p, uint8_t role)
{
    ssize_t n = mqtt_encode(p, NULL, 0);
    assert(n > 0);
    uint8_t *out = malloc((size_t)n);
    if (!out) abort();
    assert(mqtt_encode(p, out, (size_t)n) == n);
    mqtt_opts_t o = {role, p->type == MQTT_CONNECT ? 0 : p->version, 0};
    mqtt_pkt_t q;
    mqtt_err_t e = {0, 0, NULL};
    ssize_t rc = mqtt_decode(out, (size_t)n, &o, &q, &e);
    assert(rc == n);
    assert(pkt_same(p, &q));
    /* Canonical: encoding the re-decoded packet gives the same bytes. */
    uint8_t *again = malloc((size_t)n);
    if (!again) abort();
    assert(mqtt_encode(&q, again, (size_t)n) == n && memcmp(again, out, (size_t)n) == 0);
    free(again);
    bytes_t *b = mqtt_encode_new(p);
    assert(b && b->len == (size_t)n && memcmp(b->data, out, (size_t)n) == 0);
    bytes_unref(b);
    if (p->type == MQTT_PUBLISH) check_publish_split(&q, out, (size_t)n);
    free(out);
}

static void check_packet(const mqtt_pkt_t *p, const uint8_t *in, size_t n, const mqtt_opts_t *o)
{
    assert(p->type == in[0] >> 4);
    assert(p->version == MQTT_V311 || p->version == MQTT_V5);
    check_props_block(&p->props);
    if (p->type == MQTT_CONNECT) {
        check_props_block(&p->connect.will_props);
        assert(span_eq(p->connect.protocol_name, "MQTT"));
        assert(mqtt_utf8_valid(p->connect.client_id.p, p->connect.client_id.n));
        if (p->connect.will) assert(mqtt_topic_valid(p->connect.will_topic));
    }
    if (p->type == MQTT_PUBLISH) {
        assert(p->publish.qos <= 2 && (p->publish.qos > 0) == (p->packet_id != 0));
        assert(p->publish.topic.n == 0 ? p->props.topic_alias != 0 : mqtt_topic_valid(p->publish.topic));
        assert((const uint8_t *)p->publish.payload.p + p->publish.payload.n == in + n);
    }
    if (p->type == MQTT_SUBSCRIBE || p->type == MQTT_UNSUBSCRIBE) {
        size_t off = 0;
        uint32_t k = 0;
        span_t f;
        uint8_t opts;
        while (mqtt_list_next(p, &off, &f, &opts)) {
            assert(mqtt_filter_valid(f));
            assert(MQTT_SUB_QOS(opts) < 3);
            k++;
        }
        assert(off == p->list.n && k == p->count && k > 0);
    }
    if (p->type == MQTT_SUBSCRIBE || p->type == MQTT_UNSUBSCRIBE || p->type == MQTT_SUBACK ||
        (p->type >= MQTT_PUBACK && p->type <= MQTT_PUBCOMP) || (p->type == MQTT_PUBLISH && p->publish.qos))
        assert(p->packet_id != 0);
    roundtrip(p, o->role);
}

static void fuzz_stream(const uint8_t *d, size_t n, mqtt_opts_t o, unsigned seed)
{
    size_t off = 0;
    uint8_t *buf = dup_exact(d, n);
    while (off < n) {
        size_t rem = n - off;
        uint8_t *c = dup_exact(d + off, rem);
        mqtt_pkt_t p;
        mqtt_err_t e = {0, 0, NULL};
        ssize_t rc = mqtt_decode(c, rem, &o, &p, &e);
        assert(rc == HR_EAGAIN || rc == HR_EPROTO || (rc > 0 && (size_t)rc <= rem));
        assert(memcmp(c, d + off, rem) == 0);
        if (rc == HR_EPROTO) assert(e.why && *e.why && reason_known(e.reason));

        outcome_t whole = {rc, rc == HR_EPROTO ? e.reason : 0};
        size_t k = seed % (rem + 1);
        outcome_t part = decode_copy(d + off, k, &o);
        assert(part.rc == HR_EAGAIN || (part.rc == whole.rc && part.reason == whole.reason));
        if (rc > 0) assert((k < (size_t)rc) == (part.rc == HR_EAGAIN));
        for (size_t j = 0; j < rem && j < 8; j++) {
            outcome_t q = decode_copy(d + off, j, &o);
            assert(q.rc == HR_EAGAIN || (q.rc == whole.rc && q.reason == whole.reason));
        }
        if (rc <= 0) {
            free(c);
            break;
        }
        /* With the exact-size copy of just this packet, too. */
        uint8_t *one = dup_exact(d + off, (size_t)rc);
        mqtt_pkt_t p1;
        assert(mqtt_decode(one, (size_t)rc, &o, &p1, &e) == rc);
        check_packet(&p1, one, (size_t)rc, &o);
        free(one);
        if (p.type == MQTT_CONNECT) o.version = p.version; /* what the session does */
        free(c);
        off += (size_t)rc;
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n < 2) return 0;
    uint8_t ctl = d[0];
    unsigned seed = d[1];
    d += 2;
    n -= 2;
    static const uint8_t versions[] = {0, MQTT_V311, MQTT_V5, MQTT_V5};
    mqtt_opts_t o = {ctl & 1 ? MQTT_ROLE_CLIENT : MQTT_ROLE_SERVER, versions[(ctl >> 1) & 3], (ctl & 8) ? 64 : 0};
    if (o.role == MQTT_ROLE_CLIENT && o.version == 0) o.version = MQTT_V311;
    fuzz_stream(d, n, o, seed);

    /* The same bytes on the other side and versions, to reach more decoders per input. */
    mqtt_opts_t o2 = {MQTT_ROLE_SERVER, 0, 0};
    fuzz_stream(d, n, o2, seed);
    o2 = (mqtt_opts_t){MQTT_ROLE_CLIENT, (ctl & 16) ? MQTT_V311 : MQTT_V5, 0};
    fuzz_stream(d, n, o2, seed);

    /* Topic and filter syntax: a valid topic is a valid filter unless it looks shared. */
    span_t s = {(const char *)d, n < 70000 ? n : 70000};
    uint8_t *c = dup_exact(d, s.n);
    s.p = (const char *)c;
    bool t = mqtt_topic_valid(s), f = mqtt_filter_valid(s);
    if (t && !(s.n >= 7 && memcmp(s.p, "$share/", 7) == 0)) assert(f);
    if (t || f) assert(mqtt_utf8_valid(s.p, s.n) && s.n >= 1);
    span_t g, rest;
    if (f && mqtt_filter_share(s, &g, &rest)) assert(g.n > 0 && rest.n > 0);
    free(c);
    return 0;
}
