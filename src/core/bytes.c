/* bytes.c - refcounted immutable blocks. The live counter is process-wide diagnostics only
 * (never read by server logic), kept so unit tests can assert that every block was released. */
#include "bytes.h"

#include <stdlib.h>
#include <string.h>

static long live_blocks; /* diagnostics only: see the file comment */

bytes_t *bytes_new(size_t len)
{
    if (len > UINT32_MAX) return NULL;
    bytes_t *b = malloc(sizeof(*b) + len);
    if (!b) return NULL;
    b->refs = 1;
    b->len = (uint32_t)len;
    live_blocks++;
    return b;
}

bytes_t *bytes_copy(const void *p, size_t len)
{
    bytes_t *b = bytes_new(len);
    if (b && len) memcpy(b->data, p, len);
    return b;
}

void bytes_unref(bytes_t *b)
{
    if (b && --b->refs == 0) {
        live_blocks--;
        free(b);
    }
}

long bytes_live(void) { return live_blocks; }
