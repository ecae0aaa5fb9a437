/* histo.c - see histo.h. */
#include "histo.h"

#include <stdio.h>
#include <time.h>

/* upper bounds in microseconds; the last bucket is +Inf */
static const uint64_t BOUNDS_US[HISTO_BUCKETS - 1] = {100,    250,    500,     1000,    2500,    5000,    10000,
                                                      25000,  50000,  100000,  250000,  500000,  1000000, 10000000};
static const char *const BOUNDS_TXT[HISTO_BUCKETS - 1] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025",
                                                          "0.005",  "0.01",    "0.025",  "0.05",  "0.1",
                                                          "0.25",   "0.5",     "1",      "10"};

void histo_observe(histo_t *h, uint64_t us)
{
    int i = 0;
    while (i < HISTO_BUCKETS - 1 && us > BOUNDS_US[i]) i++;
    h->le[i]++;
    h->count++;
    h->sum_us += us;
}

size_t histo_render(const histo_t *h, const char *name, const char *help, char *out, size_t cap)
{
    size_t o = 0;
    int k = snprintf(out, cap, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    if (k < 0 || (size_t)k >= cap) return 0;
    o = (size_t)k;
    uint64_t cum = 0;
    for (int i = 0; i < HISTO_BUCKETS; i++) {
        cum += h->le[i];
        k = snprintf(out + o, cap - o, "%s_bucket{le=\"%s\"} %llu\n", name, i < HISTO_BUCKETS - 1 ? BOUNDS_TXT[i] : "+Inf",
                     (unsigned long long)cum);
        if (k < 0 || (size_t)k >= cap - o) return 0;
        o += (size_t)k;
    }
    k = snprintf(out + o, cap - o, "%s_sum %llu.%06llu\n%s_count %llu\n", name, (unsigned long long)(h->sum_us / 1000000),
                 (unsigned long long)(h->sum_us % 1000000), name, (unsigned long long)h->count);
    if (k < 0 || (size_t)k >= cap - o) return 0;
    return o + (size_t)k;
}

uint64_t histo_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
