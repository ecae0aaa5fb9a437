/* stomp_codec.c - pure STOMP 1.0/1.1/1.2 frame parser and writer.
 *
 * Design: like src/http/parse.c, nothing is kept between calls. The caller offers everything it
 * has buffered; we scan it from byte 0 and either find one whole frame or report HR_EAGAIN, and
 * the caller offers the longer buffer later. The rescan is cheap because the head is bounded by
 * max_frame_head, and the body is found with memchr or by its content-length.
 *
 * The scan is strictly forward, and every check at a byte uses only the bytes before it (plus the
 * byte after a CR, or after a backslash, which we wait for). So a prefix of some input either
 * returns HR_EAGAIN or exactly what the whole input returns: garbage and limits are refused as
 * early as the bytes allow, and splitting the input never changes the outcome.
 *
 * Phases of one call:
 *   1. heart-beats: EOLs (LF or CR LF) before the command. A buffer of nothing else returns their
 *      count with cmd STOMP_NONE; when a frame follows they are consumed with it.
 *   2. the head: the command line, header lines "name:value" (split at the first ':', nothing
 *      trimmed), and the blank line. Its bytes, EOLs included and heart-beats excluded, count
 *      against max_frame_head; each header line's bytes (escaped form, EOL excluded) against
 *      max_header_len; the number of header lines against max_headers. Escape sequences are
 *      validated here but not yet decoded.
 *   3. the body: exactly content-length bytes and a NUL when the first content-length header is
 *      present, otherwise everything up to the first NUL.
 *   4. only once the whole frame is present: header names and values are unescaped in place.
 *      This is the only write to buf, so HR_EAGAIN and errors leave it untouched.
 * The NUL ends the frame; EOLs after it are not consumed (they are the next call's heart-beats).
 *
 * Versions: 10 has no escapes (a backslash is an ordinary byte); 11 decodes \n \c \\; any other
 * value gets the 1.2 rules, \r \n \c \\. Any other backslash sequence, including a backslash at
 * the end of a line, is a protocol error. CONNECT, STOMP and CONNECTED frames are never unescaped
 * (1.2 section "Value Encoding"), and the writer does not escape them either.
 *
 * Leniency: CR LF is accepted as an EOL in every version, and a ':' after the first one on a
 * header line is part of the value (1.2's grammar excludes it, but 1.0 peers send it). */
#include "stomp_codec.h"

#include <string.h>

#include "../core/err.h"

/* Indexed by stomp_cmd_t. */
static const char *const cmd_names[] = {
    [STOMP_NONE] = "",
    [STOMP_CONNECT] = "CONNECT",
    [STOMP_STOMP] = "STOMP",
    [STOMP_SEND] = "SEND",
    [STOMP_SUBSCRIBE] = "SUBSCRIBE",
    [STOMP_UNSUBSCRIBE] = "UNSUBSCRIBE",
    [STOMP_ACK] = "ACK",
    [STOMP_NACK] = "NACK",
    [STOMP_BEGIN] = "BEGIN",
    [STOMP_COMMIT] = "COMMIT",
    [STOMP_ABORT] = "ABORT",
    [STOMP_DISCONNECT] = "DISCONNECT",
    [STOMP_CONNECTED] = "CONNECTED",
    [STOMP_MESSAGE] = "MESSAGE",
    [STOMP_RECEIPT] = "RECEIPT",
    [STOMP_ERROR] = "ERROR",
};
#define NCMDS (sizeof cmd_names / sizeof cmd_names[0])

static ssize_t fail(const char **why, ssize_t rc, const char *msg)
{
    if (why) *why = msg;
    return rc;
}

/* Is p[0..n) (n >= 1) the start of some command? Lets garbage be refused at its first byte. */
static bool cmd_prefix(const char *p, size_t n)
{
    for (size_t c = 1; c < NCMDS; c++)
        if (strlen(cmd_names[c]) >= n && memcmp(cmd_names[c], p, n) == 0) return true;
    return false;
}

static stomp_cmd_t cmd_lookup(const char *p, size_t n)
{
    for (size_t c = 1; c < NCMDS; c++)
        if (strlen(cmd_names[c]) == n && memcmp(cmd_names[c], p, n) == 0) return (stomp_cmd_t)c;
    return STOMP_NONE;
}

/* Frames whose headers are sent raw in every version, so that a peer can read them before the
 * version is negotiated. */
static bool cmd_is_raw(stomp_cmd_t c) { return c == STOMP_CONNECT || c == STOMP_STOMP || c == STOMP_CONNECTED; }

/* The byte an escape "\<c>" stands for in this version, or -1 when the sequence is undefined. */
static int unescaped(char c, int version)
{
    switch (c) {
    case 'n': return '\n';
    case 'c': return ':';
    case '\\': return '\\';
    case 'r': return version == 11 ? -1 : '\r';
    default: return -1;
    }
}

/* b[i] is the CR or LF of an EOL inside the head, already counted against max_frame_head. Sets
 * *next past the EOL. */
static ssize_t head_eol(const char *b, size_t len, size_t i, size_t hs, const stomp_limits_t *lim,
                        size_t *next, const char **why)
{
    if (b[i] == '\n') {
        *next = i + 1;
        return 0;
    }
    if (i + 1 == len) return HR_EAGAIN;
    if (b[i + 1] != '\n') return fail(why, HR_EPROTO, "CR not followed by LF");
    if (i + 1 - hs >= lim->max_frame_head) return fail(why, HR_EFULL, "frame head too large");
    *next = i + 2;
    return 0;
}

/* content-length = 1*DIGIT, no sign, no spaces, fitting in 64 bits. */
static bool parse_content_length(const char *p, size_t n, uint64_t *out)
{
    if (n == 0) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Decodes the (already validated) escapes of p[0..n) in place; returns the new length. */
static size_t unescape_in_place(char *p, size_t n, int version)
{
    size_t w = 0;
    for (size_t r = 0; r < n; r++) {
        if (p[r] == '\\' && r + 1 < n) p[w++] = (char)unescaped(p[++r], version);
        else p[w++] = p[r];
    }
    return w;
}

/* Phase 2 after the command: header lines up to the blank line. *pos is at the first header
 * line; on success it is past the blank line's EOL. */
static ssize_t scan_headers(const char *b, size_t len, size_t hs, size_t *pos, bool esc,
                            const stomp_limits_t *lim, stomp_frame_t *f, uint64_t *cl, const char **why)
{
    uint32_t max_headers = lim->max_headers < STOMP_MAX_HEADERS ? lim->max_headers : STOMP_MAX_HEADERS;
    size_t i = *pos;
    for (;;) {
        if (i == len) return HR_EAGAIN;
        if (i - hs >= lim->max_frame_head) return fail(why, HR_EFULL, "frame head too large");
        if (b[i] == '\n' || b[i] == '\r') return head_eol(b, len, i, hs, lim, pos, why);
        if (f->nheaders == max_headers) return fail(why, HR_EFULL, "too many headers");

        size_t ls = i, colon = 0;
        bool have_colon = false, in_escape = false;
        for (;; i++) {
            if (i == len) return HR_EAGAIN;
            if (i - hs >= lim->max_frame_head) return fail(why, HR_EFULL, "frame head too large");
            char c = b[i];
            if (c == '\n' || c == '\r') {
                if (in_escape) return fail(why, HR_EPROTO, "undefined escape sequence");
                break;
            }
            if (i - ls >= lim->max_header_len) return fail(why, HR_EFULL, "header line too long");
            if (in_escape) {
                if (unescaped(c, lim->version) < 0) return fail(why, HR_EPROTO, "undefined escape sequence");
                in_escape = false;
            } else if (c == '\\' && esc) {
                in_escape = true;
            } else if (c == ':' && !have_colon) {
                if (i == ls) return fail(why, HR_EPROTO, "empty header name");
                have_colon = true;
                colon = i;
            }
        }
        if (!have_colon) return fail(why, HR_EPROTO, "header line without ':'");

        span_t name = {b + ls, colon - ls}, value = {b + colon + 1, i - colon - 1};
        if (!f->has_content_length && span_eq(name, "content-length")) {
            if (!parse_content_length(value.p, value.n, cl)) return fail(why, HR_EPROTO, "invalid content-length");
            f->has_content_length = true;
        }
        f->name[f->nheaders] = name;
        f->value[f->nheaders] = value;
        f->nheaders++;
        ssize_t rc = head_eol(b, len, i, hs, lim, &i, why);
        if (rc < 0) return rc;
    }
}

ssize_t stomp_frame_parse(char *buf, size_t len, const stomp_limits_t *lim, stomp_frame_t *f, const char **why)
{
    f->cmd = STOMP_NONE;
    f->nheaders = 0;
    f->body = NULL;
    f->body_len = 0;
    f->has_content_length = false;

    /* 1. heart-beats */
    size_t i = 0;
    while (i < len) {
        if (buf[i] == '\n') {
            i++;
        } else if (buf[i] == '\r') {
            if (i + 1 == len) return HR_EAGAIN;
            if (buf[i + 1] != '\n') return fail(why, HR_EPROTO, "CR not followed by LF");
            i += 2;
        } else {
            break;
        }
    }
    if (i == len) return len ? (ssize_t)len : HR_EAGAIN;

    /* 2. the command line, then the headers */
    size_t hs = i;
    for (;; i++) {
        if (i == len) return HR_EAGAIN;
        if (i - hs >= lim->max_frame_head) return fail(why, HR_EFULL, "frame head too large");
        if (buf[i] == '\n' || buf[i] == '\r') break;
        if (!cmd_prefix(buf + hs, i - hs + 1)) return fail(why, HR_EPROTO, "unknown command");
    }
    stomp_cmd_t cmd = cmd_lookup(buf + hs, i - hs);
    if (cmd == STOMP_NONE) return fail(why, HR_EPROTO, "unknown command");
    ssize_t rc = head_eol(buf, len, i, hs, lim, &i, why);
    if (rc < 0) return rc;

    bool esc = lim->version != 10 && !cmd_is_raw(cmd);
    uint64_t cl = 0;
    rc = scan_headers(buf, len, hs, &i, esc, lim, f, &cl, why);
    if (rc < 0) return rc;

    /* 3. the body */
    size_t bs = i, avail = len - bs, body_len;
    if (f->has_content_length) {
        if (cl > lim->max_body) return fail(why, HR_EFULL, "body too large");
        if ((uint64_t)avail <= cl) return HR_EAGAIN;
        body_len = (size_t)cl; /* cl < avail, so it fits */
        if (buf[bs + body_len] != '\0') return fail(why, HR_EPROTO, "missing NUL after body");
    } else {
        size_t scan = avail;
        if ((uint64_t)scan > lim->max_body) scan = (size_t)lim->max_body + 1;
        const char *nul = memchr(buf + bs, '\0', scan);
        if (!nul) return (uint64_t)avail > lim->max_body ? fail(why, HR_EFULL, "body too large") : HR_EAGAIN;
        body_len = (size_t)(nul - (buf + bs));
    }

    /* 4. complete: decode the escapes in place */
    for (uint32_t k = 0; k < f->nheaders && esc; k++) {
        char *n = buf + (f->name[k].p - buf), *v = buf + (f->value[k].p - buf);
        f->name[k].n = unescape_in_place(n, f->name[k].n, lim->version);
        f->value[k].n = unescape_in_place(v, f->value[k].n, lim->version);
    }
    f->cmd = cmd;
    f->body = buf + bs;
    f->body_len = body_len;
    return (ssize_t)(bs + body_len + 1);
}

span_t stomp_header(const stomp_frame_t *f, const char *name)
{
    for (uint32_t k = 0; k < f->nheaders; k++)
        if (span_eq(f->name[k], name)) return f->value[k];
    return (span_t){NULL, 0};
}

const char *stomp_cmd_name(stomp_cmd_t cmd)
{
    if ((size_t)cmd >= NCMDS) return "";
    return cmd_names[cmd];
}

/* Appends p[0..n) to out; false when it does not fit. */
static bool put(char *out, size_t cap, size_t *w, const void *p, size_t n)
{
    if (n > cap - *w) return false;
    if (n) memcpy(out + *w, p, n);
    *w += n;
    return true;
}

ssize_t stomp_escape(const char *s, size_t n, char *out, size_t cap, int version)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i], e = 0;
        if (version == 10) {
            if (c == '\n' || c == '\r') return HR_EINVAL;
        } else {
            switch (c) {
            case '\n': e = 'n'; break;
            case ':': e = 'c'; break;
            case '\\': e = '\\'; break;
            case '\r':
                if (version == 11) return HR_EINVAL;
                e = 'r';
                break;
            default: break;
            }
        }
        char pair[2] = {'\\', e};
        if (e ? !put(out, cap, &w, pair, 2) : !put(out, cap, &w, &c, 1)) return HR_EFULL;
    }
    return (ssize_t)w;
}

/* Writes s[0..n) unescaped, refusing what the parser could not read back: CR and LF anywhere,
 * and ':' in a name. */
static ssize_t put_raw(char *out, size_t cap, size_t *w, span_t s, bool is_name)
{
    for (size_t i = 0; i < s.n; i++)
        if (s.p[i] == '\n' || s.p[i] == '\r' || (is_name && s.p[i] == ':')) return HR_EINVAL;
    return put(out, cap, w, s.p, s.n) ? 0 : HR_EFULL;
}

static ssize_t put_header_part(char *out, size_t cap, size_t *w, span_t s, bool is_name, bool esc,
                               int version)
{
    if (!esc || version == 10) return put_raw(out, cap, w, s, is_name);
    ssize_t n = stomp_escape(s.p, s.n, out + *w, cap - *w, version);
    if (n < 0) return n;
    *w += (size_t)n;
    return 0;
}

/* Did the caller pass its own content-length header? */
static bool has_content_length(const span_t *names, uint32_t nh)
{
    for (uint32_t k = 0; k < nh; k++)
        if (span_eq(names[k], "content-length")) return true;
    return false;
}

ssize_t stomp_frame_write(char *out, size_t cap, const char *cmd, const span_t *names, const span_t *values,
                          uint32_t nh, int version, const void *body, size_t body_len, bool content_length)
{
    size_t w = 0, cmd_len = strlen(cmd);
    if (cmd_len == 0 || memchr(cmd, '\n', cmd_len) || memchr(cmd, '\r', cmd_len)) return HR_EINVAL;
    if (!content_length && body_len && memchr(body, '\0', body_len) && !has_content_length(names, nh))
        return HR_EINVAL;
    if (!put(out, cap, &w, cmd, cmd_len) || !put(out, cap, &w, "\n", 1)) return HR_EFULL;

    bool esc = !cmd_is_raw(cmd_lookup(cmd, cmd_len));
    for (uint32_t k = 0; k < nh; k++) {
        if (names[k].n == 0) return HR_EINVAL;
        ssize_t rc = put_header_part(out, cap, &w, names[k], true, esc, version);
        if (rc == 0 && !put(out, cap, &w, ":", 1)) rc = HR_EFULL;
        if (rc == 0) rc = put_header_part(out, cap, &w, values[k], false, esc, version);
        if (rc == 0 && !put(out, cap, &w, "\n", 1)) rc = HR_EFULL;
        if (rc < 0) return rc;
    }
    if (content_length) {
        char digits[24];
        size_t nd = 0;
        size_t v = body_len;
        do {
            digits[sizeof digits - ++nd] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        if (!put(out, cap, &w, "content-length:", 15) || !put(out, cap, &w, digits + sizeof digits - nd, nd) ||
            !put(out, cap, &w, "\n", 1))
            return HR_EFULL;
    }
    if (!put(out, cap, &w, "\n", 1) || !put(out, cap, &w, body, body_len) || !put(out, cap, &w, "", 1))
        return HR_EFULL;
    return (ssize_t)w;
}
