/* test_http_parse.c - unit tests for http_parse_request() (src/http/parse.h).
 *
 * Every parse here goes through a guard-page copy: the input ends exactly at a PROT_NONE page, so
 * a read past len crashes the test. The copies stay mapped until gp_release() at the end of each
 * test, because the parsed slices point into them. */
#include <string.h>

#include "../../src/core/err.h"
#include "../../src/http/parse.h"
#include "unit.h"

static const http_limits_t LIM = {.max_target = 256, .max_head = 1024, .max_headers = 8};

static ssize_t parse_n(const char *s, size_t n, const http_limits_t *lim, http_req_t *r)
{
    return http_parse_request(gp(s, n), n, lim, r);
}

static ssize_t parse(const char *s, http_req_t *r) { return parse_n(s, strlen(s), &LIM, r); }

/* Asserts that s fails with rc and the reason whystr. */
#define CHECK_ERR(s, rc, whystr)                                                                   \
    do {                                                                                           \
        http_req_t r_;                                                                             \
        CHECK_EQ(parse((s), &r_), (rc));                                                           \
        CHECK(r_.why != NULL && strcmp(r_.why, (whystr)) == 0);                                    \
    } while (0)

/* Asserts that every proper prefix of s[0..n) is HR_EAGAIN and the whole is n. */
static void check_all_splits(const char *s, size_t n)
{
    http_req_t r;
    for (size_t k = 0; k < n; k++) {
        ssize_t rc = parse_n(s, k, &LIM, &r);
        if (rc != HR_EAGAIN) printf("#   prefix %zu of %zu gave %zd\n", k, n, rc);
        CHECK_EQ(rc, HR_EAGAIN);
        CHECK(r.why == NULL);
    }
    CHECK_EQ(parse_n(s, n, &LIM, &r), (ssize_t)n);
}

TEST(simple_get)
{
    const char *s = "GET /sub/a?mode=poll&x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
    http_req_t r;
    CHECK_EQ(parse(s, &r), strlen(s));
    CHECK_MEM(r.method.p, r.method.n, "GET");
    CHECK_MEM(r.target.p, r.target.n, "/sub/a?mode=poll&x=1");
    CHECK_MEM(r.path.p, r.path.n, "/sub/a");
    CHECK_MEM(r.query.p, r.query.n, "mode=poll&x=1");
    CHECK_EQ(r.minor, 1);
    CHECK_EQ(r.nheaders, 2);
    CHECK_MEM(r.headers[0].name.p, r.headers[0].name.n, "Host");
    CHECK_MEM(r.headers[0].value.p, r.headers[0].value.n, "example.com");
    CHECK_MEM(r.headers[1].name.p, r.headers[1].name.n, "Accept");
    CHECK_MEM(r.headers[1].value.p, r.headers[1].value.n, "*/*");
    CHECK(r.why == NULL);
    gp_release();
}

TEST(no_query_and_http10)
{
    http_req_t r;
    const char *s = "POST /pub/chan HTTP/1.0\r\n\r\n";
    CHECK_EQ(parse(s, &r), strlen(s));
    CHECK_MEM(r.method.p, r.method.n, "POST");
    CHECK_MEM(r.path.p, r.path.n, "/pub/chan");
    CHECK_EQ(r.query.n, 0);
    CHECK_EQ(r.minor, 0);
    CHECK_EQ(r.nheaders, 0);
    s = "GET /a? HTTP/1.0\r\n\r\n";
    CHECK_EQ(parse(s, &r), strlen(s));
    CHECK_MEM(r.path.p, r.path.n, "/a");
    CHECK_EQ(r.query.n, 0);
    /* Odd but valid methods are tokens; versions 1.2..1.9 are HTTP/1.x too. */
    s = "M-SEARCH * HTTP/1.9\r\nHost: x\r\n\r\n";
    CHECK_EQ(parse(s, &r), strlen(s));
    CHECK_MEM(r.method.p, r.method.n, "M-SEARCH");
    CHECK_EQ(r.minor, 9);
    gp_release();
}

TEST(pipelined)
{
    const char *a = "GET /one HTTP/1.1\r\nHost: h\r\n\r\n";
    const char *b = "GET /two HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    char buf[256];
    snprintf(buf, sizeof buf, "%s%s", a, b);
    size_t n = strlen(buf);
    const char *g = gp(buf, n);
    http_req_t r;
    ssize_t rc = http_parse_request(g, n, &LIM, &r);
    CHECK_EQ(rc, strlen(a));
    CHECK_MEM(r.path.p, r.path.n, "/one");
    CHECK_EQ(r.nheaders, 1);
    ssize_t rc2 = http_parse_request(g + rc, n - (size_t)rc, &LIM, &r);
    CHECK_EQ(rc2, strlen(b));
    CHECK_MEM(r.path.p, r.path.n, "/two");
    CHECK_EQ(r.nheaders, 2);
    /* A partial second request right after the first one still yields the first. */
    CHECK_EQ(http_parse_request(g, strlen(a) + 5, &LIM, &r), strlen(a));
    CHECK_EQ(http_parse_request(g + rc, 5, &LIM, &r), HR_EAGAIN);
    gp_release();
}

TEST(every_split_point)
{
    static const char *const reqs[] = {
        "GET /sub/a?mode=poll HTTP/1.1\r\nHost: example.com\r\nX-Empty:\r\nX-Tab:\t v \t\r\n\r\n",
        "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1\nHost: h\nAccept: a\n\n",
        "\nGET / HTTP/1.0\r\n\n",
        "PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) check_all_splits(reqs[i], strlen(reqs[i]));
    gp_release();
}

TEST(leading_empty_lines_skipped)
{
    http_req_t r;
    const char *s = "\r\n\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n";
    CHECK_EQ(parse(s, &r), strlen(s)); /* the skipped lines are consumed too */
    CHECK_MEM(r.method.p, r.method.n, "GET");
    CHECK_MEM(r.target.p, r.target.n, "/x");
    CHECK_EQ(parse("\r\n\r\n", &r), HR_EAGAIN);
    CHECK_ERR("\r\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", HR_EBADREQ, "bare CR");
    gp_release();
}

TEST(bare_lf_and_bare_cr)
{
    http_req_t r;
    const char *s = "GET / HTTP/1.1\nHost: h\nX: y\n\n";
    CHECK_EQ(parse(s, &r), strlen(s));
    CHECK_EQ(r.nheaders, 2);
    CHECK_MEM(r.headers[1].value.p, r.headers[1].value.n, "y");
    /* Mixed line ends within one head. */
    s = "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\n";
    CHECK_EQ(parse(s, &r), strlen(s));
    CHECK_ERR("GET / HTTP/1.1\rHost: h\r\n\r\n", HR_EBADREQ, "bare CR");
    CHECK_ERR("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", HR_EBADREQ, "bare CR");
    CHECK_ERR("GET / HTTP/1.1\r\nHost: h\r\n\rX", HR_EBADREQ, "bare CR");
    /* A CR that is the last byte so far is not an error yet. */
    CHECK_EQ(parse("GET / HTTP/1.1\r\nHost: h\r", &r), HR_EAGAIN);
    gp_release();
}

TEST(ows_trimmed)
{
    http_req_t r;
    const char *s = "GET / HTTP/1.1\r\nHost:   a b \t \r\nX-E:\r\nX-S:   \r\nX-T:\tz\r\n\r\n";
    CHECK_EQ(parse(s, &r), strlen(s));
    CHECK_EQ(r.nheaders, 4);
    CHECK_MEM(r.headers[0].value.p, r.headers[0].value.n, "a b");
    CHECK_EQ(r.headers[1].value.n, 0);
    CHECK_EQ(r.headers[2].value.n, 0);
    CHECK_MEM(r.headers[3].value.p, r.headers[3].value.n, "z");
    /* obs-text in values is kept as is. */
    s = "GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n";
    CHECK_EQ(parse(s, &r), strlen(s));
    CHECK_MEM(r.headers[1].value.p, r.headers[1].value.n, "caf\xc3\xa9");
    gp_release();
}

TEST(bad_request_line)
{
    CHECK_ERR("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", HR_EBADREQ, "invalid request line");
    CHECK_ERR(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", HR_EBADREQ, "invalid request line");
    CHECK_ERR("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", HR_EBADREQ, "invalid request line");
    CHECK_ERR("GET  HTTP/1.1\r\nHost: h\r\n\r\n", HR_EBADREQ, "invalid request line");
    CHECK_ERR("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", HR_EBADREQ, "invalid request line");
    CHECK_ERR("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", HR_EBADREQ, "invalid request line");
    CHECK_ERR("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", HR_EBADREQ, "invalid request line");
    CHECK_ERR("GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", HR_EBADREQ, "invalid request line");
    CHECK_ERR("GET /\r\nHost: h\r\n\r\n", HR_EBADREQ, "invalid request line");
    CHECK_ERR("GET / \r\nHost: h\r\n\r\n", HR_EBADREQ, "invalid request line");
    CHECK_ERR("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", HR_EBADREQ, "invalid request line");
    CHECK_ERR("\r\n\r\n\r\n\x16\x03\x01", HR_EBADREQ, "invalid request line"); /* TLS hello */
    gp_release();
}

TEST(versions)
{
    CHECK_ERR("GET / HTTP/2.0\r\nHost: h\r\n\r\n", HR_EVERSION, "unsupported HTTP version");
    CHECK_ERR("GET / HTTP/0.9\r\n\r\n", HR_EVERSION, "unsupported HTTP version");
    CHECK_ERR("GET / HTTP/3.1\r\n\r\n", HR_EVERSION, "unsupported HTTP version");
    CHECK_ERR("GET / HTTP/1\r\nHost: h\r\n\r\n", HR_EBADREQ, "invalid request line");
    CHECK_ERR("GET / HTTP/2\r\nHost: h\r\n\r\n", HR_EBADREQ, "invalid request line");
    CHECK_ERR("GET / HTTP/1.10\r\nHost: h\r\n\r\n", HR_EBADREQ, "invalid request line");
    CHECK_ERR("GET / HTTP/1.x\r\nHost: h\r\n\r\n", HR_EBADREQ, "invalid request line");
    CHECK_ERR("GET / http/1.1\r\nHost: h\r\n\r\n", HR_EBADREQ, "invalid request line");
    CHECK_ERR("GET / HTTP/11\r\nHost: h\r\n\r\n", HR_EBADREQ, "invalid request line");
    CHECK_ERR("GET / FOO\r\n\r\n", HR_EBADREQ, "invalid request line");
    gp_release();
}

TEST(garbage_refused_before_complete)
{
    http_req_t r;
    CHECK_EQ(parse("GE\x01", &r), HR_EBADREQ);
    CHECK_EQ(parse("GET / HTTX", &r), HR_EBADREQ);
    CHECK_EQ(parse("GET / HTTP/1.1\r\nBad Name", &r), HR_EBADREQ);
    CHECK_EQ(parse("GET / HTTP/1.1\r\nX: a\x01", &r), HR_EBADREQ);
    CHECK_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\n ", &r), HR_EBADREQ);
    /* ...while a valid prefix of each is still just incomplete. */
    CHECK_EQ(parse("GE", &r), HR_EAGAIN);
    CHECK_EQ(parse("GET / HTT", &r), HR_EAGAIN);
    CHECK_EQ(parse("GET / HTTP/1.1\r\nBad", &r), HR_EAGAIN);
    gp_release();
}

TEST(host_rules)
{
    http_req_t r;
    CHECK_ERR("GET / HTTP/1.1\r\n\r\n", HR_EBADREQ, "missing Host");
    CHECK_ERR("GET / HTTP/1.1\r\nX: y\r\n\r\n", HR_EBADREQ, "missing Host");
    CHECK_ERR("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", HR_EBADREQ, "multiple Host");
    CHECK_ERR("GET / HTTP/1.0\r\nHost: a\r\nHOST: a\r\n\r\n", HR_EBADREQ, "multiple Host");
    const char *s = "GET / HTTP/1.1\r\nhOsT:\r\n\r\n"; /* empty Host is allowed (RFC 9112 3.2) */
    CHECK_EQ(parse(s, &r), strlen(s));
    s = "GET / HTTP/1.0\r\n\r\n";
    CHECK_EQ(parse(s, &r), strlen(s));
    gp_release();
}

TEST(bad_field_lines)
{
    CHECK_ERR("GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n", HR_EBADREQ, "invalid header field name");
    CHECK_ERR("GET / HTTP/1.1\r\nHost: h\r\n: x\r\n\r\n", HR_EBADREQ, "invalid header field name");
    CHECK_ERR("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", HR_EBADREQ, "invalid header field name");
    CHECK_ERR("GET / HTTP/1.1\r\nHost: h\r\nX(y): x\r\n\r\n", HR_EBADREQ, "invalid header field name");
    CHECK_ERR("GET / HTTP/1.1\r\nHost: h\r\nX\xc3\xa9: x\r\n\r\n", HR_EBADREQ, "invalid header field name");
    CHECK_ERR("GET / HTTP/1.1\r\nHost : h\r\n\r\n", HR_EBADREQ, "whitespace before colon");
    CHECK_ERR("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", HR_EBADREQ, "whitespace before colon");
    CHECK_ERR("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n  b\r\n\r\n", HR_EBADREQ, "obsolete line folding");
    CHECK_ERR("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", HR_EBADREQ, "obsolete line folding");
    CHECK_ERR("GET / HTTP/1.1\r\n Host: h\r\n\r\n", HR_EBADREQ, "obsolete line folding");
    static const char bad[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n";
    http_req_t r;
    CHECK_EQ(parse_n(bad, sizeof bad - 1, &LIM, &r), HR_EBADREQ);
    CHECK(r.why && strcmp(r.why, "invalid header field value") == 0);
    CHECK_ERR("GET / HTTP/1.1\r\nHost: h\r\nX: a\x1b[0m\r\n\r\n", HR_EBADREQ, "invalid header field value");
    CHECK_ERR("GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", HR_EBADREQ, "invalid header field value");
    gp_release();
}

/* Builds "GET /<t> HTTP/1.1\r\nHost: h\r\n\r\n" with a target of exactly tlen bytes. */
static size_t build_target_req(char *buf, size_t tlen)
{
    size_t n = 0;
    memcpy(buf, "GET /", 5);
    n = 5;
    memset(buf + n, 'a', tlen - 1);
    n += tlen - 1;
    const char *tail = " HTTP/1.1\r\nHost: h\r\n\r\n";
    memcpy(buf + n, tail, strlen(tail));
    return n + strlen(tail);
}

TEST(target_limit)
{
    char buf[2048];
    http_req_t r;
    size_t n = build_target_req(buf, LIM.max_target);
    CHECK_EQ(parse_n(buf, n, &LIM, &r), n);
    CHECK_EQ(r.target.n, LIM.max_target);
    n = build_target_req(buf, LIM.max_target + 1);
    CHECK_EQ(parse_n(buf, n, &LIM, &r), HR_EURITOOLONG);
    CHECK(r.why && strcmp(r.why, "request-target too long") == 0);
    /* Refused before the line ends: 4 + max_target + 1 bytes of target, no space yet. */
    CHECK_EQ(parse_n(buf, 4 + LIM.max_target + 1, &LIM, &r), HR_EURITOOLONG);
    CHECK_EQ(parse_n(buf, 4 + LIM.max_target, &LIM, &r), HR_EAGAIN);
    gp_release();
}

TEST(head_limit)
{
    char buf[4096];
    http_req_t r;
    const char *pre = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
    size_t plen = strlen(pre);
    /* A head of exactly max_head bytes is fine. */
    memcpy(buf, pre, plen);
    size_t vlen = LIM.max_head - plen - 4;
    memset(buf + plen, 'v', vlen);
    memcpy(buf + plen + vlen, "\r\n\r\n", 4);
    CHECK_EQ(parse_n(buf, LIM.max_head, &LIM, &r), LIM.max_head);
    /* One byte more is 431, whether or not the rest has arrived. */
    memset(buf + plen, 'v', vlen + 1);
    memcpy(buf + plen + vlen + 1, "\r\n\r\n", 4);
    CHECK_EQ(parse_n(buf, LIM.max_head + 1, &LIM, &r), HR_EHDRTOOBIG);
    CHECK(r.why && strcmp(r.why, "header section too large") == 0);
    CHECK_EQ(parse_n(buf, LIM.max_head, &LIM, &r), HR_EHDRTOOBIG);
    CHECK_EQ(parse_n(buf, LIM.max_head - 1, &LIM, &r), HR_EAGAIN);
    /* Slowloris: an endless value, and endless empty lines before the request line. */
    memset(buf + plen, 'v', sizeof buf - plen);
    CHECK_EQ(parse_n(buf, sizeof buf, &LIM, &r), HR_EHDRTOOBIG);
    memset(buf, '\n', sizeof buf);
    CHECK_EQ(parse_n(buf, LIM.max_head, &LIM, &r), HR_EHDRTOOBIG);
    CHECK_EQ(parse_n(buf, LIM.max_head - 1, &LIM, &r), HR_EAGAIN);
    /* A complete head followed by body bytes past max_head is fine. */
    const char *s = "POST / HTTP/1.1\r\nHost: h\r\n\r\n";
    memcpy(buf, s, strlen(s));
    memset(buf + strlen(s), 'b', sizeof buf - strlen(s));
    CHECK_EQ(parse_n(buf, sizeof buf, &LIM, &r), strlen(s));
    gp_release();
}

TEST(header_count_limit)
{
    char buf[1024];
    http_req_t r;
    size_t n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (size_t i = 1; i < LIM.max_headers; i++) n += (size_t)sprintf(buf + n, "X%zu: v\r\n", i);
    size_t at_limit = n;
    n += (size_t)sprintf(buf + n, "\r\n");
    CHECK_EQ(parse_n(buf, n, &LIM, &r), n);
    CHECK_EQ(r.nheaders, LIM.max_headers);
    n = at_limit + (size_t)sprintf(buf + at_limit, "Y: v\r\n\r\n");
    CHECK_EQ(parse_n(buf, n, &LIM, &r), HR_EHDRTOOBIG);
    CHECK(r.why && strcmp(r.why, "too many header fields") == 0);
    /* Refused as soon as the extra field starts. */
    CHECK_EQ(parse_n(buf, at_limit + 1, &LIM, &r), HR_EHDRTOOBIG);

    /* max_headers above HTTP_MAX_HEADERS is clamped to it. */
    http_limits_t big = {.max_target = 256, .max_head = 1 << 16, .max_headers = 1000};
    char many[4096];
    n = (size_t)sprintf(many, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (size_t i = 1; i < HTTP_MAX_HEADERS + 1; i++) n += (size_t)sprintf(many + n, "X%zu: v\r\n", i);
    n += (size_t)sprintf(many + n, "\r\n");
    CHECK_EQ(parse_n(many, n, &big, &r), HR_EHDRTOOBIG);
    gp_release();
}

TEST(success_clears_previous_error)
{
    http_req_t r;
    CHECK_EQ(parse("GET / HTTP/2.0\r\n\r\n", &r), HR_EVERSION);
    CHECK(r.why != NULL);
    const char *s = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    CHECK_EQ(parse(s, &r), strlen(s));
    CHECK(r.why == NULL);
    CHECK_EQ(r.nheaders, 1);
    gp_release();
}

TEST(guard_page_every_prefix_of_errors)
{
    /* Bad inputs cut at every length must neither crash nor read past len. */
    static const char *const reqs[] = {
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : h\r\n\r\n",
        "\r\n\r\r",
    };
    http_req_t r;
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        size_t n = strlen(reqs[i]);
        for (size_t k = 0; k <= n; k++) {
            ssize_t rc = parse_n(reqs[i], k, &LIM, &r);
            CHECK(rc == HR_EAGAIN || rc == HR_EBADREQ || rc == HR_EVERSION);
        }
    }
    gp_release();
}

int main(void)
{
    RUN(simple_get);
    RUN(no_query_and_http10);
    RUN(pipelined);
    RUN(every_split_point);
    RUN(leading_empty_lines_skipped);
    RUN(bare_lf_and_bare_cr);
    RUN(ows_trimmed);
    RUN(bad_request_line);
    RUN(versions);
    RUN(garbage_refused_before_complete);
    RUN(host_rules);
    RUN(bad_field_lines);
    RUN(target_limit);
    RUN(head_limit);
    RUN(header_count_limit);
    RUN(success_clears_previous_error);
    RUN(guard_page_every_prefix_of_errors);
    return UNIT_DONE();
}
