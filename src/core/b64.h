/* b64.h - base64 (RFC 4648) in the variants herald meets: the standard alphabet with padding
 * (message payloads, Mosquitto password files, SSE base64 events) and base64url without padding
 * (JWT). One decoder and one encoder, parameterised by flags; pure, no allocation. */
#ifndef HERALD_B64_H
#define HERALD_B64_H

#include <stddef.h>
#include <sys/types.h>

enum {
    B64_URL = 1,          /* the URL alphabet ('-' '_'); encoding writes no padding */
    B64_PAD_OK = 2,       /* decoding accepts '=' padding that completes a quad (not required) */
    B64_PAD_REQUIRED = 4, /* decoding wants the text in whole quads, padded */
    B64_SKIP_SPACE = 8,   /* decoding skips spaces, tabs and line ends */
    B64_STRICT_BITS = 16, /* decoding refuses non-zero unused bits in the last character */
};

/* Decodes in[0..n) into out (cap bytes). Refuses characters outside the alphabet, '=' unless
 * allowed, data after padding, a lone last character, and output beyond cap. Returns the decoded
 * length or -1. */
long b64_decode_ex(const char *in, size_t n, unsigned char *out, size_t cap, unsigned flags);

/* Encodes in[0..n) into out (NUL-terminated), padded unless B64_URL. Returns the length, or 0
 * (and "" when cap > 0) when cap is too small. */
size_t b64_encode_ex(const unsigned char *in, size_t n, char *out, size_t cap, unsigned flags);

/* Standard padded base64 of p[0..n) into out (cap >= 4*((n+2)/3)+1). Returns its length (0 when
 * cap is too small). */
size_t b64_encode(const void *p, size_t n, char *out, size_t cap);

/* Decodes standard base64 in whole padded quads (no whitespace) in[0..n) into out (cap bytes).
 * Returns the decoded length, or HR_EINVAL for text that is not base64 or does not fit. */
ssize_t b64_decode(const char *in, size_t n, char *out, size_t cap);

#endif
