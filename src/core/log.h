/* log.h - leveled logging to stderr with a timestamp. The level is set once at start-up from the
 * configuration (the only process-wide setting in herald besides diagnostics counters). A bad
 * peer is logged once, when its connection is closed, never per byte. */
#ifndef HERALD_LOG_H
#define HERALD_LOG_H

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

#include <stdbool.h>

void log_set_level(int level);
/* log_format = json: each line one JSON object {"time","level","msg"} (msg escaped). */
void log_set_json(bool on);
int log_level(void);
void hr_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) hr_log(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) hr_log(LOG_WARN, __VA_ARGS__)
#define log_info(...) hr_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...) (log_level() >= LOG_DEBUG ? hr_log(LOG_DEBUG, __VA_ARGS__) : (void)0)

#endif
