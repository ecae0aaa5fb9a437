/* loop.h - the event loop: epoll for fds, one timer wheel for time, and the phases of an
 * iteration in one place (loop_run):
 *   expire timers -> epoll_wait (timeout = next timer) -> dispatch events -> run deferred
 *   closes -> flush pending writes (writev) -> repeat.
 * Nothing else in herald calls epoll or sees its flags (watchers use LOOP_* below). The loop is
 * single-threaded; everything it owns is touched only from its thread. SIGTERM and SIGINT stop it
 * through a signalfd. */
#ifndef HERALD_LOOP_H
#define HERALD_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "list.h"
#include "timer.h"

typedef struct loop loop_t;
typedef struct watcher watcher_t;

/* Readiness, in the loop's own terms (watchers never see epoll; the values are epoll's so
 * loop.c passes them through without translating, which it checks at compile time). */
enum {
    LOOP_READ = 0x001,   /* readable (or a listener has a connection) */
    LOOP_WRITE = 0x004,  /* writable */
    LOOP_ERR = 0x008,    /* an error is pending (always reported) */
    LOOP_HUP = 0x010,    /* hung up (always reported) */
    LOOP_RDHUP = 0x2000, /* the peer shut its writing half */
};

/* Called with the LOOP_* flags that fired. */
typedef void (*watcher_cb)(loop_t *loop, watcher_t *w, uint32_t events);

struct watcher {
    int fd;
    uint32_t events; /* currently registered interest (LOOP_READ | LOOP_WRITE | LOOP_RDHUP) */
    watcher_cb cb;
};

typedef void (*loop_hook_cb)(loop_t *loop, void *arg);

struct loop {
    int epfd;
    int sigfd;
    bool stopping;
    uint64_t now_ms; /* cached monotonic clock, refreshed once per iteration */
    tw_t wheel;
    list_t pending_writes; /* conns with queued data to flush before polling */
    list_t closing;        /* conns closed during this iteration, freed after dispatch */
    loop_hook_cb on_stop;  /* called once when a stop signal arrives */
    void *on_stop_arg;
    loop_hook_cb on_hup;   /* called for each SIGHUP (reload); SIGHUP never stops the loop */
    void *on_hup_arg;
    loop_hook_cb before_write; /* called before queued socket writes go out (the store's group commit) */
    void *before_write_arg;
    uint64_t iterations;
    uint64_t bytes_in, bytes_out; /* socket bytes read and written by connections */
    uint64_t input_holds;         /* conn_hold_input() backpressure holds */
    bool wake; /* work waits for before_write (publishes to commit): the next poll does not sleep */
    /* send timeout (conn.c): connections whose queued output made no progress, oldest first */
    uint32_t send_timeout_ms; /* 0: never closed for it */
    list_t stalled;
    tw_entry_t stall_timer;
    uint64_t send_timeouts;   /* connections closed for it */
    uint64_t fd_shed;         /* connections accepted and closed at once: no file descriptor left */
};

/* Creates a loop, blocking SIGTERM/SIGINT/SIGHUP/SIGPIPE for the process and watching the first
 * three through a signalfd (SIGHUP calls on_hup, and is otherwise ignored). Returns 0 or HR_EIO. */
int loop_init(loop_t *loop);

/* Closes the epoll and signal fds. Every watcher must have been removed and every connection
 * freed; returns HR_EINVAL (after closing anyway) if timers are still armed. */
int loop_close(loop_t *loop);

int loop_watch(loop_t *loop, watcher_t *w, uint32_t events);   /* starts watching fd for events (LOOP_*) */
int loop_modify(loop_t *loop, watcher_t *w, uint32_t events);  /* changes the interest (a no-op when equal) */
void loop_unwatch(loop_t *loop, watcher_t *w);                  /* stops watching */

/* Runs until loop_stop() or a stop signal, then returns after running on_stop, deferred closes
 * and pending writes one last time. */
void loop_run(loop_t *loop);

/* Asks loop_run to return after the current iteration. */
void loop_stop(loop_t *loop);

/* Runs one iteration waiting at most max_wait_ms (-1: until an event or a timer). For tests. */
void loop_run_once(loop_t *loop, int max_wait_ms);

static inline uint64_t loop_now(const loop_t *loop) { return loop->now_ms; }

/* Arms a timer entry relative to now. */
static inline void loop_timer(loop_t *loop, tw_entry_t *e, uint64_t in_ms)
{
    tw_arm(&loop->wheel, e, loop->now_ms + in_ms);
}

/* Wall clock in milliseconds since the epoch (message timestamps). */
uint64_t loop_wall_ms(void);

/* Monotonic clock in milliseconds. */
uint64_t loop_mono_ms(void);

#endif
