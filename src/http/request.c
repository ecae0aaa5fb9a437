/* request.c - semantic views over a parsed request head.
 *
 * Design: everything here reads the slices that http_parse_request() produced and writes only to
 * caller buffers, so it is as pure as the parser and shares its fuzz target. Header names and
 * list tokens compare ASCII case-insensitively (RFC 9110 5.1, 5.6.1); query keys and values are
 * percent-decoded before use so "last%2Did" and "last-id" are the same key.
 *
 * Body framing follows RFC 9112 6.3 but is deliberately narrower than "what the RFC tolerates",
 * because disagreement between us and a proxy in front of us about where a body ends is how
 * request smuggling works:
 *   - Transfer-Encoding together with Content-Length is refused (400), not resolved;
 *   - Transfer-Encoding in an HTTP/1.0 request is refused (400, RFC 9112 6.1 calls it faulty);
 *   - the only transfer coding we decode is a single "chunked"; any other coding, even before a
 *     final "chunked", is 501, and "chunked" applied twice is 400;
 *   - Content-Length must be digits only; repeated values (as separate fields or as a list) are
 *     accepted only when they are all equal. */
#include "request.h"

#include "../core/err.h"

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Splits a comma-separated list: returns the next element of s starting at *pos, trimmed of OWS
 * (possibly empty), and moves *pos past its comma. Returns false when the list is exhausted. */
static bool next_elem(span_t s, size_t *pos, span_t *elem)
{
    if (*pos > s.n) return false;
    size_t i = *pos;
    while (i < s.n && s.p[i] != ',') i++;
    size_t a = *pos, b = i;
    while (a < b && is_ows(s.p[a])) a++;
    while (b > a && is_ows(s.p[b - 1])) b--;
    *elem = (span_t){s.p + a, b - a};
    *pos = i + 1;
    return true;
}

span_t http_req_header(const http_req_t *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (span_ieq(req->headers[i].name, name)) return req->headers[i].value;
    return (span_t){NULL, 0};
}

bool http_req_header_has(const http_req_t *req, const char *name, const char *token)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (!span_ieq(req->headers[i].name, name)) continue;
        size_t pos = 0;
        span_t e;
        while (next_elem(req->headers[i].value, &pos, &e))
            if (span_ieq(e, token)) return true;
    }
    return false;
}

/* Decodes one byte of in[*i..n): "%XX", '+' (as space when plus_space) or a literal byte.
 * Returns the byte (0..255) and advances *i, or HR_EINVAL for a bad escape. */
static int pct_next(const char *in, size_t n, size_t *i, bool plus_space)
{
    unsigned char c = (unsigned char)in[*i];
    if (c == '%') {
        if (n - *i < 3) return HR_EINVAL;
        int hi = hexval((unsigned char)in[*i + 1]), lo = hexval((unsigned char)in[*i + 2]);
        if (hi < 0 || lo < 0) return HR_EINVAL;
        *i += 3;
        return hi * 16 + lo;
    }
    *i += 1;
    return plus_space && c == '+' ? ' ' : c;
}

static ssize_t decode(const char *in, size_t n, char *out, size_t cap, bool plus_space)
{
    if (cap == 0) return HR_EINVAL;
    size_t i = 0, len = 0;
    while (i < n) {
        int c = pct_next(in, n, &i, plus_space);
        if (c <= 0 || len + 1 >= cap) return HR_EINVAL; /* bad escape, NUL, or no room */
        out[len++] = (char)c;
    }
    out[len] = '\0';
    return (ssize_t)len;
}

ssize_t http_pct_decode(const char *in, size_t n, char *out, size_t cap)
{
    return decode(in, n, out, cap, false);
}

/* True when the form-encoded key k[0..n) decodes to exactly key. Badly encoded keys never match. */
static bool key_matches(const char *k, size_t n, const char *key)
{
    size_t i = 0, j = 0;
    while (i < n) {
        int c = pct_next(k, n, &i, true);
        if (c <= 0 || (unsigned char)key[j] != c) return false;
        j++;
    }
    return key[j] == '\0';
}

ssize_t http_req_query(const http_req_t *req, const char *key, char *out, size_t cap)
{
    span_t q = req->query;
    size_t pos = 0;
    while (pos < q.n) {
        const char *amp = memchr(q.p + pos, '&', q.n - pos);
        size_t end = amp ? (size_t)(amp - q.p) : q.n;
        const char *eq = memchr(q.p + pos, '=', end - pos);
        size_t kend = eq ? (size_t)(eq - q.p) : end;
        if (kend > pos && key_matches(q.p + pos, kend - pos, key)) {
            size_t vs = eq ? kend + 1 : end;
            return decode(q.p + vs, end - vs, out, cap, true);
        }
        pos = end + 1;
    }
    return HR_ENOTFOUND;
}

static int body_fail(http_req_t *req, int rc, const char *why)
{
    req->why = why;
    return rc;
}

/* Parses one Content-Length element: 1*DIGIT that fits in 63 bits. */
static bool parse_length(span_t e, uint64_t *v)
{
    if (e.n == 0 || e.n > 18) return false; /* 18 digits < 2^63: no overflow possible */
    uint64_t x = 0;
    for (size_t i = 0; i < e.n; i++) {
        if (e.p[i] < '0' || e.p[i] > '9') return false;
        x = x * 10 + (uint64_t)(e.p[i] - '0');
    }
    *v = x;
    return true;
}

int http_req_body(http_req_t *req, http_body_kind_t *kind, uint64_t *length)
{
    *kind = HTTP_BODY_NONE;
    *length = 0;

    bool have_te = false, have_cl = false, unsupported = false;
    size_t chunked = 0, codings = 0;
    uint64_t cl = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const http_header_t *h = &req->headers[i];
        size_t pos = 0;
        span_t e;
        if (span_ieq(h->name, "Transfer-Encoding")) {
            have_te = true;
            while (next_elem(h->value, &pos, &e)) {
                if (e.n == 0) continue; /* empty list elements are allowed and ignored */
                codings++;
                if (span_ieq(e, "chunked")) chunked++;
                else unsupported = true;
            }
        } else if (span_ieq(h->name, "Content-Length")) {
            while (next_elem(h->value, &pos, &e)) {
                uint64_t v;
                if (!parse_length(e, &v)) return body_fail(req, HR_EBADREQ, "bad Content-Length");
                if (have_cl && v != cl)
                    return body_fail(req, HR_EBADREQ, "conflicting Content-Length");
                have_cl = true;
                cl = v;
            }
        }
    }

    if (have_te) {
        if (have_cl)
            return body_fail(req, HR_EBADREQ, "both Transfer-Encoding and Content-Length");
        if (req->minor == 0)
            return body_fail(req, HR_EBADREQ, "Transfer-Encoding in HTTP/1.0 request");
        if (unsupported) return body_fail(req, HR_ENOTIMPL, "unsupported transfer coding");
        if (codings == 0) return body_fail(req, HR_EBADREQ, "empty Transfer-Encoding");
        if (chunked > 1) return body_fail(req, HR_EBADREQ, "chunked applied more than once");
        *kind = HTTP_BODY_CHUNKED;
        return 0;
    }
    if (have_cl) {
        *kind = HTTP_BODY_LENGTH;
        *length = cl;
    }
    return 0;
}

bool http_req_keepalive(const http_req_t *req)
{
    if (http_req_header_has(req, "Connection", "close")) return false;
    if (req->minor >= 1) return true;
    return http_req_header_has(req, "Connection", "keep-alive");
}
