/* test_version.c - unit tests for src/app/version.c and the generated build/gen/version.c:
 * the `herald --version` text and the herald_build_info metric have their documented shape,
 * the strings are safe as metric labels, and short buffers are handled. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "../../src/app/version.h"
#include "unit.h"

static bool label_safe(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+~_-", *s)) return false;
    return true;
}

TEST(strings)
{
    CHECK(label_safe(version_herald));
    CHECK(label_safe(version_revision));
    CHECK(strlen(version_date) == 10 && version_date[4] == '-' && version_date[7] == '-');
}

TEST(text)
{
    char out[512], want[256];
    size_t n = version_text(out, sizeof(out));
    CHECK_EQ(n, strlen(out));
    snprintf(want, sizeof(want), "herald %s (%s, built %s)\nlibraries: OpenSSL ", version_herald, version_revision,
             version_date);
    CHECK(strncmp(out, want, strlen(want)) == 0);
    CHECK(strstr(out, ", LMDB 0.") != NULL);
    CHECK(strstr(out, ", zlib 1.") != NULL);
    CHECK(strstr(out, ", jansson 2.") != NULL);
    CHECK(strstr(out, ", hiredis ") != NULL);
    CHECK(out[n - 1] == '\n');
    /* exactly two lines */
    CHECK(strchr(out, '\n') != &out[n - 1] && strchr(strchr(out, '\n') + 1, '\n') == &out[n - 1]);
    char small[10];
    CHECK_EQ(version_text(small, sizeof(small)), 9);
    CHECK(strcmp(small, "herald 0.") == 0 || strncmp(small, "herald ", 7) == 0);
}

TEST(metric)
{
    char out[512], want[256];
    size_t n = version_metrics(out, sizeof(out));
    CHECK_EQ(n, strlen(out));
    snprintf(want, sizeof(want), "\nherald_build_info{version=\"%s\",revision=\"%s\",built=\"%s\"} 1\n", version_herald,
             version_revision, version_date);
    CHECK(strstr(out, want) != NULL);
    CHECK(strstr(out, "# TYPE herald_build_info gauge\n") != NULL);
    char small[20];
    CHECK_EQ(version_metrics(small, sizeof(small)), 0); /* all or nothing */
}

int main(void)
{
    RUN(strings);
    RUN(text);
    RUN(metric);
    return UNIT_DONE();
}
