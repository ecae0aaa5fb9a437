/* config.c - INI file + flags -> cfg_t.
 *
 * Design: one table (cfg_keys, in config_keys.c with the defaults) lists every key with its type,
 * where it lives in cfg_t, its section (used only by cfg_dump) and its allowed range. cfg_set() is the single place that turns a
 * string into a value, so the file parser and the flags share every check and message.
 *
 * The file side uses inih through ini_parse_stream() with our own line reader. The reader does
 * three things inih cannot do for us: it counts lines (so a handler error knows its line; the
 * Debian build has INI_HANDLER_LINENO off), it strips leading whitespace (so indented keys are
 * plain keys and never inih "continuation lines"), and it rejects lines longer than inih's fixed
 * 200-byte buffer instead of letting inih silently split them. inih returns the line of the first
 * error; if that error was ours we report our message, otherwise it was a syntax error.
 *
 * Values: strings may be wrapped in one pair of double quotes (cfg_dump always writes them so),
 * which is how an empty or space-padded value is written. cors_origins is normalised to single
 * spaces between origins so that dump -> parse gives back the same bytes. No global state. */
#include "config.h"

#include <openssl/crypto.h>

#include "../core/textbuf.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"

#include "config_internal.h"


static const char *const SECTIONS[] = {"server", "http", "history", "delivery", "websocket", "presence",
                                       "stomp", "mqtt", "limits", "publish", "auth", "tls"};
static const char *const LOG_LEVELS[] = {"error", "warn", "info", "debug"};
static const char *const POLICIES[] = {"drop", "disconnect"};

/* inih's line buffer is INI_MAX_LINE (200) bytes including the newline and the NUL. */
#define LINE_MAX_BYTES (INI_MAX_LINE - 2)

static int fail(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t cap, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return HR_EINVAL;
}

/* Canonical key: lower case, '-' -> '_'. Returns false when it does not fit. */
static bool norm_key(const char *in, size_t n, char *out, size_t cap)
{
    if (n >= cap) return false;
    for (size_t i = 0; i < n; i++) {
        char c = (char)tolower((unsigned char)in[i]);
        out[i] = c == '-' ? '_' : c;
    }
    out[n] = '\0';
    return true;
}

static const key_def_t *find_key(const char *key)
{
    char k[64];
    if (!norm_key(key, strlen(key), k, sizeof(k))) return NULL;
    for (size_t i = 0; i < cfg_nkeys; i++)
        if (strcmp(cfg_keys[i].name, k) == 0) return &cfg_keys[i];
    return NULL;
}

/* Parses a decimal integer that must fill all of s[0..n). */
static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
    if (n == 0) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* "123", "64k", "1m", "2G" (1024-based; an optional trailing 'b' is allowed after a suffix). */
static bool parse_size(const char *s, uint64_t *out)
{
    size_t n = strlen(s);
    unsigned shift = 0;
    if (n >= 2 && (s[n - 1] == 'b' || s[n - 1] == 'B') && strchr("kKmMgG", s[n - 2])) n--;
    if (n >= 1) {
        switch (s[n - 1]) {
        case 'k': case 'K': shift = 10; n--; break;
        case 'm': case 'M': shift = 20; n--; break;
        case 'g': case 'G': shift = 30; n--; break;
        default: break;
        }
    }
    uint64_t v;
    if (!parse_u64(s, n, &v)) return false;
    if (shift && v > (UINT64_MAX >> shift)) return false;
    *out = v << shift;
    return true;
}

/* Seconds with up to three decimals -> milliseconds: "10", "0.5", "1.25". */
static bool parse_secs(const char *s, uint64_t *ms)
{
    const char *dot = strchr(s, '.');
    size_t ilen = dot ? (size_t)(dot - s) : strlen(s);
    uint64_t whole = 0, frac = 0;
    if (ilen == 0 && !dot) return false;
    if (ilen > 0 && !parse_u64(s, ilen, &whole)) return false;
    if (dot) {
        const char *f = dot + 1;
        size_t flen = strlen(f);
        if (flen == 0 && ilen == 0) return false;
        if (flen > 3) return false;
        if (flen > 0 && !parse_u64(f, flen, &frac)) return false;
        for (size_t i = flen; i < 3; i++) frac *= 10;
    }
    if (whole > UINT64_MAX / 1000 - 1) return false;
    *ms = whole * 1000 + frac;
    return true;
}

/* "host:port" or "[v6]:port"; port 1..65535. Syntax only, nothing is resolved. */
static bool valid_addr(const char *s)
{
    const char *colon;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close == s + 1 || close[1] != ':') return false;
        for (const char *p = s + 1; p < close; p++)
            if (!isalnum((unsigned char)*p) && *p != ':' && *p != '.' && *p != '%') return false;
        colon = close + 1;
    } else {
        colon = strchr(s, ':');
        if (!colon || colon == s || strchr(colon + 1, ':')) return false;
        for (const char *p = s; p < colon; p++)
            if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_' && *p != '*')
                return false;
    }
    uint64_t port;
    const char *ps = colon + 1;
    size_t pn = strlen(ps);
    return pn <= 5 && parse_u64(ps, pn, &port) && port >= 1 && port <= 65535;
}

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return true;
    return false;
}

/* Splits on spaces, tabs and commas and joins with one space. */
static int set_origins(char *dst, size_t cap, const char *v, char *err, size_t errcap)
{
    size_t o = 0;
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (!*p) break;
        const char *tok = p;
        while (*p && *p != ' ' && *p != '\t' && *p != ',') p++;
        size_t n = (size_t)(p - tok);
        if (n > 128) return fail(err, errcap, "origin too long (max 128 bytes)");
        /* an origin is "*", "null" or scheme://host[:port]: letters, digits and - . : / _ [ ] % * */
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)tok[i];
            if (!isalnum(c) && !strchr("-.:/_[]%*", c))
                return fail(err, errcap, "invalid character in origin '%.*s'", (int)n, tok);
        }
        if (o + (o ? 1 : 0) + n >= cap) return fail(err, errcap, "value too long (max %zu bytes)", cap - 1);
        if (o) dst[o++] = ' ';
        memcpy(dst + o, tok, n);
        o += n;
    }
    dst[o] = '\0';
    return 0;
}

int cfg_set(cfg_t *cfg, const char *key, const char *value, char *err, size_t errcap)
{
    const key_def_t *k = find_key(key);
    if (!k) {
        fail(err, errcap, "unknown key '%s'", key);
        return HR_ENOTFOUND;
    }
    /* One pair of surrounding double quotes is removed: `redis = ""` is the empty string. */
    char buf[1100];
    size_t vn = strlen(value);
    if (vn >= sizeof(buf)) return fail(err, errcap, "value too long");
    if (vn >= 2 && value[0] == '"' && value[vn - 1] == '"') {
        memcpy(buf, value + 1, vn - 2);
        buf[vn - 2] = '\0';
    } else {
        memcpy(buf, value, vn + 1);
    }
    const char *v = buf;
    if (has_ctl(v)) return fail(err, errcap, "%s: control characters are not allowed", k->name);

    char *field = (char *)cfg + k->off;
    uint64_t u = 0;
    switch (k->type) {
    case K_ADDR:
    case K_ADDR_OPT:
        if (k->type == K_ADDR_OPT && !*v) {
            field[0] = '\0';
            return 0;
        }
        if (strlen(v) >= k->size || !valid_addr(v))
            return fail(err, errcap, "%s: bad address '%s' (want host:port or [v6]:port, port 1..65535)",
                        k->name, v);
        strcpy(field, v);
        return 0;
    case K_PATH:
    case K_STR:
    case K_SECRET:
        if (k->type == K_PATH && !*v) return fail(err, errcap, "%s: must not be empty", k->name);
        if (strlen(v) >= k->size) return fail(err, errcap, "%s: too long (max %zu bytes)", k->name, k->size - 1);
        /* ';' and '#' start comments in the INI file: a value holding them could not be written
         * back by cfg_dump and read again unchanged */
        if (strpbrk(v, ";#")) return fail(err, errcap, "%s: ';' and '#' are not allowed", k->name);
        strcpy(field, v);
        return 0;
    case K_ORIGINS: {
        char tmp[sizeof(cfg->cors_origins)];
        char sub[200];
        int rc = set_origins(tmp, sizeof(tmp), v, sub, sizeof(sub));
        if (rc < 0) return fail(err, errcap, "%s: %s", k->name, sub);
        memcpy(field, tmp, sizeof(tmp));
        return 0;
    }
    case K_LOGLEVEL:
        for (int i = 0; i < 4; i++)
            if (strcasecmp(v, LOG_LEVELS[i]) == 0) {
                cfg->log_level = i;
                return 0;
            }
        return fail(err, errcap, "log_level: bad value '%s' (want error, warn, info or debug)", v);
    case K_POLICY:
        for (int i = 0; i < 2; i++)
            if (strcasecmp(v, POLICIES[i]) == 0) {
                cfg->slow_policy = (slow_policy_t)i;
                return 0;
            }
        return fail(err, errcap, "slow_policy: bad value '%s' (want drop or disconnect)", v);
    case K_COUNT:
    case K_MS:
        if (!parse_u64(v, strlen(v), &u))
            return fail(err, errcap, "%s: bad number '%s'%s", k->name, v,
                        k->type == K_MS ? " (milliseconds, an integer)" : "");
        break;
    case K_SIZE32:
    case K_SIZE64:
        if (!parse_size(v, &u))
            return fail(err, errcap, "%s: bad size '%s' (an integer with optional k, m or g suffix)", k->name, v);
        break;
    case K_SECS:
        if (!parse_secs(v, &u))
            return fail(err, errcap, "%s: bad duration '%s' (seconds, up to 3 decimals)", k->name, v);
        break;
    case K_CHOICE: {
        for (uint32_t i = 0; k->choices[i]; i++)
            if (strcasecmp(v, k->choices[i]) == 0) {
                memcpy(field, &i, sizeof(i));
                return 0;
            }
        char want[200] = "";
        for (uint32_t i = 0; k->choices[i]; i++)
            snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%s", i ? ", " : "", k->choices[i]);
        return fail(err, errcap, "%s: bad value '%s' (want %s)", k->name, v, want);
    }
    case K_BOOL: {
        static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
                *(bool *)field = strcasecmp(v, yes[i]) == 0;
                return 0;
            }
        }
        return fail(err, errcap, "%s: bad value '%s' (want true or false)", k->name, v);
    }
    }
    if (u < k->min || u > k->max) {
        if (k->type == K_SECS)
            return fail(err, errcap, "%s: %s out of range (%llu.%03llu..%llu.%03llu seconds)", k->name, v,
                        (unsigned long long)k->min / 1000, (unsigned long long)k->min % 1000,
                        (unsigned long long)k->max / 1000, (unsigned long long)k->max % 1000);
        return fail(err, errcap, "%s: %s out of range (%llu..%llu)", k->name, v, (unsigned long long)k->min,
                    (unsigned long long)k->max);
    }
    if (k->size == sizeof(uint64_t)) {
        memcpy(field, &u, sizeof(u));
    } else {
        uint32_t u32 = (uint32_t)u;
        memcpy(field, &u32, sizeof(u32));
    }
    return 0;
}

/* ---- file parsing ---- */

typedef struct {
    cfg_t *cfg;
    const char *text; /* remaining input */
    int line;         /* number of the line last handed to inih */
    int err_line;     /* line of our first error, 0 if none */
    char msg[256];
} parse_ctx_t;

/* ini_reader: hands inih one line at a time, with leading blanks removed. */
static char *reader(char *str, int num, void *stream)
{
    parse_ctx_t *ctx = stream;
    const char *p = ctx->text;
    if (!*p) return NULL;
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);
    ctx->text = p + n;
    ctx->line++;
    while (n && (*p == ' ' || *p == '\t')) p++, n--;
    if (n > (size_t)num - 1) n = (size_t)num - 1; /* cannot happen after the length pre-check */
    memcpy(str, p, n);
    str[n] = '\0';
    return str;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    parse_ctx_t *ctx = user;
    if (ctx->err_line) return 1; /* keep only the first error */
    if (strncasecmp(section, "namespace", 9) == 0 && (section[9] == ' ' || section[9] == '\t')) {
        const char *ns = section + 10;
        while (*ns == ' ' || *ns == '\t') ns++;
        if (cfg_ns_set(ctx->cfg, ns, name, value, ctx->line, ctx->msg, sizeof(ctx->msg)) < 0) {
            ctx->err_line = ctx->line;
            return 0;
        }
        return 1;
    }
    if (section[0]) {
        bool known = false;
        for (size_t i = 0; i < sizeof(SECTIONS) / sizeof(SECTIONS[0]); i++)
            if (strcasecmp(section, SECTIONS[i]) == 0) known = true;
        if (!known) {
            snprintf(ctx->msg, sizeof(ctx->msg),
                     "unknown section [%s] (want server, http, history, delivery, ... or namespace NAME)", section);
            ctx->err_line = ctx->line;
            return 0;
        }
    }
    int rc = cfg_set(ctx->cfg, name, value, ctx->msg, sizeof(ctx->msg));
    if (rc < 0) {
        ctx->err_line = ctx->line;
        return 0;
    }
    return 1;
}

int cfg_parse_string(cfg_t *cfg, const char *text, char *err, size_t errcap)
{
    /* inih would split an over-long line in two; refuse it instead. */
    int line = 1;
    for (const char *p = text; *p; line++) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        const char *s = p;
        size_t sn = n;
        while (sn && (*s == ' ' || *s == '\t')) s++, sn--;
        if (sn > LINE_MAX_BYTES - 1)
            return fail(err, errcap, "line %d: line too long (max %d bytes)", line, LINE_MAX_BYTES - 1);
        p += n + (nl ? 1 : 0);
    }

    /* Work on a copy so a failed parse leaves *cfg untouched. */
    cfg_t tmp = *cfg;
    parse_ctx_t ctx = {.cfg = &tmp, .text = text};
    int rc = ini_parse_stream(reader, &ctx, handler, &ctx);
    if (rc == 0 && cfg_ns_check(&tmp, err, errcap) < 0) return HR_EINVAL;
    if (rc == 0) {
        *cfg = tmp;
        return 0;
    }
    if (rc < 0) return fail(err, errcap, "out of memory");
    if (rc == ctx.err_line) return fail(err, errcap, "line %d: %s", rc, ctx.msg);
    return fail(err, errcap, "line %d: syntax error (want key = value or [section])", rc);
}

int cfg_load_file(cfg_t *cfg, const char *path, char *err, size_t errcap)
{
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, errcap, "%s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    int rc = 0;
    for (;;) {
        if (!buf) {
            rc = fail(err, errcap, "%s: out of memory", path);
            break;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
        if (len + 1 == cap) {
            if (cap >= (1u << 20)) {
                rc = fail(err, errcap, "%s: file too large (max 1 MiB)", path);
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) free(buf);
            buf = nb;
            cap *= 2;
        }
    }
    if (rc == 0 && ferror(f)) rc = fail(err, errcap, "%s: read error", path);
    fclose(f);
    if (rc == 0) {
        buf[len] = '\0';
        if (memchr(buf, '\0', len)) {
            rc = fail(err, errcap, "%s: contains a NUL byte", path);
        } else {
            char msg[300];
            rc = cfg_parse_string(cfg, buf, msg, sizeof(msg));
            if (rc < 0) fail(err, errcap, "%s: %s", path, msg);
        }
    }
    free(buf);
    return rc;
}

/* ---- flags ---- */

static bool is_config_flag(const char *a) { return strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0; }

int cfg_from_args(cfg_t *cfg, int argc, char **argv, char *err, size_t errcap)
{
    cfg_t tmp = *cfg;
    /* Pass 1: configuration files, in the order given. */
    for (int i = 0; i < argc; i++) {
        const char *path = NULL;
        if (is_config_flag(argv[i])) {
            if (i + 1 >= argc) return fail(err, errcap, "%s: missing file name", argv[i]);
            path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            path = argv[i] + 9;
        } else if (strncmp(argv[i], "--", 2) == 0 && argv[i][2] && !strchr(argv[i], '=')) {
            i++; /* skip the value of "--key value" */
        }
        if (path) {
            int rc = cfg_load_file(&tmp, path, err, errcap);
            if (rc < 0) return rc;
        }
    }
    /* Pass 2: every other flag, in order. */
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (is_config_flag(a)) {
            i++;
            continue;
        }
        if (strncmp(a, "--config=", 9) == 0) continue;
        if (strncmp(a, "--", 2) != 0 || !a[2])
            return fail(err, errcap, "%s: unexpected argument (want --key value)", a);
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        char key[64];
        if (!norm_key(name, eq ? (size_t)(eq - name) : strlen(name), key, sizeof(key)) || !find_key(key))
            return fail(err, errcap, "%.*s: unknown option", (int)(eq ? (size_t)(eq - a) : strlen(a)), a);
        const char *value;
        if (eq) {
            value = eq + 1;
        } else {
            if (i + 1 >= argc) return fail(err, errcap, "--%s: missing value", name);
            value = argv[++i];
        }
        char msg[256];
        int rc = cfg_set(&tmp, key, value, msg, sizeof(msg));
        if (rc < 0) return fail(err, errcap, "--%s: %s", key, msg);
    }
    *cfg = tmp;
    return 0;
}

/* ---- dump ---- */

typedef textbuf_t dump_t;

static void put_size(dump_t *d, uint64_t v)
{
    if (v && v % (1ull << 30) == 0) tb_put(d, "%llug\n", (unsigned long long)(v >> 30));
    else if (v && v % (1ull << 20) == 0) tb_put(d, "%llum\n", (unsigned long long)(v >> 20));
    else if (v && v % (1ull << 10) == 0) tb_put(d, "%lluk\n", (unsigned long long)(v >> 10));
    else tb_put(d, "%llu\n", (unsigned long long)v);
}

size_t cfg_dump(const cfg_t *cfg, char *out, size_t cap)
{
    dump_t d = {out, cap, 0};
    const char *section = NULL;
    for (size_t i = 0; i < cfg_nkeys; i++) {
        const key_def_t *k = &cfg_keys[i];
        if (!section || strcmp(section, k->section) != 0) {
            tb_put(&d, "%s[%s]\n", section ? "\n" : "", k->section);
            section = k->section;
        }
        const char *field = (const char *)cfg + k->off;
        uint32_t u32 = 0;
        uint64_t u64 = 0;
        if (k->size == sizeof(uint32_t)) memcpy(&u32, field, sizeof(u32));
        if (k->size == sizeof(uint64_t)) memcpy(&u64, field, sizeof(u64));
        if (k->type == K_SECRET && field[0]) { /* secrets never leave the process */
            tb_put(&d, "; %s is set (hidden)\n", k->name);
            continue;
        }
        tb_put(&d, "%s = ", k->name);
        switch (k->type) {
        case K_ADDR:
        case K_ADDR_OPT:
        case K_STR:
        case K_PATH:
        case K_ORIGINS: tb_put(&d, "\"%s\"\n", field); break;
        case K_SECRET: tb_put(&d, "\"\"\n"); break; /* set ones never get here */
        case K_LOGLEVEL:
            tb_put(&d, "%s\n", cfg->log_level >= 0 && cfg->log_level <= 3 ? LOG_LEVELS[cfg->log_level] : "info");
            break;
        case K_POLICY: tb_put(&d, "%s\n", cfg->slow_policy == SLOW_DISCONNECT ? "disconnect" : "drop"); break;
        case K_BOOL: tb_put(&d, "%s\n", *(const bool *)field ? "true" : "false"); break;
        case K_CHOICE: tb_put(&d, "%s\n", k->choices[u32]); break;
        case K_COUNT:
        case K_MS: tb_put(&d, "%u\n", u32); break;
        case K_SIZE32: put_size(&d, u32); break;
        case K_SIZE64: put_size(&d, u64); break;
        case K_SECS:
            if (u32 % 1000 == 0) tb_put(&d, "%u\n", u32 / 1000);
            else if (u32 % 100 == 0) tb_put(&d, "%u.%u\n", u32 / 1000, u32 % 1000 / 100);
            else if (u32 % 10 == 0) tb_put(&d, "%u.%02u\n", u32 / 1000, u32 % 1000 / 10);
            else tb_put(&d, "%u.%03u\n", u32 / 1000, u32 % 1000);
            break;
        }
    }
    d.len += cfg_ns_dump(cfg, out, d.len, cap);
    if (cap && d.len >= cap) out[cap - 1] = '\0';
    return d.len < cap ? d.len : (cap ? cap - 1 : 0);
}

/* The bytes a key's value takes in cfg_t. */
static size_t key_bytes(const key_def_t *k)
{
    switch (k->type) {
    case K_ADDR:
    case K_ADDR_OPT:
    case K_STR:
    case K_PATH:
    case K_ORIGINS:
    case K_SECRET: return k->size;
    case K_SIZE64: return sizeof(uint64_t);
    case K_BOOL: return sizeof(bool);
    default: return sizeof(uint32_t);
    }
}

void cfg_diff(const cfg_t *a, const cfg_t *b, void (*cb)(void *arg, const char *key, const char *section), void *arg)
{
    for (size_t i = 0; i < cfg_nkeys; i++) {
        const key_def_t *k = &cfg_keys[i];
        const char *x = (const char *)a + k->off, *y = (const char *)b + k->off;
        /* secrets in constant time (the whole field: both configurations were zeroed and parsed
         * from the same arguments) */
        bool differ = k->type == K_SECRET           ? CRYPTO_memcmp(x, y, key_bytes(k)) != 0
                      : k->size && key_bytes(k) == k->size ? strncmp(x, y, k->size) != 0
                                                           : memcmp(x, y, key_bytes(k)) != 0;
        if (differ) cb(arg, k->name, k->section);
    }
}

bool cfg_copy_key(cfg_t *dst, const cfg_t *src, const char *key)
{
    const key_def_t *k = find_key(key);
    if (!k) return false;
    memcpy((char *)dst + k->off, (const char *)src + k->off, key_bytes(k));
    return true;
}
