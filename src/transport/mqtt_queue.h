/* mqtt_queue.h - what an MQTT session owes its client: the messages in flight (sent with QoS > 0
 * and not yet acknowledged), found by packet id, and the FIFO of messages waiting to be sent
 * (the client is away, its receive window is full, or its socket is backed up).
 *
 * Both hold mq_item_t values that own one reference to their message. Neither knows about
 * sockets or encodings; mqtt.c decides what moves where. A FIFO may count in a total shared by
 * every session (mq_total_t, mqtt_max_queued_bytes_total). Unit-tested by
 * tests/unit/test_mqtt_queue.c. */
#ifndef HERALD_MQTT_QUEUE_H
#define HERALD_MQTT_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct msg;

enum {
    MQ_SENT = 1,     /* PUBLISH sent: waiting for PUBACK (QoS 1) or PUBREC (QoS 2) */
    MQ_RELEASED = 2, /* PUBREL sent: waiting for PUBCOMP */
};

typedef struct {
    struct msg *m;   /* one reference, owned by the container holding the item */
    uint32_t sub_id; /* subscription identifier to send with it (0: none) */
    uint32_t seq;    /* in flight: send order, so a reconnect resends in the original order */
    uint16_t pid;    /* in flight: the packet id */
    uint8_t qos;
    uint8_t state;   /* in flight: MQ_SENT or MQ_RELEASED */
    bool retain;     /* the RETAIN flag to send */
} mq_item_t;

/* In-flight messages: an open-addressing table keyed by packet id (linear probing, kept at most
 * half full), so an acknowledgement finds its message in O(1) whatever the window. */
typedef struct {
    mq_item_t *slot; /* cap slots; an empty slot has pid 0 */
    uint32_t cap, n;
    uint32_t seq;
    uint16_t next_pid;
} mq_flight_t;

/* Adds *it (taking over its message reference) under a packet id not in use, which is returned
 * in *pid; the stored copy's state becomes MQ_SENT. 0, HR_ENOMEM, or HR_EFULL when 65535 packet
 * ids are in use (it untouched on failure). */
int mq_flight_add(mq_flight_t *f, const mq_item_t *it, uint16_t *pid);

/* Adds *it under its own it->pid (restoring a saved session; the pid must not be in use) and
 * state, as the newest item. 0, HR_ENOMEM, or HR_EINVAL for pid 0 or one in use. */
int mq_flight_put(mq_flight_t *f, const mq_item_t *it);

/* The item with packet id pid, or NULL. */
mq_item_t *mq_flight_find(mq_flight_t *f, uint16_t pid);

/* Removes an item returned by mq_flight_find (drops its message reference). */
void mq_flight_del(mq_flight_t *f, mq_item_t *it);

/* Fills out[0..f->n) with the items in the order they were added. out must hold f->n pointers;
 * they stay valid until the table changes. Returns f->n. */
uint32_t mq_flight_ordered(const mq_flight_t *f, mq_item_t **out);

/* Drops every item and frees the table. */
void mq_flight_free(mq_flight_t *f);

typedef struct mq_fifo mq_fifo_t;
typedef struct mq_total mq_total_t;

/* Waiting messages, oldest first: a ring buffer that grows up to the bound given to push. */
struct mq_fifo {
    mq_item_t *v;
    uint32_t head, n, cap;
    uint64_t bytes;     /* payload and topic bytes of the items held (mq_item_bytes) */
    mq_total_t *total;  /* the total it counts in, or NULL */
    uint32_t heap_i;    /* its place in total's heap + 1 (0: not in it, e.g. empty) */
};

/* The FIFOs of every session together, against one bound on their bytes (max, 0: none). Beyond
 * it, the oldest message of the largest FIFO is dropped first (the session holding the most pays,
 * not whoever's message happens to arrive): the FIFOs are kept in a max-heap by bytes, so the
 * largest is found in O(1) and every change costs O(log n). Each message dropped that way is
 * reported through dropped(arg, fifo) (the FIFO's owner marks it changed and counts it). */
struct mq_total {
    mq_fifo_t **heap;
    uint32_t n, cap;
    uint64_t bytes, max;
    void (*dropped)(void *arg, mq_fifo_t *q);
    void *arg;
};

/* What an item counts against a byte bound: its message's payload and channel name. */
uint64_t mq_item_bytes(const mq_item_t *it);

/* Appends *it (taking over its reference). When the FIFO already holds max items, or would hold
 * more than max_bytes, the oldest are dropped first (the overflow policy: the newest messages are
 * the ones worth keeping). Returns how many were dropped (0 when none); an item larger than
 * max_bytes (or than its total's max) by itself, or any item with max 0, is not kept (its
 * reference is dropped, counted as 1). Then, while the FIFO's total would pass its max, the
 * oldest item of the largest FIFO (this one or another) is dropped and reported to the total's
 * dropped callback (not counted in the return). HR_ENOMEM (it untouched) when the ring cannot
 * grow. */
int mq_fifo_push(mq_fifo_t *q, const mq_item_t *it, uint32_t max, uint64_t max_bytes);

/* The oldest item, or NULL when empty. */
static inline mq_item_t *mq_fifo_peek(mq_fifo_t *q) { return q->n ? &q->v[q->head] : NULL; }

/* Removes the oldest item; its message reference passes to the caller, who takes it (peek)
 * before and drops it only after the pop, which reads the message's size. */
void mq_fifo_pop(mq_fifo_t *q);

/* Drops every item and frees the ring (the FIFO leaves its total, and may join it again). */
void mq_fifo_free(mq_fifo_t *q);

/* Frees the total's heap; every FIFO must have been freed before. */
void mq_total_free(mq_total_t *t);

#endif
