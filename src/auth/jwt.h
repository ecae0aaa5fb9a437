/* jwt.h - JSON Web Tokens (RFC 7519) in JWS compact form (RFC 7515, algorithms RFC 7518 and
 * RFC 8037 for EdDSA), verified the way RFC 8725 (JWT best current practice) asks:
 *
 * - the algorithm is decided by the key, never by the token: every key carries the set of
 *   algorithms it may be used with (an HMAC secret: HS256/384/512; an RSA key: RS256/384/512 and
 *   PS256/384/512; an EC key: ES256 for P-256, ES384 for P-384; an Ed25519 key: EdDSA; a JWKS key
 *   with an "alg" member: that one only), optionally narrowed further by jwt_keys_restrict().
 *   A token whose header names "none", an unknown algorithm, or an algorithm no candidate key
 *   allows is refused before any signature work; an RSA public key is never used as an HMAC
 *   secret (the RS256 -> HS256 confusion).
 * - a header with "kid" selects the key with that kid (none: JWT_EKID); without "kid" every key
 *   that allows the header's algorithm is tried, at most JWT_MAX_TRIES of them.
 * - strict parsing: three base64url parts without padding or stray characters, header and payload
 *   JSON objects without duplicate members, a "crit" header refused, "typ" absent or "JWT"
 *   (case-insensitive), at most policy->max_len bytes, signature lengths exact.
 * - registered claims: "exp" and "nbf" checked with the policy's leeway; "iat" in the future
 *   (beyond the leeway) refused; when the policy names an issuer "iss" must equal it; when it
 *   names an audience "aud" (a string, or an array of strings) must contain it. Claims with the
 *   wrong JSON type (a string "exp") are malformed.
 *
 * Keys are OpenSSL EVP_PKEYs (public keys from PEM or JWKS) or HMAC secrets; signatures are
 * checked with EVP (HMAC with CRYPTO_memcmp, constant time). ES256/ES384 signatures are the JWS
 * raw R||S form, converted to DER for OpenSSL. No global state; a jwt_keys_t is read-only after
 * it is built and may be shared. */
#ifndef HERALD_JWT_H
#define HERALD_JWT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    JWT_HS256 = 0,
    JWT_HS384,
    JWT_HS512,
    JWT_RS256,
    JWT_RS384,
    JWT_RS512,
    JWT_PS256,
    JWT_PS384,
    JWT_PS512,
    JWT_ES256,
    JWT_ES384,
    JWT_EDDSA,
    JWT_ALG_COUNT
} jwt_alg_t;

#define JWT_ALG_BIT(a) (1u << (a))
#define JWT_ALGS_HMAC (JWT_ALG_BIT(JWT_HS256) | JWT_ALG_BIT(JWT_HS384) | JWT_ALG_BIT(JWT_HS512))
#define JWT_MAX_TRIES 8        /* keys tried for a token without "kid" */
#define JWT_MIN_HMAC_SECRET 32 /* bytes: RFC 7518 3.2 wants at least the hash size */

/* Verification results: 0, or one of these (negated). */
enum {
    JWT_OK = 0,
    JWT_EMALFORMED = 1, /* not three base64url parts, bad JSON, wrong claim types, crit, typ */
    JWT_ETOOLONG,       /* longer than policy->max_len */
    JWT_EALG,           /* alg none, unknown, or not allowed by any candidate key */
    JWT_EKID,           /* kid names no key */
    JWT_ESIG,           /* the signature does not verify */
    JWT_EEXPIRED,       /* exp + leeway <= now */
    JWT_ENBF,           /* nbf - leeway > now */
    JWT_EIAT,           /* iat - leeway > now */
    JWT_EISS,           /* iss missing or not the required issuer */
    JWT_EAUD,           /* aud missing or without the required audience */
};

typedef struct jwt_keys jwt_keys_t;

/* An empty key set, or NULL when out of memory. */
jwt_keys_t *jwt_keys_new(void);

/* Frees ks and its keys (NULL is fine). */
void jwt_keys_free(jwt_keys_t *ks);

/* Adds an HMAC secret of n bytes (at least JWT_MIN_HMAC_SECRET) usable with HS256/384/512.
 * kid may be NULL. Returns 0, or -1 with a message in err. */
int jwt_keys_add_hmac(jwt_keys_t *ks, const void *secret, size_t n, const char *kid, char *err, size_t cap);

/* Adds every public key in PEM text pem[0..n) ("PUBLIC KEY" blocks, "RSA PUBLIC KEY", or
 * "CERTIFICATE" blocks whose key is taken): RSA (at least 2048 bits), EC P-256 / P-384, Ed25519.
 * kid applies to each (may be NULL). Returns the number of keys added (>= 1), or -1 with a
 * message in err (no key found, unsupported type, a short RSA key). */
int jwt_keys_add_pem(jwt_keys_t *ks, const char *pem, size_t n, const char *kid, char *err, size_t cap);

/* Adds the keys of a JWK Set (RFC 7517) document json[0..n): kty RSA (n, e), EC (crv P-256 /
 * P-384, x, y), OKP (crv Ed25519, x) and oct (k, at least JWT_MIN_HMAC_SECRET bytes); a key's
 * "kid" and "alg" are kept ("alg" pins the key to that algorithm; an "alg" that does not fit the
 * key type is an error); keys with "use" other than "sig" are skipped. Returns the number of keys
 * added (>= 1), or -1 with a message in err. */
int jwt_keys_add_jwks(jwt_keys_t *ks, const char *json, size_t n, char *err, size_t cap);

/* Narrows every key of ks to the algorithms in mask (JWT_ALG_BIT set; config token_algorithms). */
void jwt_keys_restrict(jwt_keys_t *ks, uint32_t mask);

/* Number of keys in ks. */
size_t jwt_keys_count(const jwt_keys_t *ks);

typedef struct {
    const char *issuer;   /* required "iss", or NULL / "" for none */
    const char *audience; /* required member of "aud", or NULL / "" for none */
    int64_t leeway_s;     /* allowed clock skew for exp, nbf, iat */
    int64_t now_s;        /* the current time (seconds since the epoch) */
    size_t max_len;       /* longest token accepted (0: 8192) */
} jwt_policy_t;

typedef struct {
    json_t *claims; /* the payload object: a new reference the caller releases with json_decref */
    int64_t exp;    /* "exp", or 0 when the token has none */
    jwt_alg_t alg;  /* the algorithm it was verified with */
} jwt_result_t;

/* Verifies the compact token tok[0..n) against ks and pol. Returns 0 with out filled, or
 * -JWT_E* with *why set to a short static text (never containing token bytes, nor a double quote
 * or a backslash: it goes into HTTP headers and JSON as it is) and out->claims
 * NULL. Safe on any input. */
int jwt_verify(const jwt_keys_t *ks, const jwt_policy_t *pol, const char *tok, size_t n, jwt_result_t *out,
               const char **why);

/* Mints a token: header {"alg":ALG,"typ":"JWT"[,"kid":kid]} and the payload claims_json (a JSON
 * object text, copied as given), signed with key: for HS* the secret key[0..keylen); for RS*,
 * PS*, ES*, EdDSA a PEM private key text key[0..keylen) of the matching type. Returns a malloc'd
 * NUL-terminated token, or NULL with a message in err. The claims text must parse as a JSON
 * object without duplicate members, an HMAC secret must have at least JWT_MIN_HMAC_SECRET bytes,
 * and a private key must pass the same checks as a public key at load (RSA >= 2048 bits);
 * encrypted PEM keys are refused (never prompts). */
char *jwt_sign(jwt_alg_t alg, const void *key, size_t keylen, const char *kid, const char *claims_json, char *err,
               size_t cap);

/* The algorithm jwt_sign would naturally use with the PEM private key pem[0..n): RS256 for RSA,
 * ES256 for P-256, ES384 for P-384, EdDSA for Ed25519. Returns a jwt_alg_t, or -1 with a
 * message in err (no unencrypted private key, unsupported type, short RSA key). */
int jwt_pem_default_alg(const char *pem, size_t n, char *err, size_t cap);

/* "HS256" ... "EdDSA" ("?" for a value outside jwt_alg_t). */
const char *jwt_alg_name(jwt_alg_t alg);

/* The algorithm named s[0..n) (exact, case-sensitive), or -1. */
int jwt_alg_parse(const char *s, size_t n);

/* Decodes unpadded base64url in[0..n) into out (cap bytes). Returns the length or -1 (bad
 * character, padding, impossible length, or does not fit). */
long jwt_b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap);

/* Encodes in[0..n) as unpadded base64url into out (cap >= 4*(n+2)/3 + 1, NUL-terminated).
 * Returns the length; when cap is too small writes only "" (cap > 0) and returns 0. */
size_t jwt_b64url_encode(const unsigned char *in, size_t n, char *out, size_t cap);

#endif
