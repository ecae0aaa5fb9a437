/* test_encode.c - the script-safe JSON encoding shared by polls and the iframe stream, cursors. */
#include "../../src/core/err.h"
#include "../../src/transport/transport.h"
#include "unit.h"

TEST(json_escape_is_script_safe)
{
    const char *in = "</script><b>&\"\\\n\x01\xe2\x80\xa8\xe2\x80\xa9 é";
    char out[256];
    size_t n = json_escape(in, strlen(in), out, sizeof(out));
    CHECK_MEM(out, n,
              "\\u003c/script\\u003e\\u003cb\\u003e\\u0026\\\"\\\\\\n\\u0001\\u2028\\u2029 é");
}

TEST(json_message_text_and_binary)
{
    msg_t *m = msg_new("news", 4, "message", 7, "hi \"x\"", 6, 7, 1234);
    bytes_t *b = json_encode_msg(m);
    CHECK_MEM(b->data, b->len,
              "{\"id\":\"7\",\"channel\":\"news\",\"event\":\"message\",\"time\":1234,\"data\":\"hi \\\"x\\\"\"}");
    bytes_unref(b);
    msg_unref(m);
    m = msg_new("n", 1, "e", 1, "\x00\xff\x01", 3, 1, 5);
    b = json_encode_msg(m);
    CHECK_MEM(b->data, b->len,
              "{\"id\":\"1\",\"channel\":\"n\",\"event\":\"e\",\"time\":5,\"data\":\"AP8B\",\"encoding\":\"base64\"}");
    bytes_unref(b);
    msg_unref(m);
}

TEST(encode_once_cache)
{
    msg_t *m = msg_new("n", 1, "e", 1, "abc", 3, 1, 5);
    bytes_t *a = msg_encoded(m, ENC_JSON, json_encode_msg);
    bytes_t *b = msg_encoded(m, ENC_JSON, json_encode_msg);
    CHECK(a == b); /* the same bytes for every subscriber */
    msg_unref(m);
}

TEST(cursor_text)
{
    uint64_t c[3] = {12, 0, 7};
    char out[64];
    size_t n = cursor_format(c, 3, out, sizeof(out));
    CHECK_MEM(out, n, "12,0,7");
    n = cursor_format(c, 1, out, sizeof(out));
    CHECK_MEM(out, n, "12");
}

TEST(cursor_parsing)
{
    uint64_t c[3];
    CHECK_EQ(cursor_parse("12,0,7", 6, c, 3), 0);
    CHECK_EQ(c[0], 12);
    CHECK_EQ(c[2], 7);
    CHECK_EQ(cursor_parse("12,0", 4, c, 3), HR_EINVAL);     /* too few */
    CHECK_EQ(cursor_parse("1,2,3,4", 7, c, 3), HR_EINVAL);  /* too many */
    CHECK_EQ(cursor_parse("1,,2", 4, c, 3), HR_EINVAL);
    CHECK_EQ(cursor_parse("1,2,", 4, c, 2), HR_EINVAL);
    CHECK_EQ(cursor_parse("-1", 2, c, 1), HR_EINVAL);
    CHECK_EQ(cursor_parse("18446744073709551615", 20, c, 1), 0);
    CHECK_EQ(cursor_parse("18446744073709551616", 20, c, 1), HR_EINVAL); /* overflow */
}

int main(void)
{
    RUN(json_escape_is_script_safe);
    RUN(json_message_text_and_binary);
    RUN(encode_once_cache);
    RUN(cursor_text);
    RUN(cursor_parsing);
    return UNIT_DONE();
}
