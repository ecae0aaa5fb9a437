/* fuzz_proxyproto.c - the PROXY protocol header (core/proxyproto.h), every byte from the
 * network: a header found must lie within the input and within PROXYPROTO_MAX; "need more" must
 * stay "need more" or become a verdict as bytes are added, never a different header length. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    proxyproto_t h;
    int rc = proxyproto_parse(d, n, &h);
    if (rc > 0 && ((size_t)rc > n || rc > PROXYPROTO_MAX)) abort();
    if (rc > 0) {
        char text[64];
        proxyproto_format(&h, text, sizeof(text));
        if (!memchr(text, 0, sizeof(text))) abort();
        /* any prefix shorter than the header says "need more" or refuses, never accepts */
        for (size_t k = 0; k < (size_t)rc; k += 7) {
            proxyproto_t p;
            if (proxyproto_parse(d, k, &p) > 0) abort();
        }
    }
    return 0;
}
