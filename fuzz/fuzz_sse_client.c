/* fuzz_sse_client.c - feeds arbitrary bytes to the SSE client parser twice: in one piece and
 * split at a point taken from the input. Both runs must report the same events (a running
 * hash of event name, id and data) and the same retry. The input is also base64-decoded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/app/sse_client.h"

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return (h ^ n) * 1099511628211ull;
}

static int cb(void *ud, const sse_client_event_t *ev)
{
    uint64_t *h = ud;
    *h = mix(*h, ev->event, strlen(ev->event));
    *h = mix(*h, ev->id, strlen(ev->id));
    *h = mix(*h, ev->data, ev->data_len);
    if (ev->data[ev->data_len] != '\0') abort();
    return 0;
}

static uint64_t run(const uint8_t *d, size_t n, size_t split, int64_t *retry, int *full)
{
    char buf[4096];
    uint64_t h = 14695981039346656037ull;
    sse_client_t p;
    sse_client_init(&p, buf, sizeof(buf), cb, &h);
    ssize_t a = sse_client_feed(&p, (const char *)d, split);
    ssize_t b = a < 0 ? a : sse_client_feed(&p, (const char *)d + split, n - split);
    *full = a < 0 || b < 0;
    *retry = p.retry_ms;
    return mix(h, p.last_id, strlen(p.last_id));
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    size_t split = n ? d[0] % (n + 1) : 0;
    int64_t r1, r2;
    int f1, f2;
    uint64_t h1 = run(d, n, n, &r1, &f1);
    uint64_t h2 = run(d, n, split, &r2, &f2);
    if (f1 != f2) abort();
    if (!f1 && (h1 != h2 || r1 != r2)) abort();

    uint8_t *out = malloc(n / 4 * 3 + 3);
    if (out) sse_client_b64_decode((const char *)d, n, out);
    free(out);
    return 0;
}
