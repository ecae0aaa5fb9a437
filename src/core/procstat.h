/* procstat.h - the process_* metrics every Prometheus exporter has (CPU seconds, resident and
 * virtual memory, open and allowed file descriptors, start time), read from /proc/self. */
#ifndef HERALD_PROCSTAT_H
#define HERALD_PROCSTAT_H

#include <stddef.h>

/* Writes them as Prometheus text into out; returns the bytes written (0 when /proc is not there
 * or cap is too small). */
size_t procstat_render(char *out, size_t cap);

#endif
