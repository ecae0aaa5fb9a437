/* version.h - what this binary is: herald's version, the source revision and the build date,
 * and the versions of the libraries it runs with (`herald --version`, herald_build_info).
 * The three strings live in build/gen/version.c, which tools/version.sh writes from the
 * Makefile's HERALD_VERSION and git; they hold only letters, digits and . + ~ _ - so they can
 * go into a metric label or a log line as they are. */
#ifndef HERALD_VERSION_H
#define HERALD_VERSION_H

#include <stddef.h>

extern const char version_herald[];   /* "0.9.0": the Makefile's HERALD_VERSION */
extern const char version_revision[]; /* `git describe --always` [+ "-dirty"], or "unknown" */
extern const char version_date[];     /* the build's UTC day, YYYY-MM-DD */

/* Writes `herald VERSION (REVISION, built DATE)` and a second line naming the libraries
 * (OpenSSL, LMDB, zlib, jansson and glibc as they report themselves at run time; hiredis as
 * built against), each ended by '\n', into out (cap bytes, NUL-terminated). Returns the
 * length, cut to cap - 1. */
size_t version_text(char *out, size_t cap);

/* Appends the herald_build_info gauge (Prometheus text, value 1, the three strings above as
 * labels) to out; returns the bytes written, 0 when it does not fit. */
size_t version_metrics(char *out, size_t cap);

#endif
