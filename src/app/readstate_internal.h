/* readstate_internal.h - the read state's tables, shared by readstate.c (cursors, GET /unread,
 * POST /read) and unread.c (the unread events pushed to a user's feed subscriptions). */
#ifndef HERALD_READSTATE_INTERNAL_H
#define HERALD_READSTATE_INTERNAL_H

#include "../core/hmap.h"
#include "../core/list.h"
#include "../core/timer.h"
#include "readstate.h"

#define RS_NS "read"
#define RS_KEY_MAX (ACL_MAX_SUB + 1 + HUB_MAX_CHANNEL)

typedef struct rs_watch rs_watch_t;

typedef struct {
    hmap_node_t node;
    list_t curs;       /* rs_cur_t.link */
    list_node_t dlink; /* in readstate.dirty while an unread event is due */
    list_node_t olink; /* in readstate.onl while online */
    tw_entry_t tmr;    /* armed at the next expiry among its unread messages */
    readstate_t *rs;
    uint32_t n;
    bool online;       /* its personal channel has subscribers here: its channels are watched */
    bool told;         /* told_hash holds the counts last sent */
    uint32_t greet;    /* subscriptions of the personal channel made since the last event */
    uint64_t told_hash;
    uint16_t len;
    char id[];
} rs_user_t;

typedef struct {
    hmap_node_t node;
    list_node_t link;  /* in its user's curs */
    list_node_t wlink; /* in w->curs while its user is online */
    rs_watch_t *w;
    rs_user_t *u;
    uint64_t id;       /* read up to here */
    uint16_t klen;
    char key[];        /* user, NUL, channel */
} rs_cur_t;

/* A channel held (hub_watch) for the online users that track it. */
struct rs_watch {
    hmap_node_t node; /* in readstate.watches, by channel name */
    list_t curs;      /* rs_cur_t.wlink */
    uint16_t len;
    char name[];
};

struct readstate {
    xp_ctx_t *x;
    hmap_t users, curs, watches;
    list_t dirty;     /* rs_user_t.dlink: users whose unread event is due at the next flush */
    list_t onl;       /* rs_user_t.olink: the users online here */
    hub_observer_t obs;
    uint32_t ncurs, nwatches, online;
    uint64_t marks, refused, events;
    bool full_logged, user_logged;
};

/* The channel name of cursor c. */
static inline const char *rs__chan(const rs_cur_t *c, size_t *n)
{
    size_t ul = c->u->len + 1u;
    *n = c->klen - ul;
    return c->key + ul;
}

/* The user entry of user[0..un), made when create is set (NULL: absent, or out of memory). */
rs_user_t *rs__user(readstate_t *rs, const char *user, size_t un, bool create);

/* What rs__counts found besides the text. */
typedef struct {
    uint64_t total;
    uint64_t next_exp;   /* the wall ms the first counted message with a time-to-live expires (0: none) */
    bool loading;        /* a channel was still being loaded by a shared engine (counted as far as it is here) */
    const char *want;    /* in: a channel whose count to report (or NULL) */
    size_t wn;
    uint64_t want_count; /* out: its count */
} rs_counts_t;

/* {"user":U,"total":N,"channels":{C:N,...}}: the unread counts of user's tracked channels, its
 * personal channel and the broadcast channel (both always tracked, from 0 until marked), channels
 * in byte order of their names, as JSON
 * text safe in a script (malloc'd, *len its length; NULL: out of memory), with q filled. */
char *rs__counts(readstate_t *rs, const char *user, size_t un, rs_counts_t *q, size_t *len);

/* unread.c: sets up (in readstate_new) and tears down the watches and the hub observer. */
int rs__push_init(readstate_t *rs);
void rs__push_free(readstate_t *rs);

/* unread.c: user u's counts changed: an unread event is due to its feed subscriptions. */
void rs__dirty(readstate_t *rs, rs_user_t *u);

/* unread.c: cursor c was just made: watched at once when its user is online. */
void rs__cur_added(readstate_t *rs, rs_cur_t *c);

#endif
