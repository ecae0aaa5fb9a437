/* test_chunked.c - unit tests for chunked_decode() and chunked_size_line() (src/http/chunked.h).
 *
 * feed() plays the HTTP server: it hands the input to the decoder in pieces, each piece in its own
 * guard-page buffer (so a read or write past the piece crashes), collects the decoded bytes the
 * decoder moved to the front, and checks that bytes after the body's end are left untouched. */
#include <string.h>

#include "../../src/core/err.h"
#include "../../src/http/chunked.h"
#include "unit.h"

typedef struct {
    ssize_t rc;      /* last return value */
    size_t consumed; /* offset in the whole input where the body ended (when rc >= 0) */
    char out[8192];  /* decoded body */
    size_t out_n;
} feed_t;

/* Feeds in[0..n) in pieces of `step` bytes (the first piece is `first` bytes when non-zero). */
static void feed(const char *in, size_t n, size_t first, size_t step, uint64_t max_body, feed_t *f)
{
    chunked_dec_t st = {0};
    f->rc = HR_EAGAIN;
    f->consumed = 0;
    f->out_n = 0;
    size_t off = 0;
    while (off < n) {
        size_t k = first && off == 0 ? first : step;
        if (k > n - off) k = n - off;
        void *m;
        size_t ml, got = 99999;
        char *p = guard_page_copy(in + off, k, &m, &ml);
        f->rc = chunked_decode(&st, p, k, &got, max_body);
        CHECK(got <= k);
        if (got <= k && f->out_n + got <= sizeof f->out) {
            memcpy(f->out + f->out_n, p, got);
            f->out_n += got;
        }
        if (f->rc >= 0) {
            CHECK(f->rc <= (ssize_t)k);
            CHECK(got <= (size_t)f->rc);
            CHECK(memcmp(p + f->rc, in + off + f->rc, k - (size_t)f->rc) == 0);
            f->consumed = off + (size_t)f->rc;
        }
        guard_page_free(m, ml);
        if (f->rc != HR_EAGAIN) return;
        off += k;
    }
}

/* Decodes s all at once, byte by byte, and split at every point; all must agree. */
static void check_body(const char *s, size_t n, const char *want, size_t want_n, size_t body_len)
{
    feed_t f;
    feed(s, n, 0, n, 1 << 20, &f);
    CHECK_EQ(f.rc, body_len);
    CHECK_EQ(f.consumed, body_len);
    CHECK(f.out_n == want_n && memcmp(f.out, want, want_n) == 0);
    feed(s, n, 0, 1, 1 << 20, &f);
    CHECK_EQ(f.rc, 1); /* byte by byte: the piece holding the body's last byte returns 1 */
    CHECK_EQ(f.consumed, body_len);
    CHECK(f.out_n == want_n && memcmp(f.out, want, want_n) == 0);
    for (size_t k = 1; k < n; k++) {
        feed(s, n, k, n, 1 << 20, &f);
        CHECK(f.rc >= 0);
        CHECK_EQ(f.consumed, body_len);
        CHECK(f.out_n == want_n && memcmp(f.out, want, want_n) == 0);
    }
}

#define BODY(s, want) check_body(s, sizeof(s) - 1, want, sizeof(want) - 1, sizeof(s) - 1)

TEST(simple)
{
    BODY("4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n", "Wikipedia");
    BODY("0\r\n\r\n", "");
    BODY("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij");
    BODY("0004\r\nabcd\r\n000\r\n\r\n", "abcd");
}

TEST(extensions_and_trailers)
{
    BODY("4;name=val\r\nWiki\r\n5 ; a=\"b c\";x\r\npedia\r\n0;last\r\n\r\n", "Wikipedia");
    BODY("3\t;e\r\nabc\r\n0\r\nX-Checksum: 1234\r\nX-Other:\tv\r\n\r\n", "abc");
    BODY("2\r\n\r\n\r\n0\r\n\r\n", "\r\n"); /* CRLF inside the data is data */
}

TEST(bare_lf)
{
    BODY("4\nWiki\n5\npedia\n0\nT: v\n\n", "Wikipedia");
    BODY("4\r\nWiki\n0\r\n\n", "Wiki");
}

TEST(leftover_next_request)
{
    static const char s[] = "4\r\nWiki\r\n0\r\nT: x\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t body_len = strlen("4\r\nWiki\r\n0\r\nT: x\r\n\r\n");
    feed_t f;
    feed(s, sizeof s - 1, 0, sizeof s - 1, 1000, &f);
    CHECK_EQ(f.rc, body_len);
    CHECK_MEM(f.out, f.out_n, "Wiki");
    for (size_t step = 1; step < 8; step++) {
        feed(s, sizeof s - 1, 0, step, 1000, &f);
        CHECK(f.rc >= 0);
        CHECK_EQ(f.consumed, body_len);
        CHECK_MEM(f.out, f.out_n, "Wiki");
    }
    /* The next request's first byte looks like more hex: it must not be taken. */
    static const char t[] = "1\r\na\r\n0\r\n\r\nabc";
    feed(t, sizeof t - 1, 0, sizeof t - 1, 1000, &f);
    CHECK_EQ(f.rc, sizeof t - 1 - 3);
    CHECK_MEM(f.out, f.out_n, "a");
}

TEST(state_after_done_and_sticky_errors)
{
    chunked_dec_t st = {0};
    char buf[32];
    size_t out;
    memcpy(buf, "1\r\nx\r\n0\r\n\r\nzz", 13);
    CHECK_EQ(chunked_decode(&st, buf, 13, &out, 100), 11);
    CHECK_EQ(out, 1);
    CHECK_EQ(buf[0], 'x');
    CHECK_MEM(buf + 11, 2, "zz");
    memcpy(buf, "1\r\ny", 4);
    CHECK_EQ(chunked_decode(&st, buf, 4, &out, 100), 0); /* done: nothing more belongs to it */
    CHECK_EQ(out, 0);

    chunked_dec_t bad = {0};
    memcpy(buf, "g\r\n", 3);
    CHECK_EQ(chunked_decode(&bad, buf, 3, &out, 100), HR_EBADREQ);
    memcpy(buf, "0\r\n\r\n", 5);
    CHECK_EQ(chunked_decode(&bad, buf, 5, &out, 100), HR_EBADREQ);
    CHECK_EQ(out, 0);
}

/* Decodes s at once and byte by byte; both must end with rc. */
static void check_err(const char *s, size_t n, uint64_t max_body, ssize_t rc)
{
    feed_t f;
    feed(s, n, 0, n, max_body, &f);
    CHECK_EQ(f.rc, rc);
    feed(s, n, 0, 1, max_body, &f);
    CHECK_EQ(f.rc, rc);
}

#define ERR(s, max, rc) check_err(s, sizeof(s) - 1, max, rc)

TEST(malformed)
{
    ERR("x\r\n", 100, HR_EBADREQ);
    ERR("\r\n", 100, HR_EBADREQ);
    ERR(";ext\r\n", 100, HR_EBADREQ);
    ERR(" 4\r\nWiki\r\n0\r\n\r\n", 100, HR_EBADREQ);
    ERR("-4\r\n", 100, HR_EBADREQ);
    ERR("4 x\r\nWiki\r\n", 100, HR_EBADREQ);
    ERR("4x\r\nWiki\r\n", 100, HR_EBADREQ);
    ERR("4\rx", 100, HR_EBADREQ);
    ERR("4\r\nWikiX\r\n", 100, HR_EBADREQ);
    ERR("4\r\nWiki\rX", 100, HR_EBADREQ);
    ERR("4;a\x01\r\nWiki\r\n", 100, HR_EBADREQ);
    ERR("4;a\0\r\nWiki\r\n", 100, HR_EBADREQ);
    ERR("0\r\nT: v\rX", 100, HR_EBADREQ);
    ERR("0\r\nT: \x01\r\n\r\n", 100, HR_EBADREQ);
    ERR("0\r\n\rX", 100, HR_EBADREQ);
    ERR("0\r\n\x7f\r\n\r\n", 100, HR_EBADREQ);
}

TEST(size_limits)
{
    feed_t f;
    /* 2^60 itself is a legal size (the body limit then refuses it); one more is malformed. */
    ERR("1000000000000000\r\n", UINT64_MAX, HR_EAGAIN);
    ERR("1000000000000001\r\n", UINT64_MAX, HR_EBADREQ);
    ERR("FFFFFFFFFFFFFFFFFFFF\r\n", UINT64_MAX, HR_EBADREQ);
    ERR("10000000000000000\r\n", UINT64_MAX, HR_EBADREQ);
    /* Body limit: exactly max_body passes, one more is refused at the size line, before data. */
    static const char w[] = "4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n";
    feed(w, sizeof w - 1, 0, 1, 9, &f);
    CHECK_EQ(f.consumed, sizeof w - 1);
    ERR("4\r\nWiki\r\n5\r\n", 8, HR_EBODYTOOBIG);
    ERR("4\r\nWiki\r\n5;x\r\n", 8, HR_EBODYTOOBIG);
    ERR("1\r\nW\r\n", 0, HR_EBODYTOOBIG);
    feed("0\r\n\r\n", 5, 0, 5, 0, &f); /* an empty body fits max_body 0 */
    CHECK_EQ(f.rc, 5);
    ERR("1000000000000000\r\n", 1 << 20, HR_EBODYTOOBIG);
}

TEST(line_limits)
{
    static char line[8192];
    feed_t f;
    /* A size line of exactly 4096 bytes (CRLF included) passes; 4097 does not. */
    size_t n = 0;
    line[n++] = '1';
    line[n++] = ';';
    memset(line + n, 'e', 4096 - 4);
    n += 4096 - 4;
    memcpy(line + n, "\r\nx\r\n0\r\n\r\n", 10);
    feed(line, n + 10, 0, 7, 100, &f);
    CHECK(f.rc >= 0);
    CHECK_MEM(f.out, f.out_n, "x");
    memmove(line + 3, line + 2, n + 10 - 2);
    line[2] = 'e';
    feed(line, n + 11, 0, 7, 100, &f);
    CHECK_EQ(f.rc, HR_EBADREQ);
    /* Long leading zeros count against the line too. */
    memset(line, '0', 5000);
    feed(line, 5000, 0, 5000, 100, &f);
    CHECK_EQ(f.rc, HR_EBADREQ);
    /* A trailer line over 4096 bytes. */
    memcpy(line, "0\r\nX: ", 6);
    memset(line + 6, 'v', 5000);
    feed(line, 5006, 0, 5006, 100, &f);
    CHECK_EQ(f.rc, HR_EBADREQ);
    feed(line, 4000, 0, 4000, 100, &f);
    CHECK_EQ(f.rc, HR_EAGAIN);
}

TEST(trailer_flood_refused)
{
    /* Endless short trailer lines must not keep the body open forever. */
    chunked_dec_t st = {0};
    char buf[64];
    size_t out;
    memcpy(buf, "0\r\n", 3);
    CHECK_EQ(chunked_decode(&st, buf, 3, &out, 100), HR_EAGAIN);
    ssize_t rc = HR_EAGAIN;
    int rounds = 0;
    while (rc == HR_EAGAIN && rounds < 100000) {
        memcpy(buf, "X-Pad: abcdefgh\r\n", 17);
        rc = chunked_decode(&st, buf, 17, &out, 100);
        rounds++;
    }
    CHECK_EQ(rc, HR_EBADREQ);
    CHECK(rounds > 100); /* a normal trailer section still fits */
}

TEST(size_line)
{
    char b[20];
    size_t n = chunked_size_line(b, 0);
    CHECK_MEM(b, n, "0\r\n");
    n = chunked_size_line(b, 255);
    CHECK_MEM(b, n, "ff\r\n");
    n = chunked_size_line(b, 0x1000);
    CHECK_MEM(b, n, "1000\r\n");
    n = chunked_size_line(b, SIZE_MAX);
    CHECK_MEM(b, n, "ffffffffffffffff\r\n");
}

TEST(encode_decode_round_trip)
{
    char wire[4096];
    size_t w = 0;
    char want[2048];
    size_t want_n = 0;
    for (size_t len = 1; len < 40; len += 7) {
        w += chunked_size_line(wire + w, len);
        for (size_t i = 0; i < len; i++) wire[w++] = want[want_n++] = (char)('a' + (len + i) % 26);
        memcpy(wire + w, "\r\n", 2);
        w += 2;
    }
    w += chunked_size_line(wire + w, 0);
    memcpy(wire + w, "\r\n", 2);
    w += 2;
    check_body(wire, w, want, want_n, w);
}

int main(void)
{
    RUN(simple);
    RUN(extensions_and_trailers);
    RUN(bare_lf);
    RUN(leftover_next_request);
    RUN(state_after_done_and_sticky_errors);
    RUN(malformed);
    RUN(size_limits);
    RUN(line_limits);
    RUN(trailer_flood_refused);
    RUN(size_line);
    RUN(encode_decode_round_trip);
    return UNIT_DONE();
}
