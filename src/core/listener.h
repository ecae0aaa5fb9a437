/* listener.h - a listening TCP socket on the loop: non-blocking accept4 in a bounded loop, with a
 * reserved fd so that running out of descriptors (EMFILE) sheds the new peer instead of spinning. */
#ifndef HERALD_LISTENER_H
#define HERALD_LISTENER_H

#include "loop.h"

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
};

/* Parses "host:port" or "[v6]:port" and binds a listening socket (SO_REUSEADDR, backlog 4096).
 * Port 0 picks a free port; l->addr then shows the real one. Returns 0, or HR_EINVAL for a bad
 * address, or HR_EIO (with errno) when bind/listen fails. */
int listener_open(listener_t *l, loop_t *loop, const char *addr, listener_cb cb, void *ctx);

/* Stops accepting and closes the socket. */
void listener_close(listener_t *l);

#endif
