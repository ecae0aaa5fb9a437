/* wq.h - a connection's write queue: references to shared byte blocks, flushed with writev.
 *
 * The queue owns one reference per queued block. It has a byte limit fixed at init; pushing
 * past it fails with HR_EFULL and queues nothing, so the caller applies its slow-consumer
 * policy. The limit counts what the queue costs in memory, not only its bytes: each entry adds
 * WQ_ENTRY_COST (its ring slot and the block's header), so a client that earns thousands of
 * two-byte answers (MQTT PINGRESPs) is held at the limit too. An empty queue holds no heap
 * memory. The queue must not move once initialized. */
#ifndef HERALD_WQ_H
#define HERALD_WQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "bytes.h"

#define WQ_INLINE 2
#define WQ_IOV_MAX 64     /* blocks one flush gathers into one writev */
#define WQ_ENTRY_COST 64 /* bytes an entry costs beyond its data: a ring slot, a block header, malloc's */

typedef struct {
    bytes_t **ring;  /* circular array of cap entries: inl, or a heap array while backlogged */
    bytes_t *inl[WQ_INLINE]; /* the common case (a frame or two in flight) needs no allocation */
    uint32_t cap, head, count;
    uint32_t off;    /* bytes of ring[head] already written */
    uint64_t bytes;  /* queued bytes not yet written */
    uint64_t limit;  /* most bytes allowed in the queue */
} wq_t;

void wq_init(wq_t *q, uint64_t limit);

/* Queues a reference to b (taking a new one; the caller keeps its own). Returns 0, HR_EFULL
 * (nothing queued) when b would take the queue over its limit, or HR_ENOMEM. A block larger than
 * the whole limit is still accepted into an empty queue, so no single frame is undeliverable. */
int wq_push(wq_t *q, bytes_t *b);

/* Writes as much as the socket takes with writev (at most 64 blocks per call, looping while the
 * kernel accepts everything). Returns bytes written (>= 0; the queue may still hold data when the
 * socket is full), or HR_EIO on a socket error. *drained tells whether the queue is now empty. */
ssize_t wq_flush(wq_t *q, int fd, bool *drained);

/* Fills iov[0..max) with the queued bytes not yet written, oldest first (the first entry starts
 * where the last write stopped); *bytes gets their total. Returns the number of entries. For
 * writers other than writev (a TLS session feeds them to SSL_write); the queue is unchanged. */
int wq_peek(const wq_t *q, struct iovec *iov, int max, size_t *bytes);

/* Drops n written bytes from the front (n at most what wq_peek showed), releasing the blocks
 * written in full. */
void wq_advance(wq_t *q, size_t n);

/* True when the queue is empty. */
static inline bool wq_empty(const wq_t *q) { return q->count == 0; }

/* What the queue costs in memory, as its limit counts it. */
static inline uint64_t wq_cost(const wq_t *q) { return q->bytes + (uint64_t)q->count * WQ_ENTRY_COST; }

/* True when the queue is at or over its limit (callers stop reading requests that add to it). */
static inline bool wq_full(const wq_t *q) { return wq_cost(q) >= q->limit; }

/* Drops everything queued and frees the ring. */
void wq_clear(wq_t *q);

#endif
