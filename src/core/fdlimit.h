/* fdlimit.h - the open-file limit at start-up (what Redis calls adjustOpenFilesLimit): the soft
 * limit is raised as far as the hard limit allows, and the caller learns whether the connections
 * it is configured for fit. */
#ifndef HERALD_FDLIMIT_H
#define HERALD_FDLIMIT_H

#include <stdint.h>

/* Raises RLIMIT_NOFILE's soft limit towards want (at most the hard limit) and returns the soft
 * limit in force afterwards (0 when it cannot be read). */
uint64_t fdlimit_raise(uint64_t want);

#endif
