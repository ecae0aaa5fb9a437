/* sockjs.c - SockJS framing; see sockjs.h. */
#include "sockjs.h"

#include <stdio.h>
#include <string.h>

#include "../core/err.h"

static const char hexd[] = "0123456789abcdef";

/* Length of the UTF-8 sequence at s[i..n) and its code point, or 0 when it is not valid
 * (overlong, surrogate, past U+10FFFF, cut). */
static size_t sj__utf8(const unsigned char *s, size_t i, size_t n, uint32_t *cp)
{
    unsigned char c = s[i];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n - i < len) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[i + k] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i + k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

static bool sj__server_escapes(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x200C && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) ||
           (cp >= 0x2060 && cp <= 0x206F) || (cp >= 0xFFF0 && cp <= 0xFFFF);
}

size_t sockjs_quote(const char *s, size_t n, bool script_safe, char *out, size_t cap)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    if (cap < 2) return 0;
    out[o++] = '"';
    for (size_t i = 0; i < n;) {
        if (cap - o < 7) return 0; /* an escape (6) and the closing quote */
        uint32_t cp;
        size_t len = sj__utf8(u, i, n, &cp);
        if (!len) { /* not UTF-8: the byte as a code point */
            cp = u[i];
            len = 1;
        } else if (cp == '"' || cp == '\\') {
            out[o++] = '\\';
            out[o++] = (char)cp;
            i += len;
            continue;
        } else if (!sj__server_escapes(cp) && cp != 0x7f && !(script_safe && (cp == '<' || cp == '>' || cp == '&'))) {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
            continue;
        }
        const char *sh = cp == '\n' ? "n" : cp == '\r' ? "r" : cp == '\t' ? "t" : cp == '\b' ? "b" : cp == '\f' ? "f" : NULL;
        out[o++] = '\\';
        if (sh) { /* JSON's short forms, as JSON.stringify writes them */
            out[o++] = sh[0];
            i += len;
            continue;
        }
        out[o++] = 'u';
        out[o++] = hexd[(cp >> 12) & 15];
        out[o++] = hexd[(cp >> 8) & 15];
        out[o++] = hexd[(cp >> 4) & 15];
        out[o++] = hexd[cp & 15];
        i += len;
    }
    if (cap - o < 1) return 0;
    out[o++] = '"';
    return o;
}

size_t sockjs_close_frame(uint16_t code, const char *reason, char *out, size_t cap)
{
    int k = snprintf(out, cap, "c[%u,", code);
    if (k < 0 || (size_t)k >= cap) return 0;
    size_t q = sockjs_quote(reason, strlen(reason), false, out + k, cap - (size_t)k);
    if (!q || (size_t)k + q + 1 >= cap) return 0;
    out[(size_t)k + q] = ']';
    return (size_t)k + q + 1;
}

static bool sj__ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int sj__hex4(const char *p, uint32_t *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        *v = (*v << 4) | (uint32_t)d;
    }
    return 0;
}

static size_t sj__put_utf8(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses the JSON string starting at in[*pos] == '"'; writes its text to out (when not NULL)
 * and advances *pos past the closing quote. Returns the decoded length or -1. The decoded text
 * is never longer than its encoding. */
static ssize_t sj__string(const char *in, size_t n, size_t *pos, char *out)
{
    size_t i = *pos, o = 0;
    if (i >= n || in[i] != '"') return -1;
    i++;
    while (i < n) {
        unsigned char c = (unsigned char)in[i];
        if (c == '"') {
            *pos = i + 1;
            return (ssize_t)o;
        }
        if (c < 0x20) return -1; /* control characters must be escaped */
        if (c != '\\') {
            uint32_t cp;
            size_t len = sj__utf8((const unsigned char *)in, i, n, &cp);
            if (!len) return -1; /* JSON text is UTF-8 */
            if (out) memmove(out + o, in + i, len);
            o += len;
            i += len;
            continue;
        }
        if (++i >= n) return -1;
        char e = in[i++], r;
        switch (e) {
        case '"': r = '"'; break;
        case '\\': r = '\\'; break;
        case '/': r = '/'; break;
        case 'b': r = '\b'; break;
        case 'f': r = '\f'; break;
        case 'n': r = '\n'; break;
        case 'r': r = '\r'; break;
        case 't': r = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (n - i < 4 || sj__hex4(in + i, &cp) < 0) return -1;
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) { /* a high surrogate: a low one should follow */
                uint32_t lo;
                if (n - i >= 6 && in[i] == '\\' && in[i + 1] == 'u' && sj__hex4(in + i + 2, &lo) == 0 && lo >= 0xDC00 &&
                    lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                } else {
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            char tmp[4];
            size_t len = sj__put_utf8(cp, tmp);
            if (out) memcpy(out + o, tmp, len);
            o += len;
            continue;
        }
        default: return -1;
        }
        if (out) out[o] = r;
        o++;
    }
    return -1;
}

/* Walks the input; with out NULL only checks and counts. Returns the count or HR_EINVAL. */
static ssize_t sj__walk(const char *in, size_t n, bool allow_bare, uint32_t max_msgs, char *out, sockjs_msg_cb cb,
                        void *ctx, const char **why)
{
    size_t i = 0;
    ssize_t count = 0;
    while (i < n && sj__ws(in[i])) i++;
    if (i < n && in[i] == '"' && allow_bare) {
        ssize_t len = sj__string(in, n, &i, out);
        if (len < 0) goto broken;
        while (i < n && sj__ws(in[i])) i++;
        if (i != n) goto broken;
        if (out) {
            int rc = cb(ctx, out, (size_t)len);
            if (rc < 0) return rc;
        }
        return 1;
    }
    if (i >= n || in[i] != '[') goto broken;
    i++;
    while (i < n && sj__ws(in[i])) i++;
    if (i < n && in[i] == ']') {
        i++;
    } else {
        for (;;) {
            ssize_t len = sj__string(in, n, &i, out);
            if (len < 0) goto broken;
            if ((uint32_t)count == max_msgs) {
                *why = "too many messages";
                return HR_EINVAL;
            }
            count++;
            if (out) {
                int rc = cb(ctx, out, (size_t)len);
                if (rc < 0) return rc;
            }
            while (i < n && sj__ws(in[i])) i++;
            if (i < n && in[i] == ',') {
                i++;
                while (i < n && sj__ws(in[i])) i++;
                continue;
            }
            if (i < n && in[i] == ']') {
                i++;
                break;
            }
            goto broken;
        }
    }
    while (i < n && sj__ws(in[i])) i++;
    if (i != n) goto broken;
    return count;
broken:
    *why = "Broken JSON encoding.";
    return HR_EINVAL;
}

ssize_t sockjs_decode(const char *in, size_t n, bool allow_bare, uint32_t max_msgs, char *scratch, size_t cap,
                      sockjs_msg_cb cb, void *ctx, const char **why)
{
    *why = NULL;
    ssize_t count = sj__walk(in, n, allow_bare, max_msgs, NULL, NULL, NULL, why);
    if (count <= 0 || cap < n) return count < 0 ? count : 0;
    return sj__walk(in, n, allow_bare, max_msgs, scratch, cb, ctx, why);
}

bool sockjs_id_valid(const char *p, size_t n)
{
    if (n == 0 || n > SOCKJS_MAX_ID) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '.' || c == '/' || c <= 0x20 || c == 0x7f) return false;
    }
    return true;
}

bool sockjs_callback_valid(const char *p, size_t n)
{
    if (n == 0 || n > SOCKJS_MAX_CALLBACK) return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-'))
            return false;
    }
    return true;
}

ssize_t sockjs_form_field(const char *body, size_t n, const char *key, char *out, size_t cap)
{
    size_t kn = strlen(key), i = 0;
    while (i < n) {
        const char *amp = memchr(body + i, '&', n - i);
        size_t end = amp ? (size_t)(amp - body) : n;
        if (end - i > kn && memcmp(body + i, key, kn) == 0 && body[i + kn] == '=') {
            size_t o = 0;
            for (size_t k = i + kn + 1; k < end; k++) {
                if (o >= cap) return HR_EINVAL;
                char c = body[k];
                if (c == '+') {
                    out[o++] = ' ';
                } else if (c == '%') {
                    uint32_t v;
                    char h[4] = {'0', '0', 0, 0};
                    if (end - k < 3) return HR_EINVAL;
                    h[2] = body[k + 1];
                    h[3] = body[k + 2];
                    if (sj__hex4(h, &v) < 0) return HR_EINVAL;
                    out[o++] = (char)v;
                    k += 2;
                } else {
                    out[o++] = c;
                }
            }
            return (ssize_t)o;
        }
        i = end + 1;
    }
    return HR_ENOTFOUND;
}
