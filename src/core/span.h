/* span.h - a borrowed slice of bytes. Never owns memory; valid as long as its source is. */
#ifndef HERALD_SPAN_H
#define HERALD_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

typedef struct {
    const char *p;
    size_t n;
} span_t;

#define SPAN_LIT(s) ((span_t){(s), sizeof(s) - 1})

static inline span_t span_of(const char *s) { return (span_t){s, s ? strlen(s) : 0}; }

static inline bool span_eq(span_t a, const char *lit)
{
    size_t n = strlen(lit);
    return a.n == n && memcmp(a.p, lit, n) == 0;
}

/* ASCII case-insensitive comparison, for header names and tokens. */
static inline bool span_ieq(span_t a, const char *lit)
{
    size_t n = strlen(lit);
    return a.n == n && strncasecmp(a.p, lit, n) == 0;
}

#endif
