/* stomp_internal.h - what the STOMP files share (stomp.c: the session; stomp_sub.c:
 * subscriptions, MESSAGE frames, acknowledgements). Not a public interface: only
 * src/transport/stomp*.c include it. */
#ifndef HERALD_STOMP_INTERNAL_H
#define HERALD_STOMP_INTERNAL_H

#include "stomp_codec.h"
#include "ws.h"

#define STOMP_MAX_ID 128
#define STOMP_MAX_HEAD 32768
#define STOMP_MAX_LINE 8192
#define STOMP_MAX_TX 16
#define STOMP_MAX_TX_OPS 1024
#define STOMP_MAX_DEST (HUB_MAX_CHANNEL * 2 + 64) /* an escaped destination header in a MESSAGE */

enum { ACK_AUTO = 0, ACK_CLIENT, ACK_INDIVIDUAL };

typedef struct stomp stomp_t;
typedef struct stq_cons stq_cons_t;

/* What carries a STOMP session that has no WebSocket of its own: a SockJS session
 * (stomp_sockjs.c). stomp_t.car NULL means the WebSocket, through ws.h. A carried session keeps
 * s->ws filled in (x, id, last_input_ms, and hc: a detached connection, conn.h, whose write queue
 * holds the carrier's units until a transport takes them). */
typedef struct {
    /* The STOMP frame p[0..n) followed by tail (NULL: none) as one unit ready to queue on
     * s->ws.hc->base: a new reference, or NULL. Per message: nothing is shared over a carrier. */
    bytes_t *(*unit)(stomp_t *s, const char *p, size_t n, const bytes_t *tail);
    /* Ends the session with code and reason once what is queued has gone (sets s->ws.close_sent). */
    void (*close)(stomp_t *s, uint16_t code, const char *reason);
} stomp_carrier_t;

typedef struct {
    stomp_t *sess;
    stream_t *st;       /* a /topic/ (or /user/) subscription's stream; NULL for a queue's */
    stq_cons_t *qc;     /* a /queue/ subscription's consumer (stomp_queue.c), else NULL */
    uint32_t key; /* per-connection number in message-id / ack */
    uint8_t ack;
    bool text;    /* the id is UTF-8: frames can go as WebSocket text */
    bool unread;  /* SUBSCRIBE asked for unread events (herald-unread:true) on a personal channel */
    uint32_t pending_head, npending; /* ring of unacknowledged message ids (client modes) */
    uint64_t *pending;
    uint16_t id_len;       /* escaped id */
    uint16_t dest_len;
    char *dest;            /* a /user/ subscription: its escaped destination, after id (NULL: the channel's) */
    char id[];             /* escaped for the connection's version, as it goes in MESSAGE */
} stomp_sub_t;

/* A transaction: SENDs and ACK/NACKs held until COMMIT (in order), dropped on ABORT. Bounded:
 * STOMP_MAX_TX open per connection, STOMP_MAX_TX_OPS frames and ws_max_message * 4 bytes each. */
typedef struct stomp_txop {
    struct stomp_txop *next;
    stomp_cmd_t cmd;                /* STOMP_SEND, STOMP_ACK or STOMP_NACK */
    uint32_t a_len, b_len;          /* SEND: channel and event; ACK/NACK: the id */
    size_t body_len;
    char mem[];                     /* a, then b, then the body */
} stomp_txop_t;

typedef struct stomp_tx {
    struct stomp_tx *next;
    stomp_txop_t *head, **tail;
    uint32_t nops;
    size_t bytes;
    uint16_t name_len;
    char name[];
} stomp_tx_t;

struct stomp {
    ws_t ws;
    stomp_tx_t *txs;
    int version; /* 0 until CONNECT, then 11 or 12 */
    uint32_t hb_send_ms, hb_recv_ms;
    tw_entry_t hb;
    uint32_t next_key;
    uint32_t next_gap; /* gap notices sent (their message ids) */
    uint32_t nsubs, cap;
    stomp_sub_t **subs;
    ws_carry_t in; /* a frame cut at the end of a WebSocket message, waiting for the rest */
    xp_owedq_t owed; /* SENDs waiting for their commit, and the receipts that may not overtake them */
    bool bye;        /* DISCONNECT came while SENDs waited: close when they are answered */
    const stomp_carrier_t *car; /* NULL: a WebSocket */
};

/* Ends the session with code and reason: the WebSocket's closing handshake, or the carrier's. */
static inline void stomp__close(stomp_t *s, uint16_t code, const char *reason)
{
    if (s->car) s->car->close(s, code, reason);
    else ws_close(&s->ws, code, reason);
}

/* ---- a session over a carrier (stomp.c) ---- */

/* Starts a STOMP session over car on the detached connection hc (kept by the caller, which
 * outlives the session), with identity id (the reference passes to the session). CONNECT must
 * come within header_timeout. NULL on OOM. */
stomp_t *stomp_carried_open(xp_ctx_t *x, http_conn_t *hc, const stomp_carrier_t *car, auth_id_t *id);

/* Input from the peer: data[0..n) (writable) is the next part of the STOMP byte stream. */
void stomp_carried_input(stomp_t *s, char *data, size_t n);

/* The carrier's queue drained: pending gap notices go. */
void stomp_carried_drained(stomp_t *s);

/* The identity's credential expired: ERROR, then the carrier's close. */
void stomp_carried_expired(stomp_t *s);

/* Ends the session's subscriptions, transactions and waiting publishes, and frees it. */
void stomp_carried_free(stomp_t *s);

/* ---- the session (stomp.c) ---- */

/* Sends a whole frame as one WebSocket message (a copy): text when it is UTF-8, else binary. */
void stomp__send_raw(stomp_t *s, const char *buf, size_t n);

/* True when a frame of n bytes may be queued now without passing the connection's output
 * limit (or the output is empty): a queue consumer that is not writable is skipped. */
bool stomp__room(stomp_t *s, size_t n);

/* Answers a violation with one ERROR frame (message why, body detail or why, receipt-id when f
 * asked for a receipt) and closes the connection with code. The only place that does. */
void stomp__error(stomp_t *s, const stomp_frame_t *f, const char *why, const char *detail, uint16_t code);

/* stomp__error for a malformed or unexpected frame (close 1002). */
void stomp__proto_error(stomp_t *s, const stomp_frame_t *f, const char *why);

/* Sends the RECEIPT f asks for, if any, in order behind SENDs still waiting for their commit. */
void stomp__receipt(stomp_t *s, const stomp_frame_t *f);

/* The open transaction f names (NULL when none is named; *bad, having answered, when it names
 * one that is not open); *link, when given, gets the pointer to it in s->txs. */
stomp_tx_t *stomp__tx_of(stomp_t *s, stomp_frame_t *f, bool *bad, stomp_tx_t ***link);

/* Holds a SEND (a: channel, b: event) or ACK/NACK (a: the id) in tx until COMMIT; false
 * (having answered) beyond the transaction's bounds. */
bool stomp__tx_hold(stomp_t *s, stomp_frame_t *f, stomp_tx_t *tx, stomp_cmd_t cmd, span_t a, span_t b,
                    const char *body, size_t body_len);

/* ---- subscriptions (stomp_sub.c) ---- */

/* Frees a subscription: its stream and its unacknowledged ids. */
void stomp__sub_free(stomp_sub_t *sub);

/* What a destination is (stomp__dest). */
enum { STOMP_DEST_TOPIC = 0, STOMP_DEST_QUEUE, STOMP_DEST_OWN };

/* Maps f's destination header to its channel (stomp_queue.c has the table): the name goes into
 * buf (HUB_MAX_CHANNEL + 1 bytes) and *name; returns STOMP_DEST_TOPIC (a channel), _QUEUE (a
 * queue channel) or _OWN (the connection's own user destination: subscribing needs no rule),
 * or -1 having answered with an ERROR (unsupported, anonymous /user/, a queue with engine =
 * redis). send: for a SEND (the /app/ and /user/{other}/ forms are only sent to). */
int stomp__dest(stomp_t *s, stomp_frame_t *f, bool send, char *buf, span_t *name);

/* SUBSCRIBE and UNSUBSCRIBE (with their receipts, or an ERROR). */
void stomp__subscribe(stomp_t *s, stomp_frame_t *f);
void stomp__unsubscribe(stomp_t *s, stomp_frame_t *f);

/* Acknowledges the message with ack id v ("<message id>-<subscription key>"); false (having
 * answered with an ERROR) when it is not pending. */
bool stomp__ack_id(stomp_t *s, stomp_frame_t *f, span_t v, bool nack);

/* ACK or NACK (held when in a transaction). */
void stomp__ack(stomp_t *s, stomp_frame_t *f, bool nack);

/* ---- queues (stomp_queue.c; see stomp_queue.h) ---- */

/* Makes sub a consumer of queue channel name (header prefetch-count or stomp_prefetch). False
 * having answered (too many queues, out of memory). The caller sends the receipt, then calls
 * stomp__queue_kick. */
bool stomp__queue_subscribe(stomp_t *s, stomp_frame_t *f, stomp_sub_t *sub, span_t name);

/* The channel of queue subscription sub (NULL when sub is not one). */
const chan_t *stomp__queue_chan(const stomp_sub_t *sub);

/* sub can take messages again (subscribed, or its connection's output drained): dispatch. */
void stomp__queue_kick(stomp_sub_t *sub);

/* sub leaves its queue (UNSUBSCRIBE, the connection closed): its unacknowledged messages go
 * to the other consumers, marked redelivered. Frees sub->qc. */
void stomp__queue_detach(stomp_sub_t *sub);

/* ACK or NACK of queue message mid delivered to sub (client: it and those before it on the
 * subscription; client-individual: it alone). False having answered when it is not pending. */
bool stomp__queue_ack(stomp_t *s, stomp_frame_t *f, stomp_sub_t *sub, uint64_t mid, bool nack);

/* Before a SEND to queue channel name: false having answered with an ERROR when the queue is
 * full (stomp_queue_max) or cannot be made (stomp_max_queues). */
bool stomp__queue_room(stomp_t *s, stomp_frame_t *f, span_t name);

#endif
