/* ws_deflate.h - permessage-deflate (RFC 7692) with zlib.
 *
 * Outgoing: herald always answers server_no_context_takeover, so each message is compressed on
 * its own and the compressed frame depends only on the window size, never on the connection. One
 * shared compressor per window size (15 and 9 bits) lives in the server context; a published
 * message is compressed once per window size and every subscriber that negotiated it queues the
 * same frame. A peer that limits server_max_window_bits to 9..14 gets the 9-bit frames, which any
 * larger window decodes.
 *
 * Incoming: a client may keep its compression context across messages, so a connection that
 * receives compressed messages holds an inflater; it is made on the first compressed message (an
 * idle subscriber never pays for one) and dropped after each message when the client agreed to
 * client_no_context_takeover. Output is bounded: a message that inflates past the limit is
 * refused (1009), so a small bomb cannot take memory. */
#ifndef HERALD_WS_DEFLATE_H
#define HERALD_WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../core/bytes.h"

typedef struct ws_zshared ws_zshared_t;
typedef struct ws_zin ws_zin_t;

/* Makes the shared compressors (zlib streams are created on first use). NULL on OOM. */
ws_zshared_t *ws_zshared_new(void);
void ws_zshared_free(ws_zshared_t *zs);

/* A new block holding one server frame (opcode, RSV1 set) whose payload is p[0..n) compressed
 * alone with a window of bits (15, or 9 for any smaller agreed window). Returns NULL when the
 * compressed form would not be smaller than n (send the plain frame instead) or on failure. */
bytes_t *ws_zframe(ws_zshared_t *zs, int bits, uint8_t opcode, const void *p, size_t n);

/* Inflates one compressed message p[0..n) (the frames' payloads joined, without the 00 00 ff ff
 * tail, which this adds). *zin is created on first use. The output goes to a new malloc'd
 * buffer in *out (the caller frees it) of *out_len bytes. reset: drop the context afterwards
 * (client_no_context_takeover). Returns 0, HR_EFULL when the output would pass max bytes, or
 * HR_EPROTO for data that is not valid DEFLATE (or HR_ENOMEM). */
int ws_zinflate(ws_zin_t **zin, const void *p, size_t n, size_t max, bool reset, char **out, size_t *out_len);

/* Frees an inflater (NULL is fine). */
void ws_zin_free(ws_zin_t *zin);

#endif
