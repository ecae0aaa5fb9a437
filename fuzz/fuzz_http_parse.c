/* fuzz_http_parse.c - libFuzzer target for the HTTP/1.1 request-head parser and the request views.
 *
 * The input is parsed with small limits (so the 414/431 paths are reached), then every prefix is
 * parsed too, which checks the stateless re-scan contract: a prefix of a complete head must be
 * HR_EAGAIN or an error, never a different complete head. A successful parse is handed to every
 * view in request.h. Inputs are copied to an exact-size heap buffer so ASan sees any over-read. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/err.h"
#include "../src/http/request.h"

static void check_result(ssize_t rc, const http_req_t *req, size_t len)
{
    assert(rc == HR_EAGAIN || rc == HR_EBADREQ || rc == HR_EURITOOLONG || rc == HR_EHDRTOOBIG ||
           rc == HR_EVERSION || rc > 0);
    assert(rc <= (ssize_t)len);
    if (rc < 0 && rc != HR_EAGAIN) assert(req->why != NULL);
    if (rc == HR_EAGAIN) assert(req->why == NULL);
}

static void exercise(http_req_t *req)
{
    http_body_kind_t kind;
    uint64_t length;
    int rc = http_req_body(req, &kind, &length);
    assert(rc == 0 || rc == HR_EBADREQ || rc == HR_ENOTIMPL);
    if (rc != 0) assert(req->why != NULL);
    if (rc == 0 && kind != HTTP_BODY_LENGTH) assert(length == 0);
    (void)http_req_keepalive(req);
    (void)http_req_header_has(req, "Connection", "close");
    span_t h = http_req_header(req, "host");
    assert(h.p != NULL || req->minor == 0);

    char out[64];
    static const char *const keys[] = {"a", "id", "last-id", "mode", "x y", ""};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        ssize_t q = http_req_query(req, keys[i], out, sizeof out);
        assert(q == HR_ENOTFOUND || q == HR_EINVAL || (q >= 0 && q < (ssize_t)sizeof out));
        if (q >= 0) assert(out[q] == '\0' && strlen(out) == (size_t)q);
    }
    ssize_t p = http_pct_decode(req->path.p, req->path.n, out, sizeof out);
    assert(p == HR_EINVAL || (p >= 0 && (size_t)p <= req->path.n && out[p] == '\0'));
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static const http_limits_t lim = {.max_target = 64, .max_head = 512, .max_headers = 12};
    char *buf = malloc(n ? n : 1);
    if (!buf) return 0;
    memcpy(buf, d, n);

    http_req_t req;
    ssize_t full = http_parse_request(buf, n, &lim, &req);
    check_result(full, &req, n);
    if (full > 0) exercise(&req);

    /* Prefixes: re-scanning from the start must agree with the full parse. */
    for (size_t k = 0; k < n && k <= lim.max_head + 1; k += 1 + k / 16) {
        char *pre = malloc(k ? k : 1);
        if (!pre) break;
        memcpy(pre, d, k);
        ssize_t rc = http_parse_request(pre, k, &lim, &req);
        check_result(rc, &req, k);
        if (rc > 0) assert(rc == full); /* the head ended inside the prefix: same head */
        if (full == HR_EAGAIN) assert(rc == HR_EAGAIN);
        if (rc < 0 && rc != HR_EAGAIN) assert(rc == full); /* errors come from bytes already seen */
        free(pre);
    }

    /* Pipelining: parse whatever follows a complete head as the next request. */
    if (full > 0 && (size_t)full < n) {
        ssize_t rc = http_parse_request(buf + full, n - (size_t)full, &lim, &req);
        check_result(rc, &req, n - (size_t)full);
        if (rc > 0) exercise(&req);
    }
    free(buf);
    return 0;
}
