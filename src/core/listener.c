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

static void listener__on_event(loop_t *loop, watcher_t *w, uint32_t events)
{
    listener_t *l = container_of(w, listener_t, w);
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        int fd = accept4(l->w.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            l->on_accept(l, fd);
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
    if (l->w.fd >= 0) {
        loop_unwatch(l->loop, &l->w);
        close(l->w.fd);
        l->w.fd = -1;
    }
    if (l->reserve_fd >= 0) close(l->reserve_fd);
    l->reserve_fd = -1;
}
