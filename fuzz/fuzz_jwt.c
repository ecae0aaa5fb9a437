/* fuzz_jwt.c - JWT verification (src/auth/jwt.h) on arbitrary bytes.
 *
 * The key set is built once, on the first call, and then only read: an HMAC secret without kid,
 * a fixed P-256 public key from PEM, and a JWKS with an "oct" key (kid "hs") and the same P-256
 * key (kid "ec", pinned to ES256). The EC key is fixed, not generated, so that the seed corpus can
 * hold valid ES256 tokens; its private half is not in the tree.
 *
 * Each input is used three ways:
 * 1. as a compact token for jwt_verify with a fixed policy (issuer "https://fuzz", audience
 *    "herald", now 1700000000, leeway 30 s); a success must come with a claims object;
 * 2. when it contains '\n', as "HEADER\nPAYLOAD" JSON texts that are encoded and signed with the
 *    HS256 secret here, so that header and claim checks run behind a valid signature;
 * 3. for base64url: a successful decode must re-encode to exactly the input (the decoder is
 *    strict, so encoding is canonical), and any bytes must survive encode -> decode.
 * Buffers are exact-size so ASan sees any write past a documented capacity. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/auth/jwt.h"

#define FUZZ_SECRET "herald-fuzz-secret-0123456789abcdef"
#define FUZZ_SECRET2 "herald-fuzz-jwks-secret-0123456789"

static const char EC_PEM[] = "-----BEGIN PUBLIC KEY-----\n"
                             "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2TeBbp6hGqV0r5S9bF1TWIhnb9xn\n"
                             "Na0/QeTGzN/EvpIePQX35GlDfpO7M3hQaLDd7Z8k8w7Gvt+Vvx3UiSL6RQ==\n"
                             "-----END PUBLIC KEY-----\n";

/* oct "k" is base64url of FUZZ_SECRET2 */
static const char JWKS[] = "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"hs\",\"k\":"
                           "\"aGVyYWxkLWZ1enotandrcy1zZWNyZXQtMDEyMzQ1Njc4OQ\"},"
                           "{\"kty\":\"EC\",\"kid\":\"ec\",\"alg\":\"ES256\",\"crv\":\"P-256\","
                           "\"x\":\"2TeBbp6hGqV0r5S9bF1TWIhnb9xnNa0_QeTGzN_EvpI\","
                           "\"y\":\"Hj0F9-RpQ36TuzN4UGiw3e2fJPMOxr7flb8d1Iki-kU\"}]}";

static const jwt_policy_t POL = {
    .issuer = "https://fuzz", .audience = "herald", .leeway_s = 30, .now_s = 1700000000, .max_len = 4096};

static const jwt_keys_t *fuzz_keys(void)
{
    static jwt_keys_t *ks; /* built once, read-only afterwards */
    if (ks) return ks;
    char err[256];
    ks = jwt_keys_new();
    if (!ks || jwt_keys_add_hmac(ks, FUZZ_SECRET, strlen(FUZZ_SECRET), NULL, err, sizeof(err)) != 0 ||
        jwt_keys_add_pem(ks, EC_PEM, strlen(EC_PEM), NULL, err, sizeof(err)) != 1 ||
        jwt_keys_add_jwks(ks, JWKS, strlen(JWKS), err, sizeof(err)) != 2)
        abort();
    return ks;
}

static void verify(const char *tok, size_t n)
{
    jwt_result_t r;
    const char *why = NULL;
    int rc = jwt_verify(fuzz_keys(), &POL, tok, n, &r, &why);
    if (!why) abort();
    if (rc == 0) {
        if (!json_is_object(r.claims) || n > POL.max_len || (unsigned)r.alg >= JWT_ALG_COUNT) abort();
        json_decref(r.claims);
    } else if (r.claims || rc > -JWT_EMALFORMED || rc < -JWT_EAUD) {
        abort();
    }
}

/* Encodes b64url(hdr) "." b64url(payload) and appends its HS256 tag, then verifies it. */
static void verify_signed(const uint8_t *hdr, size_t hn, const uint8_t *payload, size_t pn)
{
    size_t cap = (hn + 2) / 3 * 4 + (pn + 2) / 3 * 4 + 48;
    char *t = malloc(cap);
    if (!t) abort();
    size_t o = jwt_b64url_encode(hdr, hn, t, cap);
    t[o++] = '.';
    o += jwt_b64url_encode(payload, pn, t + o, cap - o);
    unsigned char tag[32];
    unsigned int tl = 0;
    if (!HMAC(EVP_sha256(), FUZZ_SECRET, (int)strlen(FUZZ_SECRET), (unsigned char *)t, o, tag, &tl)) abort();
    t[o++] = '.';
    o += jwt_b64url_encode(tag, tl, t + o, cap - o);
    verify(t, o);
    free(t);
}

static void b64_roundtrip(const uint8_t *d, size_t n)
{
    size_t cap = n / 4 * 3 + 2;
    unsigned char *out = malloc(cap);
    if (!out) abort();
    long r = jwt_b64url_decode((const char *)d, n, out, cap);
    if (r >= 0) {
        if ((size_t)r > cap) abort();
        size_t ecap = n + 1;
        char *back = malloc(ecap);
        if (!back) abort();
        size_t bn = jwt_b64url_encode(out, (size_t)r, back, ecap);
        if (bn != n || memcmp(back, d, n) != 0) abort();
        free(back);
    }
    free(out);
    size_t ecap = (n + 2) / 3 * 4 + 1;
    char *enc = malloc(ecap);
    unsigned char *dec = malloc(n ? n : 1);
    if (!enc || !dec) abort();
    size_t en = jwt_b64url_encode(d, n, enc, ecap);
    if (en >= ecap || enc[en] != '\0') abort();
    if (jwt_b64url_decode(enc, en, dec, n) != (long)n || memcmp(dec, d, n) != 0) abort();
    free(enc);
    free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    verify((const char *)d, n);
    const uint8_t *nl = memchr(d, '\n', n);
    if (nl) verify_signed(d, (size_t)(nl - d), nl + 1, n - (size_t)(nl - d) - 1);
    b64_roundtrip(d, n);
    return 0;
}
