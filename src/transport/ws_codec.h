/* ws_codec.h - the pure WebSocket (RFC 6455) codec: frame parsing and encoding, incremental
 * UTF-8 validation across fragments, close-frame payloads, the handshake accept key, and the
 * permessage-deflate (RFC 7692) offer negotiation. No sockets, no sessions, no allocation except
 * in the functions that return a new bytes_t. Every parser here has a fuzz target
 * (fuzz/fuzz_ws_codec.c).
 *
 * The session (ws.c) reads frames with ws_frame_parse() straight from the connection's read
 * buffer (payloads are unmasked in place), sequences fragments with ws_msg_t, and maps the
 * returned close code to a Close frame. Everything the RFC says a receiver must refuse with
 * 1002 / 1007 / 1009 is decided here, so it can be tested without a server. */
#ifndef HERALD_WS_CODEC_H
#define HERALD_WS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../core/bytes.h"

enum {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* Close codes (RFC 6455 section 7.4.1). */
enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005, /* never on the wire: "the peer sent no code" */
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
    WS_CLOSE_TRY_LATER = 1013,
};

#define WS_MAX_HEADER 14      /* 2 + 8 (length) + 4 (mask) */
#define WS_MAX_CONTROL 125    /* payload limit of control frames */

typedef struct {
    uint64_t max_payload; /* a frame payload over this: close code 1009 */
    bool server;          /* parsing client frames: masking is required (else it is refused) */
    bool rsv1_ok;         /* permessage-deflate was negotiated: RSV1 may be set on a data frame's first frame */
} ws_limits_t;

typedef struct {
    bool fin;
    bool rsv1;
    uint8_t opcode;
    uint32_t header_len;
    uint64_t payload_len;
    char *payload; /* into the parsed buffer, already unmasked */
} ws_frame_t;

/* Parses one frame at buf[0..len). On success returns the bytes the whole frame takes (header
 * plus payload, > 0), fills *f and unmasks the payload in place. Returns HR_EAGAIN while the
 * frame is incomplete (nothing is modified). On a protocol violation returns HR_EPROTO, sets
 * *close_code (1002, or 1009 for a payload over lim->max_payload, which is detected from the
 * header alone) and *why to a static reason. Refused: RSV2/RSV3 set; RSV1 set unless
 * lim->rsv1_ok, or on a control or continuation frame; reserved opcodes 3-7 and 11-15; a
 * fragmented control frame; a control payload over 125 bytes; an unmasked frame when
 * lim->server (a masked one when !lim->server); a 64-bit length with its top bit set; a length
 * not in its minimal encoding. Each refusal is decided as soon as the bytes it depends on are
 * present (byte 0: RSV, opcode, FIN of a control frame; byte 1: mask bit, control length; the
 * complete length field: minimal encoding, top bit, then 1009 - before the mask key or payload),
 * so any prefix of the input returns either HR_EAGAIN or exactly the result of the whole. */
ssize_t ws_frame_parse(char *buf, size_t len, const ws_limits_t *lim, ws_frame_t *f, uint16_t *close_code,
                       const char **why);

/* ws_frame_parse() for a frame that is read while it arrives, so that its payload can be looked
 * at (checked for UTF-8) before the whole frame is there. *done counts the payload bytes at the
 * front of the frame at buf that earlier calls already unmasked: 0 for a frame not seen yet; the
 * caller keeps it between calls and sets it back to 0 once it consumes the frame (the bytes
 * must stay in place, or move with the buffer). Once the header is complete, each call unmasks
 * the payload bytes present past *done, sets *done to the payload bytes present and fills *f
 * (payload_len is the announced length, payload its start), then returns the frame's size as
 * ws_frame_parse() does when the whole frame is there, else HR_EAGAIN with f->header_len > 0.
 * HR_EAGAIN with f->header_len == 0: the header is not complete (nothing is modified). Refusals
 * as ws_frame_parse(), decided on the same bytes. Every payload byte is unmasked exactly once,
 * whatever the pieces the frame arrives in. */
ssize_t ws_frame_parse_partial(char *buf, size_t len, const ws_limits_t *lim, ws_frame_t *f, uint64_t *done,
                               uint16_t *close_code, const char **why);

/* Incremental UTF-8 validator: feed a message in any number of pieces (code points may be
 * split between pieces). Starts zeroed. */
typedef struct {
    uint32_t state; /* 0 = at a code point boundary */
    uint32_t need;  /* continuation bytes still expected */
    uint32_t cp;    /* code point being assembled */
    uint32_t min;   /* smallest code point allowed for its length (no overlongs) */
} ws_utf8_t;

/* Feeds p[0..n). Returns false as soon as the bytes so far cannot be the start of valid UTF-8
 * (overlong forms, surrogates, code points over U+10FFFF, stray continuation bytes): C0, C1 and
 * F5..FF at once, E0 80..9F, ED A0..BF, F0 80..8F and F4 90..BF at their second byte. A failure is
 * sticky: later feeds return false and ws_utf8_done() is false. */
bool ws_utf8_feed(ws_utf8_t *u, const void *p, size_t n);

/* True when everything fed ended on a code point boundary. */
bool ws_utf8_done(const ws_utf8_t *u);

/* Sequencing of data frames into messages: a continuation frame needs a message in progress; a
 * new text/binary frame may not start while one is. Starts zeroed. */
typedef struct {
    bool in_message;   /* a fragmented message is in progress */
    uint8_t opcode;    /* its opcode (WS_OP_TEXT or WS_OP_BINARY) */
    bool compressed;   /* its first frame had RSV1 */
    uint64_t size;     /* payload bytes of the message so far */
    uint32_t frames;   /* data frames of the message so far (1 for an unfragmented one) */
} ws_msg_t;

/* Accounts for data frame f (control frames must not be passed; any opcode other than
 * continuation, text or binary is refused with 1002). Returns 0, or HR_EPROTO with
 * *close_code 1002 (bad sequencing) or 1009 (the message would exceed max_message bytes), and
 * *why. After a frame with fin, the message is complete and m->in_message is false again; the
 * caller reads m->opcode and m->compressed for the message that just ended. */
int ws_msg_frame(ws_msg_t *m, const ws_frame_t *f, uint64_t max_message, uint16_t *close_code, const char **why);

/* Validates a received Close payload p[0..n): empty, or a 2-byte code that may appear on the
 * wire (1000-1003, 1007-1014, 3000-4999) followed by a UTF-8 reason. Returns 0 with *code set
 * (1005 for an empty payload), or HR_EPROTO with *close_code 1002 (length 1, bad code) or 1007
 * (reason not UTF-8) and *why. */
int ws_close_parse(const char *p, size_t n, uint16_t *code, uint16_t *close_code, const char **why);

/* Writes a server (unmasked) frame header for a payload of n bytes into out (WS_MAX_HEADER
 * bytes). Returns the header length. */
size_t ws_header_write(uint8_t *out, uint8_t opcode, bool fin, bool rsv1, uint64_t n);

/* Writes a client frame header with the given mask key. Returns the header length. The caller
 * masks the payload with ws_mask(). */
size_t ws_header_write_masked(uint8_t *out, uint8_t opcode, bool fin, bool rsv1, uint64_t n, const uint8_t key[4]);

/* XORs p[0..n) with key, starting at key offset off (for masking in pieces). */
void ws_mask(char *p, size_t n, const uint8_t key[4], size_t off);

/* A new block holding one complete unfragmented server frame: header then p[0..n). NULL on OOM. */
bytes_t *ws_frame_new(uint8_t opcode, bool rsv1, const void *p, size_t n);

/* A new block holding a server Close frame with code and reason (truncated to fit 125 bytes at a
 * UTF-8 boundary). code 0 means an empty payload. NULL on OOM. */
bytes_t *ws_close_new(uint16_t code, const char *reason);

/* Computes Sec-WebSocket-Accept for the client's key: base64(SHA-1(key + GUID)) into out (29
 * bytes with the NUL). Returns 0, or HR_EINVAL when key is not the base64 of 16 bytes: exactly 24
 * characters, 22 from the base64 alphabet and then "==" (no surrounding whitespace; the unused
 * low bits of the 22nd symbol are not checked). HR_ENOMEM if OpenSSL fails to digest. */
int ws_accept_key(const char *key, size_t n, char out[29]);

/* permessage-deflate parameters agreed for a connection. */
typedef struct {
    bool enabled;
    bool server_no_context_takeover; /* always set in our answer: each message compressed alone */
    bool client_no_context_takeover;
    uint8_t server_max_window_bits;  /* 9..15: window we compress with */
    uint8_t client_max_window_bits;  /* 8..15: window the client compresses with (15 unless limited) */
} ws_deflate_t;

/* Reads the Sec-WebSocket-Extensions offers in hdr[0..n) (several header lines joined with
 * ", "), and accepts the first permessage-deflate offer it can honour (RFC 7692 section 7):
 * refuses offers with unknown or repeated parameters or bad values, and offers asking
 * server_max_window_bits=8 (zlib cannot produce a 256-byte window). The answer always includes
 * server_no_context_takeover. On acceptance sets *out (enabled) and writes the response
 * extension value (e.g. "permessage-deflate; server_no_context_takeover") into resp (cap
 * bytes, NUL-terminated) and returns its length; returns 0 with out->enabled false when no offer
 * is acceptable, or when the answer and its NUL do not fit (the longest answer is 128 characters,
 * so cap >= 129 always fits). Names and parameter values compare case-sensitively; values may be
 * tokens or quoted strings (RFC 7692 section 7.1). Answer: server_no_context_takeover, plus
 * client_no_context_takeover when offered, server_max_window_bits=N when asked for (N is then our
 * window, else 15), and client_max_window_bits=N only when offered with a value N (N is then the
 * client's window, else 15). Never fails the handshake. */
size_t ws_deflate_negotiate(const char *hdr, size_t n, ws_deflate_t *out, char *resp, size_t cap);

/* Picks the first protocol of the client's Sec-WebSocket-Protocol list hdr[0..n) that is in
 * supported (NULL-terminated): the client's order wins; elements are split at commas and trimmed
 * of spaces and tabs, empty ones skipped, and compared case-sensitively. Returns its index in
 * supported, or -1 (also when supported is NULL). */
int ws_pick_subprotocol(const char *hdr, size_t n, const char *const *supported);

#endif
