/* fuzz_cursor.c - the composite cursor parser (Last-Event-ID / last_id): the first byte picks
 * the channel count; a parsed cursor must format back to the same text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/transport/transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n < 1) return 0;
    uint32_t nch = (uint32_t)(d[0] % SUB_MAX_CHANNELS) + 1;
    uint64_t cur[SUB_MAX_CHANNELS];
    if (cursor_parse((const char *)d + 1, n - 1, cur, nch) == 0) {
        char out[SUB_MAX_CHANNELS * 21 + 1];
        size_t len = cursor_format(cur, nch, out, sizeof(out));
        /* leading zeros are accepted on input, so compare numerically by re-parsing */
        uint64_t again[SUB_MAX_CHANNELS];
        if (cursor_parse(out, len, again, nch) != 0 || memcmp(cur, again, nch * sizeof(uint64_t)) != 0) abort();
    }
    return 0;
}
