/* test_ws_codec.c - unit tests for the pure WebSocket codec (src/transport/ws_codec.h).
 *
 * Every parse reads its input from a guard-page copy: the bytes end exactly at a PROT_NONE page,
 * so a read one byte past len crashes the test. Frame inputs are also parsed at every prefix
 * length: a prefix must give HR_EAGAIN with nothing written (buffer, frame, close code) until the
 * byte that decides the outcome, and from there exactly the whole input's result. */
#include <string.h>

#include "../../src/core/err.h"
#include "../../src/hub/msg.h"
#include "../../src/transport/ws_codec.h"
#include "unit.h"

#define B(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

static const ws_limits_t SRV = {.max_payload = 1 << 20, .server = true};
static const ws_limits_t CLI = {.max_payload = 1 << 20, .server = false};
static const ws_limits_t SRV_DEFLATE = {.max_payload = 1 << 20, .server = true, .rsv1_ok = true};

/* Parses in[0..len) (a guard-page copy). The frame's payload stays valid until gp_release(). */
static ssize_t parse(const void *in, size_t len, const ws_limits_t *lim, ws_frame_t *f, uint16_t *code)
{
    const char *why = NULL;
    *code = 0;
    ssize_t rc = ws_frame_parse(gp(in, len), len, lim, f, code, &why);
    if (rc == HR_EPROTO) CHECK(why != NULL && *why);
    return rc;
}

/* Parses every prefix of in[0..n) that matters: all up to 40 bytes, and around decided_at and n.
 * Prefixes shorter than decided_at must return HR_EAGAIN and write nothing; longer ones must
 * return want (a frame length, or HR_EPROTO with want_code) and leave bytes after the frame. */
static void check_prefixes(const uint8_t *in, size_t n, const ws_limits_t *lim, size_t decided_at, ssize_t want,
                           uint16_t want_code)
{
    for (size_t k = 0; k <= n; k++) {
        bool wanted = k <= 40 || (k + 2 >= decided_at && k <= decided_at + 2) || k + 2 >= n;
        if (!wanted) continue;
        char *p = gp(in, k);
        ws_frame_t f, sentinel;
        memset(&f, 0xA5, sizeof f);
        memcpy(&sentinel, &f, sizeof f);
        uint16_t code = 0xBEEF;
        const char *why = (const char *)&code;
        ssize_t rc = ws_frame_parse(p, k, lim, &f, &code, &why);
        if (k < decided_at) {
            CHECK_EQ(rc, HR_EAGAIN);
            CHECK(memcmp(p, in, k) == 0);
            CHECK(memcmp(&f, &sentinel, sizeof f) == 0);
            CHECK_EQ(code, 0xBEEF);
            CHECK(why == (const char *)&code);
            continue;
        }
        CHECK_EQ(rc, want);
        if (want == HR_EPROTO) {
            CHECK_EQ(code, want_code);
            CHECK(why != (const char *)&code && why && *why);
        } else if (rc > 0) {
            CHECK_EQ(f.header_len + f.payload_len, (uint64_t)rc);
            CHECK(f.payload == p + f.header_len);
            CHECK(memcmp(p + rc, in + rc, k - (size_t)rc) == 0); /* bytes after the frame untouched */
        }
    }
    gp_release();
}

/* A refusal of in[0..n), decided when decided_at bytes are present. */
static void refused(const uint8_t *in, size_t n, const ws_limits_t *lim, size_t decided_at, uint16_t want_code)
{
    check_prefixes(in, n, lim, decided_at, HR_EPROTO, want_code);
}

/* ---- frames: RFC 6455 section 5.7 examples ---- */

TEST(rfc_examples)
{
    ws_frame_t f;
    uint16_t code;

    /* A single-frame unmasked text message (a server frame, parsed by a client). */
    CHECK_EQ(parse(B(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f), &CLI, &f, &code), 7);
    CHECK(f.fin && !f.rsv1 && f.opcode == WS_OP_TEXT && f.header_len == 2 && f.payload_len == 5);
    CHECK_MEM(f.payload, f.payload_len, "Hello");

    /* A single-frame masked text message (a client frame, parsed by the server). */
    CHECK_EQ(parse(B(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58), &SRV, &f, &code), 11);
    CHECK(f.fin && f.opcode == WS_OP_TEXT && f.header_len == 6 && f.payload_len == 5);
    CHECK_MEM(f.payload, f.payload_len, "Hello");

    /* A fragmented unmasked text message. */
    CHECK_EQ(parse(B(0x01, 0x03, 0x48, 0x65, 0x6c), &CLI, &f, &code), 5);
    CHECK(!f.fin && f.opcode == WS_OP_TEXT);
    CHECK_MEM(f.payload, f.payload_len, "Hel");
    CHECK_EQ(parse(B(0x80, 0x02, 0x6c, 0x6f), &CLI, &f, &code), 4);
    CHECK(f.fin && f.opcode == WS_OP_CONT);
    CHECK_MEM(f.payload, f.payload_len, "lo");

    /* Unmasked Ping, masked Pong, each with "Hello". */
    CHECK_EQ(parse(B(0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f), &CLI, &f, &code), 7);
    CHECK(f.fin && f.opcode == WS_OP_PING);
    CHECK_MEM(f.payload, f.payload_len, "Hello");
    CHECK_EQ(parse(B(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58), &SRV, &f, &code), 11);
    CHECK(f.fin && f.opcode == WS_OP_PONG);
    CHECK_MEM(f.payload, f.payload_len, "Hello");

    /* 256 bytes and 64 KiB of binary data in one unmasked frame. */
    static uint8_t big[10 + 65536];
    memcpy(big, (const uint8_t[]){0x82, 0x7E, 0x01, 0x00}, 4);
    for (size_t i = 0; i < 256; i++) big[4 + i] = (uint8_t)i;
    CHECK_EQ(parse(big, 4 + 256, &CLI, &f, &code), 260);
    CHECK(f.fin && f.opcode == WS_OP_BINARY && f.header_len == 4 && f.payload_len == 256);
    CHECK(memcmp(f.payload, big + 4, 256) == 0);

    memcpy(big, (const uint8_t[]){0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}, 10);
    for (size_t i = 0; i < 65536; i++) big[10 + i] = (uint8_t)(i * 7);
    CHECK_EQ(parse(big, sizeof big, &CLI, &f, &code), (ssize_t)sizeof big);
    CHECK(f.header_len == 10 && f.payload_len == 65536);
    CHECK(memcmp(f.payload, big + 10, 65536) == 0);
    gp_release();
}

TEST(rfc_examples_encoded)
{
    uint8_t h[WS_MAX_HEADER];
    CHECK_EQ(ws_header_write(h, WS_OP_TEXT, true, false, 5), 2);
    CHECK(memcmp(h, "\x81\x05", 2) == 0);
    CHECK_EQ(ws_header_write(h, WS_OP_TEXT, false, false, 3), 2);
    CHECK(memcmp(h, "\x01\x03", 2) == 0);
    CHECK_EQ(ws_header_write(h, WS_OP_CONT, true, false, 2), 2);
    CHECK(memcmp(h, "\x80\x02", 2) == 0);
    CHECK_EQ(ws_header_write(h, WS_OP_BINARY, true, false, 256), 4);
    CHECK(memcmp(h, "\x82\x7E\x01\x00", 4) == 0);
    CHECK_EQ(ws_header_write(h, WS_OP_BINARY, true, false, 65536), 10);
    CHECK(memcmp(h, "\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10) == 0);
    CHECK_EQ(ws_header_write(h, WS_OP_TEXT, true, true, 125), 2);
    CHECK(memcmp(h, "\xC1\x7D", 2) == 0);
    CHECK_EQ(ws_header_write(h, WS_OP_BINARY, true, false, 126), 4);
    CHECK(memcmp(h, "\x82\x7E\x00\x7E", 4) == 0);
    CHECK_EQ(ws_header_write(h, WS_OP_BINARY, true, false, 65535), 4);
    CHECK(memcmp(h, "\x82\x7E\xFF\xFF", 4) == 0);
    CHECK_EQ(ws_header_write(h, WS_OP_BINARY, true, false, UINT64_C(0x0102030405060708)), 10);
    CHECK(memcmp(h, "\x82\x7F\x01\x02\x03\x04\x05\x06\x07\x08", 10) == 0);

    /* The masked "Hello" of section 5.7. */
    const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t frame[WS_MAX_HEADER + 5];
    size_t hl = ws_header_write_masked(frame, WS_OP_TEXT, true, false, 5, key);
    CHECK_EQ(hl, 6);
    memcpy(frame + hl, "Hello", 5);
    ws_mask((char *)frame + hl, 5, key, 0);
    CHECK(memcmp(frame, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11) == 0);
    CHECK_EQ(ws_header_write_masked(frame, WS_OP_BINARY, true, false, 256, key), 8);
    CHECK(memcmp(frame, "\x82\xFE\x01\x00\x37\xfa\x21\x3d", 8) == 0);
    CHECK_EQ(ws_header_write_masked(frame, WS_OP_BINARY, true, false, 65536, key), 14);
    CHECK(memcmp(frame, "\x82\xFF\x00\x00\x00\x00\x00\x01\x00\x00\x37\xfa\x21\x3d", 14) == 0);
}

/* ---- frames: incremental parsing ---- */

TEST(incremental_every_split)
{
    /* Each frame, parsed at every prefix, then with a following frame's bytes after it. */
    static const struct {
        uint8_t b[40];
        size_t n;
        bool server;
    } cases[] = {
        {{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}, 11, true},
        {{0x81, 0x05, 'H', 'e', 'l', 'l', 'o'}, 7, false},
        {{0x88, 0x80, 1, 2, 3, 4}, 6, true},
        {{0x8a, 0x00}, 2, false},
        {{0x02, 0x80, 0, 0, 0, 0}, 6, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const ws_limits_t *lim = cases[i].server ? &SRV : &CLI;
        uint8_t two[80];
        memcpy(two, cases[i].b, cases[i].n);
        memcpy(two + cases[i].n, cases[i].b, cases[i].n);
        check_prefixes(cases[i].b, cases[i].n, lim, cases[i].n, (ssize_t)cases[i].n, 0);
        check_prefixes(two, 2 * cases[i].n, lim, cases[i].n, (ssize_t)cases[i].n, 0);
    }

    /* 16-bit and 64-bit lengths, masked, with a payload that needs unmasking across 8-byte words. */
    static uint8_t in[14 + 70000];
    const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    size_t sizes[] = {126, 300, 65535, 65536, 70000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        size_t hl = ws_header_write_masked(in, WS_OP_BINARY, true, false, n, key);
        for (size_t i = 0; i < n; i++) in[hl + i] = (uint8_t)(i * 31 + 7);
        ws_mask((char *)in + hl, n, key, 0);
        check_prefixes(in, hl + n, &SRV, hl + n, (ssize_t)(hl + n), 0);

        ws_frame_t f;
        uint16_t code;
        CHECK_EQ(parse(in, hl + n, &SRV, &f, &code), (ssize_t)(hl + n));
        CHECK_EQ(f.payload_len, n);
        bool same = true;
        for (size_t i = 0; i < n; i++) same &= (uint8_t)f.payload[i] == (uint8_t)(i * 31 + 7);
        CHECK(same);
        gp_release();
    }
}

TEST(successive_frames)
{
    /* Three client frames back to back in one buffer: fragmented text, a ping between, the end. */
    const uint8_t key[4] = {1, 2, 3, 4};
    uint8_t buf[64];
    size_t w = 0;
    w += ws_header_write_masked(buf + w, WS_OP_TEXT, false, false, 3, key);
    memcpy(buf + w, "Hel", 3);
    ws_mask((char *)buf + w, 3, key, 0);
    w += 3;
    w += ws_header_write_masked(buf + w, WS_OP_PING, true, false, 0, key);
    w += ws_header_write_masked(buf + w, WS_OP_CONT, true, false, 2, key);
    memcpy(buf + w, "lo", 2);
    ws_mask((char *)buf + w, 2, key, 0);
    w += 2;

    char *p = gp(buf, w);
    size_t off = 0;
    ws_frame_t f;
    uint16_t code;
    const char *why;
    static const uint8_t ops[] = {WS_OP_TEXT, WS_OP_PING, WS_OP_CONT};
    static const char *const want[] = {"Hel", "", "lo"};
    for (int i = 0; i < 3; i++) {
        ssize_t rc = ws_frame_parse(p + off, w - off, &SRV, &f, &code, &why);
        CHECK(rc > 0);
        if (rc <= 0) break;
        CHECK_EQ(f.opcode, ops[i]);
        CHECK_EQ(f.fin, i > 0);
        CHECK(f.payload_len == strlen(want[i]) && memcmp(f.payload, want[i], f.payload_len) == 0);
        off += (size_t)rc;
    }
    CHECK_EQ(off, w);
    CHECK_EQ(ws_frame_parse(p + off, 0, &SRV, &f, &code, &why), HR_EAGAIN);
    gp_release();
}

/* ---- frames: refusals ---- */

TEST(refused_reserved_bits_and_opcodes)
{
    refused(B(0xA1, 0x80, 0, 0, 0, 0), &SRV, 1, WS_CLOSE_PROTOCOL);         /* RSV2 */
    refused(B(0x91, 0x80, 0, 0, 0, 0), &SRV, 1, WS_CLOSE_PROTOCOL);         /* RSV3 */
    refused(B(0xF1, 0x80, 0, 0, 0, 0), &SRV_DEFLATE, 1, WS_CLOSE_PROTOCOL); /* all three */
    refused(B(0xC1, 0x80, 0, 0, 0, 0), &SRV, 1, WS_CLOSE_PROTOCOL);         /* RSV1, nothing negotiated */
    refused(B(0xA1, 0x80, 0, 0, 0, 0), &SRV_DEFLATE, 1, WS_CLOSE_PROTOCOL); /* RSV2 even with deflate */
    refused(B(0xC0, 0x80, 0, 0, 0, 0), &SRV_DEFLATE, 1, WS_CLOSE_PROTOCOL); /* RSV1 on a continuation */
    refused(B(0xC9, 0x80, 0, 0, 0, 0), &SRV_DEFLATE, 1, WS_CLOSE_PROTOCOL); /* RSV1 on a ping */
    refused(B(0xC8, 0x80, 0, 0, 0, 0), &SRV_DEFLATE, 1, WS_CLOSE_PROTOCOL); /* RSV1 on a close */
    refused(B(0xCA, 0x80, 0, 0, 0, 0), &SRV_DEFLATE, 1, WS_CLOSE_PROTOCOL); /* RSV1 on a pong */
    for (uint8_t op = 3; op <= 15; op++) {
        if (op >= 8 && op <= 10) continue;
        uint8_t in[] = {(uint8_t)(0x80 | op), 0x80, 0, 0, 0, 0};
        refused(in, sizeof in, &SRV, 1, WS_CLOSE_PROTOCOL);
        in[0] = op; /* without FIN too */
        refused(in, sizeof in, &SRV, 1, WS_CLOSE_PROTOCOL);
    }

    /* RSV1 on the first frame of a data message is fine once deflate was negotiated. */
    ws_frame_t f;
    uint16_t code;
    CHECK_EQ(parse(B(0xC1, 0x80, 0, 0, 0, 0), &SRV_DEFLATE, &f, &code), 6);
    CHECK(f.rsv1 && f.opcode == WS_OP_TEXT);
    CHECK_EQ(parse(B(0x42, 0x80, 0, 0, 0, 0), &SRV_DEFLATE, &f, &code), 6);
    CHECK(f.rsv1 && !f.fin && f.opcode == WS_OP_BINARY);
    gp_release();
}

TEST(refused_control_frames)
{
    refused(B(0x09, 0x80, 0, 0, 0, 0), &SRV, 1, WS_CLOSE_PROTOCOL); /* fragmented ping */
    refused(B(0x08, 0x80, 0, 0, 0, 0), &SRV, 1, WS_CLOSE_PROTOCOL); /* fragmented close */
    refused(B(0x0A, 0x80, 0, 0, 0, 0), &SRV, 1, WS_CLOSE_PROTOCOL); /* fragmented pong */
    refused(B(0x0A, 0x00), &CLI, 1, WS_CLOSE_PROTOCOL);

    /* Control payloads over 125 bytes, in any length form, are refused at byte 1. */
    refused(B(0x89, 0xFE, 0x00, 0x7E, 0, 0, 0, 0), &SRV, 2, WS_CLOSE_PROTOCOL);
    refused(B(0x89, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0x7E, 0, 0, 0, 0), &SRV, 2, WS_CLOSE_PROTOCOL);
    refused(B(0x88, 0x7E, 0x00, 0x7E), &CLI, 2, WS_CLOSE_PROTOCOL);
    refused(B(0x8A, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0x7E), &CLI, 2, WS_CLOSE_PROTOCOL);

    /* 125 is fine. */
    uint8_t in[2 + 4 + 125] = {0x89, 0x80 | 125};
    check_prefixes(in, sizeof in, &SRV, sizeof in, (ssize_t)sizeof in, 0);
    uint8_t cin[2 + 125] = {0x88, 125, 0x03, 0xE8};
    check_prefixes(cin, sizeof cin, &CLI, sizeof cin, (ssize_t)sizeof cin, 0);
}

TEST(refused_masking)
{
    refused(B(0x81, 0x05, 'H', 'e', 'l', 'l', 'o'), &SRV, 2, WS_CLOSE_PROTOCOL); /* unmasked from a client */
    refused(B(0x89, 0x00), &SRV, 2, WS_CLOSE_PROTOCOL);
    refused(B(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58), &CLI, 2,
            WS_CLOSE_PROTOCOL); /* masked from a server */
    refused(B(0x88, 0x80, 0, 0, 0, 0), &CLI, 2, WS_CLOSE_PROTOCOL);
}

TEST(refused_lengths)
{
    /* 16-bit form carrying less than 126, 64-bit form carrying 65535 or less. */
    refused(B(0x82, 0xFE, 0x00, 0x00, 0, 0, 0, 0), &SRV, 4, WS_CLOSE_PROTOCOL);
    refused(B(0x82, 0xFE, 0x00, 0x7D, 0, 0, 0, 0), &SRV, 4, WS_CLOSE_PROTOCOL);
    refused(B(0x82, 0x7E, 0x00, 0x05, 'H', 'e', 'l', 'l', 'o'), &CLI, 4, WS_CLOSE_PROTOCOL);
    refused(B(0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0, 0, 0, 0), &SRV, 10, WS_CLOSE_PROTOCOL);
    refused(B(0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0x00, 0x7E, 0, 0, 0, 0), &SRV, 10, WS_CLOSE_PROTOCOL);
    refused(B(0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 0), &SRV, 10, WS_CLOSE_PROTOCOL);
    refused(B(0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0x00, 0x05), &CLI, 10, WS_CLOSE_PROTOCOL);

    /* The top bit of the 64-bit length: 1002, even when the limit would also say 1009. */
    refused(B(0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), &SRV, 10, WS_CLOSE_PROTOCOL);
    refused(B(0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF), &SRV, 10, WS_CLOSE_PROTOCOL);
    ws_limits_t huge = {.max_payload = UINT64_MAX, .server = false};
    refused(B(0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1), &huge, 10, WS_CLOSE_PROTOCOL);

    /* The smallest lengths of each form are fine. */
    static uint8_t in[10 + 65536];
    memcpy(in, (const uint8_t[]){0x82, 0x7E, 0x00, 0x7E}, 4);
    check_prefixes(in, 4 + 126, &CLI, 4 + 126, 4 + 126, 0);
    memcpy(in, (const uint8_t[]){0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}, 10);
    check_prefixes(in, sizeof in, &CLI, sizeof in, (ssize_t)sizeof in, 0);
}

TEST(refused_too_big)
{
    /* 1009 is decided as soon as the length is known: before the mask key and the payload. */
    ws_limits_t lim = {.max_payload = 100, .server = true};
    refused(B(0x82, 0x80 | 101, 0, 0, 0, 0), &lim, 2, WS_CLOSE_TOO_BIG);
    refused(B(0x82, 0xFE, 0x00, 0xFF, 0, 0, 0, 0), &lim, 4, WS_CLOSE_TOO_BIG);
    refused(B(0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0), &lim, 10, WS_CLOSE_TOO_BIG);
    refused(B(0x00, 0xFF, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00), &lim, 10, WS_CLOSE_TOO_BIG);
    ws_limits_t clim = {.max_payload = 1000, .server = false};
    refused(B(0x81, 0x7E, 0x03, 0xE9), &clim, 4, WS_CLOSE_TOO_BIG);

    /* Control frames count against the limit too. */
    ws_limits_t tiny = {.max_payload = 4, .server = true};
    refused(B(0x89, 0x85, 0, 0, 0, 0, 1, 2, 3, 4, 5), &tiny, 2, WS_CLOSE_TOO_BIG);

    /* Exactly the limit is fine; max_payload 0 allows only empty frames. */
    uint8_t in[2 + 4 + 100] = {0x82, 0x80 | 100};
    check_prefixes(in, sizeof in, &lim, sizeof in, (ssize_t)sizeof in, 0);
    ws_limits_t zero = {.max_payload = 0, .server = true};
    check_prefixes(B(0x81, 0x80, 1, 2, 3, 4), &zero, 6, 6, 0);
    refused(B(0x81, 0x81, 1, 2, 3, 4, 5), &zero, 2, WS_CLOSE_TOO_BIG);
}

TEST(refusal_order_within_a_byte)
{
    /* When several rules break at once the outcome is still fixed: RSV before opcode and mask. */
    uint16_t code;
    ws_frame_t f;
    CHECK_EQ(parse(B(0xB3, 0x05), &SRV, &f, &code), HR_EPROTO);
    CHECK_EQ(code, WS_CLOSE_PROTOCOL);
    ws_limits_t lim = {.max_payload = 1, .server = true};
    CHECK_EQ(parse(B(0x82, 0x05), &lim, &f, &code), HR_EPROTO); /* unmasked beats too big */
    CHECK_EQ(code, WS_CLOSE_PROTOCOL);
    CHECK_EQ(parse(B(0x82, 0xFE, 0x00, 0x05), &lim, &f, &code), HR_EPROTO); /* not minimal beats too big */
    CHECK_EQ(code, WS_CLOSE_PROTOCOL);
    gp_release();
}

TEST(mask_in_pieces)
{
    const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
    char orig[100], whole[100], pieces[100];
    for (int i = 0; i < 100; i++) orig[i] = (char)(i * 13);
    memcpy(whole, orig, 100);
    ws_mask(whole, 100, key, 0);
    bool ok = true;
    for (int i = 0; i < 100; i++) ok &= (uint8_t)whole[i] == (uint8_t)(orig[i] ^ key[i & 3]);
    CHECK(ok);
    for (size_t a = 0; a <= 100; a++) {
        for (size_t b = a; b <= 100; b += 7) {
            memcpy(pieces, orig, 100);
            ws_mask(pieces, a, key, 0);
            ws_mask(pieces + a, b - a, key, a);
            ws_mask(pieces + b, 100 - b, key, b);
            if (memcmp(pieces, whole, 100) != 0) {
                CHECK(!"mask in pieces differs");
                return;
            }
        }
    }
    ws_mask(whole, 100, key, 0); /* masking twice restores */
    CHECK(memcmp(whole, orig, 100) == 0);
    ws_mask(whole, 0, key, 3);
    CHECK(memcmp(whole, orig, 100) == 0);
}

/* ---- frames read while they arrive (ws_frame_parse_partial) ---- */

/* A masked client frame (opcode, fin) of payload pl[0..n) into out; returns its size. */
static size_t client_frame(uint8_t *out, uint8_t op, bool fin, const uint8_t *pl, size_t n)
{
    static const uint8_t key[4] = {0x9a, 0x01, 0x7f, 0xe3};
    size_t h = ws_header_write_masked(out, op, fin, false, n, key);
    memcpy(out + h, pl, n);
    ws_mask((char *)out + h, n, key, 0);
    return h + n;
}

/* Feeds the frame in[0..n) (payload pl[0..pn)) to ws_frame_parse_partial() as the growing prefixes
 * cuts[0] < cuts[1] < ... <= n of one buffer, as ws.c does with its read buffer: each call
 * unmasks only the bytes that came since the last one, so the payload present is always the
 * plain text, and what follows it is untouched; the last call returns the frame. */
static void partial_feed(const uint8_t *in, size_t n, const uint8_t *pl, size_t pn, const size_t *cuts, size_t ncuts)
{
    static char buf[70000];
    memcpy(buf, in, n);
    uint64_t done = 0;
    size_t hlen = n - pn;
    for (size_t i = 0; i < ncuts; i++) {
        size_t k = cuts[i];
        ws_frame_t f;
        uint16_t code = 0;
        const char *why = NULL;
        uint64_t before = done;
        ssize_t rc = ws_frame_parse_partial(buf, k, &SRV, &f, &done, &code, &why);
        if (k < hlen) {
            CHECK_EQ(rc, HR_EAGAIN);
            CHECK_EQ(f.header_len, 0);
            CHECK_EQ(done, 0);
            continue;
        }
        CHECK_EQ(f.header_len, hlen);
        CHECK_EQ(f.payload_len, pn);
        CHECK(f.payload == buf + hlen);
        CHECK_EQ(done, k - hlen);
        CHECK(done >= before);
        CHECK(memcmp(buf + hlen, pl, (size_t)done) == 0);         /* unmasked once, exactly */
        CHECK(memcmp(buf + k, in + k, n - k) == 0);                 /* the rest still masked */
        CHECK_EQ(rc, k == n ? (ssize_t)n : HR_EAGAIN);
    }
}

TEST(partial_frames)
{
    static uint8_t pl[66000], in[66100];
    for (size_t i = 0; i < sizeof(pl); i++) pl[i] = (uint8_t)(i * 7 + 3);
    static const size_t sizes[] = {0, 1, 5, 125, 126, 300, 65535, 65536, 66000};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t pn = sizes[s], n = client_frame(in, WS_OP_BINARY, true, pl, pn);
        size_t cuts[64], nc = 0;
        /* byte by byte through the header and the first payload bytes, then in big steps */
        for (size_t k = 0; k <= n && k <= 24; k++) cuts[nc++] = k;
        for (size_t k = 24 + 4999; k < n && nc < 60; k += 4999) cuts[nc++] = k;
        if (cuts[nc - 1] != n) cuts[nc++] = n;
        partial_feed(in, n, pl, pn, cuts, nc);
        size_t once[2] = {n / 2, n}; /* and in two pieces */
        partial_feed(in, n, pl, pn, once, 2);
    }
    /* a 16-bit length frame at every split point */
    size_t n = client_frame(in, WS_OP_TEXT, true, pl, 200);
    for (size_t a = 0; a <= n; a++) {
        size_t cuts[2] = {a, n};
        partial_feed(in, n, pl, 200, cuts, 2);
    }
    /* refusals are the same as ws_frame_parse(): decided on the header alone */
    ws_frame_t f;
    uint16_t code = 0;
    const char *why = NULL;
    uint64_t done = 0;
    char unmasked[] = {(char)0x81, 0x05, 'h', 'e', 'l', 'l', 'o'};
    CHECK_EQ(ws_frame_parse_partial(unmasked, 3, &SRV, &f, &done, &code, &why), HR_EPROTO);
    CHECK_EQ(code, WS_CLOSE_PROTOCOL);
    char big[] = {(char)0x82, (char)0xFF, 0, 0, 0, 0, 0x7F, 0, 0, 0, 1, 2, 3, 4};
    CHECK_EQ(ws_frame_parse_partial(big, sizeof(big), &SRV, &f, &done, &code, &why), HR_EPROTO);
    CHECK_EQ(code, WS_CLOSE_TOO_BIG);
    CHECK_EQ(done, 0);
}

/* What ws.c does with a text frame that arrives in pieces: each piece's newly unmasked bytes go
 * to the incremental UTF-8 check, which refuses the frame as soon as the invalid byte is there,
 * long before the frame is whole; valid text split anywhere is accepted. */
static size_t partial_utf8_fail_at(const uint8_t *pl, size_t pn, size_t step)
{
    static uint8_t in[70100];
    static char buf[70100];
    size_t n = client_frame(in, WS_OP_TEXT, true, pl, pn);
    memcpy(buf, in, n);
    uint64_t done = 0;
    ws_utf8_t u = {0};
    for (size_t k = 1;; k += step) {
        if (k > n) k = n;
        ws_frame_t f;
        uint16_t code;
        const char *why;
        uint64_t from = done;
        ssize_t rc = ws_frame_parse_partial(buf, k, &SRV, &f, &done, &code, &why);
        if (f.header_len && done > from && !ws_utf8_feed(&u, f.payload + from, (size_t)(done - from))) return k;
        if (rc > 0) return ws_utf8_done(&u) ? 0 : k;
    }
}

TEST(partial_utf8_fail_fast)
{
    static uint8_t pl[65536];
    memset(pl, 'a', sizeof(pl));
    pl[100] = 0xFF; /* header 14 bytes: the 115th byte of the frame is the bad one */
    CHECK_EQ(partial_utf8_fail_at(pl, sizeof(pl), 1), 115);
    CHECK_EQ(partial_utf8_fail_at(pl, sizeof(pl), 1000), 1001);
    pl[100] = 0xE2, pl[101] = 0x28; /* a lead byte, then no continuation byte */
    CHECK_EQ(partial_utf8_fail_at(pl, sizeof(pl), 1), 116);
    pl[100] = 'a', pl[101] = 'a';
    static const char ok[] = "κόσμε € 𝄞 ✓";
    memcpy(pl + 65536 - sizeof(ok) + 1, ok, sizeof(ok) - 1);
    for (size_t step = 1; step < 40; step++) CHECK_EQ(partial_utf8_fail_at(pl, sizeof(pl), step * 997 % 4096 + 1), 0);
    CHECK_EQ(partial_utf8_fail_at((const uint8_t *)ok, sizeof(ok) - 1, 1), 0);
    CHECK_EQ(partial_utf8_fail_at((const uint8_t *)ok, sizeof(ok) - 2, 1), 6 + sizeof(ok) - 2); /* truncated */
}

/* ---- UTF-8 ---- */

/* Feeds s[0..n) split into two pieces at every point (each a guard-page copy) and byte by byte.
 * fail_at 0: valid; else the 1-based byte index at which a feed must first return false. */
static void utf8_case(const char *s, size_t n, size_t fail_at, int line)
{
    for (size_t k = 0; k <= n; k++) {
        ws_utf8_t u = {0};
        bool a = ws_utf8_feed(&u, gp(s, k), k);
        bool b = ws_utf8_feed(&u, gp(s + k, n - k), n - k);
        if (fail_at) {
            if (a != (k < fail_at) || b || ws_utf8_done(&u)) {
                printf("#   line %d: split at %zu\n", line, k);
                CHECK(a == (k < fail_at) && !b && !ws_utf8_done(&u));
            }
        } else if (!a || !b || !ws_utf8_done(&u)) {
            printf("#   line %d: split at %zu\n", line, k);
            CHECK(a && b && ws_utf8_done(&u));
        }
    }
    ws_utf8_t u = {0};
    size_t first_false = 0;
    for (size_t i = 0; i < n; i++) {
        bool ok = ws_utf8_feed(&u, gp(s + i, 1), 1);
        if (!ok && !first_false) first_false = i + 1;
        if (first_false) CHECK(!ok); /* sticky */
    }
    if (first_false != fail_at) printf("#   line %d: byte by byte failed at %zu\n", line, first_false);
    CHECK_EQ(first_false, fail_at);
    CHECK_EQ(utf8_valid(s, n), fail_at == 0);
    gp_release();
}

#define UTF8_OK(lit) utf8_case(lit, sizeof(lit) - 1, 0, __LINE__)
#define UTF8_BAD(lit, at) utf8_case(lit, sizeof(lit) - 1, at, __LINE__)

TEST(utf8_valid_sequences)
{
    UTF8_OK("");
    UTF8_OK("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!");
    UTF8_OK("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"); /* "kosme" in Greek (Autobahn 6.2) */
    UTF8_OK("\x00");
    UTF8_OK("\x7f");
    UTF8_OK("\xc2\x80");             /* U+0080 */
    UTF8_OK("\xdf\xbf");             /* U+07FF */
    UTF8_OK("\xe0\xa0\x80");         /* U+0800 */
    UTF8_OK("\xed\x9f\xbf");         /* U+D7FF */
    UTF8_OK("\xee\x80\x80");         /* U+E000 */
    UTF8_OK("\xef\xbf\xbd");         /* U+FFFD */
    UTF8_OK("\xef\xbf\xbf");         /* U+FFFF (a noncharacter, still valid UTF-8) */
    UTF8_OK("\xf0\x90\x80\x80");     /* U+10000 */
    UTF8_OK("\xf4\x8f\xbf\xbf");     /* U+10FFFF */
    UTF8_OK("\xf3\xbf\xbf\xbf");
    UTF8_OK("0123456789abcdefghijklmnop\xe2\x82\xac" "0123456789abcdefghij\xf0\x9f\x98\x80");
}

TEST(utf8_fail_fast)
{
    /* Overlongs: C0 and C1 at once, E0 80..9F and F0 80..8F at the second byte. */
    UTF8_BAD("\xc0\x80", 1);
    UTF8_BAD("\xc0\xaf", 1);
    UTF8_BAD("\xc1\xbf", 1);
    UTF8_BAD("\xe0\x80\xaf", 2);
    UTF8_BAD("\xe0\x9f\xbf", 2);
    UTF8_BAD("\xf0\x80\x80\xaf", 2);
    UTF8_BAD("\xf0\x8f\xbf\xbf", 2);
    /* Surrogates at the second byte. */
    UTF8_BAD("\xed\xa0\x80", 2);
    UTF8_BAD("\xed\xad\xbf", 2);
    UTF8_BAD("\xed\xbf\xbf", 2);
    UTF8_BAD("\xed\xa0\x80\xed\xb0\x80", 2);
    /* Over U+10FFFF: F4 90.. at the second byte, F5..FF at once. */
    UTF8_BAD("\xf4\x90\x80\x80", 2);
    UTF8_BAD("\xf4\xbf\xbf\xbf", 2);
    UTF8_BAD("\xf5\x80\x80\x80", 1);
    UTF8_BAD("\xf7\xbf\xbf\xbf", 1);
    UTF8_BAD("\xf8\x88\x80\x80\x80", 1);
    UTF8_BAD("\xfc\x84\x80\x80\x80\x80", 1);
    UTF8_BAD("\xfe", 1);
    UTF8_BAD("\xff", 1);
    /* Stray and missing continuation bytes. */
    UTF8_BAD("\x80", 1);
    UTF8_BAD("\xbf", 1);
    UTF8_BAD("a\x80", 2);
    UTF8_BAD("\xc2\x80\x80", 3);
    UTF8_BAD("\xc2\x41", 2);
    UTF8_BAD("\xe1\x80\x41", 3);
    UTF8_BAD("\xf1\x80\x80\x41", 4);
    UTF8_BAD("\xe1\xc2\x80", 2);
    /* Autobahn 6.4.1: valid text, then F4 90: refused at the 0x90, before the rest arrives. */
    UTF8_BAD("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64", 13);
    /* Invalid after a long ASCII run (the word-at-a-time path). */
    UTF8_BAD("0123456789abcdefghijklmnop\xc0", 27);
    UTF8_BAD("01234567\x80" "89abcdefgh", 9);
}

TEST(utf8_truncated)
{
    /* A cut sequence is not a failure until the message ends: feed true, done false. */
    static const char *const cut[] = {"\xc2", "\xe1\x80", "\xe0\xa0", "\xf0\x90\x80", "\xf4\x8f", "a\xed"};
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
        ws_utf8_t u = {0};
        CHECK(ws_utf8_feed(&u, cut[i], strlen(cut[i])));
        CHECK(!ws_utf8_done(&u));
    }
    ws_utf8_t u = {0};
    CHECK(ws_utf8_done(&u));
    CHECK(ws_utf8_feed(&u, "", 0));
    CHECK(ws_utf8_done(&u));
    CHECK(!ws_utf8_feed(&u, "\xff", 1));
    CHECK(!ws_utf8_feed(&u, "a", 1)); /* sticky */
    CHECK(!ws_utf8_feed(&u, "", 0));
    CHECK(!ws_utf8_done(&u));
}

/* Whether s[0..n) can be extended to valid UTF-8: for prefixes of at most two bytes, adding up to
 * three copies of one continuation byte finds a completion whenever one exists. */
static bool viable(const unsigned char *s, size_t n)
{
    unsigned char t[8];
    memcpy(t, s, n);
    for (size_t k = 0; k <= 3; k++) {
        for (unsigned x = 0x80; x <= 0xBF; x++) {
            for (size_t j = 0; j < k; j++) t[n + j] = (unsigned char)x;
            if (utf8_valid((const char *)t, n + k)) return true;
            if (k == 0) break;
        }
    }
    return false;
}

TEST(utf8_exhaustive)
{
    /* Every one- and two-byte input: feed answers "still viable" exactly, and feed + done
     * agrees with utf8_valid() (src/hub/msg.h). Every three-byte input with a multi-byte lead,
     * and four-byte inputs with sampled tails, must agree with utf8_valid() too. */
    int bad_viable = 0, bad_valid = 0;
    for (unsigned a = 0; a < 256; a++) {
        unsigned char s1[1] = {(unsigned char)a};
        ws_utf8_t u1 = {0};
        bool f1 = ws_utf8_feed(&u1, s1, 1);
        bad_viable += f1 != viable(s1, 1);
        bad_valid += (f1 && ws_utf8_done(&u1)) != utf8_valid((const char *)s1, 1);
        for (unsigned b = 0; b < 256; b++) {
            unsigned char s2[2] = {(unsigned char)a, (unsigned char)b};
            ws_utf8_t u = {0};
            bool f = ws_utf8_feed(&u, s2, 2);
            bad_viable += f != viable(s2, 2);
            bad_valid += (f && ws_utf8_done(&u)) != utf8_valid((const char *)s2, 2);
            if (a < 0xC0) continue;
            for (unsigned c = 0; c < 256; c++) {
                unsigned char s3[3] = {(unsigned char)a, (unsigned char)b, (unsigned char)c};
                ws_utf8_t u3 = {0};
                bool f3 = ws_utf8_feed(&u3, s3, 3) && ws_utf8_done(&u3);
                bad_valid += f3 != utf8_valid((const char *)s3, 3);
            }
            if (a < 0xF0) continue;
            static const unsigned char tails[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0xBF, 0xC0, 0xFF};
            for (size_t i = 0; i < sizeof tails; i++) {
                for (size_t j = 0; j < sizeof tails; j++) {
                    unsigned char s4[4] = {(unsigned char)a, (unsigned char)b, tails[i], tails[j]};
                    ws_utf8_t u4 = {0};
                    bool f4 = ws_utf8_feed(&u4, s4, 4) && ws_utf8_done(&u4);
                    bad_valid += f4 != utf8_valid((const char *)s4, 4);
                }
            }
        }
    }
    CHECK_EQ(bad_viable, 0);
    CHECK_EQ(bad_valid, 0);
}

/* ---- message sequencing ---- */

static ws_frame_t frame(uint8_t op, bool fin, bool rsv1, uint64_t n)
{
    return (ws_frame_t){.fin = fin, .rsv1 = rsv1, .opcode = op, .payload_len = n};
}

TEST(msg_sequencing)
{
    ws_msg_t m = {0};
    uint16_t code = 0;
    const char *why = NULL;
    ws_frame_t f;

    f = frame(WS_OP_TEXT, true, false, 5);
    CHECK_EQ(ws_msg_frame(&m, &f, 100, &code, &why), 0);
    CHECK(!m.in_message && m.opcode == WS_OP_TEXT && !m.compressed && m.size == 5);

    f = frame(WS_OP_BINARY, false, true, 10);
    CHECK_EQ(ws_msg_frame(&m, &f, 100, &code, &why), 0);
    CHECK(m.in_message && m.opcode == WS_OP_BINARY && m.compressed && m.size == 10);
    f = frame(WS_OP_CONT, false, false, 20);
    CHECK_EQ(ws_msg_frame(&m, &f, 100, &code, &why), 0);
    CHECK(m.in_message && m.compressed && m.size == 30);
    f = frame(WS_OP_CONT, true, false, 0);
    CHECK_EQ(ws_msg_frame(&m, &f, 100, &code, &why), 0);
    CHECK(!m.in_message && m.opcode == WS_OP_BINARY && m.compressed && m.size == 30);

    /* The next message starts afresh: its own opcode, compression and size. */
    f = frame(WS_OP_TEXT, false, false, 1);
    CHECK_EQ(ws_msg_frame(&m, &f, 100, &code, &why), 0);
    CHECK(m.in_message && m.opcode == WS_OP_TEXT && !m.compressed && m.size == 1);
    f = frame(WS_OP_CONT, true, false, 2);
    CHECK_EQ(ws_msg_frame(&m, &f, 100, &code, &why), 0);
    CHECK(!m.in_message && m.opcode == WS_OP_TEXT && m.size == 3);

    /* Empty messages and empty fragments. */
    f = frame(WS_OP_TEXT, false, false, 0);
    CHECK_EQ(ws_msg_frame(&m, &f, 0, &code, &why), 0);
    f = frame(WS_OP_CONT, false, false, 0);
    CHECK_EQ(ws_msg_frame(&m, &f, 0, &code, &why), 0);
    f = frame(WS_OP_CONT, true, false, 0);
    CHECK_EQ(ws_msg_frame(&m, &f, 0, &code, &why), 0);
    CHECK(!m.in_message && m.size == 0);
}

TEST(msg_refusals)
{
    uint16_t code = 0;
    const char *why = NULL;
    ws_frame_t f;

    /* A continuation with no message in progress (also right after a complete one). */
    ws_msg_t m = {0};
    f = frame(WS_OP_CONT, true, false, 1);
    CHECK_EQ(ws_msg_frame(&m, &f, 100, &code, &why), HR_EPROTO);
    CHECK_EQ(code, WS_CLOSE_PROTOCOL);
    CHECK(why && *why);
    m = (ws_msg_t){0};
    f = frame(WS_OP_TEXT, true, false, 1);
    CHECK_EQ(ws_msg_frame(&m, &f, 100, &code, &why), 0);
    f = frame(WS_OP_CONT, false, false, 1);
    code = 0;
    CHECK_EQ(ws_msg_frame(&m, &f, 100, &code, &why), HR_EPROTO);
    CHECK_EQ(code, WS_CLOSE_PROTOCOL);

    /* A new text or binary frame while a message is in progress. */
    for (int op = WS_OP_TEXT; op <= WS_OP_BINARY; op++) {
        m = (ws_msg_t){0};
        f = frame(WS_OP_BINARY, false, false, 1);
        CHECK_EQ(ws_msg_frame(&m, &f, 100, &code, &why), 0);
        f = frame((uint8_t)op, true, false, 1);
        code = 0;
        CHECK_EQ(ws_msg_frame(&m, &f, 100, &code, &why), HR_EPROTO);
        CHECK_EQ(code, WS_CLOSE_PROTOCOL);
    }

    /* Control frames are not the sequencer's business: refused. */
    for (int op = WS_OP_CLOSE; op <= WS_OP_PONG; op++) {
        m = (ws_msg_t){0};
        f = frame((uint8_t)op, true, false, 0);
        code = 0;
        CHECK_EQ(ws_msg_frame(&m, &f, 100, &code, &why), HR_EPROTO);
        CHECK_EQ(code, WS_CLOSE_PROTOCOL);
    }
}

TEST(msg_too_big)
{
    uint16_t code = 0;
    const char *why = NULL;
    ws_msg_t m = {0};
    ws_frame_t f = frame(WS_OP_TEXT, true, false, 100);
    CHECK_EQ(ws_msg_frame(&m, &f, 100, &code, &why), 0); /* exactly the limit */
    f = frame(WS_OP_TEXT, true, false, 101);
    CHECK_EQ(ws_msg_frame(&m, &f, 100, &code, &why), HR_EPROTO);
    CHECK_EQ(code, WS_CLOSE_TOO_BIG);

    m = (ws_msg_t){0};
    f = frame(WS_OP_BINARY, false, false, 60);
    CHECK_EQ(ws_msg_frame(&m, &f, 100, &code, &why), 0);
    f = frame(WS_OP_CONT, false, false, 40);
    CHECK_EQ(ws_msg_frame(&m, &f, 100, &code, &why), 0);
    CHECK_EQ(m.size, 100);
    f = frame(WS_OP_CONT, true, false, 1);
    code = 0;
    CHECK_EQ(ws_msg_frame(&m, &f, 100, &code, &why), HR_EPROTO);
    CHECK_EQ(code, WS_CLOSE_TOO_BIG);
    CHECK_EQ(m.size, 100); /* unchanged by the refused frame */

    /* No wrap-around with huge lengths. */
    m = (ws_msg_t){0};
    f = frame(WS_OP_BINARY, false, false, 10);
    CHECK_EQ(ws_msg_frame(&m, &f, UINT64_MAX - 5, &code, &why), 0);
    f = frame(WS_OP_CONT, true, false, UINT64_MAX - 7);
    code = 0;
    CHECK_EQ(ws_msg_frame(&m, &f, UINT64_MAX - 5, &code, &why), HR_EPROTO);
    CHECK_EQ(code, WS_CLOSE_TOO_BIG);
    m = (ws_msg_t){0};
    f = frame(WS_OP_BINARY, false, false, 10);
    CHECK_EQ(ws_msg_frame(&m, &f, 100, &code, &why), 0);
    f = frame(WS_OP_CONT, true, false, UINT64_MAX);
    CHECK_EQ(ws_msg_frame(&m, &f, 100, &code, &why), HR_EPROTO);
}

/* ---- close payloads ---- */

static int close_parse(const void *p, size_t n, uint16_t *code, uint16_t *cc)
{
    const char *why = NULL;
    *code = 0;
    *cc = 0;
    int rc = ws_close_parse(gp(p, n), n, code, cc, &why);
    if (rc) CHECK(why && *why);
    return rc;
}

TEST(close_parse_codes)
{
    uint16_t code, cc;
    CHECK_EQ(close_parse("", 0, &code, &cc), 0);
    CHECK_EQ(code, WS_CLOSE_NO_STATUS);
    CHECK_EQ(close_parse("\x03", 1, &code, &cc), HR_EPROTO);
    CHECK_EQ(cc, WS_CLOSE_PROTOCOL);

    int accepted = 0;
    for (unsigned c = 0; c <= 65535; c++) {
        uint8_t p[2] = {(uint8_t)(c >> 8), (uint8_t)c};
        bool want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
        const char *why = NULL;
        code = cc = 0;
        int rc = ws_close_parse((const char *)p, 2, &code, &cc, &why);
        if (want) {
            accepted++;
            if (rc != 0 || code != c) CHECK_EQ(c, -1);
        } else if (rc != HR_EPROTO || cc != WS_CLOSE_PROTOCOL) {
            CHECK_EQ(c, -1);
        }
    }
    CHECK_EQ(accepted, 4 + 8 + 2000);

    /* The named refusals, spelled out. */
    static const unsigned bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t p[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        CHECK_EQ(close_parse(p, 2, &code, &cc), HR_EPROTO);
        CHECK_EQ(cc, WS_CLOSE_PROTOCOL);
    }
    gp_release();
}

TEST(close_parse_reasons)
{
    uint16_t code, cc;
    CHECK_EQ(close_parse("\x03\xe8" "bye", 5, &code, &cc), 0);
    CHECK_EQ(code, 1000);
    CHECK_EQ(close_parse("\x0f\xa0\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 13, &code, &cc), 0);
    CHECK_EQ(code, 4000);

    /* Autobahn 7.5.1: a reason with a surrogate. */
    static const char a751[] = "\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
                               "\xed\xa0\x80\x65\x64\x69\x74\x65\x64";
    CHECK_EQ(close_parse(a751, sizeof a751 - 1, &code, &cc), HR_EPROTO);
    CHECK_EQ(cc, WS_CLOSE_INVALID_DATA);
    CHECK_EQ(close_parse("\x03\xe8\xc2", 3, &code, &cc), HR_EPROTO); /* cut sequence */
    CHECK_EQ(cc, WS_CLOSE_INVALID_DATA);
    CHECK_EQ(close_parse("\x03\xe8\xff", 3, &code, &cc), HR_EPROTO);
    CHECK_EQ(cc, WS_CLOSE_INVALID_DATA);
    /* A bad code is reported before a bad reason. */
    CHECK_EQ(close_parse("\x03\xed\xff", 3, &code, &cc), HR_EPROTO);
    CHECK_EQ(cc, WS_CLOSE_PROTOCOL);

    /* A 123-byte reason (the most a control frame can carry). */
    char p[125] = "\x03\xe9";
    memset(p + 2, 'r', 123);
    CHECK_EQ(close_parse(p, sizeof p, &code, &cc), 0);
    CHECK_EQ(code, WS_CLOSE_GOING_AWAY);
    gp_release();
}

/* ---- encoding whole frames ---- */

TEST(frame_new)
{
    long live = bytes_live();
    bytes_t *b = ws_frame_new(WS_OP_TEXT, false, "Hello", 5);
    CHECK(b != NULL);
    CHECK_MEM(b->data, b->len, "\x81\x05Hello");
    bytes_unref(b);
    b = ws_frame_new(WS_OP_BINARY, true, "x", 1);
    CHECK_MEM(b->data, b->len, "\xC2\x01x");
    bytes_unref(b);
    b = ws_frame_new(WS_OP_PONG, false, NULL, 0);
    CHECK_MEM(b->data, b->len, "\x8A\x00");
    bytes_unref(b);

    static char big[70000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)i;
    size_t sizes[] = {125, 126, 65535, 65536, 70000};
    for (size_t s = 0; s < 5; s++) {
        b = ws_frame_new(WS_OP_BINARY, false, big, sizes[s]);
        CHECK(b != NULL);
        if (!b) continue;
        ws_frame_t f;
        uint16_t code;
        CHECK_EQ(parse(b->data, b->len, &CLI, &f, &code), (ssize_t)b->len);
        CHECK(f.fin && f.opcode == WS_OP_BINARY && f.payload_len == sizes[s]);
        CHECK(memcmp(f.payload, big, sizes[s]) == 0);
        bytes_unref(b);
        gp_release();
    }
    CHECK_EQ(bytes_live(), live);
}

/* Checks a Close frame from ws_close_new: header, code, and a reason that is a UTF-8-clean
 * prefix of want of at least min_len bytes. Returns the reason length. */
static size_t check_close(bytes_t *b, uint16_t want_code, const char *want, size_t min_len)
{
    CHECK(b != NULL);
    if (!b) return 0;
    ws_frame_t f;
    uint16_t cc, code;
    CHECK_EQ(parse(b->data, b->len, &CLI, &f, &cc), (ssize_t)b->len);
    CHECK(f.opcode == WS_OP_CLOSE && f.fin && f.payload_len <= WS_MAX_CONTROL);
    CHECK_EQ(close_parse(f.payload, f.payload_len, &code, &cc), 0);
    CHECK_EQ(code, want_code);
    size_t rn = f.payload_len - 2;
    CHECK(rn >= min_len && rn <= strlen(want) && memcmp(f.payload + 2, want, rn) == 0);
    bytes_unref(b);
    gp_release();
    return rn;
}

TEST(close_new)
{
    long live = bytes_live();
    bytes_t *b = ws_close_new(0, "ignored");
    CHECK_MEM(b->data, b->len, "\x88\x00");
    bytes_unref(b);
    b = ws_close_new(1000, NULL);
    CHECK_MEM(b->data, b->len, "\x88\x02\x03\xe8");
    bytes_unref(b);
    b = ws_close_new(1000, "");
    CHECK_MEM(b->data, b->len, "\x88\x02\x03\xe8");
    bytes_unref(b);
    b = ws_close_new(1009, "message too big");
    CHECK_MEM(b->data, b->len, "\x88\x11\x03\xf1message too big");
    bytes_unref(b);

    /* Long ASCII: cut to exactly 123 reason bytes. */
    char r[300];
    memset(r, 'x', 200);
    r[200] = 0;
    CHECK_EQ(check_close(ws_close_new(1011, r), 1011, r, 123), 123);
    memset(r, 'x', 123);
    r[123] = 0;
    CHECK_EQ(check_close(ws_close_new(1011, r), 1011, r, 123), 123);

    /* Multi-byte characters straddling the cut, at every alignment: never split. */
    static const char *const chars[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    for (size_t c = 0; c < 3; c++) {
        size_t cl = strlen(chars[c]);
        for (size_t pad = 0; pad < 4; pad++) {
            size_t n = 0;
            memset(r, 'a', pad);
            n = pad;
            while (n + cl < sizeof r - 1) {
                memcpy(r + n, chars[c], cl);
                n += cl;
            }
            r[n] = 0;
            size_t rn = check_close(ws_close_new(4000, r), 4000, r, 123 - (cl - 1));
            CHECK(rn <= 123);
        }
    }
    CHECK_EQ(bytes_live(), live);
}

/* ---- handshake ---- */

TEST(accept_key)
{
    char out[29];
    memset(out, '#', sizeof out);
    CHECK_EQ(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0);
    CHECK(strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0); /* RFC 6455 section 1.3 */
    CHECK_EQ(ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out), 0);
    CHECK(strcmp(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=") == 0);
    CHECK_EQ(ws_accept_key("AAAAAAAAAAAAAAAAAAAAAA==", 24, out), 0);
    CHECK(strcmp(out, "ICX+Yqv66kxgM0FcWaLWlFLwTAI=") == 0);
    CHECK_EQ(ws_accept_key("/////////////////////w==", 24, out), 0);
    CHECK(strcmp(out, "XXpj4jYzLM2yUE0C7TIgMwTQh2g=") == 0);

    /* Read through a guard page: exactly n bytes, no NUL needed. */
    CHECK_EQ(ws_accept_key(gp("dGhlIHNhbXBsZSBub25jZQ==", 24), 24, out), 0);
    CHECK(strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);

    static const char *const bad[] = {
        "",
        "dGhlIHNhbXBsZSBub25jZQ=",     /* 23 */
        "dGhlIHNhbXBsZSBub25jZQ===",   /* 25 */
        "dGhlIHNhbXBsZSBub25jZQ",      /* no padding */
        "dGhlIHNhbXBsZSBub25jZQAA",    /* 18 bytes */
        "dGhlIHNhbXBsZSBub25jZQA=",    /* 17 bytes */
        "dGhlIHNhbXBsZSBub25jZ===",    /* padding too early */
        "dGhlIHNhbXBsZSBub25j=Q==",    /* '=' inside */
        "dGhlIHNhbXBsZSBub25jZ*==",    /* not base64 */
        "dGhlIHNhbXBsZSBub25jZ-==",    /* base64url is not base64 */
        " dGhlIHNhbXBsZSBub25jZQ==",   /* whitespace is the caller's to trim */
        "dGhlIHNhbXBsZSBub25jZQ== ",
        "dGhlIHNhbXBs ZSBub25jZQ==",
        "dGhlIHNhbXBsZSBub25jZQ==dGhlIHNhbXBsZSBub25jZQ==",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = strlen(bad[i]);
        if (ws_accept_key(gp(bad[i], n), n, out) != HR_EINVAL) {
            printf("#   accepted key \"%s\"\n", bad[i]);
            CHECK(0);
        }
    }
    /* A NUL inside a 24-byte key. */
    CHECK_EQ(ws_accept_key(gp("dGhlIHNhbXBsZSBu\0" "25jZQ==", 24), 24, out), HR_EINVAL);
    gp_release();
}

/* ---- permessage-deflate ---- */

typedef struct {
    size_t rc;
    ws_deflate_t d;
    char resp[256];
} nego_t;

static nego_t nego_cap(const char *hdr, size_t cap)
{
    nego_t r;
    memset(&r, 0x5A, sizeof r);
    size_t n = strlen(hdr);
    r.rc = ws_deflate_negotiate(gp(hdr, n), n, &r.d, r.resp, cap);
    if (r.rc) {
        CHECK(r.d.enabled);
        CHECK(r.rc < cap && strlen(r.resp) == r.rc);
        CHECK(r.d.server_no_context_takeover);
    } else {
        CHECK(!r.d.enabled);
    }
    return r;
}

static nego_t nego(const char *hdr) { return nego_cap(hdr, sizeof((nego_t *)0)->resp); }

/* Negotiates hdr and checks the answer and the agreed windows (want NULL: declined). */
static void accepts(const char *hdr, const char *want, bool cnct, int smwb, int cmwb, int line)
{
    nego_t r = nego(hdr);
    if (!want) {
        if (r.rc) printf("#   line %d: \"%s\" accepted as \"%s\"\n", line, hdr, r.resp);
        CHECK_EQ(r.rc, 0);
        gp_release();
        return;
    }
    if (r.rc == 0 || strcmp(r.resp, want) != 0) {
        printf("#   line %d: \"%s\" gave \"%.*s\", want \"%s\"\n", line, hdr, (int)(r.rc ? r.rc : 0), r.resp, want);
        CHECK(0);
    }
    CHECK_EQ(r.d.client_no_context_takeover, cnct);
    CHECK_EQ(r.d.server_max_window_bits, smwb);
    CHECK_EQ(r.d.client_max_window_bits, cmwb);
    gp_release();
}

#define PMD "permessage-deflate; server_no_context_takeover"
#define ACCEPTS(hdr, want, cnct, smwb, cmwb) accepts(hdr, want, cnct, smwb, cmwb, __LINE__)
#define DECLINES(hdr) accepts(hdr, NULL, false, 0, 0, __LINE__)

TEST(deflate_real_offers)
{
    ACCEPTS("permessage-deflate; client_max_window_bits", PMD, false, 15, 15); /* Chrome, node ws, python websockets */
    ACCEPTS("permessage-deflate", PMD, false, 15, 15);                         /* Firefox */
    ACCEPTS("permessage-deflate; client_max_window_bits; server_max_window_bits=10", /* Chrome, limited */
            PMD "; server_max_window_bits=10", false, 10, 15);
    ACCEPTS("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12", /* websockets, tuned */
            PMD "; server_max_window_bits=12; client_max_window_bits=12", false, 12, 12);
    ACCEPTS("permessage-deflate; client_no_context_takeover; client_max_window_bits",
            PMD "; client_no_context_takeover", true, 15, 15);
    ACCEPTS("permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            PMD "; client_no_context_takeover", true, 15, 15);
    ACCEPTS("permessage-deflate; client_max_window_bits=8", PMD "; client_max_window_bits=8", false, 15, 8);
    ACCEPTS("permessage-deflate; server_max_window_bits=9", PMD "; server_max_window_bits=9", false, 9, 15);
    ACCEPTS("permessage-deflate; server_max_window_bits=15", PMD "; server_max_window_bits=15", false, 15, 15);
    /* The longest answer: 128 characters. */
    ACCEPTS("permessage-deflate;client_no_context_takeover;server_max_window_bits=15;client_max_window_bits=15",
            PMD "; client_no_context_takeover; server_max_window_bits=15; client_max_window_bits=15", true, 15, 15);
    /* Safari's old extension and other unknown extensions are skipped. */
    DECLINES("x-webkit-deflate-frame");
    ACCEPTS("x-webkit-deflate-frame, permessage-deflate; client_max_window_bits", PMD, false, 15, 15);
    ACCEPTS("foo; bar=\"a,b\"; baz, permessage-deflate", PMD, false, 15, 15);
    DECLINES("");
    DECLINES(" ");
    DECLINES(", ,");
}

TEST(deflate_syntax_variants)
{
    /* Whitespace around separators, quoted values (RFC 7692 section 7.1), empty list elements. */
    ACCEPTS("permessage-deflate ; client_max_window_bits = 10", PMD "; client_max_window_bits=10", false, 15, 10);
    ACCEPTS("\tpermessage-deflate\t;\tserver_max_window_bits\t=\t11\t", PMD "; server_max_window_bits=11", false,
            11, 15);
    ACCEPTS("permessage-deflate; client_max_window_bits=\"10\"", PMD "; client_max_window_bits=10", false, 15, 10);
    ACCEPTS("permessage-deflate; server_max_window_bits=\"13\"", PMD "; server_max_window_bits=13", false, 13, 15);
    ACCEPTS("permessage-deflate; client_max_window_bits=\"1\\0\"", PMD "; client_max_window_bits=10", false, 15, 10);
    ACCEPTS("permessage-deflate;client_max_window_bits;client_no_context_takeover", PMD "; client_no_context_takeover",
            true, 15, 15);
    ACCEPTS(",permessage-deflate,", PMD, false, 15, 15);
    ACCEPTS(" , permessage-deflate", PMD, false, 15, 15);
}

TEST(deflate_first_acceptable_offer)
{
    /* A refused offer falls through to the next one; the first acceptable one wins. */
    ACCEPTS("permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits", PMD, false,
            15, 15);
    ACCEPTS("permessage-deflate; server_max_window_bits=10, permessage-deflate", PMD "; server_max_window_bits=10",
            false, 10, 15);
    ACCEPTS("permessage-deflate; foo, permessage-deflate; client_no_context_takeover",
            PMD "; client_no_context_takeover", true, 15, 15);
    ACCEPTS("permessage-deflate; client_max_window_bits=\"1,0\", permessage-deflate; server_max_window_bits=14",
            PMD "; server_max_window_bits=14", false, 14, 15);
    ACCEPTS("permessage-deflate; client_max_window_bits=\"10, permessage-deflate", NULL, false, 0, 0);
    ACCEPTS("permessage-deflate; client_max_window_bits=\"\\\"\", permessage-deflate", PMD, false, 15, 15);
}

TEST(deflate_bad_offers)
{
    DECLINES("permessage-deflate; server_max_window_bits=8"); /* zlib cannot do a 256-byte window */
    DECLINES("permessage-deflate; server_max_window_bits=\"8\"");
    DECLINES("permessage-deflate; server_max_window_bits");
    DECLINES("permessage-deflate; server_max_window_bits=");
    DECLINES("permessage-deflate; server_max_window_bits=\"\"");
    DECLINES("permessage-deflate; server_max_window_bits=16");
    DECLINES("permessage-deflate; server_max_window_bits=7");
    DECLINES("permessage-deflate; server_max_window_bits=0");
    DECLINES("permessage-deflate; server_max_window_bits=09");
    DECLINES("permessage-deflate; server_max_window_bits=010");
    DECLINES("permessage-deflate; server_max_window_bits=1");
    DECLINES("permessage-deflate; server_max_window_bits=abc");
    DECLINES("permessage-deflate; server_max_window_bits=-10");
    DECLINES("permessage-deflate; server_max_window_bits=10 11");
    DECLINES("permessage-deflate; client_max_window_bits=16");
    DECLINES("permessage-deflate; client_max_window_bits=7");
    DECLINES("permessage-deflate; client_max_window_bits=");
    DECLINES("permessage-deflate; client_max_window_bits=\"10");
    DECLINES("permessage-deflate; client_max_window_bits=\"10\"x");
    DECLINES("permessage-deflate; server_no_context_takeover=1");
    DECLINES("permessage-deflate; client_no_context_takeover=\"\"");
    DECLINES("permessage-deflate; server_no_context_takeover; server_no_context_takeover");
    DECLINES("permessage-deflate; client_no_context_takeover; client_no_context_takeover");
    DECLINES("permessage-deflate; client_max_window_bits; client_max_window_bits=10");
    DECLINES("permessage-deflate; server_max_window_bits=10; server_max_window_bits=10");
    DECLINES("permessage-deflate; foo");
    DECLINES("permessage-deflate; foo=1");
    DECLINES("permessage-deflate; Client_Max_Window_Bits");
    DECLINES("Permessage-Deflate");
    DECLINES("permessage-deflate-x");
    DECLINES("permessage-deflate x");
    DECLINES("permessage-deflate;");
    DECLINES("permessage-deflate; ");
    DECLINES("permessage-deflate;; client_max_window_bits");
    DECLINES("permessage-deflate; =10");
    DECLINES("permessage-deflate client_max_window_bits");
    DECLINES("\"permessage-deflate\"");
    DECLINES("permessage-deflate\r\n");
}

TEST(deflate_small_buffer)
{
    nego_t r = nego_cap("permessage-deflate", sizeof PMD - 1); /* no room for the NUL */
    CHECK_EQ(r.rc, 0);
    r = nego_cap("permessage-deflate", sizeof PMD);
    CHECK_EQ(r.rc, sizeof PMD - 1);
    CHECK(strcmp(r.resp, PMD) == 0);
    r = nego_cap("permessage-deflate", 0);
    CHECK_EQ(r.rc, 0);
    gp_release();
}

/* ---- subprotocols ---- */

static int pick(const char *hdr, const char *const *supported)
{
    int rc = ws_pick_subprotocol(gp(hdr, strlen(hdr)), strlen(hdr), supported);
    gp_release();
    return rc;
}

TEST(subprotocol)
{
    static const char *const sup[] = {"mqtt", "v12.stomp", "v11.stomp", "herald.v1", NULL};
    CHECK_EQ(pick("mqtt", sup), 0);
    CHECK_EQ(pick("v10.stomp, v11.stomp, v12.stomp", sup), 2); /* the client's order wins */
    CHECK_EQ(pick("v12.stomp,v11.stomp", sup), 1);
    CHECK_EQ(pick(" \t herald.v1 \t ", sup), 3);
    CHECK_EQ(pick("chat, superchat,herald.v1", sup), 3);
    CHECK_EQ(pick(",,, ,mqtt,", sup), 0);
    CHECK_EQ(pick("MQTT", sup), -1); /* case-sensitive */
    CHECK_EQ(pick("mqtt5", sup), -1);
    CHECK_EQ(pick("mqt", sup), -1);
    CHECK_EQ(pick("mq tt", sup), -1);
    CHECK_EQ(pick("", sup), -1);
    CHECK_EQ(pick(",", sup), -1);
    CHECK_EQ(pick("chat", sup), -1);
    CHECK_EQ(pick("mqtt", NULL), -1);
    static const char *const none[] = {NULL};
    CHECK_EQ(pick("mqtt", none), -1);
    CHECK_EQ(ws_pick_subprotocol("mqtt\0v12.stomp", 14, sup), -1);
    CHECK_EQ(ws_pick_subprotocol("mqttx", 4, sup), 0); /* exactly n bytes */
}

int main(void)
{
    RUN(rfc_examples);
    RUN(rfc_examples_encoded);
    RUN(incremental_every_split);
    RUN(successive_frames);
    RUN(refused_reserved_bits_and_opcodes);
    RUN(refused_control_frames);
    RUN(refused_masking);
    RUN(refused_lengths);
    RUN(refused_too_big);
    RUN(refusal_order_within_a_byte);
    RUN(mask_in_pieces);
    RUN(partial_frames);
    RUN(partial_utf8_fail_fast);
    RUN(utf8_valid_sequences);
    RUN(utf8_fail_fast);
    RUN(utf8_truncated);
    RUN(utf8_exhaustive);
    RUN(msg_sequencing);
    RUN(msg_refusals);
    RUN(msg_too_big);
    RUN(close_parse_codes);
    RUN(close_parse_reasons);
    RUN(frame_new);
    RUN(close_new);
    RUN(accept_key);
    RUN(deflate_real_offers);
    RUN(deflate_syntax_variants);
    RUN(deflate_first_acceptable_offer);
    RUN(deflate_bad_offers);
    RUN(deflate_small_buffer);
    RUN(subprotocol);
    return UNIT_DONE();
}
