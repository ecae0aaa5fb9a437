/* jwt_internal.h - what jwt.c (tokens) and jwt_keys.c (key loading) share: the layout of a key
 * set and the rule that maps an OpenSSL key to the algorithms it may be used with. Not for use
 * outside src/auth/jwt*.c. */
#ifndef HERALD_JWT_INTERNAL_H
#define HERALD_JWT_INTERNAL_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "jwt.h"

/* The kinds of key; each fixes the family of algorithms (RFC 8725 3.1). */
typedef enum { JWT_KT_HMAC, JWT_KT_RSA, JWT_KT_P256, JWT_KT_P384, JWT_KT_ED25519 } jwt__ktype_t;

#define JWT_RSA_MIN_BITS 2048
#define JWT_RSA_MAX_BITS 16384 /* OpenSSL's own verification limit */

typedef struct {
    jwt__ktype_t type;
    uint32_t algs;         /* JWT_ALG_BIT set this key may verify; never outside its type's family */
    char *kid;             /* NUL-terminated, or NULL when the key has none */
    unsigned char *secret; /* JWT_KT_HMAC: the secret (cleansed when freed) */
    size_t secret_len;
    EVP_PKEY *pkey; /* other types: the public key */
} jwt__key_t;

struct jwt_keys {
    jwt__key_t *v;
    size_t n, cap;
};

/* The algorithms a key type allows: HMAC -> HS*, RSA -> RS* and PS*, P-256 -> ES256,
 * P-384 -> ES384, Ed25519 -> EdDSA. */
uint32_t jwt__type_algs(jwt__ktype_t t);

/* Classifies an OpenSSL key (public or private). Returns its jwt__ktype_t, or -1 with a message
 * in err when the type or curve is unsupported or an RSA key is shorter than JWT_RSA_MIN_BITS
 * (or longer than JWT_RSA_MAX_BITS). */
int jwt__pkey_type(const EVP_PKEY *pkey, char *err, size_t cap);

/* Writes a printf-style message into err (cap bytes; err may be NULL when cap is 0) and
 * returns -1. */
int jwt__fail(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
