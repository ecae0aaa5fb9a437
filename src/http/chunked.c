/* chunked.c - incremental, in-place decoder for the chunked transfer coding (RFC 9112 7.1).
 *
 * Design: a byte-driven state machine whose whole state fits in chunked_dec_t, so input may be
 * split anywhere, down to one byte per call. Two cursors walk the caller's buffer: `in` reads
 * framing and data, `out` (never ahead of `in`) receives chunk data, so decoding in place with
 * memmove is safe and bytes after the body's end are never touched.
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *
 * Leniency: bare LF is accepted wherever CRLF is expected, and BWS is allowed between the size and
 * ";" of an extension. Extensions and trailer fields are skipped without interpretation (we never
 * act on them, so their syntax beyond "no control bytes" does not matter to us).
 *
 * Limits, all refused with HR_EBADREQ except the body size:
 *   - a size/extension line or a trailer line longer than CHUNKED_MAX_LINE bytes;
 *   - a trailer section longer than CHUNKED_MAX_TRAILERS bytes in all (otherwise an endless stream
 *     of short trailer lines would never finish); the count lives in `remaining`, which is unused
 *     once the last chunk has been seen;
 *   - a chunk size over 2^60;
 *   - HR_EBODYTOOBIG as soon as a size line announces more than max_body in total, before any of
 *     that chunk's data arrives.
 * Errors are sticky: once the decoder failed, every later call returns the same error. */
#include "chunked.h"

#include <string.h>

#include "../core/err.h"

#define CHUNKED_MAX_LINE 4096
#define CHUNKED_MAX_TRAILERS 65536
#define CHUNKED_MAX_SIZE (UINT64_C(1) << 60)

enum {
    S_SIZE = 0,    /* reading hex digits; line_len counts them */
    S_SIZE_WS,     /* after the digits: BWS before ';' or the line end */
    S_EXT,         /* inside chunk extensions, up to the line end */
    S_SIZE_LF,     /* saw CR on the size line, need LF */
    S_DATA,        /* copying `remaining` data bytes */
    S_DATA_CR,     /* after data: need CR or LF */
    S_DATA_LF,     /* after data and CR: need LF */
    S_TRAILER_BOL, /* at the start of a trailer line (or the final empty line) */
    S_TRAILER,     /* inside a trailer line */
    S_TRAILER_LF,  /* saw CR in a trailer line, need LF */
    S_END_LF,      /* saw CR of the final empty line, need LF */
    S_DONE,        /* body complete */
    S_BAD,         /* failed with HR_EBADREQ */
    S_TOOBIG,      /* failed with HR_EBODYTOOBIG */
};

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Bytes allowed inside an extension or trailer line that we skip: no controls but HTAB. */
static bool is_line_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

/* The size line has ended: start the chunk's data, or the trailer section after the last chunk. */
static int end_size_line(chunked_dec_t *st, uint64_t max_body)
{
    st->line_len = 0;
    if (st->remaining == 0) return S_TRAILER_BOL;
    if (st->total > max_body || st->remaining > max_body - st->total) return S_TOOBIG;
    st->total += st->remaining;
    return S_DATA;
}

ssize_t chunked_decode(chunked_dec_t *st, char *buf, size_t len, size_t *out_len, uint64_t max_body)
{
    size_t in = 0, out = 0;
    int s = st->state;

    while (in < len && s < S_DONE) {
        if (s == S_DATA) {
            size_t n = len - in;
            if (n > st->remaining) n = (size_t)st->remaining;
            if (out != in) memmove(buf + out, buf + in, n);
            out += n;
            in += n;
            st->remaining -= n;
            if (st->remaining == 0) s = S_DATA_CR;
            continue;
        }

        unsigned char c = (unsigned char)buf[in++];
        bool on_line = s <= S_SIZE_LF || (s >= S_TRAILER_BOL && s <= S_TRAILER_LF);
        if (on_line && ++st->line_len > CHUNKED_MAX_LINE) {
            s = S_BAD;
            break;
        }
        if (s >= S_TRAILER_BOL && s <= S_END_LF && ++st->remaining > CHUNKED_MAX_TRAILERS) {
            s = S_BAD;
            break;
        }

        switch (s) {
        case S_SIZE: {
            int d = hexval(c);
            if (d >= 0) {
                if (st->remaining > CHUNKED_MAX_SIZE / 16) { s = S_BAD; break; }
                st->remaining = st->remaining * 16 + (uint64_t)d;
                if (st->remaining > CHUNKED_MAX_SIZE) s = S_BAD;
                break;
            }
            if (st->line_len == 1) { s = S_BAD; break; } /* no digit at all */
            if (c == ' ' || c == '\t') s = S_SIZE_WS;
            else if (c == ';') s = S_EXT;
            else if (c == '\r') s = S_SIZE_LF;
            else if (c == '\n') s = end_size_line(st, max_body);
            else s = S_BAD;
            break;
        }
        case S_SIZE_WS:
            if (c == ' ' || c == '\t') break;
            if (c == ';') s = S_EXT;
            else if (c == '\r') s = S_SIZE_LF;
            else if (c == '\n') s = end_size_line(st, max_body);
            else s = S_BAD;
            break;
        case S_EXT:
            if (c == '\r') s = S_SIZE_LF;
            else if (c == '\n') s = end_size_line(st, max_body);
            else if (!is_line_char(c)) s = S_BAD;
            break;
        case S_SIZE_LF:
            s = c == '\n' ? end_size_line(st, max_body) : S_BAD;
            break;
        case S_DATA_CR:
            if (c == '\r') s = S_DATA_LF;
            else if (c == '\n') s = S_SIZE;
            else s = S_BAD;
            break;
        case S_DATA_LF:
            s = c == '\n' ? S_SIZE : S_BAD;
            break;
        case S_TRAILER_BOL:
            if (c == '\r') s = S_END_LF;
            else if (c == '\n') s = S_DONE;
            else if (is_line_char(c)) s = S_TRAILER;
            else s = S_BAD;
            break;
        case S_TRAILER:
            if (c == '\r') s = S_TRAILER_LF;
            else if (c == '\n') { s = S_TRAILER_BOL; st->line_len = 0; }
            else if (!is_line_char(c)) s = S_BAD;
            break;
        case S_TRAILER_LF:
            if (c != '\n') { s = S_BAD; break; }
            s = S_TRAILER_BOL;
            st->line_len = 0;
            break;
        case S_END_LF:
            s = c == '\n' ? S_DONE : S_BAD;
            break;
        }
    }

    st->state = s;
    *out_len = out;
    if (s == S_BAD) return HR_EBADREQ;
    if (s == S_TOOBIG) return HR_EBODYTOOBIG;
    if (s == S_DONE) return (ssize_t)in;
    return HR_EAGAIN;
}

size_t chunked_size_line(char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[2 * sizeof n];
    size_t k = 0;
    do {
        tmp[k++] = hex[n & 15];
        n >>= 4;
    } while (n);
    size_t len = 0;
    while (k) out[len++] = tmp[--k];
    out[len++] = '\r';
    out[len++] = '\n';
    return len;
}
