/* hub.h - channels, subscriptions, history and fan-out. Knows no wire format.
 *
 * A channel is made on first use and holds: the last id it assigned, its bounded history and its
 * subscribers. hub_publish_async() assigns the next id, records the message (history and store) and,
 * once the store has committed it, calls every subscriber's deliver callback with the same immutable message; the transport
 * behind the callback encodes it once (msg_encoded) and queues the shared bytes.
 *
 * Ids are contiguous per channel (1, 2, 3, ...), which makes "what did I miss after id X" exact:
 * if X+1 is older than the oldest kept message, messages were lost to the history limits and the
 * caller is told (a gap), never handed a silent partial replay. A cursor newer than the last id
 * (the server lost its memory) is a gap too.
 *
 * Durability: a publish is delivered and acknowledged only after its store commit succeeded; a
 * failed commit fails the publishes of its batch and their ids are handed out again. A store that
 * orders publishes itself (Redis) assigns ids and feeds messages back through hub_inject. */
#ifndef HERALD_HUB_H
#define HERALD_HUB_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/histo.h"
#include "../core/hmap.h"
#include "../core/list.h"
#include "../core/loop.h"
#include "../store/store.h"
#include "engine.h"
#include "hist.h"
#include "msg.h"
#include "topic.h"

#define HUB_MAX_CHANNEL 255
#define HUB_MAX_EVENT 64

typedef struct chan chan_t;
typedef struct sub sub_t;
/* A publish waiting for its commit, or for a shared engine (engine.h), which completes it with
 * hub_published() when its backend has answered. */
typedef struct hub_pend hub_pend_t;

/* Called for each message on the subscribed channel. It may unsubscribe s itself (only s). */
typedef void (*sub_deliver_cb)(sub_t *s, msg_t *m);

struct sub {
    list_node_t link; /* in chan->subs */
    chan_t *ch;
    sub_deliver_cb deliver;
    /* Optional: the channel's history changed under the subscriber (a store finished loading or
     * catching it up, or it restarted: hub_release, hub_loaded, hub_reset). A subscriber that
     * hub_after() told "loading" replays from its cursor now; one whose cursor is past the
     * channel's last id (the store lost the channel) reports a gap. It may unsubscribe s itself
     * (only s). */
    void (*resync)(sub_t *s);
    /* Optional: an event about the channel that is not a message: "withdrawn" (hub_withdraw:
     * {"channel":"c","id":"N"}), "unread" (readstate.c, on a user's personal channel: that
     * user's unread counts), "join"/"leave" (presence). json[0..n) is a JSON object, escaped
     * safe for a script context. The transport tells its client if its wire format has a notice
     * for it; a full queue just misses it (no cursor moves). */
    void (*event)(sub_t *s, const char *event, const char *json, size_t n);
    void *owner;
};

struct chan {
    hmap_node_t node; /* in hub->chans, keyed by name */
    msg_t *retained; /* the MQTT retained message, or NULL (keeps the channel alive) */
    uint64_t last_id;
    uint64_t kept_from; /* the store may hold messages from this id on (older ones were trimmed) */
    uint64_t next_id;   /* the id the next publish gets (last_id + 1 + publishes waiting for commit) */
    uint32_t npending;  /* publishes of this channel waiting for their commit (keep it alive) */
    uint32_t retain_pend; /* of them, retained ones (not clearing) */
    bool retain_new;      /* they count as a new retained message (the channel had none then) */
    uint32_t loading;   /* store loads or catch-ups in flight (hub_hold): hub_after answers "loading" */
    uint32_t nwatch;    /* hub_watch() holds: kept in memory (and fed by a shared engine) without subscribers */
    struct hub_held *held; /* messages injected while loading, in id order, or NULL */
    hist_t hist;
    const hist_limits_t *lim; /* its history limits: its namespace's or hub->limits (retain_ns.c) */
    list_t subs;
    uint32_t nsubs;
    uint32_t name_len;
    char name[];
};

/* A wildcard (MQTT filter) subscription: matched against every published channel name through
 * the topic trie. Embedded in the subscriber's struct; deliver may unsubscribe any entry. */
typedef struct hub_tsub hub_tsub_t;
struct hub_tsub {
    topic_entry_t e;
    void (*deliver)(hub_tsub_t *t, msg_t *m);
    void *owner;
};

/* The one observer of the hub (readstate.c, which pushes unread counts). Called on the loop; it
 * must not subscribe, unsubscribe, publish or free channels during a call. */
typedef struct {
    /* s was subscribed to ch (added) or is being unsubscribed from it. */
    void (*subscribed)(void *arg, chan_t *ch, sub_t *s, bool added);
    /* ch's history changed: a message was accepted (after its subscribers got it), withdrawn, or
     * the channel was reloaded by its store. */
    void (*changed)(void *arg, chan_t *ch);
    void *arg;
} hub_observer_t;

typedef struct {
    loop_t *loop;
    store_t *store;
    const hub_observer_t *obs; /* NULL: none */
    engine_t *engine; /* NULL: the local engine (the hub orders, the store commits); see engine.h */
    /* Optional: asked before every publish to ch is taken (after the hub's own ceilings): 0 lets it
     * through, HR_E* refuses it (hub_publish_async returns it). STOMP queues (stomp_queue.h) refuse
     * a publish that would push an unacknowledged message out of the queue's history. It must not
     * publish; it may subscribe to ch. */
    int (*gate)(void *arg, chan_t *ch);
    void *gate_arg;
    struct presence *pres; /* who is subscribed (presence.h), NULL: not tracked; used by the transports */
    topic_tree_t topics; /* wildcard subscriptions */
    uint32_t nretained;
    hist_limits_t limits;    /* channels in no namespace */
    struct hub_ns **ns;      /* retention namespaces, in config order (retain_ns.c) */
    uint32_t nns;
    hmap_t chans;       /* channels by name */
    uint32_t nchannels; /* chans.n */
    uint64_t published; /* messages accepted, from every publishing route */
    int load_rc;        /* why the last hub_channel(create) failed (HR_ENOMEM, HR_EUNAVAIL, HR_EFULL) */
    uint32_t max_channels;     /* channels in memory at most (0: no limit); more: HR_EFULL */
    uint64_t channels_refused; /* channels not created for max_channels */
    /* ceilings (hub_set_limits) and what they hold and refused */
    uint32_t max_retained;        /* retained messages at most (0: no limit); a new one beyond: HR_ERETAINED */
    uint64_t max_retained_bytes;  /* their msg_cost together at most (0: no limit) */
    uint64_t retained_bytes;      /* msg_cost of the retained messages held */
    uint64_t retained_pend_bytes; /* of retained publishes waiting for their commit */
    uint32_t retained_pend_new;   /* channels with no retained message but one waiting (chan.retain_new) */
    uint64_t retained_refused;    /* retained publishes refused at max_retained */
    uint64_t retained_bytes_refused; /* and at max_retained_bytes */
    uint64_t max_hist_bytes;      /* every channel's history together at most (0: no limit) */
    bool hist_refuse;             /* beyond it publishes are refused (HR_EHISTFULL); else the oldest is trimmed */
    hist_pool_t hpool;            /* every channel's history, ordered by its oldest message when trimming */
    uint64_t hist_pend_bytes;     /* msg_cost of the publishes waiting for their commit */
    uint64_t hist_trimmed;        /* messages trimmed for max_hist_bytes */
    uint64_t hist_refused;        /* publishes refused for it */
    uint64_t subscriptions; /* live subscriptions */
    tw_entry_t sweep;   /* periodic expiry of idle channels and aged history */
    hub_pend_t *pend_head, **pend_tail; /* publishes waiting for their commit, in order */
    struct hub_waiter *waiters, **waiters_tail; /* other writes waiting for the commit, in order (hub_when_committed) */
    uint32_t npend;
    /* store failures: while the store refuses writes, publishes are refused at once except one
     * probe a second, which finds out whether it recovered (space freed) */
    int store_fault;          /* 0, or the HR_E* of the last failed commit or write */
    uint64_t fault_since_ms;  /* monotonic time the fault began */
    uint64_t probe_at_ms;     /* the next publish allowed through as a probe */
    bool batch_refused;       /* the store refused a publish of the batch now open */
    uint64_t commits_failed;  /* commits that failed (their publishes failed) */
    uint64_t publishes_failed; /* publishes failed or refused because of the store */
    chan_t *resyncing;         /* the channel whose subscribers are being resynced (no catch-up for it) */
    uint64_t held_dropped;     /* messages dropped from a full hold (hub_inject while loading) */
    histo_t commit_lat;        /* the store's commits that held writes (herald_store_commit_seconds) */
    histo_t publish_lat;       /* publish taken -> delivered and answered (herald_publish_latency_seconds) */
} hub_t;

/* Sets up an empty hub. The hub uses (does not own) loop and store. Returns 0 or HR_ENOMEM. */
int hub_init(hub_t *hub, loop_t *loop, store_t *store, const hist_limits_t *limits);

/* Sets the ceilings on retained messages (count, bytes) and on every history together, with its
 * policy (refuse: publishes beyond fail with HR_EHISTFULL; otherwise the oldest message of any
 * channel is trimmed first). 0 turns a ceiling off. Call before any channel exists (before
 * hub_restore). */
void hub_set_limits(hub_t *hub, uint32_t max_retained, uint64_t max_retained_bytes, uint64_t max_hist_bytes,
                    bool hist_refuse);

/* Adds a retention namespace (call before any channel exists, in config order): a channel whose
 * name matches pattern (MQTT wildcards + and #, as in the permissions file) and no earlier
 * namespace's keeps its history by lim instead of hub->limits. 0, HR_EINVAL (bad pattern) or
 * HR_ENOMEM. */
int hub_ns_add(hub_t *hub, const char *name, const char *pattern, const hist_limits_t *lim);

/* Pins the namespace added last: its channels' histories are never trimmed for max_history_memory
 * (they still count in it, and history_policy = refuse still refuses publishes beyond it); only
 * their own limits trim them. STOMP queues: their messages wait for an acknowledgement. */
void hub_ns_pin(hub_t *hub);

/* True when lim (a channel's chan_t.lim) is a pinned namespace's. */
bool hub__ns_pinned(const hub_t *hub, const hist_limits_t *lim);

/* The limits a channel named name[0..n) keeps its history by, and the name of its namespace
 * (NULL: none, hub->limits). */
const hist_limits_t *hub_ns_limits(const hub_t *hub, const char *name, size_t n, const char **ns_name);

/* Withdraws message id of channel name[0..n): its place in the history (memory and store) holds
 * a tombstone (MSG_WITHDRAWN; ids stay contiguous) that readers skip (hub_after, hub_message),
 * an MQTT retained message with that id is cleared, and every subscriber with a withdrawn
 * callback is told. Committed before it returns. 0, HR_ENOTFOUND (no such message in the
 * history: never there, trimmed, expired or withdrawn already), HR_ENOTIMPL (engine = redis:
 * not supported), or the store's HR_E*. *told: the subscribers told. */
int hub_withdraw(hub_t *hub, const char *name, size_t n, uint64_t id, uint32_t *told);

/* Deletes channel name[0..n)'s messages: its history (memory and store) and its MQTT retained
 * message go, its ids do not (the next publish continues after *last_id, so cursors and read
 * state stay meaningful), and every subscriber with an event callback is told "deleted"
 * ({"channel":"c","last_id":"N"}); subscriptions stay. Committed before it returns. 0,
 * HR_ENOTFOUND (no such channel), HR_ENOTIMPL (engine = redis), or the store's HR_E*. *told: the
 * subscribers told. */
int hub_clear(hub_t *hub, const char *name, size_t n, uint32_t *told, uint64_t *last_id);

/* A shared engine recorded the withdrawal of message id of channel name[0..n) (engine_t.withdraw,
 * on this node or another): this node's memory follows - a tombstone in the message's place
 * (also among messages held while the channel loads), its MQTT retained message cleared when it
 * is that one, subscribers told "withdrawn". Returns the subscribers told (0 when the channel
 * is not in memory here). */
uint32_t hub_withdrawn(hub_t *hub, const char *name, size_t n, uint64_t id);

/* A shared engine deleted channel name[0..n)'s messages up to last_id (engine_t.clear): this
 * node's memory follows as in hub_clear (messages up to last_id that arrive later are ignored).
 * Returns the subscribers told. */
uint32_t hub_cleared(hub_t *hub, const char *name, size_t n, uint64_t last_id);

/* Applies ch's history limits now (age, time-to-live): what leaves, leaves the store too. */
void hub_trim(hub_t *hub, chan_t *ch);

/* Drops ch's messages with ids up to id from its history, in memory and in the store (with the
 * store's next commit): a STOMP queue's acknowledged messages. */
void hub_trim_upto(hub_t *hub, chan_t *ch, uint64_t id);

/* Holds (+1) or lets go of (-1) ch for an observer that wants to hear of its changes without
 * subscribing: a held channel stays in memory (a shared engine keeps feeding it) while idle. */
void hub_watch(hub_t *hub, chan_t *ch, int delta);

/* Withdraws message id (a tombstone takes its place) and drops messages up to upto (0: none)
 * among those held while ch loads (withdraw.c). */
void hub__held_withdraw(chan_t *ch, uint64_t id, uint64_t upto);

/* Sets (m, referenced by the channel) or clears (m NULL) ch's retained message in memory. */
void hub__retain(hub_t *hub, chan_t *ch, msg_t *m);

/* Frees the namespaces (hub_close). */
void hub__ns_free(hub_t *hub);

/* Frees every channel and message. All subscriptions must have been removed. */
void hub_close(hub_t *hub);

/* True when name[0..n) is a valid channel name (see docs/api.md). */
bool hub_channel_valid(const char *name, size_t n);

/* True when e[0..n) is a valid event name: 1-64 of A-Z a-z 0-9 _ - . : */
bool hub_event_valid(const char *e, size_t n);

/* Returns the channel, creating it (and restoring it from the store) when create is set.
 * NULL when absent (create false) or on failure (load_rc says why: HR_EFULL when max_channels
 * channels exist; the refusal is logged the first time). A store that loads asynchronously
 * (its load op returns STORE_LOADING) gets a channel that is "loading" until hub_loaded(). */
chan_t *hub_channel(hub_t *hub, const char *name, size_t n, bool create);

/* What a publish may carry beyond channel, event and data (MQTT publishes). */
typedef struct {
    uint32_t flags;      /* MSG_QOS*, MSG_RETAIN, ... set on the message before it is delivered */
    uint32_t expiry_s;   /* time-to-live in seconds (0: none): MQTT message expiry interval, the publish
                            routes' ttl; the message leaves the history when it expires (hist.h) */
    const void *props;   /* encoded MQTT 5 properties passed through to v5 subscribers, or NULL */
    size_t props_len;
    const void *origin;  /* the publisher, for subscribers that skip their own messages (MQTT no-local) */
} hub_pubopt_t;

/* The outcome of a publish: rc 0 (m->id is its id, reached the subscribers it went to) or a
 * negative HR_E* (nothing was stored or delivered; m->id means nothing). m is valid during the
 * call only. */
typedef void (*hub_done_cb)(void *arg, int rc, const msg_t *m, uint32_t reached);

/* Publishes data on channel. Nothing is delivered or acknowledged before it is durable: the id
 * is assigned now, but the message is delivered, and cb(arg, ...) told, only once the store has
 * committed it (hub_commit, before the loop writes to any socket; engine = redis: when Redis has
 * answered). If the commit fails every publish of that batch fails through cb, none is delivered
 * and their ids are handed out again. cb is never called from inside this call; cb NULL: nobody
 * waits (MQTT wills). With MSG_RETAIN in o->flags the message also becomes the channel's retained
 * message, or, when data is empty, clears it (MQTT 3.3.1.3).
 * Returns 0 (cb will be called exactly once, unless hub_cancel(arg) comes first) or a negative
 * HR_E* at once: HR_EFULL (max_channels), HR_ESTOREFULL / HR_EUNAVAIL (the store refuses writes
 * for now), HR_EHISTFULL (the histories hold max_hist_bytes and the policy is to refuse),
 * HR_ERETAINED (a retained message would pass max_retained or max_retained_bytes; the same
 * publish without MSG_RETAIN may be made), HR_ENOMEM; cb is then never called. Refusals at a
 * ceiling are counted and the first is logged. */
int hub_publish_async(hub_t *hub, const char *channel, size_t channel_len, const char *event, size_t event_len,
                      const void *data, size_t data_len, const hub_pubopt_t *o, hub_done_cb cb, void *arg);

/* Forgets the callbacks of every publish in flight made with arg (its connection is closing);
 * the publishes themselves still complete. */
void hub_cancel(hub_t *hub, void *arg);

/* Calls cb(arg, rc) after the next commit (rc its result): for writes other than publishes made
 * through the store this iteration (kv records) whose answer must wait until they are durable.
 * hub_cancel(arg) forgets it. 0 or HR_ENOMEM. */
int hub_when_committed(hub_t *hub, void (*cb)(void *arg, int rc), void *arg);

/* Commits what the store holds pending and completes the publishes waiting for it: delivers
 * them and reports to their callbacks (or fails them all). Called by the loop's before_write, and
 * by hub_publish. Returns the commit's result (0 or HR_E*). */
int hub_commit(hub_t *hub);

/* Publishes and commits at once (tests and tools; a server path uses hub_publish_async so that
 * one commit covers a whole loop iteration). Returns 0 and sets *id and *reached, or HR_E*. */
int hub_publish(hub_t *hub, const char *channel, size_t channel_len, const char *event, size_t event_len,
                const void *data, size_t data_len, uint64_t *id, uint32_t *reached);

/* The store has finished p: rc 0 (m->id assigned; the message reaches subscribers through
 * hub_inject) or HR_E*. The publisher hears of it at the next hub_commit. */
void hub_published(hub_t *hub, hub_pend_t *p, int rc);

/* The message a pending store publish carries (the store sets its id). */
msg_t *hub_pend_msg(hub_pend_t *p);

/* A message of ch whose id the store assigned (engine = redis: published on any node, fed back
 * to every node in the same order): recorded and delivered here unless this node has it
 * already. Ids come in order; a jump means the ones between are gone for good, and the local
 * history restarts at m (resuming clients are told about the gap). The caller keeps its
 * reference. */
void hub_inject(hub_t *hub, chan_t *ch, msg_t *m);

/* The message with this id if the channel's history still holds it (loading the channel),
 * else NULL. Not referenced for the caller. */
msg_t *hub_message(hub_t *hub, const char *channel, size_t n, uint64_t id);

/* Asynchronous loads (engine = redis): while a store brings a channel up to date (its first
 * load, a catch-up, a gap fill), the channel is held: hub_after() answers "loading" (the caller
 * replays once its subscriber is resynced), messages given to hub_inject() wait in id order, and
 * the sweep keeps the channel. hub_hold() starts one such hold; hub_fill() records and delivers a
 * message the store fetched for it (in id order; a jump restarts the ring); hub_release() ends
 * one hold, and the last one resyncs the subscribers (sub_t.resync) and then delivers the
 * messages that waited (at a hole among them the store is asked to catch up, which holds the
 * channel again, and the rest waits). hub_loaded() ends the hold hub_channel() started for a
 * STORE_LOADING load: it records the channel's last id and kept messages (oldest first, valid
 * during the call) without delivering them, then releases. */
void hub_hold(hub_t *hub, chan_t *ch);
void hub_fill(hub_t *hub, chan_t *ch, msg_t *m);
void hub_release(hub_t *hub, chan_t *ch);
void hub_loaded(hub_t *hub, chan_t *ch, uint64_t last_id, msg_t **msgs, uint32_t n);

/* The store lost ch (its ids count again from last_id + 1): empties its history, drops what
 * waits in its hold, and resyncs its subscribers (they report a gap instead of seeing ids go
 * back). */
void hub_reset(hub_t *hub, chan_t *ch, uint64_t last_id);

/* Calls cb for every channel this node holds (cb must neither free nor create channels). */
void hub_each_channel(hub_t *hub, void (*cb)(chan_t *ch, void *arg), void *arg);

/* Empties ch's local history and sets its last id: the next message starts it again (ids must
 * stay contiguous in a ring; used when the messages between the last one here and the next one
 * are gone, or when the store lost the channel and counts again). */
void hub_rebase(hub_t *hub, chan_t *ch, uint64_t last_id);

/* Restores what the store keeps beyond channel histories (MQTT retained messages), at
 * start-up. 0 or a negative HR_E*. */
int hub_restore(hub_t *hub);

/* Subscribes t to the MQTT filter f[0..n) (also "$share/group/filter"). 0 or HR_EINVAL/HR_ENOMEM. */
int hub_topic_subscribe(hub_t *hub, hub_tsub_t *t, const char *f, size_t n);

/* Removes t (harmless when not subscribed). */
void hub_topic_unsubscribe(hub_t *hub, hub_tsub_t *t);

/* Delivers m to the wildcard subscriptions matching its channel only: no channel, no history
 * (server topics such as "$SYS/..."). Returns the number of deliveries. */
uint32_t hub_topic_deliver(hub_t *hub, msg_t *m);

/* Calls cb for every channel that holds a retained message. */
void hub_each_retained(hub_t *hub, void (*cb)(chan_t *ch, void *arg), void *arg);

/* Links s into ch's subscriber list; s->deliver and s->owner must be set. */
void hub_subscribe(hub_t *hub, chan_t *ch, sub_t *s);

/* Unlinks s (harmless if not linked). */
void hub_unsubscribe(hub_t *hub, sub_t *s);

typedef struct {
    bool loading;             /* the store is still loading the channel: nothing yet, no gap; replay when resynced */
    bool gap;                 /* messages after the cursor were lost (or the cursor is from the future) */
    uint64_t first_available; /* oldest id still kept (last_id + 1 when history is empty) */
    uint64_t last_id;         /* the channel's newest id */
} hub_cursor_info_t;

/* Finds the messages after cursor on ch, oldest first, skipping those past their time-to-live
 * (msg_t.expiry_s; they are gone, and not a gap): stores up to max pointers in out (not
 * referenced: valid until the next publish or history trim, so use them at once) and returns how
 * many. info tells whether there is a gap. A cursor past the channel's last id first asks a
 * shared store to catch up (store catch_up op), which may hold the channel. While the channel is
 * held, returns 0 with info->loading set (last_id = cursor, no gap). */
uint32_t hub_after(hub_t *hub, chan_t *ch, uint64_t cursor, msg_t **out, uint32_t max, hub_cursor_info_t *info);

#endif
