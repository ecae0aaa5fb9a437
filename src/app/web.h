/* web.h - the files of web/ embedded in the binary (generated into build/gen/web_assets.c). */
#ifndef HERALD_WEB_H
#define HERALD_WEB_H

#include <stddef.h>

typedef struct {
    const char *path; /* URL path; web/index.html is "/" */
    const char *ctype;
    const char *data;
    size_t len;
} web_file_t;

extern const web_file_t web_files[];
extern const unsigned web_nfiles;

/* The embedded file served at path[0..n), or NULL. */
const web_file_t *web_find(const char *path, size_t n);

#endif
