/* loop.c - epoll reactor with explicit phases; see loop.h. */
#include "loop.h"

#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "err.h"

_Static_assert((int)LOOP_READ == (int)EPOLLIN && (int)LOOP_WRITE == (int)EPOLLOUT && (int)LOOP_ERR == (int)EPOLLERR &&
                   (int)LOOP_HUP == (int)EPOLLHUP && (int)LOOP_RDHUP == (int)EPOLLRDHUP,
               "the loop passes readiness flags to epoll unchanged");

#define LOOP_MAX_EVENTS 256

uint64_t loop_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t loop_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int loop_init(loop_t *loop)
{
    *loop = (loop_t){0};
    loop->sigfd = -1;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) return HR_EIO;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    loop->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (loop->sigfd < 0) return HR_EIO;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->sigfd, &ev) < 0) return HR_EIO;
    loop->now_ms = loop_mono_ms();
    tw_init(&loop->wheel, loop->now_ms);
    list_init(&loop->pending_writes);
    list_init(&loop->closing);
    list_init(&loop->stalled);
    return 0;
}

int loop_close(loop_t *loop)
{
    if (loop->sigfd >= 0) close(loop->sigfd);
    if (loop->epfd >= 0) close(loop->epfd);
    loop->sigfd = loop->epfd = -1;
    return loop->wheel.armed ? HR_EINVAL : 0;
}

int loop_watch(loop_t *loop, watcher_t *w, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0) return HR_EIO;
    w->events = events;
    return 0;
}

int loop_modify(loop_t *loop, watcher_t *w, uint32_t events)
{
    if (w->events == events) return 0;
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0) return HR_EIO;
    w->events = events;
    return 0;
}

void loop_unwatch(loop_t *loop, watcher_t *w)
{
    if (w->fd >= 0) epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    w->events = 0;
}

void loop_stop(loop_t *loop) { loop->stopping = true; }

static void loop__read_signals(loop_t *loop)
{
    struct signalfd_siginfo si;
    while (read(loop->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) { /* a reload, never a stop */
            if (loop->on_hup && !loop->stopping) loop->on_hup(loop, loop->on_hup_arg);
            continue;
        }
        if (!loop->stopping) {
            loop->stopping = true;
            if (loop->on_stop) loop->on_stop(loop, loop->on_stop_arg);
        }
    }
}

static void loop__poll(loop_t *loop, int timeout_ms)
{
    struct epoll_event evs[LOOP_MAX_EVENTS];
    int n = epoll_wait(loop->epfd, evs, LOOP_MAX_EVENTS, timeout_ms);
    loop->now_ms = loop_mono_ms();
    for (int i = 0; i < n; i++) {
        watcher_t *w = evs[i].data.ptr;
        if (!w) {
            loop__read_signals(loop);
            continue;
        }
        /* a watcher closed earlier in this batch has fd -1: its stale event is ignored (the
         * memory itself is freed only in the closing phase, after this loop). */
        if (w->fd < 0) continue;
        w->cb(loop, w, evs[i].events);
    }
}

static void loop__write(loop_t *loop)
{
    loop->wake = false; /* before_write does the work that was waiting; what it leaves sets it again */
    if (loop->before_write) loop->before_write(loop, loop->before_write_arg);
    conn__flush_pending(loop);
}

void loop_run_once(loop_t *loop, int max_wait_ms)
{
    loop->now_ms = loop_mono_ms();
    tw_run(&loop->wheel, loop->now_ms);
    conn__run_closing(loop);
    loop__write(loop);
    int t = tw_next_ms(&loop->wheel, loop->now_ms);
    if (max_wait_ms >= 0 && (t < 0 || t > max_wait_ms)) t = max_wait_ms;
    if (!list_empty(&loop->closing) || !list_empty(&loop->pending_writes) || loop->wake) t = 0;
    loop__poll(loop, loop->stopping && max_wait_ms < 0 ? 0 : t); /* stopping: only the drain's bounded waits */
    conn__run_closing(loop);
    loop__write(loop);
    conn__run_closing(loop);
    loop->iterations++;
}

void loop_run(loop_t *loop)
{
    while (!loop->stopping) loop_run_once(loop, -1);
    conn__run_closing(loop);
    loop__write(loop);
    conn__run_closing(loop);
}
