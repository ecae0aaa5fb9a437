/* fuzz_b64.c - the base64 decoder that reads /ws publish payloads ("encoding":"base64"): input
 * that decodes must encode back to exactly the same text (standard alphabet, canonical padding),
 * and arbitrary bytes must survive encode -> decode. Every buffer is exact-size, so ASan sees any
 * write past the documented capacity. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/transport/transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    size_t cap = n / 4 * 3;
    char *out = malloc(cap + 1);
    if (!out) abort();
    ssize_t r = b64_decode((const char *)d, n, out, cap);
    if (r >= 0) {
        if ((size_t)r > cap) abort();
        char *back = malloc(4 * (((size_t)r + 2) / 3) + 1);
        if (!back) abort();
        size_t bn = b64_encode(out, (size_t)r, back, 4 * (((size_t)r + 2) / 3) + 1);
        /* only the unused low bits of the last data character may differ (RFC 4648 3.5) */
        size_t last = n;
        while (last && d[last - 1] == '=') last--;
        if (bn != n || (last && memcmp(back, d, last - 1) != 0) || memcmp(back + last, d + last, n - last) != 0)
            abort();
        free(back);
    }
    free(out);
    /* round trip of raw bytes */
    char *enc = malloc(4 * ((n + 2) / 3) + 1);
    char *dec = malloc(n + 3);
    if (!enc || !dec) abort();
    size_t en = b64_encode(d, n, enc, 4 * ((n + 2) / 3) + 1);
    ssize_t dn = b64_decode(enc, en, dec, n + 2);
    if (dn != (ssize_t)n || memcmp(dec, d, n) != 0) abort();
    free(enc);
    free(dec);
    return 0;
}
