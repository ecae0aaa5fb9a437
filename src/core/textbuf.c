/* textbuf.c - see textbuf.h. */
#include "textbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonesc.h"

void tb_put(textbuf_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = t->len < t->cap ? t->cap - t->len : 0;
    int n = vsnprintf(room ? t->out + t->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) t->len += (size_t)n;
}

/* Makes room for n more bytes and the NUL; false (oom set) when it cannot. */
static bool jb__room(jbuf_t *b, size_t n)
{
    if (b->oom) return false;
    if (b->n + n + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void jb_put(jbuf_t *b, const char *s, size_t n)
{
    if (!jb__room(b, n)) return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void jb_fmt(jbuf_t *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0) jb_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

void jb_str(jbuf_t *b, const char *s, size_t n)
{
    if (!jb__room(b, 6 * n + 2)) return;
    b->p[b->n++] = '"';
    b->n += json_escape(s, n, b->p + b->n, b->cap - b->n);
    b->p[b->n++] = '"';
    b->p[b->n] = 0;
}
