/* ws_deflate.c - permessage-deflate with zlib; see ws_deflate.h. */
#include "ws_deflate.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../core/err.h"
#include "ws_codec.h"

struct ws_zshared {
    z_stream z[2]; /* [0]: 15-bit window, [1]: 9-bit window */
    bool ready[2];
};

struct ws_zin {
    z_stream z;
};

ws_zshared_t *ws_zshared_new(void) { return calloc(1, sizeof(ws_zshared_t)); }

void ws_zshared_free(ws_zshared_t *zs)
{
    if (!zs) return;
    for (int i = 0; i < 2; i++)
        if (zs->ready[i]) deflateEnd(&zs->z[i]);
    free(zs);
}

bytes_t *ws_zframe(ws_zshared_t *zs, int bits, uint8_t opcode, const void *p, size_t n)
{
    int i = bits >= 15 ? 0 : 1;
    z_stream *z = &zs->z[i];
    if (!zs->ready[i]) {
        /* raw deflate (negative window bits); memLevel 8 is zlib's default */
        if (deflateInit2(z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, i == 0 ? -15 : -9, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return NULL;
        zs->ready[i] = true;
    } else {
        deflateReset(z); /* server_no_context_takeover: every message starts afresh */
    }
    if (n > UINT32_MAX / 2) return NULL;
    /* worth compressing only when it comes out smaller than n: give deflate exactly n bytes of
     * room after the header (plus 4 for the sync-flush tail that is cut off again) */
    size_t room = n + 4;
    bytes_t *b = bytes_new(WS_MAX_HEADER + room);
    if (!b) return NULL;
    uint8_t *out = (uint8_t *)b->data + WS_MAX_HEADER;
    z->next_in = (Bytef *)(uintptr_t)p;
    z->avail_in = (uInt)n;
    z->next_out = out;
    z->avail_out = (uInt)room;
    int rc = deflate(z, Z_SYNC_FLUSH);
    size_t clen = room - z->avail_out;
    /* a complete sync flush ends with 00 00 ff ff and leaves output room to spare */
    if ((rc != Z_OK && rc != Z_BUF_ERROR) || z->avail_in || z->avail_out == 0 || clen < 4 ||
        memcmp(out + clen - 4, "\x00\x00\xff\xff", 4) != 0 || clen - 4 >= n) {
        bytes_unref(b);
        return NULL;
    }
    clen -= 4;
    uint8_t head[WS_MAX_HEADER];
    size_t hl = ws_header_write(head, opcode, true, true, clen);
    /* put the header right before the payload and slide the frame to the block's start */
    memcpy(b->data + WS_MAX_HEADER - hl, head, hl);
    memmove(b->data, b->data + WS_MAX_HEADER - hl, hl + clen);
    b->len = (uint32_t)(hl + clen);
    return b;
}

int ws_zinflate(ws_zin_t **zinp, const void *p, size_t n, size_t max, bool reset, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    ws_zin_t *zin = *zinp;
    if (!zin) {
        zin = calloc(1, sizeof(*zin));
        if (!zin) return HR_ENOMEM;
        if (inflateInit2(&zin->z, -15) != Z_OK) {
            free(zin);
            return HR_ENOMEM;
        }
        *zinp = zin;
    }
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    size_t cap = n * 4 + 64, len = 0;
    if (cap > max + 1) cap = max + 1;
    char *buf = malloc(cap);
    int rc = buf ? 0 : HR_ENOMEM;
    for (int part = 0; part < 2 && rc == 0; part++) {
        zin->z.next_in = part == 0 ? (Bytef *)(uintptr_t)p : (Bytef *)(uintptr_t)tail;
        zin->z.avail_in = part == 0 ? (uInt)n : 4;
        while (rc == 0) {
            if (len == cap) {
                if (cap > max) {
                    rc = HR_EFULL;
                    break;
                }
                size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
                char *nb = realloc(buf, ncap);
                if (!nb) {
                    rc = HR_ENOMEM;
                    break;
                }
                buf = nb;
                cap = ncap;
            }
            zin->z.next_out = (Bytef *)buf + len;
            zin->z.avail_out = (uInt)(cap - len);
            int zr = inflate(&zin->z, Z_SYNC_FLUSH);
            len = cap - zin->z.avail_out;
            if (zr == Z_STREAM_END) { /* a final block: the peer ended its stream; start a new one next time */
                inflateReset(&zin->z);
                if (zin->z.avail_in) rc = HR_EPROTO;
                break;
            }
            if (zr != Z_OK && zr != Z_BUF_ERROR) {
                rc = HR_EPROTO;
                break;
            }
            if (zin->z.avail_in == 0 && zin->z.avail_out != 0) break;
            if (zr == Z_BUF_ERROR && zin->z.avail_out != 0) break; /* no progress possible */
        }
    }
    if (rc == 0 && len > max) rc = HR_EFULL;
    if (rc != 0 || reset) {
        ws_zin_free(zin);
        *zinp = NULL;
    }
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

void ws_zin_free(ws_zin_t *zin)
{
    if (!zin) return;
    inflateEnd(&zin->z);
    free(zin);
}
