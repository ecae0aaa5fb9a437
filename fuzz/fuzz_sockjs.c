/* fuzz_sockjs.c - libFuzzer target for the SockJS framing codec (src/proto/sockjs.h).
 *
 * The first byte picks the options: bit 0 allows a bare string (the WebSocket form), bits 1-3 a
 * message bound (0-7, 7: unbounded), bit 4 script-safe escaping. The rest is a client's input,
 * decoded from an exact-size heap copy (ASan sees any read past it), once into a separate
 * scratch buffer and once in place; both must give the same messages and result. Every decoded
 * message is valid UTF-8 by construction: escaping it again with sockjs_quote (within 6n+2) and
 * decoding that as a bare string must give it back byte for byte. The raw input is also escaped
 * (any bytes are accepted), and the form-field and id checks run on it. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/err.h"
#include "../src/proto/sockjs.h"

typedef struct {
    char *out;
    size_t len, count;
    bool safe;
} acc_t;

static int one_back(void *ctx, char *m, size_t n)
{
    acc_t *a = ctx;
    assert(n == a->len && memcmp(m, a->out, n) == 0);
    a->count++;
    return 0;
}

static int check(void *ctx, char *m, size_t n)
{
    acc_t *a = ctx;
    /* record, for the in-place run to compare */
    memcpy(a->out + a->len, &n, sizeof(n));
    memcpy(a->out + a->len + sizeof(n), m, n);
    a->len += sizeof(n) + n;
    a->count++;
    size_t cap = 6 * n + 2;
    char *q = malloc(cap);
    size_t qn = sockjs_quote(m, n, a->safe, q, cap);
    assert(qn >= 2 && qn <= cap);
    char *scratch = malloc(qn);
    acc_t back = {.out = m, .len = n};
    const char *why;
    ssize_t rc = sockjs_decode(q, qn, true, 1, scratch, qn, one_back, &back, &why);
    assert(rc == 1 && back.count == 1);
    free(scratch);
    free(q);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n < 1) return 0;
    uint8_t opt = d[0];
    bool bare = opt & 1, safe = opt & 16;
    uint32_t max = (opt >> 1) & 7;
    if (max == 7) max = UINT32_MAX;
    d++;
    n--;
    char *in = malloc(n ? n : 1);
    if (n) memcpy(in, d, n);
    char *scratch = malloc(n ? n : 1);
    char *rec1 = malloc(n * (1 + sizeof(size_t)) + 16), *rec2 = malloc(n * (1 + sizeof(size_t)) + 16);
    acc_t a1 = {.out = rec1, .safe = safe}, a2 = {.out = rec2, .safe = safe};
    const char *why1 = NULL, *why2 = NULL;
    ssize_t r1 = sockjs_decode(in, n, bare, max, scratch, n, check, &a1, &why1);
    ssize_t r2 = sockjs_decode(in, n, bare, max, in, n, check, &a2, &why2); /* in place */
    assert(r1 == r2);
    assert(r1 < 0 ? why1 != NULL && a1.count == 0 : (size_t)r1 == a1.count);
    assert(a1.len == a2.len && memcmp(rec1, rec2, a1.len) == 0);
    free(rec1);
    free(rec2);
    free(scratch);
    /* the raw bytes: escaping accepts anything, within 6n+2 */
    memcpy(in, d, n);
    size_t cap = 6 * n + 2;
    char *q = malloc(cap);
    size_t qn = sockjs_quote(in, n, safe, q, cap);
    assert(qn >= 2 && qn <= cap);
    free(q);
    char field[256];
    ssize_t fn = sockjs_form_field(in, n, "d", field, sizeof(field));
    assert(fn == HR_ENOTFOUND || fn == HR_EINVAL || (fn >= 0 && (size_t)fn <= sizeof(field)));
    (void)sockjs_id_valid(in, n);
    (void)sockjs_callback_valid(in, n);
    free(in);
    return 0;
}
