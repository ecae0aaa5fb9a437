/* conn.h - the base connection: fd, read buffer, write queue, one timer, close-later.
 *
 * A protocol embeds conn_t as the first member of its own struct (h2o's "super" pattern) and
 * supplies conn_ops_t. Reading: when the socket is readable the loop lends the connection a read
 * buffer (allocated on demand), appends what arrived and calls ops->on_read, which takes what it
 * understood with conn_consume(); a buffer left empty is freed, so an idle connection holds no
 * read buffer. Writing: conn_send() queues a reference to a shared block and puts the connection
 * on the loop's pending-write list; the loop writev()s all pending connections just before it
 * polls, and asks for LOOP_WRITE only when the socket is full. Closing: conn_close() never frees
 * at once; the connection is marked, its fd closed, and ops->on_close runs in the loop's closing
 * phase, so a fan-out loop can meet a connection that closed while it ran. A TLS connection
 * (c->tls, see tls.h) is the same connection with its reads and writes going through OpenSSL:
 * the protocol above sees plaintext and knows nothing of it. */
#ifndef HERALD_CONN_H
#define HERALD_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "loop.h"
#include "wq.h"

typedef struct conn conn_t;

typedef struct {
    /* Bytes are waiting in c->rbuf[0..c->rlen). Consume what was understood. Not called while
     * reading is paused or the connection is closing. */
    void (*on_read)(conn_t *c);
    /* The peer closed its side. NULL means conn_end() (flush, then close). */
    void (*on_eof)(conn_t *c);
    /* The write queue drained (optional). */
    void (*on_drain)(conn_t *c);
    /* c->timer fired (optional). */
    void (*on_timer)(conn_t *c);
    /* Last call: release protocol state and free the struct that embeds c. Required. */
    void (*on_close)(conn_t *c);
    /* Detached connections only (conn_init_detached): the loop's write phase hands the queued
     * output to the owner instead of writing it to a socket. */
    void (*flush)(conn_t *c);
} conn_ops_t;

struct conn {
    watcher_t w;
    loop_t *loop;
    const conn_ops_t *ops;
    char *rbuf;
    uint32_t rlen, rcap, rmax; /* rmax: most bytes the read buffer may grow to */
    wq_t wq;
    tw_entry_t timer;
    list_node_t pend; /* in loop->pending_writes or loop->closing */
    list_node_t stall; /* in loop->stalled while queued output makes no progress */
    uint64_t stall_ms; /* when it last made progress (loop clock) */
    bool closing;
    bool end_after_write;
    bool read_paused;
    bool input_while_paused; /* LOOP_READ arrived while paused: stop watching it */
    bool held;        /* reading stopped until the write queue drains (conn_hold_input) */
    bool write_blocked; /* the last write left output queued: LOOP_WRITE is watched until it drains */
    int close_reason; /* HR_E* that closed it (0: normal) */
    struct ipl_entry *ipl; /* the per-address entry it was admitted under (iplimit.h), or NULL */
    const char *alias;     /* the client this connection speaks for (a trusted proxy's X-Forwarded-For), or NULL */
    struct tls_conn *tls;  /* the TLS session (tls.h), or NULL for a plain connection */
};

/* Initializes c around an accepted, non-blocking fd and starts reading. rmax bounds the read
 * buffer; wq_limit bounds the write queue. Returns 0 or HR_EIO (the caller closes fd). */
int conn_init(conn_t *c, loop_t *loop, int fd, const conn_ops_t *ops, uint32_t rmax, uint64_t wq_limit);

/* Initializes c as a connection with no socket (fd -1, never watched): a session that
 * outlives the requests carrying it (SockJS). Sending queues as usual, within wq_limit; the
 * loop's write phase calls ops->flush (required) instead of writing; the timer and conn_close
 * (with ops->on_close in the closing phase) work as for any connection. */
void conn_init_detached(conn_t *c, loop_t *loop, const conn_ops_t *ops, uint64_t wq_limit);

/* Removes n bytes from the front of the read buffer (freeing it when empty). */
void conn_consume(conn_t *c, uint32_t n);

/* Queues a reference to b. Returns 0, HR_EFULL (nothing queued: over the queue limit), or
 * HR_EIO when the connection is closing. */
int conn_send(conn_t *c, bytes_t *b);

/* Queues a reference to b even past the queue limit: for answers a request has already earned
 * (a response, a protocol reply), never for pushed messages. 0, or HR_EIO when closing. */
int conn_send_reply(conn_t *c, bytes_t *b);

/* Copies p[0..n) into a new block and queues it (ignores the queue limit: for small protocol
 * replies). Returns 0 or a negative code. */
int conn_send_copy(conn_t *c, const void *p, size_t n);

/* Writes what the socket takes now (one best-effort attempt, no waiting): a goodbye before
 * conn_close at shutdown. Plain and TLS alike. */
void conn_flush_now(conn_t *c);

/* Stops reading and closes the connection once everything queued has been written. */
void conn_end(conn_t *c);

/* Closes now (queued data is dropped); reason is kept for logs. Safe to call repeatedly. */
void conn_close(conn_t *c, int reason);

/* Writes the peer's address ("1.2.3.4:5678", "[::1]:5678", or "?") into buf; returns buf. For
 * logs: the address is looked up when asked, not kept per connection. */
const char *conn_peer(const conn_t *c, char *buf, size_t cap);

/* Backpressure for a peer that sends requests without reading the answers: stops reading (and
 * delivering what is buffered) until the write queue has drained, then resumes by itself, before
 * ops->on_drain runs. Counted in loop->input_holds (the first hold of the process is logged).
 * Returns true when c was not held already. */
bool conn_hold_input(conn_t *c);

/* Stops or resumes delivering input to on_read. */
void conn_pause_read(conn_t *c, bool paused);

/* Arms c->timer (calls ops->on_timer) in ms from now; 0 stops it. Does nothing but stop it on a
 * closing connection. */
void conn_timer(conn_t *c, uint64_t in_ms);

/* Loop phases (called by loop.c only). */
void conn__flush_pending(loop_t *loop);
void conn__run_closing(loop_t *loop);

#endif
