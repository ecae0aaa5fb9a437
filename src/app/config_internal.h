/* config_internal.h - what config.c (parsing, dump, diff) and config_keys.c (the key table and
 * the defaults) share. Not a public interface: only src/app/config*.c include it. */
#ifndef HERALD_CONFIG_INTERNAL_H
#define HERALD_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef enum {
    K_ADDR,     /* host:port or [v6]:port, required */
    K_ADDR_OPT, /* same, or empty */
    K_STR,      /* free text, no control characters, may be empty */
    K_PATH,     /* free text, not empty */
    K_ORIGINS,  /* "*" or origins separated by spaces/commas; normalised */
    K_LOGLEVEL, /* error|warn|info|debug -> 0..3 */
    K_POLICY,   /* drop|disconnect */
    K_COUNT,    /* uint32 plain integer */
    K_SIZE32,   /* uint32 with k/m/g suffix */
    K_SIZE64,   /* uint64 with k/m/g suffix */
    K_SECS,     /* seconds (decimals to the millisecond) stored as uint32 ms */
    K_MS,       /* milliseconds, plain integer, stored as uint32 */
    K_BOOL,     /* true|false (also yes/no, on/off, 1/0), stored as bool */
    K_CHOICE,   /* one of key_def_t.choices, stored as its index (uint32) */
    K_SECRET,   /* like K_STR, but --print-config never shows it */
} key_type_t;

typedef struct {
    const char *name;
    const char *section;
    key_type_t type;
    size_t off;
    size_t size;  /* field size for strings */
    uint64_t min; /* inclusive; for K_SECS/K_MS in milliseconds */
    uint64_t max;
    const char *const *choices; /* K_CHOICE: the accepted words, NULL-terminated */
} key_def_t;

/* Every key: its type, where it lives in cfg_t, its section (cfg_dump) and its allowed range. */
extern const key_def_t cfg_keys[];
extern const size_t cfg_nkeys;

#endif
