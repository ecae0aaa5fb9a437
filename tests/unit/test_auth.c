/* test_auth.c - identities and permission checks (src/auth/auth.h): modes, token claims and the
 * permissions file combined, API keys, password logins, the token cache and its bound. Tokens are
 * minted with jwt_sign; files go to /tmp and are removed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../src/auth/auth.h"
#include "../../src/core/err.h"
#include "unit.h"

#define SECRET "test-secret-test-secret-test-secret-0123"

static char rules_path[64], pw_path[64];

static void write_file(char *path, size_t cap, const char *text)
{
    snprintf(path, cap, "/tmp/herald-test-auth-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) abort();
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n) abort();
    close(fd);
}

static char *mint(const char *claims)
{
    char err[200];
    char *t = jwt_sign(JWT_HS256, SECRET, strlen(SECRET), NULL, claims, err, sizeof(err));
    if (!t) printf("#   mint: %s\n", err);
    return t;
}

static void base_cfg(cfg_t *c)
{
    cfg_defaults(c);
    strcpy(c->token_hmac_secret, SECRET);
    strcpy(c->api_keys, "backend-key-0123456789 second-key-0123456789");
    strcpy(c->permissions_file, rules_path);
    strcpy(c->password_file, pw_path);
    c->token_leeway_ms = 0;
}

static bool sub_ok(const auth_id_t *id, const char *c) { return auth_can_subscribe(id, c, strlen(c)); }
static bool pub_ok(const auth_id_t *id, const char *c) { return auth_can_publish(id, c, strlen(c)); }

TEST(open_mode_allows_everything)
{
    cfg_t c;
    cfg_defaults(&c);
    auth_t a;
    char err[256];
    CHECK_EQ(auth_init(&a, &c, err, sizeof(err)), 0);
    CHECK(!a.enabled);
    auth_id_t *id = auth_anonymous(&a);
    CHECK_EQ(id->kind, AUTH_OPEN);
    CHECK(sub_ok(id, "user/42") && pub_ok(id, "user/42") && auth_is_admin(id));
    CHECK_EQ(auth_cover(id, "#", 1), ACL_FULL);
    const char *why;
    auth_id_t *t = NULL;
    CHECK_EQ(auth_token(&a, "a.b.c", 5, &t, &why), HR_EAUTH); /* no key: no token can be checked */
    CHECK(t == NULL);
    auth_unref(id);
    auth_close(&a);
}

TEST(tokens_rules_and_user_channel)
{
    cfg_t c;
    base_cfg(&c);
    auth_t a;
    char err[256];
    CHECK_EQ(auth_init(&a, &c, err, sizeof(err)), 0);
    CHECK(a.enabled && !a.anon_any);
    long now = (long)time(NULL);
    char claims[512];
    snprintf(claims, sizeof(claims),
             "{\"sub\":\"42\",\"exp\":%ld,\"herald\":{\"subscribe\":[\"news\"],\"publish\":[\"user/{sub}/out\"]}}",
             now + 3600);
    char *tok = mint(claims);
    auth_id_t *id = NULL;
    const char *why = NULL;
    CHECK_EQ(auth_token(&a, tok, strlen(tok), &id, &why), 0);
    if (!id) return;
    CHECK_EQ(id->kind, AUTH_USER);
    CHECK(strcmp(id->sub_id, "42") == 0);
    CHECK(id->exp_ms == (int64_t)(now + 3600) * 1000);
    CHECK(sub_ok(id, "user/42"));           /* user_channel */
    CHECK(sub_ok(id, "news"));              /* the claim */
    CHECK(sub_ok(id, "user/42/inbox"));     /* file: user subscribe user/{sub}/# */
    CHECK(!sub_ok(id, "user/7"));
    CHECK(!sub_ok(id, "user/7/inbox"));
    CHECK(sub_ok(id, "public/x"));          /* file: user inherits nothing from anonymous ... */
    CHECK(pub_ok(id, "user/42/out"));       /* the claim with {sub} */
    CHECK(!pub_ok(id, "user/7/out"));
    CHECK(pub_ok(id, "chat/room1"));        /* file: user pubsub chat/+ */
    CHECK(!pub_ok(id, "alerts/disk"));      /* only user:ops */
    CHECK(!auth_is_admin(id));
    CHECK_EQ(auth_cover(id, "user/42/#", 9), ACL_FULL);
    CHECK_EQ(auth_cover(id, "#", 1), ACL_PARTIAL);
    CHECK_EQ(auth_cover(id, "user/7/#", 8), ACL_NONE);
    /* the same token again comes from the cache: the same identity */
    auth_id_t *again = NULL;
    uint64_t hits = a.stats.cache_hits;
    CHECK_EQ(auth_token(&a, tok, strlen(tok), &again, &why), 0);
    CHECK(again == id);
    CHECK_EQ(a.stats.cache_hits, hits + 1);
    auth_unref(again);
    auth_unref(id);
    free(tok);

    /* user:ops gets its own rules on top */
    snprintf(claims, sizeof(claims), "{\"sub\":\"ops\",\"exp\":%ld}", now + 60);
    tok = mint(claims);
    CHECK_EQ(auth_token(&a, tok, strlen(tok), &id, &why), 0);
    if (id) {
        CHECK(pub_ok(id, "alerts/disk"));
        CHECK(sub_ok(id, "user/ops"));
        auth_unref(id);
    }
    free(tok);

    /* anonymous: the file's anonymous rules only */
    auth_id_t *anon = auth_anonymous(&a);
    CHECK_EQ(anon->kind, AUTH_ANON);
    CHECK(sub_ok(anon, "public/x"));
    CHECK(!sub_ok(anon, "user/42"));
    CHECK(!pub_ok(anon, "public/x"));
    CHECK(auth_has_any(anon));
    auth_unref(anon);
    auth_close(&a);
}

TEST(bad_tokens_are_refused)
{
    cfg_t c;
    base_cfg(&c);
    auth_t a;
    char err[256];
    CHECK_EQ(auth_init(&a, &c, err, sizeof(err)), 0);
    long now = (long)time(NULL);
    char claims[256];
    const char *why;
    auth_id_t *id = NULL;
    const char *bad_claims[] = {
        "{\"exp\":%ld}",                                     /* no sub */
        "{\"sub\":\"4/2\",\"exp\":%ld}",                     /* sub would widen patterns */
        "{\"sub\":\"+\",\"exp\":%ld}",                       /* wildcard as sub */
        "{\"sub\":42,\"exp\":%ld}",                          /* sub not a string */
        "{\"sub\":\"42\",\"exp\":%ld,\"herald\":[]}",         /* herald not an object */
        "{\"sub\":\"42\",\"exp\":%ld,\"herald\":{\"subscribe\":[\"a/#/b\"]}}", /* bad pattern */
        "{\"sub\":\"42\",\"exp\":%ld,\"herald\":{\"publish\":\"a\"}}",      /* not an array */
    };
    for (size_t i = 0; i < sizeof(bad_claims) / sizeof(bad_claims[0]); i++) {
        snprintf(claims, sizeof(claims), bad_claims[i], now + 60);
        char *tok = mint(claims);
        id = NULL;
        CHECK_EQ(auth_token(&a, tok, strlen(tok), &id, &why), HR_EAUTH);
        CHECK(id == NULL);
        free(tok);
    }
    /* expired: refused, also once it sits in the cache */
    snprintf(claims, sizeof(claims), "{\"sub\":\"42\",\"exp\":%ld}", now - 1);
    char *tok = mint(claims);
    CHECK_EQ(auth_token(&a, tok, strlen(tok), &id, &why), HR_EAUTH);
    CHECK(strstr(why, "expired") != NULL);
    free(tok);
    /* a token signed with another secret */
    char e2[200];
    tok = jwt_sign(JWT_HS256, "another-secret-another-secret-0123456", 37, NULL, "{\"sub\":\"42\"}", e2, sizeof(e2));
    CHECK_EQ(auth_token(&a, tok, strlen(tok), &id, &why), HR_EAUTH);
    free(tok);
    /* at most 64 patterns per claim list (AUTH_MAX_CLAIM_PATTERNS) */
    {
        char big[4096];
        for (int np = 64; np <= 65; np++) {
            size_t o = (size_t)snprintf(big, sizeof(big), "{\"sub\":\"42\",\"exp\":%ld,\"herald\":{\"subscribe\":[", now + 60);
            for (int i = 0; i < np; i++) o += (size_t)snprintf(big + o, sizeof(big) - o, "%s\"c/%d\"", i ? "," : "", i);
            snprintf(big + o, sizeof(big) - o, "]}}");
            tok = mint(big);
            id = NULL;
            CHECK_EQ(auth_token(&a, tok, strlen(tok), &id, &why), np == 64 ? 0 : HR_EAUTH);
            if (id) CHECK(sub_ok(id, "c/63"));
            auth_unref(id);
            id = NULL;
            free(tok);
        }
    }
    /* a key configured without a kid stands for any kid: tokens from issuers that always send one */
    snprintf(claims, sizeof(claims), "{\"sub\":\"42\",\"exp\":%ld}", now + 60);
    tok = jwt_sign(JWT_HS256, SECRET, strlen(SECRET), "issuer-key-7", claims, e2, sizeof(e2));
    CHECK_EQ(auth_token(&a, tok, strlen(tok), &id, &why), 0);
    auth_unref(id);
    free(tok);
    /* garbage and the token-length limit */
    CHECK_EQ(auth_token(&a, "x", 1, &id, &why), HR_EAUTH);
    char *big = malloc(20000);
    memset(big, 'a', 20000);
    CHECK_EQ(auth_token(&a, big, 20000, &id, &why), HR_EAUTH);
    CHECK(strstr(why, "too long") != NULL);
    free(big);
    CHECK(a.stats.tokens_bad >= 10);
    auth_close(&a);
}

TEST(api_keys_and_logins)
{
    cfg_t c;
    base_cfg(&c);
    auth_t a;
    char err[256];
    CHECK_EQ(auth_init(&a, &c, err, sizeof(err)), 0);
    auth_id_t *id = NULL;
    const char *why;
    CHECK_EQ(auth_bearer(&a, "second-key-0123456789", 21, &id, &why), 0);
    CHECK(id && id->kind == AUTH_KEY && auth_is_admin(id) && pub_ok(id, "anything/at/all"));
    auth_unref(id);
    id = NULL;
    CHECK_EQ(auth_bearer(&a, "second-key-012345678X", 21, &id, &why), HR_EAUTH);
    CHECK_EQ(auth_bearer(&a, "second-key-0123456789x", 22, &id, &why), HR_EAUTH);
    CHECK(id == NULL);
    /* password file logins: the user name is the user id */
    CHECK_EQ(auth_login(&a, "alice", 5, "wonderland", 10, &id, &why), 0);
    if (id) {
        CHECK(strcmp(id->sub_id, "alice") == 0 && !id->from_token && id->exp_ms == 0);
        CHECK(sub_ok(id, "user/alice/inbox") && !sub_ok(id, "user/bob"));
        auth_unref(id);
    }
    CHECK_EQ(auth_login(&a, "alice", 5, "wrong", 5, &id, &why), HR_EAUTH);
    CHECK_EQ(auth_login(&a, "nobody", 6, "wonderland", 10, &id, &why), HR_EAUTH);
    /* a token as the password (user name ignored) */
    char claims[128];
    snprintf(claims, sizeof(claims), "{\"sub\":\"42\",\"exp\":%ld}", (long)time(NULL) + 60);
    char *tok = mint(claims);
    CHECK_EQ(auth_login(&a, "whatever", 8, tok, strlen(tok), &id, &why), 0);
    if (id) {
        CHECK(strcmp(id->sub_id, "42") == 0 && id->from_token);
        auth_unref(id);
    }
    free(tok);
    /* an API key as the password with no user name: a backend over MQTT */
    CHECK_EQ(auth_login(&a, "", 0, "backend-key-0123456789", 22, &id, &why), 0);
    if (id) CHECK_EQ(id->kind, AUTH_KEY);
    auth_unref(id);
    CHECK_EQ(auth_login(&a, "backend", 7, "backend-key-0123456789", 22, &id, &why), 0); /* MQTT 3.1.1 */
    if (id) CHECK_EQ(id->kind, AUTH_KEY);
    auth_unref(id);
    CHECK_EQ(auth_login(&a, "backend", 7, "backend-key-012345678X", 22, &id, &why), HR_EAUTH);
    auth_close(&a);
}

TEST(cache_is_bounded)
{
    cfg_t c;
    base_cfg(&c);
    c.token_cache_size = 8;
    auth_t a;
    char err[256];
    CHECK_EQ(auth_init(&a, &c, err, sizeof(err)), 0);
    long now = (long)time(NULL);
    char *toks[20];
    for (int i = 0; i < 20; i++) {
        char claims[128];
        snprintf(claims, sizeof(claims), "{\"sub\":\"u%d\",\"exp\":%ld}", i, now + 600);
        toks[i] = mint(claims);
        auth_id_t *id = NULL;
        const char *why;
        CHECK_EQ(auth_token(&a, toks[i], strlen(toks[i]), &id, &why), 0);
        auth_unref(id);
        CHECK(a.stats.cache_entries <= 8);
    }
    CHECK_EQ(a.stats.cache_entries, 8);
    /* the newest are cached, the oldest were evicted (verified again, still valid) */
    uint64_t hits = a.stats.cache_hits;
    auth_id_t *id = NULL;
    const char *why;
    CHECK_EQ(auth_token(&a, toks[19], strlen(toks[19]), &id, &why), 0);
    CHECK_EQ(a.stats.cache_hits, hits + 1);
    auth_unref(id);
    CHECK_EQ(auth_token(&a, toks[0], strlen(toks[0]), &id, &why), 0);
    CHECK_EQ(a.stats.cache_hits, hits + 1);
    auth_unref(id);
    for (int i = 0; i < 20; i++) free(toks[i]);
    auth_close(&a);
}

TEST(allow_anonymous_and_bad_config)
{
    cfg_t c;
    cfg_defaults(&c);
    strcpy(c.api_keys, "backend-key-0123456789");
    c.allow_anonymous = true;
    auth_t a;
    char err[256];
    CHECK_EQ(auth_init(&a, &c, err, sizeof(err)), 0);
    auth_id_t *anon = auth_anonymous(&a);
    CHECK(a.enabled && anon->kind == AUTH_ANON && sub_ok(anon, "x") && pub_ok(anon, "x") && !auth_is_admin(anon));
    auth_unref(anon);
    CHECK_EQ(a.live, 0); /* every identity handed out was released */
    auth_close(&a);

    cfg_defaults(&c);
    strcpy(c.token_hmac_secret, "short");
    CHECK_EQ(auth_init(&a, &c, err, sizeof(err)), HR_EINVAL);
    CHECK(strstr(err, "token_hmac_secret") != NULL);
    cfg_defaults(&c);
    strcpy(c.api_keys, "tiny");
    CHECK_EQ(auth_init(&a, &c, err, sizeof(err)), HR_EINVAL);
    CHECK(strstr(err, "too short") != NULL);
    cfg_defaults(&c);
    strcpy(c.permissions_file, "/nonexistent/herald-rules");
    CHECK_EQ(auth_init(&a, &c, err, sizeof(err)), HR_EINVAL);
    cfg_defaults(&c);
    strcpy(c.token_hmac_secret, SECRET);
    strcpy(c.token_algorithms, "HS256 XX999");
    CHECK_EQ(auth_init(&a, &c, err, sizeof(err)), HR_EINVAL);
    CHECK(strstr(err, "XX999") != NULL);
}

int main(void)
{
    write_file(rules_path, sizeof(rules_path),
               "# test rules\nanonymous subscribe public/#\nuser subscribe user/{sub}/#\nuser subscribe public/#\n"
               "user pubsub chat/+\nuser:ops publish alerts/#\n");
    char line[300];
    char hash[200];
    size_t hn = passwd_hash7("wonderland", 10, 101, hash, sizeof(hash));
    snprintf(line, sizeof(line), "alice:%.*s\n", (int)hn, hash);
    write_file(pw_path, sizeof(pw_path), line);
    RUN(open_mode_allows_everything);
    RUN(tokens_rules_and_user_channel);
    RUN(bad_tokens_are_refused);
    RUN(api_keys_and_logins);
    RUN(cache_is_bounded);
    RUN(allow_anonymous_and_bad_config);
    unlink(rules_path);
    unlink(pw_path);
    return UNIT_DONE();
}
