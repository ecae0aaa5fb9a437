/* passwd.c - Mosquitto-compatible password file (see passwd.h).
 *
 * The file is parsed once into an array of entries sorted by user name; a lookup is a binary
 * search. Salts and hashes are decoded at parse time, so a check is one digest plus a
 * constant-time compare. Unknown users are checked against a dummy entry with the same
 * algorithm and iteration count as the file's first user (PBKDF2 at Mosquitto's 101 iterations
 * when the file is empty), so the cost of a check does not tell whether the user exists.
 *
 * mosquitto_passwd 2.0 writes "user:$7$101$" + base64(12-byte salt) + "$" + base64(64-byte
 * PBKDF2-HMAC-SHA512 output), standard alphabet with '=' padding; "-H sha512" writes the 1.x
 * form "$6$" + salt + "$" + base64(SHA-512(password || salt)). */
#include "passwd.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "../core/b64.h"
#include "../core/span.h"

#define PW_MAX_LINE 1024        /* bytes, line end excluded */
#define PW_MAX_USERS 1000000
#define PW_MAX_ITER 10000000    /* above this one login would take seconds */
#define PW_MAX_SALT 64
#define PW_HASH_LEN 64          /* SHA-512 */
#define PW_DEFAULT_ITER 101     /* mosquitto_passwd's */
#define PW_SALT_LEN 12          /* mosquitto_passwd's */

enum { PW_SHA512 = 6, PW_PBKDF2 = 7 };

typedef struct {
    char *user;
    size_t un;
    int type;
    int iter;
    unsigned line;
    size_t saltn;
    unsigned char salt[PW_MAX_SALT];
    unsigned char hash[PW_HASH_LEN];
} pw_entry_t;

struct passwd_db {
    pw_entry_t *e;
    size_t n;
    pw_entry_t dummy;
};

static void seterr(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || cap == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* Computes the entry's digest of password into out (PW_HASH_LEN bytes). Returns false when
 * OpenSSL fails. */
static bool digest(const pw_entry_t *e, const char *pw, size_t pn, unsigned char out[PW_HASH_LEN])
{
    if (pn > INT_MAX) return false;
    if (e->type == PW_PBKDF2)
        return PKCS5_PBKDF2_HMAC(pw, (int)pn, e->salt, (int)e->saltn, e->iter, EVP_sha512(), PW_HASH_LEN, out) == 1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int len = 0;
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 && EVP_DigestUpdate(ctx, pw, pn) == 1 &&
              EVP_DigestUpdate(ctx, e->salt, e->saltn) == 1 && EVP_DigestFinal_ex(ctx, out, &len) == 1 &&
              len == PW_HASH_LEN;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* Parses the hash field h[0..n) ("$7$ITER$SALT$HASH" or "$6$SALT$HASH") into e. Returns NULL,
 * or a message. */
static const char *parse_hash(pw_entry_t *e, const char *h, size_t n)
{
    if (n < 3 || h[0] != '$' || (h[1] != '6' && h[1] != '7') || h[2] != '$')
        return "unsupported hash (want $6$ or $7$ as written by mosquitto_passwd)";
    e->type = h[1] == '7' ? PW_PBKDF2 : PW_SHA512;
    size_t i = 3;
    e->iter = 0;
    if (e->type == PW_PBKDF2) {
        long it = 0;
        size_t st = i;
        for (; i < n && h[i] >= '0' && h[i] <= '9'; i++)
            if (it <= PW_MAX_ITER) it = it * 10 + (h[i] - '0'); /* stays above the limit once there */
        if (i == st || i == n || h[i] != '$') return "bad iteration count";
        if (it < 1 || it > PW_MAX_ITER) return "iteration count out of range (1-10000000)";
        e->iter = (int)it;
        i++;
    }
    const char *d = memchr(h + i, '$', n - i);
    if (!d) return "missing '$' between salt and hash";
    size_t sn = (size_t)(d - (h + i));
    long sl = b64_decode_ex(h + i, sn, e->salt, sizeof(e->salt), B64_PAD_OK);
    if (sl < 1) return "bad salt (want 1-64 bytes in base64)";
    e->saltn = (size_t)sl;
    i += sn + 1;
    unsigned char hash[PW_HASH_LEN + 3];
    long hl = b64_decode_ex(h + i, n - i, hash, sizeof(hash), B64_PAD_OK);
    if (hl != PW_HASH_LEN) return "bad hash (want 64 bytes in base64)";
    memcpy(e->hash, hash, PW_HASH_LEN);
    return NULL;
}

static int entry_cmp(const void *a, const void *b)
{
    const pw_entry_t *x = a, *y = b;
    int c = span_cmp((span_t){x->user, x->un}, (span_t){y->user, y->un});
    return c ? c : x->line < y->line ? -1 : x->line > y->line;
}

static bool blank(char c) { return c == ' ' || c == '\t'; }

/* Parses one line s[0..n) into e (user name allocated). Blanks around the user name and the
 * hash are ignored, as Mosquitto 2.0 does. Returns NULL or a message. */
static const char *parse_line(pw_entry_t *e, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 ? s[i] != '\t' : s[i] == 0x7f) return "control character";
    const char *colon = memchr(s, ':', n);
    if (!colon) return "want username:hash";
    size_t un = (size_t)(colon - s);
    const char *h = colon + 1;
    size_t hn = n - un - 1;
    while (un > 0 && blank(s[un - 1])) un--;
    while (un > 0 && blank(s[0])) s++, un--;
    while (hn > 0 && blank(h[0])) h++, hn--;
    while (hn > 0 && blank(h[hn - 1])) hn--;
    if (un == 0) return "empty username";
    const char *msg = parse_hash(e, h, hn);
    if (msg) return msg;
    e->user = strndup(s, un);
    if (!e->user) return "out of memory";
    e->un = un;
    return NULL;
}

void passwd_free(passwd_db_t *db)
{
    if (!db) return;
    for (size_t i = 0; i < db->n; i++) {
        free(db->e[i].user);
        OPENSSL_cleanse(&db->e[i], sizeof(db->e[i]));
    }
    free(db->e);
    free(db);
}

passwd_db_t *passwd_parse(const char *text, size_t n, char *err, size_t cap)
{
    passwd_db_t *db = calloc(1, sizeof(*db));
    if (!db) {
        seterr(err, cap, "out of memory");
        return NULL;
    }
    size_t ecap = 0;
    unsigned ln = 0;
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(text + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - text) : n, next = nl ? e + 1 : n;
        if (e > i && text[e - 1] == '\r') e--;
        const char *s = text + i;
        size_t len = e - i;
        i = next;
        ln++;
        if (len > PW_MAX_LINE) {
            seterr(err, cap, "line %u: line too long (at most %d bytes)", ln, PW_MAX_LINE);
            goto fail;
        }
        size_t k = 0;
        while (k < len && blank(s[k])) k++;
        if (k == len || s[k] == '#') continue;
        if (db->n == PW_MAX_USERS) {
            seterr(err, cap, "line %u: too many users (at most %d)", ln, PW_MAX_USERS);
            goto fail;
        }
        if (db->n == ecap) {
            size_t nc = ecap ? ecap * 2 : 16;
            pw_entry_t *ne = realloc(db->e, nc * sizeof(*ne));
            if (!ne) {
                seterr(err, cap, "line %u: out of memory", ln);
                goto fail;
            }
            db->e = ne;
            ecap = nc;
        }
        pw_entry_t *ent = &db->e[db->n];
        memset(ent, 0, sizeof(*ent));
        ent->line = ln;
        const char *msg = parse_line(ent, s, len);
        if (msg) {
            seterr(err, cap, "line %u: %s", ln, msg);
            goto fail;
        }
        db->n++;
    }
    if (db->n) qsort(db->e, db->n, sizeof(*db->e), entry_cmp);
    for (size_t i = 1; i < db->n; i++) {
        if (db->e[i].un == db->e[i - 1].un && memcmp(db->e[i].user, db->e[i - 1].user, db->e[i].un) == 0) {
            seterr(err, cap, "line %u: duplicate user '%.*s' (first on line %u)", db->e[i].line,
                   (int)(db->e[i].un > 64 ? 64 : db->e[i].un), db->e[i].user, db->e[i - 1].line);
            goto fail;
        }
    }
    pw_entry_t *d = &db->dummy;
    d->type = db->n ? db->e[0].type : PW_PBKDF2;
    d->iter = db->n ? db->e[0].iter : PW_DEFAULT_ITER;
    d->saltn = PW_SALT_LEN;
    if (RAND_bytes(d->salt, PW_SALT_LEN) != 1) memset(d->salt, 0x5a, PW_SALT_LEN);
    return db;
fail:
    passwd_free(db);
    return NULL;
}

size_t passwd_count(const passwd_db_t *db) { return db ? db->n : 0; }

static const pw_entry_t *find(const passwd_db_t *db, const char *user, size_t un)
{
    size_t lo = 0, hi = db->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const pw_entry_t *e = &db->e[mid];
        int c = span_cmp((span_t){e->user, e->un}, (span_t){user, un});
        if (c == 0) return e;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool passwd_check(const passwd_db_t *db, const char *user, size_t un, const char *password, size_t pn)
{
    /* PBKDF2's HMAC pads its key with zeros, so "pw" and "pw\0" would be the same password */
    if (!db || memchr(password, '\0', pn)) return false;
    const pw_entry_t *e = find(db, user, un);
    const pw_entry_t *use = e ? e : &db->dummy; /* same cost for unknown users */
    unsigned char out[PW_HASH_LEN];
    bool ok = digest(use, password, pn, out) && CRYPTO_memcmp(out, use->hash, PW_HASH_LEN) == 0;
    OPENSSL_cleanse(out, sizeof(out));
    return e != NULL && ok;
}

size_t passwd_hash7(const char *password, size_t pn, int iterations, char *out, size_t cap)
{
    pw_entry_t e = {.type = PW_PBKDF2, .iter = iterations > 0 ? iterations : PW_DEFAULT_ITER, .saltn = PW_SALT_LEN};
    char head[32];
    int hn = snprintf(head, sizeof(head), "$7$%d$", e.iter);
    size_t need = (size_t)hn + 16 + 1 + 88 + 1; /* base64 of 12 and 64 bytes, NUL */
    if (cap < need || memchr(password, '\0', pn)) return 0;
    if (RAND_bytes(e.salt, PW_SALT_LEN) != 1 || !digest(&e, password, pn, e.hash)) return 0;
    memcpy(out, head, (size_t)hn);
    size_t o = (size_t)hn;
    o += b64_encode_ex(e.salt, PW_SALT_LEN, out + o, cap - o, 0);
    out[o++] = '$';
    o += b64_encode_ex(e.hash, PW_HASH_LEN, out + o, cap - o, 0);
    out[o] = '\0';
    OPENSSL_cleanse(&e, sizeof(e));
    return o;
}
