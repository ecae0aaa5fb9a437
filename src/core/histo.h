/* histo.h - a latency histogram for the Prometheus text format: fixed buckets from 100 us to
 * 10 s, cumulative counts, a sum and a count. Observing is O(buckets) with no allocation; one per
 * figure (store commit latency, publish-to-delivery latency), kept by whoever measures. */
#ifndef HERALD_HISTO_H
#define HERALD_HISTO_H

#include <stddef.h>
#include <stdint.h>

#define HISTO_BUCKETS 15

typedef struct {
    uint64_t le[HISTO_BUCKETS]; /* observations at or below each bound (not cumulative here) */
    uint64_t count;
    uint64_t sum_us;
} histo_t;

/* Records one observation of us microseconds. */
void histo_observe(histo_t *h, uint64_t us);

/* Writes the histogram as Prometheus text: `# HELP name help`, `# TYPE name histogram`, the
 * name_bucket{le="..."} lines in seconds (with +Inf), name_sum (seconds) and name_count.
 * Returns the bytes written (0 when cap is too small). */
size_t histo_render(const histo_t *h, const char *name, const char *help, char *out, size_t cap);

/* The monotonic clock in microseconds. */
uint64_t histo_now_us(void);

#endif
