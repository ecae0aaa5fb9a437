/* sockjs.h - the SockJS framing (sockjs-protocol 0.3.3), pure: no server state, no I/O.
 *
 * Server to client, every transport carries the same frames: "o" (open), "h" (heartbeat),
 * a["m1","m2"] (messages, each a JSON string) and c[code,"reason"] (close). A message is escaped
 * as JSON (\n \r \t \b \f in their short forms, as JSON.stringify writes them) with, beyond
 * the JSON rules, the code points SockJS servers must escape because
 * browsers mangle them (U+0000-001F, U+200C-200F, U+2028-202F, U+2060-206F, U+FFF0-FFFF);
 * bytes that are not UTF-8 go as \u00XX (the byte as a code point), so any byte string passes.
 *
 * Client to server: a JSON array of strings (xhr_send, jsonp_send, the framed WebSocket) or,
 * on the WebSocket only, one bare JSON string. sockjs_decode() checks the whole input before it
 * hands out any message, so broken JSON delivers nothing. \u escapes become UTF-8; a surrogate
 * pair becomes its 4-byte character and a lone surrogate U+FFFD. */
#ifndef HERALD_PROTO_SOCKJS_H
#define HERALD_PROTO_SOCKJS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SOCKJS_MAX_ID 64       /* server and session ids: 1..64 bytes, no '.', no '/' */
#define SOCKJS_MAX_CALLBACK 64 /* htmlfile and jsonp callback names */

/* Writes s[0..n) as a JSON string literal, quotes included, escaped as the module comment says;
 * script_safe also escapes <, > and & (for text inside a <script> block). Returns its length, or
 * 0 when cap is too small (6 * n + 2 always suffices). */
size_t sockjs_quote(const char *s, size_t n, bool script_safe, char *out, size_t cap);

/* The close frame c[code,"reason"] into out; its length, or 0 when cap is too small (reason
 * escaped: 6 * strlen(reason) + 16 suffices). */
size_t sockjs_close_frame(uint16_t code, const char *reason, char *out, size_t cap);

/* Called for each decoded message m[0..n) (writable, valid during the call). A negative return
 * stops the decoding and is returned by sockjs_decode. */
typedef int (*sockjs_msg_cb)(void *ctx, char *m, size_t n);

/* Decodes a client's input in[0..n): a JSON array of strings, or with allow_bare also one JSON
 * string, with JSON whitespace around. At most max_msgs messages (more: an error). Checks all of
 * the input first; then decodes each message into scratch (cap >= n) and calls cb. Returns the
 * number of messages, HR_EINVAL with *why set ("Broken JSON encoding.", "too many messages"),
 * or cb's negative return. */
ssize_t sockjs_decode(const char *in, size_t n, bool allow_bare, uint32_t max_msgs, char *scratch, size_t cap,
                      sockjs_msg_cb cb, void *ctx, const char **why);

/* True when p[0..n) may be a server or session id: 1..SOCKJS_MAX_ID bytes, none of them '.',
 * '/', a control byte or a space. */
bool sockjs_id_valid(const char *p, size_t n);

/* True when p[0..n) may be a callback name: 1..SOCKJS_MAX_CALLBACK of A-Z a-z 0-9 _ . - */
bool sockjs_callback_valid(const char *p, size_t n);

/* Finds field key in an application/x-www-form-urlencoded body and decodes its value ('+' is a
 * space, %XX a byte) into out (cap bytes). Returns the decoded length, HR_ENOTFOUND when the key
 * is absent, HR_EINVAL on a bad escape or when it does not fit. */
ssize_t sockjs_form_field(const char *body, size_t n, const char *key, char *out, size_t cap);

#endif
