/* fuzz_passwd.c - the Mosquitto-format password file parser: any input is parsed (and freed);
 * when it parses, a login for the first user name with a fixed password runs (it must not crash,
 * whatever the hash parameters were). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/auth/passwd.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n > 4096) return 0; /* PBKDF2 with a large iteration count is slow by design */
    char err[256];
    passwd_db_t *db = passwd_parse((const char *)d, n, err, sizeof(err));
    if (!db) return 0;
    const char *colon = memchr(d, ':', n);
    if (colon) passwd_check(db, (const char *)d, (size_t)(colon - (const char *)d), "pw", 2);
    passwd_free(db);
    return 0;
}
