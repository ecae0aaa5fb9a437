/* textbuf.h - text written into a caller's buffer with printf formats, counting what the whole
 * text takes even when it does not fit (like snprintf), so a caller can size a second try. */
#ifndef HERALD_TEXTBUF_H
#define HERALD_TEXTBUF_H

#include <stddef.h>

typedef struct {
    char *out;
    size_t cap, len; /* len counts what would have been written */
} textbuf_t;

/* Appends the formatted text (what fits, NUL-terminated); len grows by its whole length. */
void tb_put(textbuf_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
