/* textbuf.h - text builders: textbuf_t writes into a caller's buffer with printf formats,
 * counting what the whole text takes even when it does not fit (like snprintf), so a caller can
 * size a second try; jbuf_t grows on the heap (answers of unknown size, e.g. JSON lists). */
#ifndef HERALD_TEXTBUF_H
#define HERALD_TEXTBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *out;
    size_t cap, len; /* len counts what would have been written */
} textbuf_t;

/* Appends the formatted text (what fits, NUL-terminated); len grows by its whole length. */
void tb_put(textbuf_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A growable NUL-terminated text (zero-initialise it; free(p) when done). When it cannot grow,
 * oom is set and nothing more is written. */
typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} jbuf_t;

/* Appends s[0..n). */
void jb_put(jbuf_t *b, const char *s, size_t n);

/* Appends the formatted text (at most 255 bytes of it: numbers and short words). */
void jb_fmt(jbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends s[0..n) as a quoted JSON string (json_escape: script-safe). */
void jb_str(jbuf_t *b, const char *s, size_t n);

#endif
