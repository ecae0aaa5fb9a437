/* listener.c - see listener.h. */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

#define ACCEPTS_PER_EVENT 64

/* A connection whose PROXY header is being read: only header bytes are ever taken from the
 * socket (so what follows, a TLS ClientHello or a request, stays for the connection). */
typedef struct {
    watcher_t w;
    tw_entry_t timer;
    list_node_t link; /* in l->pp_waits */
    listener_t *l;
    uint16_t n;
    uint8_t buf[PROXYPROTO_MAX];
} pp_wait_t;

static bool pp_logged;

/* keep: the header came (the fd goes on); stopping: the server closes it; else refused. */
static void pp__end(pp_wait_t *p, bool keep, bool stopping)
{
    listener_t *l = p->l;
    loop_unwatch(l->loop, &p->w);
    tw_stop(&l->loop->wheel, &p->timer);
    list_unlink(&p->link);
    if (!keep && stopping) close(p->w.fd);
    else if (!keep) {
        close(p->w.fd);
        l->pp_refused++;
        if (!pp_logged)
            log_warn("proxy_protocol: a connection to %s sent no valid PROXY header in time: closed (counted in "
                     "herald_connections_refused_total{reason=\"proxy_protocol\"}, not logged again)",
                     l->addr);
        pp_logged = true;
    }
    free(p);
}

static void pp__done(pp_wait_t *p, bool keep) { pp__end(p, keep, false); }

static void pp__timeout(tw_entry_t *e) { pp__done(container_of(e, pp_wait_t, timer), false); }

/* The socket is readable: the header's bytes are taken (never more), then parsed. */
static void pp__on_event(loop_t *loop, watcher_t *w, uint32_t events)
{
    (void)loop, (void)events;
    pp_wait_t *p = container_of(w, pp_wait_t, w);
    uint8_t peek[PROXYPROTO_MAX];
    ssize_t k = recv(w->fd, peek, sizeof(peek) - p->n, MSG_PEEK);
    if (k <= 0) {
        if (k < 0 && (errno == EAGAIN || errno == EINTR)) return;
        pp__done(p, false); /* closed before its header */
        return;
    }
    /* the bytes to take: v1 up to its '\n' (or all seen, all header), v2 its 16-byte head then its length */
    uint8_t all[PROXYPROTO_MAX];
    memcpy(all, p->buf, p->n);
    memcpy(all + p->n, peek, (size_t)k);
    size_t have = p->n + (size_t)k, take;
    if (all[0] == 'P') {
        const uint8_t *nl = memchr(all, '\n', have);
        take = nl ? (size_t)(nl - all) + 1 : have;
    } else {
        size_t want = have >= 16 ? 16 + ((size_t)all[14] << 8 | all[15]) : 16;
        take = have < want ? have : want;
    }
    if (take > PROXYPROTO_MAX) take = PROXYPROTO_MAX;
    if (take > p->n && recv(w->fd, p->buf + p->n, take - p->n, 0) != (ssize_t)(take - p->n)) {
        pp__done(p, false);
        return;
    }
    p->n = (uint16_t)take;
    proxyproto_t h;
    int rc = proxyproto_parse(p->buf, p->n, &h);
    if (rc == 0 && p->n < PROXYPROTO_MAX) return; /* more to come */
    if (rc <= 0) {
        pp__done(p, false);
        return;
    }
    listener_t *l = p->l;
    int fd = w->fd;
    pp__done(p, true);
    l->pp = h.local ? NULL : &h; /* LOCAL (a health check): the TCP peer is the client */
    l->on_accept(l, fd);
    l->pp = NULL;
}

static void pp__start(listener_t *l, int fd)
{
    pp_wait_t *p = calloc(1, sizeof(*p));
    if (!p) {
        close(fd);
        return;
    }
    p->l = l;
    p->w.fd = fd;
    p->w.cb = pp__on_event;
    tw_entry_init(&p->timer, pp__timeout);
    list_push_back(&l->pp_waits, &p->link);
    if (loop_watch(l->loop, &p->w, LOOP_READ | LOOP_RDHUP) < 0) {
        list_unlink(&p->link);
        close(fd);
        free(p);
        return;
    }
    tw_arm(&l->loop->wheel, &p->timer, loop_now(l->loop) + l->proxy_ms);
}

void listener_proxy(listener_t *l, uint32_t timeout_ms) { l->proxy_ms = timeout_ms ? timeout_ms : 1; }

static void listener__on_event(loop_t *loop, watcher_t *w, uint32_t events)
{
    listener_t *l = container_of(w, listener_t, w);
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        int fd = accept4(l->w.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            if (l->proxy_ms) pp__start(l, fd);
            else l->on_accept(l, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if ((errno == EMFILE || errno == ENFILE) && l->reserve_fd >= 0) {
            /* shed one peer: free the reserve, accept and close, then take the reserve back */
            close(l->reserve_fd);
            int shed = accept(l->w.fd, NULL, NULL);
            if (shed >= 0) {
                close(shed);
                if (!loop->fd_shed++)
                    log_warn("out of file descriptors (ulimit -n): new connections are closed at once (counted in "
                             "herald_connections_refused_total{reason=\"fd_limit\"}, not logged again)");
            }
            l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            continue;
        }
        return; /* EAGAIN or a transient error: wait for the next readiness */
    }
}

int listener_open(listener_t *l, loop_t *loop, const char *addr, listener_cb cb, void *ctx)
{
    memset(l, 0, sizeof(*l));
    list_init(&l->pp_waits);
    l->w.fd = -1;
    l->reserve_fd = -1;
    char host[64];
    const char *port;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof(host)) return HR_EINVAL;
        memcpy(host, addr + 1, (size_t)(end - addr - 1));
        host[end - addr - 1] = 0;
        port = end + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= sizeof(host)) return HR_EINVAL;
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = 0;
        port = colon + 1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host[0] ? host : NULL, port, &hints, &res) != 0 || !res) return HR_EINVAL;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return HR_EIO;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
        int e = errno;
        close(fd);
        freeaddrinfo(res);
        errno = e;
        return HR_EIO;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    char hbuf[64] = "", sbuf[16] = "";
    getnameinfo((struct sockaddr *)&ss, sl, hbuf, sizeof(hbuf), sbuf, sizeof(sbuf), NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(l->addr, sizeof(l->addr), ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", hbuf, sbuf);
    l->w.fd = fd;
    l->w.cb = listener__on_event;
    l->loop = loop;
    l->on_accept = cb;
    l->ctx = ctx;
    l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return loop_watch(loop, &l->w, LOOP_READ);
}

void listener_close(listener_t *l)
{
    while (l->pp_waits.next && !list_empty(&l->pp_waits)) {
        pp__end(container_of(l->pp_waits.next, pp_wait_t, link), false, true);
    }
    if (l->w.fd >= 0) {
        loop_unwatch(l->loop, &l->w);
        close(l->w.fd);
        l->w.fd = -1;
    }
    if (l->reserve_fd >= 0) close(l->reserve_fd);
    l->reserve_fd = -1;
}
