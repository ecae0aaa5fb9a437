/* jwt_keys.c - building a jwt_keys_t: HMAC secrets, PEM public keys and JWK Sets.
 *
 * Every key is classified once, here, into a type that fixes the algorithms it may ever verify
 * (jwt__type_algs); a JWKS "alg" or jwt_keys_restrict() can only narrow that set. This is what
 * makes the algorithm a property of the key rather than of the token: an RSA public key has no
 * HS* bit, so no token can get it used as an HMAC secret.
 *
 * PEM input is split into blocks with PEM_read_bio and each block is decoded by its label, so
 * private keys or other blocks mixed into the text are never touched. JWKS keys are built from
 * their parameters with OSSL_PARAM_BLD + EVP_PKEY_fromdata (RSA, EC) or
 * EVP_PKEY_new_raw_public_key (Ed25519); OpenSSL rejects EC points that are not on the curve.
 * A call that fails adds nothing: the keys it already added are removed again. */
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwt_internal.h"

#define JWKS_MAX_PARAM 2048 /* decoded bytes of one JWK member (RSA n up to 16384 bits) */

int jwt__fail(char *err, size_t cap, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return -1;
}

uint32_t jwt__type_algs(jwt__ktype_t t)
{
    switch (t) {
    case JWT_KT_HMAC: return JWT_ALGS_HMAC;
    case JWT_KT_RSA:
        return JWT_ALG_BIT(JWT_RS256) | JWT_ALG_BIT(JWT_RS384) | JWT_ALG_BIT(JWT_RS512) | JWT_ALG_BIT(JWT_PS256) |
               JWT_ALG_BIT(JWT_PS384) | JWT_ALG_BIT(JWT_PS512);
    case JWT_KT_P256: return JWT_ALG_BIT(JWT_ES256);
    case JWT_KT_P384: return JWT_ALG_BIT(JWT_ES384);
    case JWT_KT_ED25519: return JWT_ALG_BIT(JWT_EDDSA);
    }
    return 0;
}

int jwt__pkey_type(const EVP_PKEY *pkey, char *err, size_t cap)
{
    switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA: {
        int bits = EVP_PKEY_get_bits(pkey);
        if (bits < JWT_RSA_MIN_BITS || bits > JWT_RSA_MAX_BITS)
            return jwt__fail(err, cap, "RSA key of %d bits (need %d to %d)", bits, JWT_RSA_MIN_BITS,
                             JWT_RSA_MAX_BITS);
        return JWT_KT_RSA;
    }
    case EVP_PKEY_EC: {
        char group[64];
        size_t glen = 0;
        if (!EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen)) {
            ERR_clear_error();
            return jwt__fail(err, cap, "EC key without a named curve");
        }
        int nid = OBJ_sn2nid(group);
        if (nid == NID_undef) nid = EC_curve_nist2nid(group);
        if (nid == NID_X9_62_prime256v1) return JWT_KT_P256;
        if (nid == NID_secp384r1) return JWT_KT_P384;
        return jwt__fail(err, cap, "unsupported EC curve %s (P-256 and P-384 only)", group);
    }
    case EVP_PKEY_ED25519: return JWT_KT_ED25519;
    default: return jwt__fail(err, cap, "unsupported key type (RSA, EC P-256/P-384 and Ed25519 only)");
    }
}

jwt_keys_t *jwt_keys_new(void) { return calloc(1, sizeof(jwt_keys_t)); }

static void key_clear(jwt__key_t *k)
{
    free(k->kid);
    if (k->secret) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        free(k->secret);
    }
    EVP_PKEY_free(k->pkey);
    memset(k, 0, sizeof(*k));
}

/* Drops the keys from index n on (undoing a failed add). */
static void keys_truncate(jwt_keys_t *ks, size_t n)
{
    while (ks->n > n) key_clear(&ks->v[--ks->n]);
}

void jwt_keys_free(jwt_keys_t *ks)
{
    if (!ks) return;
    keys_truncate(ks, 0);
    free(ks->v);
    free(ks);
}

/* Appends a key, taking ownership of pkey (even on failure) and copying kid. Returns 0 or -1. */
static int keys_push(jwt_keys_t *ks, jwt__ktype_t type, uint32_t algs, const char *kid, EVP_PKEY *pkey,
                     const void *secret, size_t secret_len, char *err, size_t cap)
{
    if (ks->n == ks->cap) {
        size_t ncap = ks->cap ? ks->cap * 2 : 4;
        jwt__key_t *nv = realloc(ks->v, ncap * sizeof(*nv));
        if (!nv) goto oom;
        ks->v = nv;
        ks->cap = ncap;
    }
    jwt__key_t k = {.type = type, .algs = algs, .pkey = pkey};
    if (kid && !(k.kid = strdup(kid))) goto oom;
    if (secret) {
        if (!(k.secret = malloc(secret_len ? secret_len : 1))) {
            free(k.kid);
            goto oom;
        }
        memcpy(k.secret, secret, secret_len);
        k.secret_len = secret_len;
    }
    ks->v[ks->n++] = k;
    return 0;
oom:
    EVP_PKEY_free(pkey);
    return jwt__fail(err, cap, "out of memory");
}

int jwt_keys_add_hmac(jwt_keys_t *ks, const void *secret, size_t n, const char *kid, char *err, size_t cap)
{
    if (n < JWT_MIN_HMAC_SECRET)
        return jwt__fail(err, cap, "HMAC secret of %zu bytes (need at least %d)", n, JWT_MIN_HMAC_SECRET);
    return keys_push(ks, JWT_KT_HMAC, JWT_ALGS_HMAC, kid, NULL, secret, n, err, cap);
}

/* Decodes one PEM block's DER by its label into a public key. Returns NULL for labels that hold
 * no public key (*skip set) or on a decoding error (*skip clear). */
static EVP_PKEY *pem_block_key(const char *name, const unsigned char *der, long len, int *skip)
{
    const unsigned char *p = der;
    EVP_PKEY *pkey = NULL;
    *skip = 0;
    if (strcmp(name, "PUBLIC KEY") == 0) {
        pkey = d2i_PUBKEY(NULL, &p, len);
    } else if (strcmp(name, "RSA PUBLIC KEY") == 0) {
        pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, len);
    } else if (strcmp(name, "CERTIFICATE") == 0) {
        X509 *x = d2i_X509(NULL, &p, len);
        if (x) pkey = X509_get_pubkey(x);
        X509_free(x);
    } else {
        *skip = 1;
        return NULL;
    }
    if (pkey && p != der + len) { /* trailing bytes after the DER structure */
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    return pkey;
}

int jwt_keys_add_pem(jwt_keys_t *ks, const char *pem, size_t n, const char *kid, char *err, size_t cap)
{
    if (n > INT32_MAX) return jwt__fail(err, cap, "PEM text too large");
    BIO *bio = BIO_new_mem_buf(pem, (int)n);
    if (!bio) return jwt__fail(err, cap, "out of memory");
    size_t first = ks->n;
    int added = 0, rc = 0, blocks = 0;
    for (;;) {
        char *name = NULL, *header = NULL;
        unsigned char *der = NULL;
        long len = 0;
        ERR_set_mark();
        if (!PEM_read_bio(bio, &name, &header, &der, &len)) {
            unsigned long e = ERR_peek_last_error();
            ERR_pop_to_mark();
            if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
                rc = jwt__fail(err, cap, "PEM block %d is not valid PEM", blocks + 1);
            }
            break;
        }
        ERR_pop_to_mark();
        blocks++;
        int skip;
        EVP_PKEY *pkey = pem_block_key(name, der, len, &skip);
        ERR_clear_error();
        if (!skip) {
            int t = pkey ? jwt__pkey_type(pkey, err, cap) : jwt__fail(err, cap, "PEM block %d (%s) does not decode",
                                                                       blocks, name);
            if (t < 0) {
                EVP_PKEY_free(pkey);
                rc = -1;
            } else {
                rc = keys_push(ks, (jwt__ktype_t)t, jwt__type_algs((jwt__ktype_t)t), kid, pkey, NULL, 0, err, cap);
                added += rc == 0;
            }
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(der);
        if (rc < 0) break;
    }
    BIO_free(bio);
    if (rc == 0 && added == 0) rc = jwt__fail(err, cap, "no public key found in the PEM text");
    if (rc < 0) {
        keys_truncate(ks, first);
        return -1;
    }
    return added;
}

/* ---- JWK Set ---- */

/* Decodes the base64url string member `name` of o into a new buffer. Returns the length (> 0),
 * or -1 with a message in err (missing, not a string, bad base64url, empty or too long). */
static long jwk_bytes(const json_t *o, const char *name, unsigned char **out, char *err, size_t cap)
{
    const json_t *v = json_object_get(o, name);
    *out = NULL;
    if (!json_is_string(v)) return jwt__fail(err, cap, "\"%s\" missing or not a string", name);
    size_t sn = json_string_length(v);
    if (sn == 0 || sn > (JWKS_MAX_PARAM / 3 + 1) * 4) return jwt__fail(err, cap, "\"%s\" empty or too long", name);
    unsigned char *buf = malloc(sn);
    if (!buf) return jwt__fail(err, cap, "out of memory");
    long r = jwt_b64url_decode(json_string_value(v), sn, buf, sn);
    if (r <= 0) {
        free(buf);
        return jwt__fail(err, cap, "\"%s\" is not base64url", name);
    }
    *out = buf;
    return r;
}

/* EVP_PKEY_fromdata for a public key of type name ("RSA", "EC") from params. */
static EVP_PKEY *pkey_fromdata(const char *name, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, name, NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *jwk_rsa(const json_t *o, char *err, size_t cap)
{
    unsigned char *nb = NULL, *eb = NULL;
    EVP_PKEY *pkey = NULL;
    long nl = jwk_bytes(o, "n", &nb, err, cap), el = nl < 0 ? -1 : jwk_bytes(o, "e", &eb, err, cap);
    BIGNUM *bn = NULL, *be = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    if (nl < 0 || el < 0) goto done;
    if (el > 8 || !(eb[el - 1] & 1) || !(nb[nl - 1] & 1)) { /* e and n odd, e at most 64 bits */
        jwt__fail(err, cap, "RSA key with an implausible \"n\" or \"e\"");
        goto done;
    }
    bn = BN_bin2bn(nb, (int)nl, NULL);
    be = BN_bin2bn(eb, (int)el, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (!bn || !be || !bld || BN_is_one(be) || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) || !(pkey = pkey_fromdata("RSA", bld)))
        jwt__fail(err, cap, "RSA key does not load");
done:
    BN_free(bn);
    BN_free(be);
    OSSL_PARAM_BLD_free(bld);
    free(nb);
    free(eb);
    return pkey;
}

static EVP_PKEY *jwk_ec(const json_t *o, const char *crv, char *err, size_t cap)
{
    size_t clen = strcmp(crv, "P-256") == 0 ? 32 : 48;
    unsigned char *xb = NULL, *yb = NULL, pub[1 + 2 * 48];
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    long xl = jwk_bytes(o, "x", &xb, err, cap), yl = xl < 0 ? -1 : jwk_bytes(o, "y", &yb, err, cap);
    if (xl < 0 || yl < 0) goto done;
    if ((size_t)xl != clen || (size_t)yl != clen) { /* RFC 7518 6.2.1.2: full-length coordinates */
        jwt__fail(err, cap, "%s key coordinates must be %zu bytes", crv, clen);
        goto done;
    }
    pub[0] = 0x04; /* uncompressed point */
    memcpy(pub + 1, xb, clen);
    memcpy(pub + 1 + clen, yb, clen);
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, crv, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * clen) ||
        !(pkey = pkey_fromdata("EC", bld)))
        jwt__fail(err, cap, "%s key does not load (point not on the curve?)", crv);
done:
    OSSL_PARAM_BLD_free(bld);
    free(xb);
    free(yb);
    return pkey;
}

/* Adds one JWK. Returns 1 when added, 0 when skipped (not for signatures, unknown kty or
 * curve), -1 with a message in err. */
static int jwk_add(jwt_keys_t *ks, const json_t *o, char *err, size_t cap)
{
    const json_t *kty = json_object_get(o, "kty"), *use = json_object_get(o, "use");
    const json_t *kid = json_object_get(o, "kid"), *alg = json_object_get(o, "alg");
    const json_t *crv = json_object_get(o, "crv");
    if (!json_is_object(o) || !json_is_string(kty)) return jwt__fail(err, cap, "a key without a string \"kty\"");
    if (use && !json_is_string(use)) return jwt__fail(err, cap, "\"use\" is not a string");
    if (use && strcmp(json_string_value(use), "sig") != 0) return 0;
    if ((kid && !json_is_string(kid)) || (alg && !json_is_string(alg)) || (crv && !json_is_string(crv)))
        return jwt__fail(err, cap, "\"kid\", \"alg\" or \"crv\" is not a string");
    const char *kids = kid ? json_string_value(kid) : NULL;
    if (kids && strlen(kids) != json_string_length(kid)) return jwt__fail(err, cap, "\"kid\" contains NUL");
    const char *t = json_string_value(kty), *c = crv ? json_string_value(crv) : "";
    EVP_PKEY *pkey = NULL;
    int type;
    if (strcmp(t, "oct") == 0) {
        type = JWT_KT_HMAC;
    } else if (strcmp(t, "RSA") == 0) {
        type = JWT_KT_RSA;
        pkey = jwk_rsa(o, err, cap);
    } else if (strcmp(t, "EC") == 0 && (strcmp(c, "P-256") == 0 || strcmp(c, "P-384") == 0)) {
        type = c[2] == '2' ? JWT_KT_P256 : JWT_KT_P384;
        pkey = jwk_ec(o, c, err, cap);
    } else if (strcmp(t, "OKP") == 0 && strcmp(c, "Ed25519") == 0) {
        type = JWT_KT_ED25519;
        unsigned char *xb = NULL;
        long xl = jwk_bytes(o, "x", &xb, err, cap);
        if (xl == 32) pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, xb, 32);
        if (xl >= 0 && !pkey) jwt__fail(err, cap, "Ed25519 key does not load (\"x\" must be 32 bytes)");
        free(xb);
    } else {
        return 0; /* RFC 7517 5: ignore key types we do not understand */
    }
    ERR_clear_error();
    if (type != JWT_KT_HMAC) {
        if (!pkey || (type = jwt__pkey_type(pkey, err, cap)) < 0) {
            EVP_PKEY_free(pkey);
            return -1;
        }
    }
    uint32_t algs = jwt__type_algs((jwt__ktype_t)type);
    if (alg) {
        const char *a = json_string_value(alg);
        int ai = jwt_alg_parse(a, json_string_length(alg));
        if (ai < 0 || !(algs & JWT_ALG_BIT(ai))) {
            EVP_PKEY_free(pkey);
            return jwt__fail(err, cap, "\"alg\" %.20s does not fit a %s key", a, t);
        }
        algs = JWT_ALG_BIT(ai);
    }
    if (type == JWT_KT_HMAC) {
        unsigned char *k = NULL;
        long kl = jwk_bytes(o, "k", &k, err, cap);
        if (kl < 0) return -1;
        int rc = kl < JWT_MIN_HMAC_SECRET ? jwt__fail(err, cap, "oct key of %ld bytes (need at least %d)", kl,
                                                      JWT_MIN_HMAC_SECRET)
                                          : keys_push(ks, JWT_KT_HMAC, algs, kids, NULL, k, (size_t)kl, err, cap);
        OPENSSL_cleanse(k, (size_t)kl);
        free(k);
        return rc < 0 ? -1 : 1;
    }
    return keys_push(ks, (jwt__ktype_t)type, algs, kids, pkey, NULL, 0, err, cap) < 0 ? -1 : 1;
}

int jwt_keys_add_jwks(jwt_keys_t *ks, const char *json, size_t n, char *err, size_t cap)
{
    json_error_t jerr;
    json_t *doc = json_loadb(json, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) return jwt__fail(err, cap, "JWKS is not JSON (line %d: %s)", jerr.line, jerr.text);
    const json_t *keys = json_object_get(doc, "keys");
    size_t first = ks->n, i;
    int added = 0, rc = 0;
    const json_t *k;
    if (!json_is_array(keys)) {
        rc = jwt__fail(err, cap, "JWKS without a \"keys\" array");
    } else {
        json_array_foreach(keys, i, k) {
            char msg[200];
            int r = jwk_add(ks, k, msg, sizeof(msg));
            if (r < 0) {
                rc = jwt__fail(err, cap, "JWKS key %zu: %s", i, msg);
                break;
            }
            added += r;
        }
    }
    json_decref(doc);
    if (rc == 0 && added == 0) rc = jwt__fail(err, cap, "JWKS holds no usable signature key");
    if (rc < 0) {
        keys_truncate(ks, first);
        return -1;
    }
    return added;
}

void jwt_keys_restrict(jwt_keys_t *ks, uint32_t mask)
{
    for (size_t i = 0; i < ks->n; i++) ks->v[i].algs &= mask;
}

size_t jwt_keys_count(const jwt_keys_t *ks) { return ks ? ks->n : 0; }
