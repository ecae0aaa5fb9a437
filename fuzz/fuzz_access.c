/* fuzz_access.c - client input read for the access log and the proxy's client (http/access.h):
 * an X-Forwarded-For value and a request-target whose credential parameters are redacted.
 * The client found must be an address; the redacted target must fit, be NUL-terminated, and
 * never hold the value of a token parameter. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/http/access.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static ipset_t trusted;
    static int ready;
    if (!ready) {
        char err[80];
        ready = ipset_parse(&trusted, "127.0.0.1 10.0.0.1 ::1", err, sizeof(err)) == 0 ? 1 : -1;
    }
    if (ready < 0) abort();
    char client[64];
    uint8_t a[16];
    if (http_access_forwarded(&trusted, (span_t){(const char *)d, n}, client, sizeof(client)) &&
        !ip_parse16(client, strlen(client), a))
        abort();
    char out[128];
    size_t k = http_access_redact((const char *)d, n, out, sizeof(out));
    if (k >= sizeof(out) || out[k] != 0) abort();
    /* a parameter named token in the query (after the first '?') is always REDACTED */
    const char *q = memchr(out, '?', k);
    for (const char *p = q ? q + 1 : NULL; p && p < out + k;) {
        const char *e = memchr(p, '&', (size_t)(out + k - p));
        size_t len = e ? (size_t)(e - p) : (size_t)(out + k - p);
        if (len >= 6 && memcmp(p, "token=", 6) == 0 && !(len == 14 && memcmp(p + 6, "REDACTED", 8) == 0) &&
            !(e == NULL && len < 14 && k == sizeof(out) - 1) /* cut short at the end of out */)
            abort();
        p = e ? e + 1 : NULL;
    }
    return 0;
}
