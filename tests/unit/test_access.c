/* test_access.c - the client behind a trusted proxy (X-Forwarded-For) and the access log's
 * redaction of credentials in request targets (http/access.h). */
#include <string.h>

#include "../../src/http/access.h"
#include "unit.h"

static const char *fwd(const ipset_t *t, const char *v)
{
    static char out[64];
    return http_access_forwarded(t, (span_t){v, strlen(v)}, out, sizeof(out)) ? out : NULL;
}

TEST(forwarded_takes_the_rightmost_untrusted)
{
    ipset_t t = {0};
    char err[80];
    CHECK_EQ(ipset_parse(&t, "10.0.0.5, 10.0.0.6 ::1", err, sizeof(err)), 0);
    CHECK_EQ(t.n, 3u);
    CHECK(strcmp(fwd(&t, "203.0.113.9"), "203.0.113.9") == 0);
    /* a client's own entry before the real one is not believed */
    CHECK(strcmp(fwd(&t, "198.51.100.7, 203.0.113.9"), "203.0.113.9") == 0);
    /* trusted hops on the right are skipped */
    CHECK(strcmp(fwd(&t, "203.0.113.9 , 10.0.0.6,10.0.0.5"), "203.0.113.9") == 0);
    CHECK(strcmp(fwd(&t, "10.0.0.6, 10.0.0.5"), "10.0.0.6") == 0); /* all trusted: the leftmost */
    CHECK(strcmp(fwd(&t, "2001:db8::1"), "2001:db8::1") == 0);
    CHECK(fwd(&t, "") == NULL);
    CHECK(fwd(&t, "unknown, 203.0.113.9") != NULL); /* the rightmost is enough */
    CHECK(fwd(&t, "203.0.113.9, nonsense") == NULL);  /* not an address: none of it */
    CHECK(fwd(&t, "203.0.113.9:1234") == NULL);
    CHECK_EQ(ipset_parse(&t, "10.0.0.5 bogus", err, sizeof(err)), -1);
    CHECK(strstr(err, "bogus") != NULL);
    CHECK_EQ(t.n, 0u);
    ipset_free(&t);
}

static const char *red(const char *target, size_t cap)
{
    static char out[256];
    http_access_redact(target, strlen(target), out, cap);
    return out;
}

TEST(redaction)
{
    CHECK(strcmp(red("/sub/a?token=abc.def&mode=sse", 256), "/sub/a?token=REDACTED&mode=sse") == 0);
    CHECK(strcmp(red("/ws?access_token=x&api_key=y&password=z&passcode=w", 256),
                 "/ws?access_token=REDACTED&api_key=REDACTED&password=REDACTED&passcode=REDACTED") == 0);
    CHECK(strcmp(red("/sub/token=x?mode=poll&tokens=1", 256), "/sub/token=x?mode=poll&tokens=1") == 0);
    CHECK(strcmp(red("/pub/a", 256), "/pub/a") == 0);
    CHECK(strcmp(red("/sub/a?token", 256), "/sub/a?token") == 0); /* no value */
    CHECK(strcmp(red("/sub/a?token=secret", 12), "/sub/a?toke") == 0); /* truncated, still NUL-ended */
    CHECK(strstr(red("/sub/a?x=1&token=secret", 20), "secret") == NULL);
}

int main(void)
{
    RUN(forwarded_takes_the_rightmost_untrusted);
    RUN(redaction);
    return UNIT_DONE();
}
