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

/* Byte-wise order (a shorter prefix first): <0, 0 or >0, for sorting and binary search. */
static inline int span_cmp(span_t a, span_t b)
{
    int c = memcmp(a.p, b.p, a.n < b.n ? a.n : b.n);
    return c ? c : a.n < b.n ? -1 : a.n > b.n;
}

/* Takes the next item of a configuration list (items separated by spaces, tabs or commas) from
 * *p into *item and advances *p past it. Returns false when no item is left. */
static inline bool span_list_next(const char **p, span_t *item)
{
    const char *s = *p;
    while (*s == ' ' || *s == ',' || *s == '\t') s++;
    const char *e = s;
    while (*e && *e != ' ' && *e != ',' && *e != '\t') e++;
    *p = e;
    *item = (span_t){s, (size_t)(e - s)};
    return e > s;
}

/* True when the configuration list holds an item equal to s. */
static inline bool span_list_has(const char *list, span_t s)
{
    span_t it;
    while (span_list_next(&list, &it))
        if (it.n == s.n && memcmp(it.p, s.p, s.n) == 0) return true;
    return false;
}

#endif
