/* conn.c - base connection mechanics; see conn.h. */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "tls.h"

#define CONN_RBUF_INITIAL 4096
#define CONN_READS_PER_EVENT 4 /* fairness: one fire-hose peer cannot starve the rest */

static void conn__on_event(loop_t *loop, watcher_t *w, uint32_t events);

static void conn__on_timer(tw_entry_t *e)
{
    conn_t *c = container_of(e, conn_t, timer);
    if (c->closing) return;
    if (c->tls && tls__handshaking(c->tls)) { /* the handshake deadline (tls.h) */
        tls__handshake_timeout(c);
        conn_close(c, HR_ETIMEDOUT);
        return;
    }
    if (c->ops->on_timer) c->ops->on_timer(c);
}

void conn_init_detached(conn_t *c, loop_t *loop, const conn_ops_t *ops, uint64_t wq_limit)
{
    memset(c, 0, sizeof(*c));
    c->w.fd = -1;
    c->w.cb = conn__on_event;
    c->loop = loop;
    c->ops = ops;
    wq_init(&c->wq, wq_limit);
    tw_entry_init(&c->timer, conn__on_timer);
    list_init(&c->pend);
    list_init(&c->stall);
}

int conn_init(conn_t *c, loop_t *loop, int fd, const conn_ops_t *ops, uint32_t rmax, uint64_t wq_limit)
{
    conn_init_detached(c, loop, ops, wq_limit);
    c->w.fd = fd;
    c->rmax = rmax;
    return loop_watch(loop, &c->w, LOOP_READ | LOOP_RDHUP);
}

void conn_consume(conn_t *c, uint32_t n)
{
    if (n >= c->rlen) {
        free(c->rbuf);
        c->rbuf = NULL;
        c->rlen = c->rcap = 0;
        return;
    }
    memmove(c->rbuf, c->rbuf + n, c->rlen - n);
    c->rlen -= n;
}

static void conn__mark_pending(conn_t *c)
{
    if (!list_linked(&c->pend)) list_push_back(&c->loop->pending_writes, &c->pend);
}

int conn_send(conn_t *c, bytes_t *b)
{
    if (c->closing) return HR_EIO;
    int rc = wq_push(&c->wq, b);
    if (rc == 0) conn__mark_pending(c);
    return rc;
}

int conn_send_reply(conn_t *c, bytes_t *b)
{
    uint64_t lim = c->wq.limit;
    c->wq.limit = UINT64_MAX;
    int rc = conn_send(c, b);
    c->wq.limit = lim;
    return rc;
}

int conn_send_copy(conn_t *c, const void *p, size_t n)
{
    if (c->closing) return HR_EIO;
    bytes_t *b = bytes_copy(p, n);
    if (!b) return HR_ENOMEM;
    int rc = conn_send_reply(c, b);
    bytes_unref(b);
    return rc;
}

static void conn__update_interest(conn_t *c)
{
    uint32_t ev = 0;
    if (!c->read_paused && !c->end_after_write) ev |= LOOP_READ | LOOP_RDHUP;
    /* A paused connection (a parked request) still notices its peer leaving. It keeps LOOP_READ
     * too until input actually arrives while paused: most parked clients send nothing, so
     * pausing and resuming cost no epoll_ctl calls. */
    else if (c->read_paused) ev |= LOOP_RDHUP | (c->input_while_paused ? 0 : LOOP_READ);
    /* writability is asked for only after a write the kernel did not take whole: queued output
     * is written at the end of this iteration anyway (pending_writes), so asking at once would
     * cost an epoll_ctl to add it and another to drop it after the write (two per request) */
    if (c->write_blocked && !wq_empty(&c->wq)) ev |= LOOP_WRITE;
    if (c->tls) ev = tls__interest(c->tls, ev); /* the handshake, or a record layer that needs the other way */
    loop_modify(c->loop, &c->w, ev);
}

void conn_pause_read(conn_t *c, bool paused)
{
    if (c->closing || c->read_paused == paused) return;
    c->read_paused = paused;
    if (!paused) c->input_while_paused = false;
    conn__update_interest(c);
    /* input that arrived while paused is still buffered: deliver it on resume */
    if (!paused && (c->rlen || (c->tls && tls__pending(c->tls)))) conn__mark_pending(c);
}

void conn_end(conn_t *c)
{
    if (c->closing) return;
    c->end_after_write = true;
    conn__update_interest(c);
    conn__mark_pending(c);
}

/* The send timeout: a connection whose queued output has not moved for send_timeout (the peer
 * stopped reading: a dead laptop, a flooding client) is closed, like nginx's send_timeout. The
 * stalled list is ordered by the time of the last progress, so the check stops at the first
 * connection that is not due. */
static void conn__stall_check(tw_entry_t *e)
{
    loop_t *loop = container_of(e, loop_t, stall_timer);
    uint64_t now = loop_now(loop);
    while (!list_empty(&loop->stalled)) {
        conn_t *c = container_of(loop->stalled.next, conn_t, stall);
        if (now - c->stall_ms < loop->send_timeout_ms) break;
        list_unlink(&c->stall);
        if (!loop->send_timeouts++) {
            char peer[64];
            log_info("%s: queued output made no progress for send_timeout (%u ms): closed (counted in "
                     "herald_send_timeouts_total, not logged again)",
                     conn_peer(c, peer, sizeof(peer)), loop->send_timeout_ms);
        }
        conn_close(c, HR_ETIMEDOUT);
    }
    if (!list_empty(&loop->stalled)) loop_timer(loop, &loop->stall_timer, 1000);
}

/* After a flush: output left queued starts (or, with progress, restarts) the send timeout. */
static void conn__stalled(conn_t *c, bool drained, bool progress)
{
    loop_t *loop = c->loop;
    if (drained || !loop->send_timeout_ms) {
        list_unlink(&c->stall);
        return;
    }
    if (list_linked(&c->stall) && !progress) return;
    list_unlink(&c->stall);
    c->stall_ms = loop_now(loop);
    list_push_back(&loop->stalled, &c->stall);
    if (!loop->stall_timer.cb) tw_entry_init(&loop->stall_timer, conn__stall_check);
    if (!tw_armed(&loop->stall_timer)) loop_timer(loop, &loop->stall_timer, 1000);
}

void conn_close(conn_t *c, int reason)
{
    if (c->closing) return;
    c->closing = true;
    c->close_reason = reason;
    list_unlink(&c->stall);
    if (list_empty(&c->loop->stalled) && c->loop->stall_timer.cb) tw_stop(&c->loop->wheel, &c->loop->stall_timer);
    tw_stop(&c->loop->wheel, &c->timer);
    loop_unwatch(c->loop, &c->w);
    if (c->tls) { /* close_notify after a normal end */
        tls__free(c->tls, reason == 0 || reason == HR_ESHUTDOWN);
        c->tls = NULL;
    }
    if (c->w.fd >= 0) close(c->w.fd);
    c->w.fd = -1;
    wq_clear(&c->wq);
    free(c->rbuf);
    c->rbuf = NULL;
    c->rlen = c->rcap = 0;
    list_unlink(&c->pend);
    list_push_back(&c->loop->closing, &c->pend);
}

void conn_timer(conn_t *c, uint64_t in_ms)
{
    /* a closing connection is freed in the closing phase: it must not stay in the wheel */
    if (in_ms == 0 || c->closing)
        tw_stop(&c->loop->wheel, &c->timer);
    else
        loop_timer(c->loop, &c->timer, in_ms);
}

static void conn__read_some(conn_t *c)
{
    for (int i = 0; i < CONN_READS_PER_EVENT && !c->closing && !c->read_paused; i++) {
        if (c->rlen == c->rcap) {
            if (c->rcap >= c->rmax) return; /* the protocol let it fill: it will refuse it */
            uint32_t ncap = c->rcap ? c->rcap * 2 : CONN_RBUF_INITIAL;
            if (ncap > c->rmax) ncap = c->rmax;
            char *nb = realloc(c->rbuf, ncap);
            if (!nb) {
                conn_close(c, HR_ENOMEM);
                return;
            }
            c->rbuf = nb;
            c->rcap = ncap;
        }
        size_t room = c->rcap - c->rlen;
        ssize_t n = c->tls ? tls__read(c->tls, c->rbuf + c->rlen, room) : read(c->w.fd, c->rbuf + c->rlen, room);
        if (n > 0) {
            c->rlen += (uint32_t)n;
            c->loop->bytes_in += (uint64_t)n;
            c->ops->on_read(c);
            if (c->rlen == 0 && c->rbuf) conn_consume(c, 0);
            /* a short read drained the socket: save the read that would say EAGAIN (the loop is
             * level-triggered, so anything arriving later is reported again; TLS input already
             * inside OpenSSL is not: conn__read looks after it) */
            if ((size_t)n < room) return;
            continue;
        }
        if (n == 0) {
            if (c->rlen == 0 && c->rbuf) conn_consume(c, 0);
            if (c->ops->on_eof)
                c->ops->on_eof(c);
            else
                conn_end(c);
            return;
        }
        if (errno == EINTR) continue;
        if (c->rlen == 0 && c->rbuf) conn_consume(c, 0);
        if (errno != EAGAIN && errno != EWOULDBLOCK) conn_close(c, HR_EIO);
        return;
    }
}

/* Reads, then makes sure TLS input left decrypted inside OpenSSL (a record larger than the read
 * buffer's room) is read without waiting for a readiness event that will not come. */
static void conn__read(conn_t *c)
{
    conn__read_some(c);
    if (c->tls && !c->closing && c->rlen < c->rmax && tls__pending(c->tls)) conn__mark_pending(c);
}

static void conn__flush(conn_t *c)
{
    bool drained = true;
    if (c->w.fd < 0 && c->ops->flush) { /* detached: the owner takes the output */
        c->ops->flush(c);
        return;
    }
    if (c->tls && tls__handshaking(c->tls)) return; /* queued output waits for the handshake */
    if (!wq_empty(&c->wq)) {
        ssize_t n = c->tls ? tls__flush(c->tls, &c->wq, c->w.fd, &drained) : wq_flush(&c->wq, c->w.fd, &drained);
        if (n < 0) {
            conn_close(c, HR_EIO);
            return;
        }
        c->loop->bytes_out += (uint64_t)n;
        conn__stalled(c, drained, n > 0);
    }
    c->write_blocked = !drained;
    if (drained && c->end_after_write) {
        conn_close(c, 0);
        return;
    }
    conn__update_interest(c);
    if (drained && c->held) { /* the answers were read: buffered input goes on (delivered as pending) */
        c->held = false;
        conn_pause_read(c, false);
    }
    if (drained && c->ops->on_drain) c->ops->on_drain(c);
}

bool conn_hold_input(conn_t *c)
{
    if (c->held || c->closing) return false;
    c->held = true;
    conn_pause_read(c, true);
    if (!c->loop->input_holds++) {
        char peer[128];
        log_info("%s: answers not read: reading paused until they drain (max_queued_bytes; counted in "
                 "herald_read_pauses_total, not logged again)",
                 conn_peer(c, peer, sizeof(peer)));
    }
    return true;
}

void conn_flush_now(conn_t *c)
{
    bool drained;
    if (c->closing || wq_empty(&c->wq) || (c->tls && tls__handshaking(c->tls))) return;
    if (c->tls) tls__flush(c->tls, &c->wq, c->w.fd, &drained);
    else wq_flush(&c->wq, c->w.fd, &drained);
}

/* A TLS connection's events: the handshake until it is done; afterwards the record layer may
 * need the socket the other way round (a write that waits to read, a read that must write). */
static uint32_t conn__tls_event(conn_t *c, uint32_t events)
{
    if (tls__handshaking(c->tls)) {
        int rc = tls__handshake(c);
        if (rc == HR_EAGAIN) {
            conn__update_interest(c);
            return 0;
        }
        if (rc < 0) {
            conn_close(c, rc);
            return 0;
        }
        conn__update_interest(c);
        if (!wq_empty(&c->wq)) conn__mark_pending(c);
        return LOOP_READ; /* read what came with the end of the handshake (or learn nothing did) */
    }
    if ((events & (LOOP_READ | LOOP_HUP | LOOP_ERR)) && tls__write_wants_read(c->tls)) events |= LOOP_WRITE;
    if ((events & LOOP_WRITE) && tls__read_wants_write(c->tls)) {
        events |= LOOP_READ;
        if (wq_empty(&c->wq)) events &= ~(uint32_t)LOOP_WRITE;
    }
    return events;
}

static void conn__on_event(loop_t *loop, watcher_t *w, uint32_t events)
{
    conn_t *c = container_of(w, conn_t, w);
    if (c->tls && !(events = conn__tls_event(c, events))) return;
    if (events & LOOP_WRITE) conn__flush(c);
    if (c->closing) return;
    if (events & (LOOP_READ | LOOP_RDHUP | LOOP_HUP | LOOP_ERR)) {
        if (c->read_paused || c->end_after_write) {
            /* not reading: a hang-up still ends us */
            if (events & (LOOP_HUP | LOOP_ERR | (c->read_paused ? LOOP_RDHUP : 0))) {
                conn_close(c, HR_EIO);
                return;
            }
            if (c->read_paused && (events & LOOP_READ)) { /* pipelined input: stop watching it */
                c->input_while_paused = true;
                conn__update_interest(c);
            }
            return;
        }
        conn__read(c);
    }
}

void conn__flush_pending(loop_t *loop)
{
    /* connections may be re-added while we flush (on_drain sending more): bounded passes */
    for (int pass = 0; pass < 4 && !list_empty(&loop->pending_writes); pass++) {
        list_t batch;
        list_init(&batch);
        while (!list_empty(&loop->pending_writes)) {
            list_node_t *n = loop->pending_writes.next;
            list_unlink(n);
            list_push_back(&batch, n);
        }
        while (!list_empty(&batch)) {
            conn_t *c = container_of(batch.next, conn_t, pend);
            list_unlink(&c->pend);
            if (c->closing) continue;
            /* input left over from a paused period is delivered now */
            if (c->rlen && !c->read_paused && !c->end_after_write) c->ops->on_read(c);
            /* TLS input waiting inside OpenSSL (conn__read) */
            if (c->tls && !c->closing && !c->read_paused && !c->end_after_write && tls__pending(c->tls))
                conn__read(c);
            if (!c->closing) conn__flush(c);
        }
    }
}

void conn__run_closing(loop_t *loop)
{
    while (!list_empty(&loop->closing)) {
        conn_t *c = container_of(loop->closing.next, conn_t, pend);
        list_unlink(&c->pend);
        c->ops->on_close(c);
    }
}

const char *conn_peer(const conn_t *c, char *buf, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN];
    snprintf(buf, cap, "?");
    if (c->alias && c->alias[0]) { /* "CLIENT (via PROXY)" */
        size_t an = (size_t)snprintf(buf, cap, "%s (via ", c->alias);
        if (an + 8 >= cap) return buf;
        conn_peer(&(conn_t){.w.fd = c->w.fd}, buf + an, cap - an - 1);
        strcat(buf, ")");
        return buf;
    }
    if (c->w.fd < 0 || getpeername(c->w.fd, (struct sockaddr *)&ss, &sl) < 0) return buf;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host))) snprintf(buf, cap, "%s:%u", host, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host)))
            snprintf(buf, cap, "[%s]:%u", host, ntohs(a->sin6_port));
    }
    return buf;
}
