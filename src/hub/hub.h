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

#include "../core/list.h"
#include "../core/loop.h"
#include "../core/siphash.h"
#include "../store/store.h"
#include "hist.h"
#include "msg.h"
#include "topic.h"

#define HUB_MAX_CHANNEL 255
#define HUB_MAX_EVENT 64

typedef struct chan chan_t;
typedef struct sub sub_t;
/* A publish waiting for its commit, or for a store that orders publishes itself (store
 * ops->publish), which completes it with hub_published() when its backend has answered. */
typedef struct hub_pend hub_pend_t;

/* Called for each message on the subscribed channel. It may unsubscribe s itself (only s). */
typedef void (*sub_deliver_cb)(sub_t *s, msg_t *m);

struct sub {
    list_node_t link; /* in chan->subs */
    chan_t *ch;
    sub_deliver_cb deliver;
    void *owner;
};

struct chan {
    chan_t *hnext;  /* hash chain */
    msg_t *retained; /* the MQTT retained message, or NULL (keeps the channel alive) */
    uint64_t hash;
    uint64_t last_id;
    uint64_t kept_from; /* the store may hold messages from this id on (older ones were trimmed) */
    uint64_t next_id;   /* the id the next publish gets (last_id + 1 + publishes waiting for commit) */
    uint32_t npending;  /* publishes of this channel waiting for their commit (keep it alive) */
    hist_t hist;
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

typedef struct {
    loop_t *loop;
    store_t *store;
    topic_tree_t topics; /* wildcard subscriptions */
    uint32_t nretained;
    hist_limits_t limits;
    chan_t **table;
    uint32_t table_cap, nchannels;
    uint64_t published; /* messages accepted, from every publishing route */
    int load_rc;        /* why the last hub_channel(create) failed (HR_ENOMEM, HR_EUNAVAIL, HR_EFULL) */
    uint32_t max_channels;     /* channels in memory at most (0: no limit); more: HR_EFULL */
    uint64_t channels_refused; /* channels not created for max_channels */
    uint64_t subscriptions; /* live subscriptions */
    tw_entry_t sweep;   /* periodic expiry of idle channels and aged history */
    sip_key_t hkey;     /* the channel table's hash key, random per process */
    hub_pend_t *pend_head, **pend_tail; /* publishes waiting for their commit, in order */
    uint32_t npend;
    /* store failures: while the store refuses writes, publishes are refused at once except one
     * probe a second, which finds out whether it recovered (space freed) */
    int store_fault;          /* 0, or the HR_E* of the last failed commit or write */
    uint64_t fault_since_ms;  /* monotonic time the fault began */
    uint64_t probe_at_ms;     /* the next publish allowed through as a probe */
    bool batch_refused;       /* the store refused a publish of the batch now open */
    uint64_t commits_failed;  /* commits that failed (their publishes failed) */
    uint64_t publishes_failed; /* publishes failed or refused because of the store */
} hub_t;

/* Sets up an empty hub. The hub uses (does not own) loop and store. Returns 0 or HR_ENOMEM. */
int hub_init(hub_t *hub, loop_t *loop, store_t *store, const hist_limits_t *limits);

/* Frees every channel and message. All subscriptions must have been removed. */
void hub_close(hub_t *hub);

/* True when name[0..n) is a valid channel name (see docs/api.md). */
bool hub_channel_valid(const char *name, size_t n);

/* True when e[0..n) is a valid event name: 1-64 of A-Z a-z 0-9 _ - . : */
bool hub_event_valid(const char *e, size_t n);

/* Returns the channel, creating it (and restoring it from the store) when create is set.
 * NULL when absent (create false) or on failure (load_rc says why: HR_EFULL when max_channels
 * channels exist; the refusal is logged the first time). */
chan_t *hub_channel(hub_t *hub, const char *name, size_t n, bool create);

/* What a publish may carry beyond channel, event and data (MQTT publishes). */
typedef struct {
    uint32_t flags;      /* MSG_QOS*, MSG_RETAIN, ... set on the message before it is delivered */
    uint32_t expiry_s;   /* message expiry interval (0: none) */
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
 * for now), HR_ENOMEM; cb is then never called. */
int hub_publish_async(hub_t *hub, const char *channel, size_t channel_len, const char *event, size_t event_len,
                      const void *data, size_t data_len, const hub_pubopt_t *o, hub_done_cb cb, void *arg);

/* Forgets the callbacks of every publish in flight made with arg (its connection is closing);
 * the publishes themselves still complete. */
void hub_cancel(hub_t *hub, void *arg);

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

/* Calls cb for every channel this node holds (cb must not free channels). */
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
    bool gap;                 /* messages after the cursor were lost (or the cursor is from the future) */
    uint64_t first_available; /* oldest id still kept (last_id + 1 when history is empty) */
    uint64_t last_id;         /* the channel's newest id */
} hub_cursor_info_t;

/* Finds the messages after cursor on ch, oldest first: stores up to max pointers in out (not
 * referenced: valid until the next publish or history trim, so use them at once) and returns how
 * many. info tells whether there is a gap. */
uint32_t hub_after(hub_t *hub, chan_t *ch, uint64_t cursor, msg_t **out, uint32_t max, hub_cursor_info_t *info);

#endif
