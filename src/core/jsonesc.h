/* jsonesc.h - JSON string escaping safe inside a <script> block (used by every layer that
 * writes JSON by hand: transports' notices, the hub's channel events). */
#ifndef HERALD_JSONESC_H
#define HERALD_JSONESC_H

#include <stddef.h>

/* Appends s[0..n) as a JSON string body (no quotes) into out, escaping ", \\, control bytes,
 * <, >, & and U+2028/9 (safe inside a <script> block); returns bytes written, or 0 if cap is too
 * small (needs up to 6n). */
size_t json_escape(const char *s, size_t n, char *out, size_t cap);

#endif
