/* procstat.c - see procstat.h. /proc/self/stat fields (proc(5)): utime 14, stime 15, starttime
 * 22 (clock ticks since boot), vsize 23 (bytes), rss 24 (pages). */
#include "procstat.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Seconds since the epoch the system booted (btime of /proc/stat), or 0. */
static unsigned long long procstat__btime(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long bt = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "btime %llu", &bt) == 1) break;
    fclose(f);
    return bt;
}

static unsigned procstat__fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return 0;
    unsigned n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n > 0 ? n - 1 : 0; /* the directory's own descriptor */
}

size_t procstat_render(char *out, size_t cap)
{
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return 0;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    unsigned long long ut, st, start, vsize;
    long long rss;
    /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) ... */
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu %llu %lld",
                     &ut, &st, &start, &vsize, &rss) != 5)
        return 0;
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    if (tck <= 0) tck = 100;
    if (page <= 0) page = 4096;
    struct rlimit rl = {0, 0};
    getrlimit(RLIMIT_NOFILE, &rl);
    double cpu = (double)(ut + st) / (double)tck;
    double started = (double)procstat__btime() + (double)start / (double)tck;
    int k = snprintf(out, cap,
                     "# HELP process_cpu_seconds_total User and system CPU time spent in seconds.\n"
                     "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n"
                     "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                     "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %lld\n"
                     "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                     "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %llu\n"
                     "# HELP process_open_fds Number of open file descriptors.\n"
                     "# TYPE process_open_fds gauge\nprocess_open_fds %u\n"
                     "# HELP process_max_fds Maximum number of open file descriptors.\n"
                     "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n"
                     "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
                     "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n",
                     cpu, rss * (long long)page, vsize, procstat__fds(), (unsigned long long)rl.rlim_cur, started);
    return k > 0 && (size_t)k < cap ? (size_t)k : 0;
}
