/* b64.c - base64 variants; see b64.h. */
#include "b64.h"

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

static int b64__val(unsigned char c, bool url)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == (url ? '-' : '+')) return 62;
    if (c == (url ? '_' : '/')) return 63;
    return -1;
}

long b64_decode_ex(const char *in, size_t n, unsigned char *out, size_t cap, unsigned flags)
{
    bool url = flags & B64_URL, pad_ok = flags & (B64_PAD_OK | B64_PAD_REQUIRED);
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0, chars = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if ((flags & B64_SKIP_SPACE) && (c == ' ' || c == '\t' || c == '\r' || c == '\n')) continue;
        if (c == '=' && pad_ok) {
            pad++;
            continue;
        }
        int v = b64__val(c, url);
        if (v < 0 || pad) return -1; /* a bad character, or data after padding */
        chars++;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap) return -1;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (chars % 4 == 1) return -1; /* a lone last character encodes no byte */
    if (pad && (pad > 2 || (chars + pad) % 4)) return -1;
    if ((flags & B64_PAD_REQUIRED) && (chars + pad) % 4) return -1;
    if ((flags & B64_STRICT_BITS) && acc) return -1;
    return (long)o;
}

size_t b64_encode_ex(const unsigned char *in, size_t n, char *out, size_t cap, unsigned flags)
{
    bool url = flags & B64_URL;
    const char *a = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                        : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t need = url ? n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0) : (n + 2) / 3 * 4;
    if (cap < need + 1) {
        if (cap) out[0] = '\0';
        return 0;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        if (i + 1 < n) out[o++] = a[(v >> 6) & 63];
        else if (!url) out[o++] = '=';
        if (i + 2 < n) out[o++] = a[v & 63];
        else if (!url) out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

size_t b64_encode(const void *p, size_t n, char *out, size_t cap) { return b64_encode_ex(p, n, out, cap, 0); }

ssize_t b64_decode(const char *in, size_t n, char *out, size_t cap)
{
    long r = b64_decode_ex(in, n, (unsigned char *)out, cap, B64_PAD_REQUIRED);
    return r < 0 ? HR_EINVAL : (ssize_t)r;
}
