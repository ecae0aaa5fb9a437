/* version.c - see version.h. Library versions are asked from the libraries where they can
 * say (the shared object actually loaded may be newer than the headers); hiredis 0.14 has no
 * such call, so its header version is what the binary was built with (inih has neither). */
#include "version.h"

#include <gnu/libc-version.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <lmdb.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <zlib.h>

static size_t clip(int n, size_t cap) { return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap ? cap - 1 : 0; }

size_t version_text(char *out, size_t cap)
{
    int maj, min, patch;
    mdb_version(&maj, &min, &patch);
    int n = snprintf(out, cap,
                     "herald %s (%s, built %s)\n"
                     "libraries: OpenSSL %s, LMDB %d.%d.%d, zlib %s, jansson %s, hiredis %d.%d.%d, glibc %s\n",
                     version_herald, version_revision, version_date, OpenSSL_version(OPENSSL_VERSION_STRING), maj,
                     min, patch, zlibVersion(), jansson_version_str(), HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH,
                     gnu_get_libc_version());
    return clip(n, cap);
}

size_t version_metrics(char *out, size_t cap)
{
    int n = snprintf(out, cap,
                     "# HELP herald_build_info The herald build serving: version, source revision, build date.\n"
                     "# TYPE herald_build_info gauge\n"
                     "herald_build_info{version=\"%s\",revision=\"%s\",built=\"%s\"} 1\n",
                     version_herald, version_revision, version_date);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}
