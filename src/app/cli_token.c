/* cli_token.c - `herald token`: mints a signed token (src/auth/jwt.h) for development and tests.
 *
 * Arguments are split in two: this command's own options (--sub, --subscribe, --publish, --ttl,
 * --alg, --private-key, --kid, --claim, --help; "--opt value" or "--opt=value") and everything
 * else, which must be configuration ("-c FILE", "--config FILE", "--KEY VALUE") and is handed to
 * cfg_from_args unchanged, so the token matches what `herald serve` with the same arguments
 * expects. From the configuration it uses token_hmac_secret (else the file
 * token_hmac_secret_file, trailing CR/LF removed), token_issuer and token_audience.
 *
 * Claims: {"sub", "iat": now, "exp": now + ttl, ["iss"], ["aud"], ["herald": {"subscribe": [...],
 * "publish": [...]}] (only when a pattern was given), then each --claim NAME=JSON in order
 * (which may replace any of the former)}. The algorithm is HS256 with the HMAC secret; with
 * --private-key it follows the key type (RS256, ES256, ES384, EdDSA) unless --alg says otherwise.
 *
 * Exit codes: 0 printed; 1 cannot sign (no key configured, unreadable or unsuitable key, short
 * secret); 2 usage (unknown option, bad value, bad configuration). The secret is never printed
 * and is wiped from memory before returning. */
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../auth/acl.h"
#include "../auth/auth.h"
#include "../auth/jwt.h"
#include "cli.h"
#include "config.h"

#define SUB_MAX 128

static const char USAGE[] =
    "usage: herald token [-c herald.conf] [--KEY VALUE ...] --sub USER [--subscribe PATTERN]...\n"
    "                    [--publish PATTERN]... [--ttl DURATION] [--alg ALG] [--kid KID]\n"
    "                    [--private-key PEM_FILE] [--claim NAME=JSON]...\n"
    "  --sub USER            the token's \"sub\" (required; 1-128 of A-Z a-z 0-9 _ - . ~ : @ = !)\n"
    "  --subscribe PATTERN   grant subscribe on PATTERN (repeatable; claim \"herald\")\n"
    "  --publish PATTERN     grant publish on PATTERN (repeatable)\n"
    "  --ttl DURATION        lifetime: 30, 30s, 15m, 1h, 7d (default 1h)\n"
    "  --alg ALG             HS256 HS384 HS512 RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA\n"
    "                        (default HS256, or by the --private-key type)\n"
    "  --private-key FILE    sign with this PEM private key instead of token_hmac_secret\n"
    "  --kid KID             the header's \"kid\"\n"
    "  --claim NAME=JSON     an extra claim with a JSON value (repeatable)\n"
    "The HMAC secret comes from token_hmac_secret or token_hmac_secret_file; \"iss\" and \"aud\"\n"
    "from token_issuer and token_audience.\n";

typedef struct {
    const char *sub, *ttl, *alg, *private_key, *kid;
    json_t *subscribe, *publish; /* arrays of strings */
    json_t *extra;               /* object of --claim values */
} opts_t;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("herald token: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n(see herald token --help)\n", stderr);
    va_end(ap);
    return 2;
}

/* Parses "30", "30s", "15m", "1h", "7d" into seconds (> 0). Returns false when malformed. */
static bool parse_ttl(const char *s, int64_t *out)
{
    int64_t v = 0, mult = 1;
    size_t i = 0;
    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > (INT64_MAX - 9) / 10) return false;
        v = v * 10 + (s[i] - '0');
    }
    if (i == 0) return false;
    if (s[i]) {
        switch (s[i]) {
        case 's': mult = 1; break;
        case 'm': mult = 60; break;
        case 'h': mult = 3600; break;
        case 'd': mult = 86400; break;
        default: return false;
        }
        if (s[i + 1]) return false;
    }
    if (v == 0 || v > INT64_MAX / mult / 2) return false;
    *out = v * mult;
    return true;
}

static int own_option(opts_t *o, const char *name, const char *val)
{
    if (strcmp(name, "sub") == 0) {
        o->sub = val;
    } else if (strcmp(name, "subscribe") == 0 || strcmp(name, "publish") == 0) {
        if (!*val) return usage_error("--%s: empty pattern", name);
        json_t *s = json_string(val);
        if (!s) return usage_error("--%s: pattern is not UTF-8", name);
        json_array_append_new(name[0] == 's' ? o->subscribe : o->publish, s);
    } else if (strcmp(name, "ttl") == 0) {
        o->ttl = val;
    } else if (strcmp(name, "alg") == 0) {
        o->alg = val;
    } else if (strcmp(name, "private_key") == 0) {
        o->private_key = val;
    } else if (strcmp(name, "kid") == 0) {
        o->kid = val;
    } else { /* claim */
        const char *eq = strchr(val, '=');
        if (!eq || eq == val) return usage_error("--claim %s: want NAME=JSON", val);
        json_error_t je;
        json_t *v = json_loads(eq + 1, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
        if (!v) return usage_error("--claim: the value of %s is not JSON", val);
        char name_buf[256];
        if ((size_t)(eq - val) >= sizeof(name_buf)) {
            json_decref(v);
            return usage_error("--claim: name too long");
        }
        memcpy(name_buf, val, (size_t)(eq - val));
        name_buf[eq - val] = '\0';
        if (json_object_set_new(o->extra, name_buf, v) < 0) return usage_error("--claim: bad name %s", name_buf);
    }
    return 0;
}

/* Splits argv into own options (into o) and configuration arguments (into cargv/ *cargc).
 * Returns 0, -1 after --help was printed, or a usage exit code. */
static int split_args(int argc, char **argv, opts_t *o, char **cargv, int *cargc)
{
    static const char *const OWN[] = {"sub", "subscribe", "publish", "ttl", "alg", "private_key", "kid", "claim"};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(USAGE, stdout);
            return -1;
        }
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) return usage_error("%s: missing file name", a);
            cargv[(*cargc)++] = argv[i++];
            cargv[(*cargc)++] = argv[i];
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || !a[2]) return usage_error("%s: unexpected argument", a);
        const char *eq = strchr(a + 2, '=');
        size_t nlen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        char name[32] = "";
        if (nlen < sizeof(name))
            for (size_t k = 0; k < nlen; k++) name[k] = a[2 + k] == '-' ? '_' : a[2 + k];
        bool own = false;
        for (size_t k = 0; k < sizeof(OWN) / sizeof(OWN[0]); k++) own |= strcmp(name, OWN[k]) == 0;
        if (!own) { /* configuration: "--key=value" or "--key value", checked by cfg_from_args */
            cargv[(*cargc)++] = argv[i];
            if (!eq && i + 1 < argc) cargv[(*cargc)++] = argv[++i];
            continue;
        }
        if (!eq && i + 1 >= argc) return usage_error("%s: missing value", a);
        int rc = own_option(o, name, eq ? eq + 1 : argv[++i]);
        if (rc) return rc;
    }
    return 0;
}

/* Loads the signing key: the PEM file, or the configured HMAC secret. Returns 0, or an exit code
 * after printing why. *alg is resolved when it was -1. */
static int load_key(const opts_t *o, const cfg_t *cfg, int *alg, char **key, size_t *keylen)
{
    char err[256];
    if (o->private_key) {
        if (*alg >= 0 && *alg <= JWT_HS512)
            return usage_error("--alg %s signs with the HMAC secret, not --private-key", o->alg);
        if (!(*key = auth_read_file(o->private_key, keylen, err, sizeof(err)))) {
            fprintf(stderr, "herald token: %s\n", err);
            return 1;
        }
        if (*alg < 0 && (*alg = jwt_pem_default_alg(*key, *keylen, err, sizeof(err))) < 0) {
            fprintf(stderr, "herald token: %s: %s\n", o->private_key, err);
            return 1;
        }
        return 0;
    }
    if (*alg < 0) *alg = JWT_HS256;
    if (*alg > JWT_HS512) return usage_error("--alg %s needs --private-key", o->alg);
    if (cfg->token_hmac_secret[0]) {
        *keylen = strlen(cfg->token_hmac_secret);
        *key = malloc(*keylen + 1);
        if (!*key) return 1;
        memcpy(*key, cfg->token_hmac_secret, *keylen + 1);
    } else if (cfg->token_hmac_secret_file[0]) {
        if (!(*key = auth_read_secret_file(cfg->token_hmac_secret_file, keylen, err, sizeof(err)))) {
            fprintf(stderr, "herald token: %s\n", err);
            return 1;
        }
    } else {
        fputs("herald token: no key: set token_hmac_secret or token_hmac_secret_file, or use --private-key\n",
              stderr);
        return 1;
    }
    return 0;
}

/* Builds the claims object. Returns NULL on a failure already reported. */
static json_t *build_claims(const opts_t *o, const cfg_t *cfg, int64_t ttl)
{
    int64_t now = (int64_t)time(NULL);
    json_t *c = json_object();
    if (!c) return NULL;
    json_object_set_new(c, "sub", json_string(o->sub));
    json_object_set_new(c, "iat", json_integer(now));
    json_object_set_new(c, "exp", json_integer(now + ttl));
    if (cfg->token_issuer[0]) json_object_set_new(c, "iss", json_string(cfg->token_issuer));
    if (cfg->token_audience[0]) json_object_set_new(c, "aud", json_string(cfg->token_audience));
    if (json_array_size(o->subscribe) || json_array_size(o->publish))
        json_object_set_new(c, "herald", json_pack("{s:O, s:O}", "subscribe", o->subscribe, "publish", o->publish));
    const char *name;
    json_t *v;
    json_object_foreach(o->extra, name, v) json_object_set(c, name, v);
    return c;
}

int cli_token(int argc, char **argv)
{
    opts_t o = {.ttl = "1h", .subscribe = json_array(), .publish = json_array(), .extra = json_object()};
    char **cargv = calloc((size_t)argc + 1, sizeof(char *));
    cfg_t *cfg = malloc(sizeof(cfg_t));
    char *key = NULL, *claims_text = NULL, *tok = NULL;
    size_t keylen = 0;
    json_t *claims = NULL;
    int cargc = 0, rc = 1;
    int64_t ttl = 0;
    if (!o.subscribe || !o.publish || !o.extra || !cargv || !cfg) {
        fputs("herald token: out of memory\n", stderr);
        goto done;
    }
    rc = split_args(argc, argv, &o, cargv, &cargc);
    if (rc) {
        rc = rc < 0 ? 0 : rc;
        goto done;
    }
    char err[512];
    cfg_defaults(cfg);
    if (cfg_from_args(cfg, cargc, cargv, err, sizeof(err)) < 0) {
        rc = usage_error("%s", err);
        goto done;
    }
    rc = 2;
    if (!o.sub) {
        usage_error("--sub USER is required");
        goto done;
    }
    if (!acl_sub_valid(o.sub, strlen(o.sub))) {
        usage_error("--sub %s: want 1-128 of A-Z a-z 0-9 _ - . ~ : @ = !", o.sub);
        goto done;
    }
    if (!parse_ttl(o.ttl, &ttl)) {
        usage_error("--ttl %s: want N, Ns, Nm, Nh or Nd (N > 0)", o.ttl);
        goto done;
    }
    int alg = o.alg ? jwt_alg_parse(o.alg, strlen(o.alg)) : -1;
    if (o.alg && alg < 0) {
        usage_error("--alg %s: unknown algorithm", o.alg);
        goto done;
    }
    if ((rc = load_key(&o, cfg, &alg, &key, &keylen)) != 0) goto done;
    rc = 1;
    if (!(claims = build_claims(&o, cfg, ttl)) ||
        !(claims_text = json_dumps(claims, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
        fputs("herald token: cannot build the claims\n", stderr);
        goto done;
    }
    if (!(tok = jwt_sign((jwt_alg_t)alg, key, keylen, o.kid, claims_text, err, sizeof(err)))) {
        fprintf(stderr, "herald token: cannot sign %s: %s\n", jwt_alg_name((jwt_alg_t)alg), err);
        goto done;
    }
    if (printf("%s\n", tok) < 0 || fflush(stdout) != 0) {
        fputs("herald token: cannot write the token\n", stderr);
        goto done;
    }
    rc = 0;
done:
    if (key) {
        explicit_bzero(key, keylen);
        free(key);
    }
    if (cfg) {
        explicit_bzero(cfg->token_hmac_secret, sizeof(cfg->token_hmac_secret));
        free(cfg);
    }
    free(tok);
    free(claims_text);
    free(cargv);
    json_decref(claims);
    json_decref(o.subscribe);
    json_decref(o.publish);
    json_decref(o.extra);
    return rc;
}
