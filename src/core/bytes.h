/* bytes.h - immutable, refcounted byte blocks.
 *
 * A bytes_t is written once by its creator and then only read: an encoded frame that every
 * subscriber of a transport queues by reference (encode once, share the bytes). The loop is
 * single-threaded, so the count is a plain integer. */
#ifndef HERALD_BYTES_H
#define HERALD_BYTES_H

#include <stddef.h>
#include <stdint.h>

typedef struct bytes {
    uint32_t refs;
    uint32_t len;
    char data[];
} bytes_t;

/* Allocates a block of len bytes with one reference (contents uninitialized). NULL on OOM. */
bytes_t *bytes_new(size_t len);

/* Allocates a block holding a copy of p[0..len). NULL on OOM. */
bytes_t *bytes_copy(const void *p, size_t len);

/* Adds a reference and returns b. */
static inline bytes_t *bytes_ref(bytes_t *b)
{
    b->refs++;
    return b;
}

/* Drops a reference; frees the block when it was the last. NULL is ignored. */
void bytes_unref(bytes_t *b);

/* Current count of live blocks (for leak checks in tests). */
long bytes_live(void);

#endif
