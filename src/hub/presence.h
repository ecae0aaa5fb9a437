/* presence.h - who is subscribed to each channel (issue 13 part 5): per channel, the user ids with
 * their number of subscriptions and a count of anonymous ones (API keys and clients without a
 * user), "join" and "leave" events to the channel's subscribers, and the hand-off of both (and of
 * each user's connections) to a shared engine (engine = redis) so that every node answers for the
 * whole cluster.
 *
 * What counts. A transport calls presence_join() when a long-lived subscription of a connection
 * starts (SSE, iframe, WebSocket /sub, /ws, STOMP, an MQTT filter without wildcards while its
 * client is connected) and presence_part() with what it got back when it ends. Long polls are
 * requests, not connections: they are not counted. Which channels are tracked is configuration:
 * `presence` (lists may be read: GET /channels/{ch}/presence) and `join_leave` (events), global
 * and per [namespace NAME] (the first namespace whose pattern matches the channel decides; a
 * namespace that does not set a key takes the global value). A channel with neither is not
 * tracked and presence_join() returns NULL (nothing to part).
 *
 * Reporting. Changes are not acted on inside presence_join/part (they run in the middle of
 * subscribing and closing): each changed entry goes on a dirty list that a timer flushes on the
 * next loop iteration. With the local engine the flush is where "join" (a user's count went from
 * 0 to more) and "leave" (back to 0) are delivered through sub_t.event to the channel's
 * subscribers: {"channel":"c","user":"42"}; a user who leaves and comes back between two flushes
 * produces nothing. With a shared engine the flush writes this node's counts (absolute values:
 * a lost write is repaired by the next) through the engine's pres_write op, and the engine decides
 * cluster-wide joins and leaves and hands them back to every node (engine_t.on_presence), where
 * they are delivered the same way. Anonymous subscriptions produce no events.
 *
 * Users. With a shared engine, the users table (users.h) tells this module whenever a user's
 * connections change; the flush writes the user's connections by kind on this node (or that it
 * went offline here, with its last_seen) through user_write, so GET /users/{id} can answer for
 * every node.
 *
 * Limits. At most max_channels channels are tracked and max_entries (channel, user) entries kept
 * on this node; beyond either, the subscription is not counted (presence_join returns NULL),
 * counted in `refused`, and the first refusal of each is logged. Everything runs on the loop. */
#ifndef HERALD_PRESENCE_H
#define HERALD_PRESENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/hmap.h"
#include "../core/list.h"
#include "../core/timer.h"
#include "hub.h"
#include "users.h"

#define PRES_LIST 1   /* presence = true: the channel's list may be read */
#define PRES_EVENTS 2 /* join_leave = true: join/leave events go to its subscribers */
#define PRES_UNSET -1 /* a namespace that does not set the key: the global value */

typedef struct presence presence_t;
typedef struct pres_chan pres_chan_t;
typedef struct pres_member pres_member_t;

/* One user's (or the anonymous) subscriptions to one channel on this node. */
struct pres_member {
    hmap_node_t node;  /* in its channel's users (not the anonymous member) */
    list_node_t dirty; /* in presence_t.dirty while its count may differ from what was reported */
    pres_chan_t *pc;
    uint32_t count;    /* subscriptions now */
    uint32_t shown;    /* what was reported: local engine 0/1 (joined), shared engine the count written */
    uint16_t len;      /* 0: the channel's anonymous member */
    char id[];
};

/* A tracked channel: alive while it has a subscription counted or a change to report. */
struct pres_chan {
    hmap_node_t node;    /* in presence_t.chans, keyed by name */
    hmap_t users;        /* pres_member_t by user id */
    pres_member_t *anon; /* the anonymous subscriptions */
    uint32_t conns;      /* subscriptions counted, users' and anonymous */
    uint8_t flags;       /* PRES_LIST | PRES_EVENTS */
    uint16_t len;
    char name[];
};

typedef struct {
    bool list, events;     /* the global presence and join_leave */
    uint32_t max_channels; /* channels tracked at most (0: none) */
    uint32_t max_entries;  /* (channel, user) entries at most */
} presence_opts_t;

struct presence {
    hub_t *hub;
    users_t *users;       /* NULL: no user reports */
    presence_opts_t o;
    struct pres_ns **ns;  /* [namespace] patterns with their keys, in config order */
    uint32_t nns;
    bool any;             /* some channel may be tracked (a global key or a namespace turns it on) */
    hmap_t chans;         /* pres_chan_t by name */
    uint64_t entries;     /* members with a user id */
    list_t dirty;         /* members to report, oldest change first */
    hmap_t udirty;        /* user ids whose connections changed (shared engine), struct pres_uid */
    list_t ulist;         /* the same, in order */
    tw_entry_t flush;     /* runs the reports on the next iteration */
    bool resync;          /* the shared engine lost this node's share: write everything again */
    /* counters (metrics) */
    uint64_t refused_channels, refused_entries, joins, leaves, events_in, truncated, writes_failed;
    bool channels_logged, entries_logged, truncated_logged;
};

/* A user in a presence list (presence_local). */
typedef struct {
    const char *id;
    uint16_t len;
    uint32_t conns;
} presence_user_t;

/* Sets up p for hub with o and sets hub->pres; users, when set, reports each user's connections
 * to a shared engine (hub->engine, whose on_presence callback it takes). 0 or HR_ENOMEM. */
int presence_init(presence_t *p, hub_t *hub, users_t *users, const presence_opts_t *o);

/* Adds the presence keys of a namespace (in config order, before any channel is tracked):
 * list and events are 0, 1 or PRES_UNSET (the global value). A namespace that sets neither still
 * takes part in "first match wins". 0, HR_EINVAL (bad pattern) or HR_ENOMEM. */
int presence_ns_add(presence_t *p, const char *pattern, int list, int events);

/* Stops the timer, gives the shared engine its callback back, unhooks the users table and frees
 * every entry. Subscriptions still holding entries must not part afterwards. */
void presence_close(presence_t *p);

/* PRES_LIST | PRES_EVENTS for channel ch[0..n) (0: not tracked). */
unsigned presence_flags(const presence_t *p, const char *ch, size_t n);

/* Counts one subscription of user[0..un) (un 0: anonymous) to channel ch[0..n). Returns the
 * entry to give to presence_part() when the subscription ends, or NULL when the channel is not
 * tracked or a limit refused it (nothing to part). */
pres_member_t *presence_join(presence_t *p, const char *ch, size_t n, const char *user, size_t un);

/* Ends a subscription counted by presence_join() (m NULL: nothing). */
void presence_part(presence_t *p, pres_member_t *m);

/* This node's view of channel ch[0..n): fills out[] with at most max users (sorted by id; the
 * pointers are valid until the loop runs again), *nusers with how many users there are in all,
 * *anon and *conns. Returns how many were written. */
uint32_t presence_local(presence_t *p, const char *ch, size_t n, presence_user_t *out, uint32_t max,
                        uint32_t *nusers, uint32_t *anon, uint32_t *conns);

/* Sends what waits to be reported now (before a list is read from a shared engine, so it sees
 * this node's latest subscriptions). */
void presence_flush(presence_t *p);

/* Delivers a "join" or "leave" (join false) of user[0..un) on channel ch[0..n) to this node's
 * subscribers of the channel when join_leave is on for it. Returns the subscribers told. */
uint32_t presence_deliver(presence_t *p, const char *ch, size_t n, bool join, const char *user, size_t un);

/* Counts a list answer cut at max_presence_users (logged the first time). */
void presence_truncated(presence_t *p, uint32_t max);

/* The Prometheus text of the tables and counters; returns bytes written (0 when cap is too
 * small). */
size_t presence_metrics(const presence_t *p, char *out, size_t cap);

#endif
