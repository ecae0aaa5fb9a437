/* test_request.c - unit tests for the request views in src/http/request.h: header lookup, token
 * lists, percent-decoding, query parameters, body framing and keep-alive. Inputs that the
 * functions scan byte by byte are placed right before a PROT_NONE page. */
#include <string.h>

#include "../../src/core/err.h"
#include "../../src/http/request.h"
#include "unit.h"

static const http_limits_t LIM = {.max_target = 1024, .max_head = 8192, .max_headers = 32};

static void *gp_map;
static size_t gp_len;

/* Parses s from a guard-page copy into r; the copy stays mapped until the next call. */
static void mkreq(const char *s, http_req_t *r)
{
    if (gp_map) guard_page_free(gp_map, gp_len);
    size_t n = strlen(s);
    const char *g = guard_page_copy(s, n, &gp_map, &gp_len);
    ssize_t rc = http_parse_request(g, n, &LIM, r);
    if (rc != (ssize_t)n) printf("#   setup parse failed (%zd): %s\n", rc, s);
    CHECK_EQ(rc, n);
}

TEST(header_lookup)
{
    http_req_t r;
    mkreq("GET / HTTP/1.1\r\nHost: h\r\nX-Id: 1\r\nx-id: 2\r\nEmpty:\r\n\r\n", &r);
    span_t v = http_req_header(&r, "x-ID");
    CHECK_MEM(v.p, v.n, "1"); /* the first of several */
    v = http_req_header(&r, "host");
    CHECK_MEM(v.p, v.n, "h");
    v = http_req_header(&r, "Empty");
    CHECK(v.p != NULL);
    CHECK_EQ(v.n, 0);
    v = http_req_header(&r, "Missing");
    CHECK(v.p == NULL);
    CHECK(http_req_header(&r, "X-I").p == NULL); /* no prefix match */
    CHECK(http_req_header(&r, "X-Id2").p == NULL);
}

TEST(header_has_token)
{
    http_req_t r;
    mkreq("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive , Upgrade\r\n"
          "connection: ,,x-close\r\nUpgrade: websocket\r\n\r\n",
          &r);
    CHECK(http_req_header_has(&r, "Connection", "upgrade"));
    CHECK(http_req_header_has(&r, "CONNECTION", "Keep-Alive"));
    CHECK(http_req_header_has(&r, "Connection", "x-close")); /* from the second field */
    CHECK(!http_req_header_has(&r, "Connection", "close"));
    CHECK(!http_req_header_has(&r, "Connection", "keep"));
    CHECK(!http_req_header_has(&r, "Connection", "websocket"));
    CHECK(http_req_header_has(&r, "Upgrade", "WebSocket"));
    CHECK(!http_req_header_has(&r, "Missing", "x"));
}

/* Percent-decodes s from a guard-page copy with the given capacity. */
static ssize_t pct(const char *s, char *out, size_t cap)
{
    void *m;
    size_t ml, n = strlen(s);
    const char *g = guard_page_copy(s, n, &m, &ml);
    ssize_t rc = http_pct_decode(g, n, out, cap);
    guard_page_free(m, ml);
    return rc;
}

TEST(pct_decode)
{
    char out[32];
    CHECK_EQ(pct("a%20b", out, sizeof out), 3);
    CHECK_MEM(out, 4, "a b\0");
    CHECK_EQ(pct("a+b", out, sizeof out), 3);
    CHECK_MEM(out, 3, "a+b"); /* '+' stays '+' outside queries */
    CHECK_EQ(pct("%41%6a%2F%c3%A9", out, sizeof out), 5);
    CHECK_MEM(out, 5, "Aj/\xc3\xa9");
    CHECK_EQ(pct("", out, sizeof out), 0);
    CHECK_EQ(out[0], '\0');
    CHECK_EQ(pct("%", out, sizeof out), HR_EINVAL);
    CHECK_EQ(pct("a%4", out, sizeof out), HR_EINVAL);
    CHECK_EQ(pct("%zz", out, sizeof out), HR_EINVAL);
    CHECK_EQ(pct("%4g", out, sizeof out), HR_EINVAL);
    CHECK_EQ(pct("%g4", out, sizeof out), HR_EINVAL);
    CHECK_EQ(pct("a%00b", out, sizeof out), HR_EINVAL);
    /* Capacity counts the terminating NUL. */
    CHECK_EQ(pct("abc", out, 4), 3);
    CHECK_EQ(pct("abc", out, 3), HR_EINVAL);
    CHECK_EQ(pct("%41%41", out, 3), 2);
    CHECK_EQ(pct("%41%41", out, 2), HR_EINVAL);
    CHECK_EQ(pct("", out, 0), HR_EINVAL);
    /* Raw NUL in the input is refused like %00. */
    CHECK_EQ(http_pct_decode("a\0b", 3, out, sizeof out), HR_EINVAL);
}

TEST(query_params)
{
    http_req_t r;
    mkreq("GET /sub?a=1&b=hello+world&c=x%20y&d&e=&f=%zz&last%2Did=9&a=2&k=v=w&big=0123456789 "
          "HTTP/1.1\r\nHost: h\r\n\r\n",
          &r);
    char out[8];
    CHECK_EQ(http_req_query(&r, "a", out, sizeof out), 1);
    CHECK_MEM(out, 1, "1"); /* first of duplicates */
    CHECK_EQ(http_req_query(&r, "b", out, sizeof out), HR_EINVAL); /* "hello world" needs 12 */
    char big[32];
    CHECK_EQ(http_req_query(&r, "b", big, sizeof big), 11);
    CHECK_MEM(big, 11, "hello world");
    CHECK_EQ(http_req_query(&r, "c", big, sizeof big), 3);
    CHECK_MEM(big, 3, "x y");
    CHECK_EQ(http_req_query(&r, "d", big, sizeof big), 0);
    CHECK_EQ(big[0], '\0');
    CHECK_EQ(http_req_query(&r, "e", big, sizeof big), 0);
    CHECK_EQ(http_req_query(&r, "f", big, sizeof big), HR_EINVAL);
    CHECK_EQ(http_req_query(&r, "last-id", big, sizeof big), 1);
    CHECK_MEM(big, 1, "9");
    CHECK_EQ(http_req_query(&r, "k", big, sizeof big), 3);
    CHECK_MEM(big, 3, "v=w");
    CHECK_EQ(http_req_query(&r, "big", big, 11), 10);
    CHECK_EQ(http_req_query(&r, "big", big, 10), HR_EINVAL);
    CHECK_EQ(http_req_query(&r, "zz", big, sizeof big), HR_ENOTFOUND);
    CHECK_EQ(http_req_query(&r, "", big, sizeof big), HR_ENOTFOUND);
    CHECK_EQ(http_req_query(&r, "last", big, sizeof big), HR_ENOTFOUND);
    CHECK_EQ(http_req_query(&r, "hello", big, sizeof big), HR_ENOTFOUND); /* values are not keys */

    mkreq("GET /sub HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    CHECK_EQ(http_req_query(&r, "a", big, sizeof big), HR_ENOTFOUND);
    mkreq("GET /sub?&&x+y=1 HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    CHECK_EQ(http_req_query(&r, "x y", big, sizeof big), 1);
}

TEST(query_guard_page)
{
    /* A query that ends exactly at the guard page, cut inside an escape. */
    static const char *const qs[] = {"a=%4", "a=%", "a", "a=", "x%4", "a=b%41"};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        void *m;
        size_t ml, n = strlen(qs[i]);
        const char *g = guard_page_copy(qs[i], n, &m, &ml);
        http_req_t r = {0};
        r.query = (span_t){g, n};
        char out[16];
        ssize_t rc = http_req_query(&r, "a", out, sizeof out);
        if (i < 2) CHECK_EQ(rc, HR_EINVAL);
        if (i == 2 || i == 3) CHECK_EQ(rc, 0);
        if (i == 4) CHECK_EQ(rc, HR_ENOTFOUND);
        if (i == 5) {
            CHECK_EQ(rc, 2);
            CHECK_MEM(out, 2, "bA");
        }
        guard_page_free(m, ml);
    }
}

/* Parses head s and runs http_req_body on it. */
static int body(const char *s, http_body_kind_t *kind, uint64_t *len, const char **why)
{
    http_req_t r;
    mkreq(s, &r);
    int rc = http_req_body(&r, kind, len);
    *why = r.why;
    return rc;
}

#define H11 "POST / HTTP/1.1\r\nHost: h\r\n"

TEST(body_framing_ok)
{
    http_body_kind_t k;
    uint64_t n;
    const char *why;
    CHECK_EQ(body(H11 "\r\n", &k, &n, &why), 0);
    CHECK_EQ(k, HTTP_BODY_NONE);
    CHECK_EQ(body(H11 "Content-Length: 42\r\n\r\n", &k, &n, &why), 0);
    CHECK_EQ(k, HTTP_BODY_LENGTH);
    CHECK_EQ(n, 42);
    CHECK_EQ(body(H11 "Content-Length: 0\r\n\r\n", &k, &n, &why), 0);
    CHECK_EQ(k, HTTP_BODY_LENGTH);
    CHECK_EQ(n, 0);
    CHECK_EQ(body(H11 "Content-Length: 5, 5\r\n\r\n", &k, &n, &why), 0);
    CHECK_EQ(n, 5);
    CHECK_EQ(body(H11 "Content-Length: 7\r\ncontent-length: 7\r\n\r\n", &k, &n, &why), 0);
    CHECK_EQ(k, HTTP_BODY_LENGTH);
    CHECK_EQ(n, 7);
    CHECK_EQ(body(H11 "Content-Length: 999999999999999999\r\n\r\n", &k, &n, &why), 0);
    CHECK_EQ(n, 999999999999999999ULL);
    CHECK_EQ(body(H11 "Transfer-Encoding: chunked\r\n\r\n", &k, &n, &why), 0);
    CHECK_EQ(k, HTTP_BODY_CHUNKED);
    CHECK_EQ(body(H11 "Transfer-Encoding: Chunked\r\n\r\n", &k, &n, &why), 0);
    CHECK_EQ(k, HTTP_BODY_CHUNKED);
    CHECK_EQ(body(H11 "Transfer-Encoding: , chunked,\r\n\r\n", &k, &n, &why), 0);
    CHECK_EQ(k, HTTP_BODY_CHUNKED);
}

TEST(body_framing_errors)
{
    http_body_kind_t k;
    uint64_t n;
    const char *why;
    static const char *const bad_cl[] = {
        H11 "Content-Length: +5\r\n\r\n",  H11 "Content-Length: -1\r\n\r\n",
        H11 "Content-Length: 5a\r\n\r\n",  H11 "Content-Length:\r\n\r\n",
        H11 "Content-Length: 5,\r\n\r\n",  H11 "Content-Length: 0x10\r\n\r\n",
        H11 "Content-Length: 5 5\r\n\r\n", H11 "Content-Length: 9999999999999999999999\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad_cl / sizeof bad_cl[0]; i++) {
        CHECK_EQ(body(bad_cl[i], &k, &n, &why), HR_EBADREQ);
        CHECK(why && strcmp(why, "bad Content-Length") == 0);
    }
    CHECK_EQ(body(H11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", &k, &n, &why), HR_EBADREQ);
    CHECK(why && strcmp(why, "conflicting Content-Length") == 0);
    CHECK_EQ(body(H11 "Content-Length: 5, 6\r\n\r\n", &k, &n, &why), HR_EBADREQ);
    CHECK(why && strcmp(why, "conflicting Content-Length") == 0);

    CHECK_EQ(body(H11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", &k, &n, &why),
             HR_EBADREQ);
    CHECK(why && strcmp(why, "both Transfer-Encoding and Content-Length") == 0);
    CHECK_EQ(body(H11 "Content-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n", &k, &n, &why),
             HR_EBADREQ);
    CHECK(why && strcmp(why, "both Transfer-Encoding and Content-Length") == 0);

    CHECK_EQ(body(H11 "Transfer-Encoding: gzip\r\n\r\n", &k, &n, &why), HR_ENOTIMPL);
    CHECK(why && strcmp(why, "unsupported transfer coding") == 0);
    CHECK_EQ(body(H11 "Transfer-Encoding: gzip, chunked\r\n\r\n", &k, &n, &why), HR_ENOTIMPL);
    CHECK_EQ(body(H11 "Transfer-Encoding: chunked, gzip\r\n\r\n", &k, &n, &why), HR_ENOTIMPL);
    CHECK_EQ(body(H11 "Transfer-Encoding: chunked;q=1\r\n\r\n", &k, &n, &why), HR_ENOTIMPL);
    CHECK_EQ(body(H11 "Transfer-Encoding: chunked, chunked\r\n\r\n", &k, &n, &why), HR_EBADREQ);
    CHECK_EQ(body(H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", &k, &n, &why),
             HR_EBADREQ);
    CHECK_EQ(body(H11 "Transfer-Encoding:\r\n\r\n", &k, &n, &why), HR_EBADREQ);
    CHECK_EQ(body("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", &k, &n, &why), HR_EBADREQ);
    CHECK(why && strcmp(why, "Transfer-Encoding in HTTP/1.0 request") == 0);
}

TEST(keepalive_rules)
{
    http_req_t r;
    mkreq("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    CHECK(http_req_keepalive(&r));
    mkreq("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", &r);
    CHECK(!http_req_keepalive(&r));
    mkreq("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n", &r);
    CHECK(!http_req_keepalive(&r));
    mkreq("GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n", &r);
    CHECK(http_req_keepalive(&r));
    mkreq("GET / HTTP/1.0\r\n\r\n", &r);
    CHECK(!http_req_keepalive(&r));
    mkreq("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r);
    CHECK(http_req_keepalive(&r));
    mkreq("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", &r);
    CHECK(!http_req_keepalive(&r));
    mkreq("GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n", &r);
    CHECK(!http_req_keepalive(&r));
}

int main(void)
{
    RUN(header_lookup);
    RUN(header_has_token);
    RUN(pct_decode);
    RUN(query_params);
    RUN(query_guard_page);
    RUN(body_framing_ok);
    RUN(body_framing_errors);
    RUN(keepalive_rules);
    if (gp_map) guard_page_free(gp_map, gp_len);
    return UNIT_DONE();
}
