/* sdnotify.c - see sdnotify.h. The protocol is what sd_notify(3) documents: one datagram,
 * no reply, sent from the main process (NotifyAccess=main). An abstract address ("@name") is
 * sun_path = "\0name" with the length counted exactly, no terminating NUL. The socket is made
 * and closed for each call: herald notifies a handful of times in its life. */
#include "sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "err.h"

int sdnotify_to(const char *addr, const char *state)
{
    if (!addr || !addr[0]) return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t n = strlen(addr);
    if ((addr[0] != '/' && addr[0] != '@') || n > sizeof(sa.sun_path) - (addr[0] == '/')) {
        errno = EINVAL;
        return HR_EINVAL;
    }
    memcpy(sa.sun_path, addr, n);
    if (addr[0] == '@') sa.sun_path[0] = '\0'; /* abstract: no NUL at the end, the length says where it ends */
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (addr[0] == '/'));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return HR_EIO;
    ssize_t sent = sendto(fd, state, strlen(state), MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
    int saved = errno;
    close(fd);
    errno = saved;
    return sent == (ssize_t)strlen(state) ? 1 : HR_EIO;
}

int sdnotify(const char *state) { return sdnotify_to(getenv("NOTIFY_SOCKET"), state); }

int sdnotifyf(const char *fmt, ...)
{
    const char *addr = getenv("NOTIFY_SOCKET");
    if (!addr || !addr[0]) return 0;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return sdnotify_to(addr, buf);
}
