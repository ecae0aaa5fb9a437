/* wq.c - write queue of shared blocks. The ring starts in two inline slots, grows on the heap by
 * doubling when a subscriber falls behind, and goes back inline when it empties. */
#include "wq.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/uio.h>

#include "err.h"


void wq_init(wq_t *q, uint64_t limit)
{
    *q = (wq_t){0};
    q->limit = limit;
    q->ring = q->inl;
    q->cap = WQ_INLINE;
}

static int wq_grow(wq_t *q)
{
    uint32_t ncap = q->cap * 2;
    bytes_t **r = malloc(ncap * sizeof(*r));
    if (!r) return HR_ENOMEM;
    for (uint32_t i = 0; i < q->count; i++) r[i] = q->ring[(q->head + i) % q->cap];
    if (q->ring != q->inl) free(q->ring);
    q->ring = r;
    q->cap = ncap;
    q->head = 0;
    return 0;
}

int wq_push(wq_t *q, bytes_t *b)
{
    if (q->count && wq_cost(q) + b->len + WQ_ENTRY_COST > q->limit) return HR_EFULL;
    if (q->count == q->cap && wq_grow(q) < 0) return HR_ENOMEM;
    q->ring[(q->head + q->count) % q->cap] = bytes_ref(b);
    q->count++;
    q->bytes += b->len;
    return 0;
}

static void wq_release_ring_if_empty(wq_t *q)
{
    if (q->count == 0) {
        if (q->ring != q->inl) free(q->ring);
        q->ring = q->inl;
        q->cap = WQ_INLINE;
        q->head = q->off = 0;
    }
}

int wq_peek(const wq_t *q, struct iovec *iov, int max, size_t *bytes)
{
    int n = 0;
    size_t want = 0;
    for (uint32_t i = 0; i < q->count && n < max; i++, n++) {
        bytes_t *b = q->ring[(q->head + i) % q->cap];
        size_t skip = i == 0 ? q->off : 0;
        iov[n].iov_base = b->data + skip;
        iov[n].iov_len = b->len - skip;
        want += iov[n].iov_len;
    }
    *bytes = want;
    return n;
}

void wq_advance(wq_t *q, size_t n)
{
    q->bytes -= (uint64_t)n;
    while (q->count) { /* pop what was written (a zero-length block counts as written) */
        bytes_t *b = q->ring[q->head];
        size_t rest = b->len - q->off;
        if (n < rest) {
            q->off += (uint32_t)n;
            break;
        }
        n -= rest;
        bytes_unref(b);
        q->head = (q->head + 1) % q->cap;
        q->count--;
        q->off = 0;
    }
    wq_release_ring_if_empty(q);
}

ssize_t wq_flush(wq_t *q, int fd, bool *drained)
{
    ssize_t total = 0;
    while (q->count) {
        struct iovec iov[WQ_IOV_MAX];
        size_t want;
        int n = wq_peek(q, iov, WQ_IOV_MAX, &want);
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            *drained = false;
            return HR_EIO;
        }
        total += w;
        wq_advance(q, (size_t)w);
        if ((size_t)w < want) break; /* socket buffer full */
    }
    *drained = q->count == 0;
    return total;
}

void wq_clear(wq_t *q)
{
    for (uint32_t i = 0; i < q->count; i++) bytes_unref(q->ring[(q->head + i) % q->cap]);
    q->count = 0;
    q->bytes = 0;
    wq_release_ring_if_empty(q);
}
