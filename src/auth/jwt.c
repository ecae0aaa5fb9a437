/* jwt.c - verifying and minting JWS compact tokens (see jwt.h for the rules).
 *
 * jwt_verify works in a fixed order, so that no expensive or risky work happens before the cheap
 * refusals: length limit; split at the first '.'; decode and parse the header and decide the
 * algorithm (alg "none" and unknown names are refused here); split the rest into exactly two
 * parts and check that both are strict base64url; pick the candidate keys (by kid, then by the
 * algorithms each key allows); check the signature over the ASCII bytes "header.payload"; only
 * then parse the payload JSON and check the registered claims. Error texts are static strings,
 * so nothing of the token ever reaches a log through *why.
 *
 * Signatures: HMAC with HMAC() and CRYPTO_memcmp over an exact-length tag; RSA, EC and Ed25519
 * with EVP_DigestVerify. JWS ECDSA signatures are raw R||S (RFC 7518 3.4); OpenSSL wants the
 * DER SEQUENCE of two INTEGERs, which is built by hand here (it is at most 104 bytes, so every
 * DER length fits in one byte). */
#include <jansson.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/b64.h"
#include "jwt_internal.h"

#define JWT_DEFAULT_MAX_LEN 8192
#define JWT_MAX_SIG 2048 /* a 16384-bit RSA signature */

static const char *const ALG_NAMES[JWT_ALG_COUNT] = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
                                                     "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"};

const char *jwt_alg_name(jwt_alg_t alg) { return (unsigned)alg < JWT_ALG_COUNT ? ALG_NAMES[alg] : "?"; }

int jwt_alg_parse(const char *s, size_t n)
{
    for (int i = 0; i < JWT_ALG_COUNT; i++)
        if (strlen(ALG_NAMES[i]) == n && memcmp(ALG_NAMES[i], s, n) == 0) return i;
    return -1;
}

/* The digest of an algorithm (NULL for EdDSA, which hashes internally). */
static const EVP_MD *alg_md(jwt_alg_t alg)
{
    switch (alg) {
    case JWT_HS256:
    case JWT_RS256:
    case JWT_PS256:
    case JWT_ES256: return EVP_sha256();
    case JWT_HS384:
    case JWT_RS384:
    case JWT_PS384:
    case JWT_ES384: return EVP_sha384();
    case JWT_HS512:
    case JWT_RS512:
    case JWT_PS512: return EVP_sha512();
    default: return NULL;
    }
}

static bool alg_is_pss(jwt_alg_t a) { return a == JWT_PS256 || a == JWT_PS384 || a == JWT_PS512; }
static size_t alg_ec_len(jwt_alg_t a) { return a == JWT_ES256 ? 32 : a == JWT_ES384 ? 48 : 0; }

/* ---- base64url (RFC 4648 section 5, no padding, unused bits zero) ---- */

long jwt_b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    return b64_decode_ex(in, n, out, cap, B64_URL | B64_STRICT_BITS);
}

size_t jwt_b64url_encode(const unsigned char *in, size_t n, char *out, size_t cap)
{
    return b64_encode_ex(in, n, out, cap, B64_URL);
}

/* Characters of the unpadded encoding of n bytes. */
static size_t b64_len(size_t n) { return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0); }

/* Decodes s[0..n) into a new buffer (*out, free()d by the caller; never NULL on success, even
 * for empty input). Returns the length or -1. */
static long b64_dup(const char *s, size_t n, unsigned char **out)
{
    *out = malloc(n / 4 * 3 + 3);
    if (!*out) return -1;
    long r = jwt_b64url_decode(s, n, *out, n / 4 * 3 + 3);
    if (r < 0) {
        free(*out);
        *out = NULL;
    }
    return r;
}

/* ---- signatures ---- */

/* DER INTEGER of the unsigned big-endian v[0..n) into o; returns bytes written (<= n + 3). */
static size_t der_uint(unsigned char *o, const unsigned char *v, size_t n)
{
    while (n > 1 && v[0] == 0) {
        v++;
        n--;
    }
    size_t pad = (v[0] & 0x80) ? 1 : 0;
    o[0] = 0x02;
    o[1] = (unsigned char)(n + pad);
    o[2] = 0;
    memcpy(o + 2 + pad, v, n);
    return 2 + pad + n;
}

/* Checks sig against in[0..n) with a public key. Signature lengths must be exact. */
static bool pk_verify(const jwt__key_t *k, jwt_alg_t alg, const unsigned char *in, size_t n,
                      const unsigned char *sig, size_t siglen)
{
    unsigned char der[2 + 2 * (3 + 48)];
    size_t clen = alg_ec_len(alg);
    if (clen) {
        if (siglen != 2 * clen) return false;
        size_t rl = der_uint(der + 2, sig, clen);
        size_t sl = der_uint(der + 2 + rl, sig + clen, clen);
        der[0] = 0x30;
        der[1] = (unsigned char)(rl + sl);
        sig = der;
        siglen = 2 + rl + sl;
    } else if (alg == JWT_EDDSA) {
        if (siglen != 64) return false;
    } else if (siglen != (size_t)EVP_PKEY_get_size(k->pkey)) {
        return false;
    }
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    const EVP_MD *md = alg_md(alg);
    bool ok = m && EVP_DigestVerifyInit(m, &pctx, md, NULL, k->pkey) == 1;
    if (ok && alg_is_pss(alg))
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) > 0;
    ok = ok && EVP_DigestVerify(m, sig, siglen, in, n) == 1;
    EVP_MD_CTX_free(m);
    ERR_clear_error();
    return ok;
}

static bool key_verify(const jwt__key_t *k, jwt_alg_t alg, const unsigned char *in, size_t n,
                       const unsigned char *sig, size_t siglen)
{
    if (k->type != JWT_KT_HMAC) return pk_verify(k, alg, in, n, sig, siglen);
    unsigned char tag[EVP_MAX_MD_SIZE];
    unsigned int tlen = 0;
    if (k->secret_len > INT_MAX || !HMAC(alg_md(alg), k->secret, (int)k->secret_len, in, n, tag, &tlen)) {
        ERR_clear_error();
        return false;
    }
    bool ok = siglen == tlen && CRYPTO_memcmp(tag, sig, tlen) == 0;
    OPENSSL_cleanse(tag, sizeof(tag));
    return ok;
}

/* ---- verification ---- */

/* Checks the parsed header; sets *alg and *kid (borrowed from h, or NULL). */
static int check_header(const json_t *h, jwt_alg_t *alg, const char **kid, const char **why)
{
    if (!json_is_object(h)) return *why = "header is not a JSON object", -JWT_EMALFORMED;
    const json_t *a = json_object_get(h, "alg"), *typ = json_object_get(h, "typ"), *k = json_object_get(h, "kid");
    if (!json_is_string(a)) return *why = "header has no string 'alg'", -JWT_EMALFORMED;
    const char *as = json_string_value(a);
    size_t al = json_string_length(a);
    if (al == 4 && strncasecmp(as, "none", 4) == 0) return *why = "alg 'none' refused", -JWT_EALG;
    int ai = jwt_alg_parse(as, al);
    if (ai < 0) return *why = "unknown alg", -JWT_EALG;
    if (json_object_get(h, "crit")) return *why = "'crit' header refused", -JWT_EMALFORMED;
    if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0))
        return *why = "'typ' is not JWT", -JWT_EMALFORMED;
    if (k && !json_is_string(k)) return *why = "'kid' is not a string", -JWT_EMALFORMED;
    *alg = (jwt_alg_t)ai;
    *kid = k ? json_string_value(k) : NULL;
    return 0;
}

/* Reads a NumericDate claim: absent (0, *present false), a number (reals truncated, clamped to
 * int64), or -1 for any other JSON type. */
static int num_claim(const json_t *c, const char *name, int64_t *v, bool *present)
{
    const json_t *x = json_object_get(c, name);
    *present = x != NULL;
    *v = 0;
    if (!x) return 0;
    if (json_is_integer(x)) {
        *v = (int64_t)json_integer_value(x);
    } else if (json_is_real(x)) {
        double d = json_real_value(x);
        *v = d >= 9.2e18 ? INT64_MAX : d <= -9.2e18 ? INT64_MIN : (int64_t)d;
    } else {
        return -1;
    }
    return 0;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* Checks the registered claims of payload c against pol; sets *exp. */
static int check_claims(const json_t *c, const jwt_policy_t *pol, int64_t *exp, const char **why)
{
    if (!json_is_object(c)) return *why = "payload is not a JSON object", -JWT_EMALFORMED;
    int64_t nbf, iat, leeway = pol->leeway_s > 0 ? pol->leeway_s : 0;
    bool has_exp, has_nbf, has_iat;
    if (num_claim(c, "exp", exp, &has_exp) < 0 || num_claim(c, "nbf", &nbf, &has_nbf) < 0 ||
        num_claim(c, "iat", &iat, &has_iat) < 0)
        return *why = "'exp', 'nbf' or 'iat' is not a number", -JWT_EMALFORMED;
    const json_t *sub = json_object_get(c, "sub");
    if (sub && !json_is_string(sub)) return *why = "'sub' is not a string", -JWT_EMALFORMED;
    if (has_exp && sat_add(*exp, leeway) <= pol->now_s) return *why = "token expired", -JWT_EEXPIRED;
    if (has_nbf && sat_add(nbf, -leeway) > pol->now_s) return *why = "token not yet valid", -JWT_ENBF;
    if (has_iat && sat_add(iat, -leeway) > pol->now_s) return *why = "token issued in the future", -JWT_EIAT;
    if (pol->issuer && pol->issuer[0]) {
        const json_t *iss = json_object_get(c, "iss");
        if (!iss) return *why = "'iss' missing", -JWT_EISS;
        if (!json_is_string(iss)) return *why = "'iss' is not a string", -JWT_EMALFORMED;
        if (strcmp(json_string_value(iss), pol->issuer) != 0) return *why = "wrong issuer", -JWT_EISS;
    }
    if (pol->audience && pol->audience[0]) {
        const json_t *aud = json_object_get(c, "aud"), *v;
        if (!aud) return *why = "'aud' missing", -JWT_EAUD;
        if (json_is_string(aud)) {
            if (strcmp(json_string_value(aud), pol->audience) != 0) return *why = "wrong audience", -JWT_EAUD;
        } else if (json_is_array(aud)) {
            bool found = false;
            size_t i;
            json_array_foreach(aud, i, v) {
                if (!json_is_string(v)) return *why = "'aud' holds a non-string", -JWT_EMALFORMED;
                found |= strcmp(json_string_value(v), pol->audience) == 0;
            }
            if (!found) return *why = "wrong audience", -JWT_EAUD;
        } else {
            return *why = "'aud' is not a string or an array", -JWT_EMALFORMED;
        }
    }
    return 0;
}

/* Strict JSON object text: no duplicate members, no NUL in strings (jansson's default). */
static json_t *parse_obj(const unsigned char *s, size_t n)
{
    json_error_t e;
    return json_loadb((const char *)s, n, JSON_REJECT_DUPLICATES, &e);
}

int jwt_verify(const jwt_keys_t *ks, const jwt_policy_t *pol, const char *tok, size_t n, jwt_result_t *out,
               const char **why)
{
    const char *dummy;
    if (!why) why = &dummy;
    memset(out, 0, sizeof(*out));
    size_t max = pol->max_len ? pol->max_len : JWT_DEFAULT_MAX_LEN;
    if (n > max) return *why = "token too long", -JWT_ETOOLONG;
    int rc = -JWT_EMALFORMED;
    unsigned char *hb = NULL, *pb = NULL, *sb = NULL;
    json_t *hdr = NULL, *claims = NULL;
    const char *d1 = tok ? memchr(tok, '.', n) : NULL;
    *why = "not three base64url parts";
    if (!d1) goto done;
    long hl = b64_dup(tok, (size_t)(d1 - tok), &hb);
    if (hl < 0) goto done;
    if (!(hdr = parse_obj(hb, (size_t)hl))) {
        *why = "header is not JSON";
        goto done;
    }
    jwt_alg_t alg;
    const char *kid;
    if ((rc = check_header(hdr, &alg, &kid, why)) < 0) goto done;
    rc = -JWT_EMALFORMED;
    *why = "not three base64url parts";
    const char *rest = d1 + 1, *end = tok + n;
    const char *d2 = memchr(rest, '.', (size_t)(end - rest));
    if (!d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1))) goto done;
    long pl = b64_dup(rest, (size_t)(d2 - rest), &pb);
    long sl = pl < 0 ? -1 : b64_dup(d2 + 1, (size_t)(end - d2 - 1), &sb);
    if (sl < 0) goto done;

    /* a token's kid picks the key with that kid; keys configured without a kid (a PEM file, a
     * secret) stand for any kid, so tokens from issuers that always send one still verify */
    const jwt__key_t *cand[JWT_MAX_TRIES];
    size_t nc = 0;
    bool kid_seen = false;
    for (int pass = 0; pass < 2 && !kid_seen; pass++) {
        nc = 0;
        for (size_t i = 0; ks && i < ks->n && nc < JWT_MAX_TRIES; i++) {
            const jwt__key_t *k = &ks->v[i];
            if (kid && pass == 0 && (!k->kid || strcmp(k->kid, kid) != 0)) continue;
            if (kid && pass == 1 && k->kid) continue;
            if (kid) kid_seen = true;
            if (k->algs & JWT_ALG_BIT(alg)) cand[nc++] = k;
        }
        if (!kid) break;
    }
    if (kid && !kid_seen) {
        rc = -JWT_EKID, *why = "no key with the token's kid";
        goto done;
    }
    if (nc == 0) {
        rc = -JWT_EALG, *why = "no key allows the token's alg";
        goto done;
    }
    bool good = false;
    for (size_t i = 0; i < nc && !good; i++)
        good = key_verify(cand[i], alg, (const unsigned char *)tok, (size_t)(d2 - tok), sb, (size_t)sl);
    if (!good) {
        rc = -JWT_ESIG, *why = "bad signature";
        goto done;
    }
    if (!(claims = parse_obj(pb, (size_t)pl))) {
        rc = -JWT_EMALFORMED, *why = "payload is not JSON";
        goto done;
    }
    if ((rc = check_claims(claims, pol, &out->exp, why)) < 0) goto done;
    out->claims = claims;
    out->alg = alg;
    claims = NULL;
    *why = "ok";
done:
    if (rc < 0) out->exp = 0;
    json_decref(hdr);
    json_decref(claims);
    free(hb);
    free(pb);
    free(sb);
    return rc;
}

/* ---- signing ---- */

/* Refuses to prompt for a passphrase: encrypted private keys are not supported. */
static int no_pass(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0;
}

static EVP_PKEY *load_private(const void *pem, size_t n, char *err, size_t cap)
{
    if (n > INT_MAX) return jwt__fail(err, cap, "private key text too large"), NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)n);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_pass, NULL) : NULL;
    BIO_free(bio);
    ERR_clear_error();
    if (!pkey) jwt__fail(err, cap, "no unencrypted PEM private key");
    return pkey;
}

int jwt_pem_default_alg(const char *pem, size_t n, char *err, size_t cap)
{
    EVP_PKEY *pkey = load_private(pem, n, err, cap);
    int t = pkey ? jwt__pkey_type(pkey, err, cap) : -1;
    EVP_PKEY_free(pkey);
    switch (t) {
    case JWT_KT_RSA: return JWT_RS256;
    case JWT_KT_P256: return JWT_ES256;
    case JWT_KT_P384: return JWT_ES384;
    case JWT_KT_ED25519: return JWT_EDDSA;
    default: return -1;
    }
}

/* Signs in[0..n) with a PEM private key; *sig is malloc'd. Returns the length or -1. */
static long pk_sign(jwt_alg_t alg, const void *pem, size_t pemlen, const unsigned char *in, size_t n,
                    unsigned char **sig, char *err, size_t cap)
{
    EVP_PKEY *pkey = load_private(pem, pemlen, err, cap);
    if (!pkey) return -1;
    long rc = -1;
    unsigned char *der = NULL;
    EVP_MD_CTX *m = NULL;
    int t = jwt__pkey_type(pkey, err, cap);
    if (t < 0) goto done;
    if (!(jwt__type_algs((jwt__ktype_t)t) & JWT_ALG_BIT(alg))) {
        jwt__fail(err, cap, "the private key does not fit %s", jwt_alg_name(alg));
        goto done;
    }
    EVP_PKEY_CTX *pctx = NULL;
    const EVP_MD *md = alg_md(alg);
    size_t len = 0;
    bool ok = (m = EVP_MD_CTX_new()) && EVP_DigestSignInit(m, &pctx, md, NULL, pkey) == 1;
    if (ok && alg_is_pss(alg))
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) > 0;
    ok = ok && EVP_DigestSign(m, NULL, &len, in, n) == 1 && (der = malloc(len)) &&
         EVP_DigestSign(m, der, &len, in, n) == 1;
    if (!ok) {
        jwt__fail(err, cap, "signing failed");
        goto done;
    }
    size_t clen = alg_ec_len(alg);
    if (!clen) {
        *sig = der, der = NULL;
        rc = (long)len;
        goto done;
    }
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
    const BIGNUM *r = NULL, *s = NULL;
    if (es) ECDSA_SIG_get0(es, &r, &s);
    if (es && (*sig = malloc(2 * clen)) && BN_bn2binpad(r, *sig, (int)clen) == (int)clen &&
        BN_bn2binpad(s, *sig + clen, (int)clen) == (int)clen) {
        rc = (long)(2 * clen);
    } else {
        free(*sig);
        *sig = NULL;
        jwt__fail(err, cap, "cannot convert the ECDSA signature");
    }
    ECDSA_SIG_free(es);
done:
    ERR_clear_error();
    EVP_MD_CTX_free(m);
    EVP_PKEY_free(pkey);
    free(der);
    return rc;
}

char *jwt_sign(jwt_alg_t alg, const void *key, size_t keylen, const char *kid, const char *claims_json, char *err,
               size_t cap)
{
    if ((unsigned)alg >= JWT_ALG_COUNT) return jwt__fail(err, cap, "unknown algorithm"), NULL;
    json_error_t je;
    json_t *claims = claims_json ? json_loads(claims_json, JSON_REJECT_DUPLICATES, &je) : NULL;
    bool is_obj = json_is_object(claims);
    json_decref(claims);
    if (!is_obj) return jwt__fail(err, cap, "the claims are not a JSON object"), NULL;
    json_t *h = json_pack("{s:s, s:s}", "alg", jwt_alg_name(alg), "typ", "JWT");
    if (h && kid && json_object_set_new(h, "kid", json_string(kid)) < 0) {
        json_decref(h);
        return jwt__fail(err, cap, "kid is not UTF-8"), NULL;
    }
    char *htext = h ? json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(h);
    size_t hn = htext ? strlen(htext) : 0, pn = strlen(claims_json);
    size_t tcap = b64_len(hn) + b64_len(pn) + b64_len(JWT_MAX_SIG) + 3;
    char *tok = htext ? malloc(tcap) : NULL;
    unsigned char *sig = NULL;
    long sl = -1;
    if (!tok) {
        jwt__fail(err, cap, "out of memory");
        goto done;
    }
    size_t o = jwt_b64url_encode((const unsigned char *)htext, hn, tok, tcap);
    tok[o++] = '.';
    o += jwt_b64url_encode((const unsigned char *)claims_json, pn, tok + o, tcap - o);
    if (alg <= JWT_HS512) {
        unsigned int tl = 0;
        if (keylen < JWT_MIN_HMAC_SECRET || keylen > INT_MAX) {
            jwt__fail(err, cap, "HMAC secret of %zu bytes (need at least %d)", keylen, JWT_MIN_HMAC_SECRET);
        } else if ((sig = malloc(EVP_MAX_MD_SIZE)) &&
                   HMAC(alg_md(alg), key, (int)keylen, (const unsigned char *)tok, o, sig, &tl)) {
            sl = tl;
        } else {
            jwt__fail(err, cap, "HMAC failed");
        }
    } else {
        sl = pk_sign(alg, key, keylen, (const unsigned char *)tok, o, &sig, err, cap);
    }
    if (sl < 0 || sl > JWT_MAX_SIG) {
        free(tok);
        tok = NULL;
        goto done;
    }
    tok[o++] = '.';
    jwt_b64url_encode(sig, (size_t)sl, tok + o, tcap - o);
done:
    ERR_clear_error();
    free(htext);
    free(sig);
    return tok;
}
