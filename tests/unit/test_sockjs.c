/* test_sockjs.c - unit tests for the SockJS framing codec (src/proto/sockjs.h): escaping out
 * (the protocol's server-side escape list, invalid UTF-8, script-safe text, exact buffer sizes),
 * decoding in (arrays, bare strings, every JSON escape, surrogates, broken input delivering
 * nothing, the message bound, in-place decoding), ids, callbacks and form fields. Inputs are
 * placed at the end of a page followed by a PROT_NONE page (gp), so an over-read crashes. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/core/err.h"
#include "../../src/proto/sockjs.h"
#include "unit.h"

static size_t quote(const char *s, size_t n, bool safe, char *out, size_t cap)
{
    return sockjs_quote(gp(s, n), n, safe, out, cap);
}

#define Q(lit, want)                                                                               \
    do {                                                                                           \
        char o_[512];                                                                              \
        size_t q_ = quote(lit, sizeof(lit) - 1, false, o_, sizeof(o_));                            \
        CHECK_MEM(o_, q_, want);                                                                   \
    } while (0)

TEST(quote_escapes)
{
    Q("", "\"\"");
    Q("a", "\"a\"");
    Q("say \"hi\" \\ /", "\"say \\\"hi\\\" \\\\ /\"");
    Q("\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\"");
    Q("\x00\x01\x1f\x7f", "\"\\u0000\\u0001\\u001f\\u007f\"");
    Q("\xc3\xa9\xe2\x98\x83\xf0\x9f\x98\x80", "\"\xc3\xa9\xe2\x98\x83\xf0\x9f\x98\x80\""); /* é ☃ 😀 verbatim */
    Q("\xe2\x80\x8c\xe2\x80\xa8\xe2\x81\xa0\xef\xbf\xb0\xef\xbf\xbf", "\"\\u200c\\u2028\\u2060\\ufff0\\uffff\"");
    Q("\xe2\x80\x8b", "\"\xe2\x80\x8b\""); /* U+200B is not on the list */
    Q("\xff\xc3", "\"\\u00ff\\u00c3\"");   /* not UTF-8: the bytes as code points */
    Q("\xed\xa0\x80", "\"\\u00ed\\u00a0\\u0080\""); /* an encoded surrogate is not UTF-8 */
    Q("<b>&", "\"<b>&\"");
    char o[64];
    size_t n = quote("</script>&", 10, true, o, sizeof(o));
    CHECK_MEM(o, n, "\"\\u003c/script\\u003e\\u0026\"");
}

TEST(quote_sizes)
{
    /* 6 * n + 2 always suffices; less may fail, never overflows */
    const char worst[] = "\x01\x01\x01\x01";
    char o[64];
    CHECK(quote(worst, 4, false, o, 26) == 26);
    for (size_t cap = 0; cap < 26; cap++) {
        char *g = malloc(cap ? cap : 1);
        CHECK_EQ(sockjs_quote(worst, 4, false, g, cap), 0);
        free(g);
    }
    CHECK_EQ(quote("a", 1, false, o, 8), 3);
    char f[64];
    size_t k = sockjs_close_frame(3000, "Go away!", f, sizeof(f));
    CHECK_MEM(f, k, "c[3000,\"Go away!\"]");
    k = sockjs_close_frame(2010, "a\"b", f, sizeof(f));
    CHECK_MEM(f, k, "c[2010,\"a\\\"b\"]");
    CHECK_EQ(sockjs_close_frame(3000, "Go away!", f, 10), 0);
}

typedef struct {
    int n;
    char buf[1024];
    size_t len;
    size_t lens[32];
    int stop_at;
} col_t;

static int collect(void *ctx, char *m, size_t n)
{
    col_t *c = ctx;
    if (c->n == c->stop_at) return HR_EFULL;
    memcpy(c->buf + c->len, m, n);
    c->len += n;
    c->lens[c->n++] = n;
    return 0;
}

static ssize_t dec(const char *in, bool bare, uint32_t max, col_t *c, const char **why)
{
    memset(c, 0, sizeof(*c));
    c->stop_at = -1;
    size_t n = strlen(in);
    char *scratch = malloc(n + 1);
    ssize_t rc = sockjs_decode(gp(in, n), n, bare, max, scratch, n, collect, c, why);
    free(scratch);
    return rc;
}

TEST(decode_arrays)
{
    col_t c;
    const char *why;
    CHECK_EQ(dec("[\"a\"]", false, 10, &c, &why), 1);
    CHECK_MEM(c.buf, c.len, "a");
    CHECK_EQ(dec(" [ \"a\" ,\t\"bc\"\r\n] ", false, 10, &c, &why), 2);
    CHECK_MEM(c.buf, c.len, "abc");
    CHECK_EQ(c.lens[1], 2);
    CHECK_EQ(dec("[]", false, 10, &c, &why), 0);
    CHECK_EQ(dec("[\"\"]", false, 10, &c, &why), 1);
    CHECK_EQ(c.lens[0], 0);
    CHECK_EQ(dec("[\"\\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u0000\\u00e9\\u2603\"]", false, 10, &c, &why), 1);
    CHECK_MEM(c.buf, c.len, "\" \\ / \b\f\n\r\t \0\xc3\xa9\xe2\x98\x83");
    CHECK_EQ(dec("[\"\\ud83d\\ude00|\\ud800|\\udc00|\\ud800\\u0041\"]", false, 10, &c, &why), 1);
    CHECK_MEM(c.buf, c.len, "\xf0\x9f\x98\x80|\xef\xbf\xbd|\xef\xbf\xbd|\xef\xbf\xbd" "A");
    CHECK_EQ(dec("[\"\xc3\xa9\"]", false, 10, &c, &why), 1); /* raw UTF-8 */
    CHECK_MEM(c.buf, c.len, "\xc3\xa9");
    CHECK_EQ(dec("\"bare\"", true, 10, &c, &why), 1);
    CHECK_MEM(c.buf, c.len, "bare");
    CHECK_EQ(dec("\"bare\"", false, 10, &c, &why), HR_EINVAL);
    CHECK_EQ(dec("[\"a\",\"b\",\"c\"]", false, 2, &c, &why), HR_EINVAL);
    CHECK(strcmp(why, "too many messages") == 0);
    CHECK_EQ(c.n, 0); /* checked before anything is delivered */
    CHECK_EQ(dec("[\"a\",\"b\",\"c\"]", false, 3, &c, &why), 3);
}

TEST(decode_broken)
{
    static const char *const bad[] = {
        "", " ", "[", "]", "[\"a", "[\"a\"", "[\"a\",]", "[,\"a\"]", "[\"a\" \"b\"]", "[1]", "[null]", "{\"a\":1}",
        "[\"a\"] x", "[\"a\"][\"b\"]", "[\"\\x\"]", "[\"\\u12\"]", "[\"\\u12g4\"]", "[\"\\\"]", "[\"a\nb\"]",
        "[\"\xff\"]", "[\"\xc3\"]", "[\"\xe0\x80\x80\"]", "[\"\xed\xa0\x80\"]", "[\"\xf4\x90\x80\x80\"]", "\"a", "\"a\" \"b\"",
        "[[\"a\"]]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        col_t c;
        const char *why = NULL;
        ssize_t rc = dec(bad[i], true, 100, &c, &why);
        if (rc != HR_EINVAL) printf("#   input %zu: %zd\n", i, rc);
        CHECK_EQ(rc, HR_EINVAL);
        CHECK(why && strcmp(why, "Broken JSON encoding.") == 0);
        CHECK_EQ(c.n, 0);
    }
}

TEST(decode_inplace_and_stop)
{
    char in[] = "[\"ab\\n\",\"\\u00e9x\",\"\"]";
    col_t c;
    memset(&c, 0, sizeof(c));
    c.stop_at = -1;
    const char *why;
    CHECK_EQ(sockjs_decode(in, strlen(in), false, 10, in, strlen(in), collect, &c, &why), 3);
    CHECK_MEM(c.buf, c.len, "ab\n\xc3\xa9x");
    char in2[] = "[\"a\",\"b\"]";
    memset(&c, 0, sizeof(c));
    c.stop_at = 1;
    CHECK_EQ(sockjs_decode(in2, strlen(in2), false, 10, in2, strlen(in2), collect, &c, &why), HR_EFULL);
    CHECK_EQ(c.n, 1);
}

TEST(ids_callbacks_forms)
{
    CHECK(sockjs_id_valid("000", 3));
    CHECK(sockjs_id_valid("abcdefg_i-j%20", 14));
    CHECK(!sockjs_id_valid("", 0));
    CHECK(!sockjs_id_valid("a.b", 3));
    CHECK(!sockjs_id_valid("a/b", 3));
    CHECK(!sockjs_id_valid("a b", 3));
    CHECK(!sockjs_id_valid("a\x01", 2));
    char longid[SOCKJS_MAX_ID + 1];
    memset(longid, 'x', sizeof(longid));
    CHECK(sockjs_id_valid(longid, SOCKJS_MAX_ID));
    CHECK(!sockjs_id_valid(longid, SOCKJS_MAX_ID + 1));
    CHECK(sockjs_callback_valid("callback", 8));
    CHECK(sockjs_callback_valid("_jp.a1b2-c", 10));
    CHECK(!sockjs_callback_valid("", 0));
    CHECK(!sockjs_callback_valid("a(b)", 4));
    CHECK(!sockjs_callback_valid("a;b", 3));
    CHECK(!sockjs_callback_valid("a b", 3));
    char out[64];
    const char *body = "x=1&d=%5B%22a+b%22%5D&z";
    ssize_t n = sockjs_form_field(gp(body, strlen(body)), strlen(body), "d", out, sizeof(out));
    CHECK_MEM(out, (size_t)n, "[\"a b\"]");
    CHECK_EQ(sockjs_form_field(gp("p=p", 3), 3, "d", out, sizeof(out)), HR_ENOTFOUND);
    CHECK_EQ(sockjs_form_field(gp("d=", 2), 2, "d", out, sizeof(out)), 0);
    CHECK_EQ(sockjs_form_field(gp("dd=1", 4), 4, "d", out, sizeof(out)), HR_ENOTFOUND);
    CHECK_EQ(sockjs_form_field(gp("d=%5", 4), 4, "d", out, sizeof(out)), HR_EINVAL);
    CHECK_EQ(sockjs_form_field(gp("d=%zz", 5), 5, "d", out, sizeof(out)), HR_EINVAL);
    CHECK_EQ(sockjs_form_field(gp("d=abcd", 6), 6, "d", out, 3), HR_EINVAL);
}

int main(void)
{
    RUN(quote_escapes);
    RUN(quote_sizes);
    RUN(decode_arrays);
    RUN(decode_broken);
    RUN(decode_inplace_and_stop);
    RUN(ids_callbacks_forms);
    gp_release();
    return UNIT_DONE();
}
