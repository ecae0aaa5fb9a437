/* pubreq.h - the client input of the publish routes, checked before anything is published:
 * the JSON body of POST /publish, the query parameters of POST /pub/{channel}, idempotency
 * keys, and the personal channel a user target maps to. Pure functions (jansson for the JSON):
 * no server state, no I/O, fuzzed by fuzz/fuzz_pubreq.c. */
#ifndef HERALD_PUBREQ_H
#define HERALD_PUBREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../core/span.h"

#define PUBREQ_MAX_KEY 128 /* bytes of an idempotency key */

typedef struct {
    bool user;        /* a user id (maps to its personal channel), else a channel name */
    bool broadcast;   /* everyone: the broadcast channel (name NULL) */
    const char *name; /* NUL-terminated, valid while the pubreq_t lives */
    size_t n;
} pubreq_target_t;

/* A parsed POST /publish body. */
typedef struct {
    void *root;             /* the parsed JSON (owned) */
    pubreq_target_t *t;     /* channels first, then users, each in the order given (owned) */
    uint32_t n;
    const char *event;      /* "message" unless given */
    size_t event_len;
    const char *data;       /* the payload (decoded when "encoding" is "base64") */
    size_t data_len;
    char *decoded;          /* owned base64-decoded payload, or NULL */
    const char *key;        /* idempotency_key, or NULL */
    size_t key_len;
    uint32_t ttl;           /* "ttl": seconds the message stays in history (0: not given) */
    uint32_t delay;         /* "delay": seconds until it is published (0: not given) */
    uint64_t at_ms;         /* "at": wall ms when it is published (0: not given; not both) */
    const char *user_dest;  /* "user_destination" "/queue/NAME" or "/topic/NAME" without its first "/": the
                               users' targets are {personal}/queue/NAME (STOMP /user/queue/NAME); NULL: not given */
    size_t user_dest_len;
} pubreq_t;

/* Parses body[0..n) as a POST /publish request: an object with "channels" and/or "users"
 * (arrays of strings) and/or "broadcast" (a boolean; true: one more target, last) - at least one
 * target in all -, "data" (a string), and optionally "event",
 * "encoding" ("base64"), "idempotency_key", "ttl" (an integer, 1..PUBREQ_MAX_TTL seconds) and
 * one of "delay" (an integer, 1..PUBREQ_MAX_DELAY seconds) or "at" (pubreq_at_text's string, or
 * an integer of epoch seconds);
 * null counts as absent for the optional fields.
 * Every channel must be a valid channel name and every user a valid user id. Returns 0 (free
 * out with pubreq_free), HR_EFULL when there are more than max_targets targets, HR_ENOMEM, or
 * HR_EINVAL with a short JSON-safe reason in why (an unknown field is "unknown field: NAME"). */
int pubreq_parse(const char *body, size_t n, uint32_t max_targets, pubreq_t *out, char *why, size_t cap);

/* The longest time-to-live a publish may ask for (seconds: ten years). */
#define PUBREQ_MAX_TTL 315360000u

/* Parses a ttl given as text (a query parameter): a decimal integer 1..PUBREQ_MAX_TTL seconds.
 * 0 and *ttl set, or HR_EINVAL. */
int pubreq_ttl_text(const char *s, size_t n, uint32_t *ttl);

/* The longest delay a scheduled publish may ask for (seconds: a year; "at" as far ahead). */
#define PUBREQ_MAX_DELAY 31536000u

/* Parses a delay given as text: a decimal integer 1..PUBREQ_MAX_DELAY seconds. 0 or HR_EINVAL. */
int pubreq_delay_text(const char *s, size_t n, uint32_t *delay);

/* Parses "at" given as text: an RFC 3339 date-time ("2026-12-06T09:00:00Z",
 * "2026-12-06T10:00:00.250+01:00"; 'T' or 't' or ' ', 'Z' or 'z' or an offset) or epoch seconds
 * ("1796547600"), into wall ms since the epoch (> 0; the past is allowed). 0 or HR_EINVAL. */
int pubreq_at_text(const char *s, size_t n, uint64_t *at_ms);

/* Frees what pubreq_parse made (a zeroed pubreq_t is fine). */
void pubreq_free(pubreq_t *r);

/* True when k[0..n) may be an idempotency key: 1..PUBREQ_MAX_KEY printable ASCII characters
 * (0x20-0x7e). */
bool pubreq_key_valid(const char *k, size_t n);

/* Checks that every parameter of the query string q names one of known (NULL-terminated list of
 * names). Returns 0, or HR_EINVAL with the first unknown name (percent-decoded and made
 * JSON-safe: other bytes than A-Z a-z 0-9 _ - . become '?', at most 64 bytes) in bad. */
int pubreq_query_check(span_t q, const char *const *known, char *bad, size_t cap);

/* The personal channel of user sub[0..sn) under pattern (user_channel, e.g. "user/{sub}"): each
 * level that is exactly "{sub}" becomes the user id. Writes it NUL-terminated into out and
 * returns its length, or HR_EINVAL when the result does not fit or is not a single valid channel
 * (an empty pattern, wildcards). */
ssize_t pubreq_user_channel(const char *pattern, const char *sub, size_t sn, char *out, size_t cap);

/* The reverse: when ch[0..n) is some user's personal channel by pattern, sets *user to the user
 * id inside it (every {sub} level must hold the same id) and returns its length; else 0. */
size_t pubreq_channel_user(const char *pattern, const char *ch, size_t n, const char **user);

#endif
