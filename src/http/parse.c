/* parse.c - pure HTTP/1.1 request-head parser.
 *
 * Design: one forward scan over buf[0..end), where end = min(len, max_head). Nothing is kept
 * between calls; the caller re-offers the longer buffer and we re-scan from byte 0 (heads are
 * small and the scan is bounded by max_head, so the quadratic worst case is bounded too).
 *
 * Every byte is validated the moment it is seen, so garbage is refused on the first bad byte
 * even while the head is still incomplete, and the two size limits that a slow or hostile client
 * could abuse are checked on partial input too:
 *   - the request-target is refused (414) as soon as it has more than max_target bytes;
 *   - a head that has not ended within max_head bytes is refused (431), because we never scan
 *     past max_head: running out of scan room with len >= max_head means the head is too big.
 *
 * The scan has three phases: empty lines before the request line (skipped, RFC 9112 2.2), the
 * request line, then field lines until the empty line. Line ends are CRLF or bare LF; a CR that is
 * not followed by LF is an error wherever it appears. Internally the helpers return 0 on
 * success, HR_EAGAIN when they ran out of bytes, or an HTTP error with req->why set. */
#include "parse.h"

#include <stdbool.h>

#include "../core/err.h"

/* tchar from RFC 9110 5.6.2: "!#$%&'*+-.^_`|~" plus DIGIT and ALPHA. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

/* A request-target is a URI reference in ASCII: visible characters only. Bytes >= 0x80 are
 * refused too; clients percent-encode them. */
static bool is_target_char(unsigned char c) { return c > 0x20 && c < 0x7f; }

/* field-vchar / SP / HTAB (RFC 9110 5.5), obs-text included; every other control is refused. */
static bool is_value_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static ssize_t fail(http_req_t *req, ssize_t rc, const char *why)
{
    req->why = why;
    return rc;
}

/* At b[*pos] is CR or LF. Consumes the line end (CRLF or bare LF). */
static ssize_t eat_eol(const char *b, size_t end, size_t *pos, http_req_t *req)
{
    if (b[*pos] == '\n') {
        *pos += 1;
        return 0;
    }
    if (*pos + 1 >= end) return HR_EAGAIN;
    if (b[*pos + 1] != '\n') return fail(req, HR_EBADREQ, "bare CR");
    *pos += 2;
    return 0;
}

/* request-line = method SP request-target SP HTTP-version, ended by CRLF or LF. */
static ssize_t parse_request_line(const char *b, size_t end, size_t *pos, const http_limits_t *lim,
                                  http_req_t *req)
{
    size_t i = *pos;
    while (i < end && is_tchar((unsigned char)b[i])) i++;
    if (i == end) return HR_EAGAIN;
    if (i == *pos || b[i] != ' ') return fail(req, HR_EBADREQ, "invalid request line");
    req->method = (span_t){b + *pos, i - *pos};

    size_t t = ++i;
    while (i < end && is_target_char((unsigned char)b[i])) {
        if (i - t >= lim->max_target) return fail(req, HR_EURITOOLONG, "request-target too long");
        i++;
    }
    if (i == end) return HR_EAGAIN;
    if (i == t || b[i] != ' ') return fail(req, HR_EBADREQ, "invalid request line");
    req->target = (span_t){b + t, i - t};

    /* HTTP-version = "HTTP/" DIGIT "." DIGIT, checked byte by byte against that shape. */
    static const char shape[] = "HTTP/d.d";
    size_t v = ++i;
    while (i < end && b[i] != '\r' && b[i] != '\n') {
        size_t k = i - v;
        unsigned char c = (unsigned char)b[i];
        bool ok = k < 8 && (shape[k] == 'd' ? (c >= '0' && c <= '9') : c == (unsigned char)shape[k]);
        if (!ok) return fail(req, HR_EBADREQ, "invalid request line");
        i++;
    }
    if (i == end) return HR_EAGAIN;
    if (i - v != 8) return fail(req, HR_EBADREQ, "invalid request line");
    ssize_t rc = eat_eol(b, end, &i, req);
    if (rc) return rc;
    if (b[v + 5] != '1') return fail(req, HR_EVERSION, "unsupported HTTP version");
    req->minor = b[v + 7] - '0';
    *pos = i;
    return 0;
}

/* field-line = field-name ":" OWS field-value OWS, ended by CRLF or LF. The caller has seen that
 * b[*pos] is neither CR nor LF. */
static ssize_t parse_field_line(const char *b, size_t end, size_t *pos, size_t max_headers,
                                http_req_t *req)
{
    size_t i = *pos;
    if (b[i] == ' ' || b[i] == '\t') return fail(req, HR_EBADREQ, "obsolete line folding");
    if (req->nheaders >= max_headers) return fail(req, HR_EHDRTOOBIG, "too many header fields");

    while (i < end && is_tchar((unsigned char)b[i])) i++;
    if (i == end) return HR_EAGAIN;
    if (b[i] != ':' || i == *pos) {
        if (i != *pos)
            while (i < end && (b[i] == ' ' || b[i] == '\t')) i++;
        if (i < end && i != *pos && b[i] == ':') return fail(req, HR_EBADREQ, "whitespace before colon");
        return fail(req, HR_EBADREQ, "invalid header field name");
    }
    span_t name = {b + *pos, i - *pos};

    i++;
    while (i < end && (b[i] == ' ' || b[i] == '\t')) i++;
    size_t vs = i, ve = i; /* ve: one past the last non-OWS byte */
    while (i < end && b[i] != '\r' && b[i] != '\n') {
        unsigned char c = (unsigned char)b[i];
        if (!is_value_char(c)) return fail(req, HR_EBADREQ, "invalid header field value");
        i++;
        if (c != ' ' && c != '\t') ve = i;
    }
    if (i == end) return HR_EAGAIN;
    ssize_t rc = eat_eol(b, end, &i, req);
    if (rc) return rc;

    req->headers[req->nheaders++] = (http_header_t){name, {b + vs, ve - vs}};
    *pos = i;
    return 0;
}

/* RFC 9112 3.2: an HTTP/1.1 request needs exactly one Host field; no request may carry two. */
static ssize_t check_host(http_req_t *req)
{
    size_t hosts = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        if (span_ieq(req->headers[i].name, "Host")) hosts++;
    if (hosts > 1) return fail(req, HR_EBADREQ, "multiple Host");
    if (hosts == 0 && req->minor >= 1) return fail(req, HR_EBADREQ, "missing Host");
    return 0;
}

static ssize_t scan(const char *b, size_t end, const http_limits_t *lim, http_req_t *req)
{
    size_t pos = 0;
    while (pos < end && (b[pos] == '\r' || b[pos] == '\n')) {
        ssize_t rc = eat_eol(b, end, &pos, req);
        if (rc) return rc;
    }
    if (pos == end) return HR_EAGAIN;

    ssize_t rc = parse_request_line(b, end, &pos, lim, req);
    if (rc) return rc;

    size_t max_headers = lim->max_headers < HTTP_MAX_HEADERS ? lim->max_headers : HTTP_MAX_HEADERS;
    for (;;) {
        if (pos == end) return HR_EAGAIN;
        if (b[pos] == '\r' || b[pos] == '\n') {
            rc = eat_eol(b, end, &pos, req);
            if (rc) return rc;
            break;
        }
        rc = parse_field_line(b, end, &pos, max_headers, req);
        if (rc) return rc;
    }
    rc = check_host(req);
    if (rc) return rc;
    return (ssize_t)pos;
}

ssize_t http_parse_request(const char *buf, size_t len, const http_limits_t *lim, http_req_t *req)
{
    req->method = req->target = req->path = req->query = (span_t){buf, 0};
    req->minor = 0;
    req->nheaders = 0;
    req->why = NULL;

    size_t end = len < lim->max_head ? len : lim->max_head;
    ssize_t rc = scan(buf, end, lim, req);
    if (rc == HR_EAGAIN) {
        /* Out of scan room: either the peer has not sent more yet, or we stopped at max_head. */
        if (len >= lim->max_head) return fail(req, HR_EHDRTOOBIG, "header section too large");
        return HR_EAGAIN;
    }
    if (rc < 0) return rc;

    const char *q = memchr(req->target.p, '?', req->target.n);
    if (q) {
        req->path = (span_t){req->target.p, (size_t)(q - req->target.p)};
        req->query = (span_t){q + 1, req->target.n - req->path.n - 1};
    } else {
        req->path = req->target;
        req->query = (span_t){req->target.p + req->target.n, 0};
    }
    return rc;
}
