/* acl.c - channel permission patterns, pattern lists and the permissions file (see acl.h).
 *
 * Matching walks the pattern and the channel level by level; nothing is allocated.
 *
 * Covering treats a pattern and a filter as two descriptions of sets of channel names and
 * compares the sets exactly. Both have the same shape: a fixed part of levels, each a literal or
 * "any" ('+'), optionally followed by '#'. The set such a shape describes is
 *   - its lengths: exactly the fixed count a, or with '#' every length >= max(a, 1) ("a/#"
 *     matches "a"; "#" matches every name of one level or more);
 *   - at each position, independently: the literal, or any level. At position 0 "any" always
 *     means "any level not starting with '$'", because "any" there only comes from a wildcard
 *     first level, which never matches '$' names.
 * For a name length k both sets are products of per-position sets, so the intersection is
 * non-empty iff some length is common and every position before max(a, b) is compatible, and
 * the filter's set is a subset iff its lengths are a subset and every position's set is a subset.
 * The universe of names is herald's channel names plus names whose first level starts with '$'
 * (MQTT's "$SYS/..."); a literal level outside it (an empty level, a '*', a '$' elsewhere)
 * matches nothing. The 255-byte limit on names is ignored: that can only turn a true FULL or
 * NONE into PARTIAL (a filter naming only over-long channels), the safe direction. */
#include "acl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/span.h"

/* A filter has at most this many levels before it can only match names over 255 bytes. */
#define ACL_MAX_LEVELS 256
#define ACL_MAX_RULES 1000000u

enum { LV_LIT, LV_ANY };

typedef struct {
    const char *s;
    size_t n;
    int kind;
} lvl_t;

/* A pattern or filter split into its fixed levels plus whether it ends with '#'. */
typedef struct {
    lvl_t l[ACL_MAX_LEVELS];
    size_t n;
    bool hash;
} shape_t;

static bool chan_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.' || c == '~' || c == ':' || c == '@' || c == '=' || c == '!';
}

/* True when s[0..n) can be level number `first ? 0 : >0` of a name in the universe. */
static bool level_real(const char *s, size_t n, bool first)
{
    if (n == 0) return first; /* "/a": a channel's first level may be empty (MQTT's "/TopicA") */
    if (n > 255) return false;
    size_t i = (first && s[0] == '$') ? 1 : 0;
    if (i == 1 && n == 1) return true;
    for (; i < n; i++)
        if (!chan_char((unsigned char)s[i])) return false;
    return true;
}

static bool is_lvl(const char *s, size_t n, const char *lit)
{
    size_t ln = strlen(lit);
    return n == ln && memcmp(s, lit, n) == 0;
}

/* The end of the level starting at s[i] within s[0..n). */
static size_t level_end(const char *s, size_t n, size_t i)
{
    const char *slash = memchr(s + i, '/', n - i);
    return slash ? (size_t)(slash - s) : n;
}

bool acl_pattern_valid(const char *p, size_t n)
{
    if (n == 0 || n > ACL_MAX_PATTERN) return false;
    for (size_t i = 0;;) {
        size_t e = level_end(p, n, i);
        const char *l = p + i;
        size_t ln = e - i;
        if (ln == 0 && (i > 0 || e == n)) return false; /* only the first level may be empty ("/a/#") */
        if (is_lvl(l, ln, "#")) {
            if (e != n) return false;
        } else if (!is_lvl(l, ln, "+") && !is_lvl(l, ln, "{sub}")) {
            for (size_t k = 0; k < ln; k++) {
                unsigned char c = (unsigned char)l[k];
                if (c <= 0x20 || c == 0x7f || c == '+' || c == '#' || c == '{' || c == '}') return false;
            }
        }
        if (e == n) return true;
        i = e + 1;
    }
}

bool acl_sub_valid(const char *s, size_t n)
{
    if (n == 0 || n > ACL_MAX_SUB) return false;
    if (is_lvl(s, n, ".") || is_lvl(s, n, "..")) return false;
    for (size_t i = 0; i < n; i++)
        if (!chan_char((unsigned char)s[i])) return false;
    return true;
}

bool acl_match(const char *p, size_t pn, const char *sub, size_t sn, const char *c, size_t cn)
{
    if (!acl_pattern_valid(p, pn) || cn == 0) return false;
    size_t pi = 0, ci = 0;
    bool first = true, c_done = false;
    for (;;) {
        size_t pe = level_end(p, pn, pi);
        const char *pl = p + pi;
        size_t pln = pe - pi;
        if (is_lvl(pl, pln, "#")) return !(first && c[0] == '$'); /* the parent and all below */
        if (c_done) return false;                                  /* the pattern wants another level */
        size_t ce = level_end(c, cn, ci);
        const char *cl = c + ci;
        size_t cln = ce - ci;
        if (is_lvl(pl, pln, "+")) {
            if (first && cln > 0 && cl[0] == '$') return false;
        } else if (is_lvl(pl, pln, "{sub}")) {
            if (!acl_sub_valid(sub, sn) || cln != sn || memcmp(cl, sub, sn) != 0) return false;
        } else if (cln != pln || memcmp(cl, pl, pln) != 0) {
            return false;
        }
        first = false;
        bool p_last = pe == pn;
        c_done = ce == cn;
        if (p_last) return c_done;
        pi = pe + 1;
        if (!c_done) ci = ce + 1;
    }
}

/* Splits valid pattern p into sh, substituting {sub}. Returns false when the pattern matches
 * nothing: {sub} without a valid sub, or a literal level outside the universe. */
static bool shape_pattern(shape_t *sh, const char *p, size_t pn, const char *sub, size_t sn)
{
    sh->n = 0;
    sh->hash = false;
    for (size_t i = 0;;) {
        size_t e = level_end(p, pn, i);
        lvl_t lv = {p + i, e - i, LV_LIT};
        if (is_lvl(lv.s, lv.n, "#")) {
            sh->hash = true;
            return true;
        }
        if (is_lvl(lv.s, lv.n, "+")) {
            lv.kind = LV_ANY;
        } else if (is_lvl(lv.s, lv.n, "{sub}")) {
            if (!acl_sub_valid(sub, sn)) return false;
            lv.s = sub;
            lv.n = sn;
        } else if (!level_real(lv.s, lv.n, sh->n == 0)) {
            return false;
        }
        sh->l[sh->n++] = lv; /* a valid pattern has at most 128 levels */
        if (e == pn) return true;
        i = e + 1;
    }
}

/* Splits MQTT filter f into sh. Returns false when f is not a valid filter or matches no name
 * of the universe (an empty or otherwise impossible literal level, too many levels). */
static bool shape_filter(shape_t *sh, const char *f, size_t fn)
{
    sh->n = 0;
    sh->hash = false;
    if (fn == 0 || memchr(f, '\0', fn)) return false;
    for (size_t i = 0;;) {
        size_t e = level_end(f, fn, i);
        lvl_t lv = {f + i, e - i, LV_LIT};
        bool wild = memchr(lv.s, '+', lv.n) || memchr(lv.s, '#', lv.n);
        if (is_lvl(lv.s, lv.n, "#")) {
            if (e != fn) return false;
            sh->hash = true;
            return true;
        }
        if (is_lvl(lv.s, lv.n, "+"))
            lv.kind = LV_ANY;
        else if (wild || !level_real(lv.s, lv.n, sh->n == 0))
            return false; /* invalid filter, or a level no name has */
        if (sh->n == ACL_MAX_LEVELS) return false;
        sh->l[sh->n++] = lv;
        if (e == fn) return true;
        i = e + 1;
    }
}

/* The shape's level at position i (positions past the fixed part are "any"; only asked when the
 * lengths allow it). */
static lvl_t at(const shape_t *sh, size_t i)
{
    if (i < sh->n) return sh->l[i];
    return (lvl_t){NULL, 0, LV_ANY};
}

static size_t max1(size_t a) { return a ? a : 1; }

static bool lengths_meet(const shape_t *p, const shape_t *f)
{
    if (!p->hash && !f->hash) return p->n == f->n;
    if (p->hash && !f->hash) return f->n >= max1(p->n);
    if (!p->hash && f->hash) return p->n >= max1(f->n);
    return true;
}

/* True when every length of f is a length of p. */
static bool lengths_within(const shape_t *p, const shape_t *f)
{
    if (!f->hash) return p->hash ? f->n >= max1(p->n) : f->n == p->n;
    return p->hash && max1(p->n) <= max1(f->n);
}

/* Can a name have level a and level b at position i (i == 0: first level)? */
static bool level_meet(lvl_t a, lvl_t b, size_t i)
{
    if (a.kind == LV_LIT && b.kind == LV_LIT) return a.n == b.n && memcmp(a.s, b.s, a.n) == 0;
    if (a.kind == LV_ANY && b.kind == LV_ANY) return true;
    lvl_t lit = a.kind == LV_LIT ? a : b;
    return i > 0 || !lit.n || lit.s[0] != '$'; /* "any" at position 0 excludes '$' names */
}

/* Is every level f allows at position i one that p allows there? */
static bool level_within(lvl_t p, lvl_t f, size_t i)
{
    if (p.kind == LV_LIT) return f.kind == LV_LIT && f.n == p.n && memcmp(f.s, p.s, p.n) == 0;
    if (f.kind == LV_ANY) return true; /* at position 0 both mean "not starting with '$'" */
    return i > 0 || !f.n || f.s[0] != '$';
}

acl_cover_t acl_cover(const char *p, size_t pn, const char *sub, size_t sn, const char *f, size_t fn)
{
    if (!acl_pattern_valid(p, pn)) return ACL_NONE;
    shape_t ps, fs; /* about 12 KiB of stack, no allocation */
    if (!shape_pattern(&ps, p, pn, sub, sn) || !shape_filter(&fs, f, fn) || !lengths_meet(&ps, &fs))
        return ACL_NONE;
    size_t top = ps.n > fs.n ? ps.n : fs.n;
    for (size_t i = 0; i < top; i++)
        if (!level_meet(at(&ps, i), at(&fs, i), i)) return ACL_NONE;
    if (!lengths_within(&ps, &fs)) return ACL_PARTIAL;
    /* positions past `top` are "any" on both sides; when f is exact its names never reach past
     * f->n, and then top == f->n because f's length is one of p's */
    for (size_t i = 0; i < top; i++)
        if (!level_within(at(&ps, i), at(&fs, i), i)) return ACL_PARTIAL;
    return ACL_FULL;
}

/* ---- pattern lists ---- */

int acl_list_add(acl_list_t *l, const char *p, size_t n)
{
    if (!acl_pattern_valid(p, n)) return -1;
    if (l->n == l->cap) {
        if (l->cap >= UINT32_MAX / 2) return -2;
        uint32_t cap = l->cap ? l->cap * 2 : 8;
        char **np = realloc(l->p, cap * sizeof(*np));
        if (!np) return -2;
        l->p = np;
        uint16_t *nl = realloc(l->len, cap * sizeof(*nl));
        if (!nl) return -2;
        l->len = nl;
        l->cap = cap;
    }
    char *copy = malloc(n + 1);
    if (!copy) return -2;
    memcpy(copy, p, n);
    copy[n] = '\0';
    l->p[l->n] = copy;
    l->len[l->n] = (uint16_t)n;
    l->n++;
    return 0;
}

int acl_list_extend(acl_list_t *l, const acl_list_t *src)
{
    for (uint32_t i = 0; i < src->n; i++) {
        int rc = acl_list_add(l, src->p[i], src->len[i]);
        if (rc) return -2;
    }
    return 0;
}

void acl_list_free(acl_list_t *l)
{
    for (uint32_t i = 0; i < l->n; i++) free(l->p[i]);
    free(l->p);
    free(l->len);
    memset(l, 0, sizeof(*l));
}

bool acl_list_match(const acl_list_t *l, const char *sub, size_t sn, const char *c, size_t cn)
{
    for (uint32_t i = 0; i < l->n; i++)
        if (acl_match(l->p[i], l->len[i], sub, sn, c, cn)) return true;
    return false;
}

acl_cover_t acl_list_cover(const acl_list_t *l, const char *sub, size_t sn, const char *f, size_t fn)
{
    acl_cover_t best = ACL_NONE;
    for (uint32_t i = 0; i < l->n && best != ACL_FULL; i++) {
        acl_cover_t c = acl_cover(l->p[i], l->len[i], sub, sn, f, fn);
        if (c > best) best = c;
    }
    return best;
}

/* ---- the permissions file ---- */

enum { ACT_SUB = 1, ACT_PUB = 2 };

/* A user:ID rule, collected while parsing; slices point into the file text. */
typedef struct {
    const char *id, *pat;
    uint16_t idn, pn;
    uint8_t act;
    uint32_t line;
} idrule_t;

static void seterr(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || cap == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* Quoted tokens in messages are cut at 48 bytes. */
#define TOK_FMT "'%.*s%s'"
#define TOK_ARG(s, n) (int)((n) > 48 ? 48 : (n)), (s), ((n) > 48 ? "..." : "")

static bool is_ws(char c) { return c == ' ' || c == '\t'; }

static int idrule_cmp(const void *a, const void *b)
{
    const idrule_t *x = a, *y = b;
    int c = span_cmp((span_t){x->id, x->idn}, (span_t){y->id, y->idn});
    return c ? c : x->line < y->line ? -1 : x->line > y->line;
}

static int who_add(acl_who_t *w, uint8_t act, const char *p, size_t n)
{
    if ((act & ACT_SUB) && acl_list_add(&w->sub, p, n)) return -1;
    if ((act & ACT_PUB) && acl_list_add(&w->pub, p, n)) return -1;
    return 0;
}

/* Sorts the user:ID rules and merges them into r->ids. Returns 0 or -1 (out of memory). */
static int build_ids(acl_rules_t *r, idrule_t *v, size_t nv)
{
    if (nv == 0) return 0;
    qsort(v, nv, sizeof(*v), idrule_cmp);
    size_t groups = 1;
    for (size_t i = 1; i < nv; i++)
        if (v[i].idn != v[i - 1].idn || memcmp(v[i].id, v[i - 1].id, v[i].idn) != 0) groups++;
    r->ids = calloc(groups, sizeof(*r->ids));
    if (!r->ids) return -1;
    for (size_t i = 0; i < nv; i++) {
        if (i == 0 || v[i].idn != v[i - 1].idn || memcmp(v[i].id, v[i - 1].id, v[i].idn) != 0) {
            acl_who_t *w = &r->ids[r->nids++];
            w->id = strndup(v[i].id, v[i].idn);
            if (!w->id) return -1;
        }
        if (who_add(&r->ids[r->nids - 1], v[i].act, v[i].pat, v[i].pn)) return -1;
    }
    return 0;
}

/* Reads the next whitespace-separated field of s[*i..e). Returns its length (0: none left) or
 * -1 with a message when it holds a control character. */
static long next_field(const char *s, size_t *i, size_t e, const char **f, unsigned ln, char *err, size_t cap)
{
    while (*i < e && is_ws(s[*i])) (*i)++;
    *f = s + *i;
    size_t st = *i;
    while (*i < e && !is_ws(s[*i])) {
        unsigned char c = (unsigned char)s[*i];
        if (c < 0x20 || c == 0x7f) {
            seterr(err, cap, "line %u: control character 0x%02x", ln, c);
            return -1;
        }
        (*i)++;
    }
    return (long)(*i - st);
}

enum { LINE_ERR = -1, LINE_SKIP, LINE_STORED, LINE_ID };

/* Parses line ln, s[i..e). An anonymous or user rule is added to r (LINE_STORED), a user:ID rule
 * is returned in *rule (LINE_ID); LINE_SKIP for a blank or comment line; LINE_ERR with the
 * message in err. */
static int parse_line(acl_rules_t *r, idrule_t *rule, const char *s, size_t i, size_t e, unsigned ln, char *err,
                      size_t cap)
{
    while (i < e && is_ws(s[i])) i++;
    if (i == e || s[i] == '#') return LINE_SKIP;
    const char *f[3];
    long fl[3];
    for (int k = 0; k < 3; k++) {
        fl[k] = next_field(s, &i, e, &f[k], ln, err, cap);
        if (fl[k] < 0) return LINE_ERR;
        if (fl[k] == 0) {
            seterr(err, cap, "line %u: want WHO ACTION PATTERN", ln);
            return LINE_ERR;
        }
    }
    size_t wn = (size_t)fl[0], an = (size_t)fl[1], pn = (size_t)fl[2];
    const char *id = NULL;
    size_t idn = 0;
    if (!is_lvl(f[0], wn, "anonymous") && !is_lvl(f[0], wn, "user")) {
        if (wn < 5 || memcmp(f[0], "user:", 5) != 0) {
            seterr(err, cap, "line %u: unknown WHO " TOK_FMT " (want anonymous, user or user:ID)", ln,
                   TOK_ARG(f[0], wn));
            return LINE_ERR;
        }
        id = f[0] + 5;
        idn = wn - 5;
        if (!acl_sub_valid(id, idn)) {
            seterr(err, cap, "line %u: invalid user id " TOK_FMT " (want 1-%d of A-Z a-z 0-9 _ - . ~ : @ = !)", ln,
                   TOK_ARG(id, idn), ACL_MAX_SUB);
            return LINE_ERR;
        }
    }
    uint8_t act;
    if (is_lvl(f[1], an, "subscribe"))
        act = ACT_SUB;
    else if (is_lvl(f[1], an, "publish"))
        act = ACT_PUB;
    else if (is_lvl(f[1], an, "pubsub"))
        act = ACT_SUB | ACT_PUB;
    else {
        seterr(err, cap, "line %u: unknown action " TOK_FMT " (want subscribe, publish or pubsub)", ln,
               TOK_ARG(f[1], an));
        return LINE_ERR;
    }
    const char *p = f[2];
    if (!acl_pattern_valid(p, pn)) {
        seterr(err, cap, "line %u: invalid pattern " TOK_FMT, ln, TOK_ARG(p, pn));
        return LINE_ERR;
    }
    /* a literal level no channel can have is almost surely a typo ("chat/x*") */
    for (size_t k = 0, lvl = 0; k < pn; lvl++) {
        size_t ke = level_end(p, pn, k);
        const char *l = p + k;
        size_t n = ke - k;
        if (!is_lvl(l, n, "+") && !is_lvl(l, n, "#") && !is_lvl(l, n, "{sub}") && !level_real(l, n, lvl == 0)) {
            seterr(err, cap, "line %u: pattern " TOK_FMT " can never match: level " TOK_FMT
                   " has a character channel names cannot contain", ln, TOK_ARG(p, pn), TOK_ARG(l, n));
            return LINE_ERR;
        }
        k = ke + 1;
    }
    bool anon = is_lvl(f[0], wn, "anonymous");
    if (anon && memmem(p, pn, "{sub}", 5)) {
        seterr(err, cap, "line %u: pattern " TOK_FMT " uses {sub}, which never matches for anonymous", ln,
               TOK_ARG(p, pn));
        return LINE_ERR;
    }
    while (i < e && is_ws(s[i])) i++;
    if (i < e && s[i] != '#') {
        size_t n = e - i;
        seterr(err, cap, "line %u: unexpected " TOK_FMT " after the pattern (a comment starts with '#' after it)",
               ln, TOK_ARG(s + i, n));
        return LINE_ERR;
    }
    if (id) {
        *rule = (idrule_t){id, p, (uint16_t)idn, (uint16_t)pn, act, ln};
        return LINE_ID;
    }
    if (who_add(anon ? &r->anon : &r->user, act, p, pn)) {
        seterr(err, cap, "line %u: out of memory", ln);
        return LINE_ERR;
    }
    return LINE_STORED;
}

int acl_rules_parse(acl_rules_t *r, const char *text, size_t n, char *err, size_t cap)
{
    memset(r, 0, sizeof(*r));
    idrule_t *v = NULL;
    size_t nv = 0, vcap = 0, nrules = 0;
    unsigned ln = 0;
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(text + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - text) : n, next = nl ? e + 1 : n;
        if (e > i && text[e - 1] == '\r') e--;
        ln++;
        idrule_t rule;
        int rc = parse_line(r, &rule, text, i, e, ln, err, cap);
        i = next;
        if (rc == LINE_ERR) goto fail;
        if (rc == LINE_SKIP) continue;
        if (++nrules > ACL_MAX_RULES) {
            seterr(err, cap, "line %u: too many rules (at most %u)", ln, ACL_MAX_RULES);
            goto fail;
        }
        if (rc == LINE_STORED) continue;
        if (nv == vcap) {
            size_t nc = vcap ? vcap * 2 : 16;
            idrule_t *nvp = realloc(v, nc * sizeof(*v));
            if (!nvp) {
                seterr(err, cap, "line %u: out of memory", ln);
                goto fail;
            }
            v = nvp;
            vcap = nc;
        }
        v[nv++] = rule;
    }
    if (build_ids(r, v, nv)) {
        seterr(err, cap, "out of memory");
        goto fail;
    }
    free(v);
    return 0;
fail:
    free(v);
    acl_rules_free(r);
    return -1;
}

const acl_who_t *acl_rules_find(const acl_rules_t *r, const char *id, size_t n)
{
    size_t lo = 0, hi = r->nids;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = span_cmp(span_of(r->ids[mid].id), (span_t){id, n});
        if (c == 0) return &r->ids[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void who_free(acl_who_t *w)
{
    free(w->id);
    acl_list_free(&w->sub);
    acl_list_free(&w->pub);
}

void acl_rules_free(acl_rules_t *r)
{
    who_free(&r->anon);
    who_free(&r->user);
    for (uint32_t i = 0; i < r->nids; i++) who_free(&r->ids[i]);
    free(r->ids);
    memset(r, 0, sizeof(*r));
}
