/* fuzz_msg_unpack.c - the serialized message form read back from the LMDB store and from Redis
 * (streams and the pub/sub feed, which anyone with access to Redis can write to): arbitrary
 * bytes must either be refused or give a message whose msg_pack() is the input again (the form
 * has no slack) except for the UTF-8 / text-safe flag bits, which are worked out from the data;
 * every buffer is exact-size so ASan sees reads past the end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/hub/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    uint8_t *in = malloc(n ? n : 1);
    if (!in) abort();
    memcpy(in, d, n);
    msg_t *m = msg_unpack(in, n, "fuzz/channel", 12);
    if (m) {
        if (msg_pack_size(m) != n) abort();
        char *out = malloc(n);
        if (!out) abort();
        msg_pack(m, out);
        uint32_t derived = MSG_UTF8 | MSG_TEXT_SAFE, fin, fout;
        memcpy(&fin, in + 16, 4); /* little-endian on the machines we fuzz on */
        memcpy(&fout, out + 16, 4);
        if ((fin & ~derived) != (fout & ~derived)) abort();
        if ((fout & MSG_UTF8) != (utf8_valid(m->data, m->data_len) ? MSG_UTF8 : 0)) abort();
        if (memcmp(out, in, 16) != 0 || memcmp(out + 20, in + 20, n - 20) != 0) abort();
        free(out);
        msg_unref(m);
    }
    free(in);
    return 0;
}
