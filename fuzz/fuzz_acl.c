/* fuzz_acl.c - the permissions file parser and the pattern functions of acl.h.
 *
 * The whole input is parsed as a permissions file (the result must be sorted and findable, then
 * freed). It is also split at '\n' into pattern, filter, channel and optional sub, and the
 * definition of acl_cover is checked on the one channel: when the channel is a valid name that
 * the filter matches, FULL implies acl_match and NONE implies no match. A channel used as a
 * filter must be covered FULL exactly when it matches. Any violation aborts. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/auth/acl.h"

static bool chan_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.' || c == '~' || c == ':' || c == '@' || c == '=' || c == '!';
}

/* A channel name, or an MQTT system topic name ('$' as the first byte). */
static bool name_valid(const char *c, size_t n)
{
    if (n == 0 || n > 255) return false;
    size_t lvl = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i] == '/') {
            if (lvl == 0 || i + 1 == n) return false;
            lvl = 0;
            continue;
        }
        if (!(i == 0 && c[i] == '$') && !chan_char((unsigned char)c[i])) return false;
        lvl++;
    }
    return true;
}

/* The next level of s[0..n) at *i: sets *l, *ln; returns false when none is left. */
static bool next_level(const char *s, size_t n, size_t *i, const char **l, size_t *ln)
{
    if (*i > n) return false;
    const char *e = memchr(s + *i, '/', n - *i);
    size_t end = e ? (size_t)(e - s) : n;
    *l = s + *i;
    *ln = end - *i;
    *i = end + 1;
    return true;
}

/* MQTT 5.0 4.7 matching of a valid filter against a topic name; -1 when f is not valid. */
static int filter_match(const char *f, size_t fn, const char *c, size_t cn)
{
    if (fn == 0 || memchr(f, '\0', fn)) return -1;
    size_t fi = 0, ci = 0;
    const char *fl, *cl;
    size_t fln, cln;
    bool first = true, ok = true;
    while (next_level(f, fn, &fi, &fl, &fln)) {
        bool plus = fln == 1 && fl[0] == '+', hash = fln == 1 && fl[0] == '#';
        if (!plus && !hash && (memchr(fl, '+', fln) || memchr(fl, '#', fln))) return -1;
        if (hash) {
            if (fi <= fn) return -1; /* '#' not last */
            if (first && c[0] == '$') ok = false;
            return ok;
        }
        if (!next_level(c, cn, &ci, &cl, &cln)) {
            ok = false;
        } else if (plus) {
            if (first && cl[0] == '$') ok = false;
        } else if (fln != cln || memcmp(fl, cl, fln) != 0) {
            ok = false;
        }
        first = false;
    }
    return ok && ci > cn;
}

static void check_rules(const char *d, size_t n)
{
    acl_rules_t r;
    char err[128];
    if (acl_rules_parse(&r, d, n, err, sizeof(err)) == 0) {
        for (uint32_t i = 0; i < r.nids; i++) {
            if (i && strcmp(r.ids[i - 1].id, r.ids[i].id) >= 0) abort();
            if (acl_rules_find(&r, r.ids[i].id, strlen(r.ids[i].id)) != &r.ids[i]) abort();
        }
        acl_rules_free(&r);
    } else if (strlen(err) == 0) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    const char *d = (const char *)data;
    check_rules(d, n);

    const char *part[4] = {"", "", "", ""};
    size_t len[4] = {0};
    size_t i = 0;
    for (int k = 0; k < 4 && i <= n; k++) {
        const char *e = memchr(d + i, '\n', n - i);
        size_t end = e ? (size_t)(e - d) : n;
        part[k] = d + i;
        len[k] = end - i;
        i = end + 1;
    }
    const char *p = part[0], *f = part[1], *c = part[2], *sub = part[3];
    size_t pn = len[0], fn = len[1], cn = len[2], sn = len[3];

    acl_cover_t cov = acl_cover(p, pn, sub, sn, f, fn);
    if (cov != ACL_NONE && !acl_pattern_valid(p, pn)) abort();
    bool pm = acl_match(p, pn, sub, sn, c, cn);
    if (name_valid(c, cn)) {
        int fm = filter_match(f, fn, c, cn);
        if (fm < 0 && cov != ACL_NONE) abort(); /* invalid filter */
        if (fm == 1 && cov == ACL_FULL && !pm) abort();
        if (fm == 1 && cov == ACL_NONE && pm) abort();
        /* a name is a filter that matches exactly itself */
        acl_cover_t self = acl_cover(p, pn, sub, sn, c, cn);
        if (self != (pm ? ACL_FULL : ACL_NONE)) abort();
    }

    /* a one-pattern list answers as the pattern */
    acl_list_t l = {0};
    if (acl_list_add(&l, p, pn) == 0) {
        if (acl_list_cover(&l, sub, sn, f, fn) != cov) abort();
        if (acl_list_match(&l, sub, sn, c, cn) != pm) abort();
    } else if (acl_pattern_valid(p, pn)) {
        abort();
    }
    acl_list_free(&l);
    return 0;
}
