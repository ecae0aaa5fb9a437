/* web.c - lookup in the embedded web/ files. */
#include "web.h"

#include <string.h>

const web_file_t *web_find(const char *path, size_t n)
{
    for (unsigned i = 0; i < web_nfiles; i++)
        if (strlen(web_files[i].path) == n && memcmp(web_files[i].path, path, n) == 0) return &web_files[i];
    return NULL;
}
