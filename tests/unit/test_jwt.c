/* test_jwt.c - JWT verification and minting (src/auth/jwt.h): every algorithm round trip through
 * PEM and JWKS key sets, kid selection, the known attacks (alg none, RS256 -> HS256 key
 * confusion, curve confusion, flipped bytes, every truncation), registered claims at the leeway
 * boundaries, strict base64url and JSON, and key loading limits. Keys are generated at start-up
 * (RSA 2048, P-256, P-384, Ed25519) and exported as PEM and JWKS text. Every token given to
 * jwt_verify sits right before a PROT_NONE page. */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/auth/jwt.h"
#include "unit.h"

#define NOW 1700000000
#define SECRET "0123456789abcdef0123456789abcdef-herald-test"

/* Keys generated once in main(); read-only for the tests. */
static struct {
    EVP_PKEY *rsa, *p256, *p384, *ed;
    char *rsa_pub, *rsa_priv, *p256_pub, *p256_priv, *p384_pub, *p384_priv, *ed_pub, *ed_priv;
    char *jwks; /* all four public keys plus the HMAC secret, kids "rsa" "p256" "p384" "ed" "hs" */
} fx;

static const jwt_policy_t POL = {.leeway_s = 30, .now_s = NOW};

/* ---- helpers ---- */

static char *bio_text(BIO *b)
{
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = malloc((size_t)n + 1);
    memcpy(s, p, (size_t)n);
    s[n] = '\0';
    BIO_free(b);
    return s;
}

static char *pem_pub(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!PEM_write_bio_PUBKEY(b, k)) abort();
    return bio_text(b);
}

static char *pem_priv(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)) abort();
    return bio_text(b);
}

static char *b64(const void *p, size_t n)
{
    char *s = malloc(n / 3 * 4 + 8);
    jwt_b64url_encode(p, n, s, n / 3 * 4 + 8);
    return s;
}

static char *bn_param_b64(EVP_PKEY *k, const char *name, int pad)
{
    BIGNUM *bn = NULL;
    if (!EVP_PKEY_get_bn_param(k, name, &bn)) abort();
    unsigned char buf[1024];
    int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    BN_free(bn);
    return b64(buf, (size_t)n);
}

/* One JWK object text for k (an HMAC secret when k is NULL). */
static char *jwk(EVP_PKEY *k, const char *kid, const char *extra)
{
    char *out = malloc(4096), *a = NULL, *b = NULL;
    if (!k) {
        a = b64(SECRET, strlen(SECRET));
        snprintf(out, 4096, "{\"kty\":\"oct\",\"kid\":\"%s\",\"k\":\"%s\"%s}", kid, a, extra);
    } else if (EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA) {
        a = bn_param_b64(k, OSSL_PKEY_PARAM_RSA_N, 0);
        b = bn_param_b64(k, OSSL_PKEY_PARAM_RSA_E, 0);
        snprintf(out, 4096, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"%s}", kid, a, b,
                 extra);
    } else if (EVP_PKEY_get_base_id(k) == EVP_PKEY_EC) {
        int bits = EVP_PKEY_get_bits(k);
        a = bn_param_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, bits / 8);
        b = bn_param_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, bits / 8);
        snprintf(out, 4096, "{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"P-%d\",\"x\":\"%s\",\"y\":\"%s\"%s}", kid, bits,
                 a, b, extra);
    } else {
        unsigned char raw[32];
        size_t rl = sizeof(raw);
        if (!EVP_PKEY_get_raw_public_key(k, raw, &rl)) abort();
        a = b64(raw, rl);
        snprintf(out, 4096, "{\"kty\":\"OKP\",\"kid\":\"%s\",\"crv\":\"Ed25519\",\"x\":\"%s\"%s}", kid, a, extra);
    }
    free(a);
    free(b);
    return out;
}

static const char *priv_for(jwt_alg_t a)
{
    if (a <= JWT_HS512) return SECRET;
    if (a <= JWT_PS512) return fx.rsa_priv;
    if (a == JWT_ES256) return fx.p256_priv;
    if (a == JWT_ES384) return fx.p384_priv;
    return fx.ed_priv;
}

static const char *pub_for(jwt_alg_t a)
{
    if (a <= JWT_PS512) return fx.rsa_pub;
    if (a == JWT_ES256) return fx.p256_pub;
    if (a == JWT_ES384) return fx.p384_pub;
    return fx.ed_pub;
}

static const char *kid_for(jwt_alg_t a)
{
    if (a <= JWT_HS512) return "hs";
    if (a <= JWT_PS512) return "rsa";
    return a == JWT_ES256 ? "p256" : a == JWT_ES384 ? "p384" : "ed";
}

static char *sign(jwt_alg_t a, const char *kid, const char *claims)
{
    char err[200] = "";
    const char *k = priv_for(a);
    char *t = jwt_sign(a, k, strlen(k), kid, claims, err, sizeof(err));
    if (!t) { /* a failed check; the caller goes on with a token that verifies nowhere */
        unit__failed_checks++;
        printf("#   jwt_sign %s: %s\n", jwt_alg_name(a), err);
        t = strdup("signing.failed.x");
        if (!t) abort();
    }
    return t;
}

/* Verifies a guard-page copy of tok[0..n); releases the claims. */
static int vern(const jwt_keys_t *ks, const jwt_policy_t *pol, const char *tok, size_t n)
{
    jwt_result_t r;
    const char *why = NULL;
    int rc = jwt_verify(ks, pol, gp(tok, n), n, &r, &why);
    if (rc == 0) {
        if (!json_is_object(r.claims)) printf("#   claims missing\n"), rc = 99;
    } else if (r.claims || !why || strstr(why, "eyJ")) {
        printf("#   bad failure result\n");
        rc = 98;
    }
    json_decref(r.claims);
    return rc;
}

static int ver(const jwt_keys_t *ks, const jwt_policy_t *pol, const char *tok) { return vern(ks, pol, tok, strlen(tok)); }

/* A token "b64(hdr).b64(payload).b64(HMAC-SHA256(SECRET))" over arbitrary header and payload
 * texts, for inputs jwt_sign refuses to produce. */
static char *hs256_raw(const char *hdr, size_t hn, const char *payload, size_t pn)
{
    char *h = b64(hdr, hn), *p = b64(payload, pn);
    size_t in_len = strlen(h) + 1 + strlen(p);
    char *t = malloc(in_len + 64);
    sprintf(t, "%s.%s", h, p);
    unsigned char tag[32];
    unsigned int tl = 0;
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)t, in_len, tag, &tl);
    t[in_len] = '.';
    jwt_b64url_encode(tag, tl, t + in_len + 1, 64);
    free(h);
    free(p);
    return t;
}

static char *hs256(const char *hdr, const char *payload) { return hs256_raw(hdr, strlen(hdr), payload, strlen(payload)); }

static jwt_keys_t *hmac_keys(void)
{
    jwt_keys_t *ks = jwt_keys_new();
    char err[200];
    if (jwt_keys_add_hmac(ks, SECRET, strlen(SECRET), NULL, err, sizeof(err)) != 0) abort();
    return ks;
}

static jwt_keys_t *pem_keys(const char *pem)
{
    jwt_keys_t *ks = jwt_keys_new();
    char err[200];
    int n = jwt_keys_add_pem(ks, pem, strlen(pem), NULL, err, sizeof(err));
    if (n != 1) printf("#   add_pem: %s\n", err);
    return ks;
}

#define HS_HDR "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* HS256 result of a payload under POL and the HMAC key set. */
static int claims_rc(const jwt_policy_t *pol, const char *payload)
{
    jwt_keys_t *ks = hmac_keys();
    char *t = hs256(HS_HDR, payload);
    int rc = ver(ks, pol, t);
    free(t);
    jwt_keys_free(ks);
    return rc;
}

/* ---- tests ---- */

TEST(b64url_strict)
{
    unsigned char out[16];
    CHECK_EQ(jwt_b64url_decode("", 0, out, 0), 0);
    CHECK_EQ(jwt_b64url_decode("QQ", 2, out, 1), 1);
    CHECK_EQ(out[0], 'A');
    CHECK_EQ(jwt_b64url_decode("QUI", 3, out, 2), 2);
    CHECK_EQ(jwt_b64url_decode("QUJD", 4, out, 3), 3);
    CHECK_MEM(out, 3, "ABC");
    CHECK_EQ(jwt_b64url_decode("QUJD", 4, out, 2), -1); /* does not fit */
    CHECK_EQ(jwt_b64url_decode("QQ==", 4, out, 16), -1); /* padding */
    CHECK_EQ(jwt_b64url_decode("QQ=", 3, out, 16), -1);
    CHECK_EQ(jwt_b64url_decode("a+b/", 4, out, 16), -1); /* standard alphabet */
    CHECK_EQ(jwt_b64url_decode("a-b_", 4, out, 16), 3);
    CHECK_EQ(jwt_b64url_decode("QUJDR", 5, out, 16), -1); /* length 1 mod 4 */
    CHECK_EQ(jwt_b64url_decode("QR", 2, out, 16), -1);    /* non-zero leftover bits */
    CHECK_EQ(jwt_b64url_decode("QUJ", 3, out, 16), -1);
    CHECK_EQ(jwt_b64url_decode("QU J", 4, out, 16), -1);
    CHECK_EQ(jwt_b64url_decode("QUJ\0", 4, out, 16), -1);
    unsigned char raw[64];
    for (int i = 0; i < 64; i++) raw[i] = (unsigned char)(i * 37 + 250);
    for (size_t n = 0; n <= 64; n++) {
        char enc[100];
        size_t en = jwt_b64url_encode(raw, n, enc, sizeof(enc));
        CHECK_EQ(en, (n * 4 + 2) / 3);
        CHECK_EQ(strlen(enc), en);
        unsigned char dec[64];
        CHECK_EQ(jwt_b64url_decode(gp(enc, en), en, dec, n), (long)n);
        CHECK(memcmp(dec, raw, n) == 0);
    }
    char small[4];
    CHECK_EQ(jwt_b64url_encode((const unsigned char *)"ABC", 3, small, sizeof(small)), 0);
    CHECK_EQ(small[0], '\0');
    gp_release();
}

TEST(alg_names)
{
    for (int a = 0; a < JWT_ALG_COUNT; a++) {
        const char *n = jwt_alg_name((jwt_alg_t)a);
        CHECK_EQ(jwt_alg_parse(n, strlen(n)), a);
    }
    CHECK_EQ(jwt_alg_parse("hs256", 5), -1);
    CHECK_EQ(jwt_alg_parse("none", 4), -1);
    CHECK_EQ(jwt_alg_parse("HS256x", 5), JWT_HS256);
    CHECK_EQ(jwt_alg_parse("HS25", 4), -1);
}

/* RFC 7515 appendix A.1: a known-answer HS256 token (with CR LF inside its JSON). */
TEST(rfc7515_hs256_vector)
{
    static const char k64[] = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    static const char tok[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkz"
                              "ODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_"
                              "wW1gFWFOEjXk";
    unsigned char key[64];
    CHECK_EQ(jwt_b64url_decode(k64, strlen(k64), key, sizeof(key)), 64);
    jwt_keys_t *ks = jwt_keys_new();
    char err[200];
    CHECK_EQ(jwt_keys_add_hmac(ks, key, 64, NULL, err, sizeof(err)), 0);
    jwt_policy_t pol = {.issuer = "joe", .now_s = 1300819000};
    jwt_result_t r;
    const char *why;
    CHECK_EQ(jwt_verify(ks, &pol, gp(tok, strlen(tok)), strlen(tok), &r, &why), 0);
    CHECK_EQ(r.exp, 1300819380);
    CHECK_EQ(r.alg, JWT_HS256);
    CHECK(json_is_true(json_object_get(r.claims, "http://example.com/is_root")));
    json_decref(r.claims);
    pol.now_s = 1300819380;
    CHECK_EQ(ver(ks, &pol, tok), -JWT_EEXPIRED);
    jwt_keys_free(ks);
    gp_release();
}

TEST(roundtrip_pem_every_alg)
{
    for (int a = 0; a < JWT_ALG_COUNT; a++) {
        char *t = sign((jwt_alg_t)a, NULL, "{\"sub\":\"alice\",\"exp\":1700000100}");
        jwt_keys_t *ks = a <= JWT_HS512 ? hmac_keys() : pem_keys(pub_for((jwt_alg_t)a));
        jwt_result_t r;
        const char *why = NULL;
        int rc = jwt_verify(ks, &POL, gp(t, strlen(t)), strlen(t), &r, &why);
        if (rc) printf("#   %s: %d %s\n", jwt_alg_name((jwt_alg_t)a), rc, why);
        CHECK_EQ(rc, 0);
        CHECK_EQ(r.alg, a);
        CHECK_EQ(r.exp, 1700000100);
        CHECK(json_is_string(json_object_get(r.claims, "sub")));
        json_decref(r.claims);
        /* the signature is bound to the content: a changed payload character fails */
        char *dot = strchr(t, '.') + 1;
        dot[1] = dot[1] == 'A' ? 'B' : 'A';
        CHECK_EQ(ver(ks, &POL, t), -JWT_ESIG);
        jwt_keys_free(ks);
        free(t);
    }
    gp_release();
}

TEST(roundtrip_jwks_every_alg)
{
    jwt_keys_t *ks = jwt_keys_new();
    char err[200] = "";
    CHECK_EQ(jwt_keys_add_jwks(ks, fx.jwks, strlen(fx.jwks), err, sizeof(err)), 5);
    if (err[0]) printf("#   %s\n", err);
    CHECK_EQ(jwt_keys_count(ks), 5);
    for (int a = 0; a < JWT_ALG_COUNT; a++) {
        char *t = sign((jwt_alg_t)a, kid_for((jwt_alg_t)a), "{\"sub\":\"bob\"}");
        CHECK_EQ(ver(ks, &POL, t), 0);
        free(t);
        t = sign((jwt_alg_t)a, NULL, "{\"sub\":\"bob\"}"); /* no kid: every key allowing the alg is tried */
        CHECK_EQ(ver(ks, &POL, t), 0);
        free(t);
    }
    jwt_keys_free(ks);
    gp_release();
}

TEST(kid_selection)
{
    static const char other[] = "another-secret-of-at-least-32-bytes!";
    jwt_keys_t *ks = jwt_keys_new();
    char err[200];
    CHECK_EQ(jwt_keys_add_hmac(ks, SECRET, strlen(SECRET), "a", err, sizeof(err)), 0);
    CHECK_EQ(jwt_keys_add_hmac(ks, other, strlen(other), "b", err, sizeof(err)), 0);
    char *tb = jwt_sign(JWT_HS256, other, strlen(other), "b", "{}", err, sizeof(err));
    char *ta = jwt_sign(JWT_HS256, other, strlen(other), "a", "{}", err, sizeof(err));
    char *tc = jwt_sign(JWT_HS256, other, strlen(other), "c", "{}", err, sizeof(err));
    char *tn = jwt_sign(JWT_HS512, other, strlen(other), NULL, "{}", err, sizeof(err));
    CHECK_EQ(ver(ks, &POL, tb), 0);
    CHECK_EQ(ver(ks, &POL, ta), -JWT_ESIG); /* kid "a" selects only the first secret */
    CHECK_EQ(ver(ks, &POL, tc), -JWT_EKID);
    CHECK_EQ(ver(ks, &POL, tn), 0); /* without kid both are tried */
    free(ta), free(tb), free(tc), free(tn);
    jwt_keys_free(ks);

    /* a JWKS key pinned by "alg" refuses the rest of its family */
    char *j = jwk(fx.rsa, "r1", ",\"alg\":\"RS256\""), doc[8192];
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", j);
    ks = jwt_keys_new();
    CHECK_EQ(jwt_keys_add_jwks(ks, doc, strlen(doc), err, sizeof(err)), 1);
    char *rs = sign(JWT_RS256, "r1", "{}"), *ps = sign(JWT_PS256, "r1", "{}"), *rs5 = sign(JWT_RS512, NULL, "{}");
    CHECK_EQ(ver(ks, &POL, rs), 0);
    CHECK_EQ(ver(ks, &POL, ps), -JWT_EALG);
    CHECK_EQ(ver(ks, &POL, rs5), -JWT_EALG);
    free(rs), free(ps), free(rs5), free(j);
    jwt_keys_free(ks);
    /* a kid on a key that does not allow the alg */
    ks = jwt_keys_new();
    CHECK_EQ(jwt_keys_add_jwks(ks, fx.jwks, strlen(fx.jwks), err, sizeof(err)), 5);
    char *t = sign(JWT_ES256, "p384", "{}");
    CHECK_EQ(ver(ks, &POL, t), -JWT_EALG);
    free(t);
    jwt_keys_free(ks);
    gp_release();
}

TEST(jwks_loading)
{
    char err[200], doc[8192];
    jwt_keys_t *ks = jwt_keys_new();
    char *r = jwk(fx.rsa, "r", ",\"alg\":\"ES256\""), *e = jwk(fx.p256, "e", ",\"use\":\"enc\"");
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", r);
    CHECK_EQ(jwt_keys_add_jwks(ks, doc, strlen(doc), err, sizeof(err)), -1); /* alg does not fit */
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", e);
    CHECK_EQ(jwt_keys_add_jwks(ks, doc, strlen(doc), err, sizeof(err)), -1); /* only an encryption key */
    /* the fixture's keys (fx.jwks without its 9-byte {"keys":[ and 2-byte ]}) plus two unknown ones */
    snprintf(doc, sizeof(doc), "{\"keys\":[%.*s,{\"kty\":\"foo\"},{\"kty\":\"EC\",\"crv\":\"P-521\"}]}",
             (int)strlen(fx.jwks) - 11, fx.jwks + 9);
    CHECK_EQ(jwt_keys_add_jwks(ks, doc, strlen(doc), err, sizeof(err)), 5); /* unknown kty / crv skipped */
    CHECK_EQ(jwt_keys_count(ks), 5);
    static const char *bad[] = {
        "", "[]", "{}", "{\"keys\":{}}", "{\"keys\":[]}", "{\"keys\":[1]}", "{\"keys\":[{}]}",
        "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2hvcnQ\"}]}",                             /* short secret */
        "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2hvcnQ=\"}]}",                            /* padding */
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}]}",             /* short x */
        "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",                  /* tiny n */
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AQAB\",\"y\":\"AQAB\"}]}", /* short point */
        "{\"keys\":[{\"kty\":\"oct\",\"kid\":1,\"k\":\"c2hvcnQ\"}]}",
        "{\"keys\":[],\"keys\":[]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_EQ(jwt_keys_add_jwks(ks, bad[i], strlen(bad[i]), err, sizeof(err)), -1);
        CHECK_EQ(jwt_keys_count(ks), 5); /* a failed add adds nothing */
    }
    /* a point not on the curve: the P-256 key with y + 1 */
    char *p = jwk(fx.p256, "p", "");
    char *y = strstr(p, "\"y\":\"") + 5;
    y[42] = y[42] == 'A' ? 'B' : 'A';
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", p);
    CHECK_EQ(jwt_keys_add_jwks(ks, doc, strlen(doc), err, sizeof(err)), -1);
    /* a good key followed by a bad one: the good one is removed again */
    char *good = jwk(fx.p384, "g", "");
    snprintf(doc, sizeof(doc), "{\"keys\":[%s,{\"kty\":\"oct\",\"k\":\"c2hvcnQ\"}]}", good);
    CHECK_EQ(jwt_keys_add_jwks(ks, doc, strlen(doc), err, sizeof(err)), -1);
    CHECK_EQ(jwt_keys_count(ks), 5);
    /* RSA 1024 in a JWKS is refused too */
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    char *sj = jwk(small, "s", "");
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", sj);
    CHECK_EQ(jwt_keys_add_jwks(ks, doc, strlen(doc), err, sizeof(err)), -1);
    CHECK(strstr(err, "1024") != NULL);
    EVP_PKEY_free(small);
    free(sj), free(good), free(p), free(r), free(e);
    jwt_keys_free(ks);
}

TEST(pem_loading)
{
    char err[200];
    jwt_keys_t *ks = jwt_keys_new();
    CHECK_EQ(jwt_keys_add_hmac(ks, "short", 5, NULL, err, sizeof(err)), -1);
    CHECK_EQ(jwt_keys_add_hmac(ks, SECRET, JWT_MIN_HMAC_SECRET - 1, NULL, err, sizeof(err)), -1);
    CHECK_EQ(jwt_keys_add_hmac(ks, SECRET, JWT_MIN_HMAC_SECRET, NULL, err, sizeof(err)), 0);
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    char *sp = pem_pub(small);
    CHECK_EQ(jwt_keys_add_pem(ks, sp, strlen(sp), NULL, err, sizeof(err)), -1);
    CHECK(strstr(err, "1024") != NULL);
    EVP_PKEY *p521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    EVP_PKEY *ed448 = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
    char *p5 = pem_pub(p521), *e4 = pem_pub(ed448);
    CHECK_EQ(jwt_keys_add_pem(ks, p5, strlen(p5), NULL, err, sizeof(err)), -1);
    CHECK_EQ(jwt_keys_add_pem(ks, e4, strlen(e4), NULL, err, sizeof(err)), -1);
    CHECK_EQ(jwt_keys_add_pem(ks, "", 0, NULL, err, sizeof(err)), -1);
    CHECK_EQ(jwt_keys_add_pem(ks, "garbage", 7, NULL, err, sizeof(err)), -1);
    static const char broken[] = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    CHECK_EQ(jwt_keys_add_pem(ks, broken, strlen(broken), NULL, err, sizeof(err)), -1);
    CHECK_EQ(jwt_keys_add_pem(ks, fx.rsa_priv, strlen(fx.rsa_priv), NULL, err, sizeof(err)), -1); /* no public */
    CHECK_EQ(jwt_keys_count(ks), 1);
    /* several blocks: comments, a private key (skipped), three public keys, one kid for all */
    static char multi[16384];
    size_t cap = sizeof(multi);
    snprintf(multi, cap, "comment\n%s%s%s\n%s", fx.p256_pub, fx.ed_priv, fx.ed_pub, fx.rsa_pub);
    CHECK_EQ(jwt_keys_add_pem(ks, multi, strlen(multi), "k", err, sizeof(err)), 3);
    /* the same with a 1024-bit key last: all or nothing */
    snprintf(multi, cap, "%s%s", fx.p256_pub, sp);
    CHECK_EQ(jwt_keys_add_pem(ks, multi, strlen(multi), NULL, err, sizeof(err)), -1);
    CHECK_EQ(jwt_keys_count(ks), 4);
    char *t = sign(JWT_EDDSA, "k", "{}");
    CHECK_EQ(ver(ks, &POL, t), 0);
    free(t);
    /* "RSA PUBLIC KEY" (PKCS#1) blocks */
    OSSL_ENCODER_CTX *ec = OSSL_ENCODER_CTX_new_for_pkey(fx.rsa, EVP_PKEY_PUBLIC_KEY, "PEM", "type-specific", NULL);
    unsigned char *pk1 = NULL;
    size_t pk1n = 0;
    CHECK(ec && OSSL_ENCODER_to_data(ec, &pk1, &pk1n) == 1);
    OSSL_ENCODER_CTX_free(ec);
    CHECK(pk1 && strstr((char *)pk1, "BEGIN RSA PUBLIC KEY"));
    jwt_keys_t *k2 = jwt_keys_new();
    CHECK_EQ(jwt_keys_add_pem(k2, (char *)pk1, pk1n, NULL, err, sizeof(err)), 1);
    t = sign(JWT_PS384, NULL, "{}");
    CHECK_EQ(ver(k2, &POL, t), 0);
    free(t);
    jwt_keys_free(k2);
    OPENSSL_free(pk1);
    /* a "CERTIFICATE" block: its subject key is taken */
    X509 *x = X509_new();
    X509_NAME *nm = X509_NAME_new();
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"herald-test", -1, -1, 0);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_subject_name(x, nm);
    X509_set_issuer_name(x, nm);
    X509_set_pubkey(x, fx.p384);
    CHECK(X509_sign(x, fx.p384, EVP_sha384()) > 0);
    BIO *cb = BIO_new(BIO_s_mem());
    CHECK(PEM_write_bio_X509(cb, x));
    char *cert = bio_text(cb);
    k2 = jwt_keys_new();
    CHECK_EQ(jwt_keys_add_pem(k2, cert, strlen(cert), "c", err, sizeof(err)), 1);
    t = sign(JWT_ES384, "c", "{}");
    CHECK_EQ(ver(k2, &POL, t), 0);
    free(t), free(cert);
    jwt_keys_free(k2);
    X509_NAME_free(nm);
    X509_free(x);
    free(sp), free(p5), free(e4);
    EVP_PKEY_free(small), EVP_PKEY_free(p521), EVP_PKEY_free(ed448);
    jwt_keys_free(ks);
    gp_release();
}

TEST(attack_flipped_signature)
{
    jwt_keys_t *ks = jwt_keys_new();
    char err[200];
    CHECK_EQ(jwt_keys_add_jwks(ks, fx.jwks, strlen(fx.jwks), err, sizeof(err)), 5);
    for (int a = 0; a < JWT_ALG_COUNT; a++) {
        char *t = sign((jwt_alg_t)a, NULL, "{\"sub\":\"x\"}");
        size_t n = strlen(t);
        char *s = strrchr(t, '.') + 1;
        size_t sn = strlen(s);
        for (size_t i = 0; i + 1 < sn; i += (sn / 7) + 1) { /* a few positions (the last char has spare bits) */
            char keep = s[i];
            s[i] = keep == 'A' ? 'B' : 'A';
            CHECK_EQ(vern(ks, &POL, t, n), -JWT_ESIG);
            s[i] = keep;
        }
        CHECK_EQ(ver(ks, &POL, t), 0);
        t[n - 1] = '\0'; /* a shorter signature */
        CHECK(ver(ks, &POL, t) < 0);
        s[0] = '\0'; /* empty signature */
        CHECK_EQ(ver(ks, &POL, t), -JWT_ESIG);
        free(t);
    }
    /* an ES384 header over a 64-byte signature, and an ES256 one over 96 bytes */
    char *t256 = sign(JWT_ES256, NULL, "{}"), *t384 = sign(JWT_ES384, NULL, "{}");
    char mix[1024];
    snprintf(mix, sizeof(mix), "%.*s%s", (int)(strrchr(t384, '.') - t384), t384, strrchr(t256, '.'));
    CHECK_EQ(ver(ks, &POL, mix), -JWT_ESIG);
    snprintf(mix, sizeof(mix), "%.*s%s", (int)(strrchr(t256, '.') - t256), t256, strrchr(t384, '.'));
    CHECK_EQ(ver(ks, &POL, mix), -JWT_ESIG);
    free(t256), free(t384);
    jwt_keys_free(ks);
    gp_release();
}

TEST(attack_alg_none)
{
    jwt_keys_t *ks = hmac_keys();
    char err[200];
    CHECK_EQ(jwt_keys_add_jwks(ks, fx.jwks, strlen(fx.jwks), err, sizeof(err)), 5);
    static const char *hdrs[] = {"{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}",
                                 "{\"alg\":\"nOnE\",\"kid\":\"hs\"}"};
    char *good = hs256(HS_HDR, "{\"sub\":\"admin\"}");
    char *sig = strrchr(good, '.');
    for (size_t i = 0; i < 4; i++) {
        char *h = b64(hdrs[i], strlen(hdrs[i])), *p = b64("{\"sub\":\"admin\"}", 15), t[512];
        snprintf(t, sizeof(t), "%s.%s.", h, p); /* empty signature */
        CHECK_EQ(ver(ks, &POL, t), -JWT_EALG);
        snprintf(t, sizeof(t), "%s.%s", h, p); /* no signature part at all */
        CHECK_EQ(ver(ks, &POL, t), -JWT_EALG);
        snprintf(t, sizeof(t), "%s.%s%s", h, p, sig); /* a real HS256 signature */
        CHECK_EQ(ver(ks, &POL, t), -JWT_EALG);
        free(h), free(p);
    }
    char *t = hs256("{\"alg\":\"HS1\"}", "{}");
    CHECK_EQ(ver(ks, &POL, t), -JWT_EALG);
    free(t);
    t = hs256("{\"alg\":\"hs256\"}", "{}");
    CHECK_EQ(ver(ks, &POL, t), -JWT_EALG);
    free(t);
    free(good);
    jwt_keys_free(ks);
    gp_release();
}

TEST(attack_key_confusion)
{
    /* RS256 -> HS256: HMAC keyed with the RSA public key's PEM text */
    jwt_keys_t *ks = pem_keys(fx.rsa_pub);
    char err[200];
    char *t = jwt_sign(JWT_HS256, fx.rsa_pub, strlen(fx.rsa_pub), NULL, "{\"sub\":\"admin\"}", err, sizeof(err));
    CHECK(t != NULL);
    CHECK_EQ(ver(ks, &POL, t), -JWT_EALG);
    free(t);
    jwt_keys_free(ks);
    /* the same against the JWKS form of the key (whose JSON might be tried as a secret) */
    ks = jwt_keys_new();
    char *j = jwk(fx.rsa, "r", ""), doc[4096];
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", j);
    CHECK_EQ(jwt_keys_add_jwks(ks, doc, strlen(doc), err, sizeof(err)), 1);
    t = jwt_sign(JWT_HS256, doc, strlen(doc), "r", "{}", err, sizeof(err));
    CHECK_EQ(ver(ks, &POL, t), -JWT_EALG);
    free(t), free(j);
    jwt_keys_free(ks);
    /* ES256 over a P-384 key; ES384 over a P-256 key; EdDSA over an EC key */
    ks = pem_keys(fx.p384_pub);
    t = sign(JWT_ES256, NULL, "{}");
    CHECK_EQ(ver(ks, &POL, t), -JWT_EALG);
    free(t);
    jwt_keys_free(ks);
    ks = pem_keys(fx.p256_pub);
    t = sign(JWT_ES384, NULL, "{}");
    CHECK_EQ(ver(ks, &POL, t), -JWT_EALG);
    free(t);
    t = sign(JWT_EDDSA, NULL, "{}");
    CHECK_EQ(ver(ks, &POL, t), -JWT_EALG);
    free(t);
    jwt_keys_free(ks);
    /* an HMAC-only key set refuses RS256 before any RSA work */
    ks = hmac_keys();
    t = sign(JWT_RS256, NULL, "{}");
    CHECK_EQ(ver(ks, &POL, t), -JWT_EALG);
    free(t);
    jwt_keys_free(ks);
    gp_release();
}

TEST(time_claims_and_leeway)
{
    char p[128];
    jwt_policy_t pol = POL; /* leeway 30 */
#define AT(claim, v) (snprintf(p, sizeof(p), "{\"" claim "\":%lld}", (long long)(v)), claims_rc(&pol, p))
    CHECK_EQ(AT("exp", NOW - 31), -JWT_EEXPIRED);
    CHECK_EQ(AT("exp", NOW - 30), -JWT_EEXPIRED); /* exp + leeway <= now */
    CHECK_EQ(AT("exp", NOW - 29), 0);
    CHECK_EQ(AT("nbf", NOW + 30), 0);
    CHECK_EQ(AT("nbf", NOW + 31), -JWT_ENBF);
    CHECK_EQ(AT("iat", NOW + 30), 0);
    CHECK_EQ(AT("iat", NOW + 31), -JWT_EIAT);
    CHECK_EQ(AT("iat", NOW - 100000), 0);
    CHECK_EQ(AT("exp", INT64_MAX), 0);
    CHECK_EQ(AT("exp", INT64_MIN), -JWT_EEXPIRED);
    CHECK_EQ(AT("nbf", INT64_MIN), 0);
    pol.leeway_s = 0;
    CHECK_EQ(AT("exp", NOW), -JWT_EEXPIRED);
    CHECK_EQ(AT("exp", NOW + 1), 0);
    CHECK_EQ(AT("nbf", NOW), 0);
    CHECK_EQ(AT("nbf", NOW + 1), -JWT_ENBF);
    CHECK_EQ(AT("iat", NOW + 1), -JWT_EIAT);
#undef AT
    CHECK_EQ(claims_rc(&pol, "{\"exp\":1700000000.9}"), -JWT_EEXPIRED); /* reals are truncated */
    CHECK_EQ(claims_rc(&pol, "{\"exp\":1700000001.5}"), 0);
    CHECK_EQ(claims_rc(&pol, "{\"exp\":1e300}"), 0);
    CHECK_EQ(claims_rc(&pol, "{\"exp\":-1e300}"), -JWT_EEXPIRED);
    CHECK_EQ(claims_rc(&pol, "{\"exp\":\"1800000000\"}"), -JWT_EMALFORMED);
    CHECK_EQ(claims_rc(&pol, "{\"nbf\":true}"), -JWT_EMALFORMED);
    CHECK_EQ(claims_rc(&pol, "{\"iat\":null}"), -JWT_EMALFORMED);
    CHECK_EQ(claims_rc(&pol, "{\"exp\":[1]}"), -JWT_EMALFORMED);
    CHECK_EQ(claims_rc(&pol, "{\"sub\":5}"), -JWT_EMALFORMED);
    CHECK_EQ(claims_rc(&pol, "{\"sub\":\"u\"}"), 0);
    gp_release();
}

TEST(issuer_and_audience)
{
    jwt_policy_t pol = POL;
    pol.issuer = "https://idp";
    pol.audience = "herald";
    CHECK_EQ(claims_rc(&pol, "{\"iss\":\"https://idp\",\"aud\":\"herald\"}"), 0);
    CHECK_EQ(claims_rc(&pol, "{\"aud\":\"herald\"}"), -JWT_EISS);
    CHECK_EQ(claims_rc(&pol, "{\"iss\":\"https://idp2\",\"aud\":\"herald\"}"), -JWT_EISS);
    CHECK_EQ(claims_rc(&pol, "{\"iss\":\"https://id\",\"aud\":\"herald\"}"), -JWT_EISS);
    CHECK_EQ(claims_rc(&pol, "{\"iss\":7,\"aud\":\"herald\"}"), -JWT_EMALFORMED);
    CHECK_EQ(claims_rc(&pol, "{\"iss\":\"https://idp\"}"), -JWT_EAUD);
    CHECK_EQ(claims_rc(&pol, "{\"iss\":\"https://idp\",\"aud\":\"other\"}"), -JWT_EAUD);
    CHECK_EQ(claims_rc(&pol, "{\"iss\":\"https://idp\",\"aud\":[\"a\",\"herald\"]}"), 0);
    CHECK_EQ(claims_rc(&pol, "{\"iss\":\"https://idp\",\"aud\":[\"a\",\"b\"]}"), -JWT_EAUD);
    CHECK_EQ(claims_rc(&pol, "{\"iss\":\"https://idp\",\"aud\":[]}"), -JWT_EAUD);
    CHECK_EQ(claims_rc(&pol, "{\"iss\":\"https://idp\",\"aud\":[\"herald\",1]}"), -JWT_EMALFORMED);
    CHECK_EQ(claims_rc(&pol, "{\"iss\":\"https://idp\",\"aud\":{\"herald\":1}}"), -JWT_EMALFORMED);
    pol.issuer = "";
    pol.audience = NULL;
    CHECK_EQ(claims_rc(&pol, "{\"iss\":5,\"aud\":5}"), 0); /* not checked, so not looked at */
    gp_release();
}

TEST(truncated_and_too_long)
{
    jwt_keys_t *ks = hmac_keys();
    char err[200];
    CHECK_EQ(jwt_keys_add_jwks(ks, fx.jwks, strlen(fx.jwks), err, sizeof(err)), 5);
    static const jwt_alg_t algs[] = {JWT_HS256, JWT_RS256, JWT_PS512, JWT_ES256, JWT_ES384, JWT_EDDSA};
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        char *t = sign(algs[i], NULL, "{\"sub\":\"alice\",\"exp\":1700000100,\"aud\":[\"x\"]}");
        size_t n = strlen(t);
        CHECK_EQ(vern(ks, &POL, t, n), 0);
        int accepted = 0;
        for (size_t k = 0; k < n; k++) accepted += vern(ks, &POL, t, k) == 0;
        CHECK_EQ(accepted, 0);
        jwt_policy_t pol = POL;
        pol.max_len = n - 1;
        CHECK_EQ(ver(ks, &pol, t), -JWT_ETOOLONG);
        pol.max_len = n;
        CHECK_EQ(ver(ks, &pol, t), 0);
        free(t);
        gp_release();
    }
    /* default limit: 8192 */
    char pad[6301], big[7000];
    memset(pad, 'A', 6300);
    pad[6300] = '\0';
    snprintf(big, sizeof(big), "{\"pad\":\"%s\"}", pad);
    char *t = hs256(HS_HDR, big);
    CHECK_EQ(ver(ks, &POL, t), -JWT_ETOOLONG);
    CHECK(strlen(t) > 8192);
    free(t);
    jwt_result_t r;
    const char *why;
    CHECK_EQ(jwt_verify(ks, &POL, "", 0, &r, &why), -JWT_EMALFORMED);
    jwt_keys_free(ks);
    gp_release();
}

TEST(malformed_tokens)
{
    jwt_keys_t *ks = hmac_keys();
    char *good = hs256(HS_HDR, "{\"sub\":\"a\"}"), t[1024];
    char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
    int hl = (int)(d1 - good), pl = (int)(d2 - d1 - 1);
    CHECK_EQ(ver(ks, &POL, good), 0);
    /* base64url damage in each part */
    snprintf(t, sizeof(t), "%.*s=.%.*s%s", hl, good, pl, d1 + 1, d2);
    CHECK_EQ(ver(ks, &POL, t), -JWT_EMALFORMED);
    snprintf(t, sizeof(t), "%.*s.%.*s==%s", hl, good, pl, d1 + 1, d2);
    CHECK_EQ(ver(ks, &POL, t), -JWT_EMALFORMED);
    snprintf(t, sizeof(t), "%s=", good);
    CHECK_EQ(ver(ks, &POL, t), -JWT_EMALFORMED);
    snprintf(t, sizeof(t), "%s", good);
    t[hl + 2] = '+';
    CHECK_EQ(ver(ks, &POL, t), -JWT_EMALFORMED);
    snprintf(t, sizeof(t), "%s", good);
    t[d2 - good + 3] = '/';
    CHECK_EQ(ver(ks, &POL, t), -JWT_EMALFORMED);
    snprintf(t, sizeof(t), "%sA", good); /* 43 + 1 = 44 chars: too long a tag */
    CHECK_EQ(ver(ks, &POL, t), -JWT_ESIG);
    snprintf(t, sizeof(t), "%sAA", good); /* 45 chars: length 1 mod 4 */
    CHECK_EQ(ver(ks, &POL, t), -JWT_EMALFORMED);
    snprintf(t, sizeof(t), "%.*s.%.*sA%s", hl, good, pl, d1 + 1, d2);
    CHECK(ver(ks, &POL, t) == -JWT_EMALFORMED || ver(ks, &POL, t) == -JWT_ESIG);
    snprintf(t, sizeof(t), " %s", good);
    CHECK_EQ(ver(ks, &POL, t), -JWT_EMALFORMED);
    snprintf(t, sizeof(t), "%s.", good); /* four parts */
    CHECK_EQ(ver(ks, &POL, t), -JWT_EMALFORMED);
    snprintf(t, sizeof(t), "%.*s..%s", hl, good, d2 + 1);
    CHECK(ver(ks, &POL, t) < 0);
    CHECK_EQ(ver(ks, &POL, "."), -JWT_EMALFORMED);
    CHECK_EQ(ver(ks, &POL, ".."), -JWT_EMALFORMED);
    CHECK_EQ(ver(ks, &POL, "abc"), -JWT_EMALFORMED);
    /* headers, each signed correctly */
    static const struct {
        const char *hdr;
        int rc;
    } H[] = {
        {"{\"alg\":\"HS256\"}", 0},
        {"{\"alg\":\"HS256\",\"typ\":\"jwt\"}", 0},
        {"{\"alg\":\"HS256\",\"kid\":null}", -JWT_EMALFORMED},
        {"{\"alg\":\"HS256\",\"typ\":\"foo\"}", -JWT_EMALFORMED},
        {"{\"alg\":\"HS256\",\"typ\":7}", -JWT_EMALFORMED},
        {"{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", -JWT_EMALFORMED},
        {"{\"alg\":\"HS256\",\"b64\":false,\"crit\":[\"b64\"]}", -JWT_EMALFORMED},
        {"{\"alg\":\"HS256\",\"alg\":\"HS256\"}", -JWT_EMALFORMED},
        {"{\"alg\":\"HS256\",\"x\":\"a\\u0000b\"}", -JWT_EMALFORMED},
        {"{\"alg\":\"HS256\"", -JWT_EMALFORMED},
        {"{\"alg\":\"HS256\"} ", 0},
        {"{\"alg\":\"HS256\"}x", -JWT_EMALFORMED},
        {"[\"HS256\"]", -JWT_EMALFORMED},
        {"\"HS256\"", -JWT_EMALFORMED},
        {"{}", -JWT_EMALFORMED},
        {"{\"alg\":256}", -JWT_EMALFORMED},
        {"", -JWT_EMALFORMED},
        {"{\"alg\":\"HS256\",\"kid\":5}", -JWT_EMALFORMED},
        {"{\"alg\":\"HS256\xff\"}", -JWT_EMALFORMED},
    };
    for (size_t i = 0; i < sizeof(H) / sizeof(H[0]); i++) {
        char *x = hs256(H[i].hdr, "{\"sub\":\"a\"}");
        int rc = ver(ks, &POL, x);
        if (rc != H[i].rc) printf("#   header %zu: %d\n", i, rc);
        CHECK_EQ(rc, H[i].rc);
        free(x);
    }
    /* a raw NUL byte inside the header JSON */
    static const char nulhdr[] = "{\"alg\":\"HS256\",\"x\":\"a\0b\"}";
    char *x = hs256_raw(nulhdr, sizeof(nulhdr) - 1, "{}", 2);
    CHECK_EQ(ver(ks, &POL, x), -JWT_EMALFORMED);
    free(x);
    /* payloads, each signed correctly */
    static const char *P[] = {"", "{", "[]", "\"s\"", "1", "{\"a\":1,\"a\":2}", "{\"a\":\"\\u0000\"}", "null"};
    for (size_t i = 0; i < sizeof(P) / sizeof(P[0]); i++) {
        x = hs256(HS_HDR, P[i]);
        CHECK_EQ(ver(ks, &POL, x), -JWT_EMALFORMED);
        free(x);
    }
    free(good);
    jwt_keys_free(ks);
    gp_release();
}

TEST(restrict_algorithms)
{
    jwt_keys_t *ks = hmac_keys();
    char err[200];
    CHECK_EQ(jwt_keys_add_pem(ks, fx.p256_pub, strlen(fx.p256_pub), NULL, err, sizeof(err)), 1);
    char *hs = sign(JWT_HS256, NULL, "{}"), *es = sign(JWT_ES256, NULL, "{}");
    CHECK_EQ(ver(ks, &POL, hs), 0);
    CHECK_EQ(ver(ks, &POL, es), 0);
    jwt_keys_restrict(ks, JWT_ALG_BIT(JWT_ES256));
    CHECK_EQ(ver(ks, &POL, hs), -JWT_EALG);
    CHECK_EQ(ver(ks, &POL, es), 0);
    jwt_keys_restrict(ks, JWT_ALGS_HMAC); /* narrowing only: nothing is left */
    CHECK_EQ(ver(ks, &POL, hs), -JWT_EALG);
    CHECK_EQ(ver(ks, &POL, es), -JWT_EALG);
    CHECK_EQ(jwt_keys_count(ks), 2);
    free(hs), free(es);
    jwt_keys_free(ks);
    /* an empty key set */
    ks = jwt_keys_new();
    hs = sign(JWT_HS256, NULL, "{}");
    CHECK_EQ(ver(ks, &POL, hs), -JWT_EALG);
    free(hs);
    jwt_keys_free(ks);
    gp_release();
}

TEST(sign_errors)
{
    char err[200];
    CHECK(jwt_sign(JWT_HS256, "short", 5, NULL, "{}", err, sizeof(err)) == NULL);
    CHECK(jwt_sign(JWT_HS256, SECRET, strlen(SECRET), NULL, "[]", err, sizeof(err)) == NULL);
    CHECK(jwt_sign(JWT_HS256, SECRET, strlen(SECRET), NULL, "{\"a\":1,\"a\":1}", err, sizeof(err)) == NULL);
    CHECK(jwt_sign(JWT_HS256, SECRET, strlen(SECRET), NULL, NULL, err, sizeof(err)) == NULL);
    CHECK(jwt_sign(JWT_ALG_COUNT, SECRET, strlen(SECRET), NULL, "{}", err, sizeof(err)) == NULL);
    CHECK(jwt_sign(JWT_RS256, fx.p256_priv, strlen(fx.p256_priv), NULL, "{}", err, sizeof(err)) == NULL);
    CHECK(jwt_sign(JWT_ES384, fx.p256_priv, strlen(fx.p256_priv), NULL, "{}", err, sizeof(err)) == NULL);
    CHECK(jwt_sign(JWT_EDDSA, fx.rsa_priv, strlen(fx.rsa_priv), NULL, "{}", err, sizeof(err)) == NULL);
    CHECK(jwt_sign(JWT_ES256, fx.p256_pub, strlen(fx.p256_pub), NULL, "{}", err, sizeof(err)) == NULL);
    /* an encrypted private key is refused without prompting */
    BIO *b = BIO_new(BIO_s_mem());
    CHECK(PEM_write_bio_PKCS8PrivateKey(b, fx.p256, EVP_aes_128_cbc(), NULL, 0, NULL, (void *)"pass-word"));
    char *enc = bio_text(b);
    CHECK(jwt_sign(JWT_ES256, enc, strlen(enc), NULL, "{}", err, sizeof(err)) == NULL);
    free(enc);
    /* defaults by key type */
    CHECK_EQ(jwt_pem_default_alg(fx.rsa_priv, strlen(fx.rsa_priv), err, sizeof(err)), JWT_RS256);
    CHECK_EQ(jwt_pem_default_alg(fx.p256_priv, strlen(fx.p256_priv), err, sizeof(err)), JWT_ES256);
    CHECK_EQ(jwt_pem_default_alg(fx.p384_priv, strlen(fx.p384_priv), err, sizeof(err)), JWT_ES384);
    CHECK_EQ(jwt_pem_default_alg(fx.ed_priv, strlen(fx.ed_priv), err, sizeof(err)), JWT_EDDSA);
    CHECK_EQ(jwt_pem_default_alg(fx.ed_pub, strlen(fx.ed_pub), err, sizeof(err)), -1);
    /* the minted header */
    char *t = jwt_sign(JWT_HS256, SECRET, strlen(SECRET), "k\"1", "{\"sub\":\"a\"}", err, sizeof(err));
    unsigned char hdr[128];
    long hn = jwt_b64url_decode(t, (size_t)(strchr(t, '.') - t), hdr, sizeof(hdr));
    CHECK_MEM(hdr, (size_t)hn, "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k\\\"1\"}");
    free(t);
}

int main(void)
{
    fx.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    fx.p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    fx.p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    fx.ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!fx.rsa || !fx.p256 || !fx.p384 || !fx.ed) abort();
    fx.rsa_pub = pem_pub(fx.rsa), fx.rsa_priv = pem_priv(fx.rsa);
    fx.p256_pub = pem_pub(fx.p256), fx.p256_priv = pem_priv(fx.p256);
    fx.p384_pub = pem_pub(fx.p384), fx.p384_priv = pem_priv(fx.p384);
    fx.ed_pub = pem_pub(fx.ed), fx.ed_priv = pem_priv(fx.ed);
    char *j[5] = {jwk(fx.rsa, "rsa", ""), jwk(fx.p256, "p256", ""), jwk(fx.p384, "p384", ""), jwk(fx.ed, "ed", ""),
                  jwk(NULL, "hs", "")};
    fx.jwks = malloc(16384);
    snprintf(fx.jwks, 16384, "{\"keys\":[%s,%s,%s,%s,%s]}", j[0], j[1], j[2], j[3], j[4]);
    for (int i = 0; i < 5; i++) free(j[i]);

    RUN(b64url_strict);
    RUN(alg_names);
    RUN(rfc7515_hs256_vector);
    RUN(roundtrip_pem_every_alg);
    RUN(roundtrip_jwks_every_alg);
    RUN(kid_selection);
    RUN(jwks_loading);
    RUN(pem_loading);
    RUN(attack_flipped_signature);
    RUN(attack_alg_none);
    RUN(attack_key_confusion);
    RUN(time_claims_and_leeway);
    RUN(issuer_and_audience);
    RUN(truncated_and_too_long);
    RUN(malformed_tokens);
    RUN(restrict_algorithms);
    RUN(sign_errors);

    EVP_PKEY_free(fx.rsa), EVP_PKEY_free(fx.p256), EVP_PKEY_free(fx.p384), EVP_PKEY_free(fx.ed);
    free(fx.rsa_pub), free(fx.rsa_priv), free(fx.p256_pub), free(fx.p256_priv);
    free(fx.p384_pub), free(fx.p384_priv), free(fx.ed_pub), free(fx.ed_priv), free(fx.jwks);
    return UNIT_DONE();
}
