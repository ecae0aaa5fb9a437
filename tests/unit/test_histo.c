/* test_histo.c - the latency histogram (core/histo.h): buckets are cumulative in the text, the
 * bounds are inclusive, +Inf holds everything, sum and count add up; the process_* page parses. */
#include <stdio.h>
#include <string.h>

#include "../../src/core/histo.h"
#include "../../src/core/procstat.h"
#include "unit.h"

/* The value of the line that begins with prefix and a space in text, or -1. */
static long long line_value(const char *text, const char *prefix)
{
    char key[128];
    snprintf(key, sizeof(key), "\n%s ", prefix);
    const char *p = strstr(text, key);
    long long v = -1;
    if (p && sscanf(p + strlen(key), "%lld", &v) != 1) v = -1;
    return v;
}

TEST(buckets_are_cumulative)
{
    histo_t h = {0};
    histo_observe(&h, 50);       /* <= 0.0001 */
    histo_observe(&h, 100);      /* the bound itself is in its bucket */
    histo_observe(&h, 101);      /* <= 0.00025 */
    histo_observe(&h, 3000);     /* <= 0.005 */
    histo_observe(&h, 20000000); /* beyond 10 s: +Inf only */
    char out[4096];
    size_t n = histo_render(&h, "x_seconds", "help text", out, sizeof(out));
    CHECK(n > 0 && n < sizeof(out));
    CHECK(strstr(out, "# TYPE x_seconds histogram\n") != NULL);
    CHECK_EQ(line_value(out, "x_seconds_bucket{le=\"0.0001\"}"), 2);
    CHECK_EQ(line_value(out, "x_seconds_bucket{le=\"0.00025\"}"), 3);
    CHECK_EQ(line_value(out, "x_seconds_bucket{le=\"0.0025\"}"), 3);
    CHECK_EQ(line_value(out, "x_seconds_bucket{le=\"0.005\"}"), 4);
    CHECK_EQ(line_value(out, "x_seconds_bucket{le=\"10\"}"), 4);
    CHECK_EQ(line_value(out, "x_seconds_bucket{le=\"+Inf\"}"), 5);
    CHECK_EQ(line_value(out, "x_seconds_count"), 5);
    CHECK(strstr(out, "x_seconds_sum 20.003251\n") != NULL);
    CHECK_EQ(histo_render(&h, "x_seconds", "help text", out, 40), 0u); /* no room: nothing */
}

TEST(process_metrics)
{
    char out[4096];
    size_t n = procstat_render(out, sizeof(out));
    CHECK(n > 0);
    CHECK(line_value(out, "process_resident_memory_bytes") > 0);
    CHECK(line_value(out, "process_open_fds") >= 3);
    CHECK(line_value(out, "process_max_fds") > 0);
    CHECK(strstr(out, "process_cpu_seconds_total ") != NULL);
    CHECK_EQ(procstat_render(out, 64), 0u);
}

int main(void)
{
    RUN(buckets_are_cumulative);
    RUN(process_metrics);
    return UNIT_DONE();
}
