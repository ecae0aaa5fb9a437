/* auth.c - identities and permission checks; see auth.h.
 *
 * The token cache is a ring of token_cache_size entries in insertion order, indexed by the seeded
 * hash map of core/hmap.h: an insert into a full ring evicts the oldest entry. An entry is the SHA-256 of
 * the token and a reference to its identity; a hit on an expired identity counts as expired
 * (the token would fail verification the same way). */
#include "auth.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "../core/err.h"
#include "../core/hmap.h"
#include "../core/list.h"
#include "../core/log.h"
#include "../core/span.h"

#define AUTH_MAX_FILE (16u << 20)
#define AUTH_MAX_CLAIM_PATTERNS 64
#define AUTH_MIN_API_KEY 16

typedef struct {
    hmap_node_t node; /* in the cache's index, keyed by h */
    uint8_t h[32];
    auth_id_t *id;
} auth_ent_t;

struct auth_cache {
    uint32_t cap, count, head;
    bool full_logged;
    hmap_t index;
    auth_ent_t *e;
};

static int64_t auth__now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* SHA-256 with the digest fetched once and one reused context: no allocation per call (a
 * per-call EVP_Digest costs heap churn on every connection that presents a credential). */
static void auth__sha256(auth_t *a, const void *p, size_t n, uint8_t out[32])
{
    unsigned int len = 32;
    if (a->md && a->mdctx && EVP_DigestInit_ex(a->mdctx, a->md, NULL) == 1 && EVP_DigestUpdate(a->mdctx, p, n) == 1 &&
        EVP_DigestFinal_ex(a->mdctx, out, &len) == 1)
        return;
    EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

/* Reads a whole file (at most AUTH_MAX_FILE bytes) into a NUL-terminated malloc'd buffer of its
 * own size (a 16 MiB scratch buffer would raise glibc's mmap threshold for the server's life). */
char *auth_read_file(const char *path, size_t *len, char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    const char *why = NULL;
    if (fstat(fileno(f), &st) < 0) why = strerror(errno);
    else if (!S_ISREG(st.st_mode)) why = "not a regular file";
    else if (st.st_size > (off_t)AUTH_MAX_FILE) why = "larger than 16 MiB";
    if (why) {
        snprintf(err, cap, "%s: %s", path, why);
        fclose(f);
        return NULL;
    }
    size_t want = (size_t)st.st_size;
    char *buf = malloc(want + 1);
    size_t n = buf ? fread(buf, 1, want + 1, f) : 0;
    bool bad = ferror(f) != 0 || n > want;
    fclose(f);
    if (!buf || bad) {
        snprintf(err, cap, "%s: %s", path, !buf ? "out of memory" : "read error (changed while read?)");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

char *auth_read_secret_file(const char *path, size_t *len, char *err, size_t cap)
{
    char *text = auth_read_file(path, len, err, cap);
    while (text && *len && (text[*len - 1] == '\n' || text[*len - 1] == '\r')) text[--*len] = 0;
    return text;
}

/* ---- the token cache ---- */

static bool auth__ent_eq(const hmap_node_t *n, const void *key, size_t len)
{
    return len == 32 && memcmp(container_of(n, auth_ent_t, node)->h, key, 32) == 0;
}

static auth_cache_t *auth__cache_new(uint32_t cap)
{
    if (!cap) return NULL;
    auth_cache_t *c = calloc(1, sizeof(*c));
    if (!c || !(c->e = calloc(cap, sizeof(*c->e))) || hmap_init(&c->index, 16, auth__ent_eq) < 0) {
        if (c) free(c->e);
        free(c);
        return NULL;
    }
    c->cap = cap;
    return c;
}

static auth_id_t *auth__cache_get(auth_cache_t *c, const uint8_t h[32])
{
    hmap_node_t *n = c ? hmap_get(&c->index, h, 32) : NULL;
    return n ? container_of(n, auth_ent_t, node)->id : NULL;
}

static void auth__cache_put(auth_cache_t *c, const uint8_t h[32], auth_id_t *id)
{
    if (!c) return;
    uint32_t slot;
    if (c->count == c->cap) { /* evict the oldest */
        if (!c->full_logged)
            log_info("auth: token cache full (token_cache_size %u): the oldest verified tokens are forgotten "
                     "(verified again when they come back)", c->cap);
        c->full_logged = true;
        slot = c->head;
        auth_ent_t *old = &c->e[slot];
        hmap_remove(&c->index, &old->node);
        auth_unref(old->id);
        c->head = (c->head + 1) % c->cap;
    } else {
        slot = (c->head + c->count) % c->cap;
        c->count++;
    }
    auth_ent_t *e = &c->e[slot];
    memcpy(e->h, h, 32);
    e->id = auth_ref(id);
    hmap_insert(&c->index, &e->node, hmap_hash(&c->index, h, 32));
}

static void auth__cache_free(auth_cache_t *c)
{
    if (!c) return;
    for (uint32_t k = 0; k < c->count; k++) auth_unref(c->e[(c->head + k) % c->cap].id);
    free(c->e);
    hmap_free(&c->index);
    free(c);
}

/* ---- set-up ---- */

/* Adds the API keys in text (separated by spaces, commas or newlines; '#' starts a comment line
 * when read from a file). */
static int auth__add_keys(auth_t *a, const char *text, bool file, char *err, size_t cap)
{
    const char *p = text;
    while (*p) {
        if (file && *p == '#') {
            while (*p && *p != '\n') p++;
            continue;
        }
        if (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n' || *p == '\r') {
            p++;
            continue;
        }
        const char *e = p;
        while (*e && *e != ' ' && *e != ',' && *e != '\t' && *e != '\n' && *e != '\r') e++;
        size_t n = (size_t)(e - p);
        if (n < AUTH_MIN_API_KEY) {
            snprintf(err, cap, "api key %u is too short (at least %d bytes)", a->nkeys + 1, AUTH_MIN_API_KEY);
            return HR_EINVAL;
        }
        uint8_t(*d)[32] = realloc(a->key_digests, (a->nkeys + 1) * sizeof(*d));
        if (!d) {
            snprintf(err, cap, "out of memory");
            return HR_EINVAL;
        }
        a->key_digests = d;
        auth__sha256(a, p, n, d[a->nkeys++]);
        p = e;
    }
    return 0;
}

static int auth__algorithms(const char *list, uint32_t *mask, char *err, size_t cap)
{
    *mask = 0;
    span_t name;
    while (span_list_next(&list, &name)) {
        int alg = jwt_alg_parse(name.p, name.n);
        if (alg < 0) {
            snprintf(err, cap, "token_algorithms: unknown algorithm '%.*s'", (int)name.n, name.p);
            return HR_EINVAL;
        }
        *mask |= JWT_ALG_BIT(alg);
    }
    return 0;
}

static int auth__keys(auth_t *a, const cfg_t *cfg, char *err, size_t cap)
{
    char sub[400];
    bool any = cfg->token_hmac_secret[0] || cfg->token_hmac_secret_file[0] || cfg->token_public_key[0] ||
               cfg->token_jwks_file[0];
    if (!any) return 0;
    if (!(a->keys = jwt_keys_new())) goto oom;
    if (cfg->token_hmac_secret[0] &&
        jwt_keys_add_hmac(a->keys, cfg->token_hmac_secret, strlen(cfg->token_hmac_secret), NULL, sub, sizeof(sub)) < 0) {
        snprintf(err, cap, "token_hmac_secret: %s", sub);
        return HR_EINVAL;
    }
    size_t n;
    char *text;
    if (cfg->token_hmac_secret_file[0]) {
        if (!(text = auth_read_secret_file(cfg->token_hmac_secret_file, &n, sub, sizeof(sub)))) goto file;
        int rc = jwt_keys_add_hmac(a->keys, text, n, NULL, sub, sizeof(sub));
        OPENSSL_cleanse(text, n);
        free(text);
        if (rc < 0) goto file;
    }
    if (cfg->token_public_key[0]) {
        if (!(text = auth_read_file(cfg->token_public_key, &n, sub, sizeof(sub)))) goto file;
        int rc = jwt_keys_add_pem(a->keys, text, n, NULL, sub, sizeof(sub));
        free(text);
        if (rc < 0) {
            snprintf(err, cap, "token_public_key %s: %s", cfg->token_public_key, sub);
            return HR_EINVAL;
        }
    }
    if (cfg->token_jwks_file[0]) {
        if (!(text = auth_read_file(cfg->token_jwks_file, &n, sub, sizeof(sub)))) goto file;
        int rc = jwt_keys_add_jwks(a->keys, text, n, sub, sizeof(sub));
        free(text);
        if (rc < 0) {
            snprintf(err, cap, "token_jwks_file %s: %s", cfg->token_jwks_file, sub);
            return HR_EINVAL;
        }
    }
    if (cfg->token_algorithms[0]) {
        uint32_t mask;
        if (auth__algorithms(cfg->token_algorithms, &mask, err, cap) < 0) return HR_EINVAL;
        jwt_keys_restrict(a->keys, mask);
    }
    return 0;
file:
    snprintf(err, cap, "%s", sub);
    return HR_EINVAL;
oom:
    snprintf(err, cap, "out of memory");
    return HR_EINVAL;
}

static void auth__fixed(auth_t *a, auth_id_t *id, auth_kind_t kind, bool any)
{
    memset(id, 0, sizeof(*id));
    id->refs = 1;
    id->fixed = true;
    id->kind = kind;
    id->any_sub = id->any_pub = any;
    id->auth = a;
}

int auth_init(auth_t *a, const cfg_t *cfg, char *err, size_t cap)
{
    memset(a, 0, sizeof(*a));
    a->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    a->mdctx = EVP_MD_CTX_new();
    char sub[400];
    int rc = auth__keys(a, cfg, err, cap);
    if (rc < 0) goto fail;
    a->policy = (jwt_policy_t){.issuer = cfg->token_issuer,
                               .audience = cfg->token_audience,
                               .leeway_s = cfg->token_leeway_ms / 1000,
                               .max_len = cfg->token_max_length};
    if (cfg->api_keys[0] && (rc = auth__add_keys(a, cfg->api_keys, false, err, cap)) < 0) goto fail;
    size_t n;
    char *text;
    if (cfg->api_keys_file[0]) {
        if (!(text = auth_read_file(cfg->api_keys_file, &n, sub, sizeof(sub)))) goto file;
        rc = auth__add_keys(a, text, true, sub, sizeof(sub));
        OPENSSL_cleanse(text, n);
        free(text);
        if (rc < 0) goto file;
    }
    if (cfg->permissions_file[0]) {
        if (!(text = auth_read_file(cfg->permissions_file, &n, sub, sizeof(sub)))) goto file;
        rc = acl_rules_parse(&a->rules, text, n, sub, sizeof(sub));
        free(text);
        if (rc < 0) {
            snprintf(err, cap, "permissions_file %s: %s", cfg->permissions_file, sub);
            rc = HR_EINVAL;
            goto fail;
        }
        a->have_rules = true;
    }
    if (cfg->password_file[0]) {
        if (!(text = auth_read_file(cfg->password_file, &n, sub, sizeof(sub)))) goto file;
        a->pw = passwd_parse(text, n, sub, sizeof(sub));
        OPENSSL_cleanse(text, n);
        free(text);
        if (!a->pw) {
            snprintf(err, cap, "password_file %s: %s", cfg->password_file, sub);
            rc = HR_EINVAL;
            goto fail;
        }
    }
    if (cfg->user_channel[0] && acl_list_add(&a->user_channel, cfg->user_channel, strlen(cfg->user_channel)) < 0) {
        snprintf(err, cap, "user_channel: '%s' is not a valid channel pattern", cfg->user_channel);
        rc = HR_EINVAL;
        goto fail;
    }
    /* every user may read the broadcast channel too */
    if (cfg->broadcast_channel[0] &&
        (strpbrk(cfg->broadcast_channel, "+#{}") ||
         acl_list_add(&a->user_channel, cfg->broadcast_channel, strlen(cfg->broadcast_channel)) < 0)) {
        snprintf(err, cap, "broadcast_channel: '%s' is not a channel name", cfg->broadcast_channel);
        rc = HR_EINVAL;
        goto fail;
    }
    a->certs = cfg->mqtt_cert_identity;
    a->enabled = a->keys || a->nkeys || a->have_rules || a->pw || a->certs;
    a->anon_any = !a->enabled || (cfg->allow_anonymous && !a->have_rules);
    if (cfg->token_cache_size && a->keys && !(a->cache = auth__cache_new(cfg->token_cache_size))) {
        snprintf(err, cap, "out of memory");
        rc = HR_EINVAL;
        goto fail;
    }
    auth__fixed(a, &a->open_id, AUTH_OPEN, true);
    if (a->nkeys && !(a->key_ids = calloc(a->nkeys, sizeof(*a->key_ids)))) {
        snprintf(err, cap, "out of memory");
        rc = HR_EINVAL;
        goto fail;
    }
    for (uint32_t i = 0; i < a->nkeys; i++) {
        auth__fixed(a, &a->key_ids[i], AUTH_KEY, true);
        a->key_ids[i].key_digest = a->key_digests[i];
    }
    auth__fixed(a, &a->anon_id, AUTH_ANON, a->anon_any);
    a->anon_id.file_user = a->have_rules ? &a->rules.anon : NULL;
    return 0;
file:
    snprintf(err, cap, "%s", sub);
    rc = HR_EINVAL;
fail:
    auth_close(a);
    return rc;
}

void auth_close(auth_t *a)
{
    auth__cache_free(a->cache); /* its references first, so that live counts only the others */
    a->cache = NULL;
    if (a->live) { /* a reference-counting bug: the sanitizer build (the test suite's) stops on it */
        log_error("auth: %llu references to identities still held at close", (unsigned long long)a->live);
#ifdef __SANITIZE_ADDRESS__
        abort();
#endif
    }
    EVP_MD_CTX_free(a->mdctx);
    a->mdctx = NULL;
    EVP_MD_free(a->md);
    a->md = NULL;
    auth__cache_free(a->cache);
    a->cache = NULL;
    jwt_keys_free(a->keys);
    a->keys = NULL;
    acl_rules_free(&a->rules);
    passwd_free(a->pw);
    a->pw = NULL;
    if (a->key_digests) OPENSSL_cleanse(a->key_digests, a->nkeys * sizeof(*a->key_digests));
    free(a->key_digests);
    a->key_digests = NULL;
    free(a->key_ids);
    a->key_ids = NULL;
    a->nkeys = 0;
    acl_list_free(&a->user_channel);
}

/* ---- identities ---- */

/* Every reference to an identity, fixed or not, is one of its auth_t's live ones: a generation
 * replaced by a reload lives exactly as long as a connection admitted with it. */
static uint32_t auth__nretired; /* retired generations not freed yet */

uint32_t auth_retired_live(void) { return auth__nretired; }

void auth_retire(auth_t *a)
{
    auth__cache_free(a->cache); /* its references go first */
    a->cache = NULL;
    a->retired = true;
    auth__nretired++;
    if (a->live) return;
    auth__nretired--;
    auth_close(a);
    free(a);
}

auth_id_t *auth_ref(auth_id_t *id)
{
    if (!id) return NULL;
    if (!id->fixed) id->refs++;
    ((auth_t *)id->auth)->live++;
    return id;
}

void auth_unref(auth_id_t *id)
{
    if (!id) return;
    auth_t *a = (auth_t *)id->auth;
    if (!id->fixed && !--id->refs) {
        acl_list_free(&id->sub);
        acl_list_free(&id->pub);
        free(id);
    }
    if (--a->live || !a->retired) return;
    auth__nretired--;
    auth_close(a);
    free(a);
}

auth_id_t *auth_anonymous(auth_t *a)
{
    a->live++;
    return a->enabled ? &a->anon_id : &a->open_id;
}

static auth_id_t *auth__user(auth_t *a, const char *sub, size_t n)
{
    auth_id_t *id = calloc(1, sizeof(*id));
    if (!id) return NULL;
    id->refs = 1;
    id->kind = AUTH_USER;
    id->auth = a;
    a->live++;
    memcpy(id->sub_id, sub, n);
    id->sub_id[n] = 0;
    id->sub_len = (uint16_t)n;
    if (a->have_rules) {
        id->file_user = &a->rules.user;
        id->file_id = acl_rules_find(&a->rules, sub, n);
    }
    return id;
}

/* Adds the patterns of claim array arr (NULL: none) to l. */
static bool auth__patterns(acl_list_t *l, json_t *arr)
{
    if (!arr) return true;
    if (!json_is_array(arr) || json_array_size(arr) > AUTH_MAX_CLAIM_PATTERNS) return false;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v) || acl_list_add(l, json_string_value(v), json_string_length(v)) < 0) return false;
    }
    return true;
}

static int auth__from_claims(auth_t *a, const jwt_result_t *r, auth_id_t **out, const char **why)
{
    json_t *sub = json_object_get(r->claims, "sub");
    if (!json_is_string(sub) || !acl_sub_valid(json_string_value(sub), json_string_length(sub))) {
        *why = "token sub missing or not usable as a channel level";
        return HR_EAUTH;
    }
    auth_id_t *id = auth__user(a, json_string_value(sub), json_string_length(sub));
    if (!id) {
        *why = "out of memory";
        return HR_EAUTH;
    }
    id->from_token = true;
    id->exp_ms = r->exp ? (r->exp + a->policy.leeway_s) * 1000 : 0;
    json_t *h = json_object_get(r->claims, "herald");
    if (h && !json_is_null(h) &&
        (!json_is_object(h) || !auth__patterns(&id->sub, json_object_get(h, "subscribe")) ||
         !auth__patterns(&id->pub, json_object_get(h, "publish")))) {
        auth_unref(id);
        *why = "token herald claim malformed (want subscribe and publish arrays of patterns)";
        return HR_EAUTH;
    }
    *out = id;
    return 0;
}

int auth_token(auth_t *a, const char *tok, size_t n, auth_id_t **out, const char **why)
{
    *out = NULL;
    if (!a->keys) {
        a->stats.tokens_bad++;
        *why = "tokens are not accepted (no token key configured)";
        return HR_EAUTH;
    }
    if (n > a->policy.max_len) {
        a->stats.tokens_bad++;
        *why = "token too long";
        return HR_EAUTH;
    }
    int64_t now = auth__now_ms();
    uint8_t h[32];
    auth__sha256(a, tok, n, h);
    auth_id_t *id = auth__cache_get(a->cache, h);
    if (id) {
        if (id->exp_ms && now >= id->exp_ms) {
            a->stats.tokens_bad++;
            *why = "token expired";
            return HR_EAUTH;
        }
        a->stats.cache_hits++;
        a->stats.tokens_ok++;
        *out = auth_ref(id);
        return 0;
    }
    jwt_policy_t pol = a->policy;
    pol.now_s = now / 1000;
    jwt_result_t r;
    int rc = jwt_verify(a->keys, &pol, tok, n, &r, why);
    if (rc < 0) {
        a->stats.tokens_bad++;
        return HR_EAUTH;
    }
    rc = auth__from_claims(a, &r, &id, why);
    json_decref(r.claims);
    if (rc < 0) {
        a->stats.tokens_bad++;
        return rc;
    }
    a->stats.tokens_ok++;
    auth__cache_put(a->cache, h, id);
    a->stats.cache_entries = a->cache ? a->cache->count : 0;
    *out = id;
    return 0;
}

int auth_bearer(auth_t *a, const char *cred, size_t n, auth_id_t **out, const char **why)
{
    if (a->nkeys && n >= AUTH_MIN_API_KEY) {
        uint8_t h[32];
        auth__sha256(a, cred, n, h);
        int hit = 0;
        uint32_t which = 0; /* every digest is compared: the time does not tell which key matched */
        for (uint32_t i = 0; i < a->nkeys; i++) {
            int eq = CRYPTO_memcmp(h, a->key_digests[i], 32) == 0;
            hit |= eq;
            which = eq ? i : which;
        }
        if (hit) {
            a->stats.keys_ok++;
            a->live++;
            *out = &a->key_ids[which];
            return 0;
        }
    }
    if (!a->keys) {
        a->stats.keys_bad++;
        *out = NULL;
        *why = a->nkeys ? "unknown API key" : "credentials are not accepted (no auth configured)";
        return HR_EAUTH;
    }
    return auth_token(a, cred, n, out, why);
}

/* A JWS compact token has exactly two dots. */
static bool auth__looks_like_token(const char *p, size_t n)
{
    int dots = 0;
    for (size_t i = 0; i < n; i++) dots += p[i] == '.';
    return dots == 2 && n > 10;
}

int auth_login(auth_t *a, const char *user, size_t un, const char *pass, size_t pn, auth_id_t **out,
               const char **why)
{
    *out = NULL;
    if (a->keys && auth__looks_like_token(pass, pn)) return auth_token(a, pass, pn, out, why);
    if (a->pw && un) {
        bool ok = passwd_check(a->pw, user, un, pass, pn);
        if (ok && acl_sub_valid(user, un) && (*out = auth__user(a, user, un))) {
            a->stats.logins_ok++;
            return 0;
        }
    }
    if (a->nkeys) { /* a backend logging in with an API key as the password (any user name: MQTT 3.1.1
                     * sends a password only with one) */
        if (auth_bearer(a, pass, pn, out, why) == 0 && (*out)->kind == AUTH_KEY) return 0;
        auth_unref(*out);
        *out = NULL;
    }
    a->stats.logins_bad++;
    *why = a->pw || a->keys ? "bad user name or password" : "credentials are not accepted (no auth configured)";
    return HR_EAUTH;
}

int auth_cert_user(auth_t *a, const char *cn, size_t n, auth_id_t **out, const char **why)
{
    *out = NULL;
    if (a->certs && acl_sub_valid(cn, n) && (*out = auth__user(a, cn, n))) {
        a->stats.logins_ok++;
        return 0;
    }
    a->stats.logins_bad++;
    *why = "the client certificate's name is not a valid user id";
    return HR_EAUTH;
}

/* ---- checks ---- */

static bool auth__match(const acl_list_t *l, const auth_id_t *id, const char *c, size_t n)
{
    return l && l->n && acl_list_match(l, id->sub_id, id->sub_len, c, n);
}

bool auth_can_subscribe(const auth_id_t *id, const char *c, size_t n)
{
    if (id->any_sub) return true;
    if (id->kind == AUTH_USER && auth__match(&id->auth->user_channel, id, c, n)) return true;
    return auth__match(&id->sub, id, c, n) || (id->file_user && auth__match(&id->file_user->sub, id, c, n)) ||
           (id->file_id && auth__match(&id->file_id->sub, id, c, n));
}

bool auth_can_publish(const auth_id_t *id, const char *c, size_t n)
{
    if (id->any_pub) return true;
    return auth__match(&id->pub, id, c, n) || (id->file_user && auth__match(&id->file_user->pub, id, c, n)) ||
           (id->file_id && auth__match(&id->file_id->pub, id, c, n));
}

static acl_cover_t auth__best(acl_cover_t a, const acl_list_t *l, const auth_id_t *id, const char *f, size_t n)
{
    if (a == ACL_FULL || !l || !l->n) return a;
    acl_cover_t b = acl_list_cover(l, id->sub_id, id->sub_len, f, n);
    return b > a ? b : a;
}

acl_cover_t auth_cover(const auth_id_t *id, const char *f, size_t n)
{
    if (id->any_sub) {
        /* "everything" is every channel: '$' names are not channels ($SYS is the broker's) */
        return ACL_FULL;
    }
    acl_cover_t c = ACL_NONE;
    if (id->kind == AUTH_USER) c = auth__best(c, &id->auth->user_channel, id, f, n);
    c = auth__best(c, &id->sub, id, f, n);
    if (id->file_user) c = auth__best(c, &id->file_user->sub, id, f, n);
    if (id->file_id) c = auth__best(c, &id->file_id->sub, id, f, n);
    return c;
}

bool auth_is_admin(const auth_id_t *id) { return id->kind == AUTH_OPEN || id->kind == AUTH_KEY; }

bool auth_has_any(const auth_id_t *id)
{
    if (id->any_sub || id->any_pub || id->kind == AUTH_USER) return true;
    return id->file_user && (id->file_user->sub.n || id->file_user->pub.n);
}

size_t auth_scope(const auth_id_t *id, char *buf, size_t cap)
{
    int n = 0;
    switch (id->kind) {
    case AUTH_OPEN: n = snprintf(buf, cap, "open"); break;
    case AUTH_ANON: n = snprintf(buf, cap, "anon"); break;
    case AUTH_USER: n = snprintf(buf, cap, "u:%s", id->sub_id); break;
    case AUTH_KEY: {
        const uint8_t *d = id->key_digest;
        n = d ? snprintf(buf, cap, "k:%02x%02x%02x%02x%02x%02x%02x%02x", d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7])
              : snprintf(buf, cap, "k:");
        break;
    }
    }
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap ? cap - 1 : 0;
}

const char *auth_name(const auth_id_t *id, char *buf, size_t cap)
{
    switch (id->kind) {
    case AUTH_OPEN: return "open";
    case AUTH_ANON: return "anonymous";
    case AUTH_KEY: return "api-key";
    case AUTH_USER: snprintf(buf, cap, "user %s", id->sub_id); return buf;
    }
    return "?";
}
