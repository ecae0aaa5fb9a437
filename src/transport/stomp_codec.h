/* stomp_codec.h - the pure STOMP 1.0/1.1/1.2 frame codec: an incremental frame parser with
 * header unescaping done in place, and a frame writer with escaping. No sockets, no sessions,
 * no allocation. Fuzzed by fuzz/fuzz_stomp_codec.c.
 *
 * Frame grammar (STOMP 1.2 "Augmented BNF"): any number of EOLs (heart-beats), then
 *   COMMAND EOL *(header EOL) EOL body NUL
 * where EOL is LF or CR LF, a header is name ":" value, and the body runs to the first NUL, or
 * exactly content-length bytes (then a NUL must follow) when that header is present. The body may
 * then contain NUL bytes. Repeated headers: the first occurrence wins (stomp_header()). */
#ifndef HERALD_STOMP_CODEC_H
#define HERALD_STOMP_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../core/span.h"

#define STOMP_MAX_HEADERS 64

typedef enum {
    STOMP_NONE = 0,  /* the parse consumed only heart-beat EOLs */
    /* client frames */
    STOMP_CONNECT,
    STOMP_STOMP,
    STOMP_SEND,
    STOMP_SUBSCRIBE,
    STOMP_UNSUBSCRIBE,
    STOMP_ACK,
    STOMP_NACK,
    STOMP_BEGIN,
    STOMP_COMMIT,
    STOMP_ABORT,
    STOMP_DISCONNECT,
    /* server frames (parsed by tests and the load generator) */
    STOMP_CONNECTED,
    STOMP_MESSAGE,
    STOMP_RECEIPT,
    STOMP_ERROR,
} stomp_cmd_t;

typedef struct {
    uint32_t max_headers;    /* more header lines than this: refused (capped at STOMP_MAX_HEADERS) */
    uint32_t max_header_len; /* a header line longer than this: refused (name:value as sent, without EOL) */
    uint32_t max_frame_head; /* a head longer than this: refused (command line, header lines and blank
                              * line, EOLs included, heart-beats before the command not) */
    uint64_t max_body;       /* a body longer than this: refused */
    int version;             /* 10, 11 or 12 (any other value gets the 1.2 rules): escaping rules for headers
                              * (CONNECT/STOMP/CONNECTED are never unescaped) */
} stomp_limits_t;

typedef struct {
    stomp_cmd_t cmd;
    uint32_t nheaders;
    span_t name[STOMP_MAX_HEADERS];  /* unescaped, into the parsed buffer */
    span_t value[STOMP_MAX_HEADERS];
    const char *body;
    size_t body_len;
    bool has_content_length;
} stomp_frame_t;

/* Parses one frame (after skipping leading heart-beat EOLs) at buf[0..len). Returns the bytes
 * consumed (> 0): either only EOLs, when buf holds nothing else (f->cmd == STOMP_NONE), or EOLs
 * plus one whole frame up to and including its NUL (EOLs after the NUL are left for the next
 * call); header names and values are unescaped in place (\r \n \c \\ in 1.2; \n \c \\ in 1.1;
 * none in 1.0 and in CONNECT/STOMP/CONNECTED frames). Header lines are split at the first ':'
 * and nothing is trimmed. f is meaningful only after a return > 0. Returns HR_EAGAIN when the
 * frame is incomplete, including EOLs followed by a partial frame or a lone CR at the end (buf
 * is left unchanged so the call can be repeated with more bytes). Returns HR_EPROTO (malformed:
 * unknown command, header line without ':', empty header name, undefined escape, bad
 * content-length, no NUL after a content-length body, CR not followed by LF) or HR_EFULL (a
 * limit in lim), with *why set to a static reason fit for an ERROR frame's message header; buf
 * is unchanged then too. Frames that are still incomplete are checked against the limits as far
 * as they go, so a peer cannot make the caller buffer more than the limits allow. The outcome
 * never depends on how the input was split: a prefix of an input gives HR_EAGAIN or the same
 * result as the whole (a prefix of only EOLs returns them as heart-beats). */
ssize_t stomp_frame_parse(char *buf, size_t len, const stomp_limits_t *lim, stomp_frame_t *f, const char **why);

/* The value of the first header called name (NUL-terminated), or {NULL, 0}. */
span_t stomp_header(const stomp_frame_t *f, const char *name);

/* The command's name ("SEND"); "" for STOMP_NONE. */
const char *stomp_cmd_name(stomp_cmd_t cmd);

/* Writes s[0..n) escaped for a header (version 12: \r \n : \ ; version 11: \n : \; 10: none) into
 * out. Returns the length, HR_EFULL when cap is too small, or HR_EINVAL when s holds a byte the
 * version cannot carry (CR or LF in 1.0, CR in 1.1). */
ssize_t stomp_escape(const char *s, size_t n, char *out, size_t cap, int version);

/* Writes a whole frame into out: cmd, then nh headers (names[i]:values[i], escaped per
 * version unless cmd is CONNECTED, CONNECT or STOMP), then "content-length:<body_len>" when
 * content_length, a blank line, the body and a NUL. stomp_frame_parse() reads the result back to
 * the same headers and body. Returns the length, HR_EFULL when cap is too small, or HR_EINVAL for
 * what could not be read back: an empty cmd or one with CR/LF, an empty header name, a byte the
 * version cannot escape (see stomp_escape(); in unescaped frames also ':' in a name), or a body
 * with a NUL byte when neither content_length nor a content-length header in names is given. */
ssize_t stomp_frame_write(char *out, size_t cap, const char *cmd, const span_t *names, const span_t *values,
                          uint32_t nh, int version, const void *body, size_t body_len, bool content_length);

#endif
