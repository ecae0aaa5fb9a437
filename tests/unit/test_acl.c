/* test_acl.c - channel permissions through acl.h: pattern and id validity, matching ('+', '#',
 * {sub}, '$' names), covering of MQTT filters (hand-picked cases and a brute-force comparison
 * with the definition over a finite universe of names), pattern lists, and the permissions file
 * parser (errors with line numbers, the comment rule, CRLF, merging, acl_rules_find). Inputs go
 * through guard pages so an over-read crashes. */
#include "../../src/auth/acl.h"
#include "unit.h"

#include <stdbool.h>

static bool M(const char *p, const char *sub, const char *c)
{
    return acl_match(gp(p, strlen(p)), strlen(p), gp(sub, strlen(sub)), strlen(sub), gp(c, strlen(c)), strlen(c));
}

static acl_cover_t C(const char *p, const char *sub, const char *f)
{
    return acl_cover(gp(p, strlen(p)), strlen(p), gp(sub, strlen(sub)), strlen(sub), gp(f, strlen(f)), strlen(f));
}

static bool PV(const char *p) { return acl_pattern_valid(gp(p, strlen(p)), strlen(p)); }

TEST(pattern_validity)
{
    const char *good[] = {"#", "+", "a", "a/b", "a/#", "+/+/#", "user/{sub}/#", "{sub}", "$SYS/#", "a.b/~c:d@e=f!",
                          "chat/*", "a/{sub}/+", "/a", "/#", "/+/x"};
    const char *bad[] = {"", "/", "//a", "a/", "a//b", "a#", "a/#/b", "#/a", "a+", "+a", "a/b c", "a\tb", "{sub",
                         "x{sub}", "{sub}x", "{SUB}", "a/{}/b", "a\x01", "a\x7f", "##", "++"};
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
        if (!PV(good[i])) printf("#   should be valid: %s\n", good[i]);
        CHECK(PV(good[i]));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        if (PV(bad[i])) printf("#   should be invalid: %s\n", bad[i]);
        CHECK(!PV(bad[i]));
    }
    char p[300];
    memset(p, 'a', sizeof(p));
    CHECK(acl_pattern_valid(p, ACL_MAX_PATTERN));
    CHECK(!acl_pattern_valid(p, ACL_MAX_PATTERN + 1));
    CHECK(!acl_pattern_valid("a\0b", 3));
    gp_release();
}

/* MQTT's "/TopicA" (an empty first level) is a channel: patterns and filters cover it */
TEST(leading_slash)
{
    CHECK(acl_match("/a", 2, "", 0, "/a", 2));
    CHECK(acl_match("/#", 2, "", 0, "/a/b", 4));
    CHECK(acl_match("#", 1, "", 0, "/a", 2));
    CHECK(acl_match("+/a", 3, "", 0, "/a", 2));
    CHECK(!acl_match("+", 1, "", 0, "/a", 2));
    CHECK(!acl_match("/a", 2, "", 0, "a", 1));
    CHECK(!acl_match("a/#", 3, "", 0, "/a", 2));
    CHECK_EQ(C("#", "", "/a"), ACL_FULL);
    CHECK_EQ(C("#", "", "/#"), ACL_FULL);
    CHECK_EQ(C("/#", "", "/a/+"), ACL_FULL);
    CHECK_EQ(C("/a", "", "/a"), ACL_FULL);
    CHECK_EQ(C("/a", "", "+/a"), ACL_PARTIAL);
    CHECK_EQ(C("/#", "", "#"), ACL_PARTIAL);
    CHECK_EQ(C("a/#", "", "/a"), ACL_NONE);
    CHECK_EQ(C("/a", "", "a"), ACL_NONE);
    gp_release();
}

TEST(sub_validity)
{
    CHECK(acl_sub_valid("42", 2));
    CHECK(acl_sub_valid("Al_ice-1.x~y:z@w=v!", 19));
    CHECK(acl_sub_valid("...", 3));
    CHECK(!acl_sub_valid("", 0));
    CHECK(!acl_sub_valid(".", 1));
    CHECK(!acl_sub_valid("..", 2));
    CHECK(!acl_sub_valid("a/b", 3));
    CHECK(!acl_sub_valid("+", 1));
    CHECK(!acl_sub_valid("#", 1));
    CHECK(!acl_sub_valid("$SYS", 4));
    CHECK(!acl_sub_valid("a b", 3));
    CHECK(!acl_sub_valid("a\0", 2));
    char s[200];
    memset(s, 'x', sizeof(s));
    CHECK(acl_sub_valid(s, ACL_MAX_SUB));
    CHECK(!acl_sub_valid(s, ACL_MAX_SUB + 1));
}

TEST(matching)
{
    CHECK(M("a/#", "", "a"));
    CHECK(M("a/#", "", "a/b"));
    CHECK(M("a/#", "", "a/b/c"));
    CHECK(!M("a/#", "", "ab"));
    CHECK(!M("a/#", "", "b/a"));
    CHECK(M("#", "", "x"));
    CHECK(M("#", "", "x/y/z"));
    CHECK(!M("#", "", "$SYS"));
    CHECK(!M("#", "", "$SYS/x"));
    CHECK(!M("+", "", "$SYS"));
    CHECK(!M("+/#", "", "$SYS/x"));
    CHECK(M("$SYS/#", "", "$SYS/x"));
    CHECK(M("$SYS/#", "", "$SYS"));
    CHECK(M("$SYS/+", "", "$SYS/x"));
    CHECK(M("a/+", "", "a/x"));
    CHECK(!M("a/+", "", "a"));
    CHECK(!M("a/+", "", "a/x/y"));
    CHECK(M("+/+", "", "a/b"));
    CHECK(!M("+/+", "", "a"));
    CHECK(M("+/#", "", "a"));
    CHECK(M("a/b", "", "a/b"));
    CHECK(!M("a/b", "", "a/bc"));
    CHECK(!M("a/b", "", "a/b/c"));
    CHECK(!M("a/b", "", "a"));
    CHECK(M("user/{sub}/#", "42", "user/42"));
    CHECK(M("user/{sub}/#", "42", "user/42/inbox"));
    CHECK(!M("user/{sub}/#", "42", "user/43/inbox"));
    CHECK(!M("user/{sub}/#", "42", "user/420"));
    CHECK(!M("user/{sub}/#", "", "user/{sub}"));
    CHECK(!M("user/{sub}/#", "", "user"));
    CHECK(!M("user/{sub}", "a/b", "user/a/b"));
    CHECK(!M("user/{sub}", "+", "user/x"));
    CHECK(M("{sub}", "alice", "alice"));
    CHECK(!M("a//b", "", "a//b")); /* invalid pattern */
    CHECK(!M("a", "", ""));
    gp_release();
}

/* The brief's and MQTT's corner cases for covering. */
TEST(cover_cases)
{
    const char *P = "user/{sub}/#";
    CHECK_EQ(C(P, "42", "#"), ACL_PARTIAL);
    CHECK_EQ(C(P, "42", "+/#"), ACL_PARTIAL);
    CHECK_EQ(C(P, "42", "user/+/inbox"), ACL_PARTIAL);
    CHECK_EQ(C(P, "42", "user/42/#"), ACL_FULL);
    CHECK_EQ(C(P, "42", "user/42"), ACL_FULL);
    CHECK_EQ(C(P, "42", "user/42/+/x"), ACL_FULL);
    CHECK_EQ(C(P, "42", "user/#"), ACL_PARTIAL);
    CHECK_EQ(C(P, "42", "user"), ACL_NONE);
    CHECK_EQ(C(P, "42", "user/43/#"), ACL_NONE);
    CHECK_EQ(C(P, "42", "+/42/x"), ACL_PARTIAL);
    CHECK_EQ(C(P, "42", "$SYS/#"), ACL_NONE);
    CHECK_EQ(C(P, "", "user/42/#"), ACL_NONE);
    CHECK_EQ(C(P, "", "#"), ACL_NONE);
    CHECK_EQ(C(P, "a/b", "#"), ACL_NONE);
    CHECK_EQ(C("a/+", "", "a/#"), ACL_PARTIAL);
    CHECK_EQ(C("a/+", "", "a/+"), ACL_FULL);
    CHECK_EQ(C("a/+", "", "a/b"), ACL_FULL);
    CHECK_EQ(C("a/+", "", "a"), ACL_NONE);
    CHECK_EQ(C("a/+", "", "a/+/+"), ACL_NONE);
    CHECK_EQ(C("#", "", "$SYS/x"), ACL_NONE);
    CHECK_EQ(C("#", "", "$SYS/#"), ACL_NONE);
    CHECK_EQ(C("+/#", "", "$SYS/#"), ACL_NONE);
    CHECK_EQ(C("#", "", "#"), ACL_FULL);
    CHECK_EQ(C("#", "", "+/#"), ACL_FULL);
    CHECK_EQ(C("+/#", "", "#"), ACL_FULL);
    CHECK_EQ(C("+/+/#", "", "#"), ACL_PARTIAL);
    CHECK_EQ(C("+", "", "#"), ACL_PARTIAL);
    CHECK_EQ(C("#", "", "a/b/+"), ACL_FULL);
    CHECK_EQ(C("$SYS/#", "", "$SYS/#"), ACL_FULL);
    CHECK_EQ(C("$SYS/#", "", "#"), ACL_NONE);
    CHECK_EQ(C("$SYS/+", "", "$SYS/#"), ACL_PARTIAL);
    CHECK_EQ(C("a/#", "", "a"), ACL_FULL);
    CHECK_EQ(C("a", "", "a/#"), ACL_PARTIAL);
    /* filters that match no channel, invalid filters and patterns */
    CHECK_EQ(C("#", "", "a//b"), ACL_NONE);
    CHECK_EQ(C("#", "", "a/"), ACL_NONE);
    CHECK_EQ(C("#", "", "a/*"), ACL_NONE);
    CHECK_EQ(C("#", "", "a/$x"), ACL_NONE);
    CHECK_EQ(C("#", "", "a#"), ACL_NONE);
    CHECK_EQ(C("#", "", "#/a"), ACL_NONE);
    CHECK_EQ(C("#", "", ""), ACL_NONE);
    CHECK_EQ(C("a//b", "", "#"), ACL_NONE);
    CHECK_EQ(C("a/*", "", "#"), ACL_NONE);
    /* a filter deeper than any 255-byte name */
    char f[1024];
    size_t n = 0;
    for (int i = 0; i < 300; i++) n += (size_t)sprintf(f + n, i ? "/+" : "+");
    CHECK_EQ(acl_cover("#", 1, "", 0, f, n), ACL_NONE);
    gp_release();
}

/* ---- brute force: acl_cover against its definition over a finite universe ---- */

/* Splits s at '/' into lv (at most 8 levels). */
static int split(const char *s, const char *lv[8], size_t ln[8])
{
    int k = 0;
    for (const char *b = s;; k++) {
        const char *e = strchr(b, '/');
        lv[k] = b;
        ln[k] = e ? (size_t)(e - b) : strlen(b);
        if (!e) return k + 1;
        b = e + 1;
    }
}

static bool lvis(const char *l, size_t n, const char *lit) { return n == strlen(lit) && memcmp(l, lit, n) == 0; }

/* An independent MQTT filter matcher (MQTT 5.0 4.7): '+' one level, '#' the parent and below,
 * wildcard first levels never match '$' names. */
static bool mqtt_match(const char *f, const char *name)
{
    const char *fl[8], *nl[8];
    size_t fln[8], nln[8];
    int fk = split(f, fl, fln), nk = split(name, nl, nln);
    if (name[0] == '$' && (lvis(fl[0], fln[0], "+") || lvis(fl[0], fln[0], "#"))) return false;
    for (int i = 0; i < fk; i++) {
        if (lvis(fl[i], fln[i], "#")) return nk >= i;
        if (i >= nk) return false;
        if (!lvis(fl[i], fln[i], "+") && !(fln[i] == nln[i] && memcmp(fl[i], nl[i], fln[i]) == 0)) return false;
    }
    return fk == nk;
}

#define MAXN 512
#define MAXF 512
typedef struct {
    uint64_t w[MAXN / 64];
} bits_t;

static const char *NAME_LV[] = {"a", "b", "42", "z", "$SYS"};
static const char *PAT_LV[] = {"a", "b", "42", "{sub}", "+", "#", "$SYS"};

static char names[MAXN][32];
static int nnames;

static void gen_names(char *buf, size_t len, int depth)
{
    for (size_t i = 0; i < sizeof(NAME_LV) / sizeof(*NAME_LV); i++) {
        if (depth > 0 && NAME_LV[i][0] == '$') continue;
        size_t n = len + (size_t)sprintf(buf + len, "%s%s", depth ? "/" : "", NAME_LV[i]);
        if (nnames < MAXN) strcpy(names[nnames++], buf);
        if (depth < 3) gen_names(buf, n, depth + 1);
        buf[len] = '\0';
    }
}

/* Every string of 1..3 levels over PAT_LV; the caller keeps the valid patterns or filters. */
static int gen_shapes(char out[][32], int max)
{
    int n = 0;
    size_t k = sizeof(PAT_LV) / sizeof(*PAT_LV);
    for (size_t a = 0; a < k; a++) {
        snprintf(out[n++], 32, "%s", PAT_LV[a]);
        for (size_t b = 0; b < k; b++) {
            snprintf(out[n++], 32, "%s/%s", PAT_LV[a], PAT_LV[b]);
            for (size_t c = 0; c < k && n < max; c++) snprintf(out[n++], 32, "%s/%s/%s", PAT_LV[a], PAT_LV[b], PAT_LV[c]);
        }
    }
    return n;
}

static bool filter_valid(const char *f)
{
    const char *lv[8];
    size_t ln[8];
    int k = split(f, lv, ln);
    for (int i = 0; i < k; i++) {
        bool wild = memchr(lv[i], '#', ln[i]) || memchr(lv[i], '+', ln[i]);
        if (wild && !lvis(lv[i], ln[i], "+") && !(lvis(lv[i], ln[i], "#") && i == k - 1)) return false;
    }
    return true;
}

/* The pattern with {sub} replaced, for cross-checking acl_match with mqtt_match. */
static void substitute(const char *p, const char *sub, char *out)
{
    const char *lv[8];
    size_t ln[8];
    int k = split(p, lv, ln);
    out[0] = '\0';
    for (int i = 0; i < k; i++) {
        if (i) strcat(out, "/");
        if (lvis(lv[i], ln[i], "{sub}"))
            strcat(out, sub);
        else
            strncat(out, lv[i], ln[i]);
    }
}

TEST(cover_model)
{
    char buf[64] = "";
    nnames = 0;
    gen_names(buf, 0, 0);
    CHECK_EQ(nnames, 5 + 5 * 4 + 5 * 16 + 5 * 64);
    static char shapes[MAXF][32];
    int nshapes = gen_shapes(shapes, MAXF);
    CHECK_EQ(nshapes, 7 + 49 + 343);
    static bits_t fbits[MAXF];
    static int fcount[MAXF];
    int nf = 0, checked = 0, counts[3] = {0};
    static const char *fl[MAXF];
    for (int i = 0; i < nshapes; i++) {
        if (!filter_valid(shapes[i])) continue;
        fl[nf] = shapes[i];
        memset(&fbits[nf], 0, sizeof(bits_t));
        fcount[nf] = 0;
        for (int c = 0; c < nnames; c++)
            if (mqtt_match(shapes[i], names[c])) {
                fbits[nf].w[c / 64] |= 1ull << (c % 64);
                fcount[nf]++;
            }
        nf++;
    }
    const char *subs[] = {"42", "z", ""};
    for (size_t s = 0; s < 3; s++) {
        const char *sub = subs[s];
        for (int i = 0; i < nshapes; i++) {
            const char *p = shapes[i];
            if (!acl_pattern_valid(p, strlen(p))) continue;
            bits_t pb = {{0}};
            char ps[64];
            substitute(p, sub, ps);
            bool has_sub = strstr(p, "{sub}") != NULL;
            for (int c = 0; c < nnames; c++) {
                bool m = acl_match(p, strlen(p), sub, strlen(sub), names[c], strlen(names[c]));
                bool want = (has_sub && !*sub) ? false : mqtt_match(ps, names[c]);
                if (m != want) {
                    printf("#   acl_match(%s, sub=%s, %s) = %d\n", p, sub, names[c], m);
                    CHECK(m == want);
                }
                if (m) pb.w[c / 64] |= 1ull << (c % 64);
            }
            for (int f = 0; f < nf; f++) {
                int both = 0;
                for (int w = 0; w < MAXN / 64; w++) both += __builtin_popcountll(pb.w[w] & fbits[f].w[w]);
                acl_cover_t want = both == 0 ? ACL_NONE : both == fcount[f] ? ACL_FULL : ACL_PARTIAL;
                acl_cover_t got = acl_cover(p, strlen(p), sub, strlen(sub), fl[f], strlen(fl[f]));
                checked++;
                counts[want]++;
                if (got != want) {
                    printf("#   acl_cover(%s, sub=%s, %s) = %d, want %d\n", p, sub, fl[f], got, want);
                    CHECK_EQ(got, want);
                }
            }
        }
    }
    /* the model must exercise all three answers */
    CHECK(counts[ACL_NONE] > 1000 && counts[ACL_PARTIAL] > 1000 && counts[ACL_FULL] > 1000);
    printf("#   %d pattern/filter pairs (none %d, partial %d, full %d)\n", checked, counts[0], counts[1], counts[2]);
}

TEST(lists)
{
    acl_list_t l = {0}, m = {0};
    CHECK_EQ(acl_list_add(&l, "a/+", 3), 0);
    CHECK_EQ(acl_list_add(&l, "a//", 3), -1);
    CHECK_EQ(acl_list_add(&l, "b/#", 3), 0);
    CHECK_EQ(l.n, 2);
    CHECK(acl_list_match(&l, "", 0, "a/x", 3));
    CHECK(acl_list_match(&l, "", 0, "b", 1));
    CHECK(!acl_list_match(&l, "", 0, "a", 1));
    CHECK_EQ(acl_list_cover(&l, "", 0, "b/x/#", 5), ACL_FULL);
    CHECK_EQ(acl_list_cover(&l, "", 0, "a/#", 3), ACL_PARTIAL);
    CHECK_EQ(acl_list_cover(&l, "", 0, "c/#", 3), ACL_NONE);
    CHECK_EQ(acl_list_cover(&m, "", 0, "#", 1), ACL_NONE);
    for (int i = 0; i < 100; i++) CHECK_EQ(acl_list_add(&m, "{sub}", 5), 0);
    CHECK_EQ(acl_list_extend(&m, &l), 0);
    CHECK_EQ(m.n, 102);
    CHECK(acl_list_match(&m, "me", 2, "me", 2));
    CHECK(acl_list_match(&m, "me", 2, "a/q", 3));
    CHECK_MEM(m.p[101], m.len[101], "b/#");
    acl_list_free(&l);
    acl_list_free(&m);
    CHECK_EQ(l.n, 0);
    CHECK(l.p == NULL);
}

/* Parses text; returns the rc and leaves the message in err. */
static int P(acl_rules_t *r, const char *text, char *err)
{
    err[0] = '\0';
    return acl_rules_parse(r, gp(text, strlen(text)), strlen(text), err, 200);
}

TEST(parse_file)
{
    acl_rules_t r;
    char err[200];
    const char *text = "# herald permissions\n"
                       "\n"
                       "   \t\n"
                       "anonymous  subscribe  public/#\r\n"
                       "user       subscribe  user/{sub}/#   # own inbox\n"
                       "user\tpubsub\tchat/+\n"
                       "user:ops   publish    alerts/#\n"
                       "  # indented comment\n"
                       "user:bob   subscribe  #\n"
                       "user:ops   subscribe  #  # everything\n"
                       "user:alice pubsub     x/y\t#tight comment\r\n"
                       "user:ops   pubsub     ops/+";
    CHECK_EQ(P(&r, text, err), 0);
    CHECK_MEM(err, strlen(err), "");
    CHECK_EQ(r.anon.sub.n, 1);
    CHECK_EQ(r.anon.pub.n, 0);
    CHECK_MEM(r.anon.sub.p[0], r.anon.sub.len[0], "public/#");
    CHECK_EQ(r.user.sub.n, 2);
    CHECK_EQ(r.user.pub.n, 1);
    CHECK_MEM(r.user.sub.p[0], r.user.sub.len[0], "user/{sub}/#");
    CHECK_MEM(r.user.pub.p[0], r.user.pub.len[0], "chat/+");
    CHECK(r.anon.id == NULL && r.user.id == NULL);
    CHECK_EQ(r.nids, 3);
    CHECK(strcmp(r.ids[0].id, "alice") == 0 && strcmp(r.ids[1].id, "bob") == 0 && strcmp(r.ids[2].id, "ops") == 0);
    const acl_who_t *ops = acl_rules_find(&r, "ops", 3);
    CHECK(ops != NULL);
    if (ops) {
        /* merged in file order */
        CHECK_EQ(ops->pub.n, 2);
        CHECK_EQ(ops->sub.n, 2);
        CHECK_MEM(ops->pub.p[0], ops->pub.len[0], "alerts/#");
        CHECK_MEM(ops->pub.p[1], ops->pub.len[1], "ops/+");
        CHECK_MEM(ops->sub.p[0], ops->sub.len[0], "#");
        CHECK_MEM(ops->sub.p[1], ops->sub.len[1], "ops/+");
    }
    const acl_who_t *bob = acl_rules_find(&r, "bob", 3);
    CHECK(bob && bob->sub.n == 1 && bob->pub.n == 0 && bob->sub.len[0] == 1 && bob->sub.p[0][0] == '#');
    const acl_who_t *alice = acl_rules_find(&r, "alice", 5);
    CHECK(alice && alice->sub.n == 1 && alice->pub.n == 1);
    CHECK(acl_rules_find(&r, "op", 2) == NULL);
    CHECK(acl_rules_find(&r, "opsx", 4) == NULL);
    CHECK(acl_rules_find(&r, "", 0) == NULL);
    CHECK(acl_rules_find(&r, "zed", 3) == NULL);
    CHECK(acl_list_match(&r.user.sub, "42", 2, "user/42/inbox", 13));
    acl_rules_free(&r);
    CHECK_EQ(r.nids, 0);

    CHECK_EQ(P(&r, "", err), 0);
    CHECK_EQ(r.nids, 0);
    acl_rules_free(&r);
    CHECK_EQ(P(&r, "\n\n# only comments\r\n", err), 0);
    acl_rules_free(&r);
    gp_release();
}

TEST(parse_many_ids)
{
    /* many ids in reverse order, each twice: sorted and merged */
    size_t cap = 2000 * 48, n = 0;
    char *text = malloc(cap);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 999; i >= 0; i--)
            n += (size_t)snprintf(text + n, cap - n, "user:u%04d %s u/%d\n", i, pass ? "publish" : "subscribe", i);
    acl_rules_t r;
    char err[200] = "";
    CHECK_EQ(acl_rules_parse(&r, text, n, err, sizeof(err)), 0);
    CHECK_EQ(r.nids, 1000);
    for (uint32_t i = 1; i < r.nids; i++) CHECK(strcmp(r.ids[i - 1].id, r.ids[i].id) < 0);
    for (int i = 0; i < 1000; i++) {
        char id[16], ch[16];
        snprintf(id, sizeof(id), "u%04d", i);
        snprintf(ch, sizeof(ch), "u/%d", i);
        const acl_who_t *w = acl_rules_find(&r, id, strlen(id));
        CHECK(w && w->sub.n == 1 && w->pub.n == 1 && acl_list_match(&w->pub, "", 0, ch, strlen(ch)));
    }
    acl_rules_free(&r);
    free(text);
}

TEST(parse_errors)
{
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"user subscribe a\n\nuser read a/b\n", "line 3: unknown action 'read' (want subscribe, publish or pubsub)"},
        {"anyone subscribe a", "line 1: unknown WHO 'anyone' (want anonymous, user or user:ID)"},
        {"users subscribe a", "line 1: unknown WHO 'users' (want anonymous, user or user:ID)"},
        {"user:a/b subscribe a", "line 1: invalid user id 'a/b' (want 1-128 of A-Z a-z 0-9 _ - . ~ : @ = !)"},
        {"user: subscribe a", "line 1: invalid user id '' (want 1-128 of A-Z a-z 0-9 _ - . ~ : @ = !)"},
        {"user:.. subscribe a", "line 1: invalid user id '..' (want 1-128 of A-Z a-z 0-9 _ - . ~ : @ = !)"},
        {"# c\nuser subscribe\n", "line 2: want WHO ACTION PATTERN"},
        {"user\n", "line 1: want WHO ACTION PATTERN"},
        {"user subscribe # all\n", "line 1: unexpected 'all' after the pattern (a comment starts with '#' after it)"},
        {"user subscribe a/b c\n", "line 1: unexpected 'c' after the pattern (a comment starts with '#' after it)"},
        {"user # subscribe a\n", "line 1: unknown action '#' (want subscribe, publish or pubsub)"},
        {"user subscribe a/b#c\n", "line 1: invalid pattern 'a/b#c'"},
        {"user subscribe a/#/b\n", "line 1: invalid pattern 'a/#/b'"},
        {"user subscribe a//b\n", "line 1: invalid pattern 'a//b'"},
        {"user subscribe {sub\n", "line 1: invalid pattern '{sub'"},
        {"\r\nuser subscribe chat/*\r\n",
         "line 2: pattern 'chat/*' can never match: level '*' has a character channel names cannot contain"},
        {"user subscribe a/$SYS\n",
         "line 1: pattern 'a/$SYS' can never match: level '$SYS' has a character channel names cannot contain"},
        {"anonymous subscribe u/{sub}\n",
         "line 1: pattern 'u/{sub}' uses {sub}, which never matches for anonymous"},
        {"user subscribe a\rb\n", "line 1: control character 0x0d"},
        {"user subscribe a\r\r\n", "line 1: control character 0x0d"},
        {"user sub\x01scribe a\n", "line 1: control character 0x01"},
        {"user subscribe aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/+/\n",
         "line 1: invalid pattern 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        acl_rules_t r;
        char err[200];
        int rc = P(&r, cases[i].text, err);
        CHECK_EQ(rc, -1);
        if (strcmp(err, cases[i].err) != 0) {
            printf("#   case %zu: got \"%s\"\n#   want \"%s\"\n", i, err, cases[i].err);
            CHECK(0);
        }
        CHECK(r.nids == 0 && r.ids == NULL && r.user.sub.n == 0 && r.anon.sub.p == NULL);
        acl_rules_free(&r);
    }
    /* a NUL byte, a tiny error buffer, a NULL error buffer */
    acl_rules_t r;
    char err[8];
    CHECK_EQ(acl_rules_parse(&r, "user subscribe a\0b", 18, err, sizeof(err)), -1);
    CHECK(strcmp(err, "line 1:") == 0);
    CHECK_EQ(acl_rules_parse(&r, "bad", 3, NULL, 0), -1);
    /* an error after rules were stored frees them */
    const char *late = "user subscribe a\nuser:x publish b\nanonymous pubsub c\nbad\n";
    CHECK_EQ(acl_rules_parse(&r, late, strlen(late), NULL, 0), -1);
    CHECK(r.user.sub.n == 0 && r.nids == 0);
    gp_release();
}

int main(void)
{
    RUN(pattern_validity);
    RUN(leading_slash);
    RUN(sub_validity);
    RUN(matching);
    RUN(cover_cases);
    RUN(cover_model);
    RUN(lists);
    RUN(parse_file);
    RUN(parse_many_ids);
    RUN(parse_errors);
    return UNIT_DONE();
}
