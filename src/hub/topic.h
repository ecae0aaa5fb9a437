/* topic.h - the MQTT subscription index: a trie of topic filters keyed by level.
 *
 * A filter such as "sensors/+/temp" is split at '/' into levels; each level is one trie node,
 * and "+" and "#" are special children of their parent. Matching a published topic walks the
 * trie level by level, following at each node the exact child for the topic's level, the "+"
 * child and the "#" child, so its cost is O(levels x matching branches) and never depends on
 * how many unrelated filters exist (MQTT 3.1.1 / 5.0 sections 4.7 and 4.8).
 *
 * Rules implemented here:
 *   - Empty levels are real levels: "a//b" has three levels, "/a" starts with an empty one.
 *   - "+" matches exactly one level (an empty one too); "#" matches its parent level and every
 *     level below it, so "a/#" matches "a", "a/" and "a/b/c".
 *   - A topic whose first character is '$' (e.g. "$SYS/uptime") is not matched by a filter whose
 *     first level is a wildcard ("#", "+/..."); only filters starting with that literal level.
 *   - "$share/{group}/{filter}" is a shared subscription (MQTT 5.0 4.8.2): the group is parsed
 *     off and the filter indexed. For every message, each matching (filter, group) pair yields
 *     exactly one member of the group, chosen round-robin: the member that has waited longest
 *     since its last delivery (or since it joined) is chosen and goes to the back of the line.
 *     Ordinary subscriptions each get every matching message. "$share/..." is interpreted this
 *     way whatever the protocol version of the subscriber.
 *
 * Subscriptions are intrusive: a topic_entry_t lives inside the caller's subscription struct
 * (session, QoS, options, subscription identifier) and is recovered with container_of(). The
 * index allocates only trie nodes (shared by every filter with the same prefix) and one small
 * record per shared group. A session with overlapping filters ("a/+" and "a/#") has one entry per
 * filter and is reported once per matching entry; the caller merges them (MQTT 5.0 3.3.4: one
 * delivery at the highest QoS, carrying all the subscription identifiers).
 *
 * Not thread-safe: a tree belongs to one loop. */
#ifndef HERALD_TOPIC_H
#define HERALD_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/list.h"

/* Longest filter accepted, in levels. It bounds the trie's depth and so the recursion depth of
 * topic_match (topics may be deeper; they simply match nothing below this depth). */
#define TOPIC_MAX_LEVELS 256
/* Longest filter or topic name, in bytes (MQTT UTF-8 strings carry a 16-bit length). */
#define TOPIC_MAX_LEN 65535

typedef struct topic_node topic_node_t;
typedef struct topic_group topic_group_t;

/* One subscription, embedded in the caller's struct. Zero-initialize it (or call
 * topic_entry_init) before its first topic_subscribe. All fields are private to topic.c. */
typedef struct topic_entry {
    list_node_t link;     /* in node->subs, or in group->members */
    topic_node_t *node;   /* where the filter ends; NULL when not subscribed */
    topic_group_t *group; /* the shared group, NULL for an ordinary subscription */
} topic_entry_t;

typedef struct {
    topic_node_t *root;  /* NULL while the tree is empty */
    uint64_t seed;       /* random per tree: which levels share a hash bucket is not known in advance */
    uint32_t nsubs;      /* entries subscribed (ordinary and shared members) */
    uint32_t nnodes;     /* trie nodes allocated, root included */
    uint32_t ngroups;    /* shared group records allocated */
    uint32_t matching;   /* depth of topic_match calls in progress (they may nest) */
    list_t pending;      /* nodes emptied during a match, pruned when the outermost one ends */
} topic_tree_t;

/* Called by topic_match for each matching ordinary entry and for the chosen member of each
 * matching shared group. arg is topic_match's arg. See topic_match for what it may do. */
typedef void (*topic_match_cb)(topic_entry_t *e, void *arg);

/* Sets up an empty tree. Allocates nothing and cannot fail. */
void topic_tree_init(topic_tree_t *t);

/* Frees every node and group. Entries still subscribed are detached (they read as not
 * subscribed afterwards) but not touched otherwise; the caller still owns them. Must not be
 * called from inside topic_match. */
void topic_tree_free(topic_tree_t *t);

/* Makes e ready for topic_subscribe; equivalent to zero-initializing it. */
void topic_entry_init(topic_entry_t *e);

/* True when f[0..n) is a valid SUBSCRIBE topic filter: 1..TOPIC_MAX_LEN bytes, no NUL, "+" only
 * as a whole level, "#" only as the whole last level, at most TOPIC_MAX_LEVELS levels; and, when
 * it starts with "$share/", a non-empty group without '+' or '#', then '/' and a valid filter.
 * UTF-8 well-formedness is the codec's job and is not checked here. */
bool topic_filter_valid(const char *f, size_t n);

/* True when s[0..n) is a valid PUBLISH topic name: 1..TOPIC_MAX_LEN bytes, no NUL, no '+' or
 * '#'. topic_match expects a valid name (it treats wildcard characters in it literally). */
bool topic_name_valid(const char *s, size_t n);

/* Indexes e under filter f[0..n) (which may be "$share/{group}/{filter}"). e must not be
 * subscribed already. A shared entry joins its group at the back of the round-robin line.
 * Returns 0; HR_EINVAL when the filter is invalid (topic_filter_valid) or e is already
 * subscribed; HR_ENOMEM when a node could not be allocated (nothing is indexed then). May be
 * called from inside a match callback; whether the match in progress then sees e is
 * unspecified. */
int topic_subscribe(topic_tree_t *t, topic_entry_t *e, const char *f, size_t n);

/* Removes e from the index; harmless when e is not subscribed. Nodes and groups left empty are
 * freed at once, or, when called from inside topic_match, as soon as the outermost match
 * returns. Afterwards the caller may free e. */
void topic_unsubscribe(topic_tree_t *t, topic_entry_t *e);

/* Calls cb once for every ordinary entry whose filter matches topic[0..n), and once for one
 * member (round-robin, see above) of every shared group whose filter matches. A session with
 * several matching filters is reported once per entry. The order of the calls is unspecified.
 * Returns the number of calls made.
 *
 * The callback may: unsubscribe any entry (the one it was given, others of the same session,
 * other sessions' entries) and then free it; subscribe entries; call topic_match again on the
 * same tree (e.g. to publish a will). An entry unsubscribed before the match reaches it is not
 * reported; one subscribed during the match may or may not be. The callback must not call
 * topic_tree_free. */
size_t topic_match(topic_tree_t *t, const char *topic, size_t n, topic_match_cb cb, void *arg);

/* Subscriptions indexed (ordinary entries plus shared members). */
static inline uint32_t topic_count(const topic_tree_t *t) { return t->nsubs; }

/* Trie nodes allocated (0 for an empty tree); for tests and metrics. */
static inline uint32_t topic_node_count(const topic_tree_t *t) { return t->nnodes; }

/* Shared group records allocated; for tests and metrics. */
static inline uint32_t topic_group_count(const topic_tree_t *t) { return t->ngroups; }

/* True while e is indexed. */
static inline bool topic_entry_subscribed(const topic_entry_t *e) { return e->node != NULL; }

/* True when e is a member of a shared group ("$share/..."). */
static inline bool topic_entry_shared(const topic_entry_t *e) { return e->group != NULL; }

#endif
