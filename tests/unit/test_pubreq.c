/* test_pubreq.c - the publish routes' input checks (app/pubreq.h): the POST /publish body
 * (targets, unknown fields, limits, base64, idempotency keys), unknown query parameters, and the
 * personal channel of a user target. */
#include "../../src/app/pubreq.h"
#include "../../src/core/err.h"
#include "unit.h"

static int parse(const char *body, uint32_t max, pubreq_t *r, char *why)
{
    return pubreq_parse(body, strlen(body), max, r, why, 160);
}

TEST(parse_targets_in_order)
{
    pubreq_t r;
    char why[160];
    CHECK_EQ(parse("{\"users\":[\"42\"],\"channels\":[\"a\",\"b/c\"],\"data\":\"hi\"}", 10, &r, why), 0);
    CHECK_EQ(r.n, 3u);
    CHECK(!r.t[0].user && strcmp(r.t[0].name, "a") == 0);
    CHECK(!r.t[1].user && strcmp(r.t[1].name, "b/c") == 0);
    CHECK(r.t[2].user && strcmp(r.t[2].name, "42") == 0);
    CHECK_EQ(r.event_len, 7u);
    CHECK(memcmp(r.event, "message", 7) == 0);
    CHECK_EQ(r.data_len, 2u);
    CHECK(r.key == NULL);
    pubreq_free(&r);
}

TEST(parse_optional_fields)
{
    pubreq_t r;
    char why[160];
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":\"AAEC\",\"encoding\":\"base64\",\"event\":\"ev.1\","
                   "\"idempotency_key\":\"order 1042\"}", 10, &r, why), 0);
    CHECK_EQ(r.data_len, 3u);
    CHECK(memcmp(r.data, "\x00\x01\x02", 3) == 0);
    CHECK_EQ(r.event_len, 4u);
    CHECK_EQ(r.key_len, 10u);
    pubreq_free(&r);
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":\"x\",\"event\":null,\"users\":null}", 10, &r, why), 0);
    CHECK_EQ(r.n, 1u);
    pubreq_free(&r);
}

TEST(parse_user_destination)
{
    pubreq_t r;
    char why[160];
    CHECK_EQ(parse("{\"users\":[\"42\"],\"data\":\"x\",\"user_destination\":\"/queue/reply\"}", 10, &r, why), 0);
    CHECK_EQ(r.user_dest_len, 11u);
    CHECK(memcmp(r.user_dest, "queue/reply", 11) == 0);
    pubreq_free(&r);
    CHECK_EQ(parse("{\"users\":[\"42\"],\"data\":\"x\",\"user_destination\":\"/topic/a/b\"}", 10, &r, why), 0);
    pubreq_free(&r);
    CHECK_EQ(parse("{\"users\":[\"42\"],\"data\":\"x\"}", 10, &r, why), 0);
    CHECK(r.user_dest == NULL);
    pubreq_free(&r);
    CHECK_EQ(parse("{\"users\":[\"42\"],\"data\":\"x\",\"user_destination\":\"/queue/\"}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"users\":[\"42\"],\"data\":\"x\",\"user_destination\":\"queue/a\"}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"users\":[\"42\"],\"data\":\"x\",\"user_destination\":\"/exchange/a\"}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"users\":[\"42\"],\"data\":\"x\",\"user_destination\":5}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":\"x\",\"user_destination\":\"/queue/a\"}", 10, &r, why), HR_EINVAL);
    CHECK(strcmp(why, "user_destination needs users") == 0);
}

TEST(parse_refusals)
{
    pubreq_t r;
    char why[160];
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":\"x\",\"dleay\":5}", 10, &r, why), HR_EINVAL);
    CHECK(strcmp(why, "unknown field: dleay") == 0);
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":\"x\",\"delay\":5,\"at\":5}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":\"x\",\"delay\":0}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":\"x\",\"at\":\"tomorrow\"}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":\"x\",\"delay\":5}", 10, &r, why), 0);
    CHECK_EQ(r.delay, 5u);
    pubreq_free(&r);
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":\"x\",\"at\":1796547600}", 10, &r, why), 0);
    CHECK_EQ(r.at_ms, 1796547600000ull);
    pubreq_free(&r);
    uint64_t at = 0;
    CHECK_EQ(pubreq_at_text("2026-12-06T09:00:00Z", 20, &at), 0);
    CHECK_EQ(at, 1796547600000ull);
    CHECK_EQ(pubreq_at_text("2026-12-06T10:00:00.25+01:00", 28, &at), 0);
    CHECK_EQ(at, 1796547600250ull);
    CHECK_EQ(pubreq_at_text("2026-12-06t08:30:00-00:30", 25, &at), 0);
    CHECK_EQ(at, 1796547600000ull);
    CHECK_EQ(pubreq_at_text("1796547600", 10, &at), 0);
    CHECK_EQ(at, 1796547600000ull);
    CHECK_EQ(pubreq_at_text("2026-02-29T00:00:00Z", 20, &at), HR_EINVAL); /* not a leap year */
    CHECK_EQ(pubreq_at_text("2028-02-29T00:00:00Z", 20, &at), 0);
    CHECK_EQ(pubreq_at_text("2026-12-06T09:00:00", 19, &at), HR_EINVAL); /* no offset */
    CHECK_EQ(pubreq_at_text("2026-13-06T09:00:00Z", 20, &at), HR_EINVAL);
    CHECK_EQ(pubreq_at_text("2026-12-06T24:00:00Z", 20, &at), HR_EINVAL);
    CHECK_EQ(pubreq_at_text("0", 1, &at), HR_EINVAL);
    CHECK_EQ(pubreq_at_text("", 0, &at), HR_EINVAL);
    uint32_t delay;
    CHECK_EQ(pubreq_delay_text("31536001", 8, &delay), HR_EINVAL);
    CHECK_EQ(pubreq_delay_text("60", 2, &delay), 0);
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":\"x\",\"ttl\":0}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":\"x\",\"ttl\":\"5\"}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":\"x\",\"ttl\":315360001}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":\"x\",\"ttl\":5}", 10, &r, why), 0);
    CHECK_EQ(r.ttl, 5u);
    pubreq_free(&r);
    uint32_t ttl = 0;
    CHECK_EQ(pubreq_ttl_text("60", 2, &ttl), 0);
    CHECK_EQ(ttl, 60u);
    CHECK_EQ(pubreq_ttl_text("0", 1, &ttl), HR_EINVAL);
    CHECK_EQ(pubreq_ttl_text("-1", 2, &ttl), HR_EINVAL);
    CHECK_EQ(pubreq_ttl_text("9999999999", 10, &ttl), HR_EINVAL);
    CHECK_EQ(pubreq_ttl_text("", 0, &ttl), HR_EINVAL);
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":\"x\",\"de\\\"lay\":5}", 10, &r, why), HR_EINVAL);
    CHECK(strcmp(why, "unknown field: de?lay") == 0); /* JSON-safe */
    CHECK_EQ(parse("{\"channels\":[],\"data\":\"x\"}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"data\":\"x\"}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"channels\":[\"a/\"],\"data\":\"x\"}", 10, &r, why), HR_EINVAL);
    CHECK(strcmp(why, "invalid channel name") == 0);
    CHECK_EQ(parse("{\"users\":[\"a/b\"],\"data\":\"x\"}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"channels\":[1],\"data\":\"x\"}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"channels\":\"a\",\"data\":\"x\"}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"channels\":[\"a\"]}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":5}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":\"x\",\"event\":\"a b\"}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":\"!!\",\"encoding\":\"base64\"}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":\"x\",\"encoding\":\"hex\"}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":\"x\",\"idempotency_key\":\"\"}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"data\":\"x\",\"idempotency_key\":\"\\n\"}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{\"channels\":[\"a\"],\"channels\":[\"b\"],\"data\":\"x\"}", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("[1]", 10, &r, why), HR_EINVAL);
    CHECK_EQ(parse("{", 10, &r, why), HR_EINVAL);
    CHECK(r.root == NULL && r.t == NULL); /* nothing left to free */
}

TEST(parse_limit)
{
    pubreq_t r;
    char why[160];
    CHECK_EQ(parse("{\"channels\":[\"a\",\"b\"],\"users\":[\"1\"],\"data\":\"x\"}", 2, &r, why), HR_EFULL);
    CHECK_EQ(parse("{\"channels\":[\"a\",\"b\"],\"users\":[\"1\"],\"data\":\"x\"}", 3, &r, why), 0);
    pubreq_free(&r);
}

TEST(key_valid)
{
    char k[130];
    memset(k, 'a', sizeof(k));
    CHECK(pubreq_key_valid(k, 128));
    CHECK(!pubreq_key_valid(k, 129));
    CHECK(!pubreq_key_valid(k, 0));
    CHECK(pubreq_key_valid("a b~", 4));
    CHECK(!pubreq_key_valid("a\tb", 3));
    CHECK(!pubreq_key_valid("\xc3\xa9", 2));
}

TEST(query_check)
{
    static const char *const known[] = {"event", "token", NULL};
    char bad[72];
    CHECK_EQ(pubreq_query_check(SPAN_LIT(""), known, bad, sizeof(bad)), 0);
    CHECK_EQ(pubreq_query_check(SPAN_LIT("event=a&token=t"), known, bad, sizeof(bad)), 0);
    CHECK_EQ(pubreq_query_check(SPAN_LIT("event=a&&"), known, bad, sizeof(bad)), 0);
    CHECK_EQ(pubreq_query_check(SPAN_LIT("ev%65nt=a"), known, bad, sizeof(bad)), 0);
    CHECK_EQ(pubreq_query_check(SPAN_LIT("event=a&ttl=5"), known, bad, sizeof(bad)), HR_EINVAL);
    CHECK(strcmp(bad, "ttl") == 0);
    CHECK_EQ(pubreq_query_check(SPAN_LIT("delay"), known, bad, sizeof(bad)), HR_EINVAL);
    CHECK(strcmp(bad, "delay") == 0);
    CHECK_EQ(pubreq_query_check(SPAN_LIT("%22x%22=1"), known, bad, sizeof(bad)), HR_EINVAL);
    CHECK(strcmp(bad, "?x?") == 0);
    CHECK_EQ(pubreq_query_check(SPAN_LIT("%zz=1"), known, bad, sizeof(bad)), HR_EINVAL);
    CHECK_EQ(pubreq_query_check(SPAN_LIT("=1"), known, bad, sizeof(bad)), 0);
}

TEST(user_channel)
{
    char out[256];
    CHECK_EQ(pubreq_user_channel("user/{sub}", "42", 2, out, sizeof(out)), 7);
    CHECK(strcmp(out, "user/42") == 0);
    CHECK_EQ(pubreq_user_channel("{sub}/inbox/{sub}", "u", 1, out, sizeof(out)), 9);
    CHECK(strcmp(out, "u/inbox/u") == 0);
    CHECK_EQ(pubreq_user_channel("user/x{sub}", "42", 2, out, sizeof(out)), HR_EINVAL); /* '{' is no channel char */
    CHECK_EQ(pubreq_user_channel("user/{sub}/#", "42", 2, out, sizeof(out)), HR_EINVAL);
    CHECK_EQ(pubreq_user_channel("", "42", 2, out, sizeof(out)), HR_EINVAL);
    CHECK_EQ(pubreq_user_channel("user/{sub}", "a/b", 3, out, sizeof(out)), HR_EINVAL);
    CHECK_EQ(pubreq_user_channel("user/{sub}", "42", 2, out, 7), HR_EINVAL); /* no room for the NUL */
}

TEST(channel_user)
{
    const char *u = NULL;
    CHECK_EQ(pubreq_channel_user("user/{sub}", "user/42", 7, &u), 2u);
    CHECK(memcmp(u, "42", 2) == 0);
    CHECK_EQ(pubreq_channel_user("{sub}/inbox/{sub}", "ab/inbox/ab", 11, &u), 2u);
    CHECK(memcmp(u, "ab", 2) == 0);
    CHECK_EQ(pubreq_channel_user("{sub}/inbox/{sub}", "ab/inbox/ac", 11, &u), 0u); /* two users */
    CHECK_EQ(pubreq_channel_user("user/{sub}", "user/42/x", 9, &u), 0u);          /* a level too many */
    CHECK_EQ(pubreq_channel_user("user/{sub}", "user", 4, &u), 0u);
    CHECK_EQ(pubreq_channel_user("user/{sub}", "users/42", 8, &u), 0u);
    CHECK_EQ(pubreq_channel_user("user/{sub}", "user/", 5, &u), 0u);  /* an empty id */
    CHECK_EQ(pubreq_channel_user("user/{sub}", "user/..", 7, &u), 0u); /* not a valid id */
    CHECK_EQ(pubreq_channel_user("", "user/42", 7, &u), 0u);
    CHECK_EQ(pubreq_channel_user("news", "news", 4, &u), 0u); /* no {sub}: nobody's */
    /* the two functions agree */
    char out[64];
    ssize_t n = pubreq_user_channel("a/{sub}/b", "x.y", 3, out, sizeof(out));
    CHECK_EQ(pubreq_channel_user("a/{sub}/b", out, (size_t)n, &u), 3u);
    CHECK(memcmp(u, "x.y", 3) == 0);
}

TEST(parse_broadcast)
{
    pubreq_t r = {0};
    char why[160];
    CHECK_EQ(parse("{\"broadcast\":true,\"users\":[\"7\"],\"data\":\"x\"}", 8, &r, why), 0);
    CHECK_EQ(r.n, 2u);
    CHECK(r.t[0].user && !r.t[0].broadcast);
    CHECK(r.t[1].broadcast && !r.t[1].user && r.t[1].name == NULL);
    pubreq_free(&r);
    CHECK_EQ(parse("{\"broadcast\":true,\"data\":\"x\"}", 8, &r, why), 0);
    CHECK_EQ(r.n, 1u);
    pubreq_free(&r);
    CHECK_EQ(parse("{\"broadcast\":false,\"data\":\"x\"}", 8, &r, why), HR_EINVAL); /* no target */
    pubreq_free(&r);
    CHECK_EQ(parse("{\"broadcast\":1,\"data\":\"x\"}", 8, &r, why), HR_EINVAL);
    pubreq_free(&r);
    CHECK_EQ(parse("{\"broadcast\":true,\"channels\":[\"a\"],\"data\":\"x\"}", 1, &r, why), HR_EFULL);
    pubreq_free(&r);
}

int main(void)
{
    RUN(parse_targets_in_order);
    RUN(parse_optional_fields);
    RUN(parse_user_destination);
    RUN(parse_refusals);
    RUN(parse_limit);
    RUN(key_valid);
    RUN(query_check);
    RUN(user_channel);
    RUN(channel_user);
    RUN(parse_broadcast);
    return UNIT_DONE();
}
