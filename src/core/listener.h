/* listener.h - a listening TCP socket on the loop: non-blocking accept4 in a bounded loop, with a
 * reserved fd so that running out of descriptors (EMFILE) sheds the new peer instead of spinning. */
#ifndef HERALD_LISTENER_H
#define HERALD_LISTENER_H

#include "list.h"
#include "loop.h"
#include "proxyproto.h"

typedef struct listener listener_t;

/* Gets a new non-blocking, close-on-exec connected fd; owns it from now on. */
typedef void (*listener_cb)(listener_t *l, int fd);

struct listener {
    watcher_t w;
    loop_t *loop;
    listener_cb on_accept;
    void *ctx;
    int reserve_fd;
    char addr[80]; /* the bound address as "host:port" */
    /* proxy_protocol: every connection must begin with a PROXY header (proxyproto.h), read within
     * proxy_ms before on_accept sees the fd; 0: off */
    uint32_t proxy_ms;
    list_t pp_waits;           /* connections whose header is still coming */
    const proxyproto_t *pp;    /* during on_accept: the header's client, or NULL */
    uint64_t pp_refused;       /* connections closed for a missing, bad or late header */
};

/* Parses "host:port" or "[v6]:port" and binds a listening socket (SO_REUSEADDR, backlog 4096).
 * Port 0 picks a free port; l->addr then shows the real one. Returns 0, or HR_EINVAL for a bad
 * address, or HR_EIO (with errno) when bind/listen fails. */
int listener_open(listener_t *l, loop_t *loop, const char *addr, listener_cb cb, void *ctx);

/* Requires a PROXY protocol header (v1 or v2) on every connection from now on, read within
 * timeout_ms; a connection without one is closed (counted in pp_refused, logged once). */
void listener_proxy(listener_t *l, uint32_t timeout_ms);

/* Stops accepting and closes the socket (and the connections still sending their header). */
void listener_close(listener_t *l);

#endif
