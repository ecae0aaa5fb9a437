/* parse.h - pure HTTP/1.1 request-head parser (RFC 9112 section 2-5).
 *
 * http_parse_request() looks at the bytes received so far and either finds a complete request
 * head (request line + header fields + empty line) or says it needs more. It keeps no state
 * between calls: call it again with the longer buffer. It never allocates and never reads past
 * len; everything it outputs is a slice of the caller's buffer. Limits are checked while
 * scanning, so a client cannot make it scan more than max_head bytes. */
#ifndef HERALD_HTTP_PARSE_H
#define HERALD_HTTP_PARSE_H

#include <sys/types.h>

#include "../core/span.h"

#define HTTP_MAX_HEADERS 64 /* hard upper bound of http_limits_t.max_headers */

typedef struct {
    span_t name;  /* field name as sent (compare case-insensitively) */
    span_t value; /* without leading/trailing whitespace */
} http_header_t;

typedef struct {
    span_t method; /* token, e.g. "GET" */
    span_t target; /* request-target as sent, e.g. "/sub/a?mode=poll" */
    span_t path;   /* target up to '?', still percent-encoded */
    span_t query;  /* after '?', without it; empty if none */
    int minor;     /* HTTP/1.<minor> */
    http_header_t headers[HTTP_MAX_HEADERS];
    size_t nheaders;
    const char *why; /* on error: a static, human reason for the 4xx/5xx body */
} http_req_t;

typedef struct {
    size_t max_target;  /* longest request-target, else HR_EURITOOLONG */
    size_t max_head;    /* longest head (request line + fields), else HR_EHDRTOOBIG */
    size_t max_headers; /* most header fields (<= HTTP_MAX_HEADERS), else HR_EHDRTOOBIG */
} http_limits_t;

/* Parses the request head at buf[0..len).
 * Returns the head's length in bytes (> 0, including the final CRLF CRLF) when complete;
 * HR_EAGAIN when more bytes are needed (and no limit is exceeded yet); or a negative error:
 * HR_EBADREQ (400), HR_EURITOOLONG (414), HR_EHDRTOOBIG (431), HR_EVERSION (505).
 * On error req->why names the problem. Leading empty lines before the request line are
 * skipped as RFC 9112 2.2 allows. Bare LF line ends are accepted; bare CR is an error;
 * obsolete line folding is rejected (400); whitespace between field name and colon is 400. */
ssize_t http_parse_request(const char *buf, size_t len, const http_limits_t *lim, http_req_t *req);

#endif
