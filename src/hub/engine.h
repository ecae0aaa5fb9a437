/* engine.h - who orders publishes and carries them between nodes, apart from where histories
 * persist (store.h).
 *
 * The local engine is the hub itself: it assigns each channel's ids, the store records and
 * commits, and the hub delivers (hub_publish_async, hub_commit); hub->engine is NULL. A shared
 * engine (engine = redis) takes over ordering: it assigns ids across nodes, records the message
 * in its backend and delivers it on every node through hub_inject(), and it can bring a channel
 * up to date or count its subscribers on every node. With Redis one object is both the engine
 * and the store (histories live in Redis streams): it is created and closed as the store.
 * Every engine operation is asynchronous: none may block the event loop. */
#ifndef HERALD_ENGINE_H
#define HERALD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct engine engine_t;
struct chan;
struct hub_pend;

/* A control command another node sent with the control op (engine_t.on_control). */
typedef void (*engine_control_cb)(void *arg, const char *json, size_t n);

/* Called with each record of a shared namespace (engine_t.kv_each); non-zero stops. */
typedef int (*engine_kv_cb)(void *arg, const void *key, size_t klen, const void *val, size_t vlen);

/* The answer of an idempotency claim (engine_t.idem_claim): rc ENGINE_IDEM_NEW (the key is this
 * node's now: publish), ENGINE_IDEM_BUSY (another request holds it), ENGINE_IDEM_DONE (rec[0..n)
 * is the answer stored under it, idem_rec_encode's format; valid during the callback only), or
 * HR_E* (the backend did not answer). */
enum { ENGINE_IDEM_NEW = 0, ENGINE_IDEM_BUSY = 1, ENGINE_IDEM_DONE = 2 };
typedef void (*engine_idem_cb)(void *arg, int rc, const void *rec, size_t n);

/* The answer of a withdrawal or a deletion (engine_t.withdraw, clear): rc 0 (recorded; for a
 * deletion, last_id is the channel's last id, the next publish continues after it), HR_ENOTFOUND
 * (no such message or channel), or HR_E* (the backend did not answer). */
typedef void (*engine_done_cb)(void *arg, int rc, uint64_t last_id);

/* The answer of an occupancy count: rc 0 and the channel's subscribers on every node, or HR_E*. */
typedef void (*engine_count_cb)(void *arg, int rc, uint32_t subscribers);

/* Presence (presence.h) through a shared engine. One entry of a pres_write batch: this node's
 * subscriptions now of user[0..un) (un 0: the anonymous ones) to channel ch[0..cn). */
typedef struct {
    const char *ch, *user;
    size_t cn, un;
    uint32_t count; /* 0: none left here */
    bool events;    /* join_leave is on for the channel: the backend decides and sends join/leave */
} engine_pres_t;

/* One entry of a user_write batch: user id[0..n)'s connections on this node by kind, as
 * "sse=1,ws_json=2" (kn 0: it has none here any more, last seen here at last_seen_ms). */
typedef struct {
    const char *id, *kinds;
    size_t n, kn;
    uint64_t last_seen_ms;
} engine_user_t;

/* A channel's presence on every node (pres_list): the first nusers users by id (ids[i][0..lens[i])
 * with conns[i]), truncated when there were more; valid during the callback only. */
typedef struct {
    uint32_t nusers, total_users, anonymous, connections, nodes;
    const char *const *ids;
    const size_t *lens;
    const uint32_t *conns;
} engine_roster_t;
typedef void (*engine_roster_cb)(void *arg, int rc, const engine_roster_t *r);

/* A user's connections on every node (user_status): kinds[i][0..klens[i]) with counts[i]; nodes:
 * nodes where it is connected; last_seen_ms: when its last connection closed (0: unknown). */
typedef struct {
    uint32_t nkinds, nodes;
    const char *const *kinds;
    const size_t *klens;
    const uint32_t *counts;
    uint64_t last_seen_ms;
} engine_ustatus_t;
typedef void (*engine_ustatus_cb)(void *arg, int rc, const engine_ustatus_t *s);

/* What a shared engine tells presence (engine_t.on_presence): a join or leave decided for the
 * cluster (ch, user set), or that this node's share may be wrong (Redis restarted, the node was
 * taken for dead, a write failed) and must be written again in full. */
enum { ENGINE_PRES_JOIN = 1, ENGINE_PRES_LEAVE = 2, ENGINE_PRES_RESYNC = 3 };

/* pres_write phases: an ordinary write of what changed, or a full rewrite: its first batch
 * (BEGIN), the next ones (MORE), and END (no entries), where whatever this node wrote before and
 * did not write again since BEGIN is forgotten (with the leaves that causes). A full rewrite
 * compares with what is there, so it causes no join or leave for what did not change. */
enum { ENGINE_WRITE = 0, ENGINE_WRITE_BEGIN = 1, ENGINE_WRITE_MORE = 2, ENGINE_WRITE_END = 3 };
typedef void (*engine_presence_cb)(void *arg, int ev, const char *ch, size_t cn, const char *user, size_t un);

typedef struct {
    /* Takes the publish p (hub_pend_msg(p), id not yet assigned): assigns its id, records it and
     * calls hub_published(p, rc) once its backend answered (possibly before returning); the
     * message reaches every node, this one included, through hub_inject(). Returns 0 when it
     * took p, or HR_E* at once (hub_published is then not called). */
    int (*publish)(engine_t *e, struct chan *ch, struct hub_pend *p);
    /* Optional: brings ch up to date (a client's cursor is past what this node has received
     * yet), holding the channel (hub_hold) while it asks. */
    void (*catch_up)(engine_t *e, struct chan *ch);
    /* Optional: counts the channel's subscribers on every node and calls cb(arg, ...) later,
     * never from inside this call, unless cancel(arg) comes first. 0 (cb will be called once)
     * or HR_E* at once (cb is not called). */
    int (*occupancy)(engine_t *e, const char *channel, size_t len, engine_count_cb cb, void *arg);
    /* Optional (with occupancy): forgets the callbacks waiting with arg (its request is gone). */
    void (*cancel)(engine_t *e, void *arg);
    /* Optional: the engine's own metrics in the Prometheus text format; returns bytes written. */
    size_t (*metrics)(engine_t *e, char *out, size_t cap);
    /* Optional: true while the engine can take publishes (its backend is reachable): /readyz. */
    bool (*up)(engine_t *e);
    /* Optional: sends the control command json[0..n) (an admin disconnect or unsubscribe, made
     * by src/app/userapi.c) to every other node, where it reaches on_control; the sending node
     * runs it itself. Fire and forget: 0 once sent or queued, HR_E* when it cannot be (its backend
     * is down). The local engine has no other node: it has none. */
    int (*control)(engine_t *e, const char *json, size_t n);
    /* Optional, presence (presence.h): writes this node's counts v[0..n) (strings copied before
     * it returns) in phase (ENGINE_WRITE*). Fire and forget: 0 once queued, HR_E* when it cannot
     * be; a write that fails, now or later, is followed by ENGINE_PRES_RESYNC. */
    int (*pres_write)(engine_t *e, const engine_pres_t *v, uint32_t n, int phase);
    /* Optional: a channel's presence on every node, at most max users, to cb(arg, ...) later (never
     * from inside this call) unless cancel(arg) comes first. 0 or HR_E* at once. */
    int (*pres_list)(engine_t *e, const char *ch, size_t n, uint32_t max, engine_roster_cb cb, void *arg);
    /* Optional: writes users' connections on this node, as pres_write (reset forgets the node's
     * earlier writes). */
    int (*user_write)(engine_t *e, const engine_user_t *v, uint32_t n, bool reset);
    /* Optional: user id[0..n)'s connections on every node, as pres_list. */
    int (*user_status)(engine_t *e, const char *id, size_t n, engine_ustatus_cb cb, void *arg);
    /* Optional: small records every node shares (read cursors, readstate.c). kv_put replaces the
     * record of key in namespace ns: fire and forget (0 once queued, HR_E* when it cannot be; a
     * failure later is logged). kv_each visits a namespace: at start-up only (it may block). */
    int (*kv_put)(engine_t *e, const char *ns, const void *key, size_t klen, const void *val, size_t vlen);
    int (*kv_each)(engine_t *e, const char *ns, engine_kv_cb cb, void *arg);
    /* Optional, idempotency keys every node shares (src/app/publish.c; the three together).
     * idem_claim atomically takes key[0..klen) (the caller scope and the client's key) for this
     * node unless it is taken, and answers cb(arg, ENGINE_IDEM_*, ...) later, never from inside
     * this call, unless cancel(arg) comes first: 0 or HR_E* at once (cb is not called). A claim
     * lasts at most window_ms (the engine may hold it for less: a node that died mid-publish does
     * not keep its key busy for the whole window). idem_settle stores the answer rec[0..n) under
     * the claimed key for ttl_ms more; idem_release frees the key (nothing was published). Both
     * fire and forget: 0 once queued, HR_E* when they cannot be. */
    int (*idem_claim)(engine_t *e, const void *key, size_t klen, uint64_t window_ms, engine_idem_cb cb, void *arg);
    int (*idem_settle)(engine_t *e, const void *key, size_t klen, const void *rec, size_t n, uint64_t ttl_ms);
    int (*idem_release)(engine_t *e, const void *key, size_t klen);
    /* Optional: withdraws message id of channel name[0..n) (a tombstone takes its place for
     * every reader) or deletes the channel's messages and retained message (ids continue), for
     * every node: the others' memory follows through hub_withdrawn / hub_cleared, this node's
     * when the caller calls them on cb(arg, 0, ...). cb comes later, never from inside the call,
     * unless cancel(arg) comes first: 0 or HR_E* at once (cb is not called). */
    int (*withdraw)(engine_t *e, const char *name, size_t n, uint64_t id, engine_done_cb cb, void *arg);
    int (*clear)(engine_t *e, const char *name, size_t n, engine_done_cb cb, void *arg);
} engine_ops_t;

struct engine {
    const engine_ops_t *ops;
    const char *name;
    engine_control_cb on_control; /* set by the app: control commands from other nodes */
    void *control_arg;
    engine_presence_cb on_presence; /* set by presence.c: joins, leaves, resyncs */
    void *presence_arg;
};

#endif
