/* test_proxyproto.c - PROXY protocol v1 and v2 headers (core/proxyproto.h): whole, in pieces,
 * LOCAL/UNKNOWN, and what is refused. */
#include <string.h>

#include "../../src/core/proxyproto.h"
#include "unit.h"

static int parse(const char *s, size_t n, proxyproto_t *h) { return proxyproto_parse((const uint8_t *)s, n, h); }

TEST(v1)
{
    proxyproto_t h;
    const char *s = "PROXY TCP4 203.0.113.9 10.0.0.5 51234 443\r\nGET / HTTP/1.1\r\n";
    size_t hl = strlen("PROXY TCP4 203.0.113.9 10.0.0.5 51234 443\r\n");
    CHECK_EQ(parse(s, strlen(s), &h), (int)hl);
    char t[64];
    proxyproto_format(&h, t, sizeof(t));
    CHECK(strcmp(t, "203.0.113.9") == 0);
    CHECK_EQ(h.src_port, 51234u);
    CHECK(!h.local);
    for (size_t k = 0; k < hl; k++) CHECK_EQ(parse(s, k, &h), 0); /* every prefix: more needed */
    s = "PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n";
    CHECK_EQ(parse(s, strlen(s), &h), (int)strlen(s));
    proxyproto_format(&h, t, sizeof(t));
    CHECK(strcmp(t, "2001:db8::1") == 0);
    CHECK_EQ(parse("PROXY UNKNOWN\r\n", 15, &h), 15);
    CHECK(h.local);
    CHECK_EQ(parse("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", 35, &h), 35);
    /* refused */
    CHECK_EQ(parse("GET / HTTP/1.1\r\n", 16, &h), -1);
    CHECK_EQ(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 31, &h), -1);       /* no CR */
    CHECK_EQ(parse("PROXY TCP4 2001:db8::1 1.2.3.4 1 2\r\n", 36, &h), -1); /* family mismatch */
    CHECK_EQ(parse("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", 32, &h), -1);
    CHECK_EQ(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", 36, &h), -1);
    CHECK_EQ(parse("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", 32, &h), -1);
    CHECK_EQ(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 extra\r\n", 38, &h), -1);
    char longline[120];
    memset(longline, 'x', sizeof(longline));
    memcpy(longline, "PROXY ", 6);
    CHECK_EQ(parse(longline, sizeof(longline), &h), -1); /* no end within 107 bytes */
}

TEST(v2)
{
    static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
    uint8_t b[64];
    memcpy(b, sig, 12);
    b[12] = 0x21, b[13] = 0x11, b[14] = 0, b[15] = 12;
    const uint8_t a4[12] = {192, 0, 2, 7, 10, 0, 0, 1, 0x30, 0x39, 0, 80};
    memcpy(b + 16, a4, 12);
    proxyproto_t h;
    CHECK_EQ(proxyproto_parse(b, 28, &h), 28);
    char t[64];
    proxyproto_format(&h, t, sizeof(t));
    CHECK(strcmp(t, "192.0.2.7") == 0);
    CHECK_EQ(h.src_port, 12345u);
    for (size_t k = 0; k < 28; k++) CHECK_EQ(proxyproto_parse(b, k, &h), 0);
    b[13] = 0x21; /* IPv6 needs 36 bytes of addresses: 12 are too few */
    CHECK_EQ(proxyproto_parse(b, 28, &h), -1);
    b[12] = 0x20, b[13] = 0, b[15] = 0; /* LOCAL */
    CHECK_EQ(proxyproto_parse(b, 16, &h), 16);
    CHECK(h.local);
    b[12] = 0x11; /* version 1 in the binary head */
    CHECK_EQ(proxyproto_parse(b, 16, &h), -1);
    b[12] = 0x21, b[13] = 0x12, b[15] = 12; /* UDP */
    CHECK_EQ(proxyproto_parse(b, 28, &h), -1);
    b[13] = 0x11, b[14] = 0x10; /* longer than PROXYPROTO_MAX */
    CHECK_EQ(proxyproto_parse(b, 28, &h), -1);
    b[5] = 0; /* a broken signature */
    CHECK_EQ(proxyproto_parse(b, 28, &h), -1);
}

int main(void)
{
    RUN(v1);
    RUN(v2);
    return UNIT_DONE();
}
