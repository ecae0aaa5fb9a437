/* auth.h - who a client is and what it may do: identities from tokens, API keys, passwords or
 * nothing (anonymous), and the permission checks every transport makes.
 *
 * Modes. With no token key, API key, permissions file or password file configured, herald runs
 * open: every client is the "open" identity and may do everything (main refuses that beyond
 * loopback unless allow_anonymous = true). Once any of them is configured, access control is on:
 * - a valid token (jwt.h) gives a user identity: its "sub", the patterns of its "herald" claim
 *   ({"subscribe": [...], "publish": [...]}), the permissions file's "user" and "user:SUB" rules,
 *   and subscribe on user_channel ("user/{sub}");
 * - a password-file login (MQTT, STOMP) gives the same for sub = the user name, without claims;
 * - an API key gives the publisher/admin identity: publish anywhere, admin endpoints;
 * - no credential gives the anonymous identity: the permissions file's "anonymous" rules, or,
 *   without a permissions file, everything on channels when allow_anonymous = true, else nothing.
 *
 * Identities are refcounted and immutable; a connection holds one reference. Verified tokens are
 * cached by their SHA-256 (token_cache_size entries, oldest evicted first) until they expire, so
 * a reconnect storm costs a hash lookup per client instead of a signature check. API keys are
 * kept as SHA-256 digests and compared with CRYPTO_memcmp (constant time, whatever the length).
 * Nothing here logs or keeps a token or a key in clear text. */
#ifndef HERALD_AUTH_H
#define HERALD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../app/config.h"
#include "acl.h"
#include "jwt.h"
#include "passwd.h"

typedef enum {
    AUTH_OPEN = 0, /* access control off: everything */
    AUTH_ANON,     /* no credential */
    AUTH_USER,     /* a token or a password-file login */
    AUTH_KEY,      /* an API key: publisher and admin */
} auth_kind_t;

typedef struct auth auth_t;

typedef struct auth_id {
    uint32_t refs;
    auth_kind_t kind;
    bool fixed;            /* one of auth_t's own identities: never freed */
    bool from_token;       /* AUTH_USER by token (may be refreshed) rather than by password */
    bool any_sub, any_pub; /* every channel (open mode, anonymous with allow_anonymous, API key) */
    int64_t exp_ms;        /* wall-clock ms when the credential stops being valid (0: never) */
    const auth_t *auth;
    const acl_who_t *file_user, *file_id; /* permissions file rules that apply (may be NULL) */
    acl_list_t sub, pub;   /* the token's own patterns */
    uint16_t sub_len;
    char sub_id[ACL_MAX_SUB + 1]; /* the user id ("" unless AUTH_USER) */
    const uint8_t *key_digest;    /* AUTH_KEY: the SHA-256 of the API key presented (32 bytes) */
} auth_id_t;

typedef struct {
    uint64_t tokens_ok, tokens_bad, cache_hits, logins_ok, logins_bad, keys_ok, keys_bad, denied, expired;
    uint32_t cache_entries;
} auth_stats_t;

typedef struct auth_cache auth_cache_t;

struct auth {
    bool enabled;         /* access control is on */
    bool anon_any;        /* anonymous clients may do everything on channels */
    bool have_rules;
    bool certs;           /* mqtt_cert_identity: a verified client certificate names the MQTT user */
    jwt_keys_t *keys;     /* NULL: no tokens accepted */
    jwt_policy_t policy;  /* issuer, audience, leeway, max_len (now_s set per call) */
    acl_rules_t rules;
    passwd_db_t *pw;      /* NULL: no password logins */
    uint8_t (*key_digests)[32];
    uint32_t nkeys;
    auth_cache_t *cache;
    acl_list_t user_channel; /* subscribe pattern every user has */
    auth_id_t open_id, anon_id; /* static identities (never freed by unref) */
    auth_id_t *key_ids;         /* one static identity per API key (nkeys), in key_digests' order */
    auth_stats_t stats;
    struct evp_md_st *md;         /* SHA-256, fetched once (token cache keys, API key digests) */
    struct evp_md_ctx_st *mdctx;  /* reused for every digest */
    uint64_t live;                /* references to its identities held outside (each returned or auth_ref'd id) */
    bool retired;                 /* replaced by a reload (auth_retire): freed when live reaches 0 */
};

/* Builds the access-control state from cfg: reads token_hmac_secret(_file), token_public_key,
 * token_jwks_file, api_keys(_file), permissions_file and password_file. Returns 0, or HR_EINVAL
 * with a message in err (a file that cannot be read, a bad key or rule, a short secret). */
int auth_init(auth_t *a, const cfg_t *cfg, char *err, size_t cap);

/* Reads a whole file (a key, a secret, a rules file; at most 16 MiB) into a NUL-terminated malloc'd
 * buffer of its own size. NULL with "path: why" in err. The caller frees it (cleansing secrets). */
char *auth_read_file(const char *path, size_t *len, char *err, size_t cap);

/* auth_read_file, without the trailing CR/LF an editor leaves after a secret. */
char *auth_read_secret_file(const char *path, size_t *len, char *err, size_t cap);

/* Frees everything auth_init made. Identities still referenced must be released first. */
void auth_close(auth_t *a);

/* a (malloc'd, auth_init'ed) was replaced by a reload: its token cache goes now, and a itself
 * (auth_close + free) as soon as the last identity made with it is released, possibly at once.
 * Connections keep the access control they were admitted with until then. */
void auth_retire(auth_t *a);

/* Access-control generations replaced by reloads and still held by connections (a metric). */
uint32_t auth_retired_live(void);

/* Verifies a token (or finds it in the cache) and returns a new reference to its identity.
 * Returns 0, or HR_EAUTH with *why a short static text (never containing the token). */
int auth_token(auth_t *a, const char *tok, size_t n, auth_id_t **out, const char **why);

/* Checks a presented bearer credential: an API key (-> the key identity) or a token. 0 or
 * HR_EAUTH with *why. */
int auth_bearer(auth_t *a, const char *cred, size_t n, auth_id_t **out, const char **why);

/* An MQTT CONNECT or STOMP CONNECT credential: a password that is a token (the user name is
 * then ignored), else user/password against the password file, else a password that is an API
 * key (whatever the user name). 0 or HR_EAUTH with *why. */
int auth_login(auth_t *a, const char *user, size_t un, const char *pass, size_t pn, auth_id_t **out,
               const char **why);

/* The identity of a client whose TLS client certificate tls_ca verified (mqtt_cert_identity): the
 * user named by the certificate's subject CN cn[0..n), with the permissions file's "user" and
 * "user:CN" rules, like a password-file login. 0, or HR_EAUTH with *why (the CN is not a valid
 * user id, or mqtt_cert_identity is off). */
int auth_cert_user(auth_t *a, const char *cn, size_t n, auth_id_t **out, const char **why);

/* A new reference to the identity of a client without a credential (the open identity when
 * access control is off). */
auth_id_t *auth_anonymous(auth_t *a);

auth_id_t *auth_ref(auth_id_t *id);
void auth_unref(auth_id_t *id); /* NULL is fine */

/* True when id may subscribe to (read) channel c[0..n), or publish to it. */
bool auth_can_subscribe(const auth_id_t *id, const char *c, size_t n);
bool auth_can_publish(const auth_id_t *id, const char *c, size_t n);

/* How id's subscribe permissions cover the MQTT filter f[0..n) (acl.h). */
acl_cover_t auth_cover(const auth_id_t *id, const char *f, size_t n);

/* True when id may use the admin endpoints (open mode or an API key). */
bool auth_is_admin(const auth_id_t *id);

/* True when id may do anything at all (anonymous with no rule is refused at MQTT CONNECT). */
bool auth_has_any(const auth_id_t *id);

/* A stable name of the caller id is, for scoping what a caller did (idempotency keys): "u:" and
 * the user id, "k:" and the first 8 bytes of the API key's SHA-256 in hex (the same key after a
 * restart, another key another name; never the key itself), "anon" or "open". Returns its
 * length (truncated to cap - 1; ACL_MAX_SUB + 3 bytes always fit). */
size_t auth_scope(const auth_id_t *id, char *buf, size_t cap);

/* A short name of id for logs: "open", "anonymous", "api-key" or "user <sub>". */
const char *auth_name(const auth_id_t *id, char *buf, size_t cap);

#endif
