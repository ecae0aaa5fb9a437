/* stomp_queue.h - STOMP /queue/ destinations: what the app wires (set-up, the per-iteration
 * flush, metrics, close). The session side (consumers, ACK/NACK) is in stomp_internal.h.
 *
 * /queue/NAME is the herald channel queue/NAME: its history holds the queue's messages (so a
 * publish from any route, POST /pub/queue/NAME or MQTT, enters the queue) and a dispatcher, the
 * channel's one hub subscriber for the queue, hands each message to ONE consumer (round robin
 * over the STOMP subscriptions to it, on any connection), keeps it until it is acknowledged, and
 * hands it out again (redelivered:true) after a NACK or when its consumer leaves. The consumption
 * state (stomp_qstate.h) is saved in the store's key-value namespace "stompq", in the same commit
 * as the publishes of the iteration, so acknowledgements and queued messages survive a restart.
 * Only with the local engine (embedded store): with engine = redis /queue/ is refused. */
#ifndef HERALD_STOMP_QUEUE_H
#define HERALD_STOMP_QUEUE_H

#include "transport.h"

typedef struct stomp_queues stomp_queues_t;

/* The history limits of queue channels (namespace "stomp-queues", pattern queue/#): the
 * stomp_queue_max newest messages, no byte or age limit, never trimmed for max_history_memory.
 * Call before the config's namespaces are added, so that it matches first. 0 or HR_E*. */
int stomp_queues_ns(hub_t *hub, const cfg_t *cfg);

/* Opens the queues: restores every saved queue from the store (its channel and consumption
 * state) and installs the hub's publish gate (hub_t.gate) that bounds the queues. Sets x->stq.
 * NULL with a message in err on failure. With engine = redis, returns NULL with err empty (no
 * queues: /queue/ is refused). */
stomp_queues_t *stomp_queues_open(xp_ctx_t *x, char *err, size_t cap);

/* Writes the consumption state of the queues that changed, and trims their acknowledged
 * messages, into the store's pending commit. Called before every hub_commit (loop before_write). */
void stomp_queues_flush(stomp_queues_t *qs);

/* The queues' metrics (Prometheus text); returns bytes written. */
size_t stomp_queues_metrics(const stomp_queues_t *qs, char *out, size_t cap);

/* Flushes and frees the queues (every STOMP connection has closed). NULL is fine. */
void stomp_queues_close(stomp_queues_t *qs);

#endif
