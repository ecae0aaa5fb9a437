/* chunked.h - pure incremental decoder for the chunked transfer coding (RFC 9112 section 7.1),
 * and the encoder's framing helper.
 *
 * The decoder is fed bytes as they arrive; it decodes in place, moving chunk data to the
 * front of the buffer, so the caller needs no second buffer. State starts zeroed. Chunk
 * extensions are skipped; trailer fields are skipped. */
#ifndef HERALD_HTTP_CHUNKED_H
#define HERALD_HTTP_CHUNKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct {
    int state;         /* internal; 0 at start */
    uint64_t remaining; /* bytes left in the current chunk */
    size_t line_len;   /* bytes seen on the current size/extension/trailer line (limit) */
    uint64_t total;    /* decoded body bytes so far */
} chunked_dec_t;

/* Decodes buf[0..len) in place: decoded body bytes are moved to the front, and *out_len is
 * set to how many of them are now at buf[0..*out_len) (the caller takes them away before the
 * next call). Returns:
 *   the number of input bytes that belonged to this body (>= 0) once the last chunk and the
 *     trailer section are complete; input bytes from that offset on (never overwritten) belong
 *     to the next request;
 *   HR_EAGAIN when the body is not complete yet (all len input bytes were consumed);
 *   HR_EBADREQ on malformed framing (bad hex, missing CRLF, a size/extension/trailer line over
 *     4096 bytes, a chunk size over 2^60);
 *   HR_EBODYTOOBIG when the decoded total would exceed max_body. */
ssize_t chunked_decode(chunked_dec_t *st, char *buf, size_t len, size_t *out_len, uint64_t max_body);

/* Writes the chunk-size line for a chunk of n bytes ("<hex>\r\n") into out (>= 20 bytes).
 * Returns its length. The caller sends the data and then "\r\n". */
size_t chunked_size_line(char *out, size_t n);

#endif
