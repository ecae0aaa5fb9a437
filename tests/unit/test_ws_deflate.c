/* test_ws_deflate.c - unit tests for permessage-deflate (src/transport/ws_deflate.h): frames made
 * by the shared compressor parse as server frames with RSV1 and inflate back to the input; each
 * message is independent (no context carried over); incompressible input is declined; the
 * inflater bounds its output, rejects corrupt data and keeps or drops its context as told. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../../src/core/err.h"
#include "../../src/transport/ws_codec.h"
#include "../../src/transport/ws_deflate.h"
#include "unit.h"

/* Parses b as one server frame; returns its payload span via p/n and checks opcode and RSV1. */
static void parse_frame(bytes_t *b, uint8_t opcode, char **p, size_t *n)
{
    ws_limits_t lim = {.max_payload = 1u << 24, .server = false, .rsv1_ok = true};
    ws_frame_t f;
    uint16_t code;
    const char *why;
    ssize_t r = ws_frame_parse(b->data, b->len, &lim, &f, &code, &why);
    CHECK_EQ(r, (ssize_t)b->len);
    CHECK(f.fin);
    CHECK(f.rsv1);
    CHECK_EQ(f.opcode, opcode);
    *p = f.payload;
    *n = f.payload_len;
}

TEST(compress_round_trip)
{
    ws_zshared_t *zs = ws_zshared_new();
    char text[4000];
    for (size_t i = 0; i < sizeof(text); i++) text[i] = "herald pushes messages "[i % 23];
    for (int bits = 9; bits <= 15; bits += 6) {
        /* twice: the second message must not depend on the first (server_no_context_takeover) */
        for (int round = 0; round < 2; round++) {
            bytes_t *b = ws_zframe(zs, bits, WS_OP_TEXT, text, sizeof(text));
            CHECK(b != NULL);
            if (!b) continue;
            char *p;
            size_t n;
            parse_frame(b, WS_OP_TEXT, &p, &n);
            CHECK(n < sizeof(text) / 4);
            ws_zin_t *zin = NULL;
            char *out;
            size_t out_len;
            CHECK_EQ(ws_zinflate(&zin, p, n, sizeof(text), true, &out, &out_len), 0);
            CHECK(zin == NULL); /* reset: the context is dropped */
            CHECK_EQ(out_len, sizeof(text));
            CHECK(out && memcmp(out, text, sizeof(text)) == 0);
            free(out);
            bytes_unref(b);
        }
    }
    ws_zshared_free(zs);
}

TEST(incompressible_is_declined)
{
    ws_zshared_t *zs = ws_zshared_new();
    unsigned char rnd[256];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(rnd); i++) {
        x = x * 1103515245 + 12345;
        rnd[i] = (unsigned char)(x >> 16);
    }
    CHECK(ws_zframe(zs, 15, WS_OP_BINARY, rnd, sizeof(rnd)) == NULL);
    CHECK(ws_zframe(zs, 15, WS_OP_TEXT, "a", 1) == NULL);
    CHECK(ws_zframe(zs, 15, WS_OP_TEXT, "", 0) == NULL);
    ws_zshared_free(zs);
}

/* Compresses with a client-like context (kept across messages), as a browser would. */
static size_t client_deflate(z_stream *z, const char *in, size_t n, unsigned char *out, size_t cap)
{
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)n;
    z->next_out = out;
    z->avail_out = (uInt)cap;
    deflate(z, Z_SYNC_FLUSH);
    size_t len = cap - z->avail_out;
    return len - 4; /* without 00 00 ff ff */
}

TEST(inflate_keeps_context)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    CHECK_EQ(deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    unsigned char c1[256], c2[256];
    const char *m = "the same message, twice over";
    size_t n1 = client_deflate(&z, m, strlen(m), c1, sizeof(c1));
    size_t n2 = client_deflate(&z, m, strlen(m), c2, sizeof(c2));
    CHECK(n2 < n1); /* the second refers back to the first */
    ws_zin_t *zin = NULL;
    char *out;
    size_t len;
    CHECK_EQ(ws_zinflate(&zin, c1, n1, 1000, false, &out, &len), 0);
    CHECK_MEM(out, len, "the same message, twice over");
    free(out);
    CHECK(zin != NULL);
    CHECK_EQ(ws_zinflate(&zin, c2, n2, 1000, false, &out, &len), 0);
    CHECK_MEM(out, len, "the same message, twice over");
    free(out);
    ws_zin_free(zin);
    deflateEnd(&z);
}

TEST(inflate_bounds_and_errors)
{
    /* a bomb: 1 MiB of zeros compresses to about 1 KiB */
    char *zeros = calloc(1, 1 << 20);
    z_stream z;
    memset(&z, 0, sizeof(z));
    deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    unsigned char *c = malloc(1 << 16);
    size_t n = client_deflate(&z, zeros, 1 << 20, c, 1 << 16);
    deflateEnd(&z);
    CHECK(n < 8192);
    ws_zin_t *zin = NULL;
    char *out = (char *)1;
    size_t len = 7;
    CHECK_EQ(ws_zinflate(&zin, c, n, 65536, false, &out, &len), HR_EFULL);
    CHECK(out == NULL && len == 0 && zin == NULL);
    CHECK_EQ(ws_zinflate(&zin, c, n, 1 << 20, false, &out, &len), 0);
    CHECK_EQ(len, 1 << 20);
    free(out);
    ws_zin_free(zin);
    zin = NULL;
    /* corrupt data: a block type 3 (reserved) */
    unsigned char bad[4] = {0x07, 0xff, 0xff, 0xff};
    CHECK_EQ(ws_zinflate(&zin, bad, sizeof(bad), 1000, false, &out, &len), HR_EPROTO);
    CHECK(zin == NULL);
    /* empty message: a lone sync flush */
    CHECK_EQ(ws_zinflate(&zin, "", 0, 1000, true, &out, &len), 0);
    CHECK_EQ(len, 0);
    free(out);
    free(c);
    free(zeros);
}

int main(void)
{
    RUN(compress_round_trip);
    RUN(incompressible_is_declined);
    RUN(inflate_keeps_context);
    RUN(inflate_bounds_and_errors);
    return UNIT_DONE();
}
