/* fuzz_chunked.c - libFuzzer target for the chunked decoder.
 *
 * The first input byte picks a split point and a max_body; the rest is fed to chunked_decode() in
 * two pieces (and then again one byte at a time), each piece in its own exact-size heap buffer so
 * ASan catches any access past it. Invariants: out_len never exceeds the piece (nor the returned
 * body end), return values are in range, bytes after the body's end are not modified, and the
 * split and byte-by-byte runs decode the same body with the same outcome. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/err.h"
#include "../src/http/chunked.h"

typedef struct {
    ssize_t rc;
    size_t end; /* offset where the body ended, when rc >= 0 */
    char *out;  /* decoded body, at most n bytes */
    size_t out_n;
} run_t;

/* Feeds d[0..n) in pieces: first `first` bytes, then `step` at a time. */
static void run(const uint8_t *d, size_t n, size_t first, size_t step, uint64_t max_body, run_t *r)
{
    chunked_dec_t st = {0};
    r->rc = HR_EAGAIN;
    r->end = 0;
    r->out_n = 0;
    size_t off = 0;
    while (off < n) {
        size_t k = off == 0 && first ? first : step;
        if (k > n - off) k = n - off;
        char *p = malloc(k);
        if (!p) abort();
        memcpy(p, d + off, k);
        size_t got = SIZE_MAX;
        ssize_t rc = chunked_decode(&st, p, k, &got, max_body);
        assert(rc == HR_EAGAIN || rc == HR_EBADREQ || rc == HR_EBODYTOOBIG ||
               (rc >= 0 && (size_t)rc <= k));
        assert(got <= k);
        if (rc >= 0) {
            assert(got <= (size_t)rc);
            assert(memcmp(p + rc, d + off + rc, k - (size_t)rc) == 0);
        }
        assert(r->out_n + got <= n);
        memcpy(r->out + r->out_n, p, got);
        r->out_n += got;
        free(p);
        r->rc = rc;
        if (rc >= 0) r->end = off + (size_t)rc;
        if (rc != HR_EAGAIN) break;
        off += k;
    }
    assert(r->out_n <= max_body);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n < 1) return 0;
    uint8_t ctl = d[0];
    d++;
    n--;
    uint64_t max_body = (ctl & 0x80) ? 16 : 1 << 20;
    size_t split = n ? (size_t)(ctl & 0x7f) % (n + 1) : 0;

    run_t a = {.out = malloc(n + 1)}, b = {.out = malloc(n + 1)};
    if (!a.out || !b.out) abort();
    run(d, n, split, n, max_body, &a);
    run(d, n, 0, 1, max_body, &b);
    assert(a.rc == b.rc || (a.rc >= 0 && b.rc >= 0));
    if (a.rc >= 0) {
        assert(a.end == b.end);
        assert(a.out_n == b.out_n && memcmp(a.out, b.out, a.out_n) == 0);
    }
    free(a.out);
    free(b.out);
    return 0;
}
