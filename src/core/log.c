/* log.c - see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "jsonesc.h"

static int current_level = LOG_INFO; /* set once at start-up; see log.h */
static bool json_lines;              /* log_format = json */

void log_set_level(int level) { current_level = level; }
void log_set_json(bool on) { json_lines = on; }
int log_level(void) { return current_level; }

void hr_log(int level, const char *fmt, ...)
{
    if (level > current_level) return;
    static const char *names[] = {"error", "warn", "info", "debug"};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[80];
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    const char *name = names[level < 0 ? 0 : level > 3 ? 3 : level];
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!json_lines) {
        fprintf(stderr, "%s %s %s\n", stamp, name, msg);
        return;
    }
    char esc[6 * sizeof(msg)];
    size_t n = json_escape(msg, strlen(msg), esc, sizeof(esc));
    fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%.*s\"}\n", stamp, name, (int)n, esc);
}
