/* test_textbuf.c - the text builders: textbuf_t (fixed buffer, counting what did not fit) and
 * jbuf_t (growing, JSON strings). */
#include <stdlib.h>
#include <string.h>

#include "../../src/core/textbuf.h"
#include "unit.h"

TEST(textbuf_counts_what_does_not_fit)
{
    char out[8];
    textbuf_t t = {out, sizeof(out), 0};
    tb_put(&t, "%s", "abc");
    tb_put(&t, "%d", 12345678);
    CHECK_EQ(t.len, 11);          /* the whole text's length */
    CHECK(strcmp(out, "abc1234") == 0); /* what fits, NUL-terminated */
}

TEST(jbuf_grows_and_escapes)
{
    jbuf_t b = {0};
    jb_put(&b, "{", 1);
    jb_str(&b, "a\"b<\n", 5);
    for (int i = 0; i < 200; i++) jb_fmt(&b, ",%d", i); /* past the first 256 bytes */
    jb_put(&b, "}", 1);
    CHECK(!b.oom);
    CHECK(strncmp(b.p, "{\"a\\\"b\\u003c\\n\",0,1,2,", 22) == 0);
    CHECK_EQ(b.n, strlen(b.p));
    CHECK(b.cap > 256);
    CHECK(strcmp(b.p + b.n - 5, ",199}") == 0);
    jb_str(&b, "", 0);
    CHECK(strcmp(b.p + b.n - 2, "\"\"") == 0);
    free(b.p);
}

int main(void)
{
    RUN(textbuf_counts_what_does_not_fit);
    RUN(jbuf_grows_and_escapes);
    return UNIT_DONE();
}
