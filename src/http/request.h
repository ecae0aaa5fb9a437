/* request.h - semantic views over a parsed request head: header lookup, query parameters,
 * percent-decoding, body framing and keep-alive rules (RFC 9110, RFC 9112). Pure functions:
 * no allocation, no I/O. */
#ifndef HERALD_HTTP_REQUEST_H
#define HERALD_HTTP_REQUEST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "parse.h"

/* Returns the value of the first field named name (case-insensitive), or a span with p == NULL
 * when absent. */
span_t http_req_header(const http_req_t *req, const char *name);

/* True when any comma-separated element of any field named name equals token
 * (case-insensitive), e.g. http_req_header_has(req, "Connection", "close"). */
bool http_req_header_has(const http_req_t *req, const char *name, const char *token);

/* Finds query parameter key in req->query and percent-decodes its value ('+' means space)
 * into out (cap bytes, NUL-terminated). Returns the decoded length, HR_ENOTFOUND when the key
 * is absent, HR_EINVAL when the value is badly encoded or does not fit. */
ssize_t http_req_query(const http_req_t *req, const char *key, char *out, size_t cap);

/* Percent-decodes in[0..n) into out (cap bytes, NUL-terminated); '+' is kept as '+'.
 * Returns the decoded length or HR_EINVAL (bad %XX, embedded NUL, or does not fit). */
ssize_t http_pct_decode(const char *in, size_t n, char *out, size_t cap);

typedef enum {
    HTTP_BODY_NONE = 0,    /* no body */
    HTTP_BODY_LENGTH = 1,  /* Content-Length bytes follow */
    HTTP_BODY_CHUNKED = 2, /* chunked coding follows */
} http_body_kind_t;

/* Decides how the request body is framed (RFC 9112 6.3): Transfer-Encoding "chunked" (alone or
 * last) wins; Transfer-Encoding with both Content-Length is HR_EBADREQ; other codings are
 * HR_ENOTIMPL; several Content-Length values must agree and be digits only, else HR_EBADREQ.
 * Sets *kind and *length (for HTTP_BODY_LENGTH). Returns 0 or the error, with req->why set. */
int http_req_body(http_req_t *req, http_body_kind_t *kind, uint64_t *length);

/* True when the connection should stay open after this request: HTTP/1.1 unless
 * "Connection: close"; HTTP/1.0 only with "Connection: keep-alive". */
bool http_req_keepalive(const http_req_t *req);

#endif
