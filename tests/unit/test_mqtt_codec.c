/* test_mqtt_codec.c - unit tests for the pure MQTT codec (src/transport/mqtt_codec.h).
 *
 * Every decode reads a guard-page copy (the bytes end at a PROT_NONE page). Accepted packets are
 * also decoded at every prefix length (each must give HR_EAGAIN with *p and *err untouched), with
 * a trailing byte after them (not consumed), and are re-encoded with mqtt_encode() and decoded
 * again to the same fields. Refused packets are decoded at every prefix: HR_EAGAIN or the same
 * refusal, never something else. */
#include <string.h>

#include "../../src/core/err.h"
#include "../../src/transport/mqtt_codec.h"
#include "mqtt_same.h"
#include "unit.h"

#define B(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

static const mqtt_opts_t SRV0 = {MQTT_ROLE_SERVER, 0, 0}; /* before CONNECT */
static const mqtt_opts_t SRV4 = {MQTT_ROLE_SERVER, MQTT_V311, 0};
static const mqtt_opts_t SRV5 = {MQTT_ROLE_SERVER, MQTT_V5, 0};
static const mqtt_opts_t CLI4 = {MQTT_ROLE_CLIENT, MQTT_V311, 0};
static const mqtt_opts_t CLI5 = {MQTT_ROLE_CLIENT, MQTT_V5, 0};


/* Decodes an accepted packet in[0..n) with every check described at the top. Returns the packet
 * (its spans valid until gp_release()). */
static mqtt_pkt_t ok_pkt(const mqtt_opts_t *o, const uint8_t *in, size_t n)
{
    mqtt_pkt_t p, sentinel;
    mqtt_err_t e = {0, 0, NULL};
    for (size_t k = 0; k < n; k++) {
        memset(&p, 0xA5, sizeof p);
        memcpy(&sentinel, &p, sizeof p);
        mqtt_err_t e2 = {0x42, 0x42, NULL};
        void *map;
        size_t maplen;
        CHECK_EQ(mqtt_decode(guard_page_copy(in, k, &map, &maplen), k, o, &p, &e2), HR_EAGAIN);
        guard_page_free(map, maplen);
        CHECK(memcmp(&p, &sentinel, sizeof p) == 0);
        CHECK(e2.reason == 0x42 && e2.why == NULL);
    }
    uint8_t more[4096];
    CHECK(n < sizeof more);
    memcpy(more, in, n);
    more[n] = 0xE0;
    CHECK_EQ(mqtt_decode(gp(more, n + 1), n + 1, o, &p, &e), (ssize_t)n);
    ssize_t rc = mqtt_decode(gp(in, n), n, o, &p, &e);
    CHECK_EQ(rc, (ssize_t)n);
    if (rc != (ssize_t)n) {
        printf("#   rc %zd: 0x%02x %s\n", rc, e.reason, rc == HR_EPROTO && e.why ? e.why : "");
        memset(&p, 0, sizeof p);
        return p;
    }

    /* Round trip through the encoder. */
    ssize_t en = mqtt_encode(&p, NULL, 0);
    CHECK(en > 0 && (size_t)en < sizeof more);
    if (en > 0 && (size_t)en < sizeof more) {
        CHECK_EQ(mqtt_encode(&p, more, sizeof more), en);
        mqtt_opts_t o2 = *o;
        if (p.type != MQTT_CONNECT) o2.version = p.version;
        mqtt_pkt_t q;
        CHECK_EQ(mqtt_decode(gp(more, (size_t)en), (size_t)en, &o2, &q, &e), en);
        CHECK(pkt_same(&p, &q));
    }
    return p;
}

/* A refused packet: the whole gives HR_EPROTO with reason; every prefix HR_EAGAIN or the same. */
static void bad_pkt(const mqtt_opts_t *o, const uint8_t *in, size_t n, uint8_t reason)
{
    for (size_t k = 0; k <= n; k++) {
        mqtt_pkt_t p;
        mqtt_err_t e = {0, 0, NULL};
        void *map;
        size_t maplen;
        ssize_t rc = mqtt_decode(guard_page_copy(in, k, &map, &maplen), k, o, &p, &e);
        guard_page_free(map, maplen);
        if (k < n && rc == HR_EAGAIN) continue;
        CHECK_EQ(rc, HR_EPROTO);
        CHECK_EQ(e.reason, reason);
        CHECK(e.why && *e.why);
        if (k == n && (rc != HR_EPROTO || e.reason != reason))
            printf("#   got rc %zd reason 0x%02x (%s)\n", rc, e.reason, e.why ? e.why : "");
    }
    gp_release();
}

#define OK(o, ...) ok_pkt(o, B(__VA_ARGS__))
#define BAD(o, reason, ...) bad_pkt(o, B(__VA_ARGS__), reason)

/* Packets written as type byte + body: the remaining length is filled in. */
static uint8_t pk_buf[1024];
static size_t mk(uint8_t *out, const uint8_t *b, size_t n)
{
    size_t rem = n - 1, k = 1;
    out[0] = b[0];
    do {
        uint8_t c = rem & 0x7F;
        rem >>= 7;
        out[k++] = rem ? (uint8_t)(c | 0x80) : c;
    } while (rem);
    memcpy(out + k, b + 1, n - 1);
    return k + n - 1;
}
#define P(...) pk_buf, mk(pk_buf, B(__VA_ARGS__))
#define OKP(o, ...) ok_pkt(o, P(__VA_ARGS__))
#define BADP(o, reason, ...) bad_pkt(o, P(__VA_ARGS__), reason)

/* ---- framing ---- */

static ssize_t frame(const mqtt_opts_t *o, const uint8_t *in, size_t n, mqtt_frame_t *f, mqtt_err_t *e)
{
    return mqtt_frame(gp(in, n), n, o, f, e);
}

TEST(remaining_length)
{
    static const struct {
        uint8_t b[6];
        size_t n;
        uint32_t v;
    } cases[] = {
        {{0x30, 0x00}, 2, 0},
        {{0x30, 0x7F}, 2, 127},
        {{0x30, 0x80, 0x01}, 3, 128},
        {{0x30, 0xFF, 0x7F}, 3, 16383},
        {{0x30, 0x80, 0x80, 0x01}, 4, 16384},
        {{0x30, 0xFF, 0xFF, 0x7F}, 4, 2097151},
        {{0x30, 0x80, 0x80, 0x80, 0x01}, 5, 2097152},
        {{0x30, 0xFF, 0xFF, 0xFF, 0x7F}, 5, 268435455},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mqtt_frame_t f;
        mqtt_err_t e;
        for (size_t k = 0; k < cases[i].n; k++) CHECK_EQ(frame(&SRV4, cases[i].b, k, &f, &e), HR_EAGAIN);
        CHECK_EQ(frame(&SRV4, cases[i].b, cases[i].n, &f, &e), (ssize_t)cases[i].n);
        CHECK_EQ(f.remaining, cases[i].v);
        CHECK_EQ(f.total, cases[i].v + cases[i].n);
        CHECK_EQ(f.type, MQTT_PUBLISH);
        CHECK_EQ(f.header_len, cases[i].n);
    }
    /* A fifth length byte, and non-minimal encodings: Malformed. */
    BAD(&SRV4, 0x81, 0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01);
    BAD(&SRV4, 0x81, 0x30, 0x80, 0x00);
    BAD(&SRV4, 0x81, 0x30, 0x80, 0x80, 0x00);
    BAD(&SRV4, 0x81, 0xC0, 0x80, 0x00);
    gp_release();
}

TEST(packet_too_large)
{
    mqtt_opts_t o = SRV4;
    o.max_packet = 10;
    mqtt_frame_t f;
    mqtt_err_t e;
    /* Decided from the header alone: 2 + 9 > 10. */
    CHECK_EQ(frame(&o, B(0x30, 0x09), &f, &e), HR_EPROTO);
    CHECK_EQ(e.reason, MQTT_RC_PACKET_TOO_LARGE);
    CHECK_EQ(e.version, MQTT_V311);
    CHECK_EQ(frame(&o, B(0x30, 0x08), &f, &e), 2);
    CHECK_EQ(f.total, 10);
    o.max_packet = 201;
    CHECK_EQ(frame(&o, B(0x30, 0xC6, 0x01), &f, &e), 3); /* 3 + 198 = 201 */
    CHECK_EQ(frame(&o, B(0x30, 0xC7), &f, &e), HR_EAGAIN);
    BAD(&o, 0x95, 0x30, 0xC7, 0x01); /* 3 + 199 > 201 */
    CHECK_EQ(frame(&o, B(0x30, 0xC5, 0x01), &f, &e), 3);
    o.max_packet = 2;
    ok_pkt(&o, B(0xC0, 0x00));
    gp_release();
}

TEST(byte0_rules)
{
    BADP(&SRV4, 0x81, 0x00);             /* reserved type 0 */
    BADP(&SRV4, 0x81, 0xF0);             /* AUTH in 3.1.1 */
    BADP(&CLI4, 0x81, 0xF0);
    BADP(&SRV5, 0x82, 0x20, 0x00, 0x00); /* a server does not receive CONNACK */
    BADP(&SRV5, 0x82, 0x90, 0x00, 0x01, 0x00);
    BADP(&SRV5, 0x82, 0xB0, 0x00, 0x01);
    BADP(&SRV5, 0x82, 0xD0);
    BADP(&CLI5, 0x82, 0x10);             /* a client does not receive CONNECT, SUBSCRIBE, ... */
    BADP(&CLI5, 0x82, 0x82);
    BADP(&CLI5, 0x82, 0xA2);
    BADP(&CLI5, 0x82, 0xC0);
    BADP(&SRV0, 0x82, 0xC0);             /* first packet must be CONNECT */
    BADP(&SRV0, 0x82, 0x30, 0x00, 0x01, 'a');
    BADP(&SRV4, 0x82, 0x10);             /* second CONNECT */
    mqtt_opts_t nov = {MQTT_ROLE_CLIENT, 0, 0};
    BADP(&nov, 0x82, 0xD0);
    /* Fixed-header flags. */
    BADP(&SRV4, 0x81, 0x60, 0x00, 0x01); /* PUBREL must be 0010 */
    BADP(&SRV4, 0x81, 0x63, 0x00, 0x01);
    BADP(&SRV4, 0x81, 0x80, 0x00, 0x01, 0x00, 0x01, 'a', 0x00);
    BADP(&SRV4, 0x81, 0xA0, 0x00, 0x01, 0x00, 0x01, 'a');
    BADP(&SRV4, 0x81, 0xC1);
    BADP(&SRV4, 0x81, 0x42, 0x00, 0x01);
    BADP(&SRV4, 0x81, 0xE8);
    BADP(&SRV4, 0x81, 0x36, 0x00, 0x01, 'a', 0x00, 0x01); /* PUBLISH QoS 3 */
    BADP(&SRV4, 0x81, 0x38, 0x00, 0x01, 'a');             /* DUP with QoS 0 */
    BADP(&SRV0, 0x81, 0x11);
}

/* ---- CONNECT ---- */

TEST(connect_v311)
{
    /* Clean session, keepalive 60, client id "abc", user "user", password "pw". */
    mqtt_pkt_t p = OKP(&SRV0, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xC2, 0x00, 0x3C, 0x00, 0x03, 'a', 'b',
                      'c', 0x00, 0x04, 'u', 's', 'e', 'r', 0x00, 0x02, 'p', 'w');
    CHECK_EQ(p.type, MQTT_CONNECT);
    CHECK_EQ(p.version, MQTT_V311);
    CHECK(p.connect.clean_start && !p.connect.will && p.connect.has_username && p.connect.has_password);
    CHECK_EQ(p.connect.keep_alive, 60);
    CHECK_MEM(p.connect.protocol_name.p, p.connect.protocol_name.n, "MQTT");
    CHECK_MEM(p.connect.client_id.p, p.connect.client_id.n, "abc");
    CHECK_MEM(p.connect.username.p, p.connect.username.n, "user");
    CHECK_MEM(p.connect.password.p, p.connect.password.n, "pw");

    /* A will: QoS 1, retained, topic "w/t", payload "bye"; empty client id with clean session. */
    p = OKP(&SRV0, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x2E, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 'w',
           '/', 't', 0x00, 0x03, 'b', 'y', 'e');
    CHECK(p.connect.will && p.connect.will_retain && p.connect.will_qos == 1 && p.connect.clean_start);
    CHECK_EQ(p.connect.client_id.n, 0);
    CHECK_MEM(p.connect.will_topic.p, p.connect.will_topic.n, "w/t");
    CHECK_MEM(p.connect.will_payload.p, p.connect.will_payload.n, "bye");
    gp_release();
}

TEST(connect_v5)
{
    /* Properties: session expiry 120, receive max 10, user ("k","v"); will with delay 5 and
     * payload format 1; client id "c". */
    mqtt_pkt_t p = OKP(&SRV0, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x06, 0x00, 0x0A, 0x0F, 0x11, 0x00,
                      0x00, 0x00, 0x78, 0x21, 0x00, 0x0A, 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', 0x00, 0x01, 'c',
                      0x07, 0x18, 0x00, 0x00, 0x00, 0x05, 0x01, 0x01, 0x00, 0x01, 't', 0x00, 0x02, 'h', 'i');
    CHECK_EQ(p.version, MQTT_V5);
    CHECK(p.connect.clean_start && p.connect.will && p.connect.will_qos == 0);
    CHECK_EQ(p.connect.keep_alive, 10);
    CHECK(p.props.present == (MQTT_PROP_BIT(0x11) | MQTT_PROP_BIT(0x21) | MQTT_PROP_BIT(0x26)));
    CHECK_EQ(p.props.session_expiry, 120);
    CHECK_EQ(p.props.receive_max, 10);
    CHECK_EQ(p.props.user_count, 1);
    size_t off = 0;
    mqtt_prop_t pp;
    int users = 0;
    while (mqtt_prop_next(p.props.raw, &off, &pp)) {
        if (pp.id != MQTT_PROP_USER) continue;
        users++;
        CHECK_MEM(pp.s.p, pp.s.n, "k");
        CHECK_MEM(pp.s2.p, pp.s2.n, "v");
    }
    CHECK_EQ(users, 1);
    CHECK_EQ(p.connect.will_props.will_delay, 5);
    CHECK_EQ(p.connect.will_props.payload_format, 1);
    CHECK_MEM(p.connect.will_payload.p, p.connect.will_payload.n, "hi");

    /* v5: password without user name is allowed, and an empty client id without clean start. */
    p = OKP(&SRV0, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
           'p', 'w');
    CHECK(p.connect.has_password && !p.connect.has_username && !p.connect.clean_start);
    /* Authentication method and data. */
    p = OKP(&SRV0, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x0A, 0x15, 0x00, 0x02, 'm',
           'x', 0x16, 0x00, 0x02, 0x01, 0x02, 0x00, 0x00);
    CHECK_MEM(p.props.auth_method.p, p.props.auth_method.n, "mx");
    CHECK_EQ(p.props.auth_data.n, 2);
    gp_release();
}

TEST(connect_refusals)
{
    /* Protocol name and level: 0x84, version unknown. */
    BADP(&SRV0, 0x84, 0x10, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03, 0x02, 0x00, 0x3C, 0x00, 0x02, 'i',
        'd');
    BADP(&SRV0, 0x84, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02, 0x00, 0x3C, 0x00, 0x00);
    BADP(&SRV0, 0x84, 0x10, 0x00, 0x04, 'm', 'q', 't', 't', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00);
    mqtt_pkt_t p;
    mqtt_err_t e;
    CHECK_EQ(mqtt_decode(gp(B(0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x03, 0x02, 0x00, 0x3C, 0x00, 0x00)), 14,
                         &SRV0, &p, &e),
             HR_EPROTO);
    CHECK(e.reason == 0x84 && e.version == 0 && mqtt_v3_connack_code(e.reason) == 0x01);
    /* Flags. */
    BADP(&SRV0, 0x81, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x03, 0x00, 0x3C, 0x00, 0x00); /* reserved */
    BADP(&SRV0, 0x81, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x1E, 0x00, 0x3C, 0x00, 0x00); /* will QoS 3 */
    BADP(&SRV0, 0x81, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x0A, 0x00, 0x3C, 0x00, 0x00); /* QoS, no will */
    BADP(&SRV0, 0x81, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x22, 0x00, 0x3C, 0x00, 0x00); /* retain, no will */
    BADP(&SRV0, 0x81, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x42, 0x00, 0x3C, 0x00, 0x00, 0x00, 0x02, 'p',
        'w'); /* v3.1.1 password without user name */
    /* Client identifier. */
    CHECK_EQ(mqtt_decode(gp(B(0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x00, 0x00, 0x3C, 0x00, 0x00)), 14,
                         &SRV0, &p, &e),
             HR_EPROTO);
    CHECK(e.reason == 0x85 && e.version == 4 && mqtt_v3_connack_code(e.reason) == 0x02);
    BADP(&SRV0, 0x81, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x01, 0x00); /* U+0000 */
    BADP(&SRV0, 0x81, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x02, 0xC0, 0x80);
    BADP(&SRV0, 0x81, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x03, 0xED, 0xA0,
        0x80); /* a surrogate */
    /* Truncated fields and trailing bytes. */
    BADP(&SRV0, 0x81, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x02, 'a');
    BADP(&SRV0, 0x81, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C);
    BADP(&SRV0, 0x81, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x01, 'a', 'x');
    BADP(&SRV0, 0x81, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x82, 0x00, 0x3C, 0x00, 0x01, 'a', 0x00,
        0x05); /* user name runs past the end */
    /* Will topic and payload. */
    BADP(&SRV0, 0x90, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 'a',
        '/', '#', 0x00, 0x00);
    BADP(&SRV0, 0x90, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01, 'x');
    BADP(&SRV0, 0x99, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01,
        0x01, 0x00, 0x01, 't', 0x00, 0x01, 0xFF);
    /* v5 properties. */
    BADP(&SRV0, 0x82, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x04, 0x16, 0x00, 0x01, 0x01,
        0x00, 0x00); /* auth data without method */
    BADP(&SRV0, 0x81, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01, 0x00,
        0x00); /* topic alias is not a CONNECT property */
    BADP(&SRV0, 0x81, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x02, 0x18, 0x00, 0x00,
        0x00); /* will delay outside a will */
    BADP(&SRV0, 0x81, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x01, 0x7F, 0x00,
        0x00); /* unknown id */
    BADP(&SRV0, 0x82, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x0A, 0x11, 0x00, 0x00, 0x00,
        0x01, 0x11, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00); /* duplicate session expiry */
    BADP(&SRV0, 0x82, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x03, 0x21, 0x00, 0x00, 0x00,
        0x00); /* receive maximum 0 */
    BADP(&SRV0, 0x82, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x05, 0x27, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00); /* maximum packet size 0 */
    BADP(&SRV0, 0x82, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x02, 0x17, 0x02, 0x00,
        0x00); /* request problem information 2 */
    BADP(&SRV0, 0x82, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x02, 0x19, 0x02, 0x00, 0x00);
    BADP(&SRV0, 0x81, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x05, 0x11, 0x00, 0x00,
        0x00); /* property length past the end */
    BADP(&SRV0, 0x81, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x02, 0x11, 0x00, 0x00,
        0x00); /* a property cut by its block's end */
    BADP(&SRV0, 0x81, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x80, 0x00, 0x00,
        0x00); /* property length not minimal */
    BADP(&SRV0, 0x81, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x07, 0x26, 0x00, 0x01, 0x00,
        0x00, 0x01, 'v', 0x00, 0x00); /* U+0000 in a user property name */
    gp_release();
}

/* ---- PUBLISH ---- */

TEST(publish)
{
    mqtt_pkt_t p = OKP(&SRV4, 0x30, 0x00, 0x03, 'a', '/', 'b', 'h', 'i');
    CHECK(p.type == MQTT_PUBLISH && p.publish.qos == 0 && !p.publish.dup && !p.publish.retain && p.packet_id == 0);
    CHECK_MEM(p.publish.topic.p, p.publish.topic.n, "a/b");
    CHECK_MEM(p.publish.payload.p, p.publish.payload.n, "hi");
    p = OKP(&SRV4, 0x3B, 0x00, 0x01, 't', 0x12, 0x34, 'x');
    CHECK(p.publish.qos == 1 && p.publish.dup && p.publish.retain && p.packet_id == 0x1234);
    p = OKP(&SRV4, 0x34, 0x00, 0x01, 't', 0x00, 0x01);
    CHECK(p.publish.qos == 2 && p.publish.payload.n == 0);
    /* v5 with properties: payload format 1, expiry 3600, content type "a", response topic "r",
     * correlation data, user property, topic alias 2. */
    p = OKP(&SRV5, 0x32, 0x00, 0x01, 't', 0x00, 0x07, 0x1B, 0x01, 0x01, 0x02, 0x00, 0x00, 0x0E, 0x10, 0x03, 0x00,
           0x01, 'a', 0x08, 0x00, 0x01, 'r', 0x09, 0x00, 0x01, 0x00, 0x26, 0x00, 0x00, 0x00, 0x00, 0x23, 0x00, 0x02,
           'h', 0xC3, 0xA9);
    CHECK(p.publish.qos == 1 && p.packet_id == 7);
    CHECK(p.props.payload_format == 1 && p.props.message_expiry == 3600 && p.props.topic_alias == 2);
    CHECK_MEM(p.props.content_type.p, p.props.content_type.n, "a");
    CHECK_MEM(p.props.response_topic.p, p.props.response_topic.n, "r");
    CHECK_EQ(p.props.correlation_data.n, 1);
    CHECK_EQ(p.props.user_count, 1);
    CHECK_EQ(p.publish.payload.n, 3);
    /* v5: empty topic with a topic alias. */
    p = OKP(&SRV5, 0x30, 0x00, 0x00, 0x03, 0x23, 0x00, 0x05);
    CHECK_EQ(p.props.topic_alias, 5);
    /* A client receives several subscription identifiers. */
    p = OKP(&CLI5, 0x30, 0x00, 0x01, 't', 0x05, 0x0B, 0x01, 0x0B, 0xFF, 0x7F, 'p', 'a', 'y');
    CHECK(p.props.sub_id == 1 && p.props.sub_id_count == 2);
    gp_release();
}

TEST(publish_refusals)
{
    BADP(&SRV4, 0x82, 0x32, 0x00, 0x01, 't', 0x00, 0x00);    /* packet id 0 */
    BADP(&SRV4, 0x90, 0x30, 0x00, 0x03, 'a', '/', '+');      /* wildcard */
    BADP(&SRV4, 0x90, 0x30, 0x00, 0x01, '#');
    BADP(&SRV4, 0x81, 0x30, 0x00, 0x00, 'x');                /* empty topic in 3.1.1 */
    BADP(&SRV5, 0x82, 0x30, 0x00, 0x00, 0x00);               /* empty, no alias */
    BADP(&SRV4, 0x81, 0x30, 0x00, 0x02, 'a');                /* topic past the end */
    BADP(&SRV4, 0x81, 0x32, 0x00, 0x01, 't', 0x00);          /* packet id past the end */
    BADP(&SRV4, 0x81, 0x30, 0x00, 0x02, 0xFF, 0xFE);         /* topic not UTF-8 */
    BADP(&SRV5, 0x81, 0x30, 0x00, 0x01, 't', 0x05);          /* properties past the end */
    BADP(&SRV5, 0x94, 0x30, 0x00, 0x01, 't', 0x03, 0x23, 0x00, 0x00);
    BADP(&SRV5, 0x82, 0x30, 0x00, 0x01, 't', 0x02, 0x0B, 0x01); /* subscription id from a client */
    BADP(&CLI5, 0x82, 0x30, 0x00, 0x01, 't', 0x02, 0x0B, 0x00); /* subscription id 0 */
    BADP(&SRV5, 0x99, 0x30, 0x00, 0x01, 't', 0x02, 0x01, 0x01, 0xC0);
    BADP(&SRV5, 0x82, 0x30, 0x00, 0x01, 't', 0x02, 0x01, 0x02); /* payload format 2 */
    BADP(&SRV5, 0x82, 0x30, 0x00, 0x01, 't', 0x05, 0x08, 0x00, 0x02, 'a', '#');
    BADP(&SRV5, 0x82, 0x30, 0x00, 0x01, 't', 0x0A, 0x02, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x02);
    BADP(&SRV5, 0x81, 0x30, 0x00, 0x01, 't', 0x03, 0x11, 0x00, 0x00); /* session expiry in PUBLISH */
    BADP(&SRV5, 0x81, 0x30, 0x00, 0x01, 't', 0x03, 0x18, 0x00, 0x00); /* will delay in PUBLISH */
    /* Payload format 1 accepts U+0000 in the payload (it is UTF-8 data, not an MQTT string). */
    mqtt_pkt_t p = OKP(&SRV5, 0x30, 0x00, 0x01, 't', 0x02, 0x01, 0x01, 0x00);
    CHECK_EQ(p.publish.payload.n, 1);
    gp_release();
}

/* ---- acknowledgements ---- */

TEST(acks)
{
    static const uint8_t types[] = {0x40, 0x50, 0x62, 0x70};
    for (size_t i = 0; i < 4; i++) {
        uint8_t b0 = types[i];
        mqtt_pkt_t p = ok_pkt(&SRV4, B(b0, 0x02, 0x00, 0x09));
        CHECK(p.type == (b0 >> 4) && p.packet_id == 9 && p.reason == 0);
        p = ok_pkt(&CLI5, B(b0, 0x02, 0xFF, 0xFF));
        CHECK(p.packet_id == 0xFFFF && p.reason == 0);
        bad_pkt(&SRV4, B(b0, 0x03, 0x00, 0x01, 0x00), 0x81);
        bad_pkt(&SRV4, B(b0, 0x02, 0x00, 0x00), 0x82);
        bad_pkt(&SRV5, B(b0, 0x01, 0x00), 0x81);
        bad_pkt(&SRV5, B(b0, 0x05, 0x00, 0x01, 0x00, 0x02, 0x1F), 0x81);
        bad_pkt(&SRV5, B(b0, 0x07, 0x00, 0x01, 0x00, 0x02, 0x1F, 0x00, 0x00), 0x81); /* trailing byte */
        bad_pkt(&SRV5, B(b0, 0x03, 0x00, 0x01, 0x81), 0x82);                        /* not an ack code */
        bad_pkt(&SRV5, B(b0, 0x07, 0x00, 0x01, 0x00, 0x03, 0x23, 0x00, 0x01), 0x81); /* property not allowed */
    }
    mqtt_pkt_t p = OKP(&SRV5, 0x40, 0x00, 0x01, 0x10);
    CHECK_EQ(p.reason, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
    p = OKP(&SRV5, 0x50, 0x00, 0x01, 0x97, 0x0C, 0x1F, 0x00, 0x03, 'f', 'u', 'l', 0x26, 0x00, 0x00, 0x00, 0x01,
           'x');
    CHECK_EQ(p.reason, MQTT_RC_QUOTA_EXCEEDED);
    CHECK_MEM(p.props.reason_string.p, p.props.reason_string.n, "ful");
    p = OKP(&SRV5, 0x62, 0x00, 0x01, 0x92, 0x00);
    CHECK_EQ(p.reason, MQTT_RC_PACKET_ID_NOT_FOUND);
    p = OKP(&CLI5, 0x70, 0x00, 0x01, 0x92);
    BADP(&SRV5, 0x82, 0x62, 0x00, 0x01, 0x10); /* 0x10 is not a PUBREL code */
    BADP(&SRV5, 0x82, 0x70, 0x00, 0x01, 0x80);
    BADP(&SRV5, 0x82, 0x40, 0x00, 0x01, 0x92); /* 0x92 is not a PUBACK code */
    gp_release();
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ---- */

TEST(subscribe)
{
    mqtt_pkt_t p = OKP(&SRV4, 0x82, 0x00, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x01, 0x00, 0x03, 'c', '/', '#', 0x02);
    CHECK(p.type == MQTT_SUBSCRIBE && p.packet_id == 10 && p.count == 2);
    size_t off = 0;
    span_t f;
    uint8_t o;
    CHECK(mqtt_list_next(&p, &off, &f, &o));
    CHECK_MEM(f.p, f.n, "a/b");
    CHECK_EQ(o, 1);
    CHECK(mqtt_list_next(&p, &off, &f, &o));
    CHECK_MEM(f.p, f.n, "c/#");
    CHECK_EQ(o, 2);
    CHECK(!mqtt_list_next(&p, &off, &f, &o));

    /* v5: subscription identifier 300, options: QoS 1, no local, retain as published, retain
     * handling 2; a shared subscription. */
    p = OKP(&SRV5, 0x82, 0x00, 0x01, 0x03, 0x0B, 0xAC, 0x02, 0x00, 0x01, '+', 0x2D, 0x00, 0x0B, '$', 's', 'h',
           'a', 'r', 'e', '/', 'g', '/', 'x', '/', 0x00);
    CHECK(p.props.sub_id == 300 && p.count == 2);
    off = 0;
    CHECK(mqtt_list_next(&p, &off, &f, &o));
    CHECK(MQTT_SUB_QOS(o) == 1 && (o & MQTT_SUB_NO_LOCAL) && (o & MQTT_SUB_RETAIN_AS_PUBLISHED) &&
          MQTT_SUB_RETAIN_HANDLING(o) == 2);
    CHECK(mqtt_list_next(&p, &off, &f, &o));
    CHECK_MEM(f.p, f.n, "$share/g/x/");

    BADP(&SRV4, 0x82, 0x82, 0x00, 0x01);                            /* no subscription */
    BADP(&SRV5, 0x82, 0x82, 0x00, 0x01, 0x00);
    BADP(&SRV4, 0x82, 0x82, 0x00, 0x00, 0x00, 0x01, 'a', 0x00);     /* packet id 0 */
    BADP(&SRV4, 0x81, 0x82, 0x00, 0x01, 0x00, 0x02, 'a', '#', 0x00); /* bad filter */
    BADP(&SRV4, 0x81, 0x82, 0x00, 0x01, 0x00, 0x00, 0x00);           /* empty filter */
    BADP(&SRV4, 0x81, 0x82, 0x00, 0x01, 0x00, 0x01, 'a', 0x04);     /* reserved bits in 3.1.1 */
    BADP(&SRV4, 0x81, 0x82, 0x00, 0x01, 0x00, 0x01, 'a', 0x03);     /* QoS 3 */
    BADP(&SRV4, 0x81, 0x82, 0x00, 0x01, 0x00, 0x01, 'a');           /* options byte missing */
    BADP(&SRV5, 0x81, 0x82, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x40); /* reserved bits in 5 */
    BADP(&SRV5, 0x82, 0x82, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x30); /* retain handling 3 */
    BADP(&SRV5, 0x82, 0x82, 0x00, 0x01, 0x00, 0x00, 0x0A, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'a',
        0x04); /* no local on a shared subscription */
    BADP(&SRV5, 0x81, 0x82, 0x00, 0x01, 0x00, 0x00, 0x07, '$', 's', 'h', 'a', 'r', 'e', '/', 0x00);
    BADP(&SRV5, 0x82, 0x82, 0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, 'a', 0x00); /* subscription id 0 */
    BADP(&SRV5, 0x82, 0x82, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, 'a', 0x00); /* twice */
    BADP(&SRV5, 0x81, 0x82, 0x00, 0x01, 0x03, 0x0B, 0x80, 0x00, 0x00, 0x01, 'a', 0x00); /* not minimal */
    BADP(&SRV5, 0x81, 0x82, 0x00, 0x01, 0x02, 0x1F, 0x00, 0x00, 0x01, 'a', 0x00); /* reason string */
    gp_release();
}

TEST(unsubscribe)
{
    mqtt_pkt_t p = OKP(&SRV4, 0xA2, 0x00, 0x02, 0x00, 0x01, '#', 0x00, 0x03, '+', '/', '+');
    CHECK(p.type == MQTT_UNSUBSCRIBE && p.packet_id == 2 && p.count == 2);
    size_t off = 0;
    span_t f;
    uint8_t o = 9;
    CHECK(mqtt_list_next(&p, &off, &f, &o));
    CHECK(o == 0 && f.n == 1 && f.p[0] == '#');
    CHECK(mqtt_list_next(&p, &off, &f, &o));
    CHECK_MEM(f.p, f.n, "+/+");
    CHECK(!mqtt_list_next(&p, &off, &f, &o));
    p = OKP(&SRV5, 0xA2, 0x00, 0x02, 0x06, 0x26, 0x00, 0x01, 'k', 0x00, 0x00, 0x00, 0x01, 'a');
    CHECK_EQ(p.props.user_count, 1);
    BADP(&SRV4, 0x82, 0xA2, 0x00, 0x01);
    BADP(&SRV4, 0x82, 0xA2, 0x00, 0x00, 0x00, 0x01, 'a');
    BADP(&SRV4, 0x81, 0xA2, 0x00, 0x01, 0x00, 0x02, 'a', '+');
    BADP(&SRV5, 0x81, 0xA2, 0x00, 0x01, 0x02, 0x0B, 0x01, 0x00, 0x01, 'a'); /* sub id in UNSUBSCRIBE */
    gp_release();
}

/* ---- PINGREQ, DISCONNECT, AUTH ---- */

TEST(ping_disconnect_auth)
{
    mqtt_pkt_t p = OKP(&SRV4, 0xC0);
    CHECK_EQ(p.type, MQTT_PINGREQ);
    BADP(&SRV4, 0x81, 0xC0, 0x00);
    p = OKP(&CLI4, 0xD0);
    CHECK_EQ(p.type, MQTT_PINGRESP);
    BADP(&CLI5, 0x81, 0xD0, 0x00);

    p = OKP(&SRV4, 0xE0);
    CHECK(p.type == MQTT_DISCONNECT && p.reason == 0);
    BADP(&SRV4, 0x81, 0xE0, 0x00);
    p = OKP(&SRV5, 0xE0);
    p = OKP(&SRV5, 0xE0, 0x04);
    CHECK_EQ(p.reason, MQTT_RC_DISCONNECT_WITH_WILL);
    p = OKP(&SRV5, 0xE0, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x0A);
    CHECK_EQ(p.props.session_expiry, 10);
    p = OKP(&CLI5, 0xE0, 0x9C, 0x06, 0x1C, 0x00, 0x03, 'h', ':', '1');
    CHECK_EQ(p.reason, MQTT_RC_USE_ANOTHER_SERVER);
    CHECK_MEM(p.props.server_reference.p, p.props.server_reference.n, "h:1");
    BADP(&SRV5, 0x82, 0xE0, 0x01);  /* not a DISCONNECT reason */
    BADP(&CLI5, 0x82, 0xE0, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x0A); /* session expiry from a server */
    BADP(&SRV5, 0x81, 0xE0, 0x00, 0x03, 0x23, 0x00, 0x01);

    p = OKP(&SRV5, 0xF0);
    CHECK(p.type == MQTT_AUTH && p.reason == 0);
    p = OKP(&SRV5, 0xF0, 0x18, 0x08, 0x15, 0x00, 0x01, 'm', 0x16, 0x00, 0x01, 0x07);
    CHECK_EQ(p.reason, MQTT_RC_CONTINUE_AUTH);
    CHECK_MEM(p.props.auth_method.p, p.props.auth_method.n, "m");
    p = OKP(&CLI5, 0xF0, 0x19, 0x00);
    BADP(&SRV5, 0x82, 0xF0, 0x87);
    BADP(&SRV5, 0x81, 0xF0, 0x18, 0x02, 0x17, 0x01); /* request problem info is CONNECT-only */
    gp_release();
}

/* ---- server packets ---- */

TEST(server_packets)
{
    mqtt_pkt_t p = OKP(&CLI4, 0x20, 0x01, 0x00);
    CHECK(p.type == MQTT_CONNACK && p.connack.session_present && p.reason == 0);
    p = OKP(&CLI4, 0x20, 0x00, 0x05);
    CHECK_EQ(p.reason, 5);
    BADP(&CLI4, 0x82, 0x20, 0x00, 0x06);
    BADP(&CLI4, 0x82, 0x20, 0x01, 0x02);
    BADP(&CLI4, 0x81, 0x20, 0x02, 0x00);
    BADP(&CLI4, 0x81, 0x20, 0x00, 0x00, 0x00);
    BADP(&CLI4, 0x81, 0x20, 0x00);

    p = OKP(&CLI5, 0x20, 0x00, 0x00, 0x14, 0x12, 0x00, 0x02, 'i', 'd', 0x21, 0x00, 0x14, 0x22, 0x00, 0x05, 0x25,
           0x00, 0x2A, 0x01, 0x24, 0x01, 0x13, 0x00, 0x1E);
    CHECK_MEM(p.props.assigned_client_id.p, p.props.assigned_client_id.n, "id");
    CHECK(p.props.receive_max == 20 && p.props.topic_alias_max == 5 && p.props.retain_available == 0 &&
          p.props.shared_sub_available == 1 && p.props.max_qos == 1 && p.props.server_keep_alive == 30);
    p = OKP(&CLI5, 0x20, 0x00, 0x84, 0x00);
    CHECK_EQ(p.reason, MQTT_RC_UNSUPPORTED_VERSION);
    BADP(&CLI5, 0x81, 0x20, 0x00, 0x00); /* v5 CONNACK needs its property length */
    BADP(&CLI5, 0x82, 0x20, 0x00, 0x04, 0x00);
    BADP(&CLI5, 0x82, 0x20, 0x00, 0x00, 0x02, 0x24, 0x02); /* maximum QoS 2 */
    BADP(&CLI5, 0x82, 0x20, 0x00, 0x00, 0x02, 0x28, 0x05);
    BADP(&CLI5, 0x81, 0x20, 0x00, 0x00, 0x02, 0x17, 0x01);

    p = OKP(&CLI4, 0x90, 0x00, 0x01, 0x00, 0x02, 0x80);
    CHECK(p.type == MQTT_SUBACK && p.packet_id == 1 && p.count == 3);
    CHECK(p.list.n == 3 && (uint8_t)p.list.p[2] == 0x80);
    BADP(&CLI4, 0x82, 0x90, 0x00, 0x01, 0x03);
    BADP(&CLI4, 0x82, 0x90, 0x00, 0x01, 0x8F); /* a v5-only code */
    BADP(&CLI4, 0x82, 0x90, 0x00, 0x01);
    p = OKP(&CLI5, 0x90, 0x00, 0x01, 0x00, 0x8F, 0xA2);
    CHECK_EQ(p.count, 2);
    BADP(&CLI5, 0x82, 0x90, 0x00, 0x01, 0x00, 0x04);

    p = OKP(&CLI4, 0xB0, 0x00, 0x07);
    CHECK(p.type == MQTT_UNSUBACK && p.packet_id == 7 && p.count == 0);
    BADP(&CLI4, 0x81, 0xB0, 0x00, 0x07, 0x00);
    p = OKP(&CLI5, 0xB0, 0x00, 0x07, 0x00, 0x00, 0x11);
    CHECK(p.count == 2 && p.list.p[1] == 0x11);
    BADP(&CLI5, 0x82, 0xB0, 0x00, 0x07, 0x00, 0x01);
    BADP(&CLI5, 0x82, 0xB0, 0x00, 0x07, 0x00);
    gp_release();
}

/* ---- validation ---- */

TEST(utf8_topic_filter)
{
    CHECK(mqtt_utf8_valid("", 0));
    CHECK(mqtt_utf8_valid("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 10));
    CHECK(mqtt_utf8_valid("\x01\x7F\xEF\xBF\xBF", 5)); /* controls and non-characters pass */
    CHECK(!mqtt_utf8_valid("a\0b", 3));
    CHECK(!mqtt_utf8_valid("\xC0\x80", 2));
    CHECK(!mqtt_utf8_valid("\xE0\x80\xAF", 3));
    CHECK(!mqtt_utf8_valid("\xED\xA0\x80", 3));
    CHECK(!mqtt_utf8_valid("\xF4\x90\x80\x80", 4));
    CHECK(!mqtt_utf8_valid("\xF5\x80\x80\x80", 4));
    CHECK(!mqtt_utf8_valid("\xC3", 1));
    CHECK(!mqtt_utf8_valid("\x80", 1));
    CHECK(!mqtt_utf8_valid("\xE2\x82", 2));

    CHECK(mqtt_topic_valid(SPAN_LIT("a")));
    CHECK(mqtt_topic_valid(SPAN_LIT("/")));
    CHECK(mqtt_topic_valid(SPAN_LIT("a//b/")));
    CHECK(mqtt_topic_valid(SPAN_LIT("$SYS/x")));
    CHECK(!mqtt_topic_valid(SPAN_LIT("")));
    CHECK(!mqtt_topic_valid(SPAN_LIT("a/+")));
    CHECK(!mqtt_topic_valid(SPAN_LIT("a#")));
    CHECK(!mqtt_topic_valid((span_t){"a\0", 2}));

    static const char *const good[] = {"#", "+", "a/#", "+/+", "/+", "a/+/b", "+/#", "a//b", "/", "$share/g/a/#",
                                       "$share/g/+", "$share/g//", "$sharex/a", "$share", "sport/tennis/player1/#",
                                       NULL};
    static const char *const bad[] = {"", "a#", "#/a", "a/#/b", "a+", "+a/b", "a/b+", "##", "$share/", "$share/g",
                                      "$share//a", "$share/g+/a", "$share/#/a", "$share/g/", "$share/g/a#", NULL};
    for (size_t i = 0; good[i]; i++) {
        if (!mqtt_filter_valid(span_of(good[i]))) printf("#   good filter refused: %s\n", good[i]);
        CHECK(mqtt_filter_valid(span_of(good[i])));
    }
    for (size_t i = 0; bad[i]; i++) {
        if (mqtt_filter_valid(span_of(bad[i]))) printf("#   bad filter accepted: %s\n", bad[i]);
        CHECK(!mqtt_filter_valid(span_of(bad[i])));
    }
    CHECK(!mqtt_filter_valid((span_t){"a/\xFF", 3}));
    span_t g, f;
    CHECK(mqtt_filter_share(SPAN_LIT("$share/grp/a/b"), &g, &f));
    CHECK_MEM(g.p, g.n, "grp");
    CHECK_MEM(f.p, f.n, "a/b");
    CHECK(!mqtt_filter_share(SPAN_LIT("a/b"), &g, &f));

    CHECK_EQ(mqtt_v3_connack_code(0x84), 1);
    CHECK_EQ(mqtt_v3_connack_code(0x85), 2);
    CHECK_EQ(mqtt_v3_connack_code(0x88), 3);
    CHECK_EQ(mqtt_v3_connack_code(0x86), 4);
    CHECK_EQ(mqtt_v3_connack_code(0x87), 5);
    CHECK_EQ(mqtt_v3_connack_code(0x81), 0xFF);
    CHECK_EQ(mqtt_v3_connack_code(0x95), 0xFF);
}

/* ---- encoding ---- */

static void enc_is(const mqtt_pkt_t *p, const uint8_t *want, size_t n)
{
    uint8_t out[512];
    ssize_t rc = mqtt_encode(p, out, sizeof out);
    CHECK_EQ(rc, (ssize_t)n);
    CHECK(rc == (ssize_t)n && memcmp(out, want, n) == 0);
    CHECK_EQ(mqtt_encode(p, NULL, 0), (ssize_t)n);
    /* Too small a buffer: the same length, and nothing written past cap. */
    if (n > 1) {
        memset(out, 0xEE, sizeof out);
        CHECK_EQ(mqtt_encode(p, out, n - 1), (ssize_t)n);
        CHECK(out[n - 1] == 0xEE && memcmp(out, want, n - 1) == 0);
    }
    bytes_t *b = mqtt_encode_new(p);
    CHECK(b && b->len == n && memcmp(b->data, want, n) == 0);
    bytes_unref(b);
}
#define ENC_IS(p, ...) enc_is(p, B(__VA_ARGS__))
#define ENC_ISP(p, ...) enc_is(p, P(__VA_ARGS__))

TEST(encode_server_packets)
{
    mqtt_pkt_t p = {.type = MQTT_CONNACK, .version = MQTT_V311};
    ENC_ISP(&p, 0x20, 0x00, 0x00);
    p.connack.session_present = true;
    ENC_ISP(&p, 0x20, 0x01, 0x00);

    /* A v5 CONNACK with the properties a broker announces. */
    p = (mqtt_pkt_t){.type = MQTT_CONNACK, .version = MQTT_V5};
    p.props.present = MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_ID) | MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEP_ALIVE) |
                      MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX) | MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAX) |
                      MQTT_PROP_BIT(MQTT_PROP_RETAIN_AVAILABLE) | MQTT_PROP_BIT(MQTT_PROP_MAX_PACKET_SIZE) |
                      MQTT_PROP_BIT(MQTT_PROP_WILDCARD_SUB_AVAILABLE) | MQTT_PROP_BIT(MQTT_PROP_SUB_ID_AVAILABLE) |
                      MQTT_PROP_BIT(MQTT_PROP_SHARED_SUB_AVAILABLE) | MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
    p.props.assigned_client_id = SPAN_LIT("h1");
    p.props.server_keep_alive = 60;
    p.props.reason_string = SPAN_LIT("ok");
    p.props.receive_max = 100;
    p.props.topic_alias_max = 10;
    p.props.retain_available = 1;
    p.props.max_packet_size = 65536;
    p.props.wildcard_sub_available = 1;
    p.props.sub_id_available = 1;
    p.props.shared_sub_available = 1;
    ENC_ISP(&p, 0x20, 0x00, 0x00, 0x20, 0x12, 0x00, 0x02, 'h', '1', 0x13, 0x00, 0x3C, 0x1F, 0x00, 0x02, 'o',
           'k', 0x21, 0x00, 0x64, 0x22, 0x00, 0x0A, 0x25, 0x01, 0x27, 0x00, 0x01, 0x00, 0x00, 0x28, 0x01, 0x29, 0x01,
           0x2A, 0x01);
    p.props.present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS); /* not a CONNACK property */
    CHECK_EQ(mqtt_encode(&p, NULL, 0), HR_EINVAL);

    p = (mqtt_pkt_t){.type = MQTT_PUBACK, .version = MQTT_V5, .packet_id = 5};
    ENC_ISP(&p, 0x40, 0x00, 0x05);
    p.reason = MQTT_RC_NO_MATCHING_SUBSCRIBERS;
    ENC_ISP(&p, 0x40, 0x00, 0x05, 0x10);
    p.type = MQTT_PUBREL;
    p.reason = 0;
    ENC_ISP(&p, 0x62, 0x00, 0x05);
    p.version = MQTT_V311;
    p.reason = 0x92; /* v3.1.1 has no reason */
    ENC_ISP(&p, 0x62, 0x00, 0x05);
    p = (mqtt_pkt_t){.type = MQTT_PUBCOMP, .version = MQTT_V5, .packet_id = 1};
    p.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
    p.props.reason_string = SPAN_LIT("x");
    ENC_ISP(&p, 0x70, 0x00, 0x01, 0x00, 0x04, 0x1F, 0x00, 0x01, 'x');

    p = (mqtt_pkt_t){.type = MQTT_SUBACK, .version = MQTT_V311, .packet_id = 3, .list = {"\x00\x01\x80", 3}};
    ENC_ISP(&p, 0x90, 0x00, 0x03, 0x00, 0x01, 0x80);
    p.version = MQTT_V5;
    ENC_ISP(&p, 0x90, 0x00, 0x03, 0x00, 0x00, 0x01, 0x80);
    p = (mqtt_pkt_t){.type = MQTT_UNSUBACK, .version = MQTT_V311, .packet_id = 3, .list = {"\x00", 1}};
    ENC_ISP(&p, 0xB0, 0x00, 0x03);
    p.version = MQTT_V5;
    ENC_ISP(&p, 0xB0, 0x00, 0x03, 0x00, 0x00);

    p = (mqtt_pkt_t){.type = MQTT_PINGRESP, .version = MQTT_V311};
    ENC_ISP(&p, 0xD0);
    p = (mqtt_pkt_t){.type = MQTT_DISCONNECT, .version = MQTT_V5};
    ENC_ISP(&p, 0xE0);
    p.reason = MQTT_RC_SESSION_TAKEN_OVER;
    ENC_ISP(&p, 0xE0, 0x8E);
    p.props.present = MQTT_PROP_BIT(MQTT_PROP_SERVER_REFERENCE);
    p.props.server_reference = SPAN_LIT("b");
    ENC_ISP(&p, 0xE0, 0x8E, 0x04, 0x1C, 0x00, 0x01, 'b');
    p = (mqtt_pkt_t){.type = MQTT_AUTH, .version = MQTT_V5, .reason = MQTT_RC_CONTINUE_AUTH};
    ENC_ISP(&p, 0xF0, 0x18);
    p.version = MQTT_V311;
    CHECK_EQ(mqtt_encode(&p, NULL, 0), HR_EINVAL);
    p = (mqtt_pkt_t){.type = 0, .version = MQTT_V5};
    CHECK_EQ(mqtt_encode(&p, NULL, 0), HR_EINVAL);
    p = (mqtt_pkt_t){.type = MQTT_PINGREQ, .version = 3};
    CHECK_EQ(mqtt_encode(&p, NULL, 0), HR_EINVAL);
}

TEST(encode_client_packets)
{
    mqtt_pkt_t p = {.type = MQTT_CONNECT, .version = MQTT_V311};
    p.connect.clean_start = p.connect.has_username = p.connect.has_password = true;
    p.connect.keep_alive = 60;
    p.connect.client_id = SPAN_LIT("abc");
    p.connect.username = SPAN_LIT("user");
    p.connect.password = SPAN_LIT("pw");
    ENC_ISP(&p, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xC2, 0x00, 0x3C, 0x00, 0x03, 'a', 'b', 'c', 0x00,
           0x04, 'u', 's', 'e', 'r', 0x00, 0x02, 'p', 'w');

    /* SUBSCRIBE with a list built by mqtt_list_put(). */
    uint8_t list[64];
    size_t n = mqtt_list_put(list, sizeof list, 0, SPAN_LIT("a/b"), 1);
    n = mqtt_list_put(list, sizeof list, n, SPAN_LIT("c/#"), 2);
    CHECK_EQ(n, 12);
    CHECK_EQ(mqtt_list_put(list, 3, 0, SPAN_LIT("a/b"), 1), 6); /* measures when it does not fit */
    p = (mqtt_pkt_t){.type = MQTT_SUBSCRIBE, .version = MQTT_V311, .packet_id = 10, .list = {(char *)list, n}};
    ENC_ISP(&p, 0x82, 0x00, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x01, 0x00, 0x03, 'c', '/', '#', 0x02);
    n = mqtt_list_put(list, sizeof list, 0, SPAN_LIT("x"), -1);
    p = (mqtt_pkt_t){.type = MQTT_UNSUBSCRIBE, .version = MQTT_V5, .packet_id = 2, .list = {(char *)list, n}};
    ENC_ISP(&p, 0xA2, 0x00, 0x02, 0x00, 0x00, 0x01, 'x');
    p = (mqtt_pkt_t){.type = MQTT_PINGREQ, .version = MQTT_V5};
    ENC_ISP(&p, 0xC0);

    /* PUBLISH with user properties passed through from a raw block and subscription ids. */
    uint8_t raw[64];
    size_t rn = mqtt_prop_user_put(raw, sizeof raw, 0, SPAN_LIT("a"), SPAN_LIT("1"));
    rn = mqtt_prop_user_put(raw, sizeof raw, rn, SPAN_LIT("b"), SPAN_LIT(""));
    CHECK_EQ(rn, 13);
    static const uint32_t ids[] = {1, 200};
    p = (mqtt_pkt_t){.type = MQTT_PUBLISH, .version = MQTT_V5, .packet_id = 0x0102};
    p.publish.qos = 1;
    p.publish.retain = true;
    p.publish.topic = SPAN_LIT("t");
    p.publish.payload = SPAN_LIT("P");
    p.props.present = MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
    p.props.message_expiry = 9;
    p.props.raw = (span_t){(char *)raw, rn};
    p.props.enc_sub_ids = ids;
    p.props.enc_sub_id_count = 2;
    ENC_ISP(&p, 0x33, 0x00, 0x01, 't', 0x01, 0x02, 0x17, 0x02, 0x00, 0x00, 0x00, 0x09, 0x26, 0x00, 0x01, 'a',
           0x00, 0x01, '1', 0x26, 0x00, 0x01, 'b', 0x00, 0x00, 0x0B, 0x01, 0x0B, 0xC8, 0x01, 'P');
    p.publish.qos = 3;
    CHECK_EQ(mqtt_encode(&p, NULL, 0), HR_EINVAL);
    p.publish.qos = 0;
    p.props.enc_sub_ids = NULL;
    p.props.enc_sub_id_count = 0;
    p.publish.topic = (span_t){(const char *)raw, 70000};
    CHECK_EQ(mqtt_encode(&p, NULL, 0), HR_EINVAL);
}

TEST(roundtrip_built_packets)
{
    /* A v5 CONNECT with every CONNECT property and a will with every will property. */
    mqtt_pkt_t p = {.type = MQTT_CONNECT, .version = MQTT_V5};
    p.connect.clean_start = p.connect.will = p.connect.will_retain = p.connect.has_username = true;
    p.connect.has_password = true;
    p.connect.will_qos = 2;
    p.connect.keep_alive = 65535;
    p.connect.client_id = SPAN_LIT("cid");
    p.connect.will_topic = SPAN_LIT("will/t");
    p.connect.will_payload = SPAN_LIT("gone");
    p.connect.username = SPAN_LIT("u");
    p.connect.password = (span_t){"\x00\xFF", 2};
    p.props.present = MQTT_PROP_BIT(0x11) | MQTT_PROP_BIT(0x15) | MQTT_PROP_BIT(0x16) | MQTT_PROP_BIT(0x17) |
                      MQTT_PROP_BIT(0x19) | MQTT_PROP_BIT(0x21) | MQTT_PROP_BIT(0x22) | MQTT_PROP_BIT(0x27);
    p.props.session_expiry = 0xFFFFFFFF;
    p.props.auth_method = SPAN_LIT("SCRAM");
    p.props.auth_data = SPAN_LIT("d");
    p.props.request_problem_info = 1;
    p.props.request_response_info = 1;
    p.props.receive_max = 1;
    p.props.topic_alias_max = 0;
    p.props.max_packet_size = 1;
    mqtt_props_t *w = &p.connect.will_props;
    w->present = MQTT_PROP_BIT(0x01) | MQTT_PROP_BIT(0x02) | MQTT_PROP_BIT(0x03) | MQTT_PROP_BIT(0x08) |
                 MQTT_PROP_BIT(0x09) | MQTT_PROP_BIT(0x18);
    w->payload_format = 1;
    w->message_expiry = 7;
    w->content_type = SPAN_LIT("text/plain");
    w->response_topic = SPAN_LIT("resp");
    w->correlation_data = SPAN_LIT("\x01");
    w->will_delay = 30;
    uint8_t buf[512];
    ssize_t n = mqtt_encode(&p, buf, sizeof buf);
    CHECK(n > 0);
    mqtt_pkt_t q = ok_pkt(&SRV0, buf, (size_t)n);
    CHECK_EQ(q.props.present, p.props.present);
    CHECK_EQ(q.props.session_expiry, 0xFFFFFFFF);
    CHECK_EQ(q.connect.will_props.present, w->present);
    CHECK_EQ(q.connect.will_qos, 2);
    CHECK_MEM(q.connect.will_props.content_type.p, q.connect.will_props.content_type.n, "text/plain");
    CHECK_MEM(q.connect.password.p, q.connect.password.n, "\x00\xFF");

    /* Big packets: remaining lengths of 2, 3 and 4 bytes. */
    static uint8_t payload[2100000], big[2100100];
    for (size_t i = 0; i < sizeof payload; i++) payload[i] = (uint8_t)(i * 31);
    static const size_t sizes[] = {100, 200, 16380, 16384, 2097000, 2098000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        p = (mqtt_pkt_t){.type = MQTT_PUBLISH, .version = MQTT_V311};
        p.publish.topic = SPAN_LIT("t");
        p.publish.payload = (span_t){(char *)payload, sizes[i]};
        n = mqtt_encode(&p, big, sizeof big);
        CHECK(n > 0 && (size_t)n <= sizeof big);
        mqtt_err_t e;
        CHECK_EQ(mqtt_decode(gp(big, (size_t)n), (size_t)n, &SRV4, &q, &e), n);
        CHECK(q.publish.payload.n == sizes[i] && memcmp(q.publish.payload.p, payload, sizes[i]) == 0);
        CHECK_EQ(mqtt_decode(gp(big, (size_t)n - 1), (size_t)n - 1, &SRV4, &q, &e), HR_EAGAIN);
        gp_release();
    }
    gp_release();
}

/* ---- sharing a PUBLISH ---- */

TEST(publish_split)
{
    uint8_t raw[32];
    size_t rn = mqtt_prop_user_put(raw, sizeof raw, 0, SPAN_LIT("k"), SPAN_LIT("v"));
    mqtt_props_t props = {0};
    props.present = MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE) | MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT);
    props.content_type = SPAN_LIT("json");
    props.payload_format = 1;
    props.raw = (span_t){(char *)raw, rn};
    span_t payload = SPAN_LIT("{\"a\":1}");

    for (int version = MQTT_V311; version <= MQTT_V5; version++) {
        uint32_t plen = 99;
        bytes_t *body = mqtt_publish_body_new((uint8_t)version, &props, payload, &plen);
        CHECK(body != NULL);
        CHECK_EQ(plen, version == MQTT_V5 ? 16 : 0);
        CHECK_EQ(body->len, plen + payload.n);
        for (uint8_t qos = 0; qos <= 2; qos++) {
            /* Without per-subscriber properties head + body == the whole packet encoded at once. */
            uint8_t head[MQTT_PUBLISH_HEAD_MAX(3, 2)], whole[256], joined[256];
            ssize_t hn = mqtt_publish_head_write(head, sizeof head, (uint8_t)version, qos > 0, qos, true,
                                                 SPAN_LIT("a/b"), 0x0A0B, 0, 0, NULL, 0, plen, body->len);
            CHECK(hn > 0);
            mqtt_pkt_t p = {.type = MQTT_PUBLISH, .version = (uint8_t)version, .packet_id = qos ? 0x0A0B : 0};
            p.publish.dup = qos > 0;
            p.publish.qos = qos;
            p.publish.retain = true;
            p.publish.topic = SPAN_LIT("a/b");
            p.publish.payload = payload;
            p.props = props;
            ssize_t wn = mqtt_encode(&p, whole, sizeof whole);
            CHECK_EQ(wn, hn + (ssize_t)body->len);
            memcpy(joined, head, (size_t)hn);
            memcpy(joined + hn, body->data, body->len);
            CHECK(memcmp(joined, whole, (size_t)wn) == 0);

            /* With a topic alias and two subscription identifiers in the head. */
            if (version == MQTT_V5) {
                static const uint32_t ids[] = {5, 100000};
                hn = mqtt_publish_head_write(head, sizeof head, MQTT_V5, false, qos, false, SPAN_LIT("a/b"), 9, 3, 3600,
                                             ids, 2, plen, body->len);
                CHECK(hn > 0 && (size_t)hn <= sizeof head);
                memcpy(joined, head, (size_t)hn);
                memcpy(joined + hn, body->data, body->len);
                mqtt_pkt_t q;
                mqtt_err_t e;
                size_t total = (size_t)hn + body->len;
                CHECK_EQ(mqtt_decode(gp(joined, total), total, &CLI5, &q, &e), (ssize_t)total);
                CHECK(q.props.topic_alias == 3 && q.props.sub_id == 5 && q.props.sub_id_count == 2);
                CHECK(q.props.message_expiry == 3600);
                CHECK(q.props.payload_format == 1 && q.props.user_count == 1);
                CHECK_MEM(q.props.content_type.p, q.props.content_type.n, "json");
                CHECK_MEM(q.publish.payload.p, q.publish.payload.n, "{\"a\":1}");
                CHECK_EQ(q.packet_id, qos ? 9 : 0);
            }
        }
        CHECK_EQ(mqtt_publish_head_write(NULL, 0, (uint8_t)version, true, 0, false, SPAN_LIT("t"), 0, 0, 0, NULL, 0, plen,
                                         body->len),
                 HR_EINVAL);
        bytes_unref(body);
    }
    static const uint32_t zero[] = {0};
    CHECK_EQ(mqtt_publish_head_write(NULL, 0, MQTT_V5, false, 0, false, SPAN_LIT("t"), 0, 0, 0, zero, 1, 0, 0), HR_EINVAL);
    CHECK_EQ(mqtt_publish_head_write(NULL, 0, MQTT_V311, false, 0, false, SPAN_LIT("t"), 0, 4, 0, NULL, 0, 0, 0),
             HR_EINVAL);
    CHECK_EQ(mqtt_publish_head_write(NULL, 0, MQTT_V311, false, 0, false, SPAN_LIT("t"), 0, 0, 0, NULL, 0, 0, 3), 5);
    CHECK_EQ(mqtt_publish_head_write(NULL, 0, MQTT_V311, false, 0, false, SPAN_LIT("t"), 0, 0, 60, NULL, 0, 0, 0),
             HR_EINVAL);
    gp_release();
}

TEST(publish_set_id)
{
    uint8_t pkt[] = {0x32, 0x06, 0x00, 0x01, 't', 0x00, 0x00, 'x'};
    CHECK_EQ(mqtt_publish_set_id(pkt, sizeof pkt, 0xBEEF, true), 0);
    CHECK(memcmp(pkt, "\x3A\x06\x00\x01t\xBE\xEFx", 8) == 0);
    CHECK_EQ(mqtt_publish_set_id(pkt, sizeof pkt, 1, false), 0);
    CHECK(memcmp(pkt, "\x32\x06\x00\x01t\x00\x01x", 8) == 0);
    uint8_t q0[] = {0x30, 0x04, 0x00, 0x01, 't', 'x'};
    CHECK_EQ(mqtt_publish_set_id(q0, sizeof q0, 1, false), HR_EINVAL);
    CHECK_EQ(mqtt_publish_set_id(pkt, sizeof pkt - 1, 1, false), HR_EINVAL);
    uint8_t shortp[] = {0x32, 0x04, 0x00, 0x03, 't', 'x'};
    CHECK_EQ(mqtt_publish_set_id(shortp, sizeof shortp, 1, false), HR_EINVAL);
    uint8_t ack[] = {0x40, 0x02, 0x00, 0x01};
    CHECK_EQ(mqtt_publish_set_id(ack, sizeof ack, 1, false), HR_EINVAL);
}

/* Several packets back to back in one buffer, decoded in sequence. */
TEST(stream_of_packets)
{
    static const uint8_t s[] = {0x30, 0x03, 0x00, 0x01, 'a', 0xC0, 0x00, 0x82, 0x06, 0x00, 0x01,
                                0x00, 0x01, 'b',  0x00, 0xE0, 0x00};
    char *p = gp(s, sizeof s);
    size_t off = 0;
    int types[4], k = 0;
    while (off < sizeof s && k < 4) {
        mqtt_pkt_t pk;
        mqtt_err_t e;
        ssize_t rc = mqtt_decode(p + off, sizeof s - off, &SRV4, &pk, &e);
        CHECK(rc > 0);
        if (rc <= 0) break;
        types[k++] = pk.type;
        off += (size_t)rc;
    }
    CHECK_EQ(k, 4);
    CHECK(types[0] == MQTT_PUBLISH && types[1] == MQTT_PINGREQ && types[2] == MQTT_SUBSCRIBE &&
          types[3] == MQTT_DISCONNECT);
    gp_release();
}

int main(void)
{
    RUN(remaining_length);
    RUN(packet_too_large);
    RUN(byte0_rules);
    RUN(connect_v311);
    RUN(connect_v5);
    RUN(connect_refusals);
    RUN(publish);
    RUN(publish_refusals);
    RUN(acks);
    RUN(subscribe);
    RUN(unsubscribe);
    RUN(ping_disconnect_auth);
    RUN(server_packets);
    RUN(utf8_topic_filter);
    RUN(encode_server_packets);
    RUN(encode_client_packets);
    RUN(roundtrip_built_packets);
    RUN(publish_split);
    RUN(publish_set_id);
    RUN(stream_of_packets);
    return UNIT_DONE();
}
