/* acl.h - channel permissions: patterns, pattern lists and the permissions file.
 *
 * A pattern is an MQTT-style filter over channel names: levels separated by '/', a level "+"
 * matches exactly one level, a last level "#" matches any number of levels beneath its parent
 * and the parent itself ("user/#" matches "user" and "user/42/inbox"; "#" alone matches every
 * channel), and a level that is exactly "{sub}" stands for the user's id (the token's "sub").
 * Otherwise a level is literal. As in MQTT, a pattern whose first level is a wildcard never
 * matches a channel (or topic) whose name starts with '$'. Patterns with "{sub}" never match for
 * an anonymous client (sub empty). A user id is substituted only as one whole level: callers
 * accept only ids that are a valid single channel level (see acl_sub_valid), so an id can never
 * widen a pattern.
 *
 * Covering a subscription: an MQTT SUBSCRIBE names a filter that may itself contain '+' and '#'.
 * acl_cover() tells whether every channel the filter can match is allowed by the pattern (FULL),
 * only some are (PARTIAL: the broker may accept the subscription but must check each message's
 * channel before delivering it), or none are (NONE: refuse it).
 *
 * The permissions file (permissions_file), one rule per line:
 *     WHO  ACTION  PATTERN  [# comment]
 * Fields are separated by spaces or tabs. Because "#" is itself a valid pattern, a '#' starts a
 * comment only as the first non-blank character of a line, or as the first non-blank character
 * after the third field: "user subscribe #" allows everything, "user subscribe a/# # note" has
 * the comment "note", and "user subscribe a/b#c" is an invalid pattern. Anything else after the
 * pattern is an error.
 * WHO is "anonymous" (clients without a credential), "user" (every authenticated user) or
 * "user:ID" (one user id); ACTION is "subscribe", "publish" or "pubsub" (both). Example:
 *     anonymous  subscribe  public/#
 *     user       subscribe  user/{sub}/#
 *     user       pubsub     chat/+
 *     user:ops   publish    alerts/#
 * Several lines for the same user:ID merge. Besides the syntax, the parser rejects an invalid
 * user id (acl_sub_valid), an invalid pattern (acl_pattern_valid), a pattern with a literal level
 * no channel can contain ("chat/x*"), and "{sub}" in an anonymous rule (it could never match).
 * Pure: no I/O, no global state. */
#ifndef HERALD_ACL_H
#define HERALD_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACL_MAX_PATTERN 255 /* bytes */
#define ACL_MAX_SUB 128     /* bytes of a user id */

typedef enum { ACL_NONE = 0, ACL_PARTIAL = 1, ACL_FULL = 2 } acl_cover_t;

/* True when p[0..n) is a valid pattern: 1..ACL_MAX_PATTERN bytes, no empty level but the first
 * (a leading '/', for channels such as "/TopicA": "/TopicA", "/#"), '+' and '#'
 * only as whole levels, '#' only last, "{" or "}" only in a whole "{sub}" level, no NUL or
 * control characters, no spaces. */
bool acl_pattern_valid(const char *p, size_t n);

/* True when s[0..n) may be a user id: 1..ACL_MAX_SUB bytes of A-Z a-z 0-9 _ - . ~ : @ = ! and
 * not "." or ".." (one valid channel level without wildcards). */
bool acl_sub_valid(const char *s, size_t n);

/* True when channel c[0..cn) matches pattern p[0..pn) with {sub} = sub[0..sn). False when the
 * pattern is invalid, and for a pattern with {sub} when sub is not acl_sub_valid (empty
 * included). c is expected to be a valid channel (or MQTT topic) name. */
bool acl_match(const char *p, size_t pn, const char *sub, size_t sn, const char *c, size_t cn);

/* How pattern p[0..pn) (with {sub} = sub[0..sn)) covers the MQTT filter f[0..fn) (a valid
 * filter: '+' and '#' as whole levels, '#' last; the caller strips a "$share/GROUP/" prefix).
 * The channels considered are herald's channel names plus names whose first level starts with
 * '$' ("$SYS/x"). The answer is exact, except that the 255-byte limit on names is ignored, which
 * can only turn FULL or NONE into PARTIAL. ACL_NONE for an invalid pattern, an invalid filter, a
 * filter matching no channel (e.g. with an empty level), and {sub} with an invalid sub. */
acl_cover_t acl_cover(const char *p, size_t pn, const char *sub, size_t sn, const char *f, size_t fn);

/* A list of patterns (owned copies). Zeroed is empty. */
typedef struct {
    uint32_t n, cap;
    char **p;
    uint16_t *len;
} acl_list_t;

/* Appends a copy of p[0..n). Returns 0, -1 for an invalid pattern, -2 out of memory. */
int acl_list_add(acl_list_t *l, const char *p, size_t n);

/* Appends copies of every pattern of src. Returns 0 or -2 (out of memory). */
int acl_list_extend(acl_list_t *l, const acl_list_t *src);

void acl_list_free(acl_list_t *l);

/* True when any pattern of l matches channel c (with {sub} = sub). */
bool acl_list_match(const acl_list_t *l, const char *sub, size_t sn, const char *c, size_t cn);

/* The best cover of filter f by any pattern of l: FULL if one pattern covers it fully, else
 * PARTIAL if any covers part of it, else NONE. Patterns are not combined: "a" and "a/+/#"
 * together allow all of "a/#", but each covers it only partly, so the answer is PARTIAL (safe:
 * the broker then checks each message). */
acl_cover_t acl_list_cover(const acl_list_t *l, const char *sub, size_t sn, const char *f, size_t fn);

/* The rules of one WHO. */
typedef struct {
    char *id; /* user:ID rules: the id; NULL for anonymous and user */
    acl_list_t sub, pub;
} acl_who_t;

typedef struct {
    acl_who_t anon;  /* anonymous */
    acl_who_t user;  /* every authenticated user */
    uint32_t nids;
    acl_who_t *ids;  /* user:ID, sorted by id */
} acl_rules_t;

/* Parses permissions file text[0..n) into r (zeroed first; the caller frees it with
 * acl_rules_free after success; on failure r is left empty). Returns 0, or -1 with
 * "line N: message" in err (just "out of memory" when memory runs out after the last line).
 * Lines may end with LF or CRLF; at most 1,000,000 rules. */
int acl_rules_parse(acl_rules_t *r, const char *text, size_t n, char *err, size_t cap);

/* The user:ID rules for id[0..n), or NULL. */
const acl_who_t *acl_rules_find(const acl_rules_t *r, const char *id, size_t n);

void acl_rules_free(acl_rules_t *r);

#endif
